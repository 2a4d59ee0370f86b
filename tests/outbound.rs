//! The outbound detector through the scan core: authenticated sessions and
//! internal networks, bursts over each window (time injected, no sleeping),
//! new-recipient bursts, From identities, per-account overrides, holds and
//! release, the notify command, payload weighting, and two engines sharing
//! one store as two milters share one Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use malspam_milter::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use malspam_milter::detectors::outbound::holds;
use malspam_milter::store::{MemoryStore, Store};
use malspam_milter::view::MessageView;
use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

/// A day boundary, so every window's buckets start together.
const T0: u64 = 1_700_006_400;

struct Setup {
    engine: Engine,
    clock: Arc<AtomicU64>,
    store: Arc<dyn Store>,
}

fn setup_with_store(toml: &str, store: Arc<dyn Store>, clock: Arc<AtomicU64>) -> Setup {
    let config = Config::parse(toml, "test.toml").expect("valid test config");
    let mut engine = Engine::with_store(config, store.clone()).unwrap();
    let c = clock.clone();
    engine.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    Setup {
        engine,
        clock,
        store,
    }
}

fn setup(toml: &str) -> Setup {
    setup_with_store(
        toml,
        Arc::new(MemoryStore::new()),
        Arc::new(AtomicU64::new(T0)),
    )
}

impl Setup {
    fn at(&self, t: u64) -> &Self {
        self.clock.store(t, Ordering::SeqCst);
        self
    }

    /// One message from `account` (SASL login) with `from` as From header.
    fn send(&self, account: &str, queue_id: &str, from: &str, rcpts: &[&str]) -> Report {
        let envelope = Envelope {
            client_addr: Some("198.51.100.20".parse().unwrap()),
            auth_user: Some(account.into()),
            queue_id: Some(queue_id.into()),
            mail_from: Some(format!("<{account}>")),
            rcpt_to: rcpts.iter().map(|r| format!("<{r}>")).collect(),
            ..Envelope::default()
        };
        self.engine.scan_and_commit(envelope, &message(from, rcpts))
    }
}

fn message(from: &str, rcpts: &[&str]) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {}\r\nSubject: quarterly figures\r\nMessage-ID: <m@example.jp>\r\n\r\nplease find the figures below.\r\n",
        rcpts.join(", ")
    )
    .into_bytes()
}

fn rules(report: &Report) -> Vec<String> {
    report.findings.iter().map(|f| f.full_rule()).collect()
}

fn evidence<'a>(report: &'a Report, rule: &str) -> &'a str {
    &report
        .findings
        .iter()
        .find(|f| f.full_rule() == rule)
        .unwrap_or_else(|| panic!("no {rule} in {:?}", rules(report)))
        .evidence
}

const ALICE: &str = "alice@example.jp";
const ALICE_FROM: &str = "Alice Sato <alice@example.jp>";

#[test]
fn external_mail_is_not_outbound_and_leaves_no_state() {
    let s = setup("");
    let envelope = Envelope {
        client_addr: Some("203.0.113.9".parse().unwrap()),
        rcpt_to: vec!["<bob@example.jp>".into()],
        ..Envelope::default()
    };
    let report = s.engine.scan_and_commit(
        envelope,
        &message("x <x@elsewhere.example>", &["bob@example.jp"]),
    );
    assert_eq!(rules(&report), Vec::<String>::new());
    assert!(s.store.keys_with_prefix("ob:").unwrap().is_empty());
}

#[test]
fn an_allowlisted_account_is_neither_counted_nor_held_by_a_burst() {
    // As before outbound control moved to the envelope stage: mail the
    // admin allowlists passes unscanned, and uncounted.
    let s = setup(&format!("[allowlist]\nauth_users = [\"{ALICE}\"]\n"));
    for i in 0..40 {
        let r = s.at(T0 + i).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
        assert_eq!(r.verdict, Verdict::Accept, "message {i}: {:?}", rules(&r));
    }
    assert!(s.store.keys_with_prefix("ob:").unwrap().is_empty());
}

#[test]
fn one_minute_burst_trips_and_holds_the_account() {
    let s = setup("");
    for i in 0..30 {
        let r = s.at(T0 + i).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
        assert_eq!(r.verdict, Verdict::Accept, "message {i}: {:?}", rules(&r));
    }
    let r = s
        .at(T0 + 30)
        .send(ALICE, "Q30", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(rules(&r), ["outbound.rate_exceeded"]);
    assert_eq!(
        evidence(&r, "outbound.rate_exceeded"),
        "alice@example.jp: 31 messages in 1m (limit 30)"
    );
    assert_eq!(r.verdict, Verdict::Quarantine);

    // Half an hour later the minute window is quiet, but the account is held.
    let r = s
        .at(T0 + 1800)
        .send(ALICE, "Q31", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(rules(&r), ["outbound.held"]);
    assert_eq!(r.verdict, Verdict::Quarantine);
    let e = evidence(&r, "outbound.held");
    assert!(e.contains("first queue id Q30"), "{e}");
    assert!(e.contains("until 2023-11-15T01:00:30Z"), "{e}");

    // Another account on the same server is not affected.
    let r = s.send(
        "carol@example.jp",
        "Q32",
        "Carol <carol@example.jp>",
        &["d@x.example"],
    );
    assert_eq!(r.verdict, Verdict::Accept);

    // The episode record names the first and last queue id and the counters.
    let ep = holds::get(s.store.as_ref(), ALICE).unwrap().unwrap();
    assert_eq!(
        (ep.first_queue_id.as_str(), ep.last_queue_id.as_str()),
        ("Q30", "Q31")
    );
    assert_eq!(ep.messages, 2);
    assert!(
        ep.counters
            .starts_with("1m: 31 msg, 31 rcpt, 1 domains, 1 new; 1h: 31 msg"),
        "{}",
        ep.counters
    );

    // After the hold (60 minutes) mail flows again.
    let r = s
        .at(T0 + 30 + 3600)
        .send(ALICE, "Q33", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(r.verdict, Verdict::Accept, "{:?}", rules(&r));
}

/// The default windows scaled down (same lengths, smaller limits), so the
/// long windows trip after a few dozen messages instead of a thousand.
const SMALL_WINDOWS: &str = "[outbound]\nwindows = [\n  { name = \"1m\", seconds = 60, messages = 3 },\n  { name = \"1h\", seconds = 3600, messages = 10 },\n  { name = \"24h\", seconds = 86400, messages = 20 },\n]\n";

#[test]
fn default_windows_are_a_minute_an_hour_and_a_day() {
    let c = Config::default();
    let w: Vec<(&str, u64, u64)> = c
        .outbound
        .windows
        .iter()
        .map(|w| (w.name.as_str(), w.seconds, w.messages))
        .collect();
    assert_eq!(w, [("1m", 60, 30), ("1h", 3600, 200), ("24h", 86400, 1000)]);
}

#[test]
fn hour_window_trips_while_the_minute_window_stays_under() {
    let s = setup(SMALL_WINDOWS);
    // One message every five minutes: never over 3/min, 11 within the hour.
    for i in 0..10 {
        let r = s.at(T0 + i * 300).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
        assert_eq!(r.verdict, Verdict::Accept, "message {i}: {:?}", rules(&r));
    }
    let r = s
        .at(T0 + 10 * 300)
        .send(ALICE, "Q10", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(
        evidence(&r, "outbound.rate_exceeded"),
        "alice@example.jp: 11 messages in 1h (limit 10)"
    );
}

#[test]
fn day_window_trips_while_the_hour_window_stays_under() {
    let s = setup(SMALL_WINDOWS);
    // One message an hour: 21 within the day.
    for i in 0..20 {
        let r = s.at(T0 + i * 3600).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
        assert_eq!(r.verdict, Verdict::Accept, "message {i}: {:?}", rules(&r));
    }
    let r = s
        .at(T0 + 20 * 3600)
        .send(ALICE, "Q20", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(
        evidence(&r, "outbound.rate_exceeded"),
        "alice@example.jp: 21 messages in 24h (limit 20)"
    );
    // Past the day the oldest messages slide out: the hold has ended too.
    let r = s
        .at(T0 + 20 * 3600 + 86400)
        .send(ALICE, "Q21", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(r.verdict, Verdict::Accept, "{:?}", rules(&r));
}

#[test]
fn recipients_and_domains_count_too() {
    let s = setup("");
    let many: Vec<String> = (0..101)
        .map(|i| format!("u{i}@d{}.example", i % 31))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = s.send(ALICE, "Q1", ALICE_FROM, &many);
    let e = evidence(&r, "outbound.rate_exceeded");
    assert_eq!(
        e,
        "alice@example.jp: 101 recipients in 1m (limit 100); 31 recipient domains in 1m (limit 30)"
    );
    // 101 never-seen recipients is also a new-recipient burst (limit 50).
    assert_eq!(
        evidence(&r, "outbound.new_recipients_burst"),
        "alice@example.jp: 101 new recipients in 1m (limit 50)"
    );
}

#[test]
fn new_recipient_burst_counts_only_recipients_never_written_to() {
    let s = setup("[outbound]\nhold_minutes = 5\n");
    let known: Vec<String> = (0..40)
        .map(|i| format!("colleague{i}@example.jp"))
        .collect();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    assert_eq!(
        s.send(ALICE, "Q1", ALICE_FROM, &known).verdict,
        Verdict::Accept
    );

    // Two hours later: the same 40 plus 11 strangers is no burst.
    let mut mixed = known.clone();
    let strangers: Vec<String> = (0..11).map(|i| format!("s{i}@example.jp")).collect();
    mixed.extend(strangers.iter().map(String::as_str));
    let r = s.at(T0 + 7200).send(ALICE, "Q2", ALICE_FROM, &mixed);
    assert_eq!(rules(&r), Vec::<String>::new());

    // Another two hours: 51 strangers at once are.
    let burst: Vec<String> = (0..51).map(|i| format!("victim{i}@example.jp")).collect();
    let burst: Vec<&str> = burst.iter().map(String::as_str).collect();
    let r = s.at(T0 + 14400).send(ALICE, "Q3", ALICE_FROM, &burst);
    assert_eq!(rules(&r), ["outbound.new_recipients_burst"]);
    assert_eq!(
        evidence(&r, "outbound.new_recipients_burst"),
        "alice@example.jp: 51 new recipients in 1m (limit 50)"
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
    assert!(holds::get(s.store.as_ref(), ALICE)
        .unwrap()
        .unwrap()
        .active(T0 + 14400));
}

#[test]
fn from_not_owned_fires_only_after_the_account_has_history() {
    let s = setup("");
    let forged = "\"Hanako Suzuki\" <billing@unrelated.example>";
    // A new account has no history to compare with: nothing fires.
    let r = s.send("newbie@example.jp", "Q0", forged, &["a@x.example"]);
    assert_eq!(rules(&r), Vec::<String>::new());

    for i in 0..20 {
        let r = s.at(T0 + i * 600).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
        assert_eq!(rules(&r), Vec::<String>::new());
    }
    let r = s
        .at(T0 + 20 * 600)
        .send(ALICE, "Q20", forged, &["bob@partner.example"]);
    assert_eq!(rules(&r), ["outbound.from_not_owned"]);
    let e = evidence(&r, "outbound.from_not_owned");
    assert!(e.contains("From domain \"unrelated.example\" never used by alice@example.jp (used: \"example.jp\")"), "{e}");
    assert!(
        e.contains(
            "display name \"Hanako Suzuki\" never used by alice@example.jp (used: \"Alice Sato\")"
        ),
        "{e}"
    );
    assert_eq!(r.verdict, Verdict::Tag);
    // Her own address keeps passing.
    let r = s.send(ALICE, "Q21", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(rules(&r), Vec::<String>::new());
}

#[test]
fn internal_networks_make_unauthenticated_mail_outbound() {
    let s = setup("[outbound]\ninternal_networks = [\"10.0.0.0/8\"]\n[[outbound.windows]]\nname = \"5m\"\nseconds = 300\nmessages = 3\n");
    let send = |ip: &str, qid: &str| {
        let envelope = Envelope {
            client_addr: Some(ip.parse().unwrap()),
            mail_from: Some(format!("<web{qid}@example.jp>")),
            rcpt_to: vec!["<a@x.example>".into()],
            queue_id: Some(qid.into()),
            ..Envelope::default()
        };
        s.engine.scan_and_commit(
            envelope,
            &message("shop <web@example.jp>", &["a@x.example"]),
        )
    };
    for i in 0..3 {
        assert_eq!(send("10.1.2.3", &format!("Q{i}")).verdict, Verdict::Accept);
        // The same volume from outside the network is not counted at all.
        assert_eq!(
            send("203.0.113.5", &format!("X{i}")).verdict,
            Verdict::Accept
        );
    }
    // Different senders from one host are one account: the host.
    let r = send("10.1.2.3", "Q3");
    assert_eq!(
        evidence(&r, "outbound.rate_exceeded"),
        "ip:10.1.2.3: 4 messages in 5m (limit 3)"
    );
    assert_eq!(send("203.0.113.5", "X3").verdict, Verdict::Accept);
}

#[test]
fn per_account_overrides_raise_or_lower_limits() {
    let s = setup(
        "[outbound.overrides.\"newsletter@example.jp\".1m]\nmessages = 100\n\n[outbound.overrides.\"intern@example.jp\".1h]\nmessages = 5\n",
    );
    for i in 0..40 {
        let r = s.at(T0 + i).send(
            "newsletter@example.jp",
            &format!("N{i}"),
            "News <newsletter@example.jp>",
            &["sub@x.example"],
        );
        assert_eq!(r.verdict, Verdict::Accept, "{:?}", rules(&r));
    }
    for i in 0..5 {
        let r = s.at(T0 + i * 120).send(
            "intern@example.jp",
            &format!("I{i}"),
            "Intern <intern@example.jp>",
            &["a@x.example"],
        );
        assert_eq!(r.verdict, Verdict::Accept);
    }
    let r = s.at(T0 + 600).send(
        "intern@example.jp",
        "I5",
        "Intern <intern@example.jp>",
        &["a@x.example"],
    );
    assert_eq!(
        evidence(&r, "outbound.rate_exceeded"),
        "intern@example.jp: 6 messages in 1h (limit 5)"
    );
}

#[test]
fn config_errors_name_the_line_and_key() {
    let text = "[outbound]\nhold_minutes = 0\npayload_rules = [\"nosuch.rule\"]\nnotify_command = [\"notify-admins\"]\n\n[outbound.overrides.\"a@example.jp\".2h]\nmessages = 3\n";
    let errs = Config::parse(text, "t.toml").unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 4, "{shown:?}");
    assert!(
        shown.contains(&"t.toml:2: outbound.hold_minutes: must be at least 1".to_string()),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|e| e.starts_with(
            "t.toml:3: outbound.payload_rules: unknown rule or detector \"nosuch.rule\""
        )),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|e| e.starts_with(
            "t.toml:4: outbound.notify_command: the program must be an absolute path"
        )),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|e| e.starts_with(
            "t.toml:6: outbound.overrides.\"a@example.jp\".2h: no window named \"2h\""
        )),
        "{shown:?}"
    );
}

#[test]
fn release_ends_the_hold_and_starts_counting_afresh() {
    let s = setup("");
    for i in 0..31 {
        s.at(T0 + i).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
    }
    assert_eq!(
        s.send(ALICE, "Q31", ALICE_FROM, &["bob@partner.example"])
            .verdict,
        Verdict::Quarantine
    );
    let released = holds::release(s.store.as_ref(), ALICE, "test")
        .unwrap()
        .unwrap();
    assert_eq!(released.first_queue_id, "Q30");
    let r = s.send(ALICE, "Q32", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(rules(&r), Vec::<String>::new());
    assert_eq!(r.verdict, Verdict::Accept);
}

#[test]
fn notify_command_runs_with_the_episode_facts() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[outbound]\nnotify_command = [\"/usr/bin/touch\", \"{}/held {{account}} {{queue_id}} {{hold_minutes}}\"]\nhold_minutes = 15\n",
        dir.path().display()
    );
    let s = setup(&toml);
    for i in 0..31 {
        s.at(T0 + i).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
    }
    let expected = dir.path().join("held alice@example.jp Q30 15");
    // The command runs off the scanning path; give it up to 20 s to appear.
    for _ in 0..200 {
        if expected.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let made: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(made, ["held alice@example.jp Q30 15"]);
}

#[test]
fn two_engines_sharing_one_store_hold_together() {
    // Two milters on two submission servers sharing one store: the counts
    // add up, and a hold started by one is enforced by the other.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(AtomicU64::new(T0));
    let a = setup_with_store("", store.clone(), clock.clone());
    let b = setup_with_store("", store.clone(), clock.clone());
    for i in 0..30 {
        let s = if i % 2 == 0 { &a } else { &b };
        let r = s.at(T0 + i).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
        assert_eq!(r.verdict, Verdict::Accept);
    }
    let r = a
        .at(T0 + 30)
        .send(ALICE, "Q30", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(
        evidence(&r, "outbound.rate_exceeded"),
        "alice@example.jp: 31 messages in 1m (limit 30)"
    );
    let r = b
        .at(T0 + 600)
        .send(ALICE, "Q31", ALICE_FROM, &["bob@partner.example"]);
    assert_eq!(rules(&r), ["outbound.held"]);
    assert_eq!(holds::active_count(store.as_ref(), T0 + 600).unwrap(), 1);
}

/// A stand-in content detector: the real ones (office_macro, ...) live on
/// other branches; this one reports a macro document on every message.
struct FakeMacro;

impl Detector for FakeMacro {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn rules(&self) -> &'static [RuleInfo] {
        &[RuleInfo {
            name: "macro",
            description: "test",
            default_score: 0.0,
        }]
    }
    fn inspect(
        &self,
        _: &MessageView,
        _: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        hits.push(Hit::new("macro", "invoice.doc: AutoOpen, Shell"));
        Ok(())
    }
}

#[test]
fn payload_findings_weigh_more_on_outbound_mail() {
    let mut config = Config::default();
    config.outbound.payload_rules = Some(vec!["fake.macro".into()]);
    let engine = Engine::with_detectors(config, vec![Box::new(FakeMacro)]);
    let outbound = Envelope {
        auth_user: Some(ALICE.into()),
        rcpt_to: vec!["<bob@partner.example>".into()],
        ..Envelope::default()
    };
    let r = engine.scan(outbound, &message(ALICE_FROM, &["bob@partner.example"]));
    assert_eq!(rules(&r), ["fake.macro", "outbound.payload"]);
    assert_eq!(
        evidence(&r, "outbound.payload"),
        "outbound mail from alice@example.jp carries fake.macro"
    );
    assert_eq!(r.verdict, Verdict::Tag);
    // The same message inbound: no payload weighting.
    let inbound = Envelope {
        rcpt_to: vec!["<alice@example.jp>".into()],
        ..Envelope::default()
    };
    let r = engine.scan(inbound, &message("Bob <bob@partner.example>", &[ALICE]));
    assert_eq!(rules(&r), ["fake.macro"]);
}

#[test]
fn sample_config_documents_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/malspam-milter.toml");
    let config = Config::load(Some(std::path::Path::new(path))).expect("sample config is valid");
    assert_eq!(
        config.outbound,
        malspam_milter::detectors::outbound::OutboundConfig::default()
    );
    assert_eq!(
        config.metrics,
        malspam_milter::metrics::MetricsConfig::default()
    );
}

/// Counts the calls made to the store underneath.
struct CountingStore {
    inner: MemoryStore,
    calls: AtomicU64,
}

impl CountingStore {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl Store for CountingStore {
    fn backend(&self) -> &'static str {
        "counting"
    }
    fn get(&self, key: &str) -> malspam_milter::store::StoreResult<Option<Vec<u8>>> {
        self.tick();
        self.inner.get(key)
    }
    fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<()> {
        self.tick();
        self.inner.put(key, value, ttl)
    }
    fn delete(&self, key: &str) -> malspam_milter::store::StoreResult<()> {
        self.tick();
        self.inner.delete(key)
    }
    fn incr(
        &self,
        key: &str,
        by: i64,
        ttl: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<i64> {
        self.tick();
        self.inner.incr(key, by, ttl)
    }
    fn set_add(
        &self,
        key: &str,
        member: &[u8],
        ttl: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<bool> {
        self.tick();
        self.inner.set_add(key, member, ttl)
    }
    fn set_contains(&self, key: &str, member: &[u8]) -> malspam_milter::store::StoreResult<bool> {
        self.tick();
        self.inner.set_contains(key, member)
    }
    fn set_members(&self, key: &str) -> malspam_milter::store::StoreResult<Vec<Vec<u8>>> {
        self.tick();
        self.inner.set_members(key)
    }
    fn keys_with_prefix(&self, prefix: &str) -> malspam_milter::store::StoreResult<Vec<String>> {
        self.tick();
        self.inner.keys_with_prefix(prefix)
    }
    // A batch is one round trip (one Redis pipeline, one SQLite transaction).
    fn get_many(
        &self,
        keys: &[String],
    ) -> malspam_milter::store::StoreResult<Vec<Option<Vec<u8>>>> {
        self.tick();
        keys.iter().map(|k| self.inner.get(k)).collect()
    }
    fn write_batch(
        &self,
        ops: &[malspam_milter::store::WriteOp],
    ) -> malspam_milter::store::StoreResult<()> {
        self.tick();
        self.inner.write_batch(ops)
    }
}

#[test]
fn store_round_trips_per_outbound_message_are_bounded() {
    // Each store call is a network round trip with Redis: keep them bounded.
    // Counters are written in one batch and read in one batch per window;
    // the per-bucket domain sets are still read one by one (3 x 10).
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(),
        calls: AtomicU64::new(0),
    });
    let s = setup_with_store("", store.clone(), Arc::new(AtomicU64::new(T0)));
    for i in 0..25 {
        s.at(T0 + i * 60).send(
            ALICE,
            &format!("Q{i}"),
            ALICE_FROM,
            &["bob@partner.example"],
        );
    }
    let before = store.calls.load(Ordering::SeqCst);
    s.at(T0 + 3600)
        .send(ALICE, "Q99", ALICE_FROM, &["bob@partner.example"]);
    let per_message = store.calls.load(Ordering::SeqCst) - before;
    println!("store calls for one outbound message: {per_message}");
    assert!(per_message <= 3 * 10 + 30, "{per_message} store calls");
}
