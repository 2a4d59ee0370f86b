//! Opening the configured backend: one function for the daemon, `check`
//! and `learn`, so they all use the same store.

use std::path::PathBuf;
use std::sync::Arc;

use super::{
    EmbeddedStore, MemoryStore, RedisStore, Store, StoreBackend, StoreConfig, StoreError,
    StoreResult,
};

/// Where the embedded store lives when `store.path` is not set:
/// `$XDG_STATE_HOME/malspam-milter/state.sqlite3`, else
/// `$HOME/.local/state/malspam-milter/state.sqlite3`.
pub fn default_embedded_path() -> Option<PathBuf> {
    let non_empty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
    let base = match non_empty("XDG_STATE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(non_empty("HOME")?).join(".local/state"),
    };
    Some(base.join("malspam-milter").join("state.sqlite3"))
}

/// The embedded store's file: `store.path`, else the default.
fn embedded_path(config: &StoreConfig) -> StoreResult<PathBuf> {
    match &config.path {
        Some(p) => Ok(p.clone()),
        None => default_embedded_path().ok_or_else(|| {
            StoreError::new("no store.path set and neither XDG_STATE_HOME nor HOME to put it under")
        }),
    }
}

/// Open the store `config` names. The embedded store's directory is created
/// when missing.
pub fn open(config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
    match config.backend {
        StoreBackend::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreBackend::Redis => Ok(Arc::new(RedisStore::new(config)?)),
        StoreBackend::Embedded => {
            let path = embedded_path(config)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::new(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let store = EmbeddedStore::open(&path, config.timeout())?;
            store.set_write_delay(config.write_delay());
            Ok(Arc::new(store))
        }
    }
}

/// Open the store `config` names for reading only (`check`): the embedded
/// store's file is opened read-only and never created; Redis is only read
/// because nothing that scans without committing writes.
pub fn open_read_only(config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
    match config.backend {
        StoreBackend::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreBackend::Redis => Ok(Arc::new(RedisStore::new(config)?)),
        StoreBackend::Embedded => Ok(Arc::new(EmbeddedStore::open_read_only(
            &embedded_path(config)?,
            config.timeout(),
        )?)),
    }
}

/// Open the configured store read-only, or an in-memory one when it cannot
/// be opened (no store yet, a read-only machine): what `check` uses, which
/// never writes. The second value says why the fallback was taken, for the
/// caller to print.
pub fn open_or_memory(config: &StoreConfig) -> (Arc<dyn Store>, Option<String>) {
    match open_read_only(config) {
        Ok(store) => (store, None),
        Err(e) => (
            Arc::new(MemoryStore::new()),
            Some(format!(
                "{e}; using an in-memory store (thread memory and known correspondents are empty)"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_is_created_under_the_configured_path() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            path: Some(dir.path().join("deep/er/state.sqlite3")),
            ..StoreConfig::default()
        };
        let store = open(&config).unwrap();
        assert_eq!(store.backend(), "embedded");
        store.put("k", b"v", None).unwrap();
        assert!(dir.path().join("deep/er/state.sqlite3").exists());
    }

    #[test]
    fn read_only_opening_never_creates_or_changes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        let config = StoreConfig {
            path: Some(path.clone()),
            ..StoreConfig::default()
        };
        // No store yet: nothing is created, memory is used.
        let (store, why) = open_or_memory(&config);
        assert_eq!(store.backend(), "memory");
        assert!(why.unwrap().contains("no store file yet"));
        assert!(!path.exists());
        // A store the daemon wrote: read, never written.
        {
            let rw = open(&config).unwrap();
            rw.put("k", b"v", Some(std::time::Duration::from_millis(1)))
                .unwrap();
            rw.put("kept", b"v", None).unwrap();
            rw.flush().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        let before = std::fs::read(&path).unwrap();
        let (store, why) = open_or_memory(&config);
        assert_eq!((store.backend(), why), ("embedded", None));
        assert_eq!(store.get("kept").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(
            store.put("x", b"y", None).is_err(),
            "a read-only store refuses writes"
        );
        drop(store);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the file's bytes are unchanged"
        );
    }

    #[test]
    fn an_unopenable_store_falls_back_to_memory_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the directory should be: cannot be created.
        std::fs::write(dir.path().join("blocker"), "x").unwrap();
        let config = StoreConfig {
            path: Some(dir.path().join("blocker/state.sqlite3")),
            ..StoreConfig::default()
        };
        assert!(open(&config).is_err());
        let (store, why) = open_or_memory(&config);
        assert_eq!(store.backend(), "memory");
        let why = why.unwrap();
        assert!(
            why.contains("blocker") && why.contains("in-memory"),
            "{why}"
        );
    }
}
