//! The state store: what the milter remembers between messages (threads,
//! correspondents, outbound counters). Backends implement a few primitives
//! over byte values — get/put with expiry, counters, sets — and the typed
//! memories (thread memory, correspondents, outbound counters) are built on
//! top, so every backend behaves the same.
//!
//! Backends: `memory` (tests, and `check` on a read-only machine),
//! `embedded` (SQLite in a file, the default) and `redis` (shared by a
//! fleet). [`open`] picks one from the `[store]` config section.
//! The typed memories: [`threads`] (Message-ID → participants) and
//! [`correspondents`] (address → names seen, name → addresses).

pub mod config;
pub mod correspondents;
pub mod embedded;
pub mod hash;
pub mod lists;
pub mod lookup;
pub mod memory;
mod open;
pub mod redis;
pub mod redis_cache;
pub mod threads;

use std::time::Duration;

pub use config::{StoreBackend, StoreConfig};
pub use embedded::EmbeddedStore;
pub use lookup::{Lookup, Reads, Snapshot};
pub use memory::MemoryStore;
pub use open::{default_embedded_path, open, open_or_memory, open_read_only};
pub use redis::RedisStore;

/// A store call failed. Callers turn this into `scan.error` evidence; the
/// store never blocks mail. The text is what operators read in logs and
/// findings; the source error, where there is one, is kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused, timed out or answered oddly.
    #[error("state store: redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis failed a moment ago: calls fail at once until it is retried.
    #[error("state store: redis unavailable (retrying in under {retry_ms} ms): {why}")]
    RedisDown { retry_ms: u128, why: String },
    /// `store.url` is not a Redis URL (the password is left out).
    #[error("state store: redis url {url}: {source}")]
    RedisUrl {
        url: String,
        #[source]
        source: ::redis::RedisError,
    },
    /// An update lost every try to other writers of a shared Redis.
    #[error("state store: redis: {tries} tries to update {keys} keys each lost to another writer")]
    Contention { tries: usize, keys: usize },
    /// SQLite (the embedded store), while doing `context`.
    #[error("state store: embedded store: {context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A key read as one type holds another (a counter read as a set).
    #[error("state store: key {0} holds another type")]
    WrongType(String),
    /// A thread panicked while it held the store's lock.
    #[error("state store: {0} store lock poisoned")]
    Poisoned(&'static str),
    /// A detector read a key it did not ask for in the lookup stage (a
    /// programming error, reported as `scan.error` rather than guessed).
    #[error("state store: key {0} was not looked up before the scan")]
    NotLookedUp(String),
    /// The lookup stage's one read failed; every detector that needed it
    /// reports the same error.
    #[error(transparent)]
    Lookup(std::sync::Arc<StoreError>),
    /// A record (JSON) that cannot be read or written as what it should be.
    #[error("state store: {key}: unreadable {what} record: {source}")]
    BadRecord {
        key: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Anything else: where the store is.
    #[error("state store: {0}")]
    Other(String),
}

impl StoreError {
    pub fn new(msg: impl Into<String>) -> Self {
        StoreError::Other(msg.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What [`Store::update`] runs on the values it read: the writes to make.
pub type Compute<'a> = dyn FnMut(&[Option<Vec<u8>>]) -> Vec<WriteOp> + 'a;

/// A [`Compute`] that owns what it needs, for [`Store::update_later`].
pub type ComputeLater = Box<dyn FnMut(&[Option<Vec<u8>>]) -> Vec<WriteOp> + Send>;

/// The primitives every backend provides. Keys are UTF-8 strings with
/// `:`-separated prefixes (`thread:`, `corr:`, `ob:` ...); values are bytes.
/// `ttl = None` keeps a value until deleted. Writing an existing key with a
/// TTL resets its expiry.
pub trait Store: Send + Sync {
    /// Which backend this is, for logs: `memory`, `embedded`, `redis`.
    fn backend(&self) -> &'static str;

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()>;

    fn delete(&self, key: &str) -> StoreResult<()>;

    /// Add `by` to the integer counter at `key` (created at 0) and return the
    /// new value; the TTL is set when the counter is created.
    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64>;

    /// Add `member` to the set at `key`; true when it was not there before.
    /// The TTL is refreshed on every add.
    fn set_add(&self, key: &str, member: &[u8], ttl: Option<Duration>) -> StoreResult<bool>;

    fn set_contains(&self, key: &str, member: &[u8]) -> StoreResult<bool>;

    fn set_members(&self, key: &str) -> StoreResult<Vec<Vec<u8>>>;

    /// Every live key starting with `prefix`, sorted (for status listings).
    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>>;

    /// Several `get`s at once. Backends override this to answer from one
    /// read transaction (embedded) or one round trip (Redis): the store is
    /// consulted on every message, so a message should cost one read.
    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// The lookup stage's reads, answered together: one read transaction
    /// (embedded) or one round trip (Redis) where the backend can.
    fn read(&self, reads: &Reads) -> StoreResult<Snapshot> {
        let values = self.get_many(&reads.value_keys())?;
        let sets = self.set_members_many(&reads.set_keys())?;
        let memberships = reads
            .membership_pairs()
            .map(|(key, member)| self.set_contains(key, member))
            .collect::<StoreResult<Vec<bool>>>()?;
        Snapshot::from_parts(reads, values, sets, memberships)
    }

    /// The members of each set in `keys` (sorted), in one round trip where
    /// the backend can.
    fn set_members_many(&self, keys: &[String]) -> StoreResult<Vec<Vec<Vec<u8>>>> {
        keys.iter().map(|k| self.set_members(k)).collect()
    }

    /// Apply `ops` soon, not necessarily before returning: for what mail
    /// teaches (thread memory, correspondents), where a moment's lag in
    /// the file is harmless. Reads of this process see them at once. An
    /// error found after returning is logged by the backend.
    fn write_batch_later(&self, ops: Vec<WriteOp>) -> StoreResult<()> {
        self.write_batch(&ops)
    }

    /// Wait until every write of [`Store::write_batch_later`] is applied.
    fn flush(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Read `keys`, work out writes from what was read, and make them, as
    /// one step no other writer of the store can come between: two
    /// messages remembered at once both count. `compute` may run again when
    /// another writer changed one of `keys` meanwhile (Redis); it gets the
    /// values in the order of `keys`. The writes may be made later, as
    /// with [`Store::write_batch_later`]: the next read sees them all the same.
    ///
    /// This default serialises updates within the process, which is every
    /// writer for the memory and embedded stores (one daemon per file);
    /// Redis, shared by several mail servers, overrides it.
    fn update(&self, keys: &[String], compute: &mut Compute<'_>) -> StoreResult<()> {
        static UPDATES: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = UPDATES.lock().unwrap_or_else(|e| e.into_inner());
        let values = self.get_many(keys)?;
        let ops = compute(&values);
        if ops.is_empty() {
            return Ok(());
        }
        self.write_batch_later(ops)
    }

    /// Several writes at once, in order. Backends override this to apply
    /// them in one transaction (embedded) or one pipeline (Redis).
    /// [`Store::update`] without waiting: the read, the computing and the
    /// writes happen later, still as one step no other writer comes
    /// between, and reads of this process made after it returns see its
    /// writes. For what mail teaches (remembering), off the reply's path.
    /// `compute` writes only `keys` and `may_write`: a read of any other
    /// key need not wait for it (a write elsewhere is refused). This
    /// default does it at once; the embedded store hands it to its writer
    /// thread.
    fn update_later(
        &self,
        keys: Vec<String>,
        may_write: Vec<String>,
        mut compute: ComputeLater,
    ) -> StoreResult<()> {
        let _ = may_write;
        self.update(&keys, &mut *compute)
    }

    fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        for op in ops {
            match op {
                WriteOp::Put { key, value, ttl } => self.put(key, value, *ttl)?,
                WriteOp::SetAdd { key, member, ttl } => {
                    self.set_add(key, member, *ttl)?;
                }
                WriteOp::Incr { key, by, ttl } => {
                    self.incr(key, *by, *ttl)?;
                }
                WriteOp::Delete { key } => self.delete(key)?,
            }
        }
        Ok(())
    }
}

/// One write of a [`Store::write_batch`]; same meaning as the single calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    SetAdd {
        key: String,
        member: Vec<u8>,
        ttl: Option<Duration>,
    },
    Incr {
        key: String,
        by: i64,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
}

impl WriteOp {
    /// The key this write changes.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. }
            | WriteOp::SetAdd { key, .. }
            | WriteOp::Incr { key, .. }
            | WriteOp::Delete { key } => key,
        }
    }
}

/// Unix time in seconds; stores take time from the caller so tests can set it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The behaviour every backend must show; each backend's tests call these
/// (public so that the Redis integration test can run it too).
#[doc(hidden)]
pub mod contract {
    use super::*;

    pub fn check_all(store: &dyn Store) {
        values(store);
        counters(store);
        sets(store);
        prefixes(store);
        batches(store);
        sets_many(store);
        lookups(store);
        types(store);
    }

    /// The lookup stage's batched read answers as the single calls do.
    fn lookups(store: &dyn Store) {
        store.put("lk:v", b"value", None).unwrap();
        store.incr("lk:n", 3, None).unwrap();
        store.set_add("lk:s", b"b", None).unwrap();
        store.set_add("lk:s", b"a", None).unwrap();
        store.set_add("lk:big", b"in", None).unwrap();
        let mut reads = Reads::default();
        for key in ["lk:v", "lk:n", "lk:none"] {
            reads.value(key.into());
        }
        reads.set("lk:s".into());
        reads.set("lk:empty".into());
        reads.membership("lk:big".into(), b"in".to_vec());
        reads.membership("lk:big".into(), b"out".to_vec());
        reads.membership("lk:nobig".into(), b"in".to_vec());
        let state = store.read(&reads).unwrap();
        assert_eq!(state.value("lk:v").unwrap(), Some(&b"value"[..]));
        assert_eq!(state.count("lk:n").unwrap(), 3);
        assert_eq!(state.value("lk:none").unwrap(), None);
        assert_eq!(
            state.members("lk:s").unwrap(),
            [b"a".to_vec(), b"b".to_vec()]
        );
        assert!(state.members("lk:empty").unwrap().is_empty());
        assert!(state.contains("lk:s", b"a").unwrap());
        assert!(state.contains("lk:big", b"in").unwrap());
        assert!(!state.contains("lk:big", b"out").unwrap());
        assert!(!state.contains("lk:nobig", b"in").unwrap());
        assert!(state.value("lk:other").is_err(), "not asked for");
        assert_eq!(store.read(&Reads::default()).unwrap(), Snapshot::default());
    }

    fn sets_many(store: &dyn Store) {
        store.set_add("sm:a", b"2", None).unwrap();
        store.set_add("sm:a", b"1", None).unwrap();
        store.set_add("sm:b", b"x", None).unwrap();
        assert_eq!(
            store
                .set_members_many(&["sm:a".into(), "sm:none".into(), "sm:b".into()])
                .unwrap(),
            vec![
                vec![b"1".to_vec(), b"2".to_vec()],
                Vec::new(),
                vec![b"x".to_vec()]
            ]
        );
        assert!(store.set_members_many(&[]).unwrap().is_empty());
    }

    fn batches(store: &dyn Store) {
        store
            .write_batch(&[
                WriteOp::Put {
                    key: "b:v".into(),
                    value: b"val".to_vec(),
                    ttl: Some(Duration::from_secs(60)),
                },
                WriteOp::SetAdd {
                    key: "b:s".into(),
                    member: b"m".to_vec(),
                    ttl: None,
                },
                WriteOp::Incr {
                    key: "b:c".into(),
                    by: 3,
                    ttl: None,
                },
                WriteOp::Incr {
                    key: "b:c".into(),
                    by: 4,
                    ttl: None,
                },
                WriteOp::Put {
                    key: "b:gone".into(),
                    value: b"x".to_vec(),
                    ttl: None,
                },
                WriteOp::Delete {
                    key: "b:gone".into(),
                },
            ])
            .unwrap();
        let got = store
            .get_many(&[
                "b:v".into(),
                "b:missing".into(),
                "b:c".into(),
                "b:gone".into(),
            ])
            .unwrap();
        assert_eq!(
            got,
            vec![Some(b"val".to_vec()), None, Some(b"7".to_vec()), None]
        );
        assert!(store.set_contains("b:s", b"m").unwrap());
        assert!(store.get_many(&[]).unwrap().is_empty());
        store.write_batch(&[]).unwrap();
    }

    fn types(store: &dyn Store) {
        store.put("ty:v", b"1", None).unwrap();
        assert!(store.set_add("ty:v", b"x", None).is_err());
        assert!(store.set_add("ty:s", b"x", None).unwrap());
        assert!(store.get("ty:s").is_err());
        // A put replaces a value of any type.
        store.put("ty:s", b"now bytes", None).unwrap();
        assert_eq!(
            store.get("ty:s").unwrap().as_deref(),
            Some(&b"now bytes"[..])
        );
        assert!(!store.set_contains("ty:none", b"x").unwrap());
    }

    fn values(store: &dyn Store) {
        assert_eq!(store.get("t:missing").unwrap(), None);
        store.put("t:a", b"one", None).unwrap();
        assert_eq!(store.get("t:a").unwrap().as_deref(), Some(&b"one"[..]));
        store
            .put("t:a", b"two", Some(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(store.get("t:a").unwrap().as_deref(), Some(&b"two"[..]));
        store.delete("t:a").unwrap();
        assert_eq!(store.get("t:a").unwrap(), None);
    }

    fn counters(store: &dyn Store) {
        assert_eq!(store.incr("t:c", 1, None).unwrap(), 1);
        assert_eq!(store.incr("t:c", 5, None).unwrap(), 6);
        assert_eq!(store.incr("t:c", -2, None).unwrap(), 4);
    }

    fn sets(store: &dyn Store) {
        assert!(store.set_add("t:s", b"x", None).unwrap());
        assert!(!store.set_add("t:s", b"x", None).unwrap());
        assert!(store.set_add("t:s", b"y", None).unwrap());
        assert!(store.set_contains("t:s", b"y").unwrap());
        assert!(!store.set_contains("t:s", b"z").unwrap());
        let mut m = store.set_members("t:s").unwrap();
        m.sort();
        assert_eq!(m, vec![b"x".to_vec(), b"y".to_vec()]);
        assert!(store.set_members("t:none").unwrap().is_empty());
    }

    fn prefixes(store: &dyn Store) {
        store.put("p:b", b"1", None).unwrap();
        store.put("p:a", b"1", None).unwrap();
        store.put("q:a", b"1", None).unwrap();
        assert_eq!(
            store.keys_with_prefix("p:").unwrap(),
            vec!["p:a".to_string(), "p:b".to_string()]
        );
    }
}
