//! Issue 12, item 10: descriptor and connection exhaustion. The real daemon
//! (a child process) with its open files limit lowered to 256, against
//! 1,100 idle milter connections plus 2,000 connections to the metrics
//! endpoint. indymilter ended its accept loop on the first accept() error,
//! so EMFILE made the daemon exit. Now it must stay up, say so in its log,
//! and serve normal sessions afterwards.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use indymilter_test::{MacroStage, Status, TestConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE_MILTER: usize = 1100;
const METRICS_FLOOD: usize = 2000;
/// The daemon's open files limit: far below the idle connections.
const DAEMON_NOFILE: u32 = 256;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test process itself holds 3,100 sockets: raise its soft limit.
fn raise_own_limit(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|n| n >= needed),
        "this test needs {needed} open files, the hard limit allows {now:?}"
    );
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, port: u16, metrics_port: u16) -> Daemon {
    let config = dir.join("milter.toml");
    std::fs::write(
        &config,
        format!(
            "[milter]\nlisten = \"inet:127.0.0.1:{port}\"\nidle_timeout_secs = 2\n\
             log_level = \"warn\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [store]\nbackend = \"memory\"\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    // The limit is set by the shell the daemon is exec'd from, so only the
    // daemon runs short of descriptors.
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {DAEMON_NOFILE} && exec \"$0\" run --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_malspam-milter"))
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "the daemon exited at start"
        );
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

/// Open `n` connections at once. While the daemon's backlog is full the
/// kernel retries the handshake; one that cannot connect within 20 s is
/// given up.
async fn flood(port: u16, n: usize, request: Option<&'static [u8]>) -> Vec<TcpStream> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = tokio::time::timeout(
                    Duration::from_secs(20),
                    TcpStream::connect(("127.0.0.1", port)),
                )
                .await
                .ok()?
                .ok()?;
                if let Some(req) = request {
                    let _ = s.write_all(req).await;
                }
                Some(s)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            out.push(s);
        }
    }
    out
}

/// One normal message; the verdict header, if the session went through.
async fn normal_session(port: u16) -> Option<String> {
    let mut conn = TestConnection::configure()
        .read_timeout(Duration::from_secs(5))
        .write_timeout(Duration::from_secs(5))
        .open_tcp(("127.0.0.1", port))
        .await
        .ok()?;
    conn.connect("client.example", [192, 0, 2, 1]).await.ok()?;
    conn.helo("client.example").await.ok()?;
    conn.mail(["<a@sender.example>"]).await.ok()?;
    conn.rcpt(["<b@rcpt.example>"]).await.ok()?;
    conn.macros(MacroStage::Eoh, [("i", "4NORMAL")])
        .await
        .ok()?;
    conn.header("From", "a@sender.example").await.ok()?;
    conn.header("Subject", "lunch").await.ok()?;
    conn.eoh().await.ok()?;
    conn.body(b"Lunch at noon?\r\n".to_vec()).await.ok()?;
    let (actions, status) = conn.eom().await.ok()?;
    let _ = conn.close().await;
    if status != Status::Continue {
        return None;
    }
    actions.actions.iter().find_map(|a| match a {
        indymilter_test::EomAction::AddHeader { name, value }
            if name.to_bytes() == b"X-Malspam-Verdict" =>
        {
            Some(value.to_string_lossy().into_owned())
        }
        _ => None,
    })
}

async fn metrics_answer(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_never_stops_the_daemon() {
    raise_own_limit((IDLE_MILTER + METRICS_FLOOD + 200) as u64);
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let mut daemon = start(dir.path(), port, metrics_port);

    let idle = flood(port, IDLE_MILTER, None).await;
    let scrapers = flood(
        metrics_port,
        METRICS_FLOOD,
        Some(b"GET /metrics HTTP/1.0\r\n\r\n"),
    )
    .await;
    eprintln!(
        "{} idle milter connections, {} metrics connections open",
        idle.len(),
        scrapers.len()
    );

    // Past the idle timeout (2 s): the daemon ran out of descriptors,
    // closed idle connections, and is still here.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon exited under the flood: {}",
        std::fs::read_to_string(dir.path().join("daemon.log")).unwrap()
    );
    assert!(
        idle.len() > DAEMON_NOFILE as usize,
        "the flood must outnumber the descriptors"
    );
    drop(idle);
    drop(scrapers);

    // Normal sessions go on.
    let deadline = Instant::now() + Duration::from_secs(60);
    let verdict = loop {
        if let Some(v) = normal_session(port).await {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no normal session after the flood"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(verdict, "accept");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !metrics_answer(metrics_port)
        .await
        .starts_with("HTTP/1.0 200 OK")
    {
        assert!(
            Instant::now() < deadline,
            "metrics not served after the flood"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(daemon.child.try_wait().unwrap().is_none());

    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("accepting a milter connection: Too many open files"),
        "the daemon did run out of descriptors, and said so:\n{log}"
    );
}
