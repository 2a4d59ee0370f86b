//! The scan core: envelope + raw bytes in, report out. Knows nothing of milter
//! or files; both front ends call [`Engine::scan`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, ConfigErrors};
use crate::detector::{Detector, Hit, ScanContext};
use crate::detectors::outbound::{holds, notify, Clock};
use crate::effects::{Effect, Proposals, Trip};
use crate::envelope::Envelope;
use crate::policy::{Policy, RawFinding};
use crate::report::{Report, Verdict};
use crate::store::threads::{self, Remembered, Remembrance};
use crate::store::{Lookup, MemoryStore, Reads, Store, StoreError};
use crate::view::MessageView;

/// Config, detectors and policy, built once and shared by every scan.
pub struct Engine {
    config: Arc<Config>,
    detectors: Vec<Box<dyn Detector>>,
    policy: Policy,
    store: Arc<dyn Store>,
    /// Where "now" comes from (Unix seconds).
    clock: Clock,
    /// The organisation's own domains, worked out once (remembering
    /// needs them for every message).
    org_domains: Arc<crate::domains::OrgDomains>,
}

impl Engine {
    /// An engine with an in-memory store (nothing remembered across runs).
    pub fn new(config: Config) -> Result<Engine, ConfigErrors> {
        Engine::with_store(config, Arc::new(MemoryStore::new()))
    }

    /// An engine over the given state store.
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Result<Engine, ConfigErrors> {
        let detectors = crate::detectors::build(&config);
        let policy = Policy::new(&config);
        Ok(Engine {
            org_domains: Arc::new(config.org_domains()),
            config: Arc::new(config),
            detectors,
            policy,
            store,
            clock: Arc::new(crate::store::unix_now),
        })
    }

    /// Record `view` in the thread memory and known correspondents.
    /// Idempotent per Message-ID.
    /// Outbound mail (the organisation's own) is believed whole; inbound
    /// mail only as far as [`threads::Trust`] says.
    pub fn remember(&self, view: &MessageView) -> Result<Remembered, StoreError> {
        let believed =
            crate::detectors::outbound::account_of(&self.config.outbound, &view.envelope).is_some();
        self.remember_as(&Remembrance::of(view), believed)
    }

    /// Remember a message, believed whole (`learn`: mail an admin vouches
    /// for) or as inbound mail.
    pub fn remember_as(
        &self,
        message: &Remembrance,
        believed: bool,
    ) -> Result<Remembered, StoreError> {
        threads::remember(
            self.store.as_ref(),
            message,
            self.config.store.thread_ttl(),
            (self.clock)() as i64,
            &threads::Trust {
                believed,
                org_domains: &self.org_domains,
            },
        )
    }

    /// After the verdict: mail that passes clean is to be remembered.
    /// Tagged or held mail is not, so that a hijack attempt cannot make
    /// its sender a participant of the thread it attacks.
    fn propose_remembering(&self, view: &MessageView, report: &mut Report) {
        if report.verdict == Verdict::Accept {
            let believed =
                crate::detectors::outbound::account_of(&self.config.outbound, &view.envelope)
                    .is_some();
            report.effects.push(Effect::Remember {
                message: Box::new(Remembrance::of(view)),
                believed,
            });
        }
    }

    /// Stage 4: apply what a scan proposed (its report's `effects`): store
    /// writes, the outbound hold (its alert line and notify command), and
    /// remembering. The milter commits every message it scanned; `check`
    /// never does. The verdict is already made: an error here is logged,
    /// never turned into a finding.
    pub fn commit(&self, effects: &[Effect]) {
        let store = self.store.as_ref();
        for effect in effects {
            match effect {
                Effect::Write(writes) => {
                    if let Err(e) = store.write_batch(writes) {
                        tracing::warn!("could not write the outbound counters and identities: {e}");
                    }
                }
                Effect::Hold {
                    account,
                    queue_id,
                    trip,
                } => self.commit_hold(account, queue_id, trip.as_ref()),
                // Not waited for: the store reads, works out and writes
                // it as one step when it can (the embedded store's writer).
                Effect::Remember { message, believed } => {
                    let remembered = threads::remember_later(
                        store,
                        (**message).clone(),
                        self.config.store.thread_ttl(),
                        (self.clock)() as i64,
                        *believed,
                        self.org_domains.clone(),
                    );
                    if let Err(e) = remembered {
                        tracing::warn!(
                            "{}: could not remember the message in the store: {e}",
                            message.log_id
                        );
                    }
                }
            }
        }
    }

    fn commit_hold(&self, account: &str, queue_id: &str, trip: Option<&Trip>) {
        let cfg = &self.config.outbound;
        let now = (self.clock)();
        let outcome = holds::on_message(
            self.store.as_ref(),
            cfg,
            account,
            queue_id,
            trip.map(|t| (t.reason.as_str(), t.counters.as_str())),
            now,
        );
        match outcome {
            Ok(holds::Outcome::Started(episode)) if !cfg.notify_command.is_empty() => {
                let rule = trip.map_or("outbound.rate_exceeded", |t| t.rule);
                match notify::expand(&cfg.notify_command, &episode, rule, cfg.hold_minutes) {
                    // Detached: the commit does not wait for the command.
                    Ok(argv) => drop(notify::spawn(
                        argv,
                        std::time::Duration::from_secs(cfg.notify_timeout_secs),
                        queue_id.to_string(),
                        cfg.notify_max_running,
                    )),
                    Err(e) => {
                        tracing::warn!("{queue_id}: outbound: notify command not run: {e}")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("{queue_id}: outbound: could not update the hold of {account}: {e}")
            }
        }
    }

    /// Scan, then commit what the scan proposed: what the milter does with
    /// each message (tests and benchmarks use it to stand in for it).
    pub fn scan_and_commit(&self, envelope: Envelope, raw: &[u8]) -> Report {
        let report = self.scan(envelope, raw);
        self.commit(&report.effects);
        report
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// An engine with extra detectors, for tests of the pipeline itself.
    pub fn with_detectors(config: Config, extra: Vec<Box<dyn Detector>>) -> Engine {
        let mut engine = Engine::new(config).expect("valid config");
        engine.detectors.extend(extra);
        engine
    }

    /// Read "now" from `clock` (Unix seconds) everywhere the engine needs
    /// it: the envelope stage, detectors, commits. Tests move time.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Replace the detector with the same name. False when there is none
    /// to replace.
    pub fn replace_detector(&mut self, detector: Box<dyn Detector>) -> bool {
        match self
            .detectors
            .iter_mut()
            .find(|d| d.name() == detector.name())
        {
            Some(slot) => {
                *slot = detector;
                true
            }
            None => false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The envelope stage: what is known before any content is read. An
    /// outbound account on hold is held here, apart from the content scan,
    /// so that no timeout, panic or store error in the scan lets its mail
    /// out; and the account's message is counted and its rates judged here
    /// ([`crate::detectors::outbound::account_control`]), so that no content
    /// scan can make it go uncounted. Read-only: the counting and the hold
    /// are effects in the report, committed by the front end.
    pub fn envelope_stage(&self, envelope: &Envelope) -> EnvelopeFindings {
        let mut stage = EnvelopeFindings::default();
        let cfg = &self.config.outbound;
        let Some(account) = crate::detectors::outbound::account_of(cfg, envelope) else {
            return stage;
        };
        let now = (self.clock)();
        let finding = |rule: &'static str, evidence: String| RawFinding {
            detector: "outbound",
            rule,
            evidence: clean_evidence(&evidence),
        };
        let counters_unread = |e: &dyn std::fmt::Display| {
            scan_finding(
                "error",
                format!("outbound: the account's counters could not be read ({e})"),
            )
        };
        // Allowlisted mail passes unscanned and uncounted (a bulk sender
        // the admin vouches for); a hold still holds it.
        let counted = self.policy.allowlisted(envelope).is_none();
        // One read for the hold and the counters.
        let mut reads = Reads::default();
        holds::reads(&account, &mut reads);
        if counted {
            crate::detectors::outbound::control_reads(cfg, &account, envelope, now, &mut reads);
        }
        let state = match self.store.read(&reads) {
            Ok(state) => state,
            Err(e) => {
                stage.findings.extend(
                    self.hold_unknown(&account, &format!("could not be read ({e})"))
                        .findings,
                );
                if counted {
                    stage.findings.push(counters_unread(&e));
                }
                return stage;
            }
        };
        match holds::get_from(&state, &account) {
            Ok(Some(ep)) if ep.active(now) => stage
                .findings
                .push(finding("held", ep.held_evidence(&account))),
            Ok(_) => {}
            Err(e) => stage.findings.extend(
                self.hold_unknown(&account, &format!("could not be read ({e})"))
                    .findings,
            ),
        }
        if !counted {
            return stage;
        }
        match crate::detectors::outbound::account_control(&state, cfg, &account, envelope, now) {
            Ok(control) => {
                stage.findings.extend(
                    control
                        .hits
                        .into_iter()
                        .map(|hit| finding(hit.rule, hit.evidence)),
                );
                stage.effects = control.effects;
            }
            Err(e) => stage.findings.push(counters_unread(&e)),
        }
        stage
    }

    /// The envelope stage's answer when whether `account` is on hold is
    /// unknown (`why`: the store failed or did not answer in time):
    /// `outbound.hold_unknown`, held by default (fail closed).
    pub fn hold_unknown(&self, account: &str, why: &str) -> EnvelopeFindings {
        EnvelopeFindings {
            findings: vec![RawFinding {
                detector: "outbound",
                rule: "hold_unknown",
                evidence: clean_evidence(&format!(
                    "{account}: whether the account is on hold {why}"
                )),
            }],
            effects: Vec::new(),
        }
    }

    /// Scan one message. Deterministic for the same input and state; never panics.
    pub fn scan(&self, envelope: Envelope, raw: &[u8]) -> Report {
        let pre = self.envelope_stage(&envelope);
        self.scan_after(&pre, envelope, raw)
    }

    /// Scan one message whose envelope stage already ran (the milter runs
    /// it at MAIL FROM). Its findings are part of every report, whatever
    /// happens to the content scan.
    pub fn scan_after(&self, pre: &EnvelopeFindings, envelope: Envelope, raw: &[u8]) -> Report {
        let budget = self.config.limits.budget();
        // The view, built once; a panic while building it is caught.
        let build = |envelope| {
            catch_unwind(AssertUnwindSafe(|| {
                MessageView::build_within(
                    envelope,
                    raw,
                    &self.config.limits,
                    &self.config.encrypted_archive,
                    &self.config.formats,
                    &budget,
                )
            }))
        };
        if let Some(why) = self.policy.allowlisted(&envelope) {
            let mut report = self.decide(pre, Vec::new());
            report.allowlisted = Some(why);
            // Allowlisted mail (often our own outbound) is still worth remembering.
            if let Ok(view) = build(envelope) {
                self.propose_remembering(&view, &mut report);
            }
            return report;
        }
        let view = match build(envelope) {
            Ok(view) => view,
            Err(panic) => {
                return self.decide(
                    pre,
                    vec![scan_finding(
                        "error",
                        format!(
                            "message view: internal error ({}); no detector ran",
                            panic_location(&panic)
                        ),
                    )],
                );
            }
        };
        let mut report = self.scan_view_within(pre, &view, &budget);
        self.propose_remembering(&view, &mut report);
        report
    }

    /// Run every detector over an already built view (tests and benches).
    pub fn scan_view(&self, view: &MessageView, deadline: Instant) -> Report {
        let limits = &self.config.limits;
        let budget = crate::formats::Budget::new(
            deadline,
            limits.max_inflated_bytes,
            limits.max_inflation_ratio,
        );
        self.scan_view_within(&EnvelopeFindings::default(), view, &budget)
    }

    fn scan_view_within(
        &self,
        pre: &EnvelopeFindings,
        view: &MessageView,
        budget: &crate::formats::Budget,
    ) -> Report {
        let mut raw = Vec::new();
        if !view.parsed {
            raw.push(scan_finding(
                "error",
                "not a parsable MIME message; scanned as text".into(),
            ));
        }
        for limit in &view.limits_hit {
            raw.push(scan_finding(
                "limit",
                format!("{}: {}", limit.limit, limit.detail),
            ));
        }
        // Stage 1, the lookup: every key the detectors will read, in one
        // batch. A store that cannot answer fails the detectors that
        // needed it (each reports scan.error); the others still judge.
        let lookup = self.lookup(view);
        let known_list = match view.list_id.as_deref() {
            Some(id) => match lookup.snapshot().and_then(|state| {
                crate::store::lists::is_known(
                    state,
                    &self.config.organization.mailing_lists,
                    id,
                    &crate::store::lists::server_of(view),
                )
            }) {
                Ok(true) => Some(id),
                Ok(false) => None,
                Err(e) => {
                    raw.push(scan_finding("error", format!("mailing list lookup: {e}")));
                    None
                }
            },
            None => None,
        };
        let proposals = Proposals::default();
        let ctx = ScanContext {
            limits: &self.config.limits,
            lookup: &lookup,
            budget,
            now: (self.clock)() as i64,
            known_list,
            effects: &proposals,
        };
        for detector in &self.detectors {
            if budget.expired() {
                raw.push(scan_finding(
                    "limit",
                    format!(
                        "limits.scan_timeout_secs: {} s spent before {} ran",
                        self.config.limits.scan_timeout_secs,
                        detector.name()
                    ),
                ));
                break;
            }
            raw.extend(run_detector(detector.as_ref(), view, &ctx));
        }
        // The policy weighs payload findings on outbound mail
        // (`outbound.payload`), once every detector ran.
        self.policy
            .weigh_outbound_payload(&self.config, &view.envelope, &mut raw);
        let inbound =
            crate::detectors::outbound::account_of(&self.config.outbound, &view.envelope).is_none();
        let mut report = self.decide_for(pre, raw, inbound);
        report.effects.extend(proposals.into_inner());
        report
    }

    /// Stage 1: ask the store, in one batch, for every key a detector
    /// declared it reads for this message ([`Detector::reads`]).
    fn lookup(&self, view: &MessageView) -> Lookup {
        let mut reads = Reads::default();
        crate::store::lists::reads(view, &mut reads);
        for detector in &self.detectors {
            detector.reads(view, &mut reads);
        }
        if reads.is_empty() {
            return Lookup::empty();
        }
        match self.store.read(&reads) {
            Ok(snapshot) => Lookup::answered(snapshot),
            Err(e) => Lookup::failed(e),
        }
    }

    /// The policy's verdict over the envelope stage's findings and the
    /// content's.
    fn decide(&self, pre: &EnvelopeFindings, content: Vec<RawFinding>) -> Report {
        self.decide_for(pre, content, true)
    }

    fn decide_for(
        &self,
        pre: &EnvelopeFindings,
        content: Vec<RawFinding>,
        inbound: bool,
    ) -> Report {
        let mut all = pre.findings.clone();
        // The detector also sees a hold (one started since MAIL FROM):
        // one `outbound.held` is enough.
        let held_before = all
            .iter()
            .any(|f| f.detector == "outbound" && f.rule == "held");
        all.extend(
            content
                .into_iter()
                .filter(|f| !(held_before && f.detector == "outbound" && f.rule == "held")),
        );
        let mut report = self.policy.decide_for(all, inbound);
        // Whatever became of the content scan, the envelope stage's
        // effects (the outbound count and hold) are the message's.
        report.effects = pre.effects.clone();
        report
    }

    /// The report for a message too large to buffer: not scanned, tagged.
    pub fn too_large(&self, size: u64, pre: &EnvelopeFindings) -> Report {
        self.decide(
            pre,
            vec![scan_finding(
                "too_large",
                format!(
                    "not scanned: too large ({size} bytes, limit milter.max_message_size = {})",
                    self.config.milter.max_message_size
                ),
            )],
        )
    }

    /// The report when the scan itself could not finish (e.g. the milter's
    /// time budget ran out): not fully scanned, tagged.
    pub fn not_scanned(&self, why: &str, pre: &EnvelopeFindings) -> Report {
        self.decide(
            pre,
            vec![scan_finding("limit", format!("not fully scanned: {why}"))],
        )
    }

    /// The verdict the policy gives a message with no findings (for tests).
    pub fn clean_verdict(&self) -> Verdict {
        self.policy.decide(Vec::new()).verdict
    }
}

/// What the envelope stage found (an outbound account on hold or over a
/// limit) and proposes (the account's count and hold), carried into every
/// report of the message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvelopeFindings {
    pub findings: Vec<RawFinding>,
    pub effects: Vec<Effect>,
}

/// Run one detector, turning errors, panics and undeclared rules into `scan.error`.
fn run_detector(
    detector: &dyn Detector,
    view: &MessageView,
    ctx: &ScanContext<'_>,
) -> Vec<RawFinding> {
    let name = detector.name();
    let mut hits: Vec<Hit> = Vec::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| detector.inspect(view, ctx, &mut hits)));
    let mut out = Vec::with_capacity(hits.len());
    let declared = detector.rules();
    for hit in hits {
        if declared.iter().any(|r| r.name == hit.rule) {
            out.push(RawFinding {
                detector: name,
                rule: hit.rule,
                evidence: clean_evidence(&hit.evidence),
            });
        } else {
            out.push(scan_finding(
                "error",
                format!("{name}: emitted undeclared rule {}", hit.rule),
            ));
        }
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.push(scan_finding(
            "error",
            format!("{name}: {}", clean_evidence(&e.to_string())),
        )),
        Err(panic) => {
            tracing::warn!(
                "{name}: internal error: {}",
                clean_evidence(&panic_text(&panic))
            );
            out.push(scan_finding(
                "error",
                format!("{name}: internal error ({})", panic_location(&panic)),
            ))
        }
    }
    out
}

fn scan_finding(rule: &'static str, evidence: String) -> RawFinding {
    RawFinding {
        detector: "scan",
        rule,
        evidence,
    }
}

/// Evidence goes into headers and logs: one line, no control characters,
/// bidi controls shown escaped, bounded ([`crate::sanitize`]).
pub fn clean_evidence(s: &str) -> String {
    crate::sanitize::evidence(s)
}

/// Where a panic happened, without its message: a panic text may quote
/// the message being scanned (a slice of its text, a password), and
/// `scan.error` evidence goes into headers and logs.
fn panic_location(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic_text(panic);
    if text.contains("byte index") || text.contains("char boundary") {
        "a text slice at a bad offset".to_string()
    } else if text.contains("out of range") || text.contains("out of bounds") {
        "an index out of range".to_string()
    } else if text.contains("overflow") {
        "an arithmetic overflow".to_string()
    } else {
        "a panic".to_string()
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{DetectorError, RuleInfo};

    struct Panics;
    impl Detector for Panics {
        fn name(&self) -> &'static str {
            "panics"
        }
        fn rules(&self) -> &'static [RuleInfo] {
            &[]
        }
        fn inspect(
            &self,
            _: &MessageView,
            _: &ScanContext<'_>,
            _: &mut Vec<Hit>,
        ) -> Result<(), DetectorError> {
            panic!("boom")
        }
    }

    struct Fails;
    impl Detector for Fails {
        fn name(&self) -> &'static str {
            "fails"
        }
        fn rules(&self) -> &'static [RuleInfo] {
            &[]
        }
        fn inspect(
            &self,
            _: &MessageView,
            _: &ScanContext<'_>,
            _: &mut Vec<Hit>,
        ) -> Result<(), DetectorError> {
            Err(DetectorError::new("cannot\nparse"))
        }
    }

    #[test]
    fn panics_and_errors_become_scan_error_and_others_still_run() {
        let engine =
            Engine::with_detectors(Config::default(), vec![Box::new(Panics), Box::new(Fails)]);
        let report = engine.scan(
            Envelope::default(),
            b"From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n",
        );
        let rules: Vec<String> = report.findings.iter().map(|f| f.full_rule()).collect();
        assert_eq!(rules, ["scan.error", "scan.error"]);
        // The panic's own text ("boom") may quote the message: not shown.
        assert_eq!(
            report.findings[0].evidence,
            "panics: internal error (a panic)"
        );
        assert_eq!(report.findings[1].evidence, "fails: cannot parse");
        // Not fully judged: never accepted.
        assert_eq!(report.verdict, Verdict::Tag);
    }

    #[test]
    fn evidence_is_one_bounded_line_without_bidi_tricks() {
        assert_eq!(clean_evidence("a\r\nb\tc"), "a b c");
        assert_eq!(
            clean_evidence("invoice\u{202E}fdp.exe"),
            "invoice\\u{202E}fdp.exe"
        );
        let long = "請".repeat(500);
        let cut = clean_evidence(&long);
        assert_eq!(cut.chars().count(), 240);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn too_large_is_tagged() {
        let engine = Engine::new(Config::default()).unwrap();
        let r = engine.too_large(99_999_999, &EnvelopeFindings::default());
        assert_eq!(r.verdict, Verdict::Tag);
        assert!(r.findings[0].evidence.contains("too large"));
    }
}
