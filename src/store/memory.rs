//! An in-process store: for tests, and for `check` where nothing can be written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Store, StoreError, StoreResult};

#[derive(Debug, Clone)]
enum Value {
    Bytes(Vec<u8>),
    Counter(i64),
    Set(BTreeSet<Vec<u8>>),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires: Option<Instant>,
}

/// A store that forgets everything when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<String, Entry>,
    /// No entry expires before this (a lower bound): expired entries are
    /// swept only once it has passed, not on every call.
    earliest: Option<Instant>,
}

impl Inner {
    /// The expiry for `ttl` from now, noted for the next sweep.
    fn deadline(&mut self, ttl: Option<Duration>) -> Option<Instant> {
        let t = ttl.map(|t| Instant::now() + t)?;
        self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
        Some(t)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> StoreResult<T>) -> StoreResult<T> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Poisoned("memory"))?;
        let now = Instant::now();
        if inner.earliest.is_some_and(|t| t <= now) {
            inner.map.retain(|_, e| e.expires.is_none_or(|t| t > now));
            inner.earliest = inner.map.values().filter_map(|e| e.expires).min();
        }
        f(&mut inner)
    }
}

fn wrong_type(key: &str) -> StoreError {
    StoreError::WrongType(key.to_string())
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|m| match m.map.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Bytes(b),
                ..
            }) => Ok(Some(b.clone())),
            Some(Entry {
                value: Value::Counter(c),
                ..
            }) => Ok(Some(c.to_string().into_bytes())),
            Some(_) => Err(wrong_type(key)),
        })
    }

    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.with(|m| {
            let expires = m.deadline(ttl);
            m.map.insert(
                key.to_string(),
                Entry {
                    value: Value::Bytes(value.to_vec()),
                    expires,
                },
            );
            Ok(())
        })
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        self.with(|m| {
            m.map.remove(key);
            Ok(())
        })
    }

    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        self.with(|m| {
            let expires = m.deadline(ttl);
            let entry = m.map.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Counter(0),
                expires,
            });
            match &mut entry.value {
                Value::Counter(c) => {
                    *c += by;
                    Ok(*c)
                }
                _ => Err(wrong_type(key)),
            }
        })
    }

    fn set_add(&self, key: &str, member: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        self.with(|m| {
            let expires = m.deadline(ttl);
            let entry = m.map.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Set(BTreeSet::new()),
                expires: None,
            });
            entry.expires = expires;
            match &mut entry.value {
                Value::Set(s) => Ok(s.insert(member.to_vec())),
                _ => Err(wrong_type(key)),
            }
        })
    }

    fn set_contains(&self, key: &str, member: &[u8]) -> StoreResult<bool> {
        self.with(|m| match m.map.get(key) {
            None => Ok(false),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Ok(s.contains(member)),
            Some(_) => Err(wrong_type(key)),
        })
    }

    fn set_members(&self, key: &str) -> StoreResult<Vec<Vec<u8>>> {
        self.with(|m| match m.map.get(key) {
            None => Ok(Vec::new()),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Ok(s.iter().cloned().collect()),
            Some(_) => Err(wrong_type(key)),
        })
    }

    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.with(|m| {
            Ok(m.map
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_meets_the_contract() {
        super::super::contract::check_all(&MemoryStore::new());
    }

    #[test]
    fn a_sweep_keeps_what_has_not_expired_and_later_expiries_still_count() {
        let s = MemoryStore::new();
        let short = Some(Duration::from_millis(1));
        s.put("a", b"1", short).unwrap();
        s.put("b", b"2", Some(Duration::from_secs(3600))).unwrap();
        s.set_add("set", b"m", None).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get("a").unwrap(), None);
        assert_eq!(s.get("b").unwrap().as_deref(), Some(&b"2"[..]));
        assert!(s.set_contains("set", b"m").unwrap());
        // An expiry set after a sweep is honoured too.
        assert_eq!(s.incr("c", 2, short).unwrap(), 2);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get("c").unwrap(), None);
        assert_eq!(s.keys_with_prefix("").unwrap(), ["b", "set"]);
    }

    #[test]
    fn values_expire() {
        let s = MemoryStore::new();
        s.put("k", b"v", Some(Duration::from_millis(1))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get("k").unwrap(), None);
    }
}
