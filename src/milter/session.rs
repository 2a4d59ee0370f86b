//! What one MTA connection has told us: connection facts (client, HELO) and
//! the message in progress (envelope, headers and body as received). Knows
//! nothing of the milter protocol's wire format; `callbacks.rs` feeds it.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::HeadersConfig;
use crate::envelope::Envelope;
use crate::headers::is_own_header_name;

use super::InFlight;

/// Per-connection state, kept for the life of one MTA connection.
#[derive(Default)]
pub struct Session {
    client_addr: Option<IpAddr>,
    client_name: Option<String>,
    helo: Option<String>,
    /// The MTA accepted `SKIP` at negotiation: we may stop the body early.
    pub skip_allowed: bool,
    /// Stages the MTA agreed not to wait for our reply at (negotiated).
    pub no_reply: indymilter::ProtoOpts,
    message: Option<Message>,
}

impl Session {
    /// `connect`: the client's address (if it came over IP) and host name.
    pub fn connect(&mut self, hostname: &str, addr: Option<IpAddr>) {
        self.client_addr = addr;
        // Postfix sends "[192.0.2.1]" or "unknown" when the name did not resolve.
        self.client_name =
            (!hostname.is_empty() && hostname != "unknown" && !hostname.starts_with('['))
                .then(|| hostname.to_string());
    }

    pub fn helo(&mut self, name: &str) {
        self.helo = Some(name.to_string());
    }

    /// `MAIL FROM`: a new message begins (any unfinished one is dropped).
    pub fn begin_message(
        &mut self,
        mail_from: &str,
        auth_user: Option<String>,
        max_size: u64,
        headers: &HeadersConfig,
        in_flight: InFlight,
    ) {
        let envelope = Envelope {
            client_addr: self.client_addr,
            client_name: self.client_name.clone(),
            helo: self.helo.clone(),
            mail_from: Some(strip_angles(mail_from).to_string()),
            rcpt_to: Vec::new(),
            auth_user: auth_user.filter(|u| !u.is_empty()),
            queue_id: None,
        };
        self.message = Some(Message {
            envelope,
            raw: Vec::new(),
            size: 0,
            max_size,
            too_large: false,
            own_headers: Vec::new(),
            own_counts: HashMap::new(),
            spam_compat: headers.spam_compat,
            subject: None,
            _in_flight: in_flight,
        });
    }

    /// The message in progress, if a `MAIL FROM` started one.
    pub fn message(&mut self) -> Option<&mut Message> {
        self.message.as_mut()
    }

    /// End of message or abort: hand over (or drop) the message.
    pub fn take_message(&mut self) -> Option<Message> {
        self.message.take()
    }
}

/// The most a client's announced size reserves for its message ahead of
/// the body ([`Message::expect_size`]): anyone can claim a large SIZE.
pub const SIZE_HINT_CAP: u64 = 4 << 20;

/// One message as received, buffered up to `milter.max_message_size`.
pub struct Message {
    pub envelope: Envelope,
    /// Header lines (`Name: value` CRLF, in order, duplicates kept), the empty
    /// line, then the body: a full RFC 5322 message. Emptied when too large.
    raw: Vec<u8>,
    /// Bytes seen so far, counted even after buffering stopped.
    size: u64,
    max_size: u64,
    too_large: bool,
    /// Incoming `X-Malspam-*` headers as (name as received, 1-based index
    /// among headers of that name), for deletion at end of message.
    own_headers: Vec<(String, i32)>,
    own_counts: HashMap<String, i32>,
    /// Which incoming headers count as ours (`[headers] spam_compat` adds
    /// X-Spam-Flag / X-Spam-Status).
    spam_compat: bool,
    /// The first Subject as received, for `[headers] subject_prefix`.
    subject: Option<String>,
    /// Counts this message as in flight until it is dropped (end, abort,
    /// connection lost), so shutdown can wait for it.
    _in_flight: InFlight,
}

impl Message {
    pub fn add_recipient(&mut self, rcpt: &str) {
        self.envelope.rcpt_to.push(strip_angles(rcpt).to_string());
    }

    pub fn set_queue_id(&mut self, id: &str) {
        if !id.is_empty() {
            self.envelope.queue_id = Some(id.to_string());
        }
    }

    /// One header field. Our own headers are remembered for deletion and
    /// left out of what is scanned: the scanned message is the one delivered.
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        let name_text = String::from_utf8_lossy(name);
        if is_own_header_name(&name_text, self.spam_compat) {
            let count = self
                .own_counts
                .entry(name_text.to_ascii_lowercase())
                .or_insert(0);
            *count += 1;
            self.own_headers.push((name_text.into_owned(), *count));
            return;
        }
        if self.subject.is_none() && name_text.eq_ignore_ascii_case("Subject") {
            self.subject = Some(String::from_utf8_lossy(value).into_owned());
        }
        // Without SMFIP_HDR_LEADSPC the MTA strips the space after the colon,
        // and folded values arrive with bare LF: restore both.
        let mut line = Vec::with_capacity(name.len() + value.len() + 4);
        line.extend_from_slice(name);
        line.extend_from_slice(b": ");
        push_crlf_lines(&mut line, value);
        line.extend_from_slice(b"\r\n");
        self.push(&line);
    }

    /// End of headers: the empty line between header and body.
    pub fn end_of_headers(&mut self) {
        self.push(b"\r\n");
    }

    /// A body chunk (the MTA sends CRLF line endings). Returns false once the
    /// message has grown past the limit and buffering has stopped.
    pub fn body(&mut self, chunk: &[u8]) -> bool {
        self.push(chunk);
        !self.too_large
    }

    /// Make room for a message the client announced (ESMTP `SIZE=`, RFC
    /// 1870) as `declared` bytes, so that a long body is not copied each
    /// time its buffer grows. A claim is only a hint: at most
    /// [`SIZE_HINT_CAP`] and never beyond the buffering limit.
    pub fn expect_size(&mut self, declared: u64) {
        let room = declared
            .saturating_add(declared / 16 + 1024)
            .min(self.max_size)
            .min(SIZE_HINT_CAP) as usize;
        self.raw.reserve(room.saturating_sub(self.raw.len()));
    }

    fn push(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.too_large {
            return;
        }
        if self.size > self.max_size {
            // Beyond the limit: stop buffering and free what we held. The
            // message still passes, tagged "not scanned: too large".
            self.too_large = true;
            self.raw = Vec::new();
            return;
        }
        self.raw.extend_from_slice(bytes);
    }

    /// The first Subject header's value as received, if there was one.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Bytes seen, including any not buffered.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn too_large(&self) -> bool {
        self.too_large
    }

    /// The buffered message (empty when too large).
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// Incoming `X-Malspam-*` headers to delete, highest index first per
    /// name, so that each deletion leaves the indexes still to come valid.
    pub fn own_headers_to_delete(&self) -> Vec<(String, i32)> {
        let mut out = self.own_headers.clone();
        out.sort_by(|a, b| {
            a.0.to_ascii_lowercase()
                .cmp(&b.0.to_ascii_lowercase())
                .then(b.1.cmp(&a.1))
        });
        out
    }
}

/// `<user@example.com>` → `user@example.com`; `<>` → `` (the null sender).
fn strip_angles(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
}

/// Append `value`, turning bare LF (folded lines from the MTA) into CRLF.
fn push_crlf_lines(out: &mut Vec<u8>, value: &[u8]) {
    let mut prev = 0u8;
    for &b in value {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(max: u64) -> Message {
        let mut s = Session::default();
        s.connect("mx.example.net", Some("192.0.2.7".parse().unwrap()));
        s.helo("mx.example.net");
        s.begin_message(
            "<a@example.net>",
            Some("alice".into()),
            max,
            &HeadersConfig::default(),
            InFlight::detached(),
        );
        s.take_message().unwrap()
    }

    /// An announced size reserves the buffer, within the buffering limit
    /// and the cap; the message is the same either way.
    #[test]
    fn an_announced_size_reserves_the_buffer_within_bounds() {
        let mut m = message(1 << 30);
        m.expect_size(200_000);
        assert!(m.raw.capacity() >= 200_000);
        m.header(b"Subject", b"x");
        m.end_of_headers();
        m.body(b"hello\r\n");
        let mut plain = message(1 << 30);
        plain.header(b"Subject", b"x");
        plain.end_of_headers();
        plain.body(b"hello\r\n");
        assert_eq!(m.into_raw(), plain.into_raw());
        let mut huge = message(1 << 30);
        huge.expect_size(u64::MAX);
        assert!(huge.raw.capacity() <= SIZE_HINT_CAP as usize);
        let mut small_limit = message(1000);
        small_limit.expect_size(1 << 20);
        assert!(small_limit.raw.capacity() <= 1000);
    }

    #[test]
    fn rebuilds_the_message_with_order_duplicates_and_folding() {
        let mut m = message(1 << 20);
        m.add_recipient("<b@example.org>");
        m.header(b"Received", b"from a\n\tby b");
        m.header(b"Subject", b"hello");
        m.header(b"Received", b"from c");
        m.end_of_headers();
        assert!(m.body(b"line 1\r\nline 2\r\n"));
        assert_eq!(m.envelope.mail_from.as_deref(), Some("a@example.net"));
        assert_eq!(m.envelope.rcpt_to, ["b@example.org"]);
        assert_eq!(m.envelope.auth_user.as_deref(), Some("alice"));
        assert_eq!(m.envelope.helo.as_deref(), Some("mx.example.net"));
        assert_eq!(
            String::from_utf8(m.into_raw()).unwrap(),
            "Received: from a\r\n\tby b\r\nSubject: hello\r\nReceived: from c\r\n\r\nline 1\r\nline 2\r\n"
        );
    }

    #[test]
    fn own_headers_are_left_out_and_listed_for_deletion_last_first() {
        let mut m = message(1 << 20);
        m.header(b"X-Malspam-Verdict", b"accept");
        m.header(b"Subject", b"x");
        m.header(b"x-malspam-verdict", b"accept");
        m.header(b"X-Malspam-Score", b"0");
        m.end_of_headers();
        assert_eq!(
            m.own_headers_to_delete(),
            [
                ("X-Malspam-Score".to_string(), 1),
                ("x-malspam-verdict".to_string(), 2),
                ("X-Malspam-Verdict".to_string(), 1),
            ]
        );
        assert_eq!(m.into_raw(), b"Subject: x\r\n\r\n");
    }

    #[test]
    fn stops_buffering_past_the_limit_but_keeps_counting() {
        let mut m = message(40);
        m.header(b"Subject", b"x");
        m.end_of_headers();
        assert!(m.body(&[b'a'; 20]));
        assert!(!m.body(&[b'a'; 20]));
        assert!(!m.body(&[b'a'; 20]));
        assert!(m.too_large());
        assert_eq!(m.size(), 12 + 2 + 60);
        assert!(m.into_raw().is_empty());
    }

    #[test]
    fn unresolved_client_names_are_not_names() {
        let mut s = Session::default();
        s.connect("[192.0.2.7]", None);
        assert_eq!(s.client_name, None);
        s.connect("unknown", None);
        assert_eq!(s.client_name, None);
        s.begin_message(
            "<>",
            None,
            10,
            &HeadersConfig::default(),
            InFlight::detached(),
        );
        assert_eq!(s.message().unwrap().envelope.mail_from.as_deref(), Some(""));
    }
}
