//! The verdict headers a reviewer reads: X-Malspam-Verdict, -Score, -Findings.

use crate::report::{round2, Report};

pub const VERDICT: &str = "X-Malspam-Verdict";
pub const SCORE: &str = "X-Malspam-Score";
pub const FINDINGS: &str = "X-Malspam-Findings";

/// Prefix of every header we own; incoming copies are removed so a sender
/// cannot forge a clean verdict.
pub const OWN_PREFIX: &str = "X-Malspam-";

/// Fold lines at this width where a space allows it.
const FOLD_WIDTH: usize = 78;

/// The headers to add for a report, in order, values folded with `\n\t`
/// (the milter protocol's line ending; the MTA writes CRLF).
pub fn verdict_headers(report: &Report) -> Vec<(&'static str, String)> {
    let mut verdict = report.verdict.to_string();
    if report.observed_only {
        verdict.push_str(" (observe)");
    }
    let mut out = vec![
        (VERDICT, verdict),
        (SCORE, format!("{}", round2(report.score))),
    ];
    if !report.findings.is_empty() {
        out.push((FINDINGS, fold_findings(&report.finding_lines())));
    }
    out
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
        let w = word.chars().count();
        if i > 0 {
            if width + 1 + w > limit && width > 0 {
                out.push_str("\n\t  ");
                width = 2;
                limit = FOLD_WIDTH - 8;
            } else {
                out.push(' ');
                width += 1;
            }
        }
        out.push_str(word);
        width += w;
    }
    out
}

/// True for headers we own (case-insensitive).
pub fn is_own_header(name: &str) -> bool {
    name.len() >= OWN_PREFIX.len() && name[..OWN_PREFIX.len()].eq_ignore_ascii_case(OWN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Finding, Verdict};

    #[test]
    fn one_finding_per_folded_line() {
        let report = Report {
            verdict: Verdict::Quarantine,
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
        };
        let h = verdict_headers(&report);
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
        // Unfolding the continuation lines gives back exactly the finding lines.
        let unfolded = v.replace("\n\t  ", " ");
        let lines: Vec<&str> = unfolded.split("\n\t").collect();
        assert_eq!(lines, report.finding_lines());
    }

    #[test]
    fn own_headers() {
        assert!(is_own_header("x-malspam-verdict"));
        assert!(is_own_header("X-Malspam-Anything"));
        assert!(!is_own_header("X-Spam-Flag"));
    }
}
