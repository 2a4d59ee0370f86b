//! Protocol abuse: whatever a peer sends (garbage, a packet cut short, an
//! absurd length, a message abandoned halfway, a thousand connections opened
//! and dropped), the daemon drops that peer and keeps serving the others.
//! Each test ends with a normal session that gets its headers.

mod common;

use std::time::Duration;

use common::*;
use indymilter_test::{MacroStage, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Guard against a hang (not a timing assertion: generous on purpose).
const HANG: Duration = Duration::from_secs(60);

/// A normal session still works: the message is scanned and tagged headers
/// come back.
async fn still_serves(milter: &TestMilter) {
    let (actions, status) = milter.send_one(&Msg::default()).await;
    assert_eq!(status, Status::Continue);
    assert_eq!(
        added(&actions, "X-Malspam-Verdict").as_deref(),
        Some("accept")
    );
}

/// Write `bytes`, then read until the daemon closes the connection. The
/// daemon must hang up on a peer that breaks the protocol.
async fn send_and_expect_hangup(milter: &TestMilter, bytes: &[u8]) {
    let mut stream = TcpStream::connect(milter.addr).await.unwrap();
    // The daemon may hang up before all is written; that is fine.
    let _ = stream.write_all(bytes).await;
    let mut sink = Vec::new();
    let read = tokio::time::timeout(HANG, stream.read_to_end(&mut sink))
        .await
        .expect("the daemon hangs up on garbage");
    // Either a clean EOF or a reset: the connection is over.
    let _ = read;
}

#[tokio::test]
async fn garbage_bytes_are_dropped() {
    let milter = TestMilter::start("").await;
    // Not the milter protocol at all.
    send_and_expect_hangup(&milter, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Pseudo-random bytes (fixed seed, xorshift).
    let mut x: u32 = 0x9E37_79B9;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    send_and_expect_hangup(&milter, &noise).await;
    // A length prefix claiming 4 GiB: refused, not allocated.
    send_and_expect_hangup(&milter, &[0xFF, 0xFF, 0xFF, 0xFF, b'O', 0, 0, 0, 6]).await;
    // A well-formed packet of an unknown command.
    send_and_expect_hangup(&milter, &[0, 0, 0, 1, b'~']).await;
    still_serves(&milter).await;
    milter.stop().await;
}

#[tokio::test]
async fn truncated_packets_do_not_block_others() {
    let milter = TestMilter::start("").await;
    // Option negotiation announced as 100 bytes, only 9 sent, then silence:
    // this peer waits (until the connection timeout), nobody else does.
    let mut stalled = TcpStream::connect(milter.addr).await.unwrap();
    stalled
        .write_all(&[0, 0, 0, 100, b'O', 0, 0, 0, 6, 0, 0, 1])
        .await
        .unwrap();
    still_serves(&milter).await;
    // Cut short and closed: the daemon drops it.
    let mut cut = TcpStream::connect(milter.addr).await.unwrap();
    cut.write_all(&[0, 0, 0, 13, b'O', 0, 0]).await.unwrap();
    drop(cut);
    drop(stalled);
    still_serves(&milter).await;
    milter.stop().await;
}

#[tokio::test]
async fn a_silent_peer_is_closed_after_the_connection_timeout() {
    let milter = TestMilter::start("[milter]\nconnection_timeout_secs = 1\n").await;
    // Half a packet, then silence: without the timeout this peer would
    // hold its slot for libmilter's two hours (the read below would hang).
    send_and_expect_hangup(&milter, &[0, 0, 0, 100, b'O', 0, 0, 0, 6]).await;
    still_serves(&milter).await;
    milter.stop().await;
}

#[tokio::test]
async fn an_mta_that_disconnects_mid_message_leaves_nothing_behind() {
    let milter = TestMilter::start("").await;
    for cut_after in 0..3 {
        let mut conn = milter.open().await;
        handshake(&mut conn).await;
        listens(conn.mail(["<a@sender.example>"]).await.unwrap());
        listens(conn.rcpt(["<b@rcpt.example>"]).await.unwrap());
        conn.macros(MacroStage::Eoh, [("i", "CUT1")]).await.unwrap();
        listens(conn.header("Subject", "half a message").await.unwrap());
        if cut_after >= 1 {
            listens(conn.eoh().await.unwrap());
        }
        if cut_after >= 2 {
            let body = vec![b'x'; 256 * 1024];
            let status = conn.body(body).await.unwrap();
            assert!(matches!(status, Status::Continue | Status::Skip));
        }
        // The MTA goes away without end-of-message or quit.
        drop(conn);
    }
    still_serves(&milter).await;
    // The daemon still counts no message in flight: shutdown does not wait
    // for the abandoned ones.
    tokio::time::timeout(HANG, milter.stop())
        .await
        .expect("shutdown is not held up by abandoned messages");
}

#[tokio::test]
async fn a_thousand_connections_opened_and_dropped() {
    let milter = TestMilter::start("").await;
    for i in 0..1000u32 {
        let mut stream = TcpStream::connect(milter.addr).await.unwrap();
        match i % 3 {
            // Dropped at once.
            0 => {}
            // Half an option negotiation.
            1 => {
                let _ = stream.write_all(&[0, 0, 0, 13, b'O', 0, 0, 0]).await;
            }
            // A full option negotiation, then gone.
            _ => {
                let mut packet = vec![0, 0, 0, 13, b'O'];
                packet.extend_from_slice(&6u32.to_be_bytes());
                packet.extend_from_slice(&0x1FFu32.to_be_bytes());
                packet.extend_from_slice(&0u32.to_be_bytes());
                let _ = stream.write_all(&packet).await;
            }
        }
        drop(stream);
    }
    still_serves(&milter).await;
    milter.stop().await;
}
