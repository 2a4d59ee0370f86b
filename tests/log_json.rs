//! `[log] format = "json"`: the daemon (the real binary) writes one JSON
//! object per line on stderr, and the line of each message carries the
//! queue id, the verdict, the score and the rules as top-level fields, for
//! log shippers. The text format keeps its one readable line per message.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{handshake, send, Msg};
use indymilter_test::TestConnection;

const MILTER: &str = env!("CARGO_BIN_EXE_malspam-milter");

/// Run the binary with `log_section`, send one impersonation (tagged:
/// display_name.embedded_address) and one clean message, stop it with
/// SIGTERM; its stderr.
async fn daemon_log(log_section: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("milter.toml");
    std::fs::write(
        &config,
        format!(
            "[milter]\nlisten = \"inet:127.0.0.1:{port}\"\n\n[store]\nbackend = \"memory\"\n\n{log_section}"
        ),
    )
    .unwrap();
    let mut child = Command::new(MILTER)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the milter did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut conn = TestConnection::configure()
        .read_timeout(Duration::from_secs(60))
        .write_timeout(Duration::from_secs(60))
        .open_tcp(("127.0.0.1", port))
        .await
        .unwrap();
    handshake(&mut conn).await;
    let tagged = Msg {
        queue_id: "4JSON1",
        headers: &[
            (
                "From",
                "\"taro.yamada@legal-holdings.co.jp\" <info@unrelated.example>",
            ),
            ("To", "bob@rcpt.example"),
            ("Subject", "invoice"),
        ],
        ..Msg::default()
    };
    send(&mut conn, &tagged).await;
    let clean = Msg {
        queue_id: "4JSON2",
        ..Msg::default()
    };
    send(&mut conn, &clean).await;
    conn.close().await.unwrap();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    stderr
}

#[tokio::test]
async fn json_log_lines_carry_queue_id_verdict_and_rules() {
    let log = daemon_log("[log]\nformat = \"json\"\n").await;
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "start-up, two messages, shutdown: {log}");
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["queue_id"] == id)
            .unwrap_or_else(|| panic!("no line with queue_id {id}: {log}"))
    };
    let tagged = by_id("4JSON1");
    assert_eq!(tagged["verdict"], "tag", "{tagged}");
    assert_eq!(tagged["level"], "INFO");
    assert!(tagged["score"].as_f64().unwrap() >= 5.0, "{tagged}");
    let rules = tagged["rules"].as_str().unwrap();
    assert!(
        rules
            .split(',')
            .any(|r| r == "display_name.embedded_address"),
        "{rules}"
    );
    assert!(
        tagged["message"]
            .as_str()
            .unwrap()
            .starts_with("4JSON1: verdict=tag"),
        "{tagged}"
    );
    let clean = by_id("4JSON2");
    assert_eq!(clean["verdict"], "accept");
    assert_eq!(clean["rules"], "");
}

#[tokio::test]
async fn the_text_log_has_one_readable_line_per_message() {
    let log = daemon_log("").await;
    let line = log
        .lines()
        .find(|l| l.contains("4JSON1:"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("INFO 4JSON1: verdict=tag score="), "{line}");
    assert!(line.contains("display_name.embedded_address"), "{line}");
    assert!(
        !line.contains("queue_id="),
        "the fields are not repeated after the message: {line}"
    );
    assert!(log.lines().all(|l| !l.starts_with('{')), "{log}");
}
