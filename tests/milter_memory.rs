//! Memory under load, measured on the real daemon (a child process), not
//! asserted in normal runs: `#[ignore]`d, run with
//!
//!   cargo build --release
//!   cargo test --test milter_memory -- --ignored --nocapture --test-threads 1
//!
//! It uses target/release/malspam-milter when present (else the debug
//! binary of this build) and prints the daemon's peak RSS (VmHWM).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use indymilter_test::{MacroStage, Status, TestConnection};

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

/// The daemon on a free loopback port; killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("milter.toml");
        std::fs::write(
            &config,
            format!(
                "[milter]\nlisten = \"inet:127.0.0.1:{port}\"\nlog_level = \"warn\"\n{extra}\n\
                 [store]\nbackend = \"memory\"\n"
            ),
        )
        .unwrap();
        let binary = daemon_binary();
        eprintln!("daemon: {}", binary.display());
        let child = Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            child,
            port,
            _dir: dir,
        }
    }

    /// (VmRSS, VmHWM) in kB.
    fn rss_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message of `body_bytes` (plain text lines) through a connection,
/// in 64 KiB body chunks like Postfix; returns the verdict header.
async fn send(port: u16, body_bytes: usize, id: usize) -> Option<String> {
    let mut conn = TestConnection::configure()
        .read_timeout(Duration::from_secs(300))
        .write_timeout(Duration::from_secs(300))
        .open_tcp(("127.0.0.1", port))
        .await
        .unwrap();
    conn.connect("client.example", [192, 0, 2, 1])
        .await
        .unwrap();
    conn.helo("client.example").await.unwrap();
    conn.mail(["<a@sender.example>"]).await.unwrap();
    conn.rcpt(["<b@rcpt.example>"]).await.unwrap();
    let queue_id = format!("MEM{id}");
    conn.macros(MacroStage::Eoh, [("i", queue_id.as_str())])
        .await
        .unwrap();
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
