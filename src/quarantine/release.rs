//! Releasing held mail so that it is delivered now, and so that the
//! recipient's filters know a reviewer cleared it.
//!
//! In place (`[quarantine] reinject` empty): `postsuper -H` + `postqueue -i`
//! (or `postsuper -r` for mail held nearly long enough to expire). The
//! message keeps its `X-Malspam-Verdict: quarantine`, so a Sieve rule on it
//! still files it as junk.
//!
//! Re-injected (`reinject = "127.0.0.1:10026"`, an smtpd without milters):
//! the held copy is read, our verdict headers (and the SpamAssassin-style
//! ones and the Subject prefix we added) are replaced by
//! `X-Malspam-Released: by REVIEWER at DATE; was quarantine, score N`, sent
//! there with the original envelope, and only then deleted from hold. If
//! the send fails, the held copy stays: nothing is lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::postfix::{Postfix, QuarantineError, QueueEntry};
use super::HeldMessage;
use crate::config::HeadersConfig;
use crate::headers;

/// A release failed. Said to the reviewer (CLI stderr, the web page's
/// audit log) as it is.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Postfix could not read, release, requeue or delete the message.
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    /// The re-injection smtpd did not take the message; it is still held.
    #[error("{id}: re-injection to {addr} failed, the message stays held: {source}")]
    Reinject {
        id: String,
        /// `[quarantine] reinject` as configured.
        addr: String,
        #[source]
        source: SmtpError,
    },
    /// The rewritten copy was sent but the held one could not be deleted:
    /// the recipient would get it twice if it were released again.
    #[error("{source}; the re-injected copy was sent: delete the held one by hand")]
    DeleteAfterReinject {
        #[source]
        source: QuarantineError,
    },
}

/// One SMTP transaction of [`smtp_send`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("no recipients")]
    NoRecipients,
    /// An address that would break the SMTP command line (already escaped
    /// for a terminal).
    #[error("unusable address {0:?}")]
    UnusableAddress(String),
    #[error("connect {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection could not be split into a reader and a writer.
    #[error(transparent)]
    Socket(std::io::Error),
    #[error("write: {0}")]
    Write(#[source] std::io::Error),
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    /// The server hung up; what it had said so far.
    #[error("connection closed after {0:?}")]
    Closed(String),
    #[error("reply too long")]
    ReplyTooLong,
    /// The server answered with another class of reply than the step
    /// needs: its reply, trimmed.
    #[error("{0}")]
    Refused(String),
}

/// The header a release adds.
pub const RELEASED: &str = "X-Malspam-Released";

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// `postsuper -H` + `postqueue -i`.
    InPlace,
    /// `postsuper -r`: held long enough to risk expiry.
    Requeued,
    /// A rewritten copy sent to the re-injection smtpd; the held copy deleted.
    Reinjected,
}

impl Released {
    pub fn describe(self) -> &'static str {
        match self {
            Released::InPlace => "released from hold; Postfix delivers it now",
            Released::Requeued => {
                "requeued (held long enough to risk expiry); Postfix delivers it now"
            }
            Released::Reinjected => {
                "re-injected with X-Malspam-Released and deleted from hold; Postfix delivers it now"
            }
        }
    }
}

/// Release `entry` (already looked up in the hold queue) for `reviewer`.
pub fn release(
    postfix: &Postfix,
    config: &crate::Config,
    entry: &QueueEntry,
    held: &HeldMessage,
    reviewer: &str,
    now: u64,
) -> Result<Released, ReleaseError> {
    let q = &config.quarantine;
    if q.reinject.trim().is_empty() {
        return Ok(
            if postfix.release_now(entry, now, q.requeue_after_fraction)? {
                Released::Requeued
            } else {
                Released::InPlace
            },
        );
    }
    let message = postfix.message(&entry.queue_id)?;
    let note = release_note(reviewer, now, held);
    let rewritten = rewrite_headers(&message, &config.headers, &note);
    let sender = if entry.sender == "MAILER-DAEMON" {
        ""
    } else {
        entry.sender.as_str()
    };
    let recipients: Vec<&str> = entry
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    smtp_send(
        q.reinject.trim(),
        Duration::from_secs(q.reinject_timeout_secs.max(1)),
        sender,
        &recipients,
        &rewritten,
    )
    .map_err(|source| ReleaseError::Reinject {
        id: entry.queue_id.clone(),
        addr: q.reinject.clone(),
        source,
    })?;
    postfix
        .delete(&entry.queue_id)
        .map_err(|source| ReleaseError::DeleteAfterReinject { source })?;
    Ok(Released::Reinjected)
}

/// `by REVIEWER at DATE; was VERDICT, score N` — 7-bit, one line.
pub fn release_note(reviewer: &str, now: u64, held: &HeldMessage) -> String {
    let who: String = reviewer
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != ';' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let was = match &held.verdict {
        Some(v) => format!(
            "; was {}, score {}",
            seven_bit(&v.verdict, 20),
            seven_bit(&v.score, 20)
        ),
        None => String::new(),
    };
    format!("by {who} at {}{was}", crate::calendar::rfc5322(now))
}

fn seven_bit(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

/// The message with our verdict headers removed (and the SpamAssassin-style
/// ones when we write them), the Subject prefix we added taken off, and
/// `X-Malspam-Released: NOTE` first. Body untouched; CRLF line ends.
pub fn rewrite_headers(message: &[u8], config: &HeadersConfig, note: &str) -> Vec<u8> {
    let (head, body) = split_message(message);
    let prefix = config.subject_prefix.trim();
    let mut out = Vec::with_capacity(message.len() + 128);
    out.extend_from_slice(format!("{RELEASED}: {note}\r\n").as_bytes());
    let mut skipping = false;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if !skipping {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            continue;
        }
        let colon = line.iter().position(|&b| b == b':');
        let name = colon
            .map(|i| String::from_utf8_lossy(&line[..i]).trim().to_string())
            .unwrap_or_default();
        skipping = !name.is_empty() && headers::is_own_header(&name, config);
        if skipping {
            continue;
        }
        if name.eq_ignore_ascii_case("Subject") && !prefix.is_empty() {
            let value = &line[colon.map_or(line.len(), |i| i + 1)..];
            let trimmed = value.trim_ascii_start();
            if let Some(rest) = trimmed.strip_prefix(prefix.as_bytes()) {
                out.extend_from_slice(b"Subject: ");
                out.extend_from_slice(rest.trim_ascii_start());
                out.extend_from_slice(b"\r\n");
                continue;
            }
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    for line in body.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// (header block, body) at the first empty line.
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < message.len() {
        let end = memchr::memchr(b'\n', &message[start..]).map_or(message.len(), |i| start + i);
        let line = &message[start..end];
        if line.is_empty() || line == b"\r" {
            return (&message[..start], &message[(end + 1).min(message.len())..]);
        }
        start = end + 1;
    }
    (message, &[])
}

/// One SMTP transaction (RFC 5321) to `addr`: the envelope as given, the
/// message (CRLF lines) dot-stuffed. `BODY=8BITMIME` / `SMTPUTF8` when the
/// server offers them and the mail needs them.
pub fn smtp_send(
    addr: &str,
    timeout: Duration,
    sender: &str,
    recipients: &[&str],
    message: &[u8],
) -> Result<(), SmtpError> {
    if recipients.is_empty() {
        return Err(SmtpError::NoRecipients);
    }
    for a in std::iter::once(&sender).chain(recipients) {
        if a.bytes()
            .any(|b| b.is_ascii_control() || b == b'<' || b == b'>')
        {
            return Err(SmtpError::UnusableAddress(super::clean(a)));
        }
    }
    let stream = TcpStream::connect(addr).map_err(|source| SmtpError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    let mut reader = BufReader::new(stream.try_clone().map_err(SmtpError::Socket)?);
    let mut writer = stream;
    let mut step = |command: Option<&[u8]>, want: u8| -> Result<String, SmtpError> {
        if let Some(c) = command {
            writer
                .write_all(c)
                .and_then(|_| writer.write_all(b"\r\n"))
                .map_err(SmtpError::Write)?;
        }
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = reader
                .by_ref()
                .take(4096)
                .read_line(&mut line)
                .map_err(SmtpError::Read)?;
            if n == 0 {
                return Err(SmtpError::Closed(text));
            }
            text.push_str(&line);
            if text.len() > 64 * 1024 {
                return Err(SmtpError::ReplyTooLong);
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        if text.as_bytes().first() == Some(&want) {
            Ok(text)
        } else {
            Err(SmtpError::Refused(text.trim().to_string()))
        }
    };
    step(None, b'2')?;
    let ehlo = step(Some(b"EHLO malspam-milter.release"), b'2')?;
    let offers = |ext: &str| {
        ehlo.lines().any(|l| {
            l.get(4..)
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(ext))
        })
    };
    let mut mail = format!("MAIL FROM:<{sender}>");
    if !message.is_ascii() && offers("8BITMIME") {
        mail.push_str(" BODY=8BITMIME");
    }
    if std::iter::once(&sender)
        .chain(recipients)
        .any(|a| !a.is_ascii())
        && offers("SMTPUTF8")
    {
        mail.push_str(" SMTPUTF8");
    }
    step(Some(mail.as_bytes()), b'2')?;
    for r in recipients {
        step(Some(format!("RCPT TO:<{r}>").as_bytes()), b'2')?;
    }
    step(Some(b"DATA"), b'3')?;
    let mut data = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.push(b'.');
    step(Some(&data), b'2')?;
    let _ = step(Some(b"QUIT"), b'2');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_headers_replaced_by_the_release_note() {
        let config = HeadersConfig {
            spam_compat: true,
            subject_prefix: "[SUSPICIOUS]".into(),
            ..HeadersConfig::default()
        };
        let message = b"Received: by mx\n\tid 1\nX-Malspam-Verdict: quarantine\nX-Malspam-Score: 37\n\
X-Malspam-Findings: a.b (+6): x\n\tc.d (+1): y\n\t  more\nX-Spam-Flag: YES\nX-Spam-Status: Yes,\n score=37\n\
Subject: [SUSPICIOUS] RE: =?utf-8?b?6KuL5rGC5pu4?=\nFrom: a@b.example\n\n.line\nbody\n";
        let out = rewrite_headers(message, &config, "by alice at X");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "X-Malspam-Released: by alice at X\r\nReceived: by mx\r\n\tid 1\r\n\
Subject: RE: =?utf-8?b?6KuL5rGC5pu4?=\r\nFrom: a@b.example\r\n\r\n.line\r\nbody\r\n"
        );
        // Without spam_compat, X-Spam-* are someone else's and stay; no
        // prefix configured, the Subject stays.
        let out = rewrite_headers(message, &HeadersConfig::default(), "n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("X-Spam-Flag: YES\r\n"));
        assert!(text.contains("Subject: [SUSPICIOUS] RE:"));
        assert!(!text.contains("X-Malspam-Verdict"));
        assert!(
            !text.contains("  more"),
            "continuations of removed headers go too"
        );
    }

    #[test]
    fn note_is_seven_bit_one_line() {
        let held = HeldMessage {
            queue_id: "A1".into(),
            arrival_time: 0,
            message_size: 0,
            sender: String::new(),
            recipients: vec![],
            subject: String::new(),
            from: String::new(),
            verdict: Some(super::super::Verdict {
                verdict: "quarantine".into(),
                score: "37".into(),
                findings: vec![],
            }),
            held_by_malspam_milter: true,
        };
        let note = release_note("田中\r\nX-Evil: 1", 0, &held);
        assert_eq!(
            note,
            "by ____X-Evil: 1 at Thu, 01 Jan 1970 00:00:00 +0000; was quarantine, score 37"
        );
    }
}
