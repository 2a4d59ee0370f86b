//! Reply and forward prefixes of a subject, in the forms mailers write:
//! `Re:`, `RE: RE:`, `Re[2]:`, `Re(3):`, `Fw:`, `FW:`, `Fwd:`, German `AW:`/`WG:`,
//! Nordic `SV:`/`VS:`, Japanese `返信:`/`転送:`, and their full-width forms
//! (`ＲＥ：`), possibly after list tags such as `[linux-man]`.

use unicode_normalization::UnicodeNormalization;

/// Whether a prefix marks a reply or a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixKind {
    Reply,
    Forward,
}

/// A subject split into its prefixes and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The prefixes, outermost first.
    pub prefixes: Vec<PrefixKind>,
    /// The subject without prefixes and list tags (NFKC, trimmed).
    pub base: String,
}

impl Subject {
    /// The outermost prefix says what this message is.
    pub fn outer(&self) -> Option<PrefixKind> {
        self.prefixes.first().copied()
    }
}

const REPLY: &[&str] = &["re", "aw", "sv", "antw", "回复", "答复", "返信", "返"];
const FORWARD: &[&str] = &["fwd", "fw", "wg", "vs", "tr", "转发", "転送", "転"];

/// Split `subject` into prefixes and base.
pub fn parse(subject: &str) -> Subject {
    // NFKC turns full-width letters and the full-width colon into ASCII.
    let text: String = subject.nfkc().collect();
    let mut rest = text.trim();
    let mut prefixes = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = strip_tag(rest) {
            rest = after;
            continue;
        }
        match strip_prefix(rest) {
            Some((kind, after)) => {
                prefixes.push(kind);
                rest = after;
            }
            None => break,
        }
    }
    Subject {
        prefixes,
        base: rest.trim().to_string(),
    }
}

/// The subject as threads compare it: reply/forward prefixes and list tags
/// removed, NFKC, lower case, whitespace collapsed.
pub fn normalize(subject: &str) -> String {
    let base = parse(subject).base.to_lowercase();
    base.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A leading `[tag]` (list name, ticket number) when more follows it.
fn strip_tag(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(']')?;
    let after = inner[end + 1..].trim_start();
    (end <= 40 && !after.is_empty()).then_some(after)
}

/// A prefix word, an optional counter (`[2]`, `(2)`, `^2`), then `:`.
fn strip_prefix(s: &str) -> Option<(PrefixKind, &str)> {
    for (words, kind) in [(REPLY, PrefixKind::Reply), (FORWARD, PrefixKind::Forward)] {
        for word in words {
            let Some(head) = s.get(..word.len()) else {
                continue;
            };
            if !head.eq_ignore_ascii_case(word) {
                continue;
            }
            let mut after = s[word.len()..].trim_start();
            after = strip_counter(after);
            if let Some(after) = after.strip_prefix(':') {
                return Some((kind, after));
            }
        }
    }
    None
}

fn strip_counter(s: &str) -> &str {
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let Some(inner) = s.strip_prefix(open) {
            if let Some(end) = inner.find(close) {
                if end > 0 && inner[..end].chars().all(|c| c.is_ascii_digit()) {
                    return inner[end + 1..].trim_start();
                }
            }
        }
    }
    if let Some(inner) = s.strip_prefix('^') {
        let digits = inner.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            return inner[digits..].trim_start();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use PrefixKind::*;

    #[test]
    fn prefixes_in_every_form() {
        let cases: &[(&str, &[PrefixKind], &str)] = &[
            ("Re: 請求書", &[Reply], "請求書"),
            ("RE: RE: invoice", &[Reply, Reply], "invoice"),
            ("Re[2]: invoice", &[Reply], "invoice"),
            ("Re(3): invoice", &[Reply], "invoice"),
            ("Re^2: invoice", &[Reply], "invoice"),
            ("FW: Fwd: x", &[Forward, Forward], "x"),
            ("AW: WG: Angebot", &[Reply, Forward], "Angebot"),
            ("SV: møte", &[Reply], "møte"),
            ("返信: お見積り", &[Reply], "お見積り"),
            ("転送：お見積り", &[Forward], "お見積り"),
            ("ＲＥ：　ご請求", &[Reply], "ご請求"),
            ("Ｆｗｄ： ご請求", &[Forward], "ご請求"),
            ("[linux-man] Re: [PATCH] x", &[Reply], "x"),
            ("RE : spaced", &[Reply], "spaced"),
            ("Regarding: nothing", &[], "Regarding: nothing"),
            ("Reply needed", &[], "Reply needed"),
            ("Fwiw: x", &[], "Fwiw: x"),
            ("", &[], ""),
        ];
        for (subject, prefixes, base) in cases {
            let s = parse(subject);
            assert_eq!(&s.prefixes, prefixes, "{subject}");
            assert_eq!(&s.base, base, "{subject}");
        }
    }
}
