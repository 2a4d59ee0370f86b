//! The daemon's life: config reload (what SIGHUP does), a failed reload,
//! shutdown with a message in flight, and the unix socket.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use indymilter_test::{MacroStage, Status, TestConnection};
use malspam_milter::config::ListenAddr;
use malspam_milter::milter::{self, Daemon, MilterListener};
use tokio::sync::mpsc;

const TAG: &str = "[policy.scores]\n\"scan.error\" = 6.0\n";
const QUARANTINE: &str = "[policy.scores]\n\"scan.error\" = 12.0\n";

async fn verdict_for_marker(milter: &TestMilter) -> String {
    let body = format!("{MARKER}\r\n");
    let (actions, status) = milter
        .send_one(&Msg {
            body: &body,
            ..Msg::default()
        })
        .await;
    assert_eq!(status, Status::Continue);
    added(&actions, "X-Malspam-Verdict").unwrap()
}

#[tokio::test]
async fn reload_swaps_the_config_and_a_bad_one_keeps_the_old() {
    let milter = TestMilter::start(TAG).await;
    assert_eq!(verdict_for_marker(&milter).await, "tag");

    std::fs::write(&milter.config_path, QUARANTINE).unwrap();
    milter.daemon.reload().expect("valid config reloads");
    assert_eq!(verdict_for_marker(&milter).await, "quarantine");

    // Two errors, both reported; the running config stays.
    std::fs::write(
        &milter.config_path,
        "[policy]\ntag = \"high\"\n[limits]\nmax_depht = 4\n",
    )
    .unwrap();
    let errors = milter.daemon.reload().expect_err("bad config is refused");
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(errors
        .0
        .iter()
        .any(|e| e.key.as_deref() == Some("policy.tag")));
    assert!(errors.0[0].file.ends_with("malspam-milter.toml"));
    assert_eq!(verdict_for_marker(&milter).await, "quarantine");

    // A missing file is an error too, and changes nothing.
    std::fs::remove_file(&milter.config_path).unwrap();
    assert!(milter.daemon.reload().is_err());
    assert_eq!(verdict_for_marker(&milter).await, "quarantine");
    milter.stop().await;
}

#[tokio::test]
async fn the_reload_channel_of_run_reloads() {
    // What SIGHUP feeds: `run` rereads the config on each message.
    let milter = TestMilter::start(TAG).await;
    std::fs::write(&milter.config_path, QUARANTINE).unwrap();
    milter.reload.send(()).await.unwrap();
    // The reload is done when the engine in force has the new score.
    let mut waited = 0;
    while milter.daemon.engine().policy().score_of("scan.error") != 12.0 {
        assert!(waited < 500, "reload through the channel never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(verdict_for_marker(&milter).await, "quarantine");
    milter.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_message_in_flight() {
    let mut milter = TestMilter::start(TAG).await;
    let mut conn = milter.open().await;
    handshake(&mut conn).await;
    listens(conn.mail(["<alice@sender.example>"]).await.unwrap());
    conn.rcpt(["<bob@rcpt.example>"]).await.unwrap();
    conn.header("Subject", "in flight").await.unwrap();
    conn.eoh().await.unwrap();
    let body = format!("{MARKER}\r\n");
    conn.body(body).await.unwrap();
    assert_eq!(milter.daemon.messages_in_flight(), 1);

    milter.begin_shutdown();
    // New connections are refused once the listener is closed...
    let mut waited = 0;
    while tokio::net::TcpStream::connect(milter.addr).await.is_ok() {
        assert!(waited < 500, "the listener was never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    // ...but the message in flight is still scanned and answered.
    conn.macros(MacroStage::Eom, [("i", "LAST1")])
        .await
        .unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    assert_eq!(added(&actions, "X-Malspam-Verdict").as_deref(), Some("tag"));
    assert_eq!(milter.daemon.messages_in_flight(), 0);
    milter.stop().await;
}

#[tokio::test]
async fn unix_socket_mode_stale_socket_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("milter.sock");
    // A stale socket file, as a crash leaves it: nobody listens on it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let addr = ListenAddr::Unix(path.clone());
    let listener = MilterListener::bind(&addr, "0660").await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    // A second instance must not steal a live socket.
    let err = MilterListener::bind(&addr, "0660").await.err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    let config_path = dir.path().join("c.toml");
    std::fs::write(&config_path, "[store]\nbackend = \"memory\"\n").unwrap();
    let daemon = std::sync::Arc::new(Daemon::load(Some(config_path)).unwrap());
    let (_reload_tx, reload_rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(milter::run(listener, daemon, reload_rx, async {
        let _ = stop_rx.await;
    }));

    let mut conn = TestConnection::configure().open_unix(&path).await.unwrap();
    handshake(&mut conn).await;
    let (actions, _) = send(&mut conn, &Msg::default()).await;
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
    conn.close().await.unwrap();

    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert!(!path.exists(), "the socket file is removed at exit");
}

/// What accepted mail teaches reaches the database file while the daemon
/// runs: another process (`check`, `learn`, a second milter) sees it, not
/// only this one, within `store.write_delay_ms` (the writer gathers writes
/// that long at most).
#[tokio::test]
async fn batched_store_writes_reach_the_file_while_running() {
    use malspam_milter::store::{threads, EmbeddedStore};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite3");
    let config_path = dir.path().join("c.toml");
    std::fs::write(
        &config_path,
        format!(
            "[store]\nbackend = \"embedded\"\npath = \"{}\"\nwrite_delay_ms = 50\n",
            db.display()
        ),
    )
    .unwrap();
    let daemon = std::sync::Arc::new(Daemon::load(Some(config_path)).unwrap());
    let listener = MilterListener::bind(&ListenAddr::Inet("127.0.0.1:0".into()), "0660")
        .await
        .unwrap();
    let MilterListener::Tcp(tcp) = &listener else {
        unreachable!()
    };
    let addr = tcp.local_addr().unwrap();
    let (_reload_tx, reload_rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(milter::run(listener, daemon, reload_rx, async {
        let _ = stop_rx.await;
    }));

    let mut conn = TestConnection::configure().open_tcp(addr).await.unwrap();
    handshake(&mut conn).await;
    let msg = Msg {
        headers: &[
            ("From", "Alice <alice@sender.example>"),
            ("To", "bob@rcpt.example"),
            ("Subject", "minutes"),
            ("Message-ID", "<batched-1@sender.example>"),
        ],
        ..Msg::default()
    };
    let (actions, _) = send(&mut conn, &msg).await;
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
    conn.close().await.unwrap();

    // Another opener of the file: it sees the message once the writer ran.
    let other = EmbeddedStore::open(&db, Duration::from_secs(1)).unwrap();
    let ids = ["batched-1@sender.example".to_string()];
    let mut found = Vec::new();
    for _ in 0..100 {
        found = threads::lookup(&other, &ids).unwrap();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "remembered in the file while running");

    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
}
