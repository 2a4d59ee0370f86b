//! Links in a message's text, found one way for every reader: the `links`
//! detector (downloads, text that shows another site), `thread_hijack`
//! (does a reply carry a link) and the reviewers' page (the links it lists).
//!
//! - [`in_text`]: URLs written out in text, `http://`, `https://`, `ftp://`
//!   or `www.`, with what stands after them trimmed ([`trim_end`]).
//! - [`anchors`]: every `<a href>` and `<area href>` of HTML, its target
//!   entity-decoded and, when the tag is closed, the text it shows.
//! - [`parse`]: a URL split into host, path (percent-decoded) and query.

use std::sync::LazyLock;

use regex::Regex;

static TEXT_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>"'`{}|\\^\[\]]+"#).expect("valid")
});
/// The opening tag of a link, with its `href` in one of three quotings.
static LINK_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<(a|area)\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>"#)
        .expect("valid")
});
static CLOSE_A: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)</a\s*>").expect("valid"));
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("valid"));

/// What commonly follows a URL in prose and is not part of it.
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', ')', '>'];

/// URLs written out in `text`, in order, each with [`trim_end`] applied.
pub fn in_text(text: &str) -> impl Iterator<Item = &str> + '_ {
    TEXT_URL
        .find_iter(text)
        .map(|m| trim_end(m.as_str()))
        .filter(|u| !u.is_empty())
}

/// A URL without the sentence punctuation that followed it
/// (`https://x.example/a.` → `https://x.example/a`).
pub fn trim_end(url: &str) -> &str {
    url.trim().trim_end_matches(TRAILING)
}

/// A link of HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Byte offset of the opening tag in the markup.
    pub at: usize,
    /// The target, entity-decoded.
    pub href: String,
    /// For `<a>`: the text it shows, up to its `</a>` or the next link
    /// (which closes it, as a browser reads it), tags removed,
    /// entity-decoded, trimmed. None for `<area>` and for a last `<a>`
    /// never closed.
    pub text: Option<String>,
}

/// Every `<a href>` and `<area href>` of `html`, in order. Linear in the
/// markup's length: each byte is the text of one link at most, and the
/// closing tags are searched for once.
pub fn anchors(html: &str) -> Vec<Anchor> {
    let tags: Vec<regex::Captures<'_>> = LINK_TAG.captures_iter(html).collect();
    let mut out = Vec::with_capacity(tags.len());
    // The first `</a>` at or after some point: found once, reused.
    let mut close: Option<Option<regex::Match<'_>>> = None;
    for (i, c) in tags.iter().enumerate() {
        let tag = c.get(0).expect("whole match");
        let href = c
            .get(2)
            .or_else(|| c.get(3))
            .or_else(|| c.get(4))
            .map(|m| decode_entities(m.as_str()))
            .unwrap_or_default();
        let text = if c[1].eq_ignore_ascii_case("a") {
            if close.is_some_and(|m| m.is_some_and(|m| m.start() < tag.end())) {
                close = None;
            }
            let closing = close
                .get_or_insert_with(|| CLOSE_A.find_at(html, tag.end()))
                .map(|m| m.start());
            let next = tags.get(i + 1).and_then(|n| n.get(0)).map(|n| n.start());
            let end = match (closing, next) {
                (Some(c), Some(n)) => Some(c.min(n)),
                (c, n) => c.or(n),
            };
            end.map(|end| {
                let shown = TAG.replace_all(&html[tag.end()..end], "");
                decode_entities(&shown).trim().to_string()
            })
        } else {
            None
        };
        out.push(Anchor {
            at: tag.start(),
            href,
            text,
        });
    }
    out
}

/// A URL split into what detectors look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub raw: String,
    pub host: String,
    /// The path, percent-decoded, without query or fragment.
    pub path: String,
    pub query: String,
}

/// Split a URL (with or without scheme, `www.` form allowed); None for
/// other schemes (`mailto:`, `javascript:`) and hosts without a dot.
pub fn parse(raw: &str) -> Option<Url> {
    let raw = trim_end(raw);
    let lower = raw.to_ascii_lowercase();
    let rest = if let Some(i) = lower.find("://") {
        let scheme = &lower[..i];
        if !matches!(scheme, "http" | "https" | "ftp") {
            return None;
        }
        &raw[i + 3..]
    } else if lower.starts_with("www.") {
        raw
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .split(':')
        .next()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() || !host.contains('.') {
        return None;
    }
    let after = &rest[end..];
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    let path = percent_decode(&after[..path_end]);
    let query = after[path_end..]
        .strip_prefix('?')
        .map(|q| q.split('#').next().unwrap_or(""))
        .unwrap_or("")
        .to_string();
    Some(Url {
        raw: raw.to_string(),
        host,
        path,
        query,
    })
}

/// Decode %XX escapes, twice at most (doubly encoded `%252E` hides a dot).
pub fn percent_decode(s: &str) -> String {
    let mut current = s.to_string();
    for _ in 0..2 {
        if !current.contains('%') {
            break;
        }
        let bytes = current.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = |b: u8| char::from(b).to_digit(16);
                if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        current = String::from_utf8_lossy(&out).into_owned();
    }
    current
}

/// Minimal HTML entity decoding for attribute values and link text.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // Bytes, not a str slice: 12 bytes may end inside a character.
        let Some(semi) = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';')
        else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_and_decoded() {
        let u = parse("https://Files.Example.com:8443/a/%E8%AB%8B%E6%B1%82.do%63m?x=1#f").unwrap();
        assert_eq!(u.host, "files.example.com");
        assert_eq!(u.path, "/a/請求.docm");
        assert_eq!(u.query, "x=1");
        assert_eq!(parse("www.example.org/x.zip.").unwrap().path, "/x.zip");
        assert!(parse("mailto:a@b.example").is_none());
        assert!(parse("javascript:alert(1)").is_none());
        assert_eq!(percent_decode("a%252Ezip"), "a.zip");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(decode_entities("a&amp;b&#x2e;c&#46;&zz"), "a&b.c.&zz");
    }

    #[test]
    fn urls_in_text_lose_the_sentence_around_them() {
        let text = "See https://x.example/a.docm. Or (www.y.example/b), ftp://z.example/c!";
        assert_eq!(
            in_text(text).collect::<Vec<_>>(),
            [
                "https://x.example/a.docm",
                "www.y.example/b",
                "ftp://z.example/c"
            ]
        );
        assert_eq!(in_text("mailto:a@b.example and no link").count(), 0);
    }

    #[test]
    fn anchors_closed_unclosed_and_areas() {
        let html = "<p><A HREF='http://a.example/1'>one <b>&amp;</b> more</a>\
                    <a class=x href=\"http://b.example/2?a=1&amp;b=2\">two\
                    <area shape=rect href=http://c.example/3>\
                    <a href=\"http://d.example/4\">four</A ></p>";
        let got: Vec<(String, Option<String>)> = anchors(html)
            .into_iter()
            .map(|a| (a.href, a.text))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "http://a.example/1".to_string(),
                    Some("one & more".to_string())
                ),
                (
                    "http://b.example/2?a=1&b=2".to_string(),
                    Some("two".to_string())
                ),
                ("http://c.example/3".to_string(), None),
                ("http://d.example/4".to_string(), Some("four".to_string())),
            ]
        );
        let unclosed = anchors("<a href=http://e.example/5>five");
        assert_eq!(unclosed.len(), 1);
        assert_eq!(unclosed[0].text, None);
        // Many links never closed: each one's text ends at the next.
        let many = "<a href=http://f.example/>x".repeat(20_000);
        let found = anchors(&many);
        assert_eq!(found.len(), 20_000);
        assert_eq!(found[0].text.as_deref(), Some("x"));
        assert_eq!(found[19_999].text, None);
    }
}
