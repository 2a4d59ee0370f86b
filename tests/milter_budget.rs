//! Issue "fail closed, stay up", item 4, on the real daemon (a child
//! process): a message under 1 MB carrying 200 Office documents whose VBA
//! part is a bzip2 bomb (64 MiB of zeros in ~100 bytes), four at once
//! against one scan slot. Each must end within the scan budget plus the
//! milter's grace, give its slot back, and keep the daemon's memory
//! bounded. (Item 5, quoted-printable parts kept off the protocol thread:
//! tests/fail_closed_milter.rs.)

use std::io::Write;
use std::time::{Duration, Instant};

use indymilter_test::{EomAction, Status};

/// `[limits] scan_timeout_secs` of the daemon under test, and the grace the
/// milter adds before it answers for a scan that has not finished.
const SCAN_TIMEOUT_SECS: u64 = 5;
const GRACE_SECS: u64 = 5;

#[path = "common/daemon.rs"]
mod daemon;

use daemon::ChildDaemon;

/// The daemon with one scan slot, so a slot that is not given back shows
/// at once.
fn start() -> ChildDaemon {
    ChildDaemon::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_malspam-milter")),
        &format!(
            "max_concurrent_scans = 1\n[limits]\nscan_timeout_secs = {SCAN_TIMEOUT_SECS}\n\
             [store]\nbackend = \"memory\""
        ),
    )
}

/// Peak resident memory (VmHWM), in kB.
fn peak_rss_kb(daemon: &ChildDaemon) -> u64 {
    daemon.rss_kb().1
}

/// One message over the milter protocol: its top-level headers and body.
/// The verdict header, the findings, and how long end-of-message took.
async fn send(
    port: u16,
    queue_id: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (String, String, Duration) {
    let mut conn = daemon::open_message(port, Duration::from_secs(60), queue_id).await;
    for (name, value) in headers {
        conn.header(*name, *value).await.unwrap();
    }
    conn.eoh().await.unwrap();
    for chunk in body.chunks(60_000) {
        conn.body(chunk.to_vec()).await.unwrap();
    }
    let start = Instant::now();
    let (actions, status) = conn.eom().await.expect("an end-of-message reply");
    let took = start.elapsed();
    let _ = conn.close().await;
    assert_eq!(status, Status::Continue, "{queue_id}");
    let header = |want: &[u8]| {
        actions
            .actions
            .iter()
            .filter_map(|a| match a {
                EomAction::AddHeader { name, value } if name.to_bytes() == want => {
                    Some(value.to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (
        header(b"X-Malspam-Verdict"),
        header(b"X-Malspam-Findings"),
        took,
    )
}

/// A short plain message: the verdict and how long end-of-message took.
async fn normal(port: u16, queue_id: &str) -> (String, Duration) {
    let (verdict, _, took) = send(
        port,
        queue_id,
        &[("From", "a@sender.example"), ("Subject", "lunch")],
        b"Lunch at noon?\r\n",
    )
    .await;
    (verdict, took)
}

/// A .docm whose VBA part declares 64 MiB of zeros, bzip2'd to ~100 bytes.
fn bzip2_bomb_docm() -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(
            "[Content_Types].xml",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(b"<?xml version=\"1.0\"?><Types/>").unwrap();
        let bz = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Bzip2);
        w.start_file("word/vbaProject.bin", bz).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            w.write_all(&zeros).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn base64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
        .collect()
}

/// A multipart body of `parts` copies of `part` (already encoded, with its
/// part headers).
fn multipart(parts: usize, part: impl Fn(usize) -> String) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..parts {
        body.push_str("--b1\r\n");
        body.push_str(&part(i));
    }
    body.push_str("--b1--\r\n");
    body.into_bytes()
}

const MULTIPART: &[(&str, &str)] = &[
    ("From", "a@sender.example"),
    ("Subject", "documents"),
    ("MIME-Version", "1.0"),
    ("Content-Type", "multipart/mixed; boundary=\"b1\""),
];

fn assert_within_budget(what: &str, took: Duration) {
    assert!(
        took <= Duration::from_secs(SCAN_TIMEOUT_SECS + GRACE_SECS),
        "{what} took {took:?}, over the budget plus grace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_bzip2_bombs_end_in_budget_free_the_slot_and_keep_memory_bounded() {
    let daemon = start();
    let docm = base64_lines(&bzip2_bomb_docm());
    let body = multipart(200, |i| {
        format!(
            "Content-Type: application/octet-stream; name=\"d{i}.docm\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{docm}"
        )
    });
    assert!(body.len() < 1 << 20, "{} bytes", body.len());
    let before_kb = peak_rss_kb(&daemon);

    // Four at once against the one scan slot.
    let port = daemon.port;
    let sends: Vec<_> = (0..4)
        .map(|n| {
            let body = body.clone();
            tokio::spawn(async move { send(port, &format!("4BOMB{n}"), MULTIPART, &body).await })
        })
        .collect();
    for task in sends {
        let (verdict, findings, took) = task.await.unwrap();
        assert!(
            verdict == "tag" || verdict == "quarantine",
            "verdict {verdict:?}: {findings}"
        );
        assert!(findings.contains("scan."), "{findings}");
        assert_within_budget("a bomb message", took);
    }
    // The slot is back: the next scan starts at once.
    let (verdict, took) = normal(port, "4AFTER").await;
    assert_eq!(verdict, "accept");
    assert!(
        took < Duration::from_secs(1),
        "the next message took {took:?}"
    );

    let peak_kb = peak_rss_kb(&daemon);
    eprintln!("daemon peak RSS: {before_kb} kB at start, {peak_kb} kB after four bomb messages");
    assert!(
        peak_kb < 512 * 1024,
        "peak RSS {peak_kb} kB: the bombs were inflated?\n{}",
        daemon.log()
    );
}
