//! `malspam-milter learn`: feed existing mail (a Sent folder, an archive)
//! into the state store, so thread memory and known correspondents work
//! from day one. Each message is remembered once per Message-ID: running it
//! twice over the same mail changes nothing.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::input::{self, InputMessage};
use crate::store::threads::Remembered;
use crate::view::MessageView;
use crate::{Engine, Envelope};

/// What one `learn` run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LearnSummary {
    pub read: usize,
    /// Remembered now for the first time.
    pub new: usize,
    /// Already remembered (same Message-ID): nothing changed.
    pub known: usize,
    /// No sender nor recipient address: nothing to remember.
    pub empty: usize,
    pub unreadable: usize,
    /// The store refused a write.
    pub failed: usize,
}

/// Learn every message under `paths` into `engine`'s store.
pub fn learn(engine: &Engine, paths: &[PathBuf], progress: &ProgressBar) -> LearnSummary {
    let mut sum = LearnSummary::default();
    let limits = &engine.config().limits;
    input::walk(paths, |item| {
        match item {
            Ok(InputMessage { label, bytes }) => {
                sum.read += 1;
                let deadline = Instant::now() + Duration::from_secs(limits.scan_timeout_secs);
                let view = MessageView::build(Envelope::default(), &bytes, limits, deadline);
                // An admin vouches for what they feed: believed whole.
                match engine.remember_as(&crate::store::threads::Remembrance::of(&view), true) {
                    Ok(Remembered::New) => sum.new += 1,
                    Ok(Remembered::Known) => sum.known += 1,
                    Ok(Remembered::Empty) => sum.empty += 1,
                    Err(e) => {
                        sum.failed += 1;
                        progress.suspend(|| {
                            eprintln!(
                                "malspam-milter: {}: {e}",
                                crate::sanitize::escape_controls(&label)
                            )
                        });
                    }
                }
            }
            Err(e) => {
                sum.unreadable += 1;
                progress.suspend(|| {
                    eprintln!(
                        "malspam-milter: {}: {}",
                        crate::sanitize::escape_controls(&e.label),
                        e.error
                    )
                });
            }
        }
        progress.set_message(format!(
            "{} read, {} new, {} already known",
            sum.read, sum.new, sum.known
        ));
        progress.tick();
    });
    sum
}

/// `learn` run as root on the daemon's store (the packaged
/// `/var/lib/malspam-milter/state.sqlite3`): the files root creates there
/// (the database, its `-wal` and `-shm`) are given to the owner of the
/// store's directory, so the daemon can still open them. Nothing happens
/// when not root, for other backends, or when the directory is root's.
pub fn hand_store_to_owner(store: &crate::store::StoreConfig) {
    use std::os::unix::fs::MetadataExt;
    if store.backend != crate::store::StoreBackend::Embedded || !crate::security::running_as_root()
    {
        return;
    }
    let Some(path) = store
        .path
        .clone()
        .or_else(crate::store::default_embedded_path)
    else {
        return;
    };
    let Some(dir) = path.parent() else { return };
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    if meta.uid() == 0 {
        if store.path.is_none() {
            eprintln!(
                "malspam-milter: learning into root's own store {} (no config given): \
                 the daemon reads the store of its config; pass --config",
                path.display()
            );
        }
        return;
    }
    let mut names = vec![path.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        names.push(PathBuf::from(name));
    }
    for file in names {
        if std::fs::metadata(&file).is_ok_and(|m| m.uid() == 0) {
            if let Err(e) = std::os::unix::fs::chown(&file, Some(meta.uid()), Some(meta.gid())) {
                eprintln!(
                    "malspam-milter: cannot give {} to the store's owner (uid {}): {e}",
                    file.display(),
                    meta.uid()
                );
            }
        }
    }
}

/// The command: progress on a terminal, a summary at the end. Exit code 0,
/// or 2 when some input was unreadable or the store failed.
pub fn run(engine: &Engine, paths: &[PathBuf]) -> i32 {
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} learning: {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let sum = learn(engine, paths, &progress);
    progress.finish_and_clear();
    println!(
        "learned {} message(s) into the {} store: {} new, {} already known, {} without addresses; {} unreadable, {} not stored",
        sum.read,
        engine.store().backend(),
        sum.new,
        sum.known,
        sum.empty,
        sum.unreadable,
        sum.failed
    );
    if sum.unreadable > 0 || sum.failed > 0 {
        super::check::EXIT_UNREADABLE
    } else {
        0
    }
}
