//! The outbound alert log line, in a test binary of its own: `tracing`
//! caches per-callsite interest across threads, so a scoped subscriber only
//! sees every event when no other test runs beside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use malspam_milter::store::MemoryStore;
use malspam_milter::{Config, Engine, Envelope};

const T0: u64 = 1_700_006_400;

/// A log sink for the alert-line test.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn one_alert_line_per_episode_prefixed_with_the_queue_id() {
    let logs = LogBuf::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let config = Config::parse("[outbound]\nhold_minutes = 10\n", "t.toml").unwrap();
        let mut engine = Engine::with_store(config, Arc::new(MemoryStore::new())).unwrap();
        let clock = Arc::new(AtomicU64::new(T0));
        let c = clock.clone();
        engine.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        let send = |t: u64, qid: &str| {
            clock.store(t, Ordering::SeqCst);
            let envelope = Envelope {
                auth_user: Some("alice@example.jp".into()),
                queue_id: Some(qid.into()),
                rcpt_to: vec!["<bob@partner.example>".into()],
                ..Envelope::default()
            };
            engine.scan_and_commit(
                envelope,
                b"From: Alice <alice@example.jp>\r\nTo: bob@partner.example\r\nSubject: figures\r\n\r\nhello\r\n",
            )
        };
        for i in 0..40 {
            send(T0 + i, &format!("Q{i}"));
        }
        // The hold expires; the next message ends the episode.
        send(T0 + 39 + 601, "Q40");
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let alerts: Vec<&str> = text.lines().filter(|l| l.contains("ALERT")).collect();
    assert_eq!(
        alerts,
        [" WARN Q30: outbound ALERT: account alice@example.jp held for 10 min (until 2023-11-15T00:10:30Z): \
          outbound.rate_exceeded: alice@example.jp: 31 messages in 1m (limit 30); \
          counters: 1m: 31 msg, 31 rcpt, 1 domains, 1 new; 1h: 31 msg, 31 rcpt, 1 domains, 1 new; 24h: 31 msg, 31 rcpt, 1 domains, 1 new; \
          first queue id Q30"]
    );
    let ends: Vec<&str> = text.lines().filter(|l| l.contains("hold ended")).collect();
    assert_eq!(
        ends,
        [" INFO Q40: outbound: account alice@example.jp hold ended (hold expired): 10 message(s) since 2023-11-15T00:00:30Z, first queue id Q30, last queue id Q39"]
    );
}
