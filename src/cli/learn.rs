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
                match engine.remember_as(&view, true) {
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
