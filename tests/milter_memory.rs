//! Memory under load, measured on the real daemon (a child process), not
//! asserted in normal runs: `#[ignore]`d, run with
//!
//!   cargo build --release
//!   cargo test --test milter_memory -- --ignored --nocapture --test-threads 1
//!
//! It uses target/release/malspam-milter when present (else the debug
//! binary of this build) and prints the daemon's peak RSS (VmHWM).

use std::path::PathBuf;
use std::time::Duration;

use indymilter_test::Status;

fn daemon_binary() -> PathBuf {
    let release = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/release/malspam-milter"
    ));
    if release.exists() {
        release
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_malspam-milter"))
    }
}

#[path = "common/daemon.rs"]
mod daemon;

use daemon::ChildDaemon;

/// The daemon on a free loopback port, with `[milter]` keys `extra` and the
/// memory store (or `store`); killed on drop.
struct Daemon;

impl Daemon {
    fn start(extra: &str) -> ChildDaemon {
        Daemon::start_with_store(extra, "[store]\nbackend = \"memory\"\n")
    }

    fn start_with_store(extra: &str, store: &str) -> ChildDaemon {
        let binary = daemon_binary();
        eprintln!("daemon: {}", binary.display());
        ChildDaemon::start(&binary, &format!("{extra}\n{store}"))
    }
}

/// One message of `body_bytes` (plain text lines) through a connection,
/// in 64 KiB body chunks like Postfix; returns the verdict header.
async fn send(port: u16, body_bytes: usize, id: usize) -> Option<String> {
    let queue_id = format!("MEM{id}");
    let mut conn = daemon::open_message(port, Duration::from_secs(300), &queue_id).await;
    conn.header("From", "a@sender.example").await.unwrap();
    conn.header("Subject", "memory").await.unwrap();
    conn.eoh().await.unwrap();
    let line = b"The quick brown fox jumps over the lazy dog 0123456789.\r\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
    let mut sent = 0;
    while sent < body_bytes {
        let n = chunk.len().min(body_bytes - sent);
        let status = conn.body(chunk[..n].to_vec()).await.unwrap();
        sent += n;
        if status == Status::Skip {
            break;
        }
    }
    let (actions, _) = conn.eom().await.unwrap();
    conn.close().await.unwrap();
    actions.actions.iter().find_map(|a| match a {
        indymilter_test::EomAction::AddHeader { name, value }
            if name.to_bytes() == b"X-Malspam-Verdict" =>
        {
            Some(value.to_string_lossy().into_owned())
        }
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement; run with --ignored against the release daemon"]
async fn two_hundred_concurrent_one_megabyte_messages() {
    let daemon = Daemon::start("");
    let (idle, _) = daemon.rss_kb();
    let port = daemon.port;
    let tasks: Vec<_> = (0..200)
        .map(|i| tokio::spawn(async move { send(port, 1 << 20, i).await }))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().as_deref(), Some("accept"));
    }
    let (rss, peak) = daemon.rss_kb();
    println!(
        "200 concurrent 1 MiB messages: idle RSS {idle} kB, after {rss} kB, peak (VmHWM) {peak} kB"
    );
}

#[tokio::test]
#[ignore = "measurement; run with --ignored against the release daemon"]
async fn fifty_megabyte_message_stays_under_max_message_size() {
    for max in [32u64 << 20, 8 << 20] {
        let daemon = Daemon::start(&format!("max_message_size = {max}"));
        let (idle, _) = daemon.rss_kb();
        let verdict = send(daemon.port, 50 << 20, 0).await;
        let (rss, peak) = daemon.rss_kb();
        println!(
            "50 MiB message, max_message_size {} MiB: verdict {verdict:?}, idle RSS {idle} kB, \
             after {rss} kB, peak (VmHWM) {peak} kB",
            max >> 20
        );
        // Tagged "too large", and the buffer never held more than the cap
        // (plus the process's own baseline and slack for allocator rounding).
        assert_eq!(verdict.as_deref(), Some("tag"));
        assert!(peak < idle + (max >> 10) * 2 + 16 * 1024, "peak {peak} kB");
    }
}

/// The daemon's own CPU per message for the traffic of
/// `scripts/postfix-bench.sh`: 2,000 plain messages of 2, 10, 50 and 200 kB
/// over 10 concurrent connections, one connection per message (as Postfix's
/// smtpd does for smtp-source's sessions), embedded state store. On a
/// machine where the MTA and the milter share the cores, this CPU is what
/// the milter takes from Postfix's throughput.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored against the release daemon"]
async fn cpu_per_message_for_the_postfix_bench_mix() {
    const MESSAGES: usize = 2000;
    const SESSIONS: usize = 10;
    const SIZES: [usize; 4] = [2_000, 10_000, 50_000, 200_000];
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "[store]\nbackend = \"embedded\"\npath = \"{}\"\n",
        dir.path().join("state.sqlite3").display()
    );
    let daemon = Daemon::start_with_store("", &store);
    let port = daemon.port;
    let before = daemon.cpu_secs();
    let started = std::time::Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= MESSAGES {
                        break;
                    }
                    let size = SIZES[i * SIZES.len() / MESSAGES];
                    assert_eq!(send(port, size, i).await.as_deref(), Some("accept"));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = daemon.cpu_secs() - before;
    println!(
        "{MESSAGES} messages ({SIZES:?} bytes), {SESSIONS} connections at once: \
         daemon CPU {cpu:.2} s = {:.3} ms/message; wall {elapsed:.2} s",
        cpu * 1000.0 / MESSAGES as f64
    );
}
