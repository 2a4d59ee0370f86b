//! Two `malspam-milter run` processes (the real binary) sharing outbound
//! counters and holds through a real `redis-server` this test starts on a
//! free loopback port (no persistence). indymilter-test plays the MTA and
//! sends the `{auth_authen}` macro of an authenticated submission.
//!
//! Alice's messages are split between the two milters; the 1-minute limit
//! is 5 messages, so the sixth (on milter B) trips `outbound.rate_exceeded`
//! and is quarantined, the seventh (on milter A) finds the hold Redis
//! carries and gets `outbound.held`. Bob keeps sending meanwhile.
//! `outbound status` shows the hold read from Redis, `outbound release`
//! ends it and the next message is accepted.
//!
//! Skips loudly without redis-server (`apt-get install redis-server`); in CI
//! (env CI set) it fails instead, so a broken install cannot pass silently.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use indymilter_test::{EomAction, EomActions, MacroStage, Status, TestConnection};

const MILTER: &str = env!("CARGO_BIN_EXE_malspam-milter");
const PATIENCE: Duration = Duration::from_secs(30);

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, log: impl Fn() -> String) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < PATIENCE,
            "{what} never listened on 127.0.0.1:{port}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[path = "common/redis.rs"]
mod redis_harness;

fn start_redis() -> Option<(redis_harness::RedisServer, u16)> {
    let server = redis_harness::start("tests/outbound_redis.rs")?;
    let port = server.port;
    Some((server, port))
}

/// One `malspam-milter run` process on its own inet port, logging to a file.
struct Milter {
    _proc: Proc,
    addr: SocketAddr,
    log: PathBuf,
}

impl Milter {
    fn start(dir: &Path, name: &str, config: &Path) -> Milter {
        let port = free_port();
        // Same config but for the listen address.
        let own_config = dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(config).unwrap();
        std::fs::write(
            &own_config,
            format!("[milter]\nlisten = \"inet:127.0.0.1:{port}\"\n\n{text}"),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(MILTER)
            .arg("run")
            .arg("--config")
            .arg(&own_config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start malspam-milter run");
        let proc = Proc(child);
        wait_for_port(port, name, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        Milter {
            _proc: proc,
            addr: ([127, 0, 0, 1], port).into(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One authenticated submission on a fresh milter connection.
    async fn submit(&self, login: &str, queue_id: &str) -> EomActions {
        let mut conn = TestConnection::configure()
            .read_timeout(PATIENCE)
            .write_timeout(PATIENCE)
            .open_tcp(self.addr)
            .await
            .expect("milter accepts the connection");
        let status = conn
            .connect("client.customer.example", [203, 0, 113, 7])
            .await
            .unwrap();
        // The milter asked Postfix not to wait for replies where it only listens.
        assert_eq!(status, Status::Noreply);
        assert_eq!(
            conn.helo("client.customer.example").await.unwrap(),
            Status::Noreply
        );
        // Postfix sends {auth_authen} with MAIL FROM when the session logged in.
        conn.macros(MacroStage::Mail, [("{auth_authen}", login)])
            .await
            .unwrap();
        let from = format!("<{login}>");
        assert_eq!(conn.mail([from.as_str()]).await.unwrap(), Status::Noreply);
        let rcpt = format!("<partner-{queue_id}@customer-{queue_id}.example>");
        assert_eq!(conn.rcpt([rcpt.as_str()]).await.unwrap(), Status::Noreply);
        conn.macros(MacroStage::Eoh, [("i", queue_id)])
            .await
            .unwrap();
        for (name, value) in [
            ("From", format!("<{login}>")),
            ("To", rcpt.trim_matches(['<', '>']).to_string()),
            ("Subject", format!("order {queue_id}")),
        ] {
            assert_eq!(
                conn.header(name, value.as_str()).await.unwrap(),
                Status::Noreply
            );
        }
        assert_eq!(conn.eoh().await.unwrap(), Status::Noreply);
        let body = b"Dear partner,\r\nplease find the order details below.\r\n".to_vec();
        let status = conn.body(body).await.unwrap();
        assert!(matches!(status, Status::Continue | Status::Skip));
        conn.macros(MacroStage::Eom, [("i", queue_id)])
            .await
            .unwrap();
        let (actions, status) = conn.eom().await.unwrap();
        assert_eq!(status, Status::Continue, "{queue_id}: {actions:?}");
        conn.close().await.unwrap();
        actions
    }
}

fn added(actions: &EomActions, name: &str) -> Option<String> {
    actions.actions.iter().find_map(|a| match a {
        EomAction::AddHeader { name: n, value } if n.to_bytes() == name.as_bytes() => {
            Some(value.to_string_lossy().into_owned())
        }
        _ => None,
    })
}

fn verdict(actions: &EomActions) -> String {
    added(actions, "X-Malspam-Verdict").unwrap_or_default()
}

fn findings(actions: &EomActions) -> Vec<String> {
    added(actions, "X-Malspam-Findings")
        .map(|v| malspam_milter::headers::unfold_findings(&v))
        .unwrap_or_default()
}

fn quarantine_reason(actions: &EomActions) -> Option<String> {
    actions.actions.iter().find_map(|a| match a {
        EomAction::Quarantine { reason } => Some(reason.to_string_lossy().into_owned()),
        _ => None,
    })
}

fn cli(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(MILTER)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "malspam-milter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_milters_share_counters_and_holds_through_redis() {
    let started = Instant::now();
    let Some((_redis, redis_port)) = start_redis() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The shared part of both milters' config; `outbound status|release`
    // read it too (without [milter], whose default listen they ignore).
    let config = dir.path().join("shared.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{redis_port}/0\"\n\
             key_prefix = \"obtest:\"\ntimeout_ms = 2000\n\n\
             [outbound]\nhold_minutes = 30\n\
             [[outbound.windows]]\nname = \"1m\"\nseconds = 60\nmessages = 5\n"
        ),
    )
    .unwrap();
    let a = Milter::start(dir.path(), "milter-a", &config);
    let b = Milter::start(dir.path(), "milter-b", &config);
    let alice = "alice@customer.example";
    let bob = "bob@customer.example";

    // Five messages from alice, alternating milters: within the limit.
    for (i, milter) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let id = format!("AL{}", i + 1);
        let actions = milter.submit(alice, &id).await;
        assert_eq!(verdict(&actions), "accept", "{id}: {actions:?}");
        assert_eq!(quarantine_reason(&actions), None);
    }

    // The sixth, on milter B, is over the limit B counted together with A.
    let actions = b.submit(alice, "AL6").await;
    assert_eq!(verdict(&actions), "quarantine", "{actions:?}");
    let tripped = findings(&actions);
    assert_eq!(
        tripped,
        ["outbound.rate_exceeded (+10): alice@customer.example: 6 messages in 1m (limit 5)"]
    );
    let reason = quarantine_reason(&actions).expect("quarantined");
    assert!(
        reason.contains("outbound.rate_exceeded") && reason.contains("6 messages in 1m (limit 5)"),
        "{reason}"
    );

    // The seventh, on milter A: held, because the hold lives in Redis.
    let actions = a.submit(alice, "AL7").await;
    assert_eq!(verdict(&actions), "quarantine", "{actions:?}");
    let held = findings(&actions);
    // The hold, read at the envelope stage, comes first; the message is
    // still over the limit (7 in the minute), which extends the hold.
    assert_eq!(
        held[1],
        "outbound.rate_exceeded (+10): alice@customer.example: 7 messages in 1m (limit 5)"
    );
    assert!(
        held[0].starts_with("outbound.held (+10): alice@customer.example on hold since ")
            && held[0].contains("(first queue id AL6)")
            && held[0].contains("6 messages in 1m (limit 5)"),
        "{held:?}"
    );
    assert_eq!(held.len(), 2, "{held:?}");

    // Bob is another account: his mail flows on both milters.
    for (milter, id) in [(&a, "BO1"), (&b, "BO2")] {
        let actions = milter.submit(bob, id).await;
        assert_eq!(verdict(&actions), "accept", "{id}: {actions:?}");
    }

    // One alert line for the episode, on the milter that started it.
    let alert = "outbound ALERT: account alice@customer.example held for 30 min";
    let (log_a, log_b) = (a.log(), b.log());
    assert_eq!(log_a.matches(alert).count(), 0, "{log_a}");
    assert_eq!(log_b.matches(alert).count(), 1, "{log_b}");
    let alert_line = log_b.lines().find(|l| l.contains(alert)).unwrap();
    assert!(
        alert_line.contains("AL6: outbound ALERT")
            && alert_line.contains("first queue id AL6")
            && alert_line.contains("counters: 1m: 6 msg, 6 rcpt, 6 domains, 6 new"),
        "{alert_line}"
    );
    eprintln!("alert line: {alert_line}");

    // `outbound status` reads the hold and counters from Redis.
    let status = cli(&config, &["outbound", "status", alice]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.starts_with("alice@customer.example\n  HELD since "),
        "{text}"
    );
    assert!(
        text.contains("2 message(s), first queue id AL6, last queue id AL7"),
        "{text}"
    );
    assert!(
        text.contains("1m: 7 msg, 7 rcpt, 7 domains, 7 new"),
        "{text}"
    );
    eprintln!("outbound status:\n{text}");
    let all = cli(&config, &["outbound", "status"]);
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(
        all.contains("alice@customer.example\n  HELD")
            && all.contains("bob@customer.example\n  not held"),
        "{all}"
    );

    // Release ends the hold everywhere; the next message goes through.
    let released = cli(&config, &["outbound", "release", alice]);
    let released = String::from_utf8_lossy(&released.stdout);
    assert!(
        released.starts_with("released alice@customer.example: hold since ")
            && released.contains("first queue id AL6, last queue id AL7"),
        "{released}"
    );
    let actions = a.submit(alice, "AL8").await;
    assert_eq!(verdict(&actions), "accept", "{actions:?}");
    let actions = b.submit(alice, "AL9").await;
    assert_eq!(verdict(&actions), "accept", "{actions:?}");
    let after = cli(&config, &["outbound", "status", alice]);
    let after = String::from_utf8_lossy(&after.stdout);
    assert!(after.contains("  not held\n"), "{after}");
    assert!(after.contains("1m: 2 msg"), "counters restarted: {after}");
    eprintln!(
        "tests/outbound_redis.rs took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
