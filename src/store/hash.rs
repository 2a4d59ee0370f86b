//! Hashes for values the store only compares (addresses, names, subjects,
//! Message-IDs). A stolen store file then does not list who wrote to whom
//! in clear; it does not stop someone from testing a guessed address, which
//! is fine: the point is to keep the file from being an address book.
//!
//! The hash is SHA-256 over `kind`, a NUL and the value, truncated to 128
//! bits and written in hex. There is no per-install salt on purpose: hosts
//! sharing one Redis, and `learn` and the daemon, must agree on every hash
//! without sharing a secret.

use sha2::{Digest, Sha256};

/// The hex digest of `value` in the namespace `kind` (`addr`, `name`, ...).
pub fn digest(kind: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0u8]);
    h.update(value.as_bytes());
    let out = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(32);
    for b in &out[..16] {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 0xf)] as char);
    }
    hex
}

/// The hash of an address by its key ([`crate::domains::address_key`]):
/// case-folded (the local part is case-sensitive in theory, never in
/// practice), the domain in its IDNA form, so `taro@例え.jp` and
/// `taro@xn--r8jz45g.jp` are one address.
pub fn address(addr: &str) -> String {
    digest("addr", &crate::domains::address_key(addr))
}

/// The hash of a Message-ID, without angle brackets or surrounding space.
pub fn message_id(id: &str) -> String {
    digest("msgid", id.trim().trim_matches(['<', '>']).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_and_separated_by_kind() {
        assert_eq!(digest("addr", "a@b.example").len(), 32);
        assert_eq!(address("A@B.example"), address(" <a@b.example> "));
        assert_eq!(address("taro@例え.jp"), address("Taro@XN--R8JZ45G.JP."));
        assert_ne!(
            address("taro@ex\u{0430}mple.jp"),
            address("taro@example.jp")
        );
        assert_ne!(digest("addr", "x"), digest("name", "x"));
        assert_eq!(message_id("<x@y>"), message_id("x@y"));
        // Pinned so that a change of algorithm (which would orphan every
        // stored record) cannot go unnoticed.
        assert_eq!(address("a@b.example"), "e6c4370e142bb1077a540c79d4dc4606");
    }
}
