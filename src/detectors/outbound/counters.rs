//! Per-account sliding-window counters over the store's primitives, so every
//! backend (memory, embedded, Redis shared by a fleet) counts the same way.
//!
//! Each window is cut into `BUCKETS` buckets of `seconds / BUCKETS`; a
//! message adds to the current bucket of every window, and a window's count is
//! the sum of its last `BUCKETS` buckets. The window therefore slides in steps
//! of a tenth of its length. Bucket keys carry their bucket number, so old
//! buckets are never read even before their TTL removes them; time is always
//! passed in (`now`, Unix seconds), which keeps tests deterministic.
//!
//! Keys (`{a}` is the escaped account, `{w}` the window length in seconds):
//! - `ob:c:{a}:{metric}:{w}:{bucket}` counters, metric `msg`, `rcpt`, `new`
//! - `ob:d:{a}:{w}:{bucket}` set of recipient domains seen in the bucket
//! - `ob:k:{a}` set of the recipients the account ever wrote to, each as the
//!   store's address hash ([`crate::store::hash::address`])

use std::collections::BTreeSet;
use std::time::Duration;

use super::config::WindowConfig;
use crate::store::{hash, Reads, Snapshot, Store, StoreResult, WriteOp};

/// Buckets per window: the window slides in tenths of its length.
pub const BUCKETS: u64 = 10;

/// What an account did within one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub messages: u64,
    pub recipients: u64,
    pub domains: u64,
    pub new_recipients: u64,
}

/// The account as it appears inside keys: lower case, and every byte other
/// than `[a-z0-9@._+-]` percent-escaped, so `:` can never split a key and a
/// prefix scan for one account never matches another.
pub fn account_key(account: &str) -> String {
    let mut out = String::with_capacity(account.len());
    for b in account.trim().to_lowercase().bytes() {
        if b.is_ascii_alphanumeric() || b"@._+-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`account_key`], for status listings.
pub fn account_from_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bucket_len(window: &WindowConfig) -> u64 {
    (window.seconds / BUCKETS).max(1)
}

fn counter_key(account: &str, metric: &str, window: &WindowConfig, bucket: u64) -> String {
    format!("ob:c:{account}:{metric}:{}:{bucket}", window.seconds)
}

fn domains_key(account: &str, window: &WindowConfig, bucket: u64) -> String {
    format!("ob:d:{account}:{}:{bucket}", window.seconds)
}

pub fn known_key(account: &str) -> String {
    format!("ob:k:{account}")
}

/// Record one message of `account` to `recipients` at `now` and return the
/// usage of every window, including this message ([`predict`], then its
/// writes).
pub fn record(
    store: &dyn Store,
    account: &str,
    windows: &[WindowConfig],
    recipients: &[String],
    known_ttl: Duration,
    now: u64,
) -> StoreResult<Vec<Usage>> {
    let mut asked = Reads::default();
    reads(account, windows, recipients, now, &mut asked);
    let state = store.read(&asked)?;
    let (usage, writes) = predict(&state, account, windows, recipients, known_ttl, now)?;
    store.write_batch(&writes)?;
    Ok(usage)
}

/// The lookup stage's part: what [`predict`] reads — whether each
/// recipient is known, and every counter and domain set of every window.
pub fn reads(
    account: &str,
    windows: &[WindowConfig],
    recipients: &[String],
    now: u64,
    reads: &mut Reads,
) {
    let account = account_key(account);
    for rcpt in recipients {
        reads.membership(known_key(&account), hash::address(rcpt).into_bytes());
    }
    for w in windows {
        let (counters, domain_sets) = window_keys(&account, w, now);
        counters.into_iter().for_each(|k| reads.value(k));
        domain_sets.into_iter().for_each(|k| reads.set(k));
    }
}

/// The keys of `window`'s buckets at `now`: its counters (message,
/// recipient and new-recipient per bucket) and its recipient-domain sets.
fn window_keys(account: &str, window: &WindowConfig, now: u64) -> (Vec<String>, Vec<String>) {
    let len = bucket_len(window);
    let last = now / len;
    let first = last.saturating_sub(BUCKETS - 1);
    let counters = (first..=last)
        .flat_map(|bucket| ["msg", "rcpt", "new"].map(|m| counter_key(account, m, window, bucket)))
        .collect();
    let domain_sets = (first..=last)
        .map(|bucket| domains_key(account, window, bucket))
        .collect();
    (counters, domain_sets)
}

/// The usage of every window once one more message of `account` to
/// `recipients` at `now` is counted, read without writing anything, and
/// the writes that count it (every counter of every window in one batch:
/// one transaction on the embedded store, one pipeline on Redis).
pub fn predict(
    state: &Snapshot,
    account: &str,
    windows: &[WindowConfig],
    recipients: &[String],
    known_ttl: Duration,
    now: u64,
) -> StoreResult<(Vec<Usage>, Vec<WriteOp>)> {
    let account = account_key(account);
    let mut writes = Vec::new();
    let mut new_recipients = 0u64;
    let mut hashes = BTreeSet::new();
    let mut domains = BTreeSet::new();
    for rcpt in recipients {
        // Hashed, so the store holds no address book in the clear.
        let hash = hash::address(rcpt).into_bytes();
        if !hashes.insert(hash.clone()) {
            continue;
        }
        if !state.contains(&known_key(&account), &hash)? {
            new_recipients += 1;
        }
        writes.push(WriteOp::SetAdd {
            key: known_key(&account),
            member: hash,
            ttl: Some(known_ttl),
        });
        if let Some(d) = crate::view::address::domain_of(rcpt) {
            domains.insert(crate::domains::registrable(&d));
        }
    }
    let mut usage = Vec::with_capacity(windows.len());
    for w in windows {
        let len = bucket_len(w);
        let bucket = now / len;
        // Keep a bucket as long as some window read may still include it.
        let ttl = Some(Duration::from_secs(w.seconds + 2 * len));
        let incr = |metric: &str, by: u64| WriteOp::Incr {
            key: counter_key(&account, metric, w, bucket),
            by: by as i64,
            ttl,
        };
        writes.push(incr("msg", 1));
        writes.push(incr("rcpt", recipients.len() as u64));
        if new_recipients > 0 {
            writes.push(incr("new", new_recipients));
        }
        for d in &domains {
            writes.push(WriteOp::SetAdd {
                key: domains_key(&account, w, bucket),
                member: d.as_bytes().to_vec(),
                ttl,
            });
        }
        let mut u = usage_of_key(state, &account, w, now, &domains)?;
        u.messages += 1;
        u.recipients += recipients.len() as u64;
        u.new_recipients += new_recipients;
        usage.push(u);
    }
    Ok((usage, writes))
}

/// The usage of `account` in `window` at `now`, without recording anything.
pub fn usage(
    store: &dyn Store,
    account: &str,
    window: &WindowConfig,
    now: u64,
) -> StoreResult<Usage> {
    let mut asked = Reads::default();
    reads(account, std::slice::from_ref(window), &[], now, &mut asked);
    usage_of_key(
        &store.read(&asked)?,
        &account_key(account),
        window,
        now,
        &BTreeSet::new(),
    )
}

/// The usage as the lookup read it; `more_domains` counted among the
/// window's recipient domains too.
fn usage_of_key(
    state: &Snapshot,
    account: &str,
    window: &WindowConfig,
    now: u64,
    more_domains: &BTreeSet<String>,
) -> StoreResult<Usage> {
    let mut usage = Usage::default();
    let (counters, domain_sets) = window_keys(account, window, now);
    for key in &counters {
        let n = state.count(key)?;
        match key.rsplit(':').nth(2) {
            Some("msg") => usage.messages += n,
            Some("rcpt") => usage.recipients += n,
            _ => usage.new_recipients += n,
        }
    }
    let mut domains: BTreeSet<&[u8]> = BTreeSet::new();
    for key in &domain_sets {
        domains.extend(state.members(key)?.iter().map(Vec::as_slice));
    }
    domains.extend(more_domains.iter().map(|d| d.as_bytes()));
    usage.domains = domains.len() as u64;
    Ok(usage)
}

/// Forget the account's window counters (after a release), keeping what it
/// learned (known recipients, From identities).
pub fn reset(store: &dyn Store, account: &str) -> StoreResult<usize> {
    let account = account_key(account);
    let mut n = 0;
    for prefix in [format!("ob:c:{account}:"), format!("ob:d:{account}:")] {
        for key in store.keys_with_prefix(&prefix)? {
            store.delete(&key)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn window(seconds: u64) -> WindowConfig {
        WindowConfig {
            name: format!("{seconds}s"),
            seconds,
            ..WindowConfig::default()
        }
    }

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn account_keys_escape_separators_and_round_trip() {
        assert_eq!(account_key(" Alice@Example.COM "), "alice@example.com");
        assert_eq!(account_key("a:b c"), "a%3Ab%20c");
        assert_eq!(account_from_key("a%3Ab%20c"), "a:b c");
        assert_eq!(account_from_key("ip%3A192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(account_from_key("broken%4"), "broken%4");
        assert_eq!(account_from_key("%"), "%");
    }

    #[test]
    fn counts_slide_out_of_the_window() {
        let store = MemoryStore::new();
        let w = [window(60)];
        let t0 = 1_700_000_000;
        let rcpts = vec!["a@x.example".to_string(), "b@y.example".to_string()];
        for i in 0..5 {
            record(&store, "alice", &w, &rcpts, DAY, t0 + i).unwrap();
        }
        let u = usage(&store, "alice", &w[0], t0 + 5).unwrap();
        assert_eq!(
            u,
            Usage {
                messages: 5,
                recipients: 10,
                domains: 2,
                new_recipients: 2
            }
        );
        // Another account is not affected.
        assert_eq!(usage(&store, "bob", &w[0], t0 + 5).unwrap().messages, 0);
        // Two minutes later nothing is left in the one-minute window.
        assert_eq!(usage(&store, "alice", &w[0], t0 + 120).unwrap().messages, 0);
        // But the recipients stay known: writing again adds no new ones.
        let u = record(&store, "alice", &w, &rcpts, DAY, t0 + 121).unwrap();
        assert_eq!((u[0].messages, u[0].new_recipients), (1, 0));
    }

    #[test]
    fn every_window_counts_independently() {
        let store = MemoryStore::new();
        let w = [window(60), window(3600)];
        let t0 = 1_700_000_000;
        for i in 0..10 {
            // One message every 5 minutes.
            record(&store, "a", &w, &["r@x.example".into()], DAY, t0 + i * 300).unwrap();
        }
        let now = t0 + 9 * 300;
        assert_eq!(usage(&store, "a", &w[0], now).unwrap().messages, 1);
        assert_eq!(usage(&store, "a", &w[1], now).unwrap().messages, 10);
    }

    #[test]
    fn reset_clears_counters_but_not_known_recipients() {
        let store = MemoryStore::new();
        let w = [window(60)];
        record(&store, "a:b", &w, &["r@x.example".into()], DAY, 1000).unwrap();
        record(&store, "a:bc", &w, &["r@x.example".into()], DAY, 1000).unwrap();
        assert!(reset(&store, "a:b").unwrap() >= 2);
        assert_eq!(usage(&store, "a:b", &w[0], 1000).unwrap().messages, 0);
        assert_eq!(usage(&store, "a:bc", &w[0], 1000).unwrap().messages, 1);
        let u = record(&store, "a:b", &w, &["r@x.example".into()], DAY, 1001).unwrap();
        assert_eq!(u[0].new_recipients, 0);
    }

    #[test]
    fn recipient_domains_count_once_in_either_idn_form() {
        let store = MemoryStore::new();
        let w = [window(60)];
        let rcpts = ["a@例え.jp".to_string(), "b@mail.xn--r8jz45g.jp".into()];
        let u = record(&store, "a", &w, &rcpts, DAY, 1000).unwrap();
        assert_eq!((u[0].recipients, u[0].domains), (2, 1));
    }

    #[test]
    fn known_recipients_are_kept_as_the_stores_address_hash() {
        // One address hash in the whole store: the one threads and
        // correspondents key addresses by.
        let store = MemoryStore::new();
        let w = [window(60)];
        record(&store, "a", &w, &["<Bob@X.example>".into()], DAY, 1000).unwrap();
        let members = store.set_members(&known_key("a")).unwrap();
        assert_eq!(members, [hash::address("bob@x.example").into_bytes()]);
        // The same address written another way is no new recipient: the
        // window still counts the first message's one.
        let u = record(&store, "a", &w, &["bob@x.example".into()], DAY, 1001).unwrap();
        assert_eq!(u[0].new_recipients, 1);
    }
}
