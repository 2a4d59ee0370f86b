//! `known_correspondent`: a display name the state store has seen in earlier
//! mail (learned from a Sent folder or from mail the milter passed), always
//! at other organisations than the sender's. The directory covers the people
//! an admin lists; this covers everyone else the organisation writes with.

use std::collections::BTreeSet;

use super::{clip, Match, Sender};
use crate::domains::registrable;
use crate::names;
use crate::store::correspondents::{self, KnownAddress};
use crate::store::{hash, Reads, Snapshot, StoreResult};

/// A name seen at this many registrable domains is a role or a common name
/// ("Support", "Info", "Accounts") shared by many senders, not one person.
const GENERIC_NAME_DOMAINS: usize = 3;

/// The lookup stage's part: the name sets [`check`] reads for `name`.
pub(super) fn reads(name: &str, reads: &mut Reads) {
    for key in names::lookup_keys(name) {
        for variant in key.variants() {
            if let Some(key) = correspondents::name_key_of(&variant) {
                reads.set(key);
            }
        }
    }
}

/// Push a `known_correspondent` match when the sender's display name is known
/// from earlier mail only at other registrable domains (or, on free mail,
/// only under other addresses).
pub(super) fn check(
    sender: &Sender<'_>,
    name: &str,
    state: &Snapshot,
    is_freemail: impl Fn(&str) -> bool,
    out: &mut Vec<Match>,
) -> StoreResult<()> {
    let sender_hash = hash::address(&sender.address);
    let sender_is_free = is_freemail(&sender.reg);
    for key in names::lookup_keys(name) {
        let mut known: Vec<KnownAddress> = Vec::new();
        // The store keeps names in written order; try every word order.
        for variant in key.variants() {
            for k in correspondents::addresses_for_name(state, &variant)? {
                if !known.contains(&k) {
                    known.push(k);
                }
            }
        }
        if known.is_empty() {
            continue;
        }
        // The store keeps domains as the mail wrote them: compare keys.
        let own = |k: &KnownAddress| {
            k.address_hash == sender_hash
                || (!sender_is_free && registrable(&k.domain) == sender.reg)
        };
        if known.iter().any(own) {
            // The sender was seen with this name before: a known correspondent.
            return Ok(());
        }
        // Each registrable domain once, shown as first written.
        let mut keys = BTreeSet::new();
        let domains: BTreeSet<&str> = known
            .iter()
            .filter(|k| keys.insert(registrable(&k.domain)))
            .map(|k| k.domain.as_str())
            .collect();
        if domains.len() >= GENERIC_NAME_DOMAINS {
            continue;
        }
        let n = known.len();
        out.push(Match {
            rule: "known_correspondent",
            evidence: format!(
                "display name \"{}\" is known from earlier mail at {} ({n} address{}); From is {}",
                clip(name, 80),
                domains.into_iter().collect::<Vec<_>>().join(", "),
                if n == 1 { "" } else { "es" },
                sender.address
            ),
        });
        return Ok(());
    }
    Ok(())
}
