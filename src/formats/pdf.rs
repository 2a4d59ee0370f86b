//! PDF: what a lure PDF does when opened or clicked. Malspam PDFs carry no
//! exploit most of the time, just a link ("view the invoice") to a
//! download, often at a bare IP address; some launch a program or run
//! script on open. This reads the file's objects in the clear and inside
//! Flate-compressed streams (object streams hide them there), within the
//! budget, and reports:
//! - every `/URI` target ([`IndicatorKind::Link`]);
//! - `/Launch` actions ([`IndicatorKind::LaunchAction`]);
//! - JavaScript run by `/OpenAction` or `/AA` ([`IndicatorKind::AutoScript`]).

use std::io::Read;

use super::{Budget, IndicatorKind, Opened, Passwords};

/// Links reported per file at most.
const MAX_LINKS: usize = 32;
/// Compressed streams inflated per file at most.
const MAX_STREAMS: usize = 2_000;
/// Bytes one stream may inflate to (content streams of pages are larger,
/// but links and actions live in small objects).
const MAX_STREAM_BYTES: u64 = 4 << 20;

pub fn sniff(data: &[u8]) -> bool {
    memchr::memmem::find(&data[..data.len().min(1024)], b"%PDF-").is_some()
}

pub fn open(data: &[u8], budget: &Budget, _passwords: Passwords<'_>) -> Opened {
    let mut out = Opened::default();
    let mut texts: Vec<Vec<u8>> = Vec::new();
    let mut streams = 0;
    let mut pos = 0;
    while let Some(at) = memchr::memmem::find(&data[pos..], b"stream") {
        let start = pos + at + b"stream".len();
        pos = start;
        // "endstream" also contains "stream".
        if data[..pos - b"stream".len()].ends_with(b"end") {
            continue;
        }
        if budget.expired() {
            out.limits.push("the scan's time budget ran out".into());
            break;
        }
        streams += 1;
        if streams > MAX_STREAMS {
            out.limits.push(format!(
                "more than {MAX_STREAMS} streams; the rest not read"
            ));
            break;
        }
        let body_start = skip_eol(data, start);
        let end = memchr::memmem::find(&data[body_start..], b"endstream")
            .map_or(data.len(), |e| body_start + e);
        let body = &data[body_start..end];
        // Only Flate streams hide objects; images and fonts are skipped by
        // their decoders failing fast on the first bytes.
        if body.len() < 2 || body[0] & 0x0F != 8 {
            continue;
        }
        let cap = budget.cap_for(body.len() as u64).min(MAX_STREAM_BYTES);
        let mut inflated = Vec::new();
        let read = flate2::read::ZlibDecoder::new(body)
            .take(cap)
            .read_to_end(&mut inflated);
        budget.charge(inflated.len() as u64);
        if read.is_ok() || !inflated.is_empty() {
            texts.push(inflated);
        }
        pos = end;
    }
    look(data, &mut out);
    for t in &texts {
        look(t, &mut out);
    }
    out
}

/// Links and actions in one run of PDF object syntax.
fn look(text: &[u8], out: &mut Opened) {
    let mut pos = 0;
    while let Some(at) = memchr::memmem::find(&text[pos..], b"/URI") {
        pos += at + 4;
        let Some(url) = string_after(&text[pos..]) else {
            continue;
        };
        let links = out
            .indicators
            .iter()
            .filter(|i| i.kind == IndicatorKind::Link)
            .count();
        if links >= MAX_LINKS {
            break;
        }
        if !out
            .indicators
            .iter()
            .any(|i| i.kind == IndicatorKind::Link && i.detail == url)
        {
            out.indicator(IndicatorKind::Link, url);
        }
    }
    if let Some(at) = memchr::memmem::find(text, b"/Launch") {
        let detail = memchr::memmem::find(&text[at..], b"/F")
            .and_then(|f| string_after(&text[at + f + 2..]))
            .unwrap_or_else(|| "a program".to_string());
        if !out
            .indicators
            .iter()
            .any(|i| i.kind == IndicatorKind::LaunchAction)
        {
            out.indicator(IndicatorKind::LaunchAction, detail);
        }
    }
    let js = memchr::memmem::find(text, b"/JavaScript").is_some()
        || memchr::memmem::find(text, b"/JS").is_some();
    let on_open = memchr::memmem::find(text, b"/OpenAction").is_some()
        || memchr::memmem::find(text, b"/AA").is_some();
    if js
        && on_open
        && !out
            .indicators
            .iter()
            .any(|i| i.kind == IndicatorKind::AutoScript)
    {
        out.indicator(
            IndicatorKind::AutoScript,
            "JavaScript run when the document opens",
        );
    }
}

/// The literal string `( ... )` that follows, unescaped, at most 2 KiB.
fn string_after(rest: &[u8]) -> Option<String> {
    let open = rest.iter().take(16).position(|&b| b == b'(')?;
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut escaped = false;
    for &b in rest.get(open + 1..)?.iter().take(2048) {
        if escaped {
            out.push(b);
            escaped = false;
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'(' => {
                depth += 1;
                out.push(b);
            }
            b')' if depth == 0 => break,
            b')' => {
                depth -= 1;
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    let s = String::from_utf8_lossy(&out).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn skip_eol(data: &[u8], mut at: usize) -> usize {
    if data.get(at) == Some(&b'\r') {
        at += 1;
    }
    if data.get(at) == Some(&b'\n') {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn links_and_actions_in_clear_and_compressed_objects() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"<< /Type /Action /S /URI /URI (http://203.0.113.7/inv) >>")
            .unwrap();
        let packed = z.finish().unwrap();
        let mut pdf = b"%PDF-1.5\n1 0 obj << /OpenAction 2 0 R >> endobj\n2 0 obj << /S /JavaScript /JS (app.alert\\(1\\)) >> endobj\n3 0 obj << /Length 9 >>\nstream\n".to_vec();
        pdf.extend_from_slice(&packed);
        pdf.extend_from_slice(
            b"\nendstream\nendobj\n4 0 obj << /S /Launch /F (cmd.exe) >> endobj\n%%EOF\n",
        );
        let o = open(&pdf, &Budget::generous(), Passwords::default());
        let kinds: Vec<_> = o
            .indicators
            .iter()
            .map(|i| (i.kind, i.detail.as_str()))
            .collect();
        assert!(
            kinds.contains(&(IndicatorKind::Link, "http://203.0.113.7/inv")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(IndicatorKind::LaunchAction, "cmd.exe")),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|(k, _)| *k == IndicatorKind::AutoScript),
            "{kinds:?}"
        );
    }

    #[test]
    fn garbage_is_harmless() {
        let junk = b"%PDF-1.4 stream\x78\x9c\xff\xff endstream /URI ( /Launch";
        let o = open(junk, &Budget::generous(), Passwords::default());
        assert!(o
            .indicators
            .iter()
            .all(|i| i.kind != IndicatorKind::LaunchAction || !i.detail.is_empty()));
    }
}
