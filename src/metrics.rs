//! Prometheus metrics: messages by verdict, findings by rule, scan time, and
//! outbound accounts on hold; served over HTTP at `GET /metrics` when
//! `[metrics] listen` is set (off by default).
//!
//! The daemon calls [`observe_report`] once per scanned message and runs
//! [`serve_metrics`] beside the milter listener.
//!
//! The endpoint serves at most `max_connections` clients at once (others
//! get 503 at once) and never reads the store per request: the held
//! accounts gauge is refreshed every `held_refresh_secs`, since counting
//! holds lists keys (a SCAN of the whole keyspace with Redis).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::report::Report;
use crate::store::Store;

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `HOST:PORT` to serve `GET /metrics` on, e.g. `127.0.0.1:9357`.
    /// Empty (the default): no endpoint.
    pub listen: String,
    /// Clients served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// How often the held accounts gauge is read from the store (seconds).
    pub held_refresh_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: String::new(),
            max_connections: 16,
            held_refresh_secs: 60,
        }
    }
}

/// `metrics.listen` is not an IP address and port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected HOST:PORT with a numeric address, got {listen:?}")]
pub struct MetricsListenError {
    /// As written, trimmed.
    pub listen: String,
    #[source]
    pub source: std::net::AddrParseError,
}

impl MetricsConfig {
    /// The address to listen on, None when the endpoint is off.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, MetricsListenError> {
        let s = self.listen.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|source| MetricsListenError {
            listen: s.to_string(),
            source,
        })
    }
}

type Labels = Vec<(String, String)>;

struct Metrics {
    registry: Registry,
    messages: Family<Labels, Counter>,
    findings: Family<Labels, Counter>,
    scan_seconds: Histogram,
    accounts_held: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("malspam_milter");
    let messages = Family::<Labels, Counter>::default();
    let findings = Family::<Labels, Counter>::default();
    // 1 ms .. ~33 s, doubling.
    let scan_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
    let accounts_held = Gauge::default();
    registry.register("messages", "Messages scanned, by verdict", messages.clone());
    registry.register(
        "findings",
        "Findings, by rule (detector.rule)",
        findings.clone(),
    );
    registry.register(
        "scan_seconds",
        "Time to scan one message",
        scan_seconds.clone(),
    );
    registry.register(
        "outbound_accounts_held",
        "Outbound accounts whose mail is on hold now",
        accounts_held.clone(),
    );
    Metrics {
        registry,
        messages,
        findings,
        scan_seconds,
        accounts_held,
    }
});

/// Count one scanned message: its verdict, its findings, its scan time.
pub fn observe_report(report: &Report, elapsed: Duration) {
    let m = &*METRICS;
    m.messages
        .get_or_create(&vec![("verdict".into(), report.verdict.as_str().into())])
        .inc();
    for f in &report.findings {
        m.findings
            .get_or_create(&vec![("rule".into(), f.full_rule())])
            .inc();
    }
    m.scan_seconds.observe(elapsed.as_secs_f64());
}

/// Set the held accounts gauge from the store (so every milter sharing a
/// Redis store reports the same number). Lists keys: call it on a timer,
/// never per request.
pub fn refresh_held(store: &dyn Store) {
    let now = crate::store::unix_now();
    match crate::detectors::outbound::holds::active_count(store, now) {
        Ok(n) => METRICS.accounts_held.set(n as i64),
        Err(e) => {
            tracing::warn!("metrics: cannot count held accounts: {e}");
            0
        }
    };
}

/// The metrics in the OpenMetrics text format.
pub fn render() -> String {
    let m = &*METRICS;
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &m.registry) {
        tracing::warn!("metrics: cannot encode: {e}");
    }
    out
}

/// Bind `addr` and serve `GET /metrics` until `shutdown` completes.
pub async fn serve_metrics(
    addr: SocketAddr,
    store: Option<Arc<dyn Store>>,
    config: &MetricsConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("metrics: serving http://{addr}/metrics");
    serve_metrics_on(listener, store, config, shutdown).await
}

/// Serve `GET /metrics` on an already bound listener (tests bind port 0).
/// With a store, the held accounts gauge is read first, then every
/// `held_refresh_secs`.
pub async fn serve_metrics_on(
    listener: TcpListener,
    store: Option<Arc<dyn Store>>,
    config: &MetricsConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let every = Duration::from_secs(config.held_refresh_secs.max(1));
    // The gauge is right before the first request is read.
    if let Some(store) = store.clone() {
        let _ = tokio::task::spawn_blocking(move || refresh_held(store.as_ref())).await;
    }
    let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = refresh.tick(), if store.is_some() => {
                if let Some(store) = store.clone() {
                    let _ = tokio::task::spawn_blocking(move || refresh_held(store.as_ref())).await;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            let _permit = permit;
                            match tokio::time::timeout(REQUEST_TIMEOUT, answer(stream)).await {
                                Ok(Err(e)) => tracing::debug!("metrics: connection: {e}"),
                                Err(_) => tracing::debug!("metrics: connection timed out"),
                                Ok(Ok(())) => {}
                            }
                        });
                    }
                    Err(_) => {
                        // Busy: say so without waiting on the client, close.
                        let _ = stream.try_write(BUSY);
                    }
                },
                Err(e) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

const MAX_REQUEST_HEAD: usize = 8192;
/// A whole exchange (request and answer) ends within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BUSY: &[u8] = b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A minimal HTTP/1.0 exchange: read the request head, answer, close.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n")
            && !head.windows(2).any(|w| w == b"\n\n")
            && head.len() < MAX_REQUEST_HEAD
        {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method == "GET" && path == "/metrics" {
        let body = render();
        (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "only GET /metrics is served here\n".to_string(),
        )
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_is_off_by_default_and_validated() {
        assert_eq!(MetricsConfig::default().listen_addr(), Ok(None));
        let c = MetricsConfig {
            listen: "127.0.0.1:9357".into(),
            ..MetricsConfig::default()
        };
        assert_eq!(c.listen_addr(), Ok(Some("127.0.0.1:9357".parse().unwrap())));
        let c = MetricsConfig {
            listen: "localhost".into(),
            ..MetricsConfig::default()
        };
        assert!(c.listen_addr().is_err());
    }
}
