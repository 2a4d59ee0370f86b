//! `links`: links in the message's text that download macro documents or
//! archives (seed 002: "the body links to a docm/xlsm file to download"),
//! and HTML links whose visible text shows one domain while the link goes to
//! another organisation's.
//!
//! URLs come from plain text (anything that looks like `http://...` or
//! `www....`) and from HTML `<a href>`; the path's last segment is
//! percent-decoded before its extension is read, and query strings are not
//! part of the path (but a query value that names a file counts too:
//! `download.php?file=invoice.xlsm`).

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::domains;
use crate::view::MessageView;

pub const NAME: &str = "links";

pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "macro_document_download",
        description: "A link to a macro-capable Office document (.doc, .docm, .xls, .xlsm, ...)",
        default_score: 5.0,
    },
    RuleInfo {
        name: "archive_download",
        description: "A link to an archive or disk image (.zip, .7z, .rar, .iso, .one, ...)",
        default_score: 3.0,
    },
    RuleInfo {
        name: "text_mismatch",
        description: "An HTML link whose visible text shows one domain and whose target is another organisation's",
        default_score: 3.0,
    },
];

/// `[links]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinksConfig {
    pub enabled: bool,
    /// Extensions (without the dot) that make a link a macro document download.
    pub macro_extensions: Vec<String>,
    /// Extensions that make a link an archive download.
    pub archive_extensions: Vec<String>,
    /// URLs looked at per message; the rest are ignored.
    pub max_urls: usize,
}

impl Default for LinksConfig {
    fn default() -> Self {
        let list = |s: &[&str]| s.iter().map(|e| e.to_string()).collect();
        LinksConfig {
            enabled: true,
            macro_extensions: list(&[
                "doc", "docm", "dot", "dotm", "xls", "xlsm", "xlsb", "xlt", "xltm", "xlam", "pptm",
                "ppsm", "potm",
            ]),
            archive_extensions: list(&["zip", "7z", "rar", "iso", "img", "one"]),
            max_urls: 1000,
        }
    }
}

pub struct Links {
    config: LinksConfig,
}

impl Links {
    pub fn new(config: &LinksConfig) -> Self {
        let lower = |v: &[String]| {
            v.iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect()
        };
        Links {
            config: LinksConfig {
                macro_extensions: lower(&config.macro_extensions),
                archive_extensions: lower(&config.archive_extensions),
                ..config.clone()
            },
        }
    }
}

static TEXT_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>"'`{}|\\^\[\]]+"#).expect("valid")
});
static ANCHOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>(.*?)</a\s*>"#)
        .expect("valid")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("valid"));
/// Visible text that is itself a URL or a bare domain (with optional path).
static SHOWN_DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:https?://)?(?:[a-z0-9.-]*@)?((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63})\.?(?:[:/?#]\S*)?$")
        .expect("valid")
});

/// A URL split into what we look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub raw: String,
    pub host: String,
    /// The path, percent-decoded, without query or fragment.
    pub path: String,
    pub query: String,
}

/// Split a URL (with or without scheme, `www.` form allowed).
pub fn parse_url(raw: &str) -> Option<Url> {
    let raw = raw
        .trim()
        .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '>']);
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
fn percent_decode(s: &str) -> String {
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

/// The lowercased extension of the last segment of a path, if any.
fn extension_of(path: &str) -> Option<String> {
    let last = path
        .trim_end_matches('/')
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("");
    let last = last.trim_end_matches(['.', ' ']);
    let (stem, ext) = last.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

/// `hxxps://example[.]com/a.docm`: evidence that no one clicks by mistake.
pub fn defang(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i], &url[i + 3..]),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end].replace('.', "[.]");
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "" => String::new(),
        "http" => "hxxp://".into(),
        "https" => "hxxps://".into(),
        "ftp" => "fxp://".into(),
        other => format!("{other}://"),
    };
    format!("{scheme}{host}{}", &rest[end..])
}

/// Minimal HTML entity decoding for attribute values and link text.
fn decode_entities(s: &str) -> String {
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

impl Links {
    /// The rule a URL's file extension calls for, with the extension.
    fn download_rule(&self, url: &Url) -> Option<(&'static str, String)> {
        let mut candidates = vec![extension_of(&url.path)];
        // A query value that names a file: ?file=invoice.xlsm
        for pair in url.query.split('&') {
            if let Some((_, value)) = pair.split_once('=') {
                candidates.push(extension_of(&percent_decode(&value.replace('+', " "))));
            }
        }
        for ext in candidates.into_iter().flatten() {
            if self.config.macro_extensions.contains(&ext) {
                return Some(("macro_document_download", ext));
            }
            if self.config.archive_extensions.contains(&ext) {
                return Some(("archive_download", ext));
            }
        }
        None
    }
}

impl Detector for Links {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [RuleInfo] {
        RULES
    }

    fn inspect(
        &self,
        message: &MessageView,
        _ctx: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        if !self.config.enabled {
            return Ok(());
        }
        let mut seen: Vec<String> = Vec::new();
        let mut by_rule: Vec<(&'static str, Vec<String>)> = Vec::new();
        let mut add =
            |rule: &'static str, text: String| match by_rule.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, v)) => {
                    if !v.contains(&text) {
                        v.push(text)
                    }
                }
                None => by_rule.push((rule, vec![text])),
            };
        let mut urls: Vec<(String, String)> = Vec::new();
        for part in &message.texts {
            if let Some(html) = &part.html {
                for anchor in ANCHOR.captures_iter(html) {
                    let href = anchor
                        .get(1)
                        .or_else(|| anchor.get(2))
                        .or_else(|| anchor.get(3))
                        .map(|m| decode_entities(m.as_str()))
                        .unwrap_or_default();
                    let shown = decode_entities(&TAG.replace_all(&anchor[4], ""));
                    if let Some(text) = self.mismatch(&href, shown.trim()) {
                        add("text_mismatch", format!("{}: {text}", part.location));
                    }
                    urls.push((part.location.clone(), href));
                }
            }
            // Plain text of HTML parts too: URLs written out but not linked.
            for m in TEXT_URL.find_iter(&part.text) {
                urls.push((part.location.clone(), m.as_str().to_string()));
            }
        }
        for (location, raw) in urls {
            if seen.len() >= self.config.max_urls {
                break;
            }
            let Some(url) = parse_url(&raw) else {
                continue;
            };
            if seen.contains(&url.raw) {
                continue;
            }
            seen.push(url.raw.clone());
            if let Some((rule, _)) = self.download_rule(&url) {
                add(rule, format!("{location}: {}", defang(&url.raw)));
            }
        }
        for (rule, texts) in by_rule {
            hits.push(Hit::new(rule, texts.join("; ")));
        }
        Ok(())
    }
}

impl Links {
    /// Evidence when `shown` displays a domain and `href` goes elsewhere.
    fn mismatch(&self, href: &str, shown: &str) -> Option<String> {
        let target = parse_url(href)?;
        let shown_domain = SHOWN_DOMAIN
            .captures(shown)?
            .get(1)?
            .as_str()
            .to_ascii_lowercase();
        // Only names under a real public suffix count (not "setup.exe").
        if !psl::suffix(shown_domain.as_bytes()).is_some_and(|s| s.is_known()) {
            return None;
        }
        if domains::same_organization(&shown_domain, &target.host) {
            return None;
        }
        // A redirector whose destination (a query value) is the shown site.
        let redirects_home = target.query.split('&').any(|pair| {
            pair.split_once('=')
                .and_then(|(_, v)| parse_url(&percent_decode(v)))
                .is_some_and(|u| {
                    u.query.is_empty() && domains::same_organization(&shown_domain, &u.host)
                })
        });
        if redirects_home {
            return None;
        }
        Some(format!(
            "text shows {}, link goes to {}",
            shown_domain.replace('.', "[.]"),
            defang(&target.raw)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_and_decoded() {
        let u =
            parse_url("https://Files.Example.com:8443/a/%E8%AB%8B%E6%B1%82.do%63m?x=1#f").unwrap();
        assert_eq!(u.host, "files.example.com");
        assert_eq!(u.path, "/a/請求.docm");
        assert_eq!(u.query, "x=1");
        assert_eq!(extension_of(&u.path).as_deref(), Some("docm"));
        assert_eq!(parse_url("www.example.org/x.zip.").unwrap().path, "/x.zip");
        assert!(parse_url("mailto:a@b.example").is_none());
        assert!(parse_url("javascript:alert(1)").is_none());
        assert_eq!(percent_decode("a%252Ezip"), "a.zip");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn defanged() {
        assert_eq!(
            defang("https://evil.example.com/x.docm?a=b.c"),
            "hxxps://evil[.]example[.]com/x.docm?a=b.c"
        );
    }

    #[test]
    fn downloads_by_extension_and_query() {
        let links = Links::new(&LinksConfig::default());
        let rule = |u: &str| links.download_rule(&parse_url(u).unwrap()).map(|r| r.0);
        assert_eq!(
            rule("http://x.example/inv.XLSM"),
            Some("macro_document_download")
        );
        assert_eq!(
            rule("http://x.example/get.php?file=inv%2Edoc"),
            Some("macro_document_download")
        );
        assert_eq!(rule("http://x.example/a.7z?dl=1"), Some("archive_download"));
        assert_eq!(rule("http://x.example/docs/"), None);
        assert_eq!(rule("http://x.example/report.pdf"), None);
        assert_eq!(rule("http://x.example/.zip"), None);
    }

    #[test]
    fn shown_domain_versus_target() {
        let links = Links::new(&LinksConfig::default());
        assert!(links
            .mismatch("http://evil.example.net/login", "https://www.mybank.co.jp/")
            .is_some());
        assert!(links
            .mismatch("https://mail.mybank.co.jp/x", "www.mybank.co.jp")
            .is_none());
        assert!(links
            .mismatch("http://evil.example.net/", "click here")
            .is_none());
        assert!(links
            .mismatch("http://evil.example.net/", "setup.exe")
            .is_none());
        assert_eq!(decode_entities("a&amp;b&#x2e;c&#46;&zz"), "a&b.c.&zz");
    }
}
