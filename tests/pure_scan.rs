//! Issue "one direction of flow": scanning is a pure function of the
//! message and the store's state. The same message scanned twice against
//! the same store gives the same report, proposals included, and not one
//! write reaches the store; committing the proposals is what changes it.
//! Covered: an outbound message (account counters, From identities, the
//! hold), a clean inbound message (remembered), and a hijacked reply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use malspam_milter::effects::Effect;
use malspam_milter::store::{MemoryStore, Reads, Snapshot, Store, StoreResult, WriteOp};
use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

/// A memory store that counts every write, whatever its form, and every
/// read: batched (the lookup stage's) and single.
#[derive(Default)]
struct WatchedStore {
    inner: MemoryStore,
    writes: AtomicU64,
    batched_reads: AtomicU64,
    single_reads: AtomicU64,
}

impl WatchedStore {
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
    fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
    fn read_one(&self) {
        self.single_reads.fetch_add(1, Ordering::SeqCst);
    }
    /// (batched, single) reads since the last call.
    fn take_reads(&self) -> (u64, u64) {
        (
            self.batched_reads.swap(0, Ordering::SeqCst),
            self.single_reads.swap(0, Ordering::SeqCst),
        )
    }
}

impl Store for WatchedStore {
    fn backend(&self) -> &'static str {
        "watched"
    }
    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read_one();
        self.inner.get(key)
    }
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.read_one();
        self.inner.get_many(keys)
    }
    fn set_members_many(&self, keys: &[String]) -> StoreResult<Vec<Vec<Vec<u8>>>> {
        self.read_one();
        self.inner.set_members_many(keys)
    }
    fn read(&self, reads: &Reads) -> StoreResult<Snapshot> {
        self.batched_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(reads)
    }
    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.wrote();
        self.inner.put(key, value, ttl)
    }
    fn delete(&self, key: &str) -> StoreResult<()> {
        self.wrote();
        self.inner.delete(key)
    }
    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        self.wrote();
        self.inner.incr(key, by, ttl)
    }
    fn set_add(&self, key: &str, member: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        self.wrote();
        self.inner.set_add(key, member, ttl)
    }
    fn set_contains(&self, key: &str, member: &[u8]) -> StoreResult<bool> {
        self.read_one();
        self.inner.set_contains(key, member)
    }
    fn set_members(&self, key: &str) -> StoreResult<Vec<Vec<u8>>> {
        self.read_one();
        self.inner.set_members(key)
    }
    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.inner.keys_with_prefix(prefix)
    }
    fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if !ops.is_empty() {
            self.wrote();
        }
        self.inner.write_batch(ops)
    }
    fn write_batch_later(&self, ops: Vec<WriteOp>) -> StoreResult<()> {
        if !ops.is_empty() {
            self.wrote();
        }
        self.inner.write_batch_later(ops)
    }
}

const T0: u64 = 1_800_000_000;

fn engine(store: Arc<WatchedStore>) -> Engine {
    let mut config = Config::default();
    config.organization.domains = vec!["example.jp".into()];
    // Small limits, so that the third message of a burst trips the hold.
    config.outbound.windows[0].messages = 2;
    let mut engine = Engine::with_store(config, store).unwrap();
    engine.set_clock(Arc::new(|| T0));
    engine
}

fn outbound() -> Envelope {
    Envelope {
        auth_user: Some("alice@example.jp".into()),
        mail_from: Some("<alice@example.jp>".into()),
        rcpt_to: vec!["<bob@partner.example>".into()],
        ..Envelope::default()
    }
}

const OUTBOUND: &[u8] = b"From: Alice <alice@example.jp>\r\nTo: bob@partner.example\r\n\
Subject: figures\r\nMessage-ID: <o1@example.jp>\r\n\r\nThe figures you asked for.\r\n";

const INBOUND: &[u8] = b"From: Bob <bob@partner.example>\r\nTo: alice@example.jp\r\n\
Subject: lunch\r\nMessage-ID: <i1@partner.example>\r\n\r\nLunch on Friday?\r\n";

const HIJACK: &[u8] = b"From: Bob <x7@stranger-host.example>\r\nTo: alice@example.jp\r\n\
Subject: RE: lunch\r\nMessage-ID: <h1@stranger-host.example>\r\n\
In-Reply-To: <i1@partner.example>\r\nReferences: <i1@partner.example>\r\n\r\n\
Please see the attached invoice.\r\n\r\n-----Original Message-----\r\n\
From: Bob <bob@partner.example>\r\nSent: Monday\r\nTo: alice@example.jp\r\n\
Subject: lunch\r\n\r\nLunch on Friday?\r\n";

fn twice(engine: &Engine, store: &WatchedStore, envelope: Envelope, raw: &[u8]) -> Report {
    let first = engine.scan(envelope.clone(), raw);
    let second = engine.scan(envelope, raw);
    assert_eq!(first, second, "the same report, proposals included");
    assert_eq!(store.writes(), 0, "a scan wrote to the store");
    first
}

#[test]
fn scanning_twice_gives_the_same_report_and_writes_nothing() {
    let store = Arc::new(WatchedStore::default());
    let engine = engine(store.clone());

    let out = twice(&engine, &store, outbound(), OUTBOUND);
    assert!(
        out.effects
            .iter()
            .any(|e| matches!(e, Effect::Hold { account, .. } if account == "alice@example.jp")),
        "{:?}",
        out.effects
    );
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Write(w) if !w.is_empty())));

    let inbound = twice(&engine, &store, Envelope::default(), INBOUND);
    assert_eq!(inbound.verdict, Verdict::Accept);
    assert!(inbound
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Remember { .. })));

    let hijack = twice(&engine, &store, Envelope::default(), HIJACK);
    assert!(hijack.verdict >= Verdict::Tag, "{:?}", hijack.findings);
    assert!(
        !hijack
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Remember { .. })),
        "tagged mail is not remembered"
    );
}

#[test]
fn committing_is_what_changes_the_store_and_the_next_verdict() {
    let store = Arc::new(WatchedStore::default());
    let engine = engine(store.clone());
    // Scanned only (as `check` does): the burst never trips.
    for _ in 0..5 {
        let r = engine.scan(outbound(), OUTBOUND);
        assert!(r.verdict < Verdict::Quarantine, "{:?}", r.findings);
    }
    assert_eq!(store.writes(), 0);
    // Scanned and committed (as the milter does): the third trips and the
    // account is held from then on.
    let verdicts: Vec<Verdict> = (0..4)
        .map(|_| engine.scan_and_commit(outbound(), OUTBOUND).verdict)
        .collect();
    assert!(store.writes() > 0);
    assert!(verdicts[0] < Verdict::Quarantine && verdicts[1] < Verdict::Quarantine);
    assert_eq!(verdicts[2], Verdict::Quarantine);
    assert_eq!(verdicts[3], Verdict::Quarantine);
    let held = engine.scan(outbound(), OUTBOUND);
    assert!(
        held.findings
            .iter()
            .any(|f| f.full_rule() == "outbound.held"),
        "{:?}",
        held.findings
    );
}

/// Stage 1 asks the store once: every key the detectors read for a message
/// (threads, correspondents, names, the list) in one batched read, and an
/// outbound account's hold and counters in one more. No detector reads the
/// store by itself.
#[test]
fn a_message_costs_one_batched_read_per_stage() {
    let store = Arc::new(WatchedStore::default());
    let engine = engine(store.clone());
    // Remembered, so the hijack below meets a known thread and name.
    engine.scan_and_commit(Envelope::default(), INBOUND);
    store.take_reads();

    let hijack = engine.scan(Envelope::default(), HIJACK);
    assert!(
        hijack
            .findings
            .iter()
            .any(|f| f.full_rule() == "thread_hijack.unknown_participant"),
        "the thread was looked up: {:?}",
        hijack.findings
    );
    assert_eq!(store.take_reads(), (1, 0), "inbound: one batched read");

    let out = engine.scan(outbound(), OUTBOUND);
    assert!(!out.effects.is_empty());
    assert_eq!(
        store.take_reads(),
        (2, 0),
        "outbound: the envelope stage's read and the content's"
    );
}

/// Mail that is no reply, from a sender without a display name, needs
/// nothing the store remembers: the lookup asks for nothing at all (the
/// store's cost of the plainest, commonest mail).
#[test]
fn plain_mail_that_is_no_reply_reads_nothing() {
    let store = Arc::new(WatchedStore::default());
    let engine = engine(store.clone());
    let plain = b"From: <newsletter@partner.example>\r\nTo: alice@example.jp\r\n\
Subject: figures\r\nMessage-ID: <p1@partner.example>\r\n\r\nThe figures.\r\n";
    let report = engine.scan(Envelope::default(), plain);
    assert_eq!(report.verdict, Verdict::Accept, "{:?}", report.findings);
    assert_eq!(store.take_reads(), (0, 0));
}
