//! Addresses as detectors need them: display name, address, domain.

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
}
