//! The Redis backend: one memory shared by several mail servers.
//!
//! Synchronous connections (scans run on blocking threads) with a connect,
//! read and write timeout of `store.timeout_ms`, kept in a small pool. When
//! Redis cannot be reached or stops answering, every call fails at once for
//! `store.reconnect_after_ms` before the next try: a down Redis turns into
//! `scan.error` evidence at no cost in time, never into a stuck message.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::{Client, Connection, FromRedisValue, RedisError, Value};

use super::redis_cache::{self, ReadCache};
use super::{Reads, Snapshot, Store, StoreConfig, StoreError, StoreResult, WriteOp};

/// Idle connections kept for reuse; more may be open while scans run.
const POOL_SIZE: usize = 8;

/// Keys scanned per SCAN round trip in `keys_with_prefix`.
const SCAN_COUNT: usize = 1000;

pub struct RedisStore {
    client: Client,
    /// Prepended to every key.
    prefix: String,
    timeout: Duration,
    reconnect_after: Duration,
    idle: Mutex<Vec<Connection>>,
    /// While set and in the future, calls fail without trying.
    down_until: Mutex<Option<(Instant, String)>>,
    /// Threads, correspondents and lists as read, kept coherent by Redis
    /// (`store.cache_entries`; see [`redis_cache`]).
    cache: Option<Arc<ReadCache>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn err(e: RedisError) -> StoreError {
    StoreError::Redis(e)
}

/// `url` with any password replaced, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// A store for `config`'s Redis. Does not connect yet: a Redis that is
    /// down at start makes calls fail, it does not stop the milter.
    pub fn new(config: &StoreConfig) -> StoreResult<RedisStore> {
        let url = config.redis_url();
        let client = Client::open(url.as_str()).map_err(|source| StoreError::RedisUrl {
            url: redacted(&url),
            source,
        })?;
        let cache = (config.cache_entries > 0).then(|| {
            let cache = Arc::new(ReadCache::new(config.cache_entries));
            redis_cache::start_listener(
                client.clone(),
                config.key_prefix.clone(),
                config.timeout(),
                Duration::from_millis(config.reconnect_after_ms.max(1)),
                &cache,
            );
            cache
        });
        Ok(RedisStore {
            client,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout(),
            reconnect_after: Duration::from_millis(config.reconnect_after_ms),
            idle: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
            cache,
        })
    }

    /// The read cache, when it is on (tests: whether it is live).
    pub fn cache(&self) -> Option<&ReadCache> {
        self.cache.as_deref()
    }

    /// Make writes to `keys`: evicted from the cache before they are sent
    /// and again once Redis answered, so that a read that raced the write
    /// cannot keep what it read before it (see [`redis_cache`]).
    fn writing<'k, R>(
        &self,
        keys: impl Iterator<Item = &'k str> + Clone,
        write: impl FnOnce() -> R,
    ) -> R {
        if let Some(cache) = &self.cache {
            cache.evict(keys.clone());
        }
        let outcome = write();
        if let Some(cache) = &self.cache {
            cache.evict(keys);
        }
        outcome
    }

    /// Connect now and PING, to report a wrong URL or password at start.
    pub fn ping(&self) -> StoreResult<()> {
        self.with_conn(|c| {
            ::redis::cmd("PING").query::<String>(c)?;
            Ok(())
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn connect(&self) -> StoreResult<Connection> {
        if let Ok(down) = self.down_until.lock() {
            if let Some((until, why)) = down.as_ref() {
                if Instant::now() < *until {
                    return Err(StoreError::RedisDown {
                        retry_ms: self.reconnect_after.as_millis(),
                        why: why.clone(),
                    });
                }
            }
        }
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let conn = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.mark_down(e))?;
        conn.set_read_timeout(Some(self.timeout))
            .map_err(|e| self.mark_down(e))?;
        conn.set_write_timeout(Some(self.timeout))
            .map_err(|e| self.mark_down(e))?;
        Ok(conn)
    }

    fn mark_down(&self, e: RedisError) -> StoreError {
        let why = e.to_string();
        if let Ok(mut down) = self.down_until.lock() {
            *down = Some((Instant::now() + self.reconnect_after, why));
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        err(e)
    }

    /// Run `f` on a pooled connection. A connection that saw an I/O error or
    /// a timeout is dropped and Redis marked down; after a reply error (e.g.
    /// WRONGTYPE) the connection is still good and goes back to the pool.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> StoreResult<T> {
        let mut conn = self.connect()?;
        match f(&mut conn) {
            Ok(v) => {
                self.give_back(conn);
                Ok(v)
            }
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error() => {
                Err(self.mark_down(e))
            }
            Err(e) => {
                self.give_back(conn);
                Err(err(e))
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < POOL_SIZE {
                idle.push(conn);
            }
        }
        if let Ok(mut down) = self.down_until.lock() {
            *down = None;
        }
    }

    /// GET `values`, SMEMBERS `sets` and every membership of `reads`, in
    /// one pipeline.
    #[allow(clippy::type_complexity)]
    fn fetch(
        &self,
        values: &[&str],
        sets: &[&str],
        reads: &Reads,
    ) -> StoreResult<(Vec<Option<Vec<u8>>>, Vec<Vec<Vec<u8>>>, Vec<bool>)> {
        let mut pipe = ::redis::pipe();
        for key in values {
            pipe.cmd("GET").arg(self.key(key));
        }
        for key in sets {
            pipe.cmd("SMEMBERS").arg(self.key(key));
        }
        for (key, member) in reads.membership_pairs() {
            pipe.cmd("SISMEMBER").arg(self.key(key)).arg(member);
        }
        self.with_conn(|c| {
            let mut replies: Vec<Value> = pipe.query(c)?;
            let membership_replies = replies.split_off(values.len() + sets.len());
            let set_replies = replies.split_off(values.len());
            let values = replies
                .into_iter()
                .map(value_bytes)
                .collect::<Result<Vec<_>, _>>()?;
            let sets = set_replies
                .into_iter()
                .map(Vec::<Vec<u8>>::from_redis_value)
                .collect::<Result<Vec<_>, _>>()?;
            let memberships = membership_replies
                .into_iter()
                .map(bool::from_redis_value)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((values, sets, memberships))
        })
    }

    /// Add one write to a pipeline.
    fn queue(&self, pipe: &mut ::redis::Pipeline, op: &WriteOp) {
        match op {
            WriteOp::Put { key, value, ttl } => {
                let cmd = pipe.cmd("SET").arg(self.key(key)).arg(&value[..]);
                if let Some(ttl) = ttl {
                    cmd.arg("PX").arg(millis(*ttl));
                }
                cmd.ignore();
            }
            WriteOp::SetAdd { key, member, ttl } => {
                let k = self.key(key);
                pipe.cmd("SADD").arg(&k).arg(&member[..]);
                match ttl {
                    Some(ttl) => pipe.cmd("PEXPIRE").arg(&k).arg(millis(*ttl)).ignore(),
                    None => pipe.cmd("PERSIST").arg(&k).ignore(),
                };
            }
            WriteOp::Incr { key, by, ttl } => {
                let k = self.key(key);
                // Create at 0 with the TTL only if absent, then add: the TTL
                // is set when the counter is created, as the trait says.
                if let Some(ttl) = ttl {
                    pipe.cmd("SET")
                        .arg(&k)
                        .arg(0)
                        .arg("PX")
                        .arg(millis(*ttl))
                        .arg("NX")
                        .ignore();
                }
                pipe.cmd("INCRBY").arg(&k).arg(*by);
            }
            WriteOp::Delete { key } => {
                pipe.cmd("DEL").arg(self.key(key)).ignore();
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let k = self.key(key);
        self.with_conn(|c| ::redis::cmd("GET").arg(&k).query(c))
    }

    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.write_batch(&[WriteOp::Put {
            key: key.to_string(),
            value: value.to_vec(),
            ttl,
        }])
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        let k = self.key(key);
        self.writing(std::iter::once(key), || {
            self.with_conn(|c| ::redis::cmd("DEL").arg(&k).query::<i64>(c).map(|_| ()))
        })
    }

    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        self.queue(
            &mut pipe,
            &WriteOp::Incr {
                key: key.to_string(),
                by,
                ttl,
            },
        );
        let (n,): (i64,) =
            self.writing(std::iter::once(key), || self.with_conn(|c| pipe.query(c)))?;
        Ok(n)
    }

    fn set_add(&self, key: &str, member: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        self.queue(
            &mut pipe,
            &WriteOp::SetAdd {
                key: key.to_string(),
                member: member.to_vec(),
                ttl,
            },
        );
        let (added,): (i64,) =
            self.writing(std::iter::once(key), || self.with_conn(|c| pipe.query(c)))?;
        Ok(added == 1)
    }

    fn set_contains(&self, key: &str, member: &[u8]) -> StoreResult<bool> {
        let k = self.key(key);
        self.with_conn(|c| ::redis::cmd("SISMEMBER").arg(&k).arg(member).query(c))
    }

    fn set_members(&self, key: &str) -> StoreResult<Vec<Vec<u8>>> {
        let k = self.key(key);
        let mut members: Vec<Vec<u8>> =
            self.with_conn(|c| ::redis::cmd("SMEMBERS").arg(&k).query(c))?;
        members.sort();
        Ok(members)
    }

    fn set_members_many(&self, keys: &[String]) -> StoreResult<Vec<Vec<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for key in keys {
            pipe.cmd("SMEMBERS").arg(self.key(key));
        }
        let mut sets: Vec<Vec<Vec<u8>>> = self.with_conn(|c| pipe.query(c))?;
        for members in &mut sets {
            members.sort();
        }
        Ok(sets)
    }

    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let strip = self.prefix.len();
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self.with_conn(|c| {
                ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(c)
            })?;
            keys.extend(batch.into_iter().map(|k| k[strip..].to_string()));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// The lookup stage's reads: what the read cache holds from it, the
    /// rest in one pipeline (every GET, then every SMEMBERS, then every
    /// SISMEMBER); none when the cache holds it all.
    fn read(&self, reads: &Reads) -> StoreResult<Snapshot> {
        if reads.is_empty() {
            return Ok(Snapshot::default());
        }
        let mut cached = self
            .cache
            .as_ref()
            .map(|c| c.answer(reads))
            .unwrap_or_default();
        let value_keys = reads.value_keys();
        let set_keys = reads.set_keys();
        let to_get: Vec<&str> = value_keys
            .iter()
            .map(String::as_str)
            .filter(|k| !cached.values.contains_key(*k))
            .collect();
        let to_list: Vec<&str> = set_keys
            .iter()
            .map(String::as_str)
            .filter(|k| !cached.sets.contains_key(*k))
            .collect();
        let (got, listed, memberships) =
            if to_get.is_empty() && to_list.is_empty() && reads.membership_pairs().next().is_none()
            {
                (Vec::new(), Vec::new(), Vec::new())
            } else {
                self.fetch(&to_get, &to_list, reads)?
            };
        if let (Some(cache), Some(generation)) = (&self.cache, cached.generation) {
            cache.fill(
                generation,
                to_get.iter().copied().zip(&got),
                to_list.iter().copied().zip(&listed),
            );
        }
        let values = in_read_order(&value_keys, &mut cached.values, got);
        let sets = in_read_order(&set_keys, &mut cached.sets, listed);
        Snapshot::from_parts(reads, values, sets, memberships)
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.with_conn(|c| read_values(c, &keys))
    }

    /// Optimistic: WATCH the keys, read them, MULTI the writes; when
    /// another mail server changed a watched key in between, EXEC does
    /// nothing and the update runs again on fresh values (at most
    /// [`UPDATE_TRIES`] times).
    fn update(&self, keys: &[String], compute: &mut super::Compute<'_>) -> StoreResult<()> {
        let prefixed: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let done = self.with_conn(|c| {
            for attempt in 0..UPDATE_TRIES {
                if !prefixed.is_empty() {
                    ::redis::cmd("WATCH").arg(&prefixed).query::<()>(c)?;
                }
                let values = match read_values(c, &prefixed) {
                    Ok(values) => values,
                    Err(e) => {
                        ::redis::cmd("UNWATCH").query::<()>(c)?;
                        return Err(e);
                    }
                };
                let ops = compute(&values);
                if ops.is_empty() {
                    ::redis::cmd("UNWATCH").query::<()>(c)?;
                    return Ok(true);
                }
                let mut pipe = ::redis::pipe();
                pipe.atomic();
                for op in &ops {
                    self.queue(&mut pipe, op);
                }
                // EXEC answers nil when a watched key changed.
                let written = self.writing(ops.iter().map(WriteOp::key), || {
                    pipe.query::<Option<Value>>(c)
                })?;
                if written.is_some() {
                    return Ok(true);
                }
                // Lost to another writer: step aside a moment, longer each
                // time, a little differently on every server.
                backoff(attempt);
            }
            Ok(false)
        })?;
        if done {
            Ok(())
        } else {
            Err(StoreError::Contention {
                tries: UPDATE_TRIES,
                keys: keys.len(),
            })
        }
    }

    fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for op in ops {
            self.queue(&mut pipe, op);
        }
        self.writing(ops.iter().map(WriteOp::key), || {
            self.with_conn(|c| pipe.query::<Value>(c).map(|_| ()))
        })
    }
}

/// The answers for `keys` in their order: from `cached` where it has them,
/// else the next of `fetched` (fetched for the others, in the same order).
fn in_read_order<T: Default>(
    keys: &[String],
    cached: &mut std::collections::HashMap<String, T>,
    fetched: Vec<T>,
) -> Vec<T> {
    let mut fetched = fetched.into_iter();
    keys.iter()
        .map(|k| match cached.remove(k) {
            Some(answer) => answer,
            None => fetched.next().unwrap_or_default(),
        })
        .collect()
}

/// Tries of one [`Store::update`] before it gives up to contention (a
/// correspondent every server remembers at once: a campaign's sender).
const UPDATE_TRIES: usize = 64;

/// Up to `attempt` + 1 ms, picked from the clock's nanoseconds.
fn backoff(attempt: usize) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let cap_us = 1000 * (attempt as u64 + 1).min(10);
    std::thread::sleep(Duration::from_micros(nanos % cap_us));
}

/// GET each of `keys` (already prefixed) in one round trip. GET in a
/// pipeline rather than MGET, so that a key holding a set is an error (as
/// in the other backends), not a nil.
fn read_values(c: &mut Connection, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, RedisError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = ::redis::pipe();
    for key in keys {
        pipe.cmd("GET").arg(key);
    }
    let values: Vec<Value> = pipe.query(c)?;
    values.into_iter().map(value_bytes).collect()
}

/// A GET's reply as bytes (a counter's as its decimal digits).
fn value_bytes(v: Value) -> Result<Option<Vec<u8>>, RedisError> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        Value::Int(n) => Ok(Some(n.to_string().into_bytes())),
        other => Err(RedisError::from((
            ::redis::ErrorKind::UnexpectedReturnType,
            "unexpected reply",
            format!("{other:?}"),
        ))),
    }
}

/// Escape Redis glob characters so a prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1/0"), "redis://127.0.0.1/0");
        assert_eq!(glob_escape("a*b[c]"), "a\\*b\\[c\\]");
    }

    #[test]
    fn a_closed_port_fails_fast_and_then_without_trying() {
        // Port 1 on loopback: nothing listens, the connect is refused.
        let config = StoreConfig {
            url: "redis://127.0.0.1:1/0".into(),
            timeout_ms: 200,
            reconnect_after_ms: 60_000,
            ..StoreConfig::default()
        };
        let store = RedisStore::new(&config).unwrap();
        let first = store.get("x").unwrap_err().to_string();
        assert!(first.starts_with("state store: redis:"), "{first}");
        let second = store.put("x", b"1", None).unwrap_err().to_string();
        assert!(second.contains("redis unavailable"), "{second}");
    }
}
