//! The embedded backend: SQLite in one file under the state directory.
//!
//! Why SQLite and not redb: the daemon keeps the store open all the time,
//! and `learn` (writes) and `check` (reads) must use the same file while it
//! runs. redb locks its file for one process; SQLite in WAL mode lets several
//! processes read and write the same file, waiting up to `store.timeout_ms`
//! for each other. `rusqlite` with the bundled SQLite needs no system library.
//!
//! Layout: table `kv` holds every key with its type (bytes, counter, set),
//! its value and its expiry (unix milliseconds); table `members` holds the
//! members of sets. Expired rows are invisible at once and are deleted when
//! the store is opened and every few thousand writes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{Store, StoreError, StoreResult, WriteOp};

const KIND_BYTES: i64 = 0;
const KIND_COUNTER: i64 = 1;
const KIND_SET: i64 = 2;

/// Writes between two sweeps of expired rows.
const PURGE_EVERY: u64 = 4096;

/// Current time in unix milliseconds; replaceable so tests can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct EmbeddedStore {
    /// Writes, and the reads inside a write transaction.
    conn: Mutex<Connection>,
    /// Reads. A second connection, so that a read never waits for a
    /// commit (WAL readers do not wait on the writer).
    reader: Mutex<Connection>,
    clock: Clock,
    writes: AtomicU64,
    /// Whether `write_batch_later` keeps writes for the next `flush`.
    defer: AtomicBool,
    /// Writes kept by `write_batch_later`, applied by `flush` in one
    /// transaction (and on drop). Reads see them: a correspondent's second
    /// message within the delay counts on top of its first.
    pending: Mutex<Kept>,
    /// One flush at a time.
    flushing: Mutex<()>,
}

/// Kept writes: those since the last flush began, and those the running
/// flush is committing (still visible until the commit is done, so a
/// value is always in one of them or in the file). Reads see the file
/// through `flushing`, then `current`.
#[derive(Default)]
struct Kept {
    current: Pending,
    flushing: Pending,
}

impl Kept {
    /// `key`'s value given the file's.
    fn value(&self, key: &str, file: Option<Vec<u8>>) -> StoreResult<Option<Vec<u8>>> {
        let below = self.flushing.value(key, file)?;
        self.current.value(key, below)
    }

    /// The set `key`'s members given the file's.
    fn members(&self, key: &str, file: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        self.current.members(key, self.flushing.members(key, file))
    }

    /// Whether the kept writes decide `key`'s members without the file.
    fn members_known(&self, key: &str) -> bool {
        self.current.decides_members(key) || self.flushing.decides_members(key)
    }

    fn keys_with_prefix(&self, prefix: &str, file: Vec<String>) -> Vec<String> {
        self.current
            .keys_with_prefix(prefix, self.flushing.keys_with_prefix(prefix, file))
    }
}

/// What the kept writes say of one key, over what lies below them (the
/// file, or the writes kept before).
#[derive(Debug, Clone, PartialEq)]
enum KeyState {
    /// After a Put (Some) or a Delete (None): this, whatever lies below.
    Value(Option<Vec<u8>>),
    /// Increments on top of the counter below, or of 0 (`fresh`: the key
    /// was deleted first).
    Counter { fresh: bool, delta: i64 },
    /// Members added to the set below, or to an empty set (`fresh`).
    Set { fresh: bool, members: Vec<Vec<u8>> },
}

/// Writes not yet applied, in order, and what reads need of them: the
/// state of each key they touch. Every kind of write counts: a counter's
/// kept increments and a deleted set are seen by reads as they will be
/// once the writes are applied.
#[derive(Default)]
struct Pending {
    ops: Vec<WriteOp>,
    keys: HashMap<String, KeyState>,
}

/// A counter as reads give it: decimal text.
fn decimal_counter(value: &[u8]) -> i64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Pending {
    fn push(&mut self, op: WriteOp) {
        let state = |keys: &mut HashMap<String, KeyState>, key: &str| keys.remove(key);
        match &op {
            WriteOp::Put { key, value, .. } => {
                self.keys
                    .insert(key.clone(), KeyState::Value(Some(value.clone())));
            }
            WriteOp::Delete { key } => {
                self.keys.insert(key.clone(), KeyState::Value(None));
            }
            WriteOp::Incr { key, by, .. } => {
                let next = match state(&mut self.keys, key) {
                    None => KeyState::Counter {
                        fresh: false,
                        delta: *by,
                    },
                    Some(KeyState::Value(None)) => KeyState::Counter {
                        fresh: true,
                        delta: *by,
                    },
                    Some(KeyState::Value(Some(v))) => {
                        KeyState::Value(Some((decimal_counter(&v) + by).to_string().into_bytes()))
                    }
                    Some(KeyState::Counter { fresh, delta }) => KeyState::Counter {
                        fresh,
                        delta: delta + by,
                    },
                    Some(set @ KeyState::Set { .. }) => set,
                };
                self.keys.insert(key.clone(), next);
            }
            WriteOp::SetAdd { key, member, .. } => {
                let next = match state(&mut self.keys, key) {
                    None => KeyState::Set {
                        fresh: false,
                        members: vec![member.clone()],
                    },
                    Some(KeyState::Set { fresh, mut members }) => {
                        if !members.contains(member) {
                            members.push(member.clone());
                        }
                        KeyState::Set { fresh, members }
                    }
                    // After a Delete (or over a value of another type,
                    // which the write replaces): a set of its own.
                    Some(_) => KeyState::Set {
                        fresh: true,
                        members: vec![member.clone()],
                    },
                };
                self.keys.insert(key.clone(), next);
            }
        }
        self.ops.push(op);
    }

    /// `key`'s value through these writes, given the value below.
    fn value(&self, key: &str, below: Option<Vec<u8>>) -> StoreResult<Option<Vec<u8>>> {
        Ok(match self.keys.get(key) {
            None => below,
            Some(KeyState::Value(v)) => v.clone(),
            Some(KeyState::Counter { fresh, delta }) => {
                let base = if *fresh {
                    0
                } else {
                    below.as_deref().map_or(0, decimal_counter)
                };
                Some((base + delta).to_string().into_bytes())
            }
            Some(KeyState::Set { .. }) => return Err(wrong_type(key)),
        })
    }

    /// The set `key`'s members through these writes, given those below.
    fn members(&self, key: &str, mut below: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        match self.keys.get(key) {
            None => below,
            Some(KeyState::Set { fresh, members }) => {
                if *fresh {
                    below.clear();
                }
                for m in members {
                    if !below.contains(m) {
                        below.push(m.clone());
                    }
                }
                below
            }
            Some(_) => Vec::new(),
        }
    }

    /// True when these writes make `key`'s members whatever lies below.
    fn decides_members(&self, key: &str) -> bool {
        match self.keys.get(key) {
            None => false,
            Some(KeyState::Set { fresh, .. }) => *fresh,
            Some(_) => true,
        }
    }

    /// The keys under `prefix` through these writes, given those below.
    fn keys_with_prefix(&self, prefix: &str, mut below: Vec<String>) -> Vec<String> {
        for (key, state) in &self.keys {
            if !key.starts_with(prefix) {
                continue;
            }
            if *state == KeyState::Value(None) {
                below.retain(|k| k != key);
            } else if !below.contains(key) {
                below.push(key.clone());
            }
        }
        below
    }
}

/// Kept writes beyond which `write_batch_later` flushes by itself, so that
/// nobody calling `flush` cannot grow memory without bound.
const MAX_PENDING_OPS: usize = 8192;

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

/// A path for an SQLite `file:` URI: `%`, `?` and `#` escaped.
fn percent_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23")
}

fn lock<T>(mutex: &Mutex<T>) -> StoreResult<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| StoreError::Poisoned("embedded"))
}

fn err(context: &str, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        context: context.to_string(),
        source,
    }
}

fn wrong_type(key: &str) -> StoreError {
    StoreError::WrongType(key.to_string())
}

impl EmbeddedStore {
    /// Open (creating if needed) the database at `path`; its directory must exist.
    pub fn open(path: &Path, busy_timeout: Duration) -> StoreResult<EmbeddedStore> {
        Self::open_with_clock(path, busy_timeout, Arc::new(system_clock))
    }

    /// Like [`open`](Self::open) with the time taken from `clock` (tests).
    pub fn open_with_clock(
        path: &Path,
        busy_timeout: Duration,
        clock: Clock,
    ) -> StoreResult<EmbeddedStore> {
        let what = path.display().to_string();
        let conn = Connection::open(path).map_err(|e| err(&what, e))?;
        conn.busy_timeout(busy_timeout).map_err(|e| err(&what, e))?;
        // WAL: readers and one writer at a time across processes (daemon,
        // learn, check). NORMAL sync: a crash may lose the last commits,
        // never corrupt the file — right for a memory of past mail.
        // Reads through a memory map (up to 256 MiB) cost no system call
        // per page: the per-message lookups are most of the store's CPU.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| err(&what, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(format!(
                "embedded store: {what}: cannot use WAL journal (got {mode})"
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             PRAGMA mmap_size=268435456;
             CREATE TABLE IF NOT EXISTS kv (
                 key TEXT PRIMARY KEY,
                 kind INTEGER NOT NULL,
                 value BLOB,
                 expires INTEGER
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS members (
                 key TEXT NOT NULL,
                 member BLOB NOT NULL,
                 PRIMARY KEY (key, member)
             ) WITHOUT ROWID;",
        )
        .map_err(|e| err(&what, e))?;
        let reader = Connection::open(path).map_err(|e| err(&what, e))?;
        reader
            .busy_timeout(busy_timeout)
            .map_err(|e| err(&what, e))?;
        reader
            .execute_batch("PRAGMA query_only=1; PRAGMA mmap_size=268435456;")
            .map_err(|e| err(&what, e))?;
        let store = EmbeddedStore {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            clock,
            writes: AtomicU64::new(0),
            defer: AtomicBool::new(false),
            pending: Mutex::new(Kept::default()),
            flushing: Mutex::new(()),
        };
        store.purge_expired()?;
        Ok(store)
    }

    /// Open an existing database for reading only (`check`): no table is
    /// created, nothing is purged, every write fails, and the file's bytes
    /// stay as they were. Where the directory cannot be written (no `-shm`
    /// file can be made), the file is read as immutable.
    pub fn open_read_only(path: &Path, busy_timeout: Duration) -> StoreResult<EmbeddedStore> {
        use rusqlite::OpenFlags;
        let what = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::new(format!(
                "embedded store: {what}: no store file yet"
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connect = |immutable: bool| -> StoreResult<Connection> {
            let uri = format!(
                "file:{}?mode=ro{}",
                percent_path(path),
                if immutable { "&immutable=1" } else { "" }
            );
            let conn = Connection::open_with_flags(&uri, flags).map_err(|e| err(&what, e))?;
            conn.busy_timeout(busy_timeout).map_err(|e| err(&what, e))?;
            // Reading needs the tables: a file that is not our store fails here.
            conn.query_row("SELECT count(*) FROM kv WHERE 0", [], |_| Ok(()))
                .map_err(|e| err(&what, e))?;
            Ok(conn)
        };
        let conn = connect(false).or_else(|_| connect(true))?;
        let reader = connect(false).or_else(|_| connect(true))?;
        Ok(EmbeddedStore {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            clock: Arc::new(system_clock),
            writes: AtomicU64::new(0),
            defer: AtomicBool::new(false),
            pending: Mutex::new(Kept::default()),
            flushing: Mutex::new(()),
        })
    }

    /// Keep `write_batch_later`'s writes for [`Store::flush`] (the daemon
    /// flushes every `store.write_delay_ms`), or write them at once.
    pub fn defer_writes(&self, on: bool) {
        self.defer.store(on, Ordering::Relaxed);
    }

    /// A write made now goes after the writes kept for later, as it was
    /// asked: those are applied first, so that a later flush can never
    /// put an older value back over it.
    fn in_order(&self) -> StoreResult<()> {
        // Also waits for a flush under way.
        let _one_at_a_time = lock(&self.flushing)?;
        if self.pending()?.current.ops.is_empty() {
            return Ok(());
        }
        self.flush_kept()
    }

    /// Apply the kept writes; the caller holds `flushing`.
    fn flush_kept(&self) -> StoreResult<()> {
        // The kept writes stay readable (as `flushing`) until committed;
        // reads meanwhile neither wait nor miss them.
        let ops = {
            let mut pending = self.pending()?;
            pending.flushing = std::mem::take(&mut pending.current);
            std::mem::take(&mut pending.flushing.ops)
        };
        let written = self.apply(&ops);
        self.pending()?.flushing = Pending::default();
        written
    }

    /// Make `ops` in one transaction.
    fn apply(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let deadline =
            |ttl: &Option<Duration>| ttl.map(|t| now.saturating_add(t.as_millis() as i64));
        self.write(|tx, now| {
            for op in ops {
                match op {
                    WriteOp::Put { key, value, ttl } => do_put(tx, key, value, deadline(ttl))?,
                    WriteOp::SetAdd { key, member, ttl } => {
                        do_set_add(tx, key, member, deadline(ttl), now)?;
                    }
                    WriteOp::Incr { key, by, ttl } => {
                        do_incr(tx, key, *by, deadline(ttl), now)?;
                    }
                    WriteOp::Delete { key } => remove(tx, key)?,
                }
            }
            Ok(())
        })
    }

    fn pending(&self) -> StoreResult<MutexGuard<'_, Kept>> {
        lock(&self.pending)
    }

    fn now(&self) -> i64 {
        (self.clock)() as i64
    }

    fn deadline(&self, ttl: Option<Duration>) -> Option<i64> {
        ttl.map(|t| self.now().saturating_add(t.as_millis() as i64))
    }

    fn with_reader<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        f(&mut *lock(&self.reader)?)
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        f(&mut *lock(&self.conn)?)
    }

    /// Run `f` in one write transaction, then sweep expired rows now and then.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>, i64) -> StoreResult<T>) -> StoreResult<T> {
        let now = self.now();
        let out = self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| err("begin", e))?;
            let out = f(&tx, now)?;
            tx.commit().map_err(|e| err("commit", e))?;
            Ok(out)
        })?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            self.purge_expired()?;
        }
        Ok(out)
    }

    /// Delete every expired row (they are already invisible).
    pub fn purge_expired(&self) -> StoreResult<usize> {
        let now = self.now();
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| err("begin", e))?;
            tx.execute(
                "DELETE FROM members WHERE key IN
                   (SELECT key FROM kv WHERE kind = ?1 AND expires IS NOT NULL AND expires <= ?2)",
                params![KIND_SET, now],
            )
            .map_err(|e| err("purge", e))?;
            let n = tx
                .execute(
                    "DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?1",
                    params![now],
                )
                .map_err(|e| err("purge", e))?;
            tx.commit().map_err(|e| err("commit", e))?;
            Ok(n)
        })
    }
}

/// A live row: kind, value, expiry.
type Row = (i64, Option<Vec<u8>>, Option<i64>);

/// The row of `key` unless it is missing or expired.
fn live(tx: &Connection, key: &str, now: i64) -> StoreResult<Option<Row>> {
    let row: Option<Row> = tx
        .prepare_cached("SELECT kind, value, expires FROM kv WHERE key = ?1")
        .and_then(|mut st| {
            st.query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(|e| err("read", e))?;
    Ok(row.filter(|(_, _, expires)| expires.is_none_or(|t| t > now)))
}

/// Remove a key and its set members (used before re-creating it).
fn remove(tx: &Connection, key: &str) -> StoreResult<()> {
    tx.prepare_cached("DELETE FROM kv WHERE key = ?1")
        .and_then(|mut st| st.execute(params![key]))
        .map_err(|e| err("delete", e))?;
    tx.prepare_cached("DELETE FROM members WHERE key = ?1")
        .and_then(|mut st| st.execute(params![key]))
        .map_err(|e| err("delete", e))?;
    Ok(())
}

fn value_of(key: &str, kind: i64, value: Option<Vec<u8>>) -> StoreResult<Vec<u8>> {
    match kind {
        KIND_BYTES => Ok(value.unwrap_or_default()),
        KIND_COUNTER => {
            let v = value.unwrap_or_default();
            Ok(counter_of(&v).to_string().into_bytes())
        }
        _ => Err(wrong_type(key)),
    }
}

fn counter_of(v: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    if v.len() == 8 {
        b.copy_from_slice(v);
    }
    i64::from_le_bytes(b)
}

fn do_put(tx: &Connection, key: &str, value: &[u8], expires: Option<i64>) -> StoreResult<()> {
    tx.prepare_cached("DELETE FROM members WHERE key = ?1")
        .and_then(|mut st| st.execute(params![key]))
        .map_err(|e| err("put", e))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO kv (key, kind, value, expires) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| st.execute(params![key, KIND_BYTES, value, expires]))
    .map_err(|e| err("put", e))?;
    Ok(())
}

fn do_incr(
    tx: &Connection,
    key: &str,
    by: i64,
    expires: Option<i64>,
    now: i64,
) -> StoreResult<i64> {
    let (n, expires) = match live(tx, key, now)? {
        None => {
            remove(tx, key)?;
            (by, expires)
        }
        Some((KIND_COUNTER, v, kept)) => {
            (counter_of(&v.unwrap_or_default()).saturating_add(by), kept)
        }
        Some(_) => return Err(wrong_type(key)),
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO kv (key, kind, value, expires) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| st.execute(params![key, KIND_COUNTER, &n.to_le_bytes()[..], expires]))
    .map_err(|e| err("incr", e))?;
    Ok(n)
}

fn do_set_add(
    tx: &Connection,
    key: &str,
    member: &[u8],
    expires: Option<i64>,
    now: i64,
) -> StoreResult<bool> {
    match live(tx, key, now)? {
        None => remove(tx, key)?,
        Some((KIND_SET, _, _)) => {}
        Some(_) => return Err(wrong_type(key)),
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO kv (key, kind, value, expires) VALUES (?1, ?2, NULL, ?3)",
    )
    .and_then(|mut st| st.execute(params![key, KIND_SET, expires]))
    .map_err(|e| err("set_add", e))?;
    let added = tx
        .prepare_cached("INSERT OR IGNORE INTO members (key, member) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute(params![key, member]))
        .map_err(|e| err("set_add", e))?;
    Ok(added == 1)
}

/// The members of the set `key` (empty when it is missing or expired).
fn members_of(conn: &Connection, key: &str, now: i64) -> StoreResult<Vec<Vec<u8>>> {
    if !is_live_set(conn, key, now)? {
        return Ok(Vec::new());
    }
    let mut st = conn
        .prepare_cached("SELECT member FROM members WHERE key = ?1 ORDER BY member")
        .map_err(|e| err("set_members", e))?;
    let rows = st
        .query_map(params![key], |r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| err("set_members", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("set_members", e))
}

/// Is `key` a live set? Errors when it holds another type.
fn is_live_set(conn: &Connection, key: &str, now: i64) -> StoreResult<bool> {
    match live(conn, key, now)? {
        None => Ok(false),
        Some((KIND_SET, _, _)) => Ok(true),
        Some(_) => Err(wrong_type(key)),
    }
}

impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .get_many(std::slice::from_ref(&key.to_string()))?
            .pop()
            .flatten())
    }

    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.in_order()?;
        let expires = self.deadline(ttl);
        self.write(|tx, _| do_put(tx, key, value, expires))
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        self.in_order()?;
        self.write(|tx, _| remove(tx, key))
    }

    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        self.in_order()?;
        let expires = self.deadline(ttl);
        self.write(|tx, now| do_incr(tx, key, by, expires, now))
    }

    fn set_add(&self, key: &str, member: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        self.in_order()?;
        let expires = self.deadline(ttl);
        self.write(|tx, now| do_set_add(tx, key, member, expires, now))
    }

    fn set_contains(&self, key: &str, member: &[u8]) -> StoreResult<bool> {
        {
            let pending = self.pending()?;
            let kept = pending.members(key, Vec::new());
            if kept.iter().any(|m| m == member) {
                return Ok(true);
            }
            if pending.members_known(key) {
                return Ok(false);
            }
        }
        let now = self.now();
        self.with_reader(|conn| {
            if !is_live_set(conn, key, now)? {
                return Ok(false);
            }
            conn.prepare_cached("SELECT 1 FROM members WHERE key = ?1 AND member = ?2")
                .and_then(|mut st| st.exists(params![key, member]))
                .map_err(|e| err("set_contains", e))
        })
    }

    fn set_members(&self, key: &str) -> StoreResult<Vec<Vec<u8>>> {
        Ok(self
            .set_members_many(std::slice::from_ref(&key.to_string()))?
            .pop()
            .unwrap_or_default())
    }

    fn set_members_many(&self, keys: &[String]) -> StoreResult<Vec<Vec<Vec<u8>>>> {
        let now = self.now();
        let sets = self.with_reader(|conn| {
            // One read transaction: a consistent snapshot, one lock.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(|e| err("begin", e))?;
            let sets = keys
                .iter()
                .map(|key| members_of(&tx, key, now))
                .collect::<StoreResult<Vec<_>>>()?;
            tx.commit().map_err(|e| err("commit", e))?;
            Ok(sets)
        })?;
        // The kept writes over the file (read after it: a flush clears
        // its writes only once committed, so nothing falls between).
        let pending = self.pending()?;
        Ok(keys
            .iter()
            .zip(sets)
            .map(|(key, file)| {
                let mut members = pending.members(key, file);
                members.sort();
                members.dedup();
                members
            })
            .collect())
    }

    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let now = self.now();
        // Every key starting with `prefix` sorts between it and prefix+U+10FFFF.
        let upper = format!("{prefix}\u{10FFFF}");
        let keys = self.with_reader(|conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT key FROM kv WHERE key >= ?1 AND key < ?2
                       AND (expires IS NULL OR expires > ?3) ORDER BY key",
                )
                .map_err(|e| err("keys", e))?;
            let rows = st
                .query_map(params![prefix, upper, now], |r| r.get::<_, String>(0))
                .map_err(|e| err("keys", e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| err("keys", e))
        })?;
        let mut keys = self.pending()?.keys_with_prefix(prefix, keys);
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let now = self.now();
        let file = self.with_reader(|conn| {
            // One read transaction: a consistent snapshot, one lock.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(|e| err("begin", e))?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(match live(&tx, key, now)? {
                    None => Ok(None),
                    Some((kind, value, _)) => value_of(key, kind, value).map(Some),
                });
            }
            tx.commit().map_err(|e| err("commit", e))?;
            Ok(out)
        })?;
        // The kept writes over the file (read after it: a flush clears
        // its writes only once committed, so nothing falls between). A
        // key of another type in the file is an error only where the kept
        // writes do not decide the key.
        let pending = self.pending()?;
        keys.iter()
            .zip(file)
            .map(|(key, file)| match (pending.current.keys.get(key), file) {
                (Some(KeyState::Value(v)), _) => Ok(v.clone()),
                (_, file) => pending.value(key, file?),
            })
            .collect()
    }

    fn write_batch_later(&self, ops: Vec<WriteOp>) -> StoreResult<()> {
        if !self.defer.load(Ordering::Relaxed) {
            return self.write_batch(&ops);
        }
        let full = {
            let mut pending = self.pending()?;
            for op in ops {
                pending.current.push(op);
            }
            pending.current.ops.len() >= MAX_PENDING_OPS
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> StoreResult<()> {
        let _one_at_a_time = lock(&self.flushing)?;
        self.flush_kept()
    }

    fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        self.in_order()?;
        self.apply(ops)
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("state store: writes kept for batching were lost: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn clock_at(start: u64) -> (Arc<AtomicU64>, Clock) {
        let t = Arc::new(AtomicU64::new(start));
        let c = t.clone();
        (t, Arc::new(move || c.load(Ordering::SeqCst)))
    }

    #[test]
    fn embedded_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            EmbeddedStore::open(&dir.path().join("s.sqlite3"), Duration::from_secs(1)).unwrap();
        super::super::contract::check_all(&store);
    }

    /// Issue "one direction of flow": the kept writes used to hide a
    /// counter's increments and a set's deletion from reads, and a write
    /// made at once could be undone by an older kept one at the flush.
    #[test]
    fn every_kept_write_reads_as_it_will_be_written_and_order_holds() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(&dir.path().join("s.sqlite3"), Duration::from_secs(1)).unwrap();
        s.defer_writes(true);
        s.incr("c", 2, None).unwrap();
        s.set_add("set", b"a", None).unwrap();
        s.put("k", b"v1", None).unwrap();
        let kept = vec![
            WriteOp::Incr {
                key: "c".into(),
                by: 3,
                ttl: None,
            },
            WriteOp::Incr {
                key: "fresh".into(),
                by: 4,
                ttl: None,
            },
            WriteOp::Delete { key: "set".into() },
            WriteOp::SetAdd {
                key: "set".into(),
                member: b"b".to_vec(),
                ttl: None,
            },
            WriteOp::Delete { key: "k".into() },
        ];
        s.write_batch_later(kept).unwrap();
        let reads = |s: &EmbeddedStore| {
            (
                s.get_many(&["c".into(), "fresh".into(), "k".into()])
                    .unwrap(),
                s.set_members("set").unwrap(),
                s.set_contains("set", b"a").unwrap(),
                s.keys_with_prefix("").unwrap(),
            )
        };
        let before = reads(&s);
        assert_eq!(
            before,
            (
                vec![Some(b"5".to_vec()), Some(b"4".to_vec()), None],
                vec![b"b".to_vec()],
                false,
                vec!["c".to_string(), "fresh".into(), "set".into()],
            )
        );
        s.flush().unwrap();
        assert_eq!(reads(&s), before, "the flush changes nothing a read sees");

        // A write made at once after a kept one is not undone by the flush.
        s.write_batch_later(vec![WriteOp::Put {
            key: "k".into(),
            value: b"old".to_vec(),
            ttl: None,
        }])
        .unwrap();
        s.put("k", b"new", None).unwrap();
        s.flush().unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn deferred_writes_are_read_at_once_and_written_at_flush_or_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let second = || EmbeddedStore::open(&path, Duration::from_secs(1)).unwrap();
        let s = EmbeddedStore::open(&path, Duration::from_secs(1)).unwrap();
        s.defer_writes(true);
        s.put("old", b"1", None).unwrap();
        s.set_add("set", b"a", None).unwrap();
        let later = |key: &str, value: &[u8]| WriteOp::Put {
            key: key.into(),
            value: value.to_vec(),
            ttl: None,
        };
        s.write_batch_later(vec![
            later("k:1", b"first"),
            WriteOp::SetAdd {
                key: "set".into(),
                member: b"b".to_vec(),
                ttl: None,
            },
        ])
        .unwrap();
        s.write_batch_later(vec![
            later("k:1", b"second"),
            WriteOp::Delete { key: "old".into() },
        ])
        .unwrap();
        // This process reads its kept writes, the latest one winning ...
        assert_eq!(s.get("k:1").unwrap().as_deref(), Some(&b"second"[..]));
        assert_eq!(
            s.get_many(&["k:1".into(), "old".into(), "none".into()])
                .unwrap(),
            vec![Some(b"second".to_vec()), None, None]
        );
        assert!(s.set_contains("set", b"b").unwrap());
        assert_eq!(
            s.set_members("set").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(s.keys_with_prefix("k:").unwrap(), vec!["k:1".to_string()]);
        // ... another opener of the file does not see them yet.
        assert_eq!(second().get("k:1").unwrap(), None);
        s.flush().unwrap();
        let other = second();
        assert_eq!(other.get("k:1").unwrap().as_deref(), Some(&b"second"[..]));
        assert_eq!(other.get("old").unwrap(), None);
        assert!(other.set_contains("set", b"b").unwrap());
        // Dropping the store writes what it kept.
        s.write_batch_later(vec![later("k:2", b"x")]).unwrap();
        drop(s);
        assert_eq!(other.get("k:2").unwrap().as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(
            EmbeddedStore::open(&dir.path().join("s.sqlite3"), Duration::from_secs(1)).unwrap(),
        );
        s.put("k", b"v", None).unwrap();
        s.set_add("set", b"m", None).unwrap();
        // The writer busy, as during a long commit.
        let writer = s.conn.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reading = s.clone();
        std::thread::spawn(move || {
            let got = (
                reading.get_many(&["k".into()]).unwrap(),
                reading.set_members("set").unwrap(),
                reading.keys_with_prefix("").unwrap(),
            );
            tx.send(got).unwrap();
        });
        let (values, members, keys) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("reads answer while the writer is busy");
        drop(writer);
        assert_eq!(values, vec![Some(b"v".to_vec())]);
        assert_eq!(members, vec![b"m".to_vec()]);
        assert_eq!(keys, vec!["k".to_string(), "set".to_string()]);
    }

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        {
            let s = EmbeddedStore::open(&path, Duration::from_secs(1)).unwrap();
            s.put("k", b"v", None).unwrap();
            s.set_add("s", b"m", None).unwrap();
        }
        let s = EmbeddedStore::open(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(s.set_contains("s", b"m").unwrap());
    }

    #[test]
    fn expiry_follows_the_clock_and_purge_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let (t, clock) = clock_at(1_000_000);
        let s = EmbeddedStore::open_with_clock(
            &dir.path().join("s.sqlite3"),
            Duration::from_secs(1),
            clock,
        )
        .unwrap();
        let day = Some(Duration::from_secs(86_400));
        s.put("v", b"x", day).unwrap();
        s.set_add("s", b"m", day).unwrap();
        assert_eq!(s.incr("c", 2, day).unwrap(), 2);
        s.put("forever", b"y", None).unwrap();
        t.fetch_add(86_399_000, Ordering::SeqCst);
        assert!(s.get("v").unwrap().is_some());
        // The counter keeps the expiry it was created with.
        assert_eq!(s.incr("c", 1, day).unwrap(), 3);
        t.fetch_add(2_000, Ordering::SeqCst);
        assert_eq!(s.get("v").unwrap(), None);
        assert!(!s.set_contains("s", b"m").unwrap());
        assert_eq!(s.keys_with_prefix("").unwrap(), vec!["forever".to_string()]);
        // An expired counter starts again from zero.
        assert_eq!(s.incr("c", 1, day).unwrap(), 1);
        assert_eq!(s.purge_expired().unwrap(), 2);
        // A re-created set does not resurrect its old members.
        assert!(s.set_add("s", b"n", day).unwrap());
        assert_eq!(s.set_members("s").unwrap(), vec![b"n".to_vec()]);
    }

    #[test]
    fn two_handles_on_one_file_see_each_other() {
        // The daemon and `learn` open the same file at the same time.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let a = EmbeddedStore::open(&path, Duration::from_secs(2)).unwrap();
        let b = EmbeddedStore::open(&path, Duration::from_secs(2)).unwrap();
        a.put("from-a", b"1", None).unwrap();
        assert_eq!(b.get("from-a").unwrap().as_deref(), Some(&b"1"[..]));
        b.incr("n", 1, None).unwrap();
        assert_eq!(a.incr("n", 1, None).unwrap(), 2);
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let e = EmbeddedStore::open(
            Path::new("/nonexistent-dir/for/sure/s.sqlite3"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir"), "{e}");
    }
}
