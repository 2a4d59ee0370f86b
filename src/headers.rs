//! The verdict headers a reviewer reads: X-Malspam-Verdict, -Score, -Findings,
//! and optionally SpamAssassin-compatible X-Spam-Flag / X-Spam-Status and a
//! Subject prefix, so existing filters sort tagged mail.
//!
//! Every value goes through [`crate::sanitize`]: no control or bidi
//! characters, 7-bit (RFC 2047 for non-ASCII), lines of at most 78
//! characters, long tokens split into encoded-words.

use crate::config::{Config, HeadersConfig};
use crate::envelope::Envelope;
use crate::report::{round2, Report, Verdict};
use crate::sanitize::{self, CONTINUATION};

pub const VERDICT: &str = "X-Malspam-Verdict";
pub const SCORE: &str = "X-Malspam-Score";
pub const FINDINGS: &str = "X-Malspam-Findings";
pub const SPAM_FLAG: &str = "X-Spam-Flag";
pub const SPAM_STATUS: &str = "X-Spam-Status";

/// Prefix of every header we own; incoming copies are removed so a sender
/// cannot forge a clean verdict.
pub const OWN_PREFIX: &str = "X-Malspam-";

/// Fold lines at this width where a space allows it.
const FOLD_WIDTH: usize = 78;

/// The headers to add for a report, in order, values folded with `\n\t`
/// (the milter protocol's line ending; the MTA writes CRLF).
pub fn verdict_headers(
    report: &Report,
    config: &HeadersConfig,
    tag_threshold: f64,
) -> Vec<(&'static str, String)> {
    verdict_headers_for(report, config, tag_threshold, true)
}

/// [`verdict_headers`], with the findings (X-Malspam-Findings and the
/// rule names in X-Spam-Status) left out when `findings` is false: mail
/// leaving for outside recipients carries only verdict and score
/// ([`findings_shown`]).
pub fn verdict_headers_for(
    report: &Report,
    config: &HeadersConfig,
    tag_threshold: f64,
    findings: bool,
) -> Vec<(&'static str, String)> {
    let flagged = report.verdict >= Verdict::Tag;
    let mut out = Vec::new();
    if flagged || config.on_accept {
        let mut verdict = report.verdict.to_string();
        if report.observed_only {
            verdict.push_str(" (observe)");
        }
        out.push((VERDICT, verdict));
        out.push((SCORE, format!("{}", round2(report.score))));
        if findings && !report.findings.is_empty() {
            out.push((FINDINGS, fold_findings(&finding_lines(report))));
        }
    }
    if config.spam_compat {
        out.push((SPAM_FLAG, if flagged { "YES" } else { "NO" }.to_string()));
        let mut tests: Vec<String> = Vec::new();
        let shown = if findings { &report.findings[..] } else { &[] };
        for rule in shown.iter().map(|f| f.full_rule()) {
            if !tests.contains(&rule) {
                tests.push(rule);
            }
        }
        let status = format!(
            "{}, score={} required={} tests={}",
            if flagged { "Yes" } else { "No" },
            round2(report.score),
            round2(tag_threshold),
            if tests.is_empty() {
                "none".to_string()
            } else {
                tests.join(",")
            }
        );
        let room = FOLD_WIDTH - SPAM_STATUS.len() - 2;
        let status = sanitize::one_line(&status);
        // Rule names are ASCII identifiers; anything else is encoded.
        let plain = status.is_ascii()
            && !status.contains("=?")
            && status.split([' ', ',']).all(|w| w.len() <= FOLD_WIDTH - 10);
        out.push((
            SPAM_STATUS,
            if plain {
                fold_line(&status, room)
            } else {
                sanitize::encode_header(&status, room)
            },
        ));
    }
    out
}

/// The finding lines as headers write them: evidence cleaned again
/// ([`sanitize::evidence`]), whatever path it came by.
fn finding_lines(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} ({:+}): {}",
                f.full_rule(),
                round2(f.score),
                sanitize::evidence(&f.evidence)
            )
        })
        .collect()
}

/// Whether a message's headers may carry its findings. Findings name
/// attachments, addresses and, on outbound mail, the sender's login and
/// other From addresses: mail submitted by a user (SASL) or sent from
/// `[outbound] internal_networks` to any recipient outside
/// `[organization] domains` gets only verdict and score, unless
/// `[headers] findings_on_outbound_external`. The milter logs the findings
/// it leaves out, and quarantined mail keeps them (the reviewer reads them
/// in the held message).
pub fn findings_shown(config: &Config, envelope: &Envelope) -> bool {
    if config.headers.findings_on_outbound_external {
        return true;
    }
    let submitted = envelope
        .auth_user
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty());
    let internal = envelope.client_addr.is_some_and(|ip| {
        config
            .outbound
            .internal_networks
            .iter()
            .any(|n| n.contains(&ip))
    });
    if !submitted && !internal {
        return true;
    }
    let org = config.org_domains();
    envelope
        .rcpt_to
        .iter()
        .all(|r| is_organization_address(&org, r))
}

/// `<bob@mail.example.jp>` is the organisation's when its domain is one of
/// its domains or below one (by key: an IDN in either form).
fn is_organization_address(org: &crate::domains::OrgDomains, rcpt: &str) -> bool {
    let addr = rcpt.trim().trim_start_matches('<').trim_end_matches('>');
    let Some((_, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    org.covers(domain)
}

/// The new Subject for flagged mail when a prefix is configured and not
/// already there; None to leave the Subject alone. `subject` is the raw
/// header value: kept as it is when it is already 7-bit, free of controls
/// and folded within 998 bytes; otherwise decoded and re-encoded.
pub fn prefixed_subject(report: &Report, config: &HeadersConfig, subject: &str) -> Option<String> {
    let prefix = sanitize::one_line(&config.subject_prefix);
    if prefix.is_empty() || report.verdict < Verdict::Tag {
        return None;
    }
    let decoded = sanitize::decode_header(subject);
    if subject.trim_start().starts_with(&prefix) || decoded.starts_with(&prefix) {
        return None;
    }
    let room = FOLD_WIDTH - "Subject: ".len();
    let encoded_prefix = sanitize::encode_header(&prefix, room);
    if subject.trim().is_empty() {
        return Some(encoded_prefix);
    }
    // Two encoded-words side by side lose the space between them: then
    // the whole Subject is encoded afresh.
    let joins_words = encoded_prefix.ends_with("?=") && subject.trim_start().starts_with("=?");
    Some(if is_safe_raw_value(subject) && !joins_words {
        format!("{encoded_prefix} {}", subject.trim_start())
    } else {
        sanitize::encode_header(&format!("{prefix} {decoded}"), room)
    })
}

/// A raw header value that may be written back unchanged: ASCII, no
/// control characters but folding (a line break followed by a space or
/// tab), no line over 998 bytes.
fn is_safe_raw_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.is_ascii()
        && value.split('\n').all(|l| l.len() <= 998)
        && bytes.iter().enumerate().all(|(i, &b)| match b {
            b'\t' => true,
            b'\r' => bytes.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && matches!(bytes.get(i + 1), Some(b' ' | b'\t')),
            b => !b.is_ascii_control(),
        })
}

/// One finding per line; long lines folded at spaces (RFC 5322 2.2.3),
/// 7-bit ([`sanitize::encode_header`]).
pub fn fold_findings(lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let room = if i == 0 {
            FOLD_WIDTH - FINDINGS.len() - 2
        } else {
            out.push_str("\n\t");
            FOLD_WIDTH - 1
        };
        out.push_str(&sanitize::encode_header(line, room));
    }
    out
}

fn fold_line(line: &str, first_width: usize) -> String {
    let mut out = String::new();
    let mut width = 0;
    let mut limit = first_width;
    for (i, word) in line.split(' ').enumerate() {
        // A long comma-separated list ("tests=a,b,c") may break after a comma.
        let pieces: Vec<&str> = if word.chars().count() > FOLD_WIDTH - 8 {
            word.split_inclusive(',').collect()
        } else {
            vec![word]
        };
        for (j, piece) in pieces.into_iter().enumerate() {
            let w = piece.chars().count();
            let space = i > 0 && j == 0;
            if (i > 0 || j > 0) && width + usize::from(space) + w > limit && width > 0 {
                out.push_str("\n\t  ");
                width = 2;
                limit = FOLD_WIDTH - 8;
            } else if space {
                out.push(' ');
                width += 1;
            }
            out.push_str(piece);
            width += w;
        }
    }
    out
}

/// Headers a sender must not be able to set: ours always, and the
/// SpamAssassin-style ones when we write them.
pub fn is_own_header(name: &str, config: &HeadersConfig) -> bool {
    is_own_header_name(name, config.spam_compat)
}

/// [`is_own_header`] with only what it needs of the config: whether the
/// SpamAssassin-style headers are ours too (`[headers] spam_compat`).
pub fn is_own_header_name(name: &str, spam_compat: bool) -> bool {
    // Bytes, not a str slice: the name may hold multibyte characters.
    let starts = |p: &str| {
        name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    starts(OWN_PREFIX)
        || (spam_compat
            && (name.eq_ignore_ascii_case(SPAM_FLAG) || name.eq_ignore_ascii_case(SPAM_STATUS)))
}

/// Read our headers back from a message's header block (for reviewers'
/// listings): (verdict, score, finding lines), unfolded.
pub fn parse_verdict_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(String, String, Vec<String>)> {
    let (mut verdict, mut score, mut findings) = (None, None, Vec::new());
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(VERDICT) {
            verdict = Some(sanitize::decode_header(value).trim().to_string());
        } else if name.eq_ignore_ascii_case(SCORE) {
            score = Some(sanitize::decode_header(value).trim().to_string());
        } else if name.eq_ignore_ascii_case(FINDINGS) {
            findings = unfold_findings(value);
        }
    }
    Some((verdict?, score.unwrap_or_default(), findings))
}

/// Undo `fold_findings`: continuation lines (indented deeper) join their
/// finding; each other line is a finding; encoded-words (RFC 2047) are
/// decoded. The text is not yet safe for a terminal
/// ([`sanitize::escape_controls`]).
pub fn unfold_findings(value: &str) -> Vec<String> {
    unfold_raw(value)
        .iter()
        .map(|f| sanitize::decode_header(f))
        .collect()
}

fn unfold_raw(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in value.split('\n') {
        let line = line.trim_end_matches('\r');
        let content = line.trim_start();
        if content.is_empty() {
            continue;
        }
        let is_continuation = line.starts_with(CONTINUATION) || line.starts_with("   ");
        match out.last_mut() {
            Some(last) if is_continuation => {
                last.push(' ');
                last.push_str(content);
            }
            _ => out.push(content.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Finding;

    #[test]
    fn organisation_recipients_are_compared_by_key() {
        let mut config = Config::default();
        config.organization.domains = vec!["例え.jp".into(), "gmail.com".into()];
        config.outbound.internal_networks = vec!["192.0.2.0/24".parse().unwrap()];
        let env = |rcpt: &str| Envelope {
            client_addr: Some("192.0.2.7".parse().unwrap()),
            rcpt_to: vec![rcpt.to_string()],
            ..Envelope::default()
        };
        assert!(findings_shown(&config, &env("<bob@mail.xn--r8jz45g.jp>")));
        assert!(findings_shown(&config, &env("<bob@例え。JP.>")));
        assert!(!findings_shown(&config, &env("<bob@例ぇ.jp>")));
        assert!(!findings_shown(
            &config,
            &env("<bob@xn--zz.xn--r8jz45g.jp>")
        ));
        // Free mail is never the organisation's, listed or not.
        assert!(!findings_shown(&config, &env("<bob@gmail.com>")));
    }

    fn report(verdict: Verdict) -> Report {
        Report {
            verdict,
            score: 12.5,
            findings: vec![
                Finding {
                    detector: "office_macro",
                    rule: "autoexec",
                    score: 8.0,
                    evidence: "invoice.doc: Document_Open, Shell".into(),
                },
                Finding {
                    detector: "display_name",
                    rule: "directory_person",
                    score: 4.5,
                    evidence: "\"Taro Yamada\" is taro@example.co.jp in the directory, sent from x@unrelated.example with a long tail of words".into(),
                },
            ],
            observed_only: false,
            allowlisted: None,
            effects: Vec::new(),
        }
    }

    #[test]
    fn one_finding_per_folded_line() {
        let report = report(Verdict::Quarantine);
        let h = verdict_headers(&report, &HeadersConfig::default(), 5.0);
        assert_eq!(h[0], (VERDICT, "quarantine".to_string()));
        assert_eq!(h[1], (SCORE, "12.5".to_string()));
        let v = &h[2].1;
        assert!(
            v.starts_with("office_macro.autoexec (+8): invoice.doc:"),
            "{v}"
        );
        assert_eq!(
            v.matches("\n\td").count(),
            1,
            "second finding on its own line: {v}"
        );
        for line in v.split('\n') {
            assert!(line.chars().count() <= 78, "line too long: {line:?}");
        }
        // Reading the header back gives exactly the finding lines.
        assert_eq!(unfold_findings(v), report.finding_lines());
        let parsed = parse_verdict_headers(h.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
        assert_eq!(
            parsed,
            ("quarantine".into(), "12.5".into(), report.finding_lines())
        );
    }

    #[test]
    fn spam_compat_and_subject_prefix() {
        let cfg = HeadersConfig {
            on_accept: false,
            spam_compat: true,
            subject_prefix: "[SUSPICIOUS]".into(),
            ..HeadersConfig::default()
        };
        let h = verdict_headers(&report(Verdict::Tag), &cfg, 5.0);
        let flag = h.iter().find(|(n, _)| *n == SPAM_FLAG).unwrap();
        assert_eq!(flag.1, "YES");
        let status = h.iter().find(|(n, _)| *n == SPAM_STATUS).unwrap();
        for line in status.1.split('\n') {
            assert!(
                line.chars().count() <= 78,
                "X-Spam-Status line too long: {line:?}"
            );
        }
        assert_eq!(
            status.1.replace("\n\t  ", " "),
            "Yes, score=12.5 required=5 tests=office_macro.autoexec,display_name.directory_person"
        );
        assert_eq!(
            prefixed_subject(&report(Verdict::Tag), &cfg, "Invoice").as_deref(),
            Some("[SUSPICIOUS] Invoice")
        );
        assert_eq!(
            prefixed_subject(&report(Verdict::Tag), &cfg, "[SUSPICIOUS] Invoice"),
            None
        );
        assert_eq!(
            prefixed_subject(&report(Verdict::Accept), &cfg, "Invoice"),
            None
        );

        let mut clean = report(Verdict::Accept);
        clean.findings.clear();
        let h = verdict_headers(&clean, &cfg, 5.0);
        let names: Vec<&str> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [SPAM_FLAG, SPAM_STATUS],
            "on_accept = false: no X-Malspam headers on clean mail"
        );
        assert!(is_own_header("x-spam-flag", &cfg));
        assert!(!is_own_header("x-spam-flag", &HeadersConfig::default()));
    }

    #[test]
    fn long_test_lists_fold_after_commas() {
        let mut r = report(Verdict::Quarantine);
        for rule in ["suspicious", "autoexec", "present", "renamed", "xlm"] {
            r.findings.push(Finding {
                detector: "office_macro",
                rule,
                score: 1.0,
                evidence: "x".into(),
            });
        }
        let cfg = HeadersConfig {
            spam_compat: true,
            ..HeadersConfig::default()
        };
        let h = verdict_headers(&r, &cfg, 5.0);
        let status = &h.iter().find(|(n, _)| *n == SPAM_STATUS).unwrap().1;
        assert!(status.contains(",\n\t  "), "folded after a comma: {status}");
        for line in status.split('\n') {
            assert!(line.chars().count() <= 78, "line too long: {line:?}");
        }
        let unfolded = status.replace("\n\t  ", "");
        assert!(unfolded.ends_with("tests=office_macro.autoexec,display_name.directory_person,office_macro.suspicious,office_macro.present,office_macro.renamed,office_macro.xlm"), "{unfolded}");
    }

    /// Evidence that reaches the writer raw (limit messages, zip entry
    /// names, inner Subjects, panic texts once did): the headers are 7-bit,
    /// short-lined, one header each, and read back as the cleaned evidence.
    #[test]
    fn raw_evidence_is_cleaned_and_encoded() {
        let hostile = format!(
            "limits.max_depth: 請求書.zip/\u{202E}fdp.exe\r\nX-Injected: yes\0 \u{1b}[2J {}",
            "T".repeat(2000)
        );
        let mut r = report(Verdict::Tag);
        r.findings[0].evidence = hostile.clone();
        let cfg = HeadersConfig {
            spam_compat: true,
            ..HeadersConfig::default()
        };
        for (name, value) in verdict_headers(&r, &cfg, 5.0) {
            for (i, line) in value.split('\n').enumerate() {
                let width = line.len() + if i == 0 { name.len() + 2 } else { 0 };
                assert!(width <= FOLD_WIDTH, "{name}: {line:?}");
                assert!(line.is_ascii(), "{name}: {line:?}");
                assert!(
                    !line.chars().any(|c| c.is_control() && c != '\t'),
                    "{line:?}"
                );
                assert!(i == 0 || line.starts_with('\t'), "{name}: {line:?}");
            }
            if name == FINDINGS {
                let back = unfold_findings(&value);
                assert_eq!(
                    back[0],
                    format!(
                        "office_macro.autoexec (+8): {}",
                        sanitize::evidence(&hostile)
                    )
                );
                assert!(back[0].contains("請求書.zip/\\u{202E}fdp.exe X-Injected: yes [2J TTTT"));
            }
        }
    }

    #[test]
    fn own_headers() {
        let cfg = HeadersConfig::default();
        assert!(is_own_header("x-malspam-verdict", &cfg));
        assert!(is_own_header("X-Malspam-Anything", &cfg));
        assert!(!is_own_header("X-Spam-Flag", &cfg));
    }
}
