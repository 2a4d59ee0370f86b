//! Files that hold other files, opened by the parsers of [`crate::formats`]:
//! RTF objects, OneNote embedded files, disk images, 7z and RAR archives,
//! HTML that smuggles a file, shortcuts, objects embedded in Office
//! documents, encrypted Office documents. What a parser finds inside goes
//! back into the attachment tree as children (so every detector sees them,
//! typed by their bytes); what it observes is kept on the node as
//! indicators for the `payload` detector.

use crate::config::FormatsConfig;
use crate::formats::{self, Budget, Opened, Passwords};

use super::archive::{ArchiveInfo, EncryptedEntry, EncryptionMethod, EntryState};
use super::{Builder, FileType, Origin};

/// The parsers that read a kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Rtf,
    OneNote,
    DiskImage,
    SevenZip,
    Rar,
    Lnk,
    OleObjects,
    OfficeCrypto,
    Ooxml,
    Html,
    Pdf,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Rtf => "rtf",
            Format::OneNote => "onenote",
            Format::DiskImage => "disk_image",
            Format::SevenZip => "7z",
            Format::Rar => "rar",
            Format::Lnk => "lnk",
            Format::OleObjects => "ole_objects",
            Format::OfficeCrypto => "office_crypto",
            Format::Ooxml => "ooxml",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }

    /// Run the parser with its `[formats]` bounds.
    fn open(
        self,
        data: &[u8],
        budget: &Budget,
        passwords: Passwords<'_>,
        config: &FormatsConfig,
    ) -> Opened {
        match self {
            Format::Rtf => formats::rtf::open_with(data, budget, &config.rtf),
            Format::OneNote => formats::onenote::open(data, budget, passwords),
            Format::DiskImage => formats::disk_image::open_with(data, budget, config.disk_image),
            Format::SevenZip => formats::sevenz::open_with(data, budget, passwords, config.sevenz),
            Format::Rar => formats::rar::open_with(data, budget, config.rar),
            Format::Lnk => formats::lnk::open(data, budget, passwords),
            Format::OleObjects => {
                formats::ole_objects::open_with(data, budget, &config.ole_objects)
            }
            Format::OfficeCrypto => {
                formats::office_crypto::open_with(data, budget, passwords, config.office_crypto)
            }
            Format::Ooxml => formats::ooxml::open_with(data, budget, &config.ooxml),
            Format::Html => formats::html::open(data, budget, passwords),
            Format::Pdf => formats::pdf::open(data, budget, passwords),
        }
    }
}

/// The parsers that apply to a node of this type and content, in order.
fn openers_for(file_type: FileType, data: &[u8]) -> Vec<Format> {
    let mut out = Vec::new();
    match file_type {
        FileType::Rtf => out.push(Format::Rtf),
        FileType::OneNote => out.push(Format::OneNote),
        FileType::Iso => out.push(Format::DiskImage),
        FileType::SevenZip => out.push(Format::SevenZip),
        FileType::Rar => out.push(Format::Rar),
        FileType::Lnk => out.push(Format::Lnk),
        FileType::Ole2 => {
            out.push(Format::OleObjects);
            if formats::office_crypto::sniff(data) {
                out.push(Format::OfficeCrypto);
            }
        }
        FileType::Ooxml => out.push(Format::Ooxml),
        FileType::Html | FileType::Text if formats::html::sniff(data) => out.push(Format::Html),
        FileType::Pdf => out.push(Format::Pdf),
        FileType::Unknown => {
            if formats::disk_image::sniff(data) {
                out.push(Format::DiskImage);
            }
            // A OneNote section with its first bytes cut off still opens.
            if formats::onenote::sniff(data) {
                out.push(Format::OneNote);
            }
        }
        _ => {}
    }
    // An RTF whose header is broken on purpose is not typed Rtf by magic.
    if file_type != FileType::Rtf && formats::rtf::sniff(data) {
        out.push(Format::Rtf);
    }
    out
}

/// True when some opener applies to this node.
pub(crate) fn has_opener(file_type: FileType, data: &[u8]) -> bool {
    !openers_for(file_type, data).is_empty()
}

/// Run every opener that applies to node `id` and put what they found into
/// the tree.
pub(crate) fn open_formats(builder: &mut Builder<'_>, id: usize) {
    let data = builder.attachments[id].data.clone();
    let file_type = builder.attachments[id].file_type;
    let path = builder.attachments[id].path.clone();
    let depth = builder.attachments[id].depth + 1;
    let candidates = if matches!(
        file_type,
        FileType::SevenZip | FileType::Rar | FileType::Ole2
    ) {
        builder.password_candidates()
    } else {
        std::sync::Arc::from([])
    };
    let passwords: Vec<String> = candidates.iter().map(|c| c.password.clone()).collect();
    let attempts_left = builder
        .passwords
        .max_attempts
        .saturating_sub(builder.password_attempts);
    for format in openers_for(file_type, &data) {
        if builder.out_of_time() {
            return;
        }
        let opened = format.open(
            &data,
            builder.budget,
            Passwords {
                candidates: &passwords,
                max_attempts: attempts_left,
            },
            builder.formats,
        );
        let format = format.name();
        for why in &opened.limits {
            // office_macro reports an unreadable compound file itself
            // (scan.error); one report of it is enough.
            if format == "ole_objects" && why.starts_with("not a readable OLE2 file") {
                continue;
            }
            builder.note_limit("limits.formats", format!("{path}: {format}: {why}"));
        }
        if !opened.encrypted.is_empty() {
            record_encrypted(builder, id, file_type, &opened, &candidates);
        }
        builder.attachments[id]
            .indicators
            .extend(opened.indicators.iter().cloned());
        for embedded in opened.embedded {
            builder.entries_seen += 1;
            if builder.entries_seen > builder.limits.max_archive_entries {
                builder.note_limit(
                    "limits.max_archive_entries",
                    format!(
                        "{path}: more than {} archive entries and embedded files in the message",
                        builder.limits.max_archive_entries
                    ),
                );
                break;
            }
            let child = builder.add_node(
                Some(id),
                &path,
                embedded.name.clone(),
                None,
                embedded.data.clone(),
                Origin::Embedded(embedded.how),
                depth,
            );
            builder.attachments[child].decrypted = embedded.decrypted;
            builder.attachments[child].declared_size = embedded.declared_size;
        }
    }
}

/// Encrypted items a parser met: recorded like a zip's, so
/// `encrypted_archive` judges a 7z opened with the body's password as it
/// judges a zip.
fn record_encrypted(
    builder: &mut Builder<'_>,
    id: usize,
    file_type: FileType,
    opened: &Opened,
    candidates: &[super::password::Candidate],
) {
    let method = match file_type {
        FileType::SevenZip => EncryptionMethod::SevenZipAes,
        FileType::Rar => EncryptionMethod::Rar,
        _ => EncryptionMethod::OfficeDocument,
    };
    let by_candidate = |item: &formats::EncryptedItem| {
        item.opened_with
            .as_ref()
            .and_then(|p| candidates.iter().find(|c| &c.password == p))
    };
    // An encrypted document is office_macro.encrypted_document's to
    // report; here it counts only when the mail's password opened it.
    let items: Vec<&formats::EncryptedItem> = opened
        .encrypted
        .iter()
        .filter(|item| method != EncryptionMethod::OfficeDocument || by_candidate(item).is_some())
        .collect();
    if items.is_empty() {
        return;
    }
    let info = builder.attachments[id]
        .archive
        .get_or_insert_with(ArchiveInfo::default);
    info.entry_count = info.entry_count.max(items.len());
    for item in items {
        let state = if item.opened_with.is_some() {
            EntryState::Decrypted
        } else {
            EntryState::Locked
        };
        info.encrypted.push(EncryptedEntry {
            name: item.name.clone(),
            method,
            state,
        });
        if let Some(c) = by_candidate(item) {
            if !info.passwords.iter().any(|p| p.password == c.password) {
                info.passwords.push(c.clone());
            }
        }
    }
}
