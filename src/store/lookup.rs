//! Stage 1 of a scan, the lookup: every store read a message needs is
//! asked for before any detector runs ([`Reads`]) and answered in one batch
//! ([`crate::store::Store::read`]: one read transaction on SQLite, one
//! pipeline on Redis). Detectors then judge against the answer
//! ([`Snapshot`]), never against the store itself: they cannot write it,
//! and the same message against the same snapshot gets the same hits.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{StoreError, StoreResult};

/// The keys a scan will read: plain values (records, counters), sets read
/// whole, and single memberships (of sets too large to read whole, such as
/// an account's known recipients).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reads {
    values: BTreeSet<String>,
    sets: BTreeSet<String>,
    memberships: BTreeSet<(String, Vec<u8>)>,
}

impl Reads {
    /// Read the value (or counter) at `key`.
    pub fn value(&mut self, key: String) {
        self.values.insert(key);
    }

    /// Read the members of the set at `key`.
    pub fn set(&mut self, key: String) {
        self.sets.insert(key);
    }

    /// Whether the set at `key` holds `member`.
    pub fn membership(&mut self, key: String, member: Vec<u8>) {
        self.memberships.insert((key, member));
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many reads are asked for.
    pub fn len(&self) -> usize {
        self.values.len() + self.sets.len() + self.memberships.len()
    }

    /// Add every read of `other`.
    pub fn extend(&mut self, other: Reads) {
        self.values.extend(other.values);
        self.sets.extend(other.sets);
        self.memberships.extend(other.memberships);
    }

    /// Every key read: values, sets and the sets of memberships.
    pub fn keys(&self) -> Vec<&str> {
        self.values
            .iter()
            .chain(&self.sets)
            .chain(self.memberships.iter().map(|(k, _)| k))
            .map(String::as_str)
            .collect()
    }

    /// The value keys, sorted.
    pub fn value_keys(&self) -> Vec<String> {
        self.values.iter().cloned().collect()
    }

    /// The set keys, sorted.
    pub fn set_keys(&self) -> Vec<String> {
        self.sets.iter().cloned().collect()
    }

    /// The (set key, member) pairs, sorted.
    pub fn membership_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.memberships
            .iter()
            .map(|(k, m)| (k.as_str(), m.as_slice()))
    }
}

/// The store's answer to [`Reads`], as it was when read. Asking for a key
/// that was not among the reads is an error (a detector that forgot to
/// declare a read), never a silent "unknown".
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    values: HashMap<String, Option<Vec<u8>>>,
    sets: HashMap<String, Vec<Vec<u8>>>,
    memberships: HashMap<(String, Vec<u8>), bool>,
}

impl Snapshot {
    /// The answer built from what a backend read: `values[i]` for
    /// `reads.value_keys()[i]`, `sets[i]` for `reads.set_keys()[i]`,
    /// `memberships[i]` for the i-th of `reads.membership_pairs()`.
    pub fn from_parts(
        reads: &Reads,
        values: Vec<Option<Vec<u8>>>,
        sets: Vec<Vec<Vec<u8>>>,
        memberships: Vec<bool>,
    ) -> StoreResult<Snapshot> {
        if values.len() != reads.values.len()
            || sets.len() != reads.sets.len()
            || memberships.len() != reads.memberships.len()
        {
            return Err(StoreError::new(format!(
                "lookup: asked for {} values, {} sets and {} memberships, got {}, {} and {}",
                reads.values.len(),
                reads.sets.len(),
                reads.memberships.len(),
                values.len(),
                sets.len(),
                memberships.len()
            )));
        }
        Ok(Snapshot {
            values: reads.values.iter().cloned().zip(values).collect(),
            sets: reads
                .sets
                .iter()
                .cloned()
                .zip(sets)
                .map(|(key, mut members)| {
                    // Sorted, so that membership is a binary search.
                    members.sort_unstable();
                    (key, members)
                })
                .collect(),
            memberships: reads.memberships.iter().cloned().zip(memberships).collect(),
        })
    }

    /// The value at `key`; None when the store holds none.
    pub fn value(&self, key: &str) -> StoreResult<Option<&[u8]>> {
        match self.values.get(key) {
            Some(v) => Ok(v.as_deref()),
            None => Err(StoreError::NotLookedUp(key.to_string())),
        }
    }

    /// A counter's value: 0 when absent, unreadable or negative.
    pub fn count(&self, key: &str) -> StoreResult<u64> {
        Ok(self
            .value(key)?
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<i64>().ok())
            .map_or(0, |n| n.max(0) as u64))
    }

    /// The members of the set at `key`, sorted; empty when there is none.
    pub fn members(&self, key: &str) -> StoreResult<&[Vec<u8>]> {
        match self.sets.get(key) {
            Some(m) => Ok(m),
            None => Err(StoreError::NotLookedUp(key.to_string())),
        }
    }

    /// Whether the set at `key` holds `member`: from the set when it was
    /// read whole, else from the membership asked for.
    pub fn contains(&self, key: &str, member: &[u8]) -> StoreResult<bool> {
        if let Some(members) = self.sets.get(key) {
            return Ok(members
                .binary_search_by(|m| m.as_slice().cmp(member))
                .is_ok());
        }
        // (an owned pair only to look it up: memberships are few)
        match self.memberships.get(&(key.to_string(), member.to_vec())) {
            Some(held) => Ok(*held),
            None => Err(StoreError::NotLookedUp(key.to_string())),
        }
    }
}

/// What the lookup stage hands the detectors: the snapshot, or why the store
/// could not answer (each detector that needed it reports `scan.error`).
#[derive(Debug, Clone)]
pub struct Lookup(Result<Arc<Snapshot>, Arc<StoreError>>);

impl Lookup {
    pub fn answered(snapshot: Snapshot) -> Lookup {
        Lookup(Ok(Arc::new(snapshot)))
    }

    pub fn failed(error: StoreError) -> Lookup {
        Lookup(Err(Arc::new(error)))
    }

    /// Nothing was asked for: every read is an error.
    pub fn empty() -> Lookup {
        Lookup::answered(Snapshot::default())
    }

    /// The snapshot, or the store's error.
    pub fn snapshot(&self) -> StoreResult<&Snapshot> {
        match &self.0 {
            Ok(s) => Ok(s),
            Err(e) => Err(StoreError::Lookup(e.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_answers_what_was_asked_and_refuses_the_rest() {
        let mut reads = Reads::default();
        reads.value("b".into());
        reads.value("a".into());
        reads.value("a".into());
        reads.set("s".into());
        reads.membership("big".into(), b"m".to_vec());
        reads.membership("big".into(), b"n".to_vec());
        assert_eq!(reads.len(), 5);
        assert_eq!(reads.value_keys(), ["a", "b"]);
        let snap = Snapshot::from_parts(
            &reads,
            vec![Some(b"7".to_vec()), None],
            vec![vec![b"y".to_vec(), b"x".to_vec()]],
            vec![true, false],
        )
        .unwrap();
        assert_eq!(snap.value("a").unwrap(), Some(&b"7"[..]));
        assert_eq!(snap.count("a").unwrap(), 7);
        assert_eq!(snap.count("b").unwrap(), 0);
        assert!(snap.contains("s", b"y").unwrap());
        assert!(!snap.contains("s", b"z").unwrap());
        assert!(snap.contains("big", b"m").unwrap());
        assert!(!snap.contains("big", b"n").unwrap());
        assert!(snap.contains("big", b"o").is_err(), "not asked for");
        let err = snap.value("c").unwrap_err().to_string();
        assert!(err.contains("not looked up") && err.contains('c'), "{err}");
        assert!(snap.members("a").is_err());
        assert!(Snapshot::from_parts(&reads, vec![None], vec![], vec![]).is_err());
    }

    #[test]
    fn a_failed_lookup_gives_its_error_to_every_reader() {
        let lookup = Lookup::failed(StoreError::new("down"));
        let first = lookup.snapshot().unwrap_err().to_string();
        let second = lookup.snapshot().unwrap_err().to_string();
        assert_eq!(first, second);
        assert!(first.contains("down"), "{first}");
    }
}
