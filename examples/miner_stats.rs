//! How many password candidates the miner finds per message over real ham
//! mail. Every candidate costs a password check when the mail carries an
//! encrypted zip, so honest mail should yield few.
//!
//!     cargo run --example miner_stats [-- PATH...]
//!
//! Without paths it reads the corpus's ham: linux-man-list,
//! spamassassin-tdata/nice and mikel-mail (../shared/corpus).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use malspam_milter::config::Limits;
use malspam_milter::detectors::encrypted_archive::EncryptedArchiveConfig;
use malspam_milter::input;
use malspam_milter::password;
use malspam_milter::view::MessageView;
use malspam_milter::Envelope;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

fn main() {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let sets: Vec<PathBuf> = if args.is_empty() {
        ["linux-man-list", "spamassassin-tdata/nice", "mikel-mail"]
            .iter()
            .map(|d| PathBuf::from(format!("{CORPUS}/{d}")))
            .collect()
    } else {
        args
    };
    let config = EncryptedArchiveConfig::default();
    let (mut all_messages, mut all_candidates, mut all_with) = (0usize, 0usize, 0usize);
    for set in &sets {
        if !set.exists() {
            eprintln!("SKIP: {} absent", set.display());
            continue;
        }
        let (mut messages, mut total, mut max, mut with_any) = (0usize, 0usize, 0usize, 0usize);
        let mut examples = Vec::new();
        input::walk(std::slice::from_ref(set), |m| {
            let Ok(m) = m else { return };
            // The engine catches parser panics per message; so does this.
            let built = std::panic::catch_unwind(|| {
                MessageView::build(
                    Envelope::default(),
                    &m.bytes,
                    &Limits::default(),
                    Instant::now() + Duration::from_secs(20),
                )
            });
            let Ok(view) = built else {
                eprintln!("    {}: the MIME parser panicked; skipped", m.label);
                return;
            };
            let found = password::candidates(&view, &config);
            messages += 1;
            total += found.len();
            max = max.max(found.len());
            if !found.is_empty() {
                with_any += 1;
                for c in found.iter().take(2) {
                    examples.push(format!(
                        "    {}: {} ({})",
                        m.label.rsplit('/').next().unwrap_or(&m.label),
                        password::mask(&c.password),
                        c.found
                    ));
                }
            }
        });
        let mean = if messages > 0 {
            total as f64 / messages as f64
        } else {
            0.0
        };
        println!(
            "{}: {messages} messages, {total} candidates, mean {mean:.3}, max {max}, {with_any} messages with any",
            set.display()
        );
        for e in examples.iter().take(12) {
            println!("{e}");
        }
        all_messages += messages;
        all_candidates += total;
        all_with += with_any;
    }
    let mean = if all_messages > 0 {
        all_candidates as f64 / all_messages as f64
    } else {
        0.0
    };
    println!("total: {all_messages} messages, {all_candidates} candidates, mean {mean:.3}, {all_with} messages with any");
}
