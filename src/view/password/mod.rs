//! Passwords for encrypted archives, as senders write them beside the
//! archive: the [`miner`] finds candidates in the subject and text parts.

pub mod miner;

pub use miner::{mine, Candidate, MinerInput};

use crate::config::EncryptedArchiveConfig;
use crate::view::MessageView;

/// The candidates of a built message: its subject, every text part and the
/// names of every archive in it. (The view builder mines the same way, from
/// what it has read when it meets the first encrypted entry.)
pub fn candidates(view: &MessageView, config: &EncryptedArchiveConfig) -> Vec<Candidate> {
    mine(&MinerInput {
        subject: &view.subject,
        texts: view
            .texts
            .iter()
            .map(|t| (t.location.as_str(), t.text.as_str()))
            .collect(),
        archive_names: view
            .attachments
            .iter()
            .filter(|a| a.file_type.is_archive() || a.file_type.is_zip_based())
            .filter_map(|a| a.name.as_deref())
            .collect(),
        max_candidates: config.max_candidates,
        max_text_bytes: config.max_text_bytes,
    })
}

/// `first char + asterisks`: evidence shows that a password was found and
/// where, without repeating it in headers and logs.
pub fn mask(password: &str) -> String {
    // A fixed-length mask hides the length too; a short password shows
    // nothing at all (its first character would be most of it).
    let mut chars = password.chars();
    match (chars.next(), password.chars().count()) {
        (_, 0) => String::new(),
        (Some(first), n) if n >= 4 => format!("{first}****"),
        _ => "****".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_length_and_all_but_the_first_character() {
        assert_eq!(super::mask("ab123"), "a****");
        assert_eq!(super::mask("ab12345678"), "a****");
        assert_eq!(super::mask("s"), "****");
        assert_eq!(super::mask("パス1"), "****");
        assert_eq!(super::mask("パスワード1"), "パ****");
        assert_eq!(super::mask(""), "");
    }
}
