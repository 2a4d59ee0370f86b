//! `malspam-milter check`: the scan core over files, with the policy's verdict.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::input::{self, InputMessage, Walked};
use crate::report::{round2, Finding, Report, Verdict};
use crate::sanitize::escape_controls;
use crate::{Engine, Envelope};

/// Exit codes: 0 all read; 1 `--fail-on` matched; 2 some input unreadable.
pub const EXIT_UNREADABLE: i32 = 2;
pub const EXIT_FAIL_ON: i32 = 1;

#[derive(Serialize)]
struct JsonLine<'a> {
    file: &'a str,
    verdict: Verdict,
    score: f64,
    findings: Vec<JsonFinding<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowlisted: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    detector: &'a str,
    rule: &'a str,
    score: f64,
    /// One line without control or bidi characters, like the headers.
    evidence: String,
}

impl<'a> From<&'a Finding> for JsonFinding<'a> {
    fn from(f: &'a Finding) -> Self {
        JsonFinding {
            detector: f.detector,
            rule: f.rule,
            score: round2(f.score),
            evidence: crate::sanitize::one_line(&f.evidence),
        }
    }
}

/// Scan every message under `paths`, print one result each, return the exit code.
pub fn run(engine: &Engine, paths: &[PathBuf], json: bool, fail_on: Option<Verdict>) -> i32 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut unreadable = 0usize;
    let mut failed = false;
    let mut scanned = 0usize;
    let mut skipped: Vec<String> = Vec::new();
    input::walk_all(paths, |item| match item {
        Walked::Skipped(label) => skipped.push(label),
        Walked::Message(InputMessage { label, bytes }) => {
            scanned += 1;
            let report = engine.scan(Envelope::default(), &bytes);
            if fail_on.is_some_and(|v| report.verdict >= v) {
                failed = true;
            }
            let _ = print_report(&mut out, &label, &report, json);
        }
        Walked::Error(e) => {
            unreadable += 1;
            eprintln!("malspam-milter: {}: {}", escape_controls(&e.label), e.error);
        }
    });
    let _ = out.flush();
    if !json {
        eprintln!("{}", summary(scanned, unreadable, &skipped));
    }
    if unreadable > 0 {
        EXIT_UNREADABLE
    } else if failed {
        EXIT_FAIL_ON
    } else {
        0
    }
}

/// The last line of `check`: every message and every file accounted for.
fn summary(scanned: usize, unreadable: usize, skipped: &[String]) -> String {
    let mut line = format!("{scanned} message(s) scanned, {unreadable} unreadable");
    match skipped {
        [] => {}
        [one] => line.push_str(&format!(", 1 file skipped (not mail: {one})")),
        [first, rest @ ..] => line.push_str(&format!(
            ", {} files skipped (not mail: {first} and {} more)",
            skipped.len(),
            rest.len()
        )),
    }
    line
}

fn print_report(
    out: &mut impl Write,
    label: &str,
    report: &Report,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let line = JsonLine {
            file: label,
            verdict: report.verdict,
            score: round2(report.score),
            findings: report.findings.iter().map(JsonFinding::from).collect(),
            subject: None,
            allowlisted: report.allowlisted.as_deref(),
        };
        let json = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        writeln!(out, "{}", crate::sanitize::json_escape_controls(&json))
    } else {
        let observe = if report.observed_only {
            " (observe)"
        } else {
            ""
        };
        writeln!(
            out,
            "{}: {}{observe} score {}",
            escape_controls(label),
            report.verdict,
            round2(report.score)
        )?;
        for line in report.finding_lines() {
            writeln!(out, "    {}", escape_controls(&line))?;
        }
        Ok(())
    }
}
