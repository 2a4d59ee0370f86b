//! The milter over a real socket, with indymilter-test playing the MTA:
//! what it adds, deletes, quarantines and rejects.

mod common;

use common::*;
use indymilter_test::{Actions, EomAction, MacroStage, Status, TestConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Scores for the test marker (reported as `scan.error`, see common).
const TAG_ON_MARKER: &str = "[policy.scores]\n\"scan.error\" = 6.0\n";
const QUARANTINE_ON_MARKER: &str = "[policy.scores]\n\"scan.error\" = 12.0\n";

#[tokio::test]
async fn clean_mail_gets_verdict_and_score_only() {
    let milter = TestMilter::start("").await;
    let (actions, status) = milter.send_one(&Msg::default()).await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
    assert_eq!(added(&actions, "X-Malspam-Score").as_deref(), Some("0"));
    assert_eq!(actions.actions.len(), 2, "nothing else: {actions:?}");
    milter.stop().await;
}

#[tokio::test]
async fn flagged_mail_is_tagged_with_findings() {
    let milter = TestMilter::start(TAG_ON_MARKER).await;
    let body = format!("Please see the invoice.\r\n{MARKER}\r\n");
    let msg = Msg {
        body: &body,
        ..Msg::default()
    };
    let (actions, status) = milter.send_one(&msg).await;
    assert_eq!(status, Status::Continue);
    assert_eq!(added(&actions, "X-Malspam-Verdict").as_deref(), Some("tag"));
    assert_eq!(added(&actions, "X-Malspam-Score").as_deref(), Some("6"));
    assert_eq!(
        findings(&actions),
        ["scan.error (+6): marker: test marker in the body of \"hello\""]
    );
    assert_eq!(quarantine_reason(&actions), None);
    milter.stop().await;
}

#[tokio::test]
async fn quarantine_is_sent_with_the_findings_as_reason() {
    let milter = TestMilter::start(QUARANTINE_ON_MARKER).await;
    let body = format!("{MARKER}\r\n");
    let msg = Msg {
        body: &body,
        ..Msg::default()
    };
    let (actions, status) = milter.send_one(&msg).await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("quarantine")
    );
    let reason = quarantine_reason(&actions).expect("quarantined");
    assert_eq!(
        reason,
        "malspam-milter: score 12; scan.error (+12): marker: test marker in the body of \"hello\""
    );
    milter.stop().await;
}

#[tokio::test]
async fn observe_mode_tags_instead_of_quarantining() {
    let milter =
        TestMilter::start(&format!("[policy]\nobserve = true\n{QUARANTINE_ON_MARKER}")).await;
    let body = format!("{MARKER}\r\n");
    let (actions, status) = milter
        .send_one(&Msg {
            body: &body,
            ..Msg::default()
        })
        .await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("tag (observe)")
    );
    assert_eq!(quarantine_reason(&actions), None);
    milter.stop().await;
}

#[tokio::test]
async fn reject_answers_5xx_with_the_configured_text() {
    let config = format!(
        "[policy]\nreject = 12.0\nreject_message = \"Malspam refused, see your postmaster\"\n{QUARANTINE_ON_MARKER}"
    );
    let milter = TestMilter::start(&config).await;
    let body = format!("{MARKER}\r\n");
    let (actions, status) = milter
        .send_one(&Msg {
            body: &body,
            ..Msg::default()
        })
        .await;
    assert_eq!(
        status,
        Status::Reject {
            message: Some(c"550 5.7.1 Malspam refused, see your postmaster".into())
        }
    );
    assert!(actions.actions.is_empty(), "{actions:?}");
    milter.stop().await;
}

#[tokio::test]
async fn forged_verdict_headers_are_deleted() {
    let milter = TestMilter::start("").await;
    let msg = Msg {
        headers: &[
            ("X-Malspam-Verdict", "accept"),
            ("From", "Alice <alice@sender.example>"),
            ("x-malspam-verdict", "accept"),
            ("X-MALSPAM-Score", "-100"),
            ("Subject", "hello"),
        ],
        ..Msg::default()
    };
    let (actions, status) = milter.send_one(&msg).await;
    assert_eq!(status, Status::Continue);
    // Each occurrence deleted by its index, the later one first.
    let deleted: Vec<(String, i32)> = actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::DeleteHeader { name, index } => {
                Some((name.to_string_lossy().into_owned(), *index))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        [
            ("X-MALSPAM-Score".to_string(), 1),
            ("x-malspam-verdict".to_string(), 2),
            ("X-Malspam-Verdict".to_string(), 1),
        ]
    );
    // Deletions come before our own headers are added.
    let first_add = actions
        .actions
        .iter()
        .position(|a| matches!(a, EomAction::AddHeader { .. }))
        .unwrap();
    assert_eq!(first_add, 3);
    assert_eq!(added(&actions, "X-Malspam-Score").as_deref(), Some("0"));
    // The scanned message is the one delivered: without the forged headers.
    let seen = milter.seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["From", "Subject"]);
    milter.stop().await;
}

#[tokio::test]
async fn oversize_message_is_tagged_not_dropped() {
    let milter = TestMilter::start("[milter]\nmax_message_size = 1000\n").await;
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    let body = "All work and no play makes Jack a dull boy.\r\n".repeat(100);
    let msg = Msg {
        body: &body,
        ..Msg::default()
    };
    // The MTA offered SKIP: past the limit the milter asks it to stop the body.
    listens(conn.mail([msg.from]).await.unwrap());
    listens(conn.rcpt([msg.rcpts[0]]).await.unwrap());
    for (name, value) in msg.headers {
        conn.header(*name, *value).await.unwrap();
    }
    conn.eoh().await.unwrap();
    assert_eq!(conn.body(body.clone()).await.unwrap(), Status::Skip);
    conn.macros(MacroStage::Eom, [("i", "BIG1")]).await.unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    assert_eq!(added(&actions, "X-Malspam-Verdict").as_deref(), Some("tag"));
    let found = findings(&actions);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("scan.too_large (+0): not scanned: too large"),
        "{found:?}"
    );
    assert!(found[0].contains("max_message_size = 1000"), "{found:?}");
    assert!(quarantine_reason(&actions).is_none());
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn a_panicking_detector_does_not_take_the_milter_down() {
    let milter = TestMilter::start("").await;
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    let body = format!("{PANIC}\r\n");
    let (actions, status) = send(
        &mut conn,
        &Msg {
            body: &body,
            ..Msg::default()
        },
    )
    .await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        findings(&actions),
        ["scan.error (+0): panicking: internal error (a panic)"]
    );
    // The same connection carries the next message normally.
    let (actions, status) = send(&mut conn, &Msg::default()).await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn the_core_gets_the_envelope_and_the_message_as_received() {
    let milter = TestMilter::start("").await;
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    conn.macros(MacroStage::Mail, [("{auth_authen}", "alice")])
        .await
        .unwrap();
    let msg = Msg {
        queue_id: "9F00D1",
        rcpts: &["<bob@rcpt.example>", "<carol@rcpt.example>"],
        headers: &[
            ("Received", "from a.example\n\tby b.example"),
            ("From", "Alice <alice@sender.example>"),
            ("Received", "from c.example"),
            ("Subject", "hello"),
        ],
        body: "line one\r\nline two\r\n",
        ..Msg::default()
    };
    let (_, status) = send(&mut conn, &msg).await;
    assert_eq!(status, Status::Continue);
    let seen = milter.seen.lock().unwrap().clone();
    let env = seen.envelope.unwrap();
    assert_eq!(env.client_addr, Some("192.0.2.25".parse().unwrap()));
    assert_eq!(env.client_name.as_deref(), Some("client.sender.example"));
    assert_eq!(env.helo.as_deref(), Some("client.sender.example"));
    assert_eq!(env.mail_from.as_deref(), Some("alice@sender.example"));
    assert_eq!(env.rcpt_to, ["bob@rcpt.example", "carol@rcpt.example"]);
    assert_eq!(env.auth_user.as_deref(), Some("alice"));
    assert_eq!(env.queue_id.as_deref(), Some("9F00D1"));
    // Order and duplicates kept; folding unfolded by the view.
    let headers: Vec<(&str, &str)> = seen
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.trim()))
        .collect();
    assert_eq!(headers[0].0, "Received");
    assert!(headers[0].1.starts_with("from a.example"), "{headers:?}");
    assert!(headers[0].1.ends_with("by b.example"), "{headers:?}");
    assert_eq!(headers[2], ("Received", "from c.example"));
    assert_eq!(headers.len(), 4);
    assert_eq!(seen.body, "line one\r\nline two\r\n");
    // "Received: from a.example\r\n\tby b.example\r\n" ... + CRLF + body.
    let expected_size = [
        "Received: from a.example\r\n\tby b.example\r\n",
        "From: Alice <alice@sender.example>\r\n",
        "Received: from c.example\r\n",
        "Subject: hello\r\n",
        "\r\n",
        "line one\r\nline two\r\n",
    ]
    .concat()
    .len();
    assert_eq!(seen.size, expected_size);
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn negotiation_requests_only_what_is_used() {
    let milter = TestMilter::start("").await;
    let conn = milter.open().await;
    assert_eq!(
        conn.negotiated_actions(),
        Actions::ADD_HEADER | Actions::CHANGE_HEADER | Actions::QUARANTINE
    );
    let macros = conn.requested_macros();
    let get = |stage| macros.get(&stage).map(|m| m.to_str().unwrap());
    assert_eq!(get(MacroStage::Mail), Some("{auth_authen}"));
    assert_eq!(get(MacroStage::Eoh), Some("i"));
    assert_eq!(get(MacroStage::Eom), Some("i"));
    assert_eq!(macros.len(), 3);
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn an_mta_without_quarantine_is_refused_unless_observing() {
    let milter = TestMilter::start("").await;
    let refused = TestConnection::configure()
        .available_actions(Actions::ADD_HEADER | Actions::CHANGE_HEADER)
        .open_tcp(milter.addr)
        .await;
    assert!(refused.is_err(), "negotiation must fail");
    milter.stop().await;

    let milter = TestMilter::start("[policy]\nobserve = true\n").await;
    let conn = TestConnection::configure()
        .available_actions(Actions::ADD_HEADER | Actions::CHANGE_HEADER)
        .open_tcp(milter.addr)
        .await
        .expect("observe mode never quarantines");
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn bad_input_closes_that_connection_only() {
    let milter = TestMilter::start("").await;
    let mut good = milter.open().await;
    handshake(&mut good).await;

    // A length-prefixed packet with an unknown command byte.
    let mut bad = tokio::net::TcpStream::connect(milter.addr).await.unwrap();
    bad.write_all(&[0, 0, 0, 3, b'~', 1, 2]).await.unwrap();
    let mut buf = [0u8; 64];
    let n = bad.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "the milter closes a connection that speaks nonsense");

    // The connection opened before, and new ones, are still served.
    let (actions, _) = send(&mut good, &Msg::default()).await;
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
    let mut again = milter.open().await;
    handshake(&mut again).await;
    let (actions, _) = send(&mut again, &Msg::default()).await;
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
    good.close().await.unwrap();
    again.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn subject_prefix_and_spam_compat_headers() {
    let config =
        format!("[headers]\nspam_compat = true\nsubject_prefix = \"[MALSPAM?]\"\n{TAG_ON_MARKER}");
    let milter = TestMilter::start(&config).await;
    let body = format!("{MARKER}\r\n");
    let msg = Msg {
        headers: &[("X-Spam-Flag", "NO"), ("Subject", "Invoice 42")],
        body: &body,
        ..Msg::default()
    };
    let (actions, _) = milter.send_one(&msg).await;
    assert!(actions.has_delete_header("X-Spam-Flag", 1), "{actions:?}");
    assert_eq!(added(&actions, "X-Spam-Flag").as_deref(), Some("YES"));
    assert!(
        actions.has_change_header("Subject", 1, "[MALSPAM?] Invoice 42"),
        "{actions:?}"
    );
    milter.stop().await;
}

#[tokio::test]
async fn a_scan_over_its_time_budget_is_tagged_not_fully_scanned() {
    // Budget: scan_timeout_secs (1 s) plus the milter's grace period (5 s).
    // Scans in the pool are the ones with a budget the milter enforces; a
    // small text message would otherwise be scanned inline.
    let milter =
        TestMilter::start("[milter]\ninline_scan_max_bytes = 0\n[limits]\nscan_timeout_secs = 1\n")
            .await;
    let body = format!("{SLOW}\r\n");
    let (actions, status) = milter
        .send_one(&Msg {
            body: &body,
            ..Msg::default()
        })
        .await;
    assert_eq!(status, Status::Continue);
    assert_eq!(added(&actions, "X-Malspam-Verdict").as_deref(), Some("tag"));
    assert_eq!(
        findings(&actions),
        ["scan.limit (+0): not fully scanned: the scan did not finish within 6 s"]
    );
    milter.stop().await;
}

#[tokio::test]
async fn allowlisted_mail_is_not_tagged_even_when_too_large() {
    let milter = TestMilter::start(
        "[milter]\nmax_message_size = 1000\n[allowlist]\nsenders = [\"sender.example\"]\n",
    )
    .await;
    let body = format!("{MARKER}\r\n").repeat(100);
    let (actions, status) = milter
        .send_one(&Msg {
            body: &body,
            ..Msg::default()
        })
        .await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
    assert!(findings(&actions).is_empty());
    milter.stop().await;
}
