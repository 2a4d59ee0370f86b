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
use crate::store::{hash, Reads, Snapshot, StoreResult, WriteOp};
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

/// One From identity of a message (its address, registrable domain or
/// display name) and the keys that judge it.
struct Identity {
    kind: Kind,
    /// As compared and kept (names: their key).
    value: String,
    /// As the mail wrote it, for evidence (names are kept so).
    shown: String,
    /// The set of the account's own values of this kind.
    owned_key: String,
    /// The uses of this value while it is not the account's.
    uses_key: String,
}

/// The From of one message of one account, ready to be judged: every key
/// the judgement reads is known before the store is asked.
struct Plan {
    account_key: String,
    /// Messages the account sent (its learning phase).
    history_key: String,
    /// A login that is itself an address owns that address and its domain.
    login_owns: Vec<(Kind, String)>,
    identities: Vec<Identity>,
}

fn plan(account: &str, from: Option<&Mailbox>) -> Option<Plan> {
    let from = from?;
    let address = from.address_lower()?;
    let a = account_key(account);
    let from_domain = from.domain().unwrap_or_default();
    let mut values = vec![
        (Kind::Address, address.clone(), address),
        (
            Kind::Domain,
            crate::domains::registrable(&from_domain),
            crate::domains::registrable_as_written(&from_domain),
        ),
    ];
    if let Some(name) = from.name.as_deref() {
        values.push((
            Kind::Name,
            crate::names::normalize(name),
            name.trim().to_string(),
        ));
    }
    let identities = values
        .into_iter()
        .filter(|(_, value, _)| !value.is_empty())
        .map(|(kind, value, shown)| Identity {
            kind,
            owned_key: id_key(&a, kind),
            uses_key: format!(
                "ob:idc:{a}:{}:{}",
                kind.key(),
                hash::digest(kind.key(), &value)
            ),
            value,
            shown,
        })
        .collect();
    let mut login_owns: Vec<(Kind, String)> = Vec::new();
    if account.contains('@') {
        let login = account.trim().to_lowercase();
        if let Some(d) = crate::view::address::domain_of(&login) {
            login_owns.push((Kind::Domain, crate::domains::registrable(&d)));
        }
        login_owns.push((Kind::Address, login));
    }
    Some(Plan {
        history_key: format!("ob:h:{a}"),
        account_key: a,
        login_owns,
        identities,
    })
}

/// The lookup stage's part: the keys [`judge`] reads for this From.
pub fn reads(account: &str, from: Option<&Mailbox>, reads: &mut Reads) {
    let Some(plan) = plan(account, from) else {
        return;
    };
    reads.value(plan.history_key);
    for id in plan.identities {
        reads.set(id.owned_key);
        reads.value(id.uses_key);
    }
}

/// Judge the From of one message of `account` against what the lookup
/// read ([`reads`]): the evidence for `from_not_owned`, if any, and the
/// writes that teach the account's identities from this message (applied
/// after the verdict).
pub fn judge(
    state: &Snapshot,
    config: &OutboundConfig,
    account: &str,
    from: Option<&Mailbox>,
) -> StoreResult<(Option<String>, Vec<WriteOp>)> {
    let mut writes = Vec::new();
    let Some(plan) = plan(account, from) else {
        return Ok((None, writes));
    };
    let ttl = Some(Duration::from_secs(config.history_days.max(1) * 86400));
    for (kind, value) in &plan.login_owns {
        writes.push(WriteOp::SetAdd {
            key: id_key(&plan.account_key, *kind),
            member: value.as_bytes().to_vec(),
            ttl,
        });
    }
    let seen = state.count(&plan.history_key)? + 1;
    writes.push(WriteOp::Incr {
        key: plan.history_key.clone(),
        by: 1,
        ttl,
    });
    let learning = seen <= config.from_learning_messages;
    let mut strange = Vec::new();
    for id in &plan.identities {
        // Names are kept as written and compared by their key; addresses
        // and domains are kept as compared.
        let member = if id.kind == Kind::Name {
            &id.shown
        } else {
            &id.value
        };
        let owned = plan
            .login_owns
            .iter()
            .any(|(k, v)| *k == id.kind && *v == id.value)
            || match id.kind {
                Kind::Name => owns_name(state, &id.owned_key, &id.value)?,
                _ if learning => false,
                _ => state.contains(&id.owned_key, id.value.as_bytes())?,
            };
        if learning {
            if !owned {
                writes.push(WriteOp::SetAdd {
                    key: id.owned_key.clone(),
                    member: member.as_bytes().to_vec(),
                    ttl,
                });
            }
            continue;
        }
        if owned {
            continue;
        }
        let uses = state.count(&id.uses_key)? + 1;
        writes.push(WriteOp::Incr {
            key: id.uses_key.clone(),
            by: 1,
            ttl,
        });
        if config.from_adopt_after > 0 && uses >= config.from_adopt_after {
            writes.push(WriteOp::SetAdd {
                key: id.owned_key.clone(),
                member: member.as_bytes().to_vec(),
                ttl,
            });
        }
        strange.push((id.kind, &id.shown, known_sample(state, &id.owned_key)?));
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

/// Whether the account's names include one with the key `name_key`.
fn owns_name(state: &Snapshot, key: &str, name_key: &str) -> StoreResult<bool> {
    Ok(state
        .members(key)?
        .iter()
        .any(|m| crate::names::normalize(&String::from_utf8_lossy(m)) == name_key))
}

fn id_key(account_key: &str, kind: Kind) -> String {
    format!("ob:id:{account_key}:{}", kind.key())
}

/// Up to three values the account did use, for the evidence.
fn known_sample(state: &Snapshot, key: &str) -> StoreResult<Vec<String>> {
    let mut values: Vec<String> = state
        .members(key)?
        .iter()
        .map(|v| format!("{:?}", String::from_utf8_lossy(v)))
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
    use crate::store::{MemoryStore, Store};

    /// Look up, judge, and commit the writes, as a scan and its commit do.
    fn check(
        store: &dyn Store,
        config: &OutboundConfig,
        account: &str,
        from: Option<&Mailbox>,
    ) -> StoreResult<Option<String>> {
        let mut asked = Reads::default();
        reads(account, from, &mut asked);
        let (evidence, writes) = judge(&store.read(&asked)?, config, account, from)?;
        store.write_batch(&writes)?;
        Ok(evidence)
    }

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
