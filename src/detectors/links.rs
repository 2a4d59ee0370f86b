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

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::domains;
use crate::view::urls::{self, percent_decode, Url};
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

/// Visible text that is itself a URL or a bare domain (with optional path).
static SHOWN_DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:https?://)?(?:[a-z0-9.-]*@)?((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63})\.?(?:[:/?#]\S*)?$")
        .expect("valid")
});

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
        let max = self.config.max_urls;
        let mut seen: HashSet<String> = HashSet::new();
        // Each rule's evidence in the order found, each text once and at
        // most `max_urls` of them (a page of 100,000 anchors stays linear).
        let mut by_rule: Vec<(&'static str, Vec<String>)> = Vec::new();
        let mut shown: HashSet<(&'static str, String)> = HashSet::new();
        let mut add = |rule: &'static str, text: String| {
            let at = match by_rule.iter().position(|(r, _)| *r == rule) {
                Some(at) => at,
                None => {
                    by_rule.push((rule, Vec::new()));
                    by_rule.len() - 1
                }
            };
            let texts = &mut by_rule[at].1;
            if texts.len() < max && shown.insert((rule, text.clone())) {
                texts.push(text);
            }
        };
        let mut found: Vec<(String, String)> = Vec::new();
        for part in &message.texts {
            if let Some(html) = &part.html {
                for anchor in urls::anchors(html) {
                    if let Some(shown) = &anchor.text {
                        if let Some(text) = self.mismatch(&anchor.href, shown) {
                            add("text_mismatch", format!("{}: {text}", part.location));
                        }
                    }
                    found.push((part.location.clone(), anchor.href));
                }
            }
            // Plain text of HTML parts too: URLs written out but not linked.
            for u in urls::in_text(&part.text) {
                found.push((part.location.clone(), u.to_string()));
            }
        }
        for (location, raw) in found {
            if seen.len() >= self.config.max_urls {
                break;
            }
            let Some(url) = urls::parse(&raw) else {
                continue;
            };
            if !seen.insert(url.raw.clone()) {
                continue;
            }
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
        let target = urls::parse(href)?;
        let shown_domain = SHOWN_DOMAIN
            .captures(shown)?
            .get(1)?
            .as_str()
            .to_ascii_lowercase();
        // Only names under a real public suffix count (not "setup.exe").
        if !domains::has_known_suffix(&shown_domain) {
            return None;
        }
        if domains::same_organization(&shown_domain, &target.host) {
            return None;
        }
        // A redirector whose destination (a query value) is the shown site.
        let redirects_home = target.query.split('&').any(|pair| {
            pair.split_once('=')
                .and_then(|(_, v)| urls::parse(&percent_decode(v)))
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
    fn extensions_of_decoded_paths() {
        let u = urls::parse("https://x.example/a/%E8%AB%8B%E6%B1%82.do%63m?x=1#f").unwrap();
        assert_eq!(extension_of(&u.path).as_deref(), Some("docm"));
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
        let rule = |u: &str| links.download_rule(&urls::parse(u).unwrap()).map(|r| r.0);
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
    }

    /// A page of many distinct deceptive anchors: each rule keeps at most
    /// `max_urls` pieces of evidence (and the dedup no longer compares
    /// every anchor with every other).
    #[test]
    fn many_deceptive_anchors_give_bounded_evidence() {
        let mut html = String::new();
        for i in 0..3000 {
            html.push_str(&format!(
                "<a href=\"http://evil{i}.example.net/\">https://www.mybank.co.jp/{i}</a>\n"
            ));
        }
        let raw = format!("From: a@b.example\r\nContent-Type: text/html\r\n\r\n{html}");
        let config = LinksConfig {
            max_urls: 50,
            ..LinksConfig::default()
        };
        let hits = crate::detector::testing::inspect(&Links::new(&config), raw.as_bytes());
        let mismatch = hits
            .iter()
            .find(|h| h.rule == "text_mismatch")
            .expect("text_mismatch");
        assert_eq!(mismatch.evidence.split("; ").count(), 50);
    }
}
