//! OpenDKIM's `miltertest` (Debian package `miltertest`), a libmilter-based
//! MTA simulator, drives the real daemon through the Lua scripts in
//! tests/miltertest/. Skips loudly when miltertest is not installed (in CI it
//! fails instead: `.ci/run` installs it).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/miltertest");
const MILTER: &str = env!("CARGO_BIN_EXE_malspam-milter");

#[test]
fn miltertest_drives_a_clean_and_a_tagged_message() {
    drive_clean_and_tagged(1);
}

/// The same through the multi-threaded runtime (`milter.io_threads` > 1).
#[test]
fn the_same_with_several_io_threads() {
    drive_clean_and_tagged(2);
}

fn drive_clean_and_tagged(io_threads: usize) {
    let Some(miltertest) = find_miltertest() else {
        if std::env::var_os("CI").is_some() {
            panic!("CI must run miltertest, but it is not installed (see .ci/run)");
        }
        eprintln!("\n*** SKIPPED tests/miltertest.rs: miltertest is not installed (apt-get install miltertest) ***\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("milter.toml");
    std::fs::write(
        &config,
        format!(
            "[milter]\nlisten = \"inet:127.0.0.1:{port}\"\nmax_message_size = 2000\n\
             io_threads = {io_threads}\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            dir.path().join("state.sqlite3").display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("milter.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let milter = Killed(
        Command::new(MILTER)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stderr(log)
            .spawn()
            .expect("start the milter"),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "milter never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    for script in ["clean.lua", "tagged.lua"] {
        let out = Command::new(&miltertest)
            .arg("-s")
            .arg(Path::new(SCRIPTS).join(script))
            .env("MILTER_SOCKET", format!("inet:{port}@127.0.0.1"))
            .env("MILTERTEST_DIR", SCRIPTS)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{script}: {}\n{stdout}\n{stderr}\nmilter log:\n{}",
            out.status,
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        let expected = format!("{}: ok", script.trim_end_matches(".lua"));
        assert!(stdout.contains(&expected), "{script}: {stdout}");
    }
    // The daemon counted both messages on its metrics endpoint.
    let metrics = http_get(metrics_port, "/metrics");
    assert!(
        metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"),
        "{metrics}"
    );
    for line in [
        "malspam_milter_messages_total{verdict=\"accept\"} 1",
        "malspam_milter_messages_total{verdict=\"tag\"} 1",
        "malspam_milter_findings_total{rule=\"scan.too_large\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    drop(milter);

    // One log line per message, prefixed with the queue id.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("CLEAN1: verdict=accept score=0"), "{log}");
    assert!(
        log.contains("TAGGED1: verdict=tag score=0 findings=scan.too_large(+0)"),
        "{log}"
    );
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

fn find_miltertest() -> Option<String> {
    ["/usr/bin/miltertest", "/usr/local/bin/miltertest"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(str::to_string)
}

/// Kills the milter when the test ends, whatever happens.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
