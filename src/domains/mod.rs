//! Domains compared the way people read them.
//!
//! Every comparison of two domains, every lookup of one in the public
//! suffix list or in a list of domains (the organisation's, free mail,
//! services, a reviewer's, an allowlist), and every address compared or
//! hashed goes through this module, in two steps:
//!
//! 1. [`domain_key`]: the domain as DNS reads it, IDNA (UTS #46) ToASCII:
//!    `例え.jp`, `XN--R8JZ45G.JP.` and `例え。jp` (an ideographic full stop,
//!    which UTS #46 maps to `.`) are all `xn--r8jz45g.jp`; full-width
//!    letters are their ASCII selves. Lower case, no trailing dot.
//! 2. [`registrable`]: the registrable domain ("eTLD+1") of that key, so
//!    `mail.example.co.jp` belongs to `example.co.jp`.
//!
//! A domain IDNA rejects (bad punycode such as `xn--zz`, a bidi control,
//! a space) keeps a lower-cased copy of itself as its key and is its own
//! registrable domain: it never panics and never equals a valid domain,
//! nor does a subdomain of the organisation's that fails IDNA pass for the
//! organisation.
//!
//! Keys are for comparing; evidence keeps a domain as the mail wrote it
//! ([`registrable_as_written`]).

pub mod freemail;

use std::borrow::Cow;

pub use freemail::{is_freemail, FREEMAIL_DOMAINS};

/// The dots UTS #46 reads as label separators.
const DOTS: [char; 4] = ['.', '\u{3002}', '\u{FF0E}', '\u{FF61}'];

/// A domain's key: IDNA's, or the fallback for a domain IDNA rejects.
/// Both are keys (neither is an error): they differ in what they may
/// equal or be below.
enum Key {
    /// IDNA ToASCII, lower case, no trailing dot.
    Valid(String),
    /// A lower-cased copy of a domain IDNA rejects.
    Invalid(String),
}

impl Key {
    fn into_string(self) -> String {
        match self {
            Key::Valid(key) | Key::Invalid(key) => key,
        }
    }
}

/// The key of a domain, or the lower-cased copy of an invalid one.
fn checked_key(domain: &str) -> Key {
    let d = domain.trim();
    let ascii = idna::domain_to_ascii_cow(d.as_bytes(), idna::AsciiDenyList::URL);
    match ascii.as_deref().map(|a| a.trim_end_matches('.')) {
        Ok(key) if !key.is_empty() => Key::Valid(key.to_string()),
        _ => Key::Invalid(d.trim_end_matches(DOTS).to_lowercase()),
    }
}

/// The form a domain is compared and looked up in: IDNA (UTS #46)
/// ToASCII, lower case, no trailing dot; a domain IDNA rejects falls back
/// to a lower-cased copy of itself. See the module comment.
pub fn domain_key(domain: &str) -> String {
    checked_key(domain).into_string()
}

/// The key of a domain IDNA accepts; None for one it rejects.
pub fn valid_key(domain: &str) -> Option<String> {
    match checked_key(domain) {
        Key::Valid(key) => Some(key),
        Key::Invalid(_) => None,
    }
}

/// The registrable domain ("eTLD+1") of a host or address domain, as a
/// key. Falls back to the whole key when the suffix list does not know it
/// (`localhost`, single labels), and to the whole fallback copy when IDNA
/// rejects the domain.
pub fn registrable(domain: &str) -> String {
    match checked_key(domain) {
        Key::Valid(key) => registrable_of_key(key),
        Key::Invalid(invalid) => invalid,
    }
}

fn registrable_of_key(key: String) -> String {
    match psl::domain_str(&key) {
        Some(r) if r.len() < key.len() => r.to_string(),
        _ => key,
    }
}

/// True when the domain ends in a suffix the public suffix list knows
/// (`example.co.jp`, and `co.jp` itself; not `x.example`). A domain IDNA
/// rejects ends in none.
pub fn has_known_suffix(domain: &str) -> bool {
    valid_key(domain).is_some_and(|key| psl::suffix(key.as_bytes()).is_some_and(|s| s.is_known()))
}

/// True when the domain is a registrable domain, or below one, under a
/// suffix the list knows (`example.co.jp`; not `co.jp`, not `x.example`).
pub fn is_under_known_suffix(domain: &str) -> bool {
    valid_key(domain).is_some_and(|key| {
        psl::suffix(key.as_bytes()).is_some_and(|s| s.is_known())
            && psl::domain(key.as_bytes()).is_some()
    })
}

/// The registrable domain in the form the mail wrote it (lower-cased):
/// `mail.例え.jp` gives `例え.jp` where [`registrable`] gives
/// `xn--r8jz45g.jp`. For evidence and for what the store keeps in clear.
pub fn registrable_as_written(domain: &str) -> String {
    let key = registrable(domain);
    let written = domain.trim().trim_end_matches(DOTS).to_lowercase();
    let labels: Vec<&str> = written.split(DOTS).collect();
    let n = key.split('.').count();
    if labels.len() >= n {
        let shown = labels[labels.len() - n..].join(".");
        // Only a faithful rendering: the same key, read back.
        if registrable(&shown) == key {
            return shown;
        }
    }
    key
}

/// True when both domains have the same registrable domain. An empty
/// domain is nobody's, not even another empty one's.
pub fn same_organization(a: &str, b: &str) -> bool {
    let (a, b) = (registrable(a), registrable(b));
    !a.is_empty() && a == b
}

/// True when `domain` is `parent` or one of its subdomains, compared by
/// key. An empty `parent` contains nothing; a domain IDNA rejects is
/// below nothing (it is only equal to its own copy).
pub fn within(domain: &str, parent: &str) -> bool {
    match checked_key(domain) {
        Key::Valid(key) => key_within(&key, parent),
        Key::Invalid(invalid) => !invalid.is_empty() && invalid == domain_key(parent),
    }
}

/// [`within`] for a domain already turned into its [`valid_key`], against
/// a parent in any form (a lower-case ASCII one is taken as it is).
pub fn key_within(key: &str, parent: &str) -> bool {
    let parent: Cow<'_, str> =
        if parent.is_ascii() && !parent.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Borrowed(parent.trim().trim_end_matches('.'))
        } else {
            Cow::Owned(domain_key(parent))
        };
    !parent.is_empty()
        && (key == parent
            || key
                .strip_suffix(parent.as_ref())
                .is_some_and(|rest| rest.ends_with('.')))
}

/// An address as it is compared and hashed: the local part lower-cased,
/// the domain by its [`domain_key`]; angle brackets and spaces around it
/// dropped. Without an `@`, the lower-cased text.
pub fn address_key(address: &str) -> String {
    let a = address.trim().trim_matches(['<', '>']).trim();
    match a.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{}", local.to_lowercase(), domain_key(domain)),
        None => a.to_lowercase(),
    }
}

/// The Unicode form of a domain (`xn--r8jz45g.jp` is `例え.jp`), for
/// matching it against names a reader sees; the key itself when it has
/// none.
pub fn unicode(domain: &str) -> String {
    let key = domain_key(domain);
    match idna::domain_to_unicode(&key) {
        (u, Ok(())) => u,
        _ => key,
    }
}

/// One domain of the organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrgDomain {
    /// Its key: what `headers` compares subdomains with.
    key: String,
    /// Its registrable domain, a key: what detectors compare.
    registrable: String,
    /// Its registrable domain as configured, for evidence.
    shown: String,
}

/// The organisation's own domains (`[organization] domains`), read one way
/// for every reader: display_name, thread_hijack, the thread memory's
/// trust, the headers written to outbound mail. Entries are trimmed, a
/// leading `@` or `.` dropped, compared by key; free-mail domains (built
/// in, or `[display_name] freemail_domains`) are dropped, since anyone can
/// have an address there: they never stand for the organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgDomains {
    domains: Vec<OrgDomain>,
}

impl OrgDomains {
    /// No domains: nothing is the organisation's.
    pub const EMPTY: OrgDomains = OrgDomains {
        domains: Vec::new(),
    };

    pub fn new(configured: &[String], freemail_extra: &[String]) -> OrgDomains {
        let mut domains: Vec<OrgDomain> = Vec::new();
        for entry in configured {
            let entry = entry.trim().trim_start_matches(['@', '.']).trim();
            if entry.is_empty() || is_freemail(entry, freemail_extra) {
                continue;
            }
            let key = domain_key(entry);
            if domains.iter().any(|d| d.key == key) {
                continue;
            }
            domains.push(OrgDomain {
                registrable: registrable(entry),
                shown: registrable_as_written(entry),
                key,
            });
        }
        OrgDomains { domains }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// True when `domain`'s registrable domain is one of the organisation's.
    pub fn contains(&self, domain: &str) -> bool {
        if self.domains.is_empty() {
            return false;
        }
        let reg = registrable(domain);
        self.domains.iter().any(|d| d.registrable == reg)
    }

    /// True when `domain` is a configured domain or below one (not merely
    /// at the same registrable domain).
    pub fn covers(&self, domain: &str) -> bool {
        if self.domains.is_empty() {
            return false;
        }
        self.domains.iter().any(|d| within(domain, &d.key))
    }

    /// One organisation: the same registrable domain, or both the
    /// organisation's (it writes from several domains).
    pub fn same_org(&self, a: &str, b: &str) -> bool {
        same_organization(a, b) || (self.contains(a) && self.contains(b))
    }

    /// Each registrable domain once: (its key, as configured).
    pub fn registrable_domains(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for d in &self.domains {
            if !out.iter().any(|(k, _)| *k == d.registrable) {
                out.push((&d.registrable, &d.shown));
            }
        }
        out
    }

    /// The registrable domains as configured, each once, for evidence.
    pub fn shown(&self) -> Vec<&str> {
        self.registrable_domains()
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("mail.example.co.jp"), "example.co.jp");
        assert_eq!(registrable("Example.COM."), "example.com");
        assert_eq!(registrable("a.b.example.org.uk"), "example.org.uk");
        assert_eq!(registrable("localhost"), "localhost");
        assert!(same_organization(
            "smtp.legal-holdings.co.jp",
            "legal-holdings.co.jp"
        ));
        assert!(!same_organization("legal-holdings.co.jp", "holdings.co.jp"));
    }

    #[test]
    fn the_forms_of_one_domain_have_one_key() {
        let key = "xn--r8jz45g.jp";
        for form in [
            "例え.jp",
            "例え.JP",
            "xn--r8jz45g.jp",
            "XN--R8JZ45G.JP",
            "Xn--R8jz45g.Jp",
            "例え.jp.",
            "xn--r8jz45g.jp.",
            " 例え.jp ",
            "例え\u{3002}jp",
            "例え\u{FF0E}jp",
            "例え\u{FF61}jp",
            "例え\u{3002}jp\u{3002}",
            "ｘｎ－－ｒ８ｊｚ４５ｇ．ｊｐ",
        ] {
            assert_eq!(domain_key(form), key, "{form:?}");
            assert_eq!(
                registrable(&format!("mail.{}", form.trim())),
                key,
                "{form:?}"
            );
        }
        assert_eq!(domain_key("Example.COM"), "example.com");
        assert_eq!(domain_key("ｅｘａｍｐｌｅ．ｃｏｍ"), "example.com");
        assert!(same_organization("mail.例え.jp", "XN--R8JZ45G.JP."));
    }

    #[test]
    fn look_alikes_and_invalid_domains_stay_apart() {
        // Cyrillic а in place of Latin a: another domain.
        assert_ne!(domain_key("ex\u{0430}mple.com"), domain_key("example.com"));
        assert!(!same_organization("ex\u{0430}mple.com", "example.com"));
        assert!(domain_key("ex\u{0430}mple.com").starts_with("xn--"));
        // Punycode that does not decode: a lower-cased copy, never a panic,
        // never equal to a valid domain, its own registrable domain.
        assert_eq!(domain_key("XN--ZZ.example.com"), "xn--zz.example.com");
        assert_eq!(registrable("xn--zz.example.com"), "xn--zz.example.com");
        assert!(!same_organization("xn--zz.example.com", "example.com"));
        assert!(!within("xn--zz.example.com", "example.com"));
        // A bidi control, a space: rejected, kept as written (lower case).
        assert_eq!(domain_key("\u{202E}moc.Example"), "\u{202E}moc.example");
        assert_ne!(domain_key("exa mple.com"), domain_key("example.com"));
        assert!(!same_organization("", ""));
        assert_eq!(valid_key("."), None);
        assert_eq!(valid_key("。"), None);
        for odd in [
            "",
            ".",
            "..",
            "xn--",
            "\u{FFFD}",
            "。",
            "a..b",
            "@",
            "xn--ab.com",
        ] {
            let _ = (
                domain_key(odd),
                registrable(odd),
                registrable_as_written(odd),
            );
            assert!(!same_organization(odd, "example.com"), "{odd:?}");
        }
        // Characters UTS #46 ignores are ignored: DNS reads the same name.
        assert_eq!(domain_key("exa\u{200B}mple.com"), "example.com");
    }

    #[test]
    fn subdomains_by_key() {
        assert!(within("mail.google.com", "google.com"));
        assert!(within("google.com", "google.com"));
        assert!(!within("notgoogle.com", "google.com"));
        assert!(!within("google.com", ""));
        // Byte arithmetic on non-ASCII domains must not split a character.
        assert!(!within("mächine.example", "box.com"));
        assert!(!within("ä.box.com", "ä"));
        assert!(within("mail.例え.jp", "XN--R8JZ45G.JP"));
        assert!(within("mail.xn--r8jz45g.jp.", "例え。jp"));
    }

    #[test]
    fn known_suffixes_by_key() {
        assert!(has_known_suffix("co.jp") && !is_under_known_suffix("co.jp"));
        assert!(is_under_known_suffix("mail.例え.jp"));
        assert!(is_under_known_suffix("EXAMPLE.XN--P1AI."));
        assert!(is_under_known_suffix("пример.рф"));
        assert!(!has_known_suffix("x.example"));
        assert!(!has_known_suffix("xn--zz.com"));
    }

    #[test]
    fn free_mail_by_key() {
        assert!(is_freemail("ＧＭＡＩＬ．ＣＯＭ", &[]));
        assert!(is_freemail("mail.gmail.com.", &[]));
        assert!(is_freemail("xn--r8jz45g.jp", &["例え.jp".to_string()]));
        assert!(!is_freemail("xn--zz.gmail.com", &[]), "no valid domain");
        assert!(!is_freemail("gmai1.com", &[]));
    }

    #[test]
    fn addresses_by_key() {
        assert_eq!(address_key(" <Taro@例え.JP> "), "taro@xn--r8jz45g.jp");
        assert_eq!(address_key("taro@xn--r8jz45g.jp."), "taro@xn--r8jz45g.jp");
        assert_eq!(address_key("no-at"), "no-at");
    }

    #[test]
    fn evidence_keeps_the_domain_as_written() {
        assert_eq!(registrable_as_written("Mail.例え.JP."), "例え.jp");
        assert_eq!(
            registrable_as_written("mail.xn--r8jz45g.jp"),
            "xn--r8jz45g.jp"
        );
        assert_eq!(registrable_as_written("mail.例え\u{3002}jp"), "例え.jp");
        assert_eq!(
            registrable_as_written("a.b.example.org.uk"),
            "example.org.uk"
        );
        assert_eq!(unicode("xn--r8jz45g.jp"), "例え.jp");
    }

    #[test]
    fn the_organisation_in_any_form_free_mail_never() {
        let org = OrgDomains::new(
            &[
                " @例え.jp ".to_string(),
                "legal-holdings.co.jp".to_string(),
                "gmail.com".to_string(),
                "mail.mine.example".to_string(),
                "mine.example".to_string(),
                String::new(),
            ],
            &["mine.example".to_string()],
        );
        assert!(org.contains("xn--r8jz45g.jp"));
        assert!(org.contains("mail.例え.jp"));
        assert!(org.contains("LEGAL-HOLDINGS.CO.JP."));
        assert!(!org.contains("gmail.com"), "free mail is never ours");
        assert!(
            !org.contains("mine.example"),
            "nor an extra free-mail domain"
        );
        assert!(!org.contains("ex\u{0430}mple.jp"));
        assert!(!org.contains("xn--zz.legal-holdings.co.jp"));
        assert!(org.same_org("例え.jp", "legal-holdings.co.jp"));
        assert!(!org.same_org("gmail.com", "legal-holdings.co.jp"));
        assert!(org.covers("mail.xn--r8jz45g.jp"));
        assert_eq!(org.shown(), ["例え.jp", "legal-holdings.co.jp"]);
        assert_eq!(
            org.registrable_domains(),
            [
                ("xn--r8jz45g.jp", "例え.jp"),
                ("legal-holdings.co.jp", "legal-holdings.co.jp")
            ]
        );
        assert!(!OrgDomains::EMPTY.contains("example.com"));
    }
}
