//! The real daemon as a child process on a free loopback port, for tests
//! that measure it from outside (memory, CPU, budgets). Shared through
//! `#[path = "common/daemon.rs"]` by tests/milter_memory.rs and
//! tests/milter_budget.rs.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A milter session with the daemon on `port`, through the envelope: a
/// client, HELO, one sender and one recipient, and the queue id (macro
/// `i`). Reads and writes time out after `timeout`.
pub async fn open_message(
    port: u16,
    timeout: Duration,
    queue_id: &str,
) -> indymilter_test::TestConnection {
    let mut conn = indymilter_test::TestConnection::configure()
        .read_timeout(timeout)
        .write_timeout(timeout)
        .open_tcp(("127.0.0.1", port))
        .await
        .expect("connect to the daemon");
    conn.connect("client.example", [192, 0, 2, 1])
        .await
        .unwrap();
    conn.helo("client.example").await.unwrap();
    conn.mail(["<a@sender.example>"]).await.unwrap();
    conn.rcpt(["<b@rcpt.example>"]).await.unwrap();
    conn.macros(indymilter_test::MacroStage::Eoh, [("i", queue_id)])
        .await
        .unwrap();
    conn
}

/// The daemon; killed and reaped on drop.
pub struct ChildDaemon {
    pub child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl ChildDaemon {
    /// Start `binary run` with `[milter] listen` on a free port, `log_level =
    /// "warn"`, then `config` (more TOML: keys of `[milter]` first, then
    /// other sections). Waits until it accepts connections.
    pub fn start(binary: &Path, config: &str) -> ChildDaemon {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = dir.path().join("milter.toml");
        std::fs::write(
            &path,
            format!(
                "[milter]\nlisten = \"inet:127.0.0.1:{port}\"\nlog_level = \"warn\"\n{config}\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut daemon = ChildDaemon { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                daemon.child.try_wait().unwrap().is_none(),
                "the daemon exited at start:\n{}",
                daemon.log()
            );
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// What the daemon wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// CPU seconds the daemon has used (user + system).
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    /// (VmRSS, VmHWM) in kB.
    pub fn rss_kb(&self) -> (u64, u64) {
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

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
