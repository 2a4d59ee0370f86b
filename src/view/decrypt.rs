//! Opening encrypted zip entries with passwords written in the same mail.
//!
//! The candidates are mined once per message, when the first encrypted entry
//! is met (the whole text of the top message is read by then). Each candidate
//! is tried on the archive's smallest encrypted entry: a wrong guess usually
//! fails the cheap check (ZipCrypto check byte, AES verifier) and costs one
//! attempt; a guess that passes is confirmed by reading that entry in full
//! with its CRC (and for AES its authentication code) checked, which rules
//! out the 1-in-256 false accepts of ZipCrypto. The winning password then
//! opens the other entries (other candidates are tried on an entry it does
//! not fit). Decrypted entries become child nodes with `decrypted = true`
//! and count against `[limits]` like any entry, so a bomb inside an
//! encrypted zip is bounded the same way.
//!
//! PKWARE strong encryption is not supported by the zip crate: such entries
//! stay locked. An entry whose encryption flag is set over plain data is
//! read as plain (state `FlagOnly`).

use std::io::Cursor;
use std::time::{Duration, Instant};

use zip::ZipReadOptions;

use super::archive::{
    add_entry, entry_cap, note_too_big, read_entry, ArchiveInfo, EncryptionMethod, EntryState,
    ReadError,
};
use super::password::Candidate;
use super::Builder;

/// An encrypted entry waiting for a password.
pub(crate) struct LockedEntry {
    /// Index in the zip's central directory.
    pub index: usize,
    /// Index in `ArchiveInfo::encrypted`.
    pub slot: usize,
    pub name: String,
    pub declared: u64,
    pub compressed: u64,
    pub method: EncryptionMethod,
}

type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Why trying passwords stopped early.
enum Stop {
    Attempts,
    Time,
}

/// Try the mail's password candidates on the locked entries of the zip at
/// node `id`; add what opens as children and record it in `info`.
pub(crate) fn open_encrypted(
    builder: &mut Builder<'_>,
    id: usize,
    archive: &mut Zip<'_>,
    info: &mut ArchiveInfo,
    locked: &[LockedEntry],
) {
    let mut openable: Vec<&LockedEntry> = locked
        .iter()
        .filter(|e| e.method != EncryptionMethod::PkwareStrong)
        .collect();
    if openable.is_empty() {
        return;
    }
    // The smallest entry is the cheapest to confirm a guess on.
    openable.sort_by_key(|e| (e.declared, e.index));
    let candidates = builder.password_candidates();
    let per_archive = Duration::from_secs(builder.passwords.max_seconds_per_archive);
    let deadline = builder.budget.deadline().min(Instant::now() + per_archive);
    let path = builder.attachments[id].path.clone();
    let depth = builder.attachments[id].depth + 1;

    let mut winners: Vec<usize> = Vec::new();
    let mut opened: Vec<(&LockedEntry, Vec<u8>)> = Vec::new();
    for (n, entry) in openable.iter().enumerate() {
        // Until a password has opened the first entry, the others wait:
        // one entry is enough to tell whether the mail holds the password.
        if n > 0 && winners.is_empty() {
            break;
        }
        let order: Vec<usize> = winners
            .iter()
            .copied()
            .chain((0..candidates.len()).filter(|i| !winners.contains(i)))
            .collect();
        match try_candidates(
            builder,
            archive,
            &path,
            entry,
            &candidates,
            &order,
            deadline,
        ) {
            Ok(Some((winner, content))) => {
                if !winners.contains(&winner) {
                    winners.push(winner);
                    info.passwords.push(candidates[winner].clone());
                }
                info.encrypted[entry.slot].state = EntryState::Decrypted;
                builder.bytes_decrypted += content.len() as u64;
                // Counted now, so the next entry's cap sees it.
                builder.budget.charge(content.len() as u64);
                opened.push((entry, content));
            }
            Ok(None) => {}
            Err(Stop::Attempts) => {
                builder.note_limit(
                    "encrypted_archive.max_attempts",
                    format!(
                        "{path}: more than {} password attempts in the message",
                        builder.passwords.max_attempts
                    ),
                );
                break;
            }
            Err(Stop::Time) => {
                builder.note_limit(
                    "encrypted_archive.max_seconds_per_archive",
                    format!(
                        "{path}: passwords tried for {} s; stopped",
                        builder.passwords.max_seconds_per_archive
                    ),
                );
                break;
            }
        }
    }
    // Children in archive order, as plain entries are.
    opened.sort_by_key(|(entry, _)| entry.index);
    for (entry, content) in opened {
        add_entry(builder, id, &path, entry.name.clone(), content, depth, true);
    }
    if winners.is_empty() {
        read_flag_only(builder, id, archive, info, &openable, &path, depth);
    }
}

/// Try the candidates in `order` on one entry; the index of the one that
/// opens it (CRC or authentication checked) and the content.
fn try_candidates(
    builder: &mut Builder<'_>,
    archive: &mut Zip<'_>,
    path: &str,
    entry: &LockedEntry,
    candidates: &[Candidate],
    order: &[usize],
    deadline: Instant,
) -> Result<Option<(usize, Vec<u8>)>, Stop> {
    if order.is_empty() {
        return Ok(None);
    }
    let Some(cap) = decrypt_cap(builder, path, entry) else {
        return Ok(None);
    };
    for &i in order {
        if builder.password_attempts >= builder.passwords.max_attempts {
            return Err(Stop::Attempts);
        }
        if Instant::now() >= deadline {
            return Err(Stop::Time);
        }
        builder.password_attempts += 1;
        let password = candidates[i].password.as_bytes();
        let options = ZipReadOptions::new().password(Some(password));
        match read_entry(archive, entry.index, options, cap) {
            Ok(content) => return Ok(Some((i, content))),
            Err(ReadError::TooBig) => {
                // Either a wrong key inflating garbage or a bomb behind the
                // right one; neither is scanned.
                note_too_big(builder, path, &entry.name, cap);
            }
            Err(
                ReadError::WrongPassword | ReadError::Broken(_) | ReadError::LargerThanDeclared,
            ) => {}
        }
    }
    Ok(None)
}

/// The cap for decrypting one entry: `[limits]` and what is left of
/// `encrypted_archive.max_decrypted_bytes`. None (with a limit noted) skips it.
fn decrypt_cap(builder: &mut Builder<'_>, path: &str, entry: &LockedEntry) -> Option<u64> {
    let left = builder
        .passwords
        .max_decrypted_bytes
        .saturating_sub(builder.bytes_decrypted);
    if left == 0 || entry.declared > left {
        builder.note_limit(
            "encrypted_archive.max_decrypted_bytes",
            format!(
                "{path}/{}: more than {} bytes decrypted in the message",
                entry.name, builder.passwords.max_decrypted_bytes
            ),
        );
        return None;
    }
    // The ZipCrypto header (12 bytes) and AES salt/verifier/MAC (up to 28)
    // are part of the compressed size; the ratio check allows for them.
    entry_cap(builder, path, &entry.name, entry.declared, entry.compressed).map(|c| c.min(left))
}

/// No password fitted: if the smallest ZipCrypto-flagged entry reads as
/// plain data with a matching CRC, the flag is a lie; read every such entry.
fn read_flag_only(
    builder: &mut Builder<'_>,
    id: usize,
    archive: &mut Zip<'_>,
    info: &mut ArchiveInfo,
    openable: &[&LockedEntry],
    path: &str,
    depth: usize,
) {
    let mut first = true;
    for entry in openable
        .iter()
        .filter(|e| e.method == EncryptionMethod::ZipCrypto)
    {
        if builder.out_of_time() {
            return;
        }
        let Some(cap) = entry_cap(builder, path, &entry.name, entry.declared, entry.compressed)
        else {
            continue;
        };
        let options = ZipReadOptions::new().ignore_encryption_flag(true);
        match read_entry(archive, entry.index, options, cap) {
            Ok(content) => {
                info.encrypted[entry.slot].state = EntryState::FlagOnly;
                builder.budget.charge(content.len() as u64);
                add_entry(builder, id, path, entry.name.clone(), content, depth, false);
            }
            // Really encrypted: the others are too.
            Err(_) if first => return,
            Err(_) => {}
        }
        first = false;
    }
}
