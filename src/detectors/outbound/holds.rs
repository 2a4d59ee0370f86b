//! Holds: when an account trips a limit, its mail is quarantined for
//! `hold_minutes`. One hold is one episode, stored under `ob:hold:{a}` as
//! JSON (account, reason, counters, first and last queue id, times), so
//! every milter sharing the store holds the account and `outbound status`
//! can show it. One alert line is logged when an episode starts, one
//! summary line when it ends (expiry noticed, or release).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::OutboundConfig;
use super::counters::{account_from_key, account_key};
use crate::store::{Reads, Snapshot, Store, StoreError, StoreResult};

const PREFIX: &str = "ob:hold:";

/// Episode records outlive their hold by this much, for `outbound status`.
const KEEP_AFTER_END: u64 = 7 * 86400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub account: String,
    /// The rules that tripped, with their evidence.
    pub reason: String,
    /// The account's window counters when the episode started.
    pub counters: String,
    /// Unix seconds: when the hold started, and until when it holds.
    pub since: u64,
    pub until: u64,
    pub first_queue_id: String,
    pub last_queue_id: String,
    /// Messages from the account seen during the episode, the first included.
    pub messages: u64,
}

impl Episode {
    pub fn active(&self, now: u64) -> bool {
        now < self.until
    }

    /// The evidence of `outbound.held` for mail of the held account, as
    /// that mail names it (the record keeps the form that started it).
    pub fn held_evidence(&self, account: &str) -> String {
        format!(
            "{account} on hold since {} until {} (first queue id {}): {}",
            crate::calendar::iso_utc(self.since),
            crate::calendar::iso_utc(self.until),
            self.first_queue_id,
            self.reason
        )
    }
}

fn key(account: &str) -> String {
    format!("{PREFIX}{}", account_key(account))
}

/// Claimed with `incr` by the process that starts an episode, so that two
/// milters sharing a store that trip at once log one alert, not two.
fn claim_key(account: &str) -> String {
    format!("ob:hl:{}", account_key(account))
}

fn forget(store: &dyn Store, account: &str) -> StoreResult<()> {
    store.delete(&key(account))?;
    store.delete(&claim_key(account))
}

pub fn get(store: &dyn Store, account: &str) -> StoreResult<Option<Episode>> {
    parse(account, store.get(&key(account))?.as_deref())
}

/// The lookup stage's part: the account's hold record.
pub fn reads(account: &str, reads: &mut Reads) {
    reads.value(key(account));
}

/// The account's hold as the lookup read it ([`reads`]).
pub fn get_from(state: &Snapshot, account: &str) -> StoreResult<Option<Episode>> {
    parse(account, state.value(&key(account))?)
}

fn parse(account: &str, record: Option<&[u8]>) -> StoreResult<Option<Episode>> {
    let Some(bytes) = record else {
        return Ok(None);
    };
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|source| bad_record(account, source))
}

fn bad_record(account: &str, source: serde_json::Error) -> StoreError {
    StoreError::BadRecord {
        key: key(account),
        what: "hold",
        source,
    }
}

fn put(store: &dyn Store, episode: &Episode, now: u64) -> StoreResult<()> {
    let json =
        serde_json::to_vec(episode).map_err(|source| bad_record(&episode.account, source))?;
    let ttl = episode.until.saturating_sub(now) + KEEP_AFTER_END;
    store.put(
        &key(&episode.account),
        &json,
        Some(Duration::from_secs(ttl)),
    )
}

/// What happened to the account's hold with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not held, nothing tripped.
    Free,
    /// This message started a new episode (alert logged, notify due).
    Started(Episode),
    /// The account was already held when this message came.
    AlreadyHeld(Episode),
}

/// Update the account's hold for one message: `trip` is the reason when this
/// message broke a limit. Logs the episode's alert and end lines.
pub fn on_message(
    store: &dyn Store,
    config: &OutboundConfig,
    account: &str,
    queue_id: &str,
    trip: Option<(&str, &str)>,
    now: u64,
) -> StoreResult<Outcome> {
    let hold = config.hold_minutes * 60;
    let mut current = get(store, account)?;
    if let Some(ep) = current.as_ref().filter(|ep| !ep.active(now)) {
        log_end(queue_id, ep, "hold expired");
        forget(store, account)?;
        current = None;
    }
    match (current, trip) {
        (None, None) => Ok(Outcome::Free),
        (None, Some((reason, counters))) => {
            let ep = Episode {
                account: account.to_string(),
                reason: reason.to_string(),
                counters: counters.to_string(),
                since: now,
                until: now + hold,
                first_queue_id: queue_id.to_string(),
                last_queue_id: queue_id.to_string(),
                messages: 1,
            };
            let claim_ttl = Some(Duration::from_secs(hold + KEEP_AFTER_END));
            if store.incr(&claim_key(account), 1, claim_ttl)? > 1 {
                // Another milter started this episode a moment ago.
                return Ok(Outcome::AlreadyHeld(get(store, account)?.unwrap_or(ep)));
            }
            put(store, &ep, now)?;
            tracing::warn!(
                "{queue_id}: outbound ALERT: account {account} held for {} min (until {}): {reason}; counters: {counters}; first queue id {queue_id}",
                config.hold_minutes,
                crate::calendar::iso_utc(ep.until)
            );
            Ok(Outcome::Started(ep))
        }
        (Some(mut ep), trip) => {
            let before = ep.clone();
            ep.messages += 1;
            ep.last_queue_id = queue_id.to_string();
            if trip.is_some() {
                // Still over a limit while held: the hold runs on.
                ep.until = ep.until.max(now + hold);
            }
            put(store, &ep, now)?;
            Ok(Outcome::AlreadyHeld(before))
        }
    }
}

/// Every episode on record (active or recently ended), sorted by account.
pub fn list(store: &dyn Store) -> StoreResult<Vec<Episode>> {
    let mut out = Vec::new();
    for k in store.keys_with_prefix(PREFIX)? {
        if let Some(ep) = get(store, &account_from_key(&k[PREFIX.len()..]))? {
            out.push(ep);
        }
    }
    Ok(out)
}

/// Accounts held right now.
pub fn active_count(store: &dyn Store, now: u64) -> StoreResult<usize> {
    Ok(list(store)?.iter().filter(|ep| ep.active(now)).count())
}

/// End the account's hold now and forget its window counters, so its next
/// message starts from zero. Returns the episode that was released.
pub fn release(store: &dyn Store, account: &str, who: &str) -> StoreResult<Option<Episode>> {
    let ep = get(store, account)?;
    forget(store, account)?;
    super::counters::reset(store, account)?;
    if let Some(ep) = &ep {
        log_end(&ep.last_queue_id, ep, &format!("released by {who}"));
    }
    Ok(ep)
}

fn log_end(queue_id: &str, ep: &Episode, why: &str) {
    tracing::info!(
        "{queue_id}: outbound: account {} hold ended ({why}): {} message(s) since {}, first queue id {}, last queue id {}",
        ep.account,
        ep.messages,
        crate::calendar::iso_utc(ep.since),
        ep.first_queue_id,
        ep.last_queue_id
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn episode_starts_runs_extends_and_expires() {
        let s = MemoryStore::new();
        let c = OutboundConfig {
            hold_minutes: 10,
            ..OutboundConfig::default()
        };
        let t = 1_000_000;
        assert_eq!(
            on_message(&s, &c, "a", "Q0", None, t).unwrap(),
            Outcome::Free
        );
        let Outcome::Started(ep) =
            on_message(&s, &c, "a", "Q1", Some(("too many", "1m: 31 msgs")), t).unwrap()
        else {
            panic!("no episode")
        };
        assert_eq!((ep.since, ep.until, ep.messages), (t, t + 600, 1));
        assert!(matches!(
            on_message(&s, &c, "a", "Q2", None, t + 60).unwrap(),
            Outcome::AlreadyHeld(_)
        ));
        // Tripping again while held extends the hold.
        on_message(&s, &c, "a", "Q3", Some(("again", "")), t + 300).unwrap();
        let ep = get(&s, "a").unwrap().unwrap();
        assert_eq!(
            (ep.first_queue_id.as_str(), ep.last_queue_id.as_str()),
            ("Q1", "Q3")
        );
        assert_eq!((ep.until, ep.messages), (t + 900, 3));
        assert_eq!(active_count(&s, t + 899).unwrap(), 1);
        assert_eq!(active_count(&s, t + 900).unwrap(), 0);
        // After the hold the account is free again and the record is gone.
        assert_eq!(
            on_message(&s, &c, "a", "Q4", None, t + 901).unwrap(),
            Outcome::Free
        );
        assert_eq!(get(&s, "a").unwrap(), None);
    }
}
