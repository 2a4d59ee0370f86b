//! Issue 12, item 9: attacker text in evidence never reaches a header raw.
//! The real milter over a socket (indymilter-test plays the MTA), with a
//! detector whose evidence carries CR/LF (a header injection attempt), NUL,
//! ESC, RLO, Japanese text and a 2,000-character token. Evidence that
//! reaches the header writer raw (as limit messages and panic texts once
//! did) is covered by the unit tests in src/headers.rs.

mod common;

use common::*;
use indymilter_test::{EomAction, EomActions, MacroStage, Status, TestConnection};
use malspam_milter::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use malspam_milter::sanitize;
use malspam_milter::view::MessageView;

const ERROR_MARK: &str = "EVIL-EVIDENCE-ERROR";
const PANIC_MARK: &str = "EVIL-EVIDENCE-PANIC";
const LONG_MARK: &str = "EVIL-EVIDENCE-LONG";

fn hostile() -> String {
    "請求書の送付について invoice\u{202E}fdp.exe\r\nX-Injected: yes\0 \u{1b}[31mred\u{1b}[0m \
     \u{9b}2J 日本語のテキスト end"
        .to_string()
}

fn long_token() -> String {
    format!("token {} tail", "T".repeat(2000))
}

/// Reports [`hostile`] (or a 2,000-character token) by the paths a
/// detector's text takes into the headers.
struct Evil;

impl Detector for Evil {
    fn name(&self) -> &'static str {
        "evil"
    }
    fn rules(&self) -> &'static [RuleInfo] {
        &[]
    }
    fn inspect(
        &self,
        view: &MessageView,
        _: &ScanContext<'_>,
        _: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        let body = view
            .texts
            .iter()
            .map(|t| t.text.as_str())
            .collect::<String>();
        if body.contains(PANIC_MARK) {
            panic!("{}", hostile());
        }
        if body.contains(ERROR_MARK) {
            return Err(DetectorError::new(hostile()));
        }
        if body.contains(LONG_MARK) {
            return Err(DetectorError::new(long_token()));
        }
        Ok(())
    }
}

fn evil() -> Vec<Box<dyn Detector>> {
    vec![Box::new(Evil)]
}

const TAG_ON_ERROR: &str = "[policy.scores]\n\"scan.error\" = 6.0\n";

/// Every header the milter adds or changes: 7-bit, no control character
/// but folding, lines of at most 78 (so surely 998) bytes, continuation
/// lines only (no injected header), encoded-words at most 75 characters.
fn assert_safe_headers(actions: &EomActions) {
    let mut seen = 0;
    for action in &actions.actions {
        let (name, value) = match action {
            EomAction::AddHeader { name, value } => (name, value),
            EomAction::ChangeHeader { name, value, .. } => (name, value),
            _ => continue,
        };
        seen += 1;
        let name = name.to_str().unwrap();
        let value = value.to_str().expect("header values are ASCII");
        assert!(value.is_ascii(), "{name}: not 7-bit: {value:?}");
        for (i, line) in value.split('\n').enumerate() {
            let width = if i == 0 { name.len() + 2 } else { 0 } + line.len();
            assert!(width <= 78, "{name}: line of {width} bytes: {line:?}");
            assert!(
                !line.chars().any(|c| c.is_control() && c != '\t'),
                "{name}: control character in {line:?}"
            );
            if i > 0 {
                assert!(
                    line.starts_with(['\t', ' ']),
                    "{name}: a new header line: {line:?}"
                );
            }
        }
        for word in value.split_whitespace().filter(|w| w.starts_with("=?")) {
            assert!(word.len() <= 75, "{name}: encoded-word too long: {word}");
        }
    }
    assert!(seen > 0, "no header added: {actions:?}");
}

fn message(body: &str) -> Msg<'_> {
    Msg {
        body,
        ..Msg::default()
    }
}

#[tokio::test]
async fn hostile_evidence_is_7bit_folded_and_decodes_back() {
    let milter = TestMilter::start_with(TAG_ON_ERROR, evil).await;
    let body = format!("Hello\r\n{ERROR_MARK}\r\n");
    let (actions, status) = milter.send_one(&message(&body)).await;
    assert_eq!(status, Status::Continue);
    assert_safe_headers(&actions);
    let findings = findings(&actions);
    assert_eq!(findings.len(), 1, "{findings:?}");
    // The core cleans the error text, the header writer encodes it: the
    // reader gets back exactly the evidence as cleaned, Japanese included.
    let expected = format!(
        "scan.error (+6): {}",
        sanitize::evidence(&format!("evil: {}", sanitize::evidence(&hostile())))
    );
    assert_eq!(findings[0], expected);
    assert!(findings[0].contains("請求書の送付について"));
    assert!(findings[0].contains("日本語のテキスト end"));
    assert!(findings[0].contains("invoice\\u{202E}fdp.exe"));
    assert!(!findings[0].contains(['\r', '\n', '\0', '\u{1b}', '\u{9b}', '\u{202E}']));
    let raw = added(&actions, "X-Malspam-Findings").unwrap();
    assert!(
        raw.contains("=?UTF-8?B?"),
        "Japanese as encoded-words: {raw}"
    );
    assert!(
        !raw.split('\n').any(|l| l.starts_with("X-Injected")),
        "{raw}"
    );
    milter.stop().await;
}

#[tokio::test]
async fn panic_text_never_reaches_the_header() {
    let milter = TestMilter::start_with(TAG_ON_ERROR, evil).await;
    let body = format!("Hello\r\n{PANIC_MARK}\r\n");
    let (actions, _) = milter.send_one(&message(&body)).await;
    assert_safe_headers(&actions);
    let findings = findings(&actions);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].starts_with("scan.error (+6): evil: internal error"),
        "{findings:?}"
    );
    assert!(!findings[0].contains("請求書"), "{findings:?}");
    milter.stop().await;
}

#[tokio::test]
async fn a_2000_character_token_is_split_and_comes_back_whole() {
    let milter = TestMilter::start_with(TAG_ON_ERROR, evil).await;
    let body = format!("Hello\r\n{LONG_MARK}\r\n");
    let (actions, _) = milter.send_one(&message(&body)).await;
    assert_safe_headers(&actions);
    let findings = findings(&actions);
    // Evidence is bounded (240 characters); what is left of the token is
    // still longer than a header line, and comes back unbroken.
    let expected = format!(
        "scan.error (+6): {}",
        sanitize::evidence(&format!("evil: {}", sanitize::evidence(&long_token())))
    );
    assert_eq!(findings, [expected]);
    assert!(findings[0].contains(&"T".repeat(200)));
    milter.stop().await;
}

#[tokio::test]
async fn a_non_ascii_subject_prefix_is_encoded() {
    let config = format!("{TAG_ON_ERROR}[headers]\nsubject_prefix = \"[要注意]\"\n");
    let milter = TestMilter::start_with(&config, evil).await;
    let body = format!("Hello\r\n{ERROR_MARK}\r\n");
    let msg = Msg {
        body: &body,
        headers: &[
            ("From", "Alice <alice@sender.example>"),
            ("To", "bob@rcpt.example"),
            ("Subject", "請求書\u{1b}[2J"),
        ],
        ..Msg::default()
    };
    let (actions, _) = milter.send_one(&msg).await;
    assert_safe_headers(&actions);
    let subject = actions
        .actions
        .iter()
        .find_map(|a| match a {
            EomAction::ChangeHeader { name, value, .. } if name.to_bytes() == b"Subject" => {
                Some(value.to_str().unwrap().to_string())
            }
            _ => None,
        })
        .expect("Subject changed");
    let unfolded = subject.replace("\n\t  ", " ");
    assert_eq!(sanitize::decode_header(&unfolded), "[要注意] 請求書 [2J");

    // A 7-bit Subject is kept as it is, even when it is an encoded-word.
    let encoded = "=?UTF-8?B?6KuL5rGC5pu4?= no. 12";
    let msg = Msg {
        body: &body,
        headers: &[
            ("From", "Alice <alice@sender.example>"),
            ("Subject", encoded),
        ],
        ..Msg::default()
    };
    let (actions, _) = milter.send_one(&msg).await;
    assert_safe_headers(&actions);
    let subject = actions.actions.iter().find_map(|a| match a {
        EomAction::ChangeHeader { name, value, .. } if name.to_bytes() == b"Subject" => {
            Some(value.to_str().unwrap().replace("\n\t  ", " "))
        }
        _ => None,
    });
    assert_eq!(
        subject.as_deref().map(sanitize::decode_header).as_deref(),
        Some("[要注意] 請求書 no. 12")
    );
    milter.stop().await;
}

/// One authenticated (SASL) submission through the milter.
async fn submit(conn: &mut TestConnection, rcpt: &str, body: &str) -> EomActions {
    conn.macros(MacroStage::Mail, [("{auth_authen}", "alice")])
        .await
        .unwrap();
    listens(conn.mail(["<alice@example.co.jp>"]).await.unwrap());
    listens(conn.rcpt([rcpt]).await.unwrap());
    conn.macros(MacroStage::Eoh, [("i", "4OUT1")])
        .await
        .unwrap();
    for (name, value) in [
        ("From", "Alice <alice@example.co.jp>"),
        ("To", rcpt),
        ("Subject", "report"),
    ] {
        listens(conn.header(name, value).await.unwrap());
    }
    listens(conn.eoh().await.unwrap());
    conn.body(body.as_bytes().to_vec()).await.unwrap();
    conn.eom().await.unwrap().0
}

#[tokio::test]
async fn outbound_mail_to_outsiders_carries_verdict_and_score_only() {
    let config = format!(
        "{TAG_ON_ERROR}[organization]\ndomains = [\"example.co.jp\"]\n\
         [headers]\nspam_compat = true\n"
    );
    let milter = TestMilter::start_with(&config, evil).await;
    let body = format!("Hello\r\n{ERROR_MARK}\r\n");
    let mut conn = milter.open().await;
    handshake(&mut conn).await;

    let outside = submit(&mut conn, "<partner@other.example>", &body).await;
    assert_eq!(added(&outside, "X-Malspam-Verdict").as_deref(), Some("tag"));
    assert_eq!(added(&outside, "X-Malspam-Score").as_deref(), Some("6"));
    assert_eq!(added(&outside, "X-Malspam-Findings"), None);
    let status = added(&outside, "X-Spam-Status").unwrap();
    assert!(!status.contains("scan.error"), "{status}");

    let inside = submit(&mut conn, "<bob@mail.example.co.jp>", &body).await;
    assert_eq!(findings(&inside).len(), 1, "{inside:?}");
    conn.close().await.unwrap();
    milter.stop().await;

    let config = format!("{config}findings_on_outbound_external = true\n");
    let milter = TestMilter::start_with(&config, evil).await;
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    let outside = submit(&mut conn, "<partner@other.example>", &body).await;
    assert_eq!(findings(&outside).len(), 1, "{outside:?}");
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn held_outbound_mail_keeps_its_findings_for_the_reviewer() {
    let config = "[policy.scores]\n\"scan.error\" = 12.0\n\
                  [organization]\ndomains = [\"example.co.jp\"]\n";
    let milter = TestMilter::start_with(config, evil).await;
    let body = format!("Hello\r\n{ERROR_MARK}\r\n");
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    let held = submit(&mut conn, "<partner@other.example>", &body).await;
    assert_eq!(
        added(&held, "X-Malspam-Verdict").as_deref(),
        Some("quarantine")
    );
    assert_eq!(findings(&held).len(), 1, "{held:?}");
    assert_safe_headers(&held);
    conn.close().await.unwrap();
    milter.stop().await;
}
