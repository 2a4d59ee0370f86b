//! The Prometheus endpoint, scraped over loopback after real scans.

use std::sync::Arc;
use std::time::Duration;

use malspam_milter::detectors::outbound::{holds, OutboundConfig};
use malspam_milter::metrics;
use malspam_milter::store::{unix_now, MemoryStore, Store};
use malspam_milter::{Config, Engine, Envelope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

/// Like [`get`], but a refused or reset connection is an empty answer.
async fn try_get(addr: std::net::SocketAddr, request: &str) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let _ = stream.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn metrics_are_served_over_loopback() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = Engine::with_store(Config::default(), store.clone()).unwrap();

    // One clean message and one from a held account.
    let clean = engine.scan(
        Envelope::default(),
        b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n",
    );
    metrics::observe_report(&clean, Duration::from_millis(3));
    holds::on_message(
        store.as_ref(),
        &OutboundConfig::default(),
        "alice@example.jp",
        "Q1",
        Some(("outbound.rate_exceeded: test", "1m: 31 msg")),
        unix_now(),
    )
    .unwrap();
    let held = engine.scan(
        Envelope {
            auth_user: Some("alice@example.jp".into()),
            queue_id: Some("Q2".into()),
            ..Envelope::default()
        },
        b"From: alice@example.jp\r\nTo: b@x.example\r\nSubject: hi\r\n\r\nhello\r\n",
    );
    assert_eq!(held.verdict, malspam_milter::Verdict::Quarantine);
    metrics::observe_report(&held, Duration::from_millis(40));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        metrics::serve_metrics_on(listener, Some(store), &Default::default(), async {
            let _ = stopped.await;
        })
        .await
    });

    let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    for line in [
        "malspam_milter_messages_total{verdict=\"accept\"} 1",
        "malspam_milter_messages_total{verdict=\"quarantine\"} 1",
        "malspam_milter_findings_total{rule=\"outbound.held\"} 1",
        "malspam_milter_scan_seconds_count 2",
        "malspam_milter_scan_seconds_bucket{le=\"0.004\"} 1",
        "malspam_milter_scan_seconds_bucket{le=\"0.064\"} 2",
        "malspam_milter_outbound_accounts_held 1",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    assert!(body.ends_with("# EOF\n"));

    let response = get(addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.0 404 Not Found\r\n"),
        "{response}"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A memory store that counts how often its keys are listed (with Redis,
/// a SCAN of the whole keyspace).
struct CountingStore {
    inner: MemoryStore,
    listings: std::sync::atomic::AtomicUsize,
}

impl Store for CountingStore {
    fn backend(&self) -> &'static str {
        "counting"
    }
    fn get(&self, key: &str) -> malspam_milter::store::StoreResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> malspam_milter::store::StoreResult<()> {
        self.inner.put(key, value, ttl)
    }
    fn delete(&self, key: &str) -> malspam_milter::store::StoreResult<()> {
        self.inner.delete(key)
    }
    fn incr(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> malspam_milter::store::StoreResult<i64> {
        self.inner.incr(key, by, ttl)
    }
    fn set_add(
        &self,
        key: &str,
        member: &[u8],
        ttl: Option<Duration>,
    ) -> malspam_milter::store::StoreResult<bool> {
        self.inner.set_add(key, member, ttl)
    }
    fn set_contains(&self, key: &str, member: &[u8]) -> malspam_milter::store::StoreResult<bool> {
        self.inner.set_contains(key, member)
    }
    fn set_members(&self, key: &str) -> malspam_milter::store::StoreResult<Vec<Vec<u8>>> {
        self.inner.set_members(key)
    }
    fn keys_with_prefix(&self, prefix: &str) -> malspam_milter::store::StoreResult<Vec<String>> {
        self.listings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.keys_with_prefix(prefix)
    }
}

/// Issue 12, item 10: every GET /metrics listed the whole keyspace, and
/// the endpoint took any number of connections.
#[tokio::test]
async fn requests_never_list_the_store_and_connections_are_capped() {
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(),
        listings: Default::default(),
    });
    // The gauge is process-wide: hold one account, like the other test.
    holds::on_message(
        store.as_ref(),
        &OutboundConfig::default(),
        "alice@example.jp",
        "Q1",
        Some(("outbound.rate_exceeded: test", "1m: 31 msg")),
        unix_now(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = metrics::MetricsConfig {
        max_connections: 4,
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shared: Arc<dyn Store> = store.clone();
    let server = tokio::spawn(async move {
        metrics::serve_metrics_on(listener, Some(shared), &config, async {
            let _ = stopped.await;
        })
        .await
    });
    for _ in 0..50 {
        let response = get(addr, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    }
    assert_eq!(
        store.listings.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the held gauge is read once at start (then every held_refresh_secs), never per request"
    );

    // Four clients that say nothing hold every slot: the fifth is told 503
    // (or, when its request is still unread as the socket closes, reset).
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..20 {
        let response = try_get(addr, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.0 503 Service Unavailable\r\n"),
            "{response}"
        );
    }
    drop(idle);
    // Their slots come back once they are gone.
    let mut served = false;
    for _ in 0..100 {
        if try_get(addr, "GET /metrics HTTP/1.0\r\n\r\n")
            .await
            .starts_with("HTTP/1.0 200 OK")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "the endpoint serves again after the idle clients left"
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
