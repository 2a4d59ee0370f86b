//! Issue "fail closed, stay up": crafted messages that once crashed the
//! scanner, slipped past it unscanned, or were judged `accept` after an
//! internal error. Each test builds the attack first, then checks that the
//! message gets a verdict of at least `tag` with evidence, and that the
//! process is still standing.

use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

fn scan(raw: &[u8]) -> Report {
    Engine::new(Config::default())
        .unwrap()
        .scan(Envelope::default(), raw)
}

fn rules(report: &Report) -> Vec<String> {
    report.findings.iter().map(|f| f.full_rule()).collect()
}

/// `levels` of un-encoded `message/rfc822` nesting, optionally with an
/// encoded (base64) leaf at the bottom.
fn nested_messages(levels: usize, encoded_leaf: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(levels * 40 + 200);
    out.extend_from_slice(b"From: a@sender.example\r\nTo: b@rcpt.example\r\nSubject: deep\r\n");
    for _ in 0..levels {
        out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    if encoded_leaf {
        out.extend_from_slice(
            b"Content-Type: application/octet-stream; name=\"x.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nUEsDBAo=\r\n",
        );
    } else {
        out.extend_from_slice(b"Subject: bottom\r\n\r\nhello\r\n");
    }
    out
}

#[test]
fn sixty_thousand_levels_of_nesting_get_a_verdict() {
    for encoded in [false, true] {
        let report = scan(&nested_messages(60_000, encoded));
        assert!(report.verdict >= Verdict::Tag, "{:?}", report.findings);
        assert!(rules(&report).iter().any(|r| r == "scan.limit"), "{:?}", report.findings);
    }
}

#[test]
fn two_hundred_thousand_levels_of_nesting_get_a_verdict() {
    for encoded in [false, true] {
        let report = scan(&nested_messages(200_000, encoded));
        assert!(report.verdict >= Verdict::Tag, "{:?}", report.findings);
        assert!(rules(&report).iter().any(|r| r == "scan.limit"), "{:?}", report.findings);
    }
}
