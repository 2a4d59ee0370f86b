//! Domains compared the way people read them: by registrable domain
//! (public suffix list), so mail.example.co.jp belongs to example.co.jp.

/// The registrable domain ("eTLD+1") of a host or address domain, lower-cased.
/// Falls back to the whole domain when the suffix list does not know it
/// (e.g. `localhost`, single labels).
pub fn registrable(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('.').to_lowercase();
    match psl::domain_str(&d) {
        Some(r) => r.to_string(),
        None => d,
    }
}

/// True when both domains have the same registrable domain.
pub fn same_organization(a: &str, b: &str) -> bool {
    registrable(a) == registrable(b)
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
}
