//! The verdict headers a reviewer reads: X-Malspam-Verdict, -Score, -Findings,
//! and optionally SpamAssassin-compatible X-Spam-Flag / X-Spam-Status and a
//! Subject prefix, so existing filters sort tagged mail.

use crate::config::HeadersConfig;
use crate::report::{round2, Report, Verdict};

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
    let flagged = report.verdict >= Verdict::Tag;
    let mut out = Vec::new();
    if flagged || config.on_accept {
        let mut verdict = report.verdict.to_string();
        if report.observed_only {
            verdict.push_str(" (observe)");
        }
        out.push((VERDICT, verdict));
        out.push((SCORE, format!("{}", round2(report.score))));
        if !report.findings.is_empty() {
            out.push((FINDINGS, fold_findings(&report.finding_lines())));
        }
    }
    if config.spam_compat {
        out.push((SPAM_FLAG, if flagged { "YES" } else { "NO" }.to_string()));
        let mut tests: Vec<String> = Vec::new();
        for rule in report.findings.iter().map(|f| f.full_rule()) {
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
        out.push((
            SPAM_STATUS,
            fold_line(&status, FOLD_WIDTH - SPAM_STATUS.len() - 2),
        ));
    }
    out
}

/// The new Subject for flagged mail when a prefix is configured and not
/// already there; None to leave the Subject alone.
pub fn prefixed_subject(report: &Report, config: &HeadersConfig, subject: &str) -> Option<String> {
    let prefix = config.subject_prefix.trim();
    if prefix.is_empty()
        || report.verdict < Verdict::Tag
        || subject.trim_start().starts_with(prefix)
    {
        return None;
    }
    Some(if subject.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix} {subject}")
    })
}

/// One finding per line; long lines folded at spaces (RFC 5322 2.2.3).
pub fn fold_findings(lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\t");
        }
        out.push_str(&fold_line(line, FOLD_WIDTH - FINDINGS.len() - 2));
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
    // Bytes, not a str slice: the name may hold multibyte characters.
    let starts = |p: &str| {
        name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    starts(OWN_PREFIX)
        || (config.spam_compat
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
            verdict = Some(value.trim().to_string());
        } else if name.eq_ignore_ascii_case(SCORE) {
            score = Some(value.trim().to_string());
        } else if name.eq_ignore_ascii_case(FINDINGS) {
            findings = unfold_findings(value);
        }
    }
    Some((verdict?, score.unwrap_or_default(), findings))
}

/// Undo `fold_findings`: continuation lines (indented deeper) join their
/// finding; each other line is a finding.
pub fn unfold_findings(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in value.split('\n') {
        let line = line.trim_end_matches('\r');
        let content = line.trim_start();
        if content.is_empty() {
            continue;
        }
        let is_continuation = line.starts_with("\t  ") || line.starts_with("   ");
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

    fn report(verdict: Verdict) -> Report {
        Report {
            verdict,
            score: 12.5,
            findings: vec![
                Finding {
                    detector: "office_macro".into(),
                    rule: "autoexec".into(),
                    score: 8.0,
                    evidence: "invoice.doc: Document_Open, Shell".into(),
                },
                Finding {
                    detector: "display_name".into(),
                    rule: "directory_person".into(),
                    score: 4.5,
                    evidence: "\"Taro Yamada\" is taro@example.co.jp in the directory, sent from x@unrelated.example with a long tail of words".into(),
                },
            ],
            observed_only: false,
            allowlisted: None,
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
                detector: "office_macro".into(),
                rule: rule.into(),
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

    #[test]
    fn own_headers() {
        let cfg = HeadersConfig::default();
        assert!(is_own_header("x-malspam-verdict", &cfg));
        assert!(is_own_header("X-Malspam-Anything", &cfg));
        assert!(!is_own_header("X-Spam-Flag", &cfg));
    }
}
