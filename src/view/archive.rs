//! Opening zip archives into the attachment tree, within limits: depth,
//! entries, bytes inflated per entry and per message, inflation ratio, time.
//! Encrypted entries are recorded so `encrypted_archive` can report them, and
//! handed to [`super::decrypt`], which tries the mail's password candidates.

use std::io::{Cursor, Read};

use bytes::Bytes;
use zip::ZipReadOptions;

use super::decrypt::{self, LockedEntry};
use super::password::Candidate;
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
    /// A 7z archive's AES-256.
    SevenZipAes,
    /// RAR's own encryption (never opened here).
    Rar,
    /// An encrypted Office document (RC4, CryptoAPI, ECMA-376).
    OfficeDocument,
}

impl EncryptionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionMethod::ZipCrypto => "ZipCrypto",
            EncryptionMethod::Aes => "AES",
            EncryptionMethod::PkwareStrong => "PKWARE strong encryption",
            EncryptionMethod::SevenZipAes => "7z AES-256",
            EncryptionMethod::Rar => "RAR encryption",
            EncryptionMethod::OfficeDocument => "Office document encryption",
        }
    }
}

/// What became of an encrypted entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Not opened: no password from the mail fitted (or the method cannot
    /// be opened, or a limit stopped the attempt).
    Locked,
    /// Opened with a password from the mail; its content is a child node
    /// with `decrypted = true`.
    Decrypted,
    /// The encryption flag is set but the data is stored in the clear (a
    /// trick against scanners that skip encrypted entries); read as plain.
    FlagOnly,
}

/// One encrypted entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedEntry {
    pub name: String,
    pub method: EncryptionMethod,
    pub state: EntryState,
}

/// What the walk learnt about an archive node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Entries listed in the central directory.
    pub entry_count: usize,
    /// Entries that were encrypted.
    pub encrypted: Vec<EncryptedEntry>,
    /// The password candidates from the mail that opened entries, first
    /// winner first.
    pub passwords: Vec<Candidate>,
    /// Set when the archive's central directory could not be read.
    pub error: Option<String>,
}

/// Strong encryption: general purpose bit 6 (with bit 0).
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;

/// Parts every Office package (OOXML) or OpenDocument file has, read by
/// the document parsers rather than as attachments of their own: XML and
/// relationship parts, the package's own metadata, the VBA project, media
/// and embedded objects. Whatever else a "document" zip holds (an
/// `invoice.doc`, an `.exe`, any encrypted entry) is an attachment: a zip
/// does not stop being an archive because it also holds a `mimetype` or a
/// `[Content_Types].xml` entry.
fn is_package_part(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    lower == "mimetype"
        || base.ends_with(".xml")
        || base.ends_with(".rels")
        || base == "vbaproject.bin"
        || [
            "_rels/",
            "docprops/",
            "meta-inf/",
            "thumbnails/",
            "customxml/",
        ]
        .iter()
        .any(|p| lower.starts_with(p))
        || [
            "/media/",
            "/embeddings/",
            "/activex/",
            "/printersettings/",
            "/fonts/",
            "/theme/",
        ]
        .iter()
        .any(|p| lower.contains(p))
        || lower.starts_with("pictures/")
}

/// List the entries of the zip at node `id` and add each readable entry as a
/// child node, within the builder's limits. For an Office package or
/// OpenDocument file (`package`), its own parts are left to the document
/// parsers and only foreign entries are added.
pub(crate) fn open_zip(builder: &mut Builder<'_>, id: usize, package: bool) {
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
    // Entries sharing compressed bytes (Fifield's "better zip bomb") inflate
    // the same data once per entry. No archiver writes them: do not open.
    if archive.has_overlapping_entries().unwrap_or(true) {
        builder.note_limit(
            "limits.max_inflated_bytes",
            format!("{path}: entries overlap (a zip-bomb construction); not opened"),
        );
        info.error = Some("entries overlap".to_string());
        builder.attachments[id].archive = Some(info);
        return;
    }
    let mut locked = Vec::new();
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
        // A document's own parts, unless encrypted: no package encrypts a part.
        if package && !entry.encrypted() && is_package_part(&name) {
            continue;
        }
        let declared_size = entry.size();
        let compressed = entry.compressed_size();
        if entry.encrypted() {
            let method = if entry.flags().as_u16() & FLAG_STRONG_ENCRYPTION != 0 {
                EncryptionMethod::PkwareStrong
            } else if entry.compression() == zip::CompressionMethod::Aes
                || entry
                    .extra_data_fields()
                    .any(|f| matches!(f, zip::ExtraField::AeXEncryption(_)))
            {
                EncryptionMethod::Aes
            } else {
                EncryptionMethod::ZipCrypto
            };
            locked.push(LockedEntry {
                index,
                slot: info.encrypted.len(),
                name: name.clone(),
                declared: declared_size,
                compressed,
                method,
            });
            info.encrypted.push(EncryptedEntry {
                name,
                method,
                state: EntryState::Locked,
            });
            continue;
        }
        drop(entry);
        let Some(cap) = entry_cap(builder, &path, &name, declared_size, compressed) else {
            continue;
        };
        match read_entry(&mut archive, index, ZipReadOptions::new(), cap) {
            Ok(content) => {
                builder.budget.charge(content.len() as u64);
                add_entry(builder, id, &path, name, content, depth, false);
            }
            Err(ReadError::TooBig) => note_too_big(builder, &path, &name, cap),
            Err(ReadError::LargerThanDeclared) => {
                note_larger_than_declared(builder, &path, &name, declared_size)
            }
            Err(ReadError::WrongPassword) => {}
            Err(ReadError::Broken(e)) => {
                info.error.get_or_insert_with(|| format!("{name}: {e}"));
            }
        }
    }
    if !locked.is_empty() {
        decrypt::open_encrypted(builder, id, &mut archive, &mut info, &locked);
    }
    builder.attachments[id].archive = Some(info);
}

/// Why an entry's content could not be read.
pub(crate) enum ReadError {
    /// It inflates past its cap: the header lied about the size.
    TooBig,
    /// It inflates past the size its headers declare (the zip crate stops
    /// reading there): a bomb in disguise.
    LargerThanDeclared,
    /// The password check failed (ZipCrypto check byte, AES verifier).
    WrongPassword,
    /// Damaged data, or a wrong password that passed the quick check and
    /// then failed the CRC or AES authentication.
    Broken(String),
}

/// Read entry `index` whole, at most `cap` bytes, with the CRC (and for AES
/// the authentication code) checked when the end is reached.
pub(crate) fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    index: usize,
    options: ZipReadOptions<'_>,
    cap: u64,
) -> Result<Vec<u8>, ReadError> {
    let mut content = Vec::new();
    let file = match archive.by_index_with_options(index, options) {
        Ok(file) => file,
        Err(zip::result::ZipError::InvalidPassword) => return Err(ReadError::WrongPassword),
        Err(e) => return Err(ReadError::Broken(e.to_string())),
    };
    match file.take(cap + 1).read_to_end(&mut content) {
        Ok(_) if content.len() as u64 > cap => Err(ReadError::TooBig),
        Ok(_) => Ok(content),
        // The zip crate's own size check (crc32.rs); no error kind of its
        // own, so the message tells it from a bad checksum.
        Err(e) if e.to_string().contains("larger than its declared") => {
            Err(ReadError::LargerThanDeclared)
        }
        Err(e) => Err(ReadError::Broken(e.to_string())),
    }
}

/// Add a read entry under its archive (its bytes are already charged to
/// the message's budget by whoever read them).
pub(crate) fn add_entry(
    builder: &mut Builder<'_>,
    archive_id: usize,
    path: &str,
    name: String,
    content: Vec<u8>,
    depth: usize,
    decrypted: bool,
) {
    let child = builder.add_node(
        Some(archive_id),
        path,
        Some(name),
        None,
        Bytes::from(content),
        Origin::ArchiveEntry,
        depth,
    );
    builder.attachments[child].decrypted = decrypted;
}

/// The header lied about the size: a bomb in disguise. Count the cap as spent.
pub(crate) fn note_too_big(builder: &mut Builder<'_>, path: &str, name: &str, cap: u64) {
    builder.note_limit(
        "limits.max_inflated_bytes",
        format!("{path}/{name}: inflates past {cap} bytes; not scanned"),
    );
    builder.budget.charge(cap);
}

/// The headers understated the size; what was read counts as spent.
pub(crate) fn note_larger_than_declared(
    builder: &mut Builder<'_>,
    path: &str,
    name: &str,
    declared: u64,
) {
    builder.note_limit(
        "limits.max_entry_bytes",
        format!("{path}/{name}: inflates past its declared {declared} bytes; not scanned"),
    );
    builder.budget.charge(declared);
}

/// How many bytes this entry may inflate to, or None (with a limit noted)
/// when it must be skipped.
pub(crate) fn entry_cap(
    builder: &mut Builder<'_>,
    path: &str,
    name: &str,
    declared: u64,
    compressed: u64,
) -> Option<u64> {
    let limits = builder.limits;
    let budget_left = builder.budget.bytes_left();
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
