//! Deep and odd structures, built from the fuzzer's bytes as a recipe:
//! nesting of attached messages and multiparts (deeper than any limit),
//! text full of characters whose case mapping changes their UTF-8 length
//! (İ, ẞ, the Kelvin sign, ǅ), and zips that claim to be documents
//! (`mimetype`, `[Content_Types].xml`) around encrypted-looking names and
//! passwords. The whole scan must end with a verdict, never a panic, a
//! stack overflow or a hang.
#![no_main]

use std::io::Write;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use malspam_milter::{Config, Engine, Envelope};

#[path = "common.rs"]
mod common;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::new(Config::default()).unwrap());

/// Pieces of text the recipe strings together.
const WORDS: &[&str] = &[
    "İ", "ẞ", "K", "ǅ", "Ⱥ", "ß", "ﬃ", "invoice.zip", "パスワード: ", "password ", "(",
    ")", "abc123", "\u{202E}", "&amp;", "&#x", ";", "請求書", " ", "\r\n", ">", "RE: ",
    "From: ", "@", "https://", ".docm", "=?UTF-8?B?", "?=",
];

fn text(recipe: &[u8]) -> String {
    recipe
        .iter()
        .map(|b| WORDS[*b as usize % WORDS.len()])
        .collect()
}

/// A zip with a decoy first entry and a few named entries.
fn zip(recipe: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let decoy = match recipe.first().copied().unwrap_or(0) % 3 {
            0 => "mimetype",
            1 => "[Content_Types].xml",
            _ => "readme.txt",
        };
        let _ = w.start_file(decoy, o);
        let _ = w.write_all(recipe.get(1..4).unwrap_or_default());
        for (i, chunk) in recipe.chunks(8).take(8).enumerate() {
            let name = format!("{}{i}.{}", text(&chunk[..chunk.len().min(3)]), ["doc", "exe", "js", "one"][i % 4]);
            if w.start_file(name, o).is_ok() {
                let _ = w.write_all(chunk);
            }
        }
        let _ = w.finish();
    }
    buf.into_inner()
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    // Past every limit (max_depth 8), and deep enough to matter, but fast
    // enough to run often: the 60,000- and 200,000-level cases are tests.
    let depth = 1 + (u16::from_le_bytes([
        rest.first().copied().unwrap_or(0),
        rest.get(1).copied().unwrap_or(0),
    ]) as usize)
        % 2048;
    let body_text = text(rest.get(2..).unwrap_or_default());
    let mut mail = format!(
        "From: {} <a@sender.example>\r\nTo: b@rcpt.example\r\nSubject: {}\r\nMIME-Version: 1.0\r\n",
        text(rest.get(2..10).unwrap_or_default()),
        text(rest.get(10..20).unwrap_or_default()),
    )
    .into_bytes();
    match shape % 3 {
        0 => {
            for _ in 0..depth {
                mail.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
            }
            mail.extend_from_slice(format!("Subject: x\r\n\r\n{body_text}\r\n").as_bytes());
        }
        1 => {
            for i in 0..depth.min(20_000) {
                mail.extend_from_slice(
                    format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                        .as_bytes(),
                );
            }
            mail.extend_from_slice(format!("Content-Type: text/plain\r\n\r\n{body_text}\r\n").as_bytes());
        }
        _ => {
            let attachment = common::mail_with("invoice.zip", "application/zip", &zip(rest));
            // The attachment's own headers and body, after ours.
            let at = attachment
                .windows(13)
                .position(|w| w == b"MIME-Version:")
                .unwrap_or(0);
            mail.extend_from_slice(format!("X-Note: {body_text}\r\n").as_bytes());
            mail.extend_from_slice(&attachment[at + 19..]);
        }
    }
    let _ = ENGINE.scan(Envelope::default(), &mail);
});
