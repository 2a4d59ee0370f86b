//! Passwords for encrypted archives, as senders write them beside the
//! archive: the [`miner`] finds candidates in the subject and text parts.

pub mod miner;

pub use miner::{mine, Candidate, MinerInput};

/// `first char + asterisks`: evidence shows that a password was found and
/// where, without repeating it in headers and logs.
pub fn mask(password: &str) -> String {
    let mut chars = password.chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count();
            format!("{first}{}", "*".repeat(rest))
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_all_but_the_first_character() {
        assert_eq!(super::mask("ab123"), "a****");
        assert_eq!(super::mask("s"), "s");
        assert_eq!(super::mask("パス1"), "パ**");
        assert_eq!(super::mask(""), "");
    }
}
