//! `[store]`: which backend keeps the milter's memory, and for how long.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The backend named by `store.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// SQLite in one file (`store.path`); no server to run.
    #[default]
    Embedded,
    /// A Redis server (`store.url`), for several mail servers sharing one memory.
    Redis,
    /// Forget everything when the process ends (tests; `check` on a read-only machine).
    Memory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// The embedded database file. Empty: `$XDG_STATE_HOME/malspam-milter/state.sqlite3`,
    /// else `~/.local/state/malspam-milter/state.sqlite3`.
    pub path: Option<PathBuf>,
    /// `redis://[:password@]host:port/db`. The environment variable
    /// `MALSPAM_REDIS_URL`, when set, takes precedence (keeps the password
    /// out of the config file).
    pub url: String,
    /// Prefix of every Redis key, so that one Redis can serve other tools.
    pub key_prefix: String,
    /// Bound on each store call: Redis connect/read/write timeout, SQLite
    /// busy timeout, and how long an embedded store read waits for the
    /// writes queued before it. A store that does not answer in time is an
    /// error (`scan.error`), never a stuck message.
    pub timeout_ms: u64,
    /// After Redis failed to connect or answer, calls fail at once for this
    /// long before the next attempt, so a down Redis costs mail no time.
    pub reconnect_after_ms: u64,
    /// How long a remembered message (thread memory) and a correspondent
    /// are kept after they were last seen.
    pub thread_ttl_days: u64,
    /// Embedded store: how long its writer thread waits to gather what
    /// accepted mail teaches into one transaction, in milliseconds (a
    /// commit per message costs more than the scan of small mail). A read
    /// of a key with a write queued, a flush or a counter write cuts the
    /// wait short, so nothing is read stale; a crash loses at most this
    /// much of what mail taught. 0 = write as soon as the writer wakes.
    pub write_delay_ms: u64,
    /// Redis: how many remembered threads, correspondents and lists are
    /// kept in memory as read. Redis tells the daemon of every change to
    /// them (server-assisted invalidation, Redis 6 or later), so a kept one
    /// is never older than that news takes to arrive. 0 = read every one
    /// from Redis each time.
    pub cache_entries: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Embedded,
            path: None,
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: "malspam-milter:".into(),
            timeout_ms: 500,
            reconnect_after_ms: 5000,
            thread_ttl_days: 365,
            write_delay_ms: 100,
            cache_entries: 10_000,
        }
    }
}

impl StoreConfig {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms.max(1))
    }

    /// `write_delay_ms` as a duration.
    pub fn write_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.write_delay_ms)
    }

    /// The expiry of thread and correspondent records.
    pub fn thread_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.thread_ttl_days.max(1) * 86_400)
    }

    /// The Redis URL: `MALSPAM_REDIS_URL` if set, else `url`.
    pub fn redis_url(&self) -> String {
        match std::env::var("MALSPAM_REDIS_URL") {
            Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
            _ => self.url.clone(),
        }
    }
}
