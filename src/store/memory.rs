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
    map: Mutex<BTreeMap<String, Entry>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Entry>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| StoreError::new("memory store lock poisoned"))?;
        let now = Instant::now();
        map.retain(|_, e| e.expires.is_none_or(|t| t > now));
        f(&mut map)
    }
}

fn deadline(ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|t| Instant::now() + t)
}

fn wrong_type(key: &str) -> StoreError {
    StoreError::new(format!("key {key} holds another type"))
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|m| match m.get(key) {
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
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Bytes(value.to_vec()),
                    expires: deadline(ttl),
                },
            );
            Ok(())
        })
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        self.with(|m| {
            m.remove(key);
            Ok(())
        })
    }

    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        self.with(|m| {
            let entry = m.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Counter(0),
                expires: deadline(ttl),
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
            let entry = m.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Set(BTreeSet::new()),
                expires: None,
            });
            entry.expires = deadline(ttl);
            match &mut entry.value {
                Value::Set(s) => Ok(s.insert(member.to_vec())),
                _ => Err(wrong_type(key)),
            }
        })
    }

    fn set_contains(&self, key: &str, member: &[u8]) -> StoreResult<bool> {
        self.with(|m| match m.get(key) {
            None => Ok(false),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Ok(s.contains(member)),
            Some(_) => Err(wrong_type(key)),
        })
    }

    fn set_members(&self, key: &str) -> StoreResult<Vec<Vec<u8>>> {
        self.with(|m| match m.get(key) {
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
            Ok(m.range(prefix.to_string()..)
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
    fn values_expire() {
        let s = MemoryStore::new();
        s.put("k", b"v", Some(Duration::from_millis(1))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get("k").unwrap(), None);
    }
}
