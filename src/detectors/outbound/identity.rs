//! The From identities an account owns, learned over time: addresses,
//! registrable domains and display names. An account's first messages teach
//! (no history: nothing to compare with, so nothing fires); after that, an
//! identity it never used fires `outbound.from_not_owned`, and becomes its
//! own only after `from_adopt_after` messages — a new alias of a real user
//! is tagged a few times, a forged sender in a compromised account's burst
//! trips the rate limits long before.
//!
//! Keys: `ob:h:{a}` messages seen (learning phase), `ob:id:{a}:{kind}` set of
//! owned values, `ob:idc:{a}:{kind}:{hash}` uses of an unfamiliar value
//! (the store's hash of the value in the kind's namespace, so an address
//! hashes as [`hash::address`] does).
//!
//! Display names are compared as a reader sees them, by the key of
//! [`crate::names::normalize`] (the same key the correspondent memory and
//! `display_name` use), and kept as the mail wrote them: the key is a
//! skeleton ("Yamada" becomes "yarnada"), not something to show anyone.

use std::time::Duration;

use super::config::OutboundConfig;
use super::counters::account_key;
use crate::store::{hash, Store, StoreResult, WriteOp};
use crate::view::Mailbox;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Address,
    Domain,
    Name,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Address => "addr",
            Kind::Domain => "dom",
            Kind::Name => "name",
        }
    }
}

/// Judge the From of one message of `account` and learn from it at once
/// ([`judge`], then its writes). Returns the evidence for
/// `from_not_owned` when the From is not the account's.
pub fn check(
    store: &dyn Store,
    config: &OutboundConfig,
    account: &str,
    from: Option<&Mailbox>,
) -> StoreResult<Option<String>> {
    let (evidence, writes) = judge(store, config, account, from)?;
    store.write_batch(&writes)?;
    Ok(evidence)
}

/// Judge the From of one message of `account`, reading the store only: the
/// evidence for `from_not_owned`, if any, and the writes that teach the
/// account's identities from this message (applied after the verdict).
pub fn judge(
    store: &dyn Store,
    config: &OutboundConfig,
    account: &str,
    from: Option<&Mailbox>,
) -> StoreResult<(Option<String>, Vec<WriteOp>)> {
    let mut writes = Vec::new();
    let Some(from) = from else {
        return Ok((None, writes));
    };
    let Some(address) = from.address_lower() else {
        return Ok((None, writes));
    };
    let a = account_key(account);
    let ttl = Some(Duration::from_secs(config.history_days.max(1) * 86400));
    // (the registrable domain as compared and kept, as the mail wrote it)
    let from_domain = from.domain().unwrap_or_default();
    let domain = crate::domains::registrable(&from_domain);
    let domain_shown = crate::domains::registrable_as_written(&from_domain);
    // (the value compared and kept, the value as the mail wrote it)
    let name = from
        .name
        .as_deref()
        .map(|n| (crate::names::normalize(n), n.trim()))
        .filter(|(key, _)| !key.is_empty());

    // A login that is itself an address owns that address and its domain.
    let mut login_owns: Vec<(Kind, String)> = Vec::new();
    if account.contains('@') {
        let login = account.trim().to_lowercase();
        if let Some(d) = crate::view::address::domain_of(&login) {
            login_owns.push((Kind::Domain, crate::domains::registrable(&d)));
        }
        login_owns.push((Kind::Address, login));
    }
    for (kind, value) in &login_owns {
        writes.push(WriteOp::SetAdd {
            key: id_key(&a, *kind),
            member: value.as_bytes().to_vec(),
            ttl,
        });
    }

    let history_key = format!("ob:h:{a}");
    let seen = read_count(store, &history_key)? + 1;
    writes.push(WriteOp::Incr {
        key: history_key,
        by: 1,
        ttl,
    });
    let learning = seen <= config.from_learning_messages;
    let mut identities = vec![
        (Kind::Address, address.clone(), address.as_str()),
        (Kind::Domain, domain.clone(), domain_shown.as_str()),
    ];
    if let Some((key, shown)) = &name {
        identities.push((Kind::Name, key.clone(), shown));
    }
    let mut strange = Vec::new();
    for (kind, value, shown) in identities {
        if value.is_empty() {
            continue;
        }
        let key = id_key(&a, kind);
        // Names are kept as written and compared by their key; addresses
        // and domains are kept as compared.
        let member = if kind == Kind::Name { shown } else { &value };
        let owned = login_owns.iter().any(|(k, v)| *k == kind && *v == value)
            || match kind {
                Kind::Name => owns_name(store, &key, &value)?,
                _ if learning => false,
                _ => store.set_contains(&key, value.as_bytes())?,
            };
        if learning {
            if !owned {
                writes.push(WriteOp::SetAdd {
                    key,
                    member: member.as_bytes().to_vec(),
                    ttl,
                });
            }
            continue;
        }
        if owned {
            continue;
        }
        let uses_key = format!(
            "ob:idc:{a}:{}:{}",
            kind.key(),
            hash::digest(kind.key(), &value)
        );
        let uses = read_count(store, &uses_key)? + 1;
        writes.push(WriteOp::Incr {
            key: uses_key,
            by: 1,
            ttl,
        });
        if config.from_adopt_after > 0 && uses >= config.from_adopt_after {
            writes.push(WriteOp::SetAdd {
                key: key.clone(),
                member: member.as_bytes().to_vec(),
                ttl,
            });
        }
        strange.push((kind, shown, known_sample(store, &key)?));
    }
    if strange.is_empty() {
        return Ok((None, writes));
    }
    // An unknown address at a known domain says less than an unknown domain;
    // report the strongest facts, the address only when its domain is known.
    let domain_unknown = strange.iter().any(|(k, _, _)| *k == Kind::Domain);
    let parts: Vec<String> = strange
        .iter()
        .filter(|(k, _, _)| !(domain_unknown && *k == Kind::Address))
        .map(|(kind, value, known)| {
            let what = match kind {
                Kind::Address => "From address",
                Kind::Domain => "From domain",
                Kind::Name => "display name",
            };
            if known.is_empty() {
                format!("{what} {value:?} never used by {account}")
            } else {
                format!(
                    "{what} {value:?} never used by {account} (used: {})",
                    known.join(", ")
                )
            }
        })
        .collect();
    Ok((Some(parts.join("; ")), writes))
}

/// A counter's value (0 when absent or unreadable).
fn read_count(store: &dyn Store, key: &str) -> StoreResult<u64> {
    Ok(store
        .get(key)?
        .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<i64>().ok())
        .map_or(0, |n| n.max(0) as u64))
}

/// Whether the account's names include one with the key `name_key`.
fn owns_name(store: &dyn Store, key: &str, name_key: &str) -> StoreResult<bool> {
    Ok(store
        .set_members(key)?
        .iter()
        .any(|m| crate::names::normalize(&String::from_utf8_lossy(m)) == name_key))
}

fn id_key(account_key: &str, kind: Kind) -> String {
    format!("ob:id:{account_key}:{}", kind.key())
}

/// Up to three values the account did use, for the evidence.
fn known_sample(store: &dyn Store, key: &str) -> StoreResult<Vec<String>> {
    let mut values: Vec<String> = store
        .set_members(key)?
        .into_iter()
        .map(|v| format!("{:?}", String::from_utf8_lossy(&v)))
        .collect();
    values.sort();
    if values.len() > 3 {
        let more = values.len() - 3;
        values.truncate(3);
        values.push(format!("{more} more"));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn mb(name: Option<&str>, addr: &str) -> Mailbox {
        Mailbox::new(name, Some(addr))
    }

    fn config(learning: u64, adopt: u64) -> OutboundConfig {
        OutboundConfig {
            from_learning_messages: learning,
            from_adopt_after: adopt,
            ..OutboundConfig::default()
        }
    }

    #[test]
    fn names_compare_by_the_one_name_key() {
        // Width, honorifics, word spacing and look-alike letters are the
        // same name here as in display_name and the correspondent memory.
        let s = MemoryStore::new();
        let c = config(1, 0);
        let own = mb(Some("Taro Yamada"), "taro@example.co.jp");
        assert_eq!(check(&s, &c, "taro", Some(&own)).unwrap(), None);
        for same in [
            "\"Ｔａｒｏ　 Yamada\"",
            "Mr. Taro Yamada",
            "T\u{0430}ro Yamada",
        ] {
            let alias = mb(Some(same), "taro@example.co.jp");
            assert_eq!(check(&s, &c, "taro", Some(&alias)).unwrap(), None, "{same}");
        }
        let other = mb(Some("Yamada Hanako"), "taro@example.co.jp");
        let e = check(&s, &c, "taro", Some(&other)).unwrap().unwrap();
        assert_eq!(
            e,
            "display name \"Yamada Hanako\" never used by taro (used: \"Taro Yamada\")"
        );
    }

    #[test]
    fn new_account_passes_then_strangers_fire() {
        let s = MemoryStore::new();
        let c = config(2, 3);
        let own = mb(Some("Taro Yamada"), "taro@example.co.jp");
        assert_eq!(check(&s, &c, "taro", Some(&own)).unwrap(), None);
        assert_eq!(check(&s, &c, "taro", Some(&own)).unwrap(), None);
        assert_eq!(check(&s, &c, "taro", Some(&own)).unwrap(), None);
        // A subdomain of the same registrable domain and a name in other
        // width are the same identity; the new address is not.
        let alias = mb(Some("ＴＡＲＯ Yamada"), "t.yamada@mail.example.co.jp");
        let e = check(&s, &c, "taro", Some(&alias)).unwrap().unwrap();
        assert!(
            e.starts_with("From address \"t.yamada@mail.example.co.jp\" never used by taro (used: \"taro@example.co.jp\")"),
            "{e}"
        );
        assert!(!e.contains("domain"), "{e}");
        // Another person at another domain: domain and name are reported.
        let forged = mb(Some("Hanako Suzuki"), "billing@unrelated.example");
        let e = check(&s, &c, "taro", Some(&forged)).unwrap().unwrap();
        assert!(
            e.contains("From domain \"unrelated.example\" never used by taro"),
            "{e}"
        );
        assert!(
            e.contains("display name \"Hanako Suzuki\" never used by taro (used: \"Taro Yamada\")"),
            "{e}"
        );
        assert!(!e.contains("From address"), "{e}");
    }

    #[test]
    fn unfamiliar_identity_is_adopted_after_repeated_use() {
        let s = MemoryStore::new();
        let c = config(1, 3);
        let own = mb(None, "taro@example.jp");
        assert_eq!(check(&s, &c, "taro", Some(&own)).unwrap(), None);
        let alias = mb(None, "sales@example.jp");
        for _ in 0..3 {
            assert!(check(&s, &c, "taro", Some(&alias)).unwrap().is_some());
        }
        assert_eq!(check(&s, &c, "taro", Some(&alias)).unwrap(), None);
    }

    #[test]
    fn login_address_is_always_owned() {
        let s = MemoryStore::new();
        let c = config(0, 0);
        let own = mb(None, "Taro@Example.jp");
        assert_eq!(check(&s, &c, "taro@example.jp", Some(&own)).unwrap(), None);
        let other = mb(None, "x@elsewhere.example");
        assert!(check(&s, &c, "taro@example.jp", Some(&other))
            .unwrap()
            .is_some());
    }
}
