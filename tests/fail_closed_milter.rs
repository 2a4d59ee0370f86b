//! Fail closed through the milter: an outbound account on hold is held
//! whatever happens to the content scan (a timeout, a panic), and a
//! message with deep nesting gets a verdict from the running daemon.

mod common;

use common::{findings, handshake, quarantine_reason, send, Msg, TestMilter, PANIC, SLOW};
use indymilter_test::Status;
use malspam_milter::detectors::outbound::holds;

/// The test connection comes from 192.0.2.25: an internal network here, so
/// its mail is outbound, counted against the account `ip:192.0.2.25`.
const CONFIG: &str = "[milter]\ninline_scan_max_bytes = 0\n[limits]\nscan_timeout_secs = 1\n\
[outbound]\ninternal_networks = [\"192.0.2.0/24\"]\n";

fn hold_the_account(milter: &TestMilter) {
    let engine = milter.daemon.engine();
    let now = malspam_milter::store::unix_now();
    let outcome = holds::on_message(
        engine.store().as_ref(),
        &engine.config().outbound,
        "ip:192.0.2.25",
        "TRIPPED1",
        Some(("outbound.rate_exceeded: test", "counters")),
        now,
    )
    .unwrap();
    assert!(matches!(outcome, holds::Outcome::Started(_)), "{outcome:?}");
}

async fn held_verdict_for(body: &str) {
    let milter = TestMilter::start(CONFIG).await;
    hold_the_account(&milter);
    let body = format!("{body}\r\n");
    let (actions, status) = milter
        .send_one(&Msg {
            body: &body,
            ..Msg::default()
        })
        .await;
    assert_eq!(status, Status::Continue);
    let found = findings(&actions);
    assert!(
        found.iter().any(|f| f.starts_with("outbound.held")),
        "{found:?}"
    );
    assert!(quarantine_reason(&actions).is_some(), "{actions:?}");
    milter.stop().await;
}

#[tokio::test]
async fn a_held_account_stays_held_when_its_scan_times_out() {
    held_verdict_for(SLOW).await;
}

#[tokio::test]
async fn a_held_account_stays_held_when_a_detector_panics() {
    held_verdict_for(PANIC).await;
}

#[tokio::test]
async fn a_held_account_stays_held_for_plain_mail() {
    held_verdict_for("quarterly figures attached").await;
}

#[tokio::test]
async fn deep_nesting_gets_a_verdict_and_the_daemon_stays_up() {
    let milter = TestMilter::start("").await;
    let mut body = String::new();
    for _ in 0..60_000 {
        body.push_str("Content-Type: message/rfc822\r\n\r\n");
    }
    body.push_str("Subject: bottom\r\n\r\nhello\r\n");
    let msg = Msg {
        headers: &[
            ("From", "Alice <alice@sender.example>"),
            ("To", "bob@rcpt.example"),
            ("Subject", "deep"),
            ("Content-Type", "message/rfc822"),
        ],
        body: &body,
        ..Msg::default()
    };
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    let (actions, status) = send(&mut conn, &msg).await;
    assert_eq!(status, Status::Continue);
    assert!(
        findings(&actions)
            .iter()
            .any(|f| f.starts_with("scan.limit")),
        "{:?}",
        findings(&actions)
    );
    // The same connection, and the daemon, go on.
    let (_, status) = send(&mut conn, &Msg::default()).await;
    assert_eq!(status, Status::Continue);
    conn.close().await.unwrap();
    milter.stop().await;
}

/// Sleeps 3 s on a message with 100 or more attachments: a stand-in for a
/// scan that takes long, to show which thread it runs on.
fn slow_on_many_parts() -> common::OnView {
    common::OnView {
        name: "slow_on_many_parts",
        on_view: |view| {
            if view.attachments.len() >= 100 {
                std::thread::sleep(std::time::Duration::from_secs(3));
            }
            Ok(())
        },
    }
}

/// Item 5: a message of 150 quoted-printable attachments, under the
/// inline-scan size and with no base64, was scanned on the protocol thread,
/// and every other session waited for it. The milter runs here on a
/// one-thread runtime, like the daemon's single protocol thread, and the
/// test's MTA on a thread of its own: a normal session sent while the heavy
/// one is scanned is answered within 1 s.
#[tokio::test(flavor = "current_thread")]
async fn quoted_printable_attachments_are_scanned_off_the_protocol_thread() {
    let milter = TestMilter::start_with("", || vec![Box::new(slow_on_many_parts())]).await;
    let addr = milter.addr;
    let mta = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let open = move || async move {
                indymilter_test::TestConnection::configure()
                    .read_timeout(std::time::Duration::from_secs(60))
                    .open_tcp(addr)
                    .await
                    .unwrap()
            };
            let heavy_done = tokio::spawn(async move {
                let mut body = String::new();
                for i in 0..150 {
                    body.push_str(&format!(
                        "--b1\r\nContent-Type: application/vnd.ms-word.document.macroEnabled.12\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nPK=03=04 part {i}=\r\n\r\n"
                    ));
                }
                body.push_str("--b1--\r\n");
                assert!(body.len() < 256 * 1024);
                let heavy = Msg {
                    queue_id: "4HEAVY",
                    headers: &[
                        ("From", "Alice <alice@sender.example>"),
                        ("Subject", "documents"),
                        ("MIME-Version", "1.0"),
                        ("Content-Type", "multipart/mixed; boundary=\"b1\""),
                    ],
                    body: &body,
                    ..Msg::default()
                };
                let mut conn = open().await;
                handshake(&mut conn).await;
                let (_, status) = send(&mut conn, &heavy).await;
                let _ = conn.close().await;
                status
            });
            // Let the heavy message reach its scan first.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let start = std::time::Instant::now();
            let mut conn = open().await;
            handshake(&mut conn).await;
            let (actions, status) = send(&mut conn, &Msg::default()).await;
            let took = start.elapsed();
            let _ = conn.close().await;
            assert_eq!(status, Status::Continue);
            assert_eq!(
                common::added(&actions, "X-Malspam-Verdict").as_deref(),
                Some("accept")
            );
            assert_eq!(heavy_done.await.unwrap(), Status::Continue);
            took
        })
    });
    // The milter's thread stays free while the MTA thread works.
    let took = tokio::task::spawn_blocking(move || mta.join().unwrap())
        .await
        .unwrap();
    assert!(
        took < std::time::Duration::from_secs(1),
        "a normal session waited {took:?} for the heavy scan"
    );
    milter.stop().await;
}

/// A state store that does not answer in time where the envelope stage
/// asks whether an account is on hold: reading a hold record takes 6 s.
struct HangingStore(malspam_milter::store::MemoryStore);

impl malspam_milter::store::Store for HangingStore {
    fn backend(&self) -> &'static str {
        "hanging"
    }
    fn get(&self, key: &str) -> malspam_milter::store::StoreResult<Option<Vec<u8>>> {
        if key.starts_with("ob:hold:") {
            std::thread::sleep(std::time::Duration::from_secs(6));
        }
        self.0.get(key)
    }
    fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<()> {
        self.0.put(key, value, ttl)
    }
    fn delete(&self, key: &str) -> malspam_milter::store::StoreResult<()> {
        self.0.delete(key)
    }
    fn incr(
        &self,
        key: &str,
        by: i64,
        ttl: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<i64> {
        self.0.incr(key, by, ttl)
    }
    fn set_add(
        &self,
        key: &str,
        member: &[u8],
        ttl: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<bool> {
        self.0.set_add(key, member, ttl)
    }
    fn set_contains(&self, key: &str, member: &[u8]) -> malspam_milter::store::StoreResult<bool> {
        self.0.set_contains(key, member)
    }
    fn set_members(&self, key: &str) -> malspam_milter::store::StoreResult<Vec<Vec<u8>>> {
        self.0.set_members(key)
    }
    fn keys_with_prefix(&self, prefix: &str) -> malspam_milter::store::StoreResult<Vec<String>> {
        self.0.keys_with_prefix(prefix)
    }
}

/// Item 6, a store that hangs: the milter does not wait for it past the
/// store's timeout plus a second. Whether the account is on hold is unknown,
/// so its message is held (`outbound.hold_unknown`), never let out.
#[tokio::test]
async fn an_outbound_account_is_held_when_the_store_does_not_answer_in_time() {
    let config = "[store]\ntimeout_ms = 200\n\
[outbound]\ninternal_networks = [\"192.0.2.0/24\"]\n";
    let seen = std::sync::Arc::new(std::sync::Mutex::new(common::Seen::default()));
    let milter = TestMilter::start_built(config, seen, |config| {
        malspam_milter::Engine::with_store(
            config,
            std::sync::Arc::new(HangingStore(malspam_milter::store::MemoryStore::new())),
        )
        .unwrap()
    })
    .await;
    let started = std::time::Instant::now();
    let (actions, status) = milter.send_one(&Msg::default()).await;
    assert_eq!(status, Status::Continue);
    let found = findings(&actions);
    assert!(
        found.iter().any(|f| f.starts_with("outbound.hold_unknown")
            && f.contains("could not be read in 1200 ms")),
        "{found:?}"
    );
    assert!(quarantine_reason(&actions).is_some(), "{actions:?}");
    // Answered at the limits of the envelope stage and the commit (1.2 s
    // each), not after the store's 6 s.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    milter.stop().await;
}
