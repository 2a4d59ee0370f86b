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
    let server = tokio::spawn(metrics::serve_metrics_on(listener, Some(store), async {
        let _ = stopped.await;
    }));

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
