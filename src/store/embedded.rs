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
//!
//! Threads: one writer thread owns the write connection. Callers queue
//! their writes to it; it applies everything queued when it wakes in one
//! transaction (group commit), so under load a commit carries many
//! messages' writes. [`Store::write_batch`] waits for its outcome,
//! [`Store::write_batch_later`] (what mail teaches) does not. Reads use a
//! small pool of read-only connections (WAL readers never wait for the
//! writer), after waiting until every write to the keys they read, queued
//! before the read began, is applied: this process reads its own writes,
//! counters and deletions included, and a read of other keys does not
//! wait for (nor cut short) the writer's gathering.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{ComputeLater, Reads, Snapshot, Store, StoreError, StoreResult, WriteOp};

const KIND_BYTES: i64 = 0;
const KIND_COUNTER: i64 = 1;
const KIND_SET: i64 = 2;

/// Batches written between two sweeps of expired rows.
const PURGE_EVERY: u64 = 4096;

/// Read connections at most. Reads are short (a message costs one), so a
/// few let the scan threads read at once without one file handle and page
/// cache per thread. Opened as needed.
const READERS: usize = 4;

/// Writes of `write_batch_later` the queue holds at most. The queue is
/// bounded so that a writer that cannot keep up (a stalled disk, another
/// process holding the file's lock) costs memory only up to a point.
const MAX_QUEUED_LATER_OPS: usize = 8192;

/// How long `write_batch_later` waits for room in a full queue before it
/// drops its writes (with an error its caller logs): mail is never held up
/// for long and never lost, only what it would have taught.
const FULL_QUEUE_WAIT: Duration = Duration::from_millis(20);

/// Current time in unix milliseconds; replaceable so tests can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct EmbeddedStore {
    /// The file, for messages.
    what: String,
    /// None when opened read-only: every write is refused.
    writer: Option<Writer>,
    readers: Pool,
    clock: Clock,
    /// `store.timeout_ms`: the SQLite busy timeout of every connection,
    /// and how long a read waits for the writes queued before it.
    timeout: Duration,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.what)
            .field("read_only", &self.writer.is_none())
            .finish_non_exhaustive()
    }
}

/// The writer thread; dropping it writes what is queued and joins it.
struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the callers and the writer thread share.
struct Shared {
    queue: Mutex<Queue>,
    /// The writer waits here for work.
    work: Condvar,
    /// Callers wait here for `applied` to move, or for room in the queue.
    progress: Condvar,
    /// Batches of `write_batch_later` that were not written: failed in
    /// the writer (logged there) or dropped on a full queue.
    lost: AtomicU64,
    /// `store.write_delay_ms`: how long the writer waits to gather more
    /// writes that nobody waits for, in milliseconds (0: it writes at once).
    delay_ms: AtomicU64,
    /// Transactions the writer committed (tests: writes were gathered).
    groups: AtomicU64,
    /// Tests hold this to keep the writer from taking work.
    #[cfg(test)]
    pause: Mutex<()>,
}

/// The writer's channel. Every job gets the next number; the writer
/// applies jobs in that order and publishes the last one applied, so a
/// reader knows what it must wait for.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Writes in `jobs` from `write_batch_later` (what the bound counts).
    later_ops: usize,
    /// The number of the last job queued.
    sent: u64,
    /// The number of the last job applied (committed or failed).
    applied: u64,
    /// The store is being dropped: write what is queued, then stop.
    closing: bool,
    /// Callers waiting for `applied` (a read, a flush) or for a reply (a
    /// synchronous write): the writer stops gathering at once.
    waiting: usize,
    /// The writer is gathering writes (`store.write_delay_ms`): a write
    /// nobody waits for need not wake it.
    gathering: bool,
    /// The writer thread is gone: nothing more will be applied.
    stopped: bool,
    /// Per key written by a job not yet applied: the number of the last
    /// such job. A read waits only for the jobs that write what it reads.
    pending: HashMap<String, u64>,
    /// The number of the last queued job that may write any key (a sweep
    /// of expired rows): every read waits for it.
    pending_all: u64,
}

/// Per write: an Incr's new value, 1 when a SetAdd added its member, else
/// 0. A purge answers the number of rows it deleted.
type Outcome = StoreResult<Vec<i64>>;

struct Job {
    seq: u64,
    work: Work,
    /// Where a waiting caller gets the outcome; None for `write_batch_later`.
    reply: Option<mpsc::SyncSender<Outcome>>,
}

enum Work {
    Write(Vec<WriteOp>),
    /// Read `keys` inside the writer's transaction, then write what
    /// `compute` makes of them: one step, since the writer is the only one.
    Update {
        keys: Vec<String>,
        /// Every key `compute` may write besides `keys`: reads of other
        /// keys go ahead of the job, so writing any other is refused.
        may_write: Vec<String>,
        compute: ComputeLater,
    },
    Purge,
}

/// Which keys a job may write.
enum Touches<'a> {
    Keys(Vec<&'a str>),
    Everything,
}

impl Work {
    /// What the queue's bound counts: writes and keys nobody waits for.
    fn later_ops(&self, reply: bool) -> usize {
        match self {
            _ if reply => 0,
            Work::Write(ops) => ops.len(),
            Work::Update { keys, .. } => keys.len(),
            Work::Purge => 0,
        }
    }

    fn touches(&self) -> Touches<'_> {
        match self {
            Work::Write(ops) => Touches::Keys(ops.iter().map(WriteOp::key).collect()),
            Work::Update {
                keys, may_write, ..
            } => Touches::Keys(keys.iter().chain(may_write).map(String::as_str).collect()),
            Work::Purge => Touches::Everything,
        }
    }
}

impl Shared {
    /// The queue. Every change to it is a few assignments that cannot
    /// panic half-way, so a poisoned lock still holds a sound queue.
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `work` behind everything queued before.
    fn push(&self, queue: &mut Queue, work: Work, reply: Option<mpsc::SyncSender<Outcome>>) {
        queue.sent += 1;
        queue.later_ops += work.later_ops(reply.is_some());
        let seq = queue.sent;
        match work.touches() {
            Touches::Keys(keys) => {
                for key in keys {
                    match queue.pending.get_mut(key) {
                        Some(last) => *last = seq,
                        None => {
                            queue.pending.insert(key.to_string(), seq);
                        }
                    }
                }
            }
            Touches::Everything => queue.pending_all = seq,
        }
        let urgent = reply.is_some();
        queue.jobs.push_back(Job {
            seq: queue.sent,
            work,
            reply,
        });
        if urgent {
            queue.waiting += 1;
        }
        if urgent || !queue.gathering {
            self.work.notify_one();
        }
    }

    /// Queue work nobody waits for. On a full queue, wait briefly for
    /// room, then drop it: the caller logs the error, mail goes on.
    fn send_later(&self, work: Work) -> StoreResult<()> {
        let size = work.later_ops(false);
        let mut queue = self.queue();
        let full = |q: &Queue| q.later_ops > 0 && q.later_ops + size > MAX_QUEUED_LATER_OPS;
        let deadline = Instant::now() + FULL_QUEUE_WAIT;
        while full(&queue) && !queue.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let behind = queue.later_ops;
                drop(queue);
                self.lost.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::new(format!(
                    "embedded store: the writer is {behind} writes behind; \
                     these {size} were dropped"
                )));
            }
            queue = self
                .progress
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if queue.stopped {
            return Err(writer_stopped());
        }
        self.push(&mut queue, work, None);
        Ok(())
    }

    /// Queue `work` and wait for its outcome, at most `bound`.
    fn send_and_wait(&self, work: Work, bound: Duration) -> Outcome {
        let (reply, outcome) = mpsc::sync_channel(1);
        {
            let mut queue = self.queue();
            if queue.stopped {
                return Err(writer_stopped());
            }
            self.push(&mut queue, work, Some(reply));
        }
        match outcome.recv_timeout(bound) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StoreError::new(format!(
                "embedded store: a write waited {} ms for the writer (twice store.timeout_ms); \
                 it may still be made",
                bound.as_millis()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(writer_stopped()),
        }
    }

    /// Wait until every job queued so far that may write one of `keys`
    /// (None: any job at all) is applied; give up at `deadline` (None:
    /// wait as long as it takes).
    fn wait_applied(&self, keys: Option<&[&str]>, deadline: Option<Instant>) -> StoreResult<()> {
        let mut queue = self.queue();
        let target = match keys {
            None => queue.sent,
            Some(keys) => keys
                .iter()
                .filter_map(|k| queue.pending.get(*k).copied())
                .fold(queue.pending_all, u64::max),
        };
        if queue.applied >= target {
            return Ok(());
        }
        // The writer stops gathering for us, and we stop being counted
        // however the wait ends.
        queue.waiting += 1;
        self.work.notify_one();
        let waited = self.wait_for(queue, target, deadline);
        self.queue().waiting -= 1;
        waited
    }

    fn wait_for(
        &self,
        mut queue: MutexGuard<'_, Queue>,
        target: u64,
        deadline: Option<Instant>,
    ) -> StoreResult<()> {
        while queue.applied < target {
            if queue.stopped {
                return Err(writer_stopped());
            }
            queue = match deadline {
                None => self
                    .progress
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(StoreError::new(format!(
                            "embedded store: {} batches of writes made before this read are \
                             not written yet (store.timeout_ms); not read rather than stale",
                            target - queue.applied
                        )));
                    }
                    self.progress
                        .wait_timeout(queue, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        Ok(())
    }

    /// The writer: wait until a job is queued; false when the store is
    /// closing and nothing is left.
    fn wait_for_work(&self) -> bool {
        let mut queue = self.queue();
        while queue.jobs.is_empty() {
            if queue.closing {
                return false;
            }
            queue = self
                .work
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        true
    }

    /// The writer, with a job queued: wait up to `store.write_delay_ms`
    /// for more, unless somebody waits (a read, a flush, a synchronous
    /// write), the store is closing, or the queue is half full.
    fn gather(&self) {
        let delay = Duration::from_millis(self.delay_ms.load(Ordering::Relaxed));
        if delay.is_zero() {
            return;
        }
        let deadline = Instant::now() + delay;
        let mut queue = self.queue();
        queue.gathering = true;
        while !(queue.closing || queue.waiting > 0 || queue.later_ops >= MAX_QUEUED_LATER_OPS / 2) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = self
                .work
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        queue.gathering = false;
    }

    /// The writer: every job queued now.
    fn take_jobs(&self) -> Vec<Job> {
        let mut queue = self.queue();
        queue.later_ops = 0;
        // Synchronous writes taken now stop being waited for here (their
        // callers wait on their reply channel).
        let urgent = queue.jobs.iter().filter(|j| j.reply.is_some()).count();
        queue.waiting -= urgent;
        let jobs = queue.jobs.drain(..).collect();
        // Room in the queue for whoever waits for it.
        self.progress.notify_all();
        jobs
    }

    /// The writer: jobs up to `seq` are applied.
    fn applied(&self, seq: u64) {
        let mut queue = self.queue();
        queue.applied = seq;
        // What jobs queued since the writer took its work still write.
        queue.pending.retain(|_, last| *last > seq);
        drop(queue);
        self.progress.notify_all();
    }
}

fn writer_stopped() -> StoreError {
    StoreError::new("embedded store: the writer thread has stopped")
}

/// Marks the writer stopped when its thread ends, by return or panic, so
/// that nobody waits for it: queued jobs are dropped (their callers get
/// an error) and waiting readers fail.
struct StopOnExit(Arc<Shared>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        queue.stopped = true;
        queue.jobs.clear();
        drop(queue);
        self.0.progress.notify_all();
    }
}

/// The writer thread: apply what is queued, a transaction per wake-up,
/// until the store is dropped.
fn run_writer(mut conn: Connection, shared: Arc<Shared>, clock: Clock) {
    let _stop = StopOnExit(shared.clone());
    // The number of the last job when expired rows were last swept.
    let mut swept_at: u64 = 0;
    while shared.wait_for_work() {
        shared.gather();
        #[cfg(test)]
        let _paused = shared.pause.lock().unwrap_or_else(PoisonError::into_inner);
        let mut jobs = shared.take_jobs();
        let last = jobs.last().map_or(0, |j| j.seq);
        let now = (clock)() as i64;
        let mut work: Vec<&mut Work> = jobs.iter_mut().map(|j| &mut j.work).collect();
        let outcomes = apply_group(&mut conn, &mut work, now);
        shared.groups.fetch_add(1, Ordering::Relaxed);
        let mut replies = Vec::new();
        let mut failed = 0;
        let mut first_error = None;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            match (job.reply, outcome) {
                (Some(reply), outcome) => replies.push((reply, outcome)),
                (None, Ok(_)) => {}
                (None, Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        // Counted before the jobs are published as applied: a flush
        // that returns has seen its losses counted.
        if let Some(e) = first_error {
            shared.lost.fetch_add(failed, Ordering::Relaxed);
            tracing::warn!("state store: {failed} batches of remembered mail not written: {e}");
        }
        // Published before the replies: a caller that reads right after its
        // write returned does not wait again.
        shared.applied(last);
        for (reply, outcome) in replies {
            // A caller that gave up waiting is gone; nothing to tell.
            drop(reply.send(outcome));
        }
        if last - swept_at >= PURGE_EVERY {
            swept_at = last;
            if let Some(Err(e)) = apply_group(&mut conn, &mut [&mut Work::Purge], now).pop() {
                tracing::warn!("state store: sweeping expired rows: {e}");
            }
        }
    }
}

/// Apply `work` in one IMMEDIATE transaction, each job in a savepoint of
/// its own: a job that fails (a key of another type) is undone alone and
/// its error is its own; the others are committed. When the transaction
/// fails as a whole (busy, disk full), every job gets that error.
fn apply_group(conn: &mut Connection, work: &mut [&mut Work], now: i64) -> Vec<Outcome> {
    match try_group(conn, work, now) {
        Ok(outcomes) => outcomes,
        Err(e) => work.iter().map(|_| Err(copy_of(&e))).collect(),
    }
}

fn try_group(conn: &mut Connection, work: &mut [&mut Work], now: i64) -> StoreResult<Vec<Outcome>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| err("begin", e))?;
    let mut outcomes = Vec::with_capacity(work.len());
    // Prepared once per connection (cached): parsing these three
    // statements anew for every job was a tenth of the writer's time.
    let run = |sql: &str| -> StoreResult<()> {
        tx.prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(drop)
            .map_err(|e| err("savepoint", e))
    };
    for job in work.iter_mut() {
        run("SAVEPOINT job")?;
        let outcome = do_work(&tx, job, now);
        if outcome.is_err() {
            run("ROLLBACK TO job")?;
        }
        run("RELEASE job")?;
        outcomes.push(outcome);
    }
    tx.commit().map_err(|e| err("commit", e))?;
    Ok(outcomes)
}

fn do_work(tx: &Connection, work: &mut Work, now: i64) -> Outcome {
    match work {
        Work::Purge => purge(tx, now).map(|n| vec![n as i64]),
        Work::Update {
            keys,
            may_write,
            compute,
        } => {
            let values = values_in(tx, keys, now)?;
            let ops = compute(&values);
            if let Some(op) = ops
                .iter()
                .find(|op| !keys.iter().chain(&*may_write).any(|k| k == op.key()))
            {
                // Reads of that key did not wait for this job: refused
                // rather than read stale.
                return Err(StoreError::new(format!(
                    "embedded store: an update wrote {}, a key it did not declare; not written",
                    op.key()
                )));
            }
            write_ops(tx, &ops, now)
        }
        Work::Write(ops) => write_ops(tx, ops, now),
    }
}

/// Make `ops` in `tx`; an Incr's new value or 1 when a SetAdd added its
/// member, per write.
fn write_ops(tx: &Connection, ops: &[WriteOp], now: i64) -> Outcome {
    let deadline = |ttl: &Option<Duration>| ttl.map(|t| now.saturating_add(t.as_millis() as i64));
    ops.iter()
        .map(|op| match op {
            WriteOp::Put { key, value, ttl } => do_put(tx, key, value, deadline(ttl)).map(|()| 0),
            WriteOp::SetAdd { key, member, ttl } => {
                do_set_add(tx, key, member, deadline(ttl), now).map(i64::from)
            }
            WriteOp::Incr { key, by, ttl } => do_incr(tx, key, *by, deadline(ttl), now),
            WriteOp::Delete { key } => remove(tx, key).map(|()| 0),
        })
        .collect()
}

/// The error of a transaction that failed as a whole, once more for each
/// job in it. rusqlite's errors cannot be cloned; SQLite's own (busy, disk
/// full: what fails a whole transaction) are copied, any other as text.
fn copy_of(e: &StoreError) -> StoreError {
    match e {
        StoreError::Sqlite {
            context,
            source: rusqlite::Error::SqliteFailure(code, message),
        } => StoreError::Sqlite {
            context: context.clone(),
            source: rusqlite::Error::SqliteFailure(*code, message.clone()),
        },
        StoreError::Sqlite { context, source } => {
            StoreError::new(format!("embedded store: {context}: {source}"))
        }
        other => StoreError::new(other.to_string()),
    }
}

/// Read connections, opened as needed up to [`READERS`].
struct Pool {
    state: Mutex<PoolState>,
    /// Waits for a connection to come back.
    returned: Condvar,
    connect: Box<dyn Fn() -> StoreResult<Connection> + Send + Sync>,
}

struct PoolState {
    idle: Vec<Connection>,
    opened: usize,
}

/// A connection taken from the pool; it goes back on drop.
struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Pool {
    fn new(
        first: Connection,
        connect: Box<dyn Fn() -> StoreResult<Connection> + Send + Sync>,
    ) -> Pool {
        Pool {
            state: Mutex::new(PoolState {
                idle: vec![first],
                opened: 1,
            }),
            returned: Condvar::new(),
            connect,
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one, or the first returned before `deadline`.
    fn take(&self, deadline: Instant) -> StoreResult<Pooled<'_>> {
        let mut state = self.state();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(self.pooled(conn));
            }
            if state.opened < READERS {
                state.opened += 1;
                drop(state);
                return match (self.connect)() {
                    Ok(conn) => Ok(self.pooled(conn)),
                    Err(e) => {
                        self.state().opened -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::new(
                    "embedded store: no read connection free within store.timeout_ms",
                ));
            }
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn pooled(&self, conn: Connection) -> Pooled<'_> {
        Pooled {
            pool: self,
            conn: Some(conn),
        }
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a pooled connection until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a pooled connection until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.state().idle.push(conn);
            self.pool.returned.notify_one();
        }
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

fn err(context: &str, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        context: context.to_string(),
        source,
    }
}

fn wrong_type(key: &str) -> StoreError {
    StoreError::WrongType(key.to_string())
}

/// A read connection of a store this process also writes: it refuses
/// writes of its own and waits up to `busy_timeout` for other processes.
fn open_reader(path: &Path, what: &str, busy_timeout: Duration) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| err(what, e))?;
    conn.busy_timeout(busy_timeout).map_err(|e| err(what, e))?;
    conn.execute_batch("PRAGMA query_only=1; PRAGMA mmap_size=268435456;")
        .map_err(|e| err(what, e))?;
    Ok(conn)
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
        let mut conn = Connection::open(path).map_err(|e| err(&what, e))?;
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
        if let Some(Err(e)) =
            apply_group(&mut conn, &mut [&mut Work::Purge], (clock)() as i64).pop()
        {
            return Err(e);
        }
        let first = open_reader(path, &what, busy_timeout)?;
        let reader_path = path.to_path_buf();
        let reader_what = what.clone();
        let readers = Pool::new(
            first,
            Box::new(move || open_reader(&reader_path, &reader_what, busy_timeout)),
        );
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            lost: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            #[cfg(test)]
            pause: Mutex::new(()),
        });
        let thread = {
            let (shared, clock) = (shared.clone(), clock.clone());
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || run_writer(conn, shared, clock))
                .map_err(|e| StoreError::new(format!("embedded store: writer thread: {e}")))?
        };
        Ok(EmbeddedStore {
            what,
            writer: Some(Writer {
                shared,
                thread: Some(thread),
            }),
            readers,
            clock,
            timeout: busy_timeout,
        })
    }

    /// Open an existing database for reading only (`check`): no table is
    /// created, nothing is purged, no writer thread runs, every write fails,
    /// and the file's bytes stay as they were. Where the directory cannot be
    /// written (no `-shm` file can be made), the file is read as immutable.
    pub fn open_read_only(path: &Path, busy_timeout: Duration) -> StoreResult<EmbeddedStore> {
        use rusqlite::OpenFlags;
        let what = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::new(format!(
                "embedded store: {what}: no store file yet"
            )));
        }
        let connect = move |path: &Path, what: &str, immutable: bool| {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let uri = format!(
                "file:{}?mode=ro{}",
                percent_path(path),
                if immutable { "&immutable=1" } else { "" }
            );
            let conn = Connection::open_with_flags(&uri, flags).map_err(|e| err(what, e))?;
            conn.busy_timeout(busy_timeout).map_err(|e| err(what, e))?;
            // Reading needs the tables: a file that is not our store fails here.
            conn.query_row("SELECT count(*) FROM kv WHERE 0", [], |_| Ok(()))
                .map_err(|e| err(what, e))?;
            Ok(conn)
        };
        let (first, immutable) = match connect(path, &what, false) {
            Ok(conn) => (conn, false),
            Err(_) => (connect(path, &what, true)?, true),
        };
        let (reader_path, reader_what): (PathBuf, String) = (path.to_path_buf(), what.clone());
        Ok(EmbeddedStore {
            what,
            writer: None,
            readers: Pool::new(
                first,
                Box::new(move || connect(&reader_path, &reader_what, immutable)),
            ),
            clock: Arc::new(system_clock),
            timeout: busy_timeout,
        })
    }

    /// Batches of `write_batch_later` that were not written since the
    /// store was opened: failed (each logged) or dropped on a full queue.
    /// Let the writer wait up to `delay` to gather writes nobody waits
    /// for into one transaction (`store.write_delay_ms`); a read, a flush
    /// or a synchronous write cuts the wait short, so nothing is ever read
    /// stale or made to wait for the delay. Zero (the default of a store
    /// opened directly): it writes as soon as it wakes.
    pub fn set_write_delay(&self, delay: Duration) {
        if let Some(writer) = &self.writer {
            let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            writer.shared.delay_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Transactions the writer has committed.
    pub fn write_groups(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| w.shared.groups.load(Ordering::Relaxed))
    }

    pub fn lost_writes(&self) -> u64 {
        self.writer
            .as_ref()
            .map_or(0, |w| w.shared.lost.load(Ordering::Relaxed))
    }

    /// Delete every expired row (they are already invisible); how many.
    pub fn purge_expired(&self) -> StoreResult<usize> {
        let outcome = self.send_and_wait(Work::Purge)?;
        Ok(outcome.first().copied().unwrap_or(0) as usize)
    }

    fn writer(&self) -> StoreResult<&Shared> {
        match &self.writer {
            Some(w) => Ok(&w.shared),
            None => Err(StoreError::new(format!(
                "embedded store: {}: opened read-only (check): writes are refused",
                self.what
            ))),
        }
    }

    /// Make `work` and wait for it. The wait is bounded by twice the busy
    /// timeout: the transaction before it and its own may each wait that
    /// long for another process.
    fn send_and_wait(&self, work: Work) -> Outcome {
        self.writer()?.send_and_wait(work, self.timeout * 2)
    }

    /// Make `ops` (one at least) and answer each one's outcome.
    fn write_now(&self, ops: Vec<WriteOp>) -> Outcome {
        self.send_and_wait(Work::Write(ops))
    }

    /// Make one write; its outcome.
    fn write_one(&self, op: WriteOp) -> StoreResult<i64> {
        Ok(self.write_now(vec![op])?.first().copied().unwrap_or(0))
    }

    fn now(&self) -> i64 {
        (self.clock)() as i64
    }

    /// Run `f` on a read connection once every write to `keys` (None:
    /// to any key) queued before now is applied (read-your-writes); both
    /// waits within `store.timeout_ms`.
    fn with_reader<T>(
        &self,
        keys: Option<&[&str]>,
        f: impl FnOnce(&mut Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + self.timeout;
        if let Some(writer) = &self.writer {
            writer.shared.wait_applied(keys, Some(deadline))?;
        }
        let mut conn = self.readers.take(deadline)?;
        f(&mut conn)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("state store: the writer thread panicked; queued writes are lost");
            }
        }
    }
}

/// Run `f` in one read transaction: a consistent snapshot, one lock. The
/// statements are prepared once per connection (a message costs one read,
/// and parsing BEGIN and COMMIT anew each time showed in its profile).
fn in_snapshot<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let run = |conn: &Connection, sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(drop)
    };
    run(conn, "BEGIN DEFERRED").map_err(|e| err("begin", e))?;
    let outcome = f(conn).and_then(|out| {
        run(conn, "COMMIT")
            .map(|()| out)
            .map_err(|e| err("commit", e))
    });
    if outcome.is_err() && !conn.is_autocommit() {
        // Never leave the pooled connection inside a transaction; a read
        // transaction holds no changes, so this cannot lose anything.
        drop(run(conn, "ROLLBACK"));
    }
    outcome
}

/// The live values of `keys` (counters as their decimal digits).
fn values_in(conn: &Connection, keys: &[String], now: i64) -> StoreResult<Vec<Option<Vec<u8>>>> {
    keys.iter()
        .map(|key| match live(conn, key, now)? {
            None => Ok(None),
            Some((kind, value, _)) => value_of(key, kind, value).map(Some),
        })
        .collect()
}

/// The members of each set in `keys`, sorted.
fn sets_in(conn: &Connection, keys: &[String], now: i64) -> StoreResult<Vec<Vec<Vec<u8>>>> {
    keys.iter().map(|key| members_of(conn, key, now)).collect()
}

/// Whether the live set at `key` holds `member`.
fn holds_member(conn: &Connection, key: &str, member: &[u8], now: i64) -> StoreResult<bool> {
    if !is_live_set(conn, key, now)? {
        return Ok(false);
    }
    conn.prepare_cached("SELECT 1 FROM members WHERE key = ?1 AND member = ?2")
        .and_then(|mut st| st.exists(params![key, member]))
        .map_err(|e| err("set_contains", e))
}

/// Delete every expired row; how many keys.
fn purge(tx: &Connection, now: i64) -> StoreResult<usize> {
    tx.execute(
        "DELETE FROM members WHERE key IN
           (SELECT key FROM kv WHERE kind = ?1 AND expires IS NOT NULL AND expires <= ?2)",
        params![KIND_SET, now],
    )
    .map_err(|e| err("purge", e))?;
    tx.execute(
        "DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?1",
        params![now],
    )
    .map_err(|e| err("purge", e))
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
        self.write_one(WriteOp::Put {
            key: key.into(),
            value: value.to_vec(),
            ttl,
        })
        .map(drop)
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        self.write_one(WriteOp::Delete { key: key.into() })
            .map(drop)
    }

    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        self.write_one(WriteOp::Incr {
            key: key.into(),
            by,
            ttl,
        })
    }

    fn set_add(&self, key: &str, member: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        let added = self.write_one(WriteOp::SetAdd {
            key: key.into(),
            member: member.to_vec(),
            ttl,
        })?;
        Ok(added == 1)
    }

    fn set_contains(&self, key: &str, member: &[u8]) -> StoreResult<bool> {
        let now = self.now();
        self.with_reader(Some(&[key]), |conn| holds_member(conn, key, member, now))
    }

    fn set_members(&self, key: &str) -> StoreResult<Vec<Vec<u8>>> {
        Ok(self
            .set_members_many(std::slice::from_ref(&key.to_string()))?
            .pop()
            .unwrap_or_default())
    }

    fn set_members_many(&self, keys: &[String]) -> StoreResult<Vec<Vec<Vec<u8>>>> {
        let now = self.now();
        let read: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.with_reader(Some(&read), |conn| {
            in_snapshot(conn, |tx| sets_in(tx, keys, now))
        })
    }

    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let now = self.now();
        // Every key starting with `prefix` sorts between it and prefix+U+10FFFF.
        let upper = format!("{prefix}\u{10FFFF}");
        self.with_reader(None, |conn| {
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
        })
    }

    fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let now = self.now();
        let read: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.with_reader(Some(&read), |conn| {
            in_snapshot(conn, |tx| values_in(tx, keys, now))
        })
    }

    /// The lookup stage's reads in one read transaction on one pooled
    /// connection: a consistent snapshot for the whole message.
    fn read(&self, reads: &Reads) -> StoreResult<Snapshot> {
        if reads.is_empty() {
            return Ok(Snapshot::default());
        }
        let now = self.now();
        self.with_reader(Some(&reads.keys()), |conn| {
            in_snapshot(conn, |tx| {
                let values = values_in(tx, &reads.value_keys(), now)?;
                let sets = sets_in(tx, &reads.set_keys(), now)?;
                let memberships = reads
                    .membership_pairs()
                    .map(|(key, member)| holds_member(tx, key, member, now))
                    .collect::<StoreResult<Vec<bool>>>()?;
                Snapshot::from_parts(reads, values, sets, memberships)
            })
        })
    }

    /// Queued for the writer thread; reads of this process see them at
    /// once. Their errors are logged by the writer and counted in
    /// [`EmbeddedStore::lost_writes`].
    fn write_batch_later(&self, ops: Vec<WriteOp>) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.writer()?.send_later(Work::Write(ops))
    }

    /// Handed to the writer thread, which reads `keys` and writes what
    /// `compute` makes of them in its own transaction: one step, since it
    /// is the only writer. Reads of this process made after this returns
    /// wait for it when they read `keys` or `may_write`, as for any queued
    /// write to what they read.
    fn update_later(
        &self,
        keys: Vec<String>,
        may_write: Vec<String>,
        compute: ComputeLater,
    ) -> StoreResult<()> {
        self.writer()?.send_later(Work::Update {
            keys,
            may_write,
            compute,
        })
    }

    /// Wait until every write queued so far is applied.
    fn flush(&self) -> StoreResult<()> {
        match &self.writer {
            Some(writer) => writer.shared.wait_applied(None, None),
            None => Ok(()),
        }
    }

    /// One transaction of the writer (possibly shared with other callers'
    /// writes, each undone alone when it fails).
    fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.write_now(ops.to_vec()).map(drop)
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

    fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
        EmbeddedStore::open(&dir.path().join("s.sqlite3"), Duration::from_secs(5)).unwrap()
    }

    fn put(key: &str, value: &[u8]) -> WriteOp {
        WriteOp::Put {
            key: key.into(),
            value: value.to_vec(),
            ttl: None,
        }
    }

    fn incr(key: &str, by: i64) -> WriteOp {
        WriteOp::Incr {
            key: key.into(),
            by,
            ttl: None,
        }
    }

    fn set_add(key: &str, member: &[u8]) -> WriteOp {
        WriteOp::SetAdd {
            key: key.into(),
            member: member.to_vec(),
            ttl: None,
        }
    }

    fn delete(key: &str) -> WriteOp {
        WriteOp::Delete { key: key.into() }
    }

    #[test]
    fn embedded_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        super::super::contract::check_all(&open(&dir));
    }

    /// Issue "one direction of flow": what was sent for later must read as
    /// it will be written — a counter's increments, a deletion, a set
    /// deleted and made again — from the moment it was sent.
    #[test]
    fn later_writes_are_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        s.incr("c", 2, None).unwrap();
        s.set_add("set", b"a", None).unwrap();
        s.put("k", b"v1", None).unwrap();
        s.put("gone", b"x", None).unwrap();
        s.write_batch_later(vec![
            put("k", b"v2"),
            incr("c", 3),
            incr("fresh", 4),
            set_add("new-set", b"m"),
            delete("set"),
            set_add("set", b"b"),
            delete("gone"),
        ])
        .unwrap();
        assert_eq!(
            s.get_many(&["c".into(), "fresh".into(), "k".into(), "gone".into()])
                .unwrap(),
            vec![
                Some(b"5".to_vec()),
                Some(b"4".to_vec()),
                Some(b"v2".to_vec()),
                None
            ]
        );
        assert_eq!(s.set_members("set").unwrap(), vec![b"b".to_vec()]);
        assert!(!s.set_contains("set", b"a").unwrap());
        assert!(s.set_contains("new-set", b"m").unwrap());
        assert_eq!(
            s.keys_with_prefix("").unwrap(),
            ["c", "fresh", "k", "new-set", "set"]
        );
        assert_eq!(s.lost_writes(), 0);
    }

    #[test]
    fn a_later_write_never_undoes_a_write_made_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        s.write_batch_later(vec![put("k", b"old"), incr("n", 1)])
            .unwrap();
        s.put("k", b"new", None).unwrap();
        assert_eq!(s.incr("n", 1, None).unwrap(), 2);
        s.write_batch_later(vec![put("j", b"older")]).unwrap();
        s.write_batch(&[put("j", b"newer")]).unwrap();
        s.flush().unwrap();
        drop(s);
        let s = open(&dir);
        assert_eq!(
            s.get_many(&["k".into(), "j".into(), "n".into()]).unwrap(),
            vec![
                Some(b"new".to_vec()),
                Some(b"newer".to_vec()),
                Some(b"2".to_vec())
            ]
        );
    }

    #[test]
    fn dropping_the_store_writes_everything_queued() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        for i in 0..500 {
            s.write_batch_later(vec![put(&format!("k:{i:03}"), b"v"), incr("n", 1)])
                .unwrap();
        }
        drop(s);
        let s = open(&dir);
        assert_eq!(s.keys_with_prefix("k:").unwrap().len(), 500);
        assert_eq!(s.get("n").unwrap().as_deref(), Some(&b"500"[..]));
    }

    /// The default `update` reads, then writes for later: each update must
    /// read the one before it, or increments are lost.
    #[test]
    fn updates_from_eight_threads_all_count() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(open(&dir));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        s.update(&["n".into()], &mut |values: &[Option<Vec<u8>>]| {
                            let n: u64 = values[0]
                                .as_deref()
                                .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                            vec![put("n", (n + 1).to_string().as_bytes())]
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.get("n").unwrap().as_deref(), Some(&b"1600"[..]));
        assert_eq!(s.lost_writes(), 0);
    }

    /// Remembering hands its read-modify-write to the writer thread: the
    /// callers never wait, every update counts, and a read made after one
    /// returned sees it.
    #[test]
    fn updates_made_later_by_the_writer_all_count_and_are_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(open(&dir));
        let increment = || -> ComputeLater {
            Box::new(|values: &[Option<Vec<u8>>]| {
                let n: u64 = values[0]
                    .as_deref()
                    .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                vec![put("n", (n + 1).to_string().as_bytes())]
            })
        };
        s.update_later(vec!["n".into()], vec![], increment())
            .unwrap();
        assert_eq!(s.get("n").unwrap().as_deref(), Some(&b"1"[..]));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        s.update_later(vec!["n".into()], vec![], increment())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.get("n").unwrap().as_deref(), Some(&b"1601"[..]));
        // One that fails (a member added to a plain value) is lost alone,
        // and counted.
        s.update_later(
            vec!["n".into()],
            vec![],
            Box::new(|_: &[Option<Vec<u8>>]| {
                vec![WriteOp::SetAdd {
                    key: "n".into(),
                    member: b"m".to_vec(),
                    ttl: None,
                }]
            }),
        )
        .unwrap();
        s.update_later(vec!["n".into()], vec![], increment())
            .unwrap();
        assert_eq!(s.get("n").unwrap().as_deref(), Some(&b"1602"[..]));
        assert_eq!(s.lost_writes(), 1);
    }

    /// With a write delay, writes nobody waits for go into one
    /// transaction; a read cuts the delay short and sees them at once.
    #[test]
    fn the_writer_gathers_writes_until_someone_needs_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        s.set_write_delay(Duration::from_secs(600));
        let before = s.write_groups();
        for i in 0..50 {
            s.write_batch_later(vec![put(&format!("k{i}"), b"v")])
                .unwrap();
        }
        // Not a timing assertion: a read that waited out the delay would
        // take ten minutes, and the test would be killed long before.
        assert_eq!(s.get("k49").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(
            s.write_groups() - before <= 2,
            "50 writes in {} transactions",
            s.write_groups() - before
        );
        // A synchronous write does not wait for the delay either.
        s.write_batch_later(vec![put("later", b"1")]).unwrap();
        s.incr("n", 1, None).unwrap();
        // Nor a flush, nor the drop, which writes what is gathered.
        s.write_batch_later(vec![put("last", b"1")]).unwrap();
        s.flush().unwrap();
        s.write_batch_later(vec![put("dropped", b"1")]).unwrap();
        drop(s);
        let again = open(&dir);
        for key in ["later", "last", "dropped"] {
            assert!(again.get(key).unwrap().is_some(), "{key}");
        }
    }

    /// A read waits only for queued writes to the keys it reads: reading
    /// other keys neither waits nor cuts the writer's gathering short. An
    /// update's declared writes count; an undeclared one is refused.
    #[test]
    fn a_read_waits_only_for_writes_to_what_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        s.set_write_delay(Duration::from_secs(600));
        let before = s.write_groups();
        s.write_batch_later(vec![put("queued", b"v")]).unwrap();
        s.update_later(
            vec!["read".into()],
            vec!["named".into()],
            Box::new(|_: &[Option<Vec<u8>>]| vec![set_add("named", b"m")]),
        )
        .unwrap();
        // Not a timing assertion: a read that waited for the writer would
        // have ended its ten-minute gathering, and committed.
        let mut other = Reads::default();
        other.value("other".into());
        other.set("other-set".into());
        other.membership("other-set".into(), b"m".to_vec());
        assert!(s.read(&other).is_ok());
        assert_eq!(s.get("other").unwrap(), None);
        assert_eq!(s.write_groups(), before, "an unrelated read waited");
        // A read of a queued key waits for it, and so does one of a key an
        // update declared it may write.
        assert_eq!(s.get("queued").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(s.write_groups(), before + 1);
        s.update_later(
            vec!["read".into()],
            vec!["named".into()],
            Box::new(|_: &[Option<Vec<u8>>]| vec![set_add("named", b"n")]),
        )
        .unwrap();
        assert_eq!(s.set_members("named").unwrap().len(), 2);
        // Writing a key it did not declare: refused, and counted lost.
        s.update_later(
            vec!["read".into()],
            vec![],
            Box::new(|_: &[Option<Vec<u8>>]| vec![put("undeclared", b"x")]),
        )
        .unwrap();
        s.flush().unwrap();
        assert_eq!(s.get("undeclared").unwrap(), None);
        assert_eq!(s.lost_writes(), 1);
    }

    /// A read that fails half-way (a set read as a value) ends its
    /// transaction: the pooled connection it used serves the next reads.
    #[test]
    fn a_failed_read_leaves_its_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        s.set_add("set", b"m", None).unwrap();
        s.put("value", b"v", None).unwrap();
        // More failures than pooled connections: each must be given back clean.
        for _ in 0..2 * READERS {
            assert!(s.get_many(&["value".into(), "set".into()]).is_err());
        }
        for _ in 0..2 * READERS {
            assert_eq!(s.get("value").unwrap().as_deref(), Some(&b"v"[..]));
        }
    }

    #[test]
    fn a_read_only_store_refuses_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        open(&dir).put("k", b"v", None).unwrap();
        let s = EmbeddedStore::open_read_only(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        let refused = [
            s.put("k", b"w", None).err(),
            s.delete("k").err(),
            s.incr("n", 1, None).err(),
            s.set_add("s", b"m", None).err(),
            s.write_batch(&[put("k", b"w")]).err(),
            s.write_batch_later(vec![put("k", b"w")]).err(),
            s.purge_expired().err(),
        ];
        for e in refused {
            let e = e.expect("refused").to_string();
            assert!(e.contains("read-only"), "{e}");
        }
        s.flush().unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_failing_batch_gets_its_error_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir);
        s.incr("c", 1, None).unwrap();
        // A counter written as a set: the batch fails as a whole.
        let e = s
            .write_batch(&[put("first", b"x"), set_add("c", b"m")])
            .unwrap_err();
        assert!(matches!(e, StoreError::WrongType(ref k) if k == "c"), "{e}");
        assert_eq!(s.get("first").unwrap(), None, "undone with its batch");
        s.write_batch(&[put("after", b"ok")]).unwrap();
        assert_eq!(s.get("after").unwrap().as_deref(), Some(&b"ok"[..]));

        // In one transaction with others (the writer held while they
        // queue): only the failing batch is undone, and it is counted.
        {
            let _paused = s.writer.as_ref().unwrap().shared.pause.lock().unwrap();
            s.write_batch_later(vec![put("a", b"1")]).unwrap();
            s.write_batch_later(vec![put("b", b"1"), incr("c", 1), set_add("c", b"m")])
                .unwrap();
            s.write_batch_later(vec![put("d", b"1")]).unwrap();
        }
        s.flush().unwrap();
        assert_eq!(s.lost_writes(), 1);
        assert_eq!(
            s.get_many(&["a".into(), "b".into(), "c".into(), "d".into()])
                .unwrap(),
            vec![
                Some(b"1".to_vec()),
                None,
                Some(b"1".to_vec()),
                Some(b"1".to_vec())
            ]
        );
        assert_eq!(s.incr("c", 1, None).unwrap(), 2);
    }

    /// A read never answers without a write sent before it: when the
    /// writer cannot catch up within the timeout, the read is an error.
    #[test]
    fn a_read_behind_a_stuck_writer_fails_rather_than_answers_stale() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            EmbeddedStore::open(&dir.path().join("s.sqlite3"), Duration::from_millis(50)).unwrap();
        s.put("k", b"old", None).unwrap();
        {
            let _paused = s.writer.as_ref().unwrap().shared.pause.lock().unwrap();
            s.write_batch_later(vec![put("k", b"new")]).unwrap();
            let e = s.get("k").unwrap_err().to_string();
            assert!(e.contains("not written yet"), "{e}");
        }
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn reads_do_not_wait_for_another_writer_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let s = Arc::new(EmbeddedStore::open(&path, Duration::from_secs(1)).unwrap());
        s.put("k", b"v", None).unwrap();
        s.set_add("set", b"m", None).unwrap();
        // Another process in the middle of a write transaction.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
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
            .expect("reads answer while the file is locked for writing");
        other.execute_batch("ROLLBACK").unwrap();
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
