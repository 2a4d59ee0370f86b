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
