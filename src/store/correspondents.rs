//! Known correspondents, built from every remembered message:
//! address → display names seen, first and last seen, message count;
//! display name → addresses (for `display_name.known_correspondent`).
//!
//! Keys (values are JSON or set members):
//! - `corr:addr:<hash(address)>` → [`AddressRecord`]
//! - `corr:name:<hash(normalised name)>` → set of `<hash(address)> <registrable domain>`
//!
//! Addresses and names are hashed ([`super::hash`]); the registrable domain
//! of an address is kept in clear so evidence can say where a name is known.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{hash, Snapshot, Store, StoreResult, WriteOp};

/// Names kept per address; more are not added (a shared mailbox may have many).
pub const MAX_NAMES_PER_ADDRESS: usize = 16;

/// What is known of one address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    /// Unix time of the earliest and latest message seen with this address.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Distinct messages (by Message-ID) this address took part in.
    pub messages: u64,
    /// Hashes of the normalised display names seen with it.
    pub names: Vec<String>,
}

impl AddressRecord {
    /// Was this address seen with this display name?
    pub fn has_name(&self, name: &str) -> bool {
        name_hash(name).is_some_and(|h| self.names.contains(&h))
    }
}

/// An address known under some display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAddress {
    pub address_hash: String,
    /// Registrable domain, e.g. `legal-holdings.co.jp`.
    pub domain: String,
}

/// The hash of a display name's key ([`crate::names::normalize`], the key
/// `display_name` matches names by: "山田 太郎 様" and "山田　太郎" are one
/// name); None when nothing of the name is left.
pub fn name_hash(name: &str) -> Option<String> {
    let n = crate::names::normalize(name);
    (!n.is_empty()).then(|| hash::digest("name", &n))
}

pub fn address_key(address: &str) -> String {
    format!("corr:addr:{}", hash::address(address))
}

fn name_key(name_hash: &str) -> String {
    format!("corr:name:{name_hash}")
}

/// What is known of `address`, if anything.
pub fn lookup_address(store: &dyn Store, address: &str) -> StoreResult<Option<AddressRecord>> {
    Ok(store
        .get(&address_key(address))?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Parse a record read with `get_many`; a damaged record reads as unknown.
pub fn parse_record(value: Option<&[u8]>) -> Option<AddressRecord> {
    value.and_then(|v| serde_json::from_slice(v).ok())
}

/// The key of the set of addresses seen with this display name.
pub fn name_key_of(name: &str) -> Option<String> {
    name_hash(name).map(|h| name_key(&h))
}

/// Every address seen with this display name, as the lookup read it
/// ([`name_key_of`]).
pub fn addresses_for_name(state: &Snapshot, name: &str) -> StoreResult<Vec<KnownAddress>> {
    let Some(key) = name_key_of(name) else {
        return Ok(Vec::new());
    };
    Ok(state
        .members(&key)?
        .iter()
        .filter_map(|m| {
            let m = std::str::from_utf8(m).ok()?;
            let (address_hash, domain) = m.split_once(' ')?;
            Some(KnownAddress {
                address_hash: address_hash.to_string(),
                domain: domain.to_string(),
            })
        })
        .collect())
}

/// One mailbox of a message being remembered.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub address: &'a str,
    pub name: Option<&'a str>,
}

/// The writes that record `seen` in a message dated `date`, given the
/// address records read before (`previous[i]` for `seen[i]`).
pub fn record_writes(
    seen: &[Seen<'_>],
    previous: &[Option<AddressRecord>],
    date: i64,
    ttl: Duration,
) -> Vec<WriteOp> {
    let mut ops = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let mut rec = previous.get(i).cloned().flatten().unwrap_or(AddressRecord {
            first_seen: date,
            last_seen: date,
            messages: 0,
            names: Vec::new(),
        });
        rec.first_seen = rec.first_seen.min(date);
        rec.last_seen = rec.last_seen.max(date);
        rec.messages += 1;
        let name_h = s.name.and_then(name_hash);
        if let Some(h) = &name_h {
            if !rec.names.contains(h) && rec.names.len() < MAX_NAMES_PER_ADDRESS {
                rec.names.push(h.clone());
            }
        }
        ops.push(WriteOp::Put {
            key: address_key(s.address),
            value: serde_json::to_vec(&rec).unwrap_or_default(),
            ttl: Some(ttl),
        });
        if let Some(h) = name_h {
            // In clear as the mail wrote it, for evidence; compared by key.
            let domain = crate::view::address::domain_of(s.address)
                .map(|d| crate::domains::registrable_as_written(&d))
                .unwrap_or_default();
            ops.push(WriteOp::SetAdd {
                key: name_key(&h),
                member: format!("{} {domain}", hash::address(s.address)).into_bytes(),
                ttl: Some(ttl),
            });
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::normalize as normalize_name;
    use crate::store::MemoryStore;

    #[test]
    fn names_normalise_across_width_space_and_honorifics() {
        assert_eq!(normalize_name("山田 太郎 様"), "山田太郎");
        assert_eq!(normalize_name("山田　太郎さん"), "山田太郎");
        assert_eq!(
            normalize_name("\"Ｔａｒｏ　Ｙａｍａｄａ\""),
            normalize_name("Taro Yamada")
        );
        // Look-alike letters reduce to the same skeleton (Cyrillic а, о).
        assert_eq!(normalize_name("Tаrо Yamada"), normalize_name("Taro Yamada"));
        assert_eq!(normalize_name("  "), "");
        assert_eq!(name_hash("様"), None);
        assert_eq!(name_hash("Taro Yamada"), name_hash("TARO  YAMADA"));
    }

    #[test]
    fn records_accumulate_names_dates_and_counts() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(3600);
        let seen = [Seen {
            address: "Taro@Legal-Holdings.co.jp",
            name: Some("山田 太郎"),
        }];
        store
            .write_batch(&record_writes(&seen, &[None], 2_000, ttl))
            .unwrap();
        let prev = lookup_address(&store, "taro@legal-holdings.co.jp").unwrap();
        let seen2 = [Seen {
            address: "taro@legal-holdings.co.jp",
            name: Some("Taro Yamada"),
        }];
        store
            .write_batch(&record_writes(&seen2, &[prev], 1_000, ttl))
            .unwrap();
        let rec = lookup_address(&store, "taro@legal-holdings.co.jp")
            .unwrap()
            .unwrap();
        assert_eq!(
            (rec.first_seen, rec.last_seen, rec.messages),
            (1_000, 2_000, 2)
        );
        assert!(rec.has_name("山田　太郎 様") && rec.has_name("taro yamada"));
        assert!(!rec.has_name("Hanako"));
        // Looked up as a scan does: the name's set, then its addresses.
        let addresses = |name: &str| {
            let mut reads = crate::store::Reads::default();
            reads.set(name_key_of(name).unwrap());
            addresses_for_name(&store.read(&reads).unwrap(), name).unwrap()
        };
        let known = addresses("山田太郎");
        assert_eq!(
            known,
            vec![KnownAddress {
                address_hash: hash::address("taro@legal-holdings.co.jp"),
                domain: "legal-holdings.co.jp".into()
            }]
        );
        assert!(addresses("nobody").is_empty());
    }
}
