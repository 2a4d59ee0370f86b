//! The one trait every detector implements. A detector looks at the shared
//! message view and reports hits with evidence; it never scores or decides.

use crate::view::MessageView;

/// A rule a detector can emit, declared before it emits anything, so the
/// policy can check config against it and `config check` can list it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleInfo {
    /// The rule's short name within its detector, e.g. `autoexec`.
    pub name: &'static str,
    pub description: &'static str,
    pub default_score: f64,
}

/// A rule that fired, with the evidence a reviewer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: &'static str,
    pub evidence: String,
}

impl Hit {
    pub fn new(rule: &'static str, evidence: impl Into<String>) -> Self {
        Hit {
            rule,
            evidence: evidence.into(),
        }
    }
}

/// An error a detector could not recover from; it becomes a `scan.error`
/// finding (its text is the evidence).
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// The state store failed (the detector needed what it remembers).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

impl DetectorError {
    pub fn new(msg: impl Into<String>) -> Self {
        DetectorError::Other(msg.into())
    }
}

/// Shared state a detector may consult while inspecting one message.
pub struct ScanContext<'a> {
    /// `[limits]`: what a detector may spend on one message.
    pub limits: &'a crate::config::Limits,
    /// What the store remembers of earlier mail, read in the lookup stage
    /// from every detector's [`Detector::reads`]. Its errors are the
    /// detector's to report (as a `DetectorError`, which becomes
    /// `scan.error`): never block mail.
    pub lookup: &'a crate::store::Lookup,
    /// The message's deadline and decompression budget, shared with the
    /// view: every byte a detector inflates is drawn from it, and loops
    /// over parts stop when it has expired.
    pub budget: &'a crate::formats::Budget,
    /// The scan's "now" (Unix seconds), from the engine's clock: never a
    /// date the message itself claims.
    pub now: i64,
    /// The message's List-Id when it is a post to a mailing list the
    /// organisation knows (`store::lists`); None for any other mail, with
    /// or without a List-Id header.
    pub known_list: Option<&'a str>,
    /// Where a detector proposes what should change once the verdict is
    /// made (store writes, ...): detectors never write themselves.
    pub effects: &'a crate::effects::Proposals,
}

pub trait Detector: Send + Sync {
    /// The detector's name, the prefix of its rules and its config section.
    fn name(&self) -> &'static str;

    /// Every rule this detector can emit.
    fn rules(&self) -> &'static [RuleInfo];

    /// Stage 1, the lookup: the store keys this detector will read for
    /// `message`. The engine asks the store for every detector's keys at
    /// once and hands the answer to [`Detector::inspect`] as
    /// `ctx.lookup`; reading a key not declared here is an error.
    fn reads(&self, _message: &MessageView, _reads: &mut crate::store::Reads) {}

    /// Inspect one message and push hits. Hits on rules not declared in
    /// `rules()` are a programming error and are reported as `scan.error`.
    fn inspect(
        &self,
        message: &MessageView,
        ctx: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError>;
}

/// Running one detector the way the engine does, for unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Detector, Hit, ScanContext};
    use crate::store::{Lookup, MemoryStore, Reads, Store};

    /// Inspect `raw` with `detector` against an empty store and the
    /// default limits; the hits, or a panic on a detector error.
    pub(crate) fn inspect(detector: &dyn Detector, raw: &[u8]) -> Vec<Hit> {
        let limits = crate::config::Limits::default();
        let budget = limits.budget();
        let view = crate::view::MessageView::build(
            crate::Envelope::default(),
            raw,
            &limits,
            budget.deadline(),
        );
        let mut reads = Reads::default();
        detector.reads(&view, &mut reads);
        let lookup = Lookup::answered(MemoryStore::new().read(&reads).expect("memory store"));
        let proposals = crate::effects::Proposals::default();
        let ctx = ScanContext {
            limits: &limits,
            lookup: &lookup,
            budget: &budget,
            now: 0,
            known_list: None,
            effects: &proposals,
        };
        let mut hits = Vec::new();
        detector
            .inspect(&view, &ctx, &mut hits)
            .expect("the detector failed");
        hits
    }
}
