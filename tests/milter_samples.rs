//! The bundled sample messages through the milter (real detectors, real
//! MIME): the milter, which rebuilds each message from the header fields
//! and body chunks the MTA sends, must reach the same verdict, score and
//! findings as scanning the file directly (what `check` does).

mod common;

use common::*;
use indymilter_test::{MacroStage, Status};
use malspam_milter::headers::{parse_verdict_headers, verdict_headers};
use malspam_milter::{Config, Engine, Envelope};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples");

/// Header fields as an MTA passes them: name, value without the one space
/// after the colon, folded lines joined by LF; then the body.
fn split_message(raw: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let text = raw;
    let end = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| {
            text.windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, p + 2))
        })
        .expect("a header/body separator");
    let head = String::from_utf8_lossy(&text[..end.0]).replace("\r\n", "\n");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("continuation after a field");
            last.1.push('\n');
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("a header field");
            fields.push((
                name.to_string(),
                value.strip_prefix(' ').unwrap_or(value).to_string(),
            ));
        }
    }
    // The MTA sends the body with CRLF line endings.
    let body = String::from_utf8_lossy(&text[end.1..])
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    (fields, body.into_bytes())
}

#[tokio::test]
async fn samples_get_the_same_verdict_through_the_milter_as_from_the_file() {
    let mut files: Vec<_> = std::fs::read_dir(SAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "samples/ has its messages: {files:?}");

    let direct = Engine::new(Config::default()).unwrap();
    let milter = TestMilter::start("").await;
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    let mut verdicts = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let raw = std::fs::read(path).unwrap();
        let (fields, body) = split_message(&raw);
        let queue_id = format!("SAMPLE{i}");
        listens(conn.mail(["<sender@sample.example>"]).await.unwrap());
        conn.rcpt(["<rcpt@sample.example>"]).await.unwrap();
        for (name, value) in &fields {
            conn.header(name.as_str(), value.as_str()).await.unwrap();
        }
        conn.eoh().await.unwrap();
        for chunk in body.chunks(65535) {
            conn.body(chunk.to_vec()).await.unwrap();
        }
        conn.macros(MacroStage::Eom, [("i", queue_id.as_str())])
            .await
            .unwrap();
        let (actions, status) = conn.eom().await.unwrap();
        assert_eq!(status, Status::Continue, "{}", path.display());

        let envelope = Envelope {
            mail_from: Some("sender@sample.example".into()),
            rcpt_to: vec!["rcpt@sample.example".into()],
            ..Envelope::default()
        };
        let expected = direct.scan(envelope, &raw);
        let config = Config::default();
        let want: Vec<(String, String)> =
            verdict_headers(&expected, &config.headers, config.policy.tag)
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
        let got: Vec<(String, String)> = actions
            .actions
            .iter()
            .filter_map(|a| match a {
                indymilter_test::EomAction::AddHeader { name, value } => Some((
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )),
                _ => None,
            })
            .collect();
        let parsed = |h: &[(String, String)]| {
            parse_verdict_headers(h.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        };
        assert_eq!(parsed(&got), parsed(&want), "{}", path.display());
        assert_eq!(
            quarantine_reason(&actions).is_some(),
            expected.verdict == malspam_milter::Verdict::Quarantine,
            "{}",
            path.display()
        );
        verdicts.push(expected.verdict);
    }
    // The samples are chosen to show more than one verdict.
    verdicts.sort();
    verdicts.dedup();
    assert!(verdicts.len() >= 2, "{verdicts:?}");
    conn.close().await.unwrap();
    milter.stop().await;
}
