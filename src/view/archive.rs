//! Opening zip archives into the attachment tree, within limits: depth,
//! entries, bytes inflated per entry and per message, inflation ratio, time.
//! Encrypted entries are recorded so `encrypted_archive` can report them.

use std::io::{Cursor, Read};

use bytes::Bytes;

use super::{Builder, Origin};

/// How a zip entry is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionMethod {
    /// The traditional PKWARE stream cipher ("ZipCrypto").
    ZipCrypto,
    /// WinZip AES (compression method 99).
    Aes,
    /// PKWARE strong encryption (general purpose flag bit 6).
    PkwareStrong,
}

impl EncryptionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionMethod::ZipCrypto => "ZipCrypto",
            EncryptionMethod::Aes => "AES",
            EncryptionMethod::PkwareStrong => "PKWARE strong encryption",
        }
    }
}

/// One encrypted entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedEntry {
    pub name: String,
    pub method: EncryptionMethod,
}

/// What the walk learnt about an archive node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Entries listed in the central directory.
    pub entry_count: usize,
    /// Entries that were encrypted.
    pub encrypted: Vec<EncryptedEntry>,
    /// Set when the archive's central directory could not be read.
    pub error: Option<String>,
}

/// Strong encryption: general purpose bit 6 (with bit 0).
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;

/// List the entries of the zip at node `id` and add each readable entry as a
/// child node, within the builder's limits.
pub(crate) fn open_zip(builder: &mut Builder<'_>, id: usize) {
    let data = builder.attachments[id].data.clone();
    let path = builder.attachments[id].path.clone();
    let depth = builder.attachments[id].depth + 1;
    let mut archive = match zip::ZipArchive::new(Cursor::new(&data[..])) {
        Ok(a) => a,
        Err(e) => {
            builder.attachments[id].archive = Some(ArchiveInfo {
                error: Some(format!("unreadable zip: {e}")),
                ..ArchiveInfo::default()
            });
            return;
        }
    };
    let mut info = ArchiveInfo {
        entry_count: archive.len(),
        ..ArchiveInfo::default()
    };
    for index in 0..archive.len() {
        if builder.out_of_time() {
            break;
        }
        builder.entries_seen += 1;
        if builder.entries_seen > builder.limits.max_archive_entries {
            builder.note_limit(
                "limits.max_archive_entries",
                format!(
                    "{path}: more than {} archive entries in the message",
                    builder.limits.max_archive_entries
                ),
            );
            break;
        }
        let Ok(entry) = archive.by_index_raw(index) else {
            continue;
        };
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("entry{index}"));
        let declared_size = entry.size();
        let compressed = entry.compressed_size();
        if entry.encrypted() {
            let method = if entry.flags().as_u16() & FLAG_STRONG_ENCRYPTION != 0 {
                EncryptionMethod::PkwareStrong
            } else if entry.compression() == zip::CompressionMethod::Aes {
                EncryptionMethod::Aes
            } else {
                EncryptionMethod::ZipCrypto
            };
            info.encrypted.push(EncryptedEntry { name, method });
            continue;
        }
        drop(entry);
        let Some(cap) = entry_cap(builder, &path, &name, declared_size, compressed) else {
            continue;
        };
        let mut content = Vec::new();
        let read = archive
            .by_index(index)
            .and_then(|file| Ok(file.take(cap + 1).read_to_end(&mut content)?));
        match read {
            Ok(_) if content.len() as u64 > cap => {
                // The header lied about the size: a bomb in disguise.
                builder.note_limit(
                    "limits.max_inflated_bytes",
                    format!("{path}/{name}: inflates past {cap} bytes; not scanned"),
                );
                builder.bytes_inflated += cap;
            }
            Ok(_) => {
                builder.bytes_inflated += content.len() as u64;
                builder.add_node(
                    Some(id),
                    &path,
                    Some(name),
                    None,
                    Bytes::from(content),
                    Origin::ArchiveEntry,
                    depth,
                );
            }
            Err(e) => {
                info.error.get_or_insert_with(|| format!("{name}: {e}"));
            }
        }
    }
    builder.attachments[id].archive = Some(info);
}

/// How many bytes this entry may inflate to, or None (with a limit noted)
/// when it must be skipped.
fn entry_cap(
    builder: &mut Builder<'_>,
    path: &str,
    name: &str,
    declared: u64,
    compressed: u64,
) -> Option<u64> {
    let limits = builder.limits;
    let budget_left = limits
        .max_inflated_bytes
        .saturating_sub(builder.bytes_inflated);
    if budget_left == 0 {
        builder.note_limit(
            "limits.max_inflated_bytes",
            format!(
                "{path}: more than {} bytes inflated in the message",
                limits.max_inflated_bytes
            ),
        );
        return None;
    }
    if declared > limits.max_entry_bytes {
        builder.note_limit(
            "limits.max_entry_bytes",
            format!(
                "{path}/{name}: {declared} bytes, over {}",
                limits.max_entry_bytes
            ),
        );
        return None;
    }
    // Ratios only matter for entries big enough to hurt.
    let ratio_cap = compressed
        .saturating_mul(limits.max_inflation_ratio)
        .max(1 << 20);
    if declared > ratio_cap {
        builder.note_limit(
            "limits.max_inflation_ratio",
            format!(
                "{path}/{name}: {compressed} bytes inflate to {declared}, over ratio {}",
                limits.max_inflation_ratio
            ),
        );
        return None;
    }
    Some(limits.max_entry_bytes.min(budget_left).min(ratio_cap))
}
