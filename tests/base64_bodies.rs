//! The patched base64 body decoder of mail-parser (vendor/mail-parser,
//! PATCHES.md) against the `base64` crate: every attachment decodes to the
//! same bytes whatever its line length, line ends, trailing blanks and
//! padding, a last group left without its padding is kept, and a broken
//! body still falls back to its raw text.

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders};

/// xorshift: deterministic noise.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A message whose second part is `body` as a base64 attachment.
fn message(body: &[u8], eol: &str) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.com{eol}To: b@example.com{eol}Subject: x{eol}MIME-Version: 1.0{eol}\
Content-Type: multipart/mixed; boundary=\"b1\"{eol}{eol}--b1{eol}\
Content-Type: text/plain{eol}{eol}hello{eol}--b1{eol}\
Content-Type: application/octet-stream; name=\"f.bin\"{eol}\
Content-Transfer-Encoding: base64{eol}{eol}"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m.extend_from_slice(format!("{eol}--b1--{eol}").as_bytes());
    m
}

/// `data` in base64, cut into lines of `width`, with `eol` and, on some
/// lines, trailing blanks.
fn encode_lines(data: &[u8], width: usize, eol: &str, blanks: bool) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::new();
    for (n, line) in text.as_bytes().chunks(width).enumerate() {
        if n > 0 {
            out.extend_from_slice(eol.as_bytes());
        }
        out.extend_from_slice(line);
        if blanks && n % 3 == 1 {
            out.extend_from_slice(b" \t");
        }
    }
    out
}

fn attachment(raw: &[u8]) -> (Vec<u8>, bool) {
    let message = MessageParser::default().parse(raw).expect("parses");
    let part = message
        .parts
        .iter()
        .find(|p| p.attachment_name() == Some("f.bin"))
        .expect("the attachment");
    (part.contents().to_vec(), part.is_encoding_problem)
}

#[test]
fn every_shape_of_body_decodes_like_the_base64_crate() {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for case in 0..600 {
        let len = match case % 4 {
            0 => noise.below(8),
            1 => noise.below(200),
            2 => noise.below(5_000),
            _ => 20_000 + noise.below(50_000),
        };
        let data = noise.bytes(len);
        let width = [76, 72, 64, 4, 1, 3, 5, 75, 77, 1000][noise.below(10)];
        let eol = if case % 2 == 0 { "\r\n" } else { "\n" };
        let blanks = case % 5 == 0;
        let body = encode_lines(&data, width, eol, blanks);
        let (decoded, problem) = attachment(&message(&body, eol));
        assert!(!problem, "case {case}: width {width} len {len}");
        assert_eq!(decoded, data, "case {case}: width {width} len {len}");
    }
}

#[test]
fn unpadded_and_early_padded_bodies_decode_as_before() {
    // No padding at the end: the last bytes still come out, as mail clients
    // decode them (mail-parser 0.11.9 dropped them; an attacker could cut
    // the end of a zip's directory that way).
    let (decoded, _) = attachment(&message(b"aGVsbG8gd29ybGQ", "\r\n"));
    assert_eq!(decoded, b"hello world");
    // Padding in the middle ends a group; decoding goes on after it.
    let (decoded, _) = attachment(&message(b"aGk=aGVsbG8=", "\r\n"));
    assert_eq!(decoded, b"hihello");
}

#[test]
fn a_broken_body_falls_back_to_its_raw_text() {
    let mut noise = Noise(7);
    for at in [0usize, 1, 3, 4, 7, 8, 40, 76, 77, 300] {
        let data = noise.bytes(400);
        let mut body = encode_lines(&data, 76, "\r\n", false);
        let at = at.min(body.len() - 1);
        body.insert(at, b'*');
        let (decoded, problem) = attachment(&message(&body, "\r\n"));
        assert!(problem, "a '*' at {at} is an encoding problem");
        assert_eq!(decoded, body, "the raw text is kept (at {at})");
    }
}
