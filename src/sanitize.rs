//! One sanitiser for everything the milter writes from text a stranger
//! wrote: headers (X-Malspam-*, the Subject prefix), log lines, CLI output,
//! quarantine reasons and notify arguments.
//!
//! One set of dangerous characters ([`is_unsafe`]): C0 and C1 controls
//! (NUL, ESC, CR, LF, TAB, DEL…), the Unicode line and paragraph separators,
//! and the bidi controls that make a file name read backwards
//! (`invoice\u{202E}fdp.exe` shows as "invoiceexe.pdf"). Three ways out:
//!
//! - [`one_line`] / [`bounded_line`]: evidence and log text. Controls become
//!   a space, bidi controls are shown as `\u{202E}`, runs of spaces collapse.
//! - [`escape_controls`]: a reviewer's terminal. Every unsafe character shown
//!   as `\u{..}`, nothing else changed.
//! - [`encode_header`]: a header value. 7-bit (non-ASCII as RFC 2047
//!   encoded-words, UTF-8, B or Q, each at most 75 characters and never
//!   split inside a character), folded at spaces so lines stay short, and
//!   tokens too long for a line split into encoded-words (adjacent
//!   encoded-words decode without the space between them, so the token
//!   comes back whole). [`decode_header`] reads it back (mail-parser).

use std::fmt::Write as _;

/// Bidi controls: marks, embeddings, overrides and isolates.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters the milter never writes as they are.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// One line: controls and line separators become a space, bidi controls
/// are shown escaped (`\u{202E}`), runs of spaces become one, trimmed.
/// Idempotent.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if is_bidi_control(c) {
            push_pending_space(&mut out, &mut space);
            let _ = write!(out, "\\u{{{:X}}}", c as u32);
        } else if c == ' ' || is_unsafe(c) {
            space = true;
        } else {
            push_pending_space(&mut out, &mut space);
            out.push(c);
        }
    }
    out
}

fn push_pending_space(out: &mut String, space: &mut bool) {
    if *space && !out.is_empty() {
        out.push(' ');
    }
    *space = false;
}

/// [`one_line`], at most `max_chars` characters (characters, not bytes:
/// Japanese evidence is as long as English); a cut line ends in `…`.
/// Idempotent.
pub fn bounded_line(s: &str, max_chars: usize) -> String {
    let line = one_line(s);
    if line.chars().count() <= max_chars {
        return line;
    }
    let mut out: String = line.chars().take(max_chars.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// For a terminal: every unsafe character shown as `\u{..}` (so an escape
/// sequence or a carriage return cannot drive the reviewer's screen);
/// everything else as it is.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Like [`escape_controls`] for text of several lines: each line escaped,
/// the line breaks (`\n`) kept.
pub fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n")
}

/// JSON text made safe for a terminal without changing what it says:
/// every unsafe character left raw by the serializer (C1, DEL, bidi, line
/// separators; it escapes C0 itself) written as a `\uXXXX` escape. They
/// can only stand inside strings, where the escape means the same.
pub fn json_escape_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Evidence is at most this many characters (not bytes: Japanese evidence
/// is as long as English).
pub const EVIDENCE_CHARS: usize = 240;

/// Evidence for headers and logs: [`bounded_line`] at [`EVIDENCE_CHARS`].
pub fn evidence(s: &str) -> String {
    bounded_line(s, EVIDENCE_CHARS)
}

/// A log destination that writes each record as one safe line: every
/// unsafe character but the record's final line break shown as `\u{..}`.
/// `tracing` formats a whole event, then writes it at once.
pub struct LogWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for LogWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&text[..], ""),
        };
        let mut line = escape_controls(body);
        line.push_str(end);
        self.0.write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Longest line we write in a header (RFC 5322 says 78 should, 998 must).
pub const LINE_WIDTH: usize = 78;
/// What starts a continuation line of a folded header value.
pub const CONTINUATION: &str = "\t  ";
/// Longest encoded-word (RFC 2047 says at most 75).
const MAX_ENCODED_WORD: usize = 66;
/// ASCII words longer than this are written as encoded-words, which may be
/// split without changing the decoded text.
const MAX_PLAIN_WORD: usize = MAX_ENCODED_WORD;
const WORD_START: &str = "=?UTF-8?";

/// A header value for one line of text: [`one_line`], then 7-bit and
/// folded. `first_room` is what the first line has left after `Name: `;
/// continuation lines start with [`CONTINUATION`]. Every line is at most
/// [`LINE_WIDTH`] characters (all ASCII, so bytes too).
pub fn encode_header(text: &str, first_room: usize) -> String {
    let line = one_line(text);
    let mut pieces: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        if needs_encoding(word) {
            run.push(word);
        } else {
            flush_run(&mut run, &mut pieces);
            pieces.push(word.to_string());
        }
    }
    flush_run(&mut run, &mut pieces);
    fold(&pieces, first_room)
}

/// Non-ASCII, too long for a line, or something a decoder would take for an
/// encoded-word: encode it, so it comes back as it was.
fn needs_encoding(word: &str) -> bool {
    !word.is_ascii() || word.len() > MAX_PLAIN_WORD || word.contains("=?")
}

/// A run of words to encode, spaces included (the space between two
/// encoded-words is not part of the text).
fn flush_run(run: &mut Vec<&str>, pieces: &mut Vec<String>) {
    if run.is_empty() {
        return;
    }
    let text = run.join(" ");
    run.clear();
    pieces.extend(encoded_words(&text));
}

/// `text` as encoded-words of at most [`MAX_ENCODED_WORD`] characters,
/// split between characters: Q when that is shorter (mostly ASCII), else B.
pub fn encoded_words(text: &str) -> Vec<String> {
    let q_len: usize = text.bytes().map(q_width).sum();
    let b_len = text.len().div_ceil(3) * 4;
    let room = MAX_ENCODED_WORD - WORD_START.len() - "Q?".len() - "?=".len();
    let mut out = Vec::new();
    let mut chunk = String::new();
    let mut used = 0;
    for c in text.chars() {
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        let fits = if q_len <= b_len {
            used + bytes.iter().copied().map(q_width).sum::<usize>() <= room
        } else {
            (chunk.len() + bytes.len()).div_ceil(3) * 4 <= room
        };
        if !fits && !chunk.is_empty() {
            out.push(encode_word(&chunk, q_len <= b_len));
            chunk.clear();
            used = 0;
        }
        used += bytes.iter().copied().map(q_width).sum::<usize>();
        chunk.push(c);
    }
    if !chunk.is_empty() {
        out.push(encode_word(&chunk, q_len <= b_len));
    }
    out
}

/// Bytes written literally in Q encoding; everything else is `=XX`
/// (a space is `_`).
fn q_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!*+-/.,:;@%&#'$".contains(&b)
}

fn q_width(b: u8) -> usize {
    if q_literal(b) || b == b' ' {
        1
    } else {
        3
    }
}

fn encode_word(text: &str, q: bool) -> String {
    let mut out = String::from(WORD_START);
    if q {
        out.push_str("Q?");
        for b in text.bytes() {
            if q_literal(b) {
                out.push(b as char);
            } else if b == b' ' {
                out.push('_');
            } else {
                let _ = write!(out, "={b:02X}");
            }
        }
    } else {
        out.push_str("B?");
        out.push_str(&base64(text.as_bytes()));
    }
    out.push_str("?=");
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Join pieces with spaces, breaking the line before a piece that would
/// pass [`LINE_WIDTH`]. No piece is longer than a continuation line.
fn fold(pieces: &[String], first_room: usize) -> String {
    let mut out = String::new();
    let mut width = 0;
    let mut room = first_room.min(LINE_WIDTH);
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 && width + 1 + piece.len() > room {
            out.push('\n');
            out.push_str(CONTINUATION);
            width = CONTINUATION.len();
            room = LINE_WIDTH;
        } else if i > 0 {
            out.push(' ');
            width += 1;
        }
        out.push_str(piece);
        width += piece.len();
    }
    out
}

/// Read back a header value (unfolded to one line): RFC 2047 encoded-words
/// decoded, raw 8-bit text taken as UTF-8. The result is plain text, not yet
/// safe for a terminal ([`escape_controls`]).
pub fn decode_header(value: &str) -> String {
    let mut bytes = value.replace(['\r', '\n'], " ").into_bytes();
    bytes.push(b'\n');
    match mail_parser::parsers::MessageStream::new(&bytes).parse_unstructured() {
        mail_parser::HeaderValue::Text(text) => text.into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_controls_and_shows_bidi() {
        assert_eq!(one_line("a\r\nb\tc\0d\u{1b}[2Je"), "a b c d [2Je");
        assert_eq!(
            one_line("invoice\u{202E}fdp.exe"),
            "invoice\\u{202E}fdp.exe"
        );
        assert_eq!(one_line("  x\u{2028}y\u{85}z  "), "x y z");
        let once = one_line("a\u{2066}b \n c");
        assert_eq!(one_line(&once), once);
    }

    #[test]
    fn the_arabic_letter_mark_is_a_bidi_control_on_every_way_out() {
        // U+061C reorders text like U+200F does: one set, checked
        // everywhere, so no way out writes it raw.
        let text = "invoice\u{061C}fdp.exe";
        assert!(is_bidi_control('\u{061C}') && is_unsafe('\u{061C}'));
        assert_eq!(one_line(text), "invoice\\u{61C}fdp.exe");
        assert_eq!(evidence(text), "invoice\\u{61C}fdp.exe");
        assert_eq!(escape_controls(text), "invoice\\u{61c}fdp.exe");
        assert_eq!(escape_lines(text), "invoice\\u{61c}fdp.exe");
        assert_eq!(
            json_escape_controls(&serde_json::to_string(text).unwrap()),
            "\"invoice\\u061cfdp.exe\""
        );
        let header = encode_header(text, 60);
        assert!(header.is_ascii());
        assert_eq!(decode_header(&header), "invoice\\u{61C}fdp.exe");
        let mut log = LogWriter(Vec::new());
        std::io::Write::write_all(&mut log, format!("Q1: {text}\n").as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(log.0).unwrap(),
            "Q1: invoice\\u{61c}fdp.exe\n"
        );
    }

    #[test]
    fn bounded_line_counts_characters_and_is_idempotent() {
        let cut = bounded_line(&"請".repeat(500), 240);
        assert_eq!(cut.chars().count(), 240);
        assert!(cut.ends_with('…'));
        assert_eq!(bounded_line(&cut, 240), cut);
        assert_eq!(bounded_line("short", 240), "short");
    }

    #[test]
    fn log_records_stay_one_line() {
        use std::io::Write;
        let mut w = LogWriter(Vec::new());
        w.write_all(b"Q1: evidence a\r\nFAKE: b\x1b[2J \xe2\x80\xae\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "Q1: evidence a\\u{d}\\u{a}FAKE: b\\u{1b}[2J \\u{202e}\n"
        );
    }

    #[test]
    fn json_stays_json_and_terminal_safe() {
        let text = "a\u{9b}2J\u{202e}b\u{7f}\u{1b}";
        let json = serde_json::to_string(&serde_json::json!({ "subject": text })).unwrap();
        let safe = json_escape_controls(&json);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["subject"], text);
    }

    #[test]
    fn escape_controls_for_terminals() {
        assert_eq!(escape_controls("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape_controls("x\r\ny\u{9b}"), "x\\u{d}\\u{a}y\\u{9b}");
        assert_eq!(escape_controls("請求書 [x]"), "請求書 [x]");
    }

    fn check_header(value: &str) {
        for line in value.split('\n') {
            assert!(line.len() <= LINE_WIDTH, "line too long: {line:?}");
            assert!(line.is_ascii(), "not 7-bit: {line:?}");
            assert!(
                !line.chars().any(|c| c.is_control() && c != '\t'),
                "control character: {line:?}"
            );
        }
        for rest in value.split('\n').skip(1) {
            assert!(
                rest.starts_with(CONTINUATION),
                "not a continuation: {rest:?}"
            );
        }
        for word in value.split_whitespace().filter(|w| w.starts_with("=?")) {
            assert!(word.len() <= 75, "encoded-word too long: {word}");
        }
    }

    #[test]
    fn headers_are_7bit_short_and_decode_back() {
        let token = "A".repeat(2000);
        let cases = [
            "plain ascii evidence, nothing to encode".to_string(),
            "請求書の送付について ご確認ください invoice.zip".to_string(),
            format!("x {token} y"),
            "evil\r\nX-Injected: yes\0\u{1b}[31m and \u{202E}fdp.exe".to_string(),
            "looks =?UTF-8?B?QQ==?= encoded".to_string(),
            "mixé 日本 Ωmega ok".to_string(),
            "🙂".repeat(40),
            String::new(),
        ];
        for case in &cases {
            let value = encode_header(case, 40);
            check_header(&value);
            let unfolded = value.replace(&format!("\n{CONTINUATION}"), " ");
            assert_eq!(decode_header(&unfolded), one_line(case), "{value}");
            assert!(!value.contains("\nX-Injected"), "{value}");
        }
    }

    #[test]
    fn encoded_words_split_between_characters() {
        for text in [
            "日本語のテキスト".repeat(10),
            "é".repeat(100),
            "🙂".repeat(30),
        ] {
            let words = encoded_words(&text);
            assert!(words.len() > 1);
            let mut back = String::new();
            for w in &words {
                assert!(w.len() <= MAX_ENCODED_WORD, "{w}");
                // Each word decodes on its own to whole characters.
                let one = decode_header(w);
                assert!(!one.contains('\u{FFFD}'), "{w} -> {one}");
                back.push_str(&one);
            }
            assert_eq!(back, text);
        }
        // Mostly ASCII goes as Q, readable; Japanese as B, shorter.
        assert!(encoded_words("café au lait")[0].starts_with("=?UTF-8?Q?caf=C3=A9_au"));
        assert!(encoded_words("請求書")[0].starts_with("=?UTF-8?B?"));
    }
}
