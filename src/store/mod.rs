//! The state store: what the milter remembers between messages (threads,
//! correspondents, outbound counters). Backends implement a few primitives
//! over byte values — get/put with expiry, counters, sets — and the typed
//! memories (thread memory, correspondents, outbound counters) are built on
//! top, so every backend behaves the same.
//!
//! Backends: `memory` (tests, and `check` on a read-only machine); the
//! embedded and Redis backends live in their own modules.

pub mod memory;

use std::time::Duration;

pub use memory::MemoryStore;

/// A store call failed. Callers turn this into `scan.error` evidence; the
/// store never blocks mail.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    pub fn new(msg: impl Into<String>) -> Self {
        StoreError(msg.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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
}

/// Unix time in seconds; stores take time from the caller so tests can set it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every backend must show; each backend's tests call these.
    use super::*;

    pub fn check_all(store: &dyn Store) {
        values(store);
        counters(store);
        sets(store);
        prefixes(store);
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
