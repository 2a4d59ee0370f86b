//! A cache in front of Redis for what mail teaches (threads, correspondents,
//! lists), kept coherent by Redis itself: a listener connection turns on
//! server-assisted invalidation for those key prefixes (`CLIENT TRACKING ON
//! REDIRECT <itself> BCAST PREFIX ...`) and subscribes to
//! `__redis__:invalidate`, so every change of such a key, by any mail
//! server sharing the Redis, evicts it here.
//!
//! Why it is never read stale for longer than an invalidation takes to
//! arrive:
//! - An entry is only filled by a read that saw no eviction at all between
//!   being sent and being filled (a generation counter, checked and filled
//!   under one lock, and moved by every eviction). So an invalidation that
//!   arrives before the fill stops it; one that arrives after evicts it.
//! - This process's own writes evict their keys before they are sent and
//!   again once Redis answered, so the process reads its own writes without
//!   waiting for their invalidation to come back.
//! - While the listener is not subscribed (Redis down, connection lost, a
//!   Redis without tracking), the cache is empty and unused. A quiet
//!   listener PINGs every second, so a connection that died without a word
//!   is noticed within about two.
//!
//! Counters and holds (short expiries, `ob:` keys) are never cached: an
//! expiry is noticed by Redis lazily.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use ::redis::{Client, Value};

use super::Reads;

/// The key families cached: records mail teaches, kept for months.
pub const CACHED_PREFIXES: [&str; 3] = ["thread:", "corr:", "list:"];

/// How often the listener looks up from waiting to see whether its store
/// is gone.
const LISTENER_TICK: Duration = Duration::from_secs(1);

/// Whether `key` (without the Redis key prefix) is cached.
pub fn is_cached(key: &str) -> bool {
    CACHED_PREFIXES.iter().any(|p| key.starts_with(p))
}

pub struct ReadCache {
    state: Mutex<State>,
    capacity: usize,
}

#[derive(Default)]
struct State {
    /// The listener is subscribed: entries may be used and filled.
    live: bool,
    /// Moves with every eviction: a read fills only if it has not moved.
    generation: u64,
    values: HashMap<String, Option<Vec<u8>>>,
    sets: HashMap<String, Vec<Vec<u8>>>,
}

/// What the cache holds of a lookup's reads.
#[derive(Default)]
pub struct Cached {
    pub values: HashMap<String, Option<Vec<u8>>>,
    pub sets: HashMap<String, Vec<Vec<u8>>>,
    /// The generation to fill with; None while the cache is not live.
    pub generation: Option<u64>,
}

impl ReadCache {
    /// A cache of at most `capacity` keys (values and sets).
    pub fn new(capacity: usize) -> ReadCache {
        ReadCache {
            state: Mutex::new(State::default()),
            capacity,
        }
    }

    /// The state. Every change to it is a few inserts and removals that
    /// cannot panic half-way, so a poisoned lock still holds a sound cache.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the cache holds of `reads`, and the generation to fill with.
    pub fn answer(&self, reads: &Reads) -> Cached {
        let state = self.state();
        if !state.live {
            return Cached::default();
        }
        let mut cached = Cached {
            generation: Some(state.generation),
            ..Cached::default()
        };
        for key in reads.value_keys() {
            if let Some(v) = state.values.get(&key) {
                cached.values.insert(key, v.clone());
            }
        }
        for key in reads.set_keys() {
            if let Some(members) = state.sets.get(&key) {
                cached.sets.insert(key, members.clone());
            }
        }
        cached
    }

    /// Keep what a read fetched, if nothing was evicted since `generation`
    /// (see the module's notes); only keys [`is_cached`].
    pub fn fill<'a>(
        &self,
        generation: u64,
        values: impl IntoIterator<Item = (&'a str, &'a Option<Vec<u8>>)>,
        sets: impl IntoIterator<Item = (&'a str, &'a Vec<Vec<u8>>)>,
    ) {
        let mut state = self.state();
        if !state.live || state.generation != generation {
            return;
        }
        for (key, value) in values.into_iter().filter(|(k, _)| is_cached(k)) {
            make_room(&mut state, self.capacity);
            state.values.insert(key.to_string(), value.clone());
        }
        for (key, members) in sets.into_iter().filter(|(k, _)| is_cached(k)) {
            make_room(&mut state, self.capacity);
            state.sets.insert(key.to_string(), members.clone());
        }
    }

    /// Evict `keys` (changed by this process, or by anyone as Redis said).
    pub fn evict<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut state = self.state();
        state.generation += 1;
        for key in keys {
            state.values.remove(key);
            state.sets.remove(key);
        }
    }

    /// Evict everything (Redis flushed, or the listener came or went);
    /// `live` says whether the cache may be used from now on.
    pub fn reset(&self, live: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.values.clear();
        state.sets.clear();
        state.live = live;
    }

    /// Whether the listener is subscribed and the cache in use.
    pub fn is_live(&self) -> bool {
        self.state().live
    }

    /// Keys held now (tests).
    pub fn len(&self) -> usize {
        let state = self.state();
        state.values.len() + state.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A full cache starts over: cheaper than tracking use, and a burst of new
/// keys is what fills it.
fn make_room(state: &mut State, capacity: usize) {
    if state.values.len() + state.sets.len() >= capacity {
        state.values.clear();
        state.sets.clear();
    }
}

/// Start the listener that keeps `cache` coherent, for keys under
/// `prefix`; it ends once the cache is dropped. While it cannot subscribe
/// (Redis down, or too old for tracking) the cache stays unused, and it
/// tries again every `retry`.
pub fn start_listener(
    client: Client,
    prefix: String,
    timeout: Duration,
    retry: Duration,
    cache: &Arc<ReadCache>,
) {
    let cache = Arc::downgrade(cache);
    let spawned = std::thread::Builder::new()
        .name("redis-cache".into())
        .spawn(move || listen(&client, &prefix, timeout, retry, &cache));
    if let Err(e) = spawned {
        tracing::warn!("state store: no Redis read cache (cannot start its listener: {e})");
    }
}

fn listen(
    client: &Client,
    prefix: &str,
    timeout: Duration,
    retry: Duration,
    cache: &Weak<ReadCache>,
) {
    let mut warned = false;
    loop {
        match track(client, prefix, timeout) {
            Ok(mut conn) => {
                let why = follow(&mut conn, prefix, cache, &mut warned);
                let Some(live) = cache.upgrade() else { return };
                live.reset(false);
                match why {
                    Some(e) if !warned => {
                        warned = true;
                        tracing::warn!(
                            "state store: Redis read cache off until its listener reconnects: {e}"
                        );
                    }
                    Some(_) => {}
                    None => return,
                }
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!("state store: Redis read cache off (cannot subscribe: {e})");
            }
            Err(_) => {}
        }
        // Wait, looking up now and then to see whether the store is gone.
        let mut waited = Duration::ZERO;
        while waited < retry {
            if cache.strong_count() == 0 {
                return;
            }
            std::thread::sleep(LISTENER_TICK.min(retry));
            waited += LISTENER_TICK.min(retry);
        }
    }
}

/// A connection to which Redis sends the invalidations of every key under
/// `prefix` + [`CACHED_PREFIXES`], once it subscribes ([`follow`]).
fn track(
    client: &Client,
    prefix: &str,
    timeout: Duration,
) -> ::redis::RedisResult<::redis::Connection> {
    let mut conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    let id: i64 = ::redis::cmd("CLIENT").arg("ID").query(&mut conn)?;
    let mut tracking = ::redis::cmd("CLIENT");
    tracking
        .arg("TRACKING")
        .arg("ON")
        .arg("REDIRECT")
        .arg(id)
        .arg("BCAST");
    for p in CACHED_PREFIXES {
        tracking.arg("PREFIX").arg(format!("{prefix}{p}"));
    }
    tracking.query::<()>(&mut conn)?;
    Ok(conn)
}

/// Subscribe, put the cache in use, and evict what Redis says changed,
/// until the connection fails (Some: why) or the cache is dropped (None).
/// One subscription for the whole time: redis' PubSub unsubscribes when
/// dropped, and a cache in use that hears nothing would answer stale.
fn follow(
    conn: &mut ::redis::Connection,
    prefix: &str,
    cache: &Weak<ReadCache>,
    warned: &mut bool,
) -> Option<::redis::RedisError> {
    let mut pubsub = conn.as_pubsub();
    if let Err(e) = pubsub
        .subscribe("__redis__:invalidate")
        .and_then(|()| pubsub.set_read_timeout(Some(LISTENER_TICK)))
    {
        return Some(e);
    }
    *warned = false;
    cache.upgrade()?.reset(true);
    loop {
        let message = match pubsub.get_message() {
            Ok(message) => message,
            Err(e) if e.is_timeout() => {
                if cache.strong_count() == 0 {
                    return None;
                }
                // A quiet second: make sure Redis is still there. A
                // connection that died without a word would otherwise
                // leave the cache in use, hearing nothing.
                if let Err(e) = pubsub.ping::<Value>() {
                    return Some(e);
                }
                continue;
            }
            Err(e) => return Some(e),
        };
        let cache = cache.upgrade()?;
        match message.get_payload::<Value>() {
            // A flush: every key.
            Ok(Value::Nil) => cache.reset(true),
            Ok(Value::Array(keys)) => {
                let keys: Vec<String> = keys
                    .into_iter()
                    .filter_map(|k| match k {
                        Value::BulkString(b) => String::from_utf8(b).ok(),
                        _ => None,
                    })
                    .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
                    .collect();
                cache.evict(keys.iter().map(String::as_str));
            }
            // Anything else cannot be understood: start over.
            _ => cache.reset(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(values: &[&str], sets: &[&str]) -> Reads {
        let mut r = Reads::default();
        values.iter().for_each(|k| r.value(k.to_string()));
        sets.iter().for_each(|k| r.set(k.to_string()));
        r
    }

    #[test]
    fn a_fill_after_an_eviction_is_dropped() {
        let cache = ReadCache::new(100);
        let r = reads(&["thread:a"], &["corr:name:n"]);
        // Not live: nothing is answered or kept.
        assert_eq!(cache.answer(&r).generation, None);
        cache.reset(true);
        let generation = cache.answer(&r).generation.unwrap();
        let value = Some(b"v".to_vec());
        let members = vec![b"m".to_vec()];
        // Evicted in between (by anyone): the fetched answers may be old.
        cache.evict(["thread:other"]);
        cache.fill(
            generation,
            [("thread:a", &value)],
            [("corr:name:n", &members)],
        );
        assert!(cache.is_empty());
        let generation = cache.answer(&r).generation.unwrap();
        cache.fill(
            generation,
            [("thread:a", &value)],
            [("corr:name:n", &members)],
        );
        let cached = cache.answer(&r);
        assert_eq!(cached.values["thread:a"], value);
        assert_eq!(cached.sets["corr:name:n"], members);
        cache.evict(["thread:a"]);
        assert!(!cache.answer(&r).values.contains_key("thread:a"));
        assert!(cache.answer(&r).sets.contains_key("corr:name:n"));
        // Losing the listener empties it and turns it off.
        cache.reset(false);
        assert!(cache.is_empty());
        assert_eq!(cache.answer(&r).generation, None);
    }

    #[test]
    fn only_what_mail_teaches_is_cached_and_the_cache_is_bounded() {
        let cache = ReadCache::new(3);
        cache.reset(true);
        let generation = cache.answer(&Reads::default()).generation.unwrap();
        let v = Some(b"1".to_vec());
        cache.fill(
            generation,
            [("ob:c:alice", &v), ("thread:1", &v), ("list:x", &v)],
            [],
        );
        assert_eq!(cache.len(), 2, "counters are never cached");
        cache.fill(generation, [("thread:2", &v), ("thread:3", &v)], []);
        assert!(cache.len() <= 3);
    }
}
