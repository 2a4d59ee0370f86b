//! The result of a scan: findings with evidence, their summed score, and the verdict.

use serde::Serialize;
use std::fmt;

/// What the policy decided for a message, from mildest to strongest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Tag,
    Quarantine,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Tag => "tag",
            Verdict::Quarantine => "quarantine",
            Verdict::Reject => "reject",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scored observation about a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The detector that made it, e.g. `office_macro` (or `scan` for the core itself).
    pub detector: &'static str,
    /// The rule within that detector, e.g. `autoexec`.
    pub rule: &'static str,
    /// The score the policy gave it (after overrides).
    pub score: f64,
    /// Human-readable, short and specific: file names, keywords, addresses.
    pub evidence: String,
}

impl Finding {
    /// `detector.rule`, the name used in config and headers.
    pub fn full_rule(&self) -> String {
        format!("{}.{}", self.detector, self.rule)
    }
}

/// Everything a front end needs to act on a message and explain why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub score: f64,
    pub findings: Vec<Finding>,
    /// True when the policy wanted more than `tag` but `observe = true` held it back.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub observed_only: bool,
    /// Set when an allowlist entry let the message through unscanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowlisted: Option<String>,
    /// What the scan proposes to change (counts, holds, memory); the front
    /// end decides whether to apply them (`Engine::commit`).
    #[serde(skip)]
    pub effects: Vec<crate::effects::Effect>,
}

impl Report {
    /// Findings as `detector.rule (+score): evidence`, the form used in headers and logs.
    pub fn finding_lines(&self) -> Vec<String> {
        self.findings
            .iter()
            .map(|f| format!("{} ({:+}): {}", f.full_rule(), round2(f.score), f.evidence))
            .collect()
    }

    /// One log line (without the queue id prefix).
    pub fn log_summary(&self) -> String {
        let mut line = format!("verdict={} score={}", self.verdict, round2(self.score));
        if self.observed_only {
            line.push_str(" observe=true");
        }
        if let Some(why) = &self.allowlisted {
            line.push_str(&format!(" allowlisted=\"{why}\""));
        }
        if !self.findings.is_empty() {
            let names: Vec<String> = self
                .findings
                .iter()
                .map(|f| format!("{}({:+})", f.full_rule(), round2(f.score)))
                .collect();
            line.push_str(&format!(" findings={}", names.join(",")));
        }
        line
    }
}

/// Scores are printed with at most two decimals: `8`, `2.5`, `0.33`.
pub fn round2(x: f64) -> f64 {
    // `+ 0.0` turns a negative zero into zero, so nothing prints "-0".
    (x * 100.0).round() / 100.0 + 0.0
}
