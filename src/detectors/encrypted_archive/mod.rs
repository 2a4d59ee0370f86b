//! `encrypted_archive`: encrypted archives, and whether the mail carries
//! their password. The message view does the opening (it mines password
//! candidates from the subject and text and tries them on encrypted zip
//! entries, see `view::decrypt`); this detector reports what happened.

/// The section lives with the rest of the config (the view reads it too).
pub use crate::config::EncryptedArchiveConfig;

pub mod formats;

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::password;
use crate::view::{Attachment, EncryptionMethod, EntryState, FileType, MessageView};

use formats::HeaderEncryption;

pub const NAME: &str = "encrypted_archive";

pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "password_in_body",
        description: "An encrypted archive opened with a password written in the same mail (subject or text); its content went through every detector. Honest senders send the password separately; attackers write it beside the archive so gateway antivirus cannot look inside",
        default_score: 6.0,
    },
    RuleInfo {
        name: "locked",
        description: "An encrypted archive that no password from the mail opens: zip entries (ZipCrypto, AES, PKWARE strong encryption), or 7z/RAR flagged encrypted in their headers. Honest Japanese senders do this (PPAP), so it is weak alone",
        default_score: 2.0,
    },
    RuleInfo {
        name: "password_for_unopenable",
        description: "An encrypted archive we cannot open (7z, RAR, PKWARE strong encryption, encrypted zip directory) with a password written in the same mail",
        default_score: 3.0,
    },
];

pub struct EncryptedArchive {
    config: EncryptedArchiveConfig,
}

impl EncryptedArchive {
    pub fn new(config: &EncryptedArchiveConfig) -> Self {
        EncryptedArchive {
            config: config.clone(),
        }
    }
}

/// An encrypted archive this detector cannot open, and why it says so.
struct Unopenable<'a> {
    node: &'a Attachment,
    what: String,
}

impl Detector for EncryptedArchive {
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
        let mut unopenable = Vec::new();
        for node in &message.attachments {
            // A 7z opened with the mail's password is judged like a zip
            // (below); one that stayed locked by its headers.
            let opened = node
                .archive
                .as_ref()
                .is_some_and(|a| !a.passwords.is_empty());
            match node.file_type {
                FileType::SevenZip | FileType::Rar if !opened => {
                    let (format, found) = if node.file_type == FileType::Rar {
                        ("RAR", formats::rar(&node.data))
                    } else {
                        ("7z", formats::seven_zip(&node.data))
                    };
                    if let Some(enc) = found {
                        let what = match enc {
                            HeaderEncryption::Headers => {
                                format!("{format} with encrypted headers (file names hidden)")
                            }
                            HeaderEncryption::Content => format!("{format} with encrypted content"),
                        };
                        unopenable.push(Unopenable { node, what });
                    }
                    continue;
                }
                _ => {}
            }
            let Some(info) = &node.archive else {
                continue;
            };
            if info.entry_count == 0
                && info.error.is_some()
                && formats::zip_local_header_encrypted(&node.data)
            {
                unopenable.push(Unopenable {
                    node,
                    what: "zip with an encrypted central directory".into(),
                });
                continue;
            }
            let total = info.encrypted.len();
            let locked: Vec<_> = info
                .encrypted
                .iter()
                .filter(|e| e.state == EntryState::Locked)
                .collect();
            if let Some(first) = info.passwords.first() {
                let opened = info
                    .encrypted
                    .iter()
                    .filter(|e| e.state == EntryState::Decrypted)
                    .count();
                hits.push(Hit::new(
                    "password_in_body",
                    format!(
                        "{}: opened with the password from {} ({}); {opened} of {total} encrypted entries decrypted",
                        node.path,
                        first.found,
                        password::mask(&first.password)
                    ),
                ));
                continue;
            }
            if locked.is_empty() {
                continue;
            }
            let strong_only = locked
                .iter()
                .all(|e| e.method == EncryptionMethod::PkwareStrong);
            let mut methods: Vec<&str> = locked.iter().map(|e| e.method.as_str()).collect();
            methods.dedup();
            let what = format!(
                "{} of {} entries encrypted ({})",
                locked.len(),
                info.entry_count,
                methods.join(", ")
            );
            if strong_only {
                unopenable.push(Unopenable { node, what });
            } else {
                hits.push(Hit::new(
                    "locked",
                    format!("{}: {what}; no password in this mail opens it", node.path),
                ));
            }
        }
        if unopenable.is_empty() {
            return Ok(());
        }
        let candidates = password::candidates(message, &self.config);
        for u in unopenable {
            hits.push(Hit::new(
                "locked",
                format!("{}: {}; not opened", u.node.path, u.what),
            ));
            if let Some(c) = candidates.first() {
                hits.push(Hit::new(
                    "password_for_unopenable",
                    format!(
                        "{}: {}; a password is written in {} ({})",
                        u.node.path,
                        u.what,
                        c.found,
                        password::mask(&c.password)
                    ),
                ));
            }
        }
        Ok(())
    }
}
