//! Addresses as detectors need them: display name, address, domain; and
//! the addresses people write in text ([`find_in_text`]).

use std::sync::LazyLock;

use regex::Regex;

/// One mailbox from a From/To/Cc/Reply-To header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// The display name, decoded (RFC 2047), as sent.
    pub name: Option<String>,
    /// The address as sent; may be missing in broken headers.
    pub address: Option<String>,
}

impl Mailbox {
    pub fn new(name: Option<&str>, address: Option<&str>) -> Self {
        Mailbox {
            name: name.map(str::to_string).filter(|n| !n.trim().is_empty()),
            address: address
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty()),
        }
    }

    pub(crate) fn from_addr(addr: &mail_parser::Addr<'_>) -> Self {
        Mailbox::new(addr.name(), addr.address())
    }

    /// The address in lower case.
    pub fn address_lower(&self) -> Option<String> {
        self.address.as_ref().map(|a| a.to_lowercase())
    }

    /// The domain part in lower case, without a trailing dot.
    pub fn domain(&self) -> Option<String> {
        self.address.as_deref().and_then(domain_of)
    }
}

/// The lower-cased domain of an address, or None when it has no `@`.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('>').trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_lowercase())
}

/// Addresses written in free text, the way people and attackers write them:
/// `taro@example.co.jp`, full-width `ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏ．ｊｐ`,
/// `taro @ example.co .jp`, `taro[at]example.co.jp`, `taro(@)example[.]co.jp`.
/// Returned lower-cased and tidied, each once, in order.
///
/// An address written plainly (an `@` and dots, no spaces) counts at any
/// domain of two labels or more ending in letters (`x.example` too); one
/// written in a disguise counts only under a known public suffix, so that
/// "version 1.2 at noon" stays prose. Either way the domain is cut after
/// the longest known public suffix when it has one: "taro@example.co.jp.Thanks"
/// (a sentence running on) is `taro@example.co.jp`.
pub fn find_in_text(text: &str) -> Vec<String> {
    static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
        let label = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
        let dot = r"\s*(?:\.|\[\.\]|\(\.\)|\[dot\]|\(dot\))\s*";
        let at = r"\s*(?:@|\[\s*@\s*\]|\(\s*@\s*\)|\[at\]|\(at\)|\{at\})\s*";
        Regex::new(&format!(r"([a-z0-9._%+-]+){at}({label}(?:{dot}{label})+)")).expect("valid")
    });
    if !may_hold_address(text) {
        return Vec::new();
    }
    let folded = crate::names::fold(text);
    let mut out = Vec::new();
    for c in ADDRESS.captures_iter(&folded) {
        let local = c[1].trim_matches('.');
        let plain = !c[0].contains(|ch: char| ch.is_whitespace() || "[({".contains(ch));
        let labels: Vec<&str> = c[2]
            .split(['.', '[', ']', '(', ')'])
            .map(|l| l.trim())
            .filter(|l| !l.is_empty() && *l != "dot")
            .collect();
        let domain = known_domain(&labels).or_else(|| plain.then(|| letters_domain(&labels))?);
        let Some(domain) = domain else {
            continue;
        };
        if local.is_empty() {
            continue;
        }
        let address = format!("{local}@{domain}");
        if !out.contains(&address) {
            out.push(address);
        }
    }
    out
}

/// False when `text` cannot hold an address in any form [`find_in_text`]
/// reads: plain ASCII with neither "@" nor a bracketed "at". Most lines
/// are such text, and folding them (NFKC) is not free.
fn may_hold_address(text: &str) -> bool {
    if !text.is_ascii() {
        return true;
    }
    let bytes = text.as_bytes();
    bytes.contains(&b'@')
        || bytes.windows(3).any(|w| {
            w[0].eq_ignore_ascii_case(&b'a')
                && w[1].eq_ignore_ascii_case(&b't')
                && matches!(w[2], b']' | b')' | b'}')
        })
}

/// The longest prefix of `labels` that ends in a known public suffix and
/// has a registrable domain: "example.co.jp.hello" becomes "example.co.jp".
fn known_domain(labels: &[&str]) -> Option<String> {
    (2..=labels.len()).rev().find_map(|n| {
        let domain = labels[..n].join(".");
        crate::domains::is_under_known_suffix(&domain).then_some(domain)
    })
}

/// The longest prefix of two labels or more whose last label is letters
/// only, two or more: a domain under a suffix the list does not know.
fn letters_domain(labels: &[&str]) -> Option<String> {
    (2..=labels.len()).rev().find_map(|n| {
        let tld = labels[n - 1];
        (tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| labels[..n].join("."))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lowercased_and_trimmed() {
        assert_eq!(
            domain_of("Taro@Mail.Example.CO.JP."),
            Some("mail.example.co.jp".into())
        );
        assert_eq!(domain_of("no-at-sign"), None);
        let m = Mailbox::new(Some("  "), Some("a@B.example"));
        assert_eq!(m.name, None);
        assert_eq!(m.domain().as_deref(), Some("b.example"));
    }

    #[test]
    fn addresses_are_found_in_their_disguises() {
        assert_eq!(
            find_in_text("\"taro@legal-holdings.co.jp\""),
            vec!["taro@legal-holdings.co.jp"]
        );
        assert_eq!(
            find_in_text("ｔａｒｏ＠ｌｅｇａｌ－ｈｏｌｄｉｎｇｓ．ｃｏ．ｊｐ"),
            vec!["taro@legal-holdings.co.jp"]
        );
        assert_eq!(
            find_in_text("Taro (taro @ legal-holdings.co .jp)"),
            vec!["taro@legal-holdings.co.jp"]
        );
        assert_eq!(
            find_in_text("taro[at]example[.]com"),
            vec!["taro@example.com"]
        );
        assert_eq!(
            find_in_text("mail taro@example.co.jp.Thanks"),
            vec!["taro@example.co.jp"]
        );
        assert!(find_in_text("version 1.2 at noon").is_empty());
        // The quick pre-check passes every written form through.
        assert_eq!(find_in_text("taro{AT}example.com"), ["taro@example.com"]);
        assert!(may_hold_address("taro (At) example.com"));
        assert!(may_hold_address("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ"));
        assert!(!may_hold_address("La La La at noon, that is all."));
        assert!(find_in_text("user@localhost").is_empty());
    }

    #[test]
    fn plain_addresses_count_under_any_suffix_disguised_ones_under_known_ones() {
        // Quoted headers name test and internal domains plainly.
        assert_eq!(
            find_in_text("Taro <T@X.example>; ops@partner.example.com"),
            ["t@x.example", "ops@partner.example.com"]
        );
        assert!(find_in_text("a@b.c.example2").is_empty());
        assert!(find_in_text("a@b.12").is_empty());
        assert!(find_in_text("see you @ 5. thanks").is_empty());
        assert!(find_in_text("taro [at] x.example").is_empty());
        assert!(find_in_text("taro @ x.example").is_empty());
    }
}
