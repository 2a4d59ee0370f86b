//! 7z archives: list the entries, tell encryption (AES-256 with SHA-256 key
//! derivation, of the content or of the headers too), open with the
//! candidate passwords and extract within the budget.
//!
//! The archive is read by `sevenz-rust2` (pure Rust, bounded header memory,
//! AES key derivation capped at 2^24 rounds). Around it: every block's
//! declared size is checked against the ratio and the budget before it is
//! decoded (a solid block must be decoded whole to reach its last entry),
//! every extracted byte is charged before it is kept, the deadline is
//! checked between chunks, and entries are counted.

use std::io::{Cursor, Read};

use sevenz_rust2::{Archive, ArchiveEntry, BlockDecoder, Error, Password};

use super::padding;
use super::{Budget, Embedded, EncryptedItem, Exhausted, IndicatorKind, Opened, Passwords};

const SIGNATURE: &[u8] = b"7z\xBC\xAF\x27\x1C";
/// Bytes read from an entry at a time (each chunk charged first).
const CHUNK: usize = 64 * 1024;

/// Limits of this opener (proposed config keys, `[limits]`:
/// `max_7z_dictionary_kb` = 262144, `max_7z_block_bytes` = 268435456;
/// entries: `max_archive_entries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Entries listed and extracted at most.
    pub max_entries: usize,
    /// Memory one decoder dictionary or the header buffers may use, KiB
    /// (7-Zip's "ultra" uses 64 MiB; larger dictionaries are refused).
    pub max_dictionary_kb: usize,
    /// Largest declared unpacked size of one block; a bigger (solid) block
    /// is listed but not decoded.
    pub max_block_bytes: u64,
    /// What [`padding::padded`] calls padded.
    pub padding: padding::Thresholds,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 10_000,
            max_dictionary_kb: 256 * 1024,
            max_block_bytes: 256 << 20,
            padding: padding::Thresholds::default(),
        }
    }
}

/// True when `data` starts like a 7z archive.
pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(SIGNATURE)
}

/// The entries of a 7z archive, with default limits.
pub fn open(data: &[u8], budget: &Budget, passwords: Passwords<'_>) -> Opened {
    open_with(data, budget, passwords, Limits::default())
}

fn is_password_error(e: &Error) -> bool {
    matches!(e, Error::PasswordRequired | Error::MaybeBadPassword(_))
}

/// The entries of a 7z archive.
pub fn open_with(data: &[u8], budget: &Budget, passwords: Passwords<'_>, limits: Limits) -> Opened {
    let mut out = Opened::default();
    if !sniff(data) {
        return out;
    }
    let mut attempts_left = passwords.max_attempts;
    let candidates = passwords.candidates;

    // The headers: in the clear, or encrypted (`7z -mhe=on`).
    let mut header_password: Option<&str> = None;
    let archive = match read_archive(data, &Password::empty(), limits) {
        Ok(a) => a,
        Err(e) if is_password_error(&e) => {
            let mut found = None;
            for pw in candidates {
                if attempts_left == 0 || budget.expired() {
                    break;
                }
                attempts_left -= 1;
                if let Ok(a) = read_archive(data, &Password::new(pw), limits) {
                    found = Some((pw.as_str(), a));
                    break;
                }
            }
            match found {
                Some((pw, a)) => {
                    header_password = Some(pw);
                    a
                }
                None => {
                    out.encrypted.push(EncryptedItem {
                        name: "(7z headers)".into(),
                        method: "7z AES-256 (encrypted headers)".into(),
                        opened_with: None,
                    });
                    return out;
                }
            }
        }
        Err(e) => {
            out.limits.push(format!("7z archive unreadable: {e}"));
            return out;
        }
    };

    let files = &archive.files;
    if files.len() > limits.max_entries {
        out.limits.push(format!(
            "7z archive lists {} entries; the first {} were read",
            files.len(),
            limits.max_entries
        ));
    }
    let listed = files.len().min(limits.max_entries);

    // Padded entries (declared huge, stored tiny), told from the headers.
    let packed_total: u64 = archive
        .pack_sizes()
        .iter()
        .fold(0, |a, b| a.saturating_add(*b));
    for (bi, block) in archive.blocks.iter().enumerate() {
        let unpack = block.get_unpack_size();
        let packed = block_packed(&archive, bi).unwrap_or(packed_total);
        if limits.padding.padded(unpack, packed) {
            let first = archive.stream_map.block_first_file_index.get(bi).copied();
            let name = first
                .and_then(|i| files.get(i))
                .map_or("(block)", |f| f.name());
            out.indicator(
                IndicatorKind::Padded,
                format!("{name}: declares {unpack} bytes, stored in {packed}"),
            );
        }
    }

    // Which blocks are encrypted, and with what password each opened.
    let mut opened_with: Vec<Option<&str>> = vec![header_password; archive.blocks.len()];
    let mut extracted = 0usize;
    for (bi, block) in archive.blocks.iter().enumerate() {
        if budget.expired() {
            out.limits
                .push("7z: the scan's time budget ran out".to_string());
            break;
        }
        if extracted >= listed {
            break;
        }
        let unpack = block.get_unpack_size();
        let packed = block_packed(&archive, bi).unwrap_or(packed_total);
        let first_name = archive
            .stream_map
            .block_first_file_index
            .get(bi)
            .and_then(|i| files.get(*i))
            .map_or("(block)", |f| f.name())
            .to_string();
        if unpack > limits.max_block_bytes {
            out.limits.push(format!(
                "7z block of {first_name}: {unpack} bytes declared, over the {} byte limit",
                limits.max_block_bytes
            ));
            continue;
        }
        if let Err(e) = budget.check_ratio(packed, unpack) {
            out.limits.push(format!("7z block of {first_name}: {e}"));
            continue;
        }
        let encrypted = block
            .coders
            .iter()
            .any(|c| c.encoder_method_id() == sevenz_rust2::EncoderMethod::ID_AES256_SHA256);
        let tries: Vec<Option<&str>> = if !encrypted {
            vec![None]
        } else if let Some(pw) = header_password {
            vec![Some(pw)]
        } else {
            candidates.iter().map(|s| Some(s.as_str())).collect()
        };
        let mut done = false;
        for pw in tries {
            if encrypted && header_password.is_none() {
                if attempts_left == 0 {
                    break;
                }
                attempts_left -= 1;
            }
            let password = pw.map_or_else(Password::empty, Password::new);
            match decode_block(
                data,
                &archive,
                bi,
                &password,
                budget,
                limits,
                listed - extracted,
            ) {
                Ok(entries) => {
                    extracted += entries.len();
                    out.embedded.extend(entries.into_iter().map(|mut e| {
                        e.decrypted = encrypted;
                        e
                    }));
                    opened_with[bi] = pw;
                    done = true;
                    break;
                }
                Err(Stop::Budget(e)) => {
                    out.limits.push(format!("7z block of {first_name}: {e}"));
                    done = true;
                    break;
                }
                Err(Stop::Damaged(e)) if !encrypted || is_password_error(&e) => {
                    if !encrypted {
                        out.limits
                            .push(format!("7z block of {first_name} unreadable: {e}"));
                        done = true;
                        break;
                    }
                }
                Err(Stop::Damaged(_)) => {
                    // With AES, a wrong password yields garbage: the
                    // decoder or the CRC fails. Try the next one.
                }
            }
        }
        if !done && encrypted {
            opened_with[bi] = None;
        }
    }

    for (i, f) in files.iter().take(listed).enumerate() {
        if archive.is_file_encrypted(i) {
            let block = archive
                .stream_map
                .file_block_index
                .get(i)
                .copied()
                .flatten();
            out.encrypted.push(EncryptedItem {
                name: f.name().to_string(),
                method: "7z AES-256".into(),
                opened_with: block
                    .and_then(|b| opened_with.get(b).copied().flatten())
                    .map(str::to_string),
            });
        }
    }
    out
}

fn read_archive(data: &[u8], password: &Password, limits: Limits) -> Result<Archive, Error> {
    Archive::read_with_memory_limit(&mut Cursor::new(data), password, limits.max_dictionary_kb)
}

/// The packed size of a block, when blocks and packed streams pair up one
/// to one (no BCJ2).
fn block_packed(archive: &Archive, block: usize) -> Option<u64> {
    let sizes = archive.pack_sizes();
    if sizes.len() == archive.blocks.len() {
        sizes.get(block).copied()
    } else {
        None
    }
}

enum Stop {
    Budget(Exhausted),
    Damaged(Error),
}

/// Decode one block's entries (at most `max` with data), charging every
/// byte before keeping it.
fn decode_block(
    data: &[u8],
    archive: &Archive,
    block: usize,
    password: &Password,
    budget: &Budget,
    limits: Limits,
    max: usize,
) -> Result<Vec<Embedded>, Stop> {
    let mut source = Cursor::new(data);
    let decoder = BlockDecoder::new_with_memory_limit(
        1,
        limits.max_dictionary_kb,
        block,
        archive,
        password,
        &mut source,
    );
    let mut entries = Vec::new();
    let mut exhausted = None;
    let mut each = |entry: &ArchiveEntry, reader: &mut dyn Read| -> Result<bool, Error> {
        if entries.len() >= max {
            return Ok(false);
        }
        if entry.is_directory() || !entry.has_stream() {
            return Ok(true);
        }
        match read_entry(entry, reader, budget) {
            Ok(bytes) => {
                let mut e = Embedded::new(Some(entry.name().to_string()), bytes, "7z entry");
                if (e.data.len() as u64) != entry.size() {
                    e.declared_size = Some(entry.size());
                }
                entries.push(e);
                Ok(true)
            }
            Err(Stop::Budget(e)) => {
                exhausted = Some(e);
                Ok(false)
            }
            Err(Stop::Damaged(e)) => Err(e),
        }
    };
    let result = decoder.for_each_entries(&mut each);
    if let Some(e) = exhausted {
        return Err(Stop::Budget(e));
    }
    result.map_err(Stop::Damaged)?;
    Ok(entries)
}

/// An entry's bytes, read chunk by chunk, each charged before it is kept.
fn read_entry(
    entry: &ArchiveEntry,
    reader: &mut dyn Read,
    budget: &Budget,
) -> Result<Vec<u8>, Stop> {
    let declared = entry.size();
    budget.take(0).map_err(Stop::Budget)?;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        if budget.expired() {
            return Err(Stop::Budget(Exhausted::Time));
        }
        let n = reader
            .read(&mut chunk)
            .map_err(|e| Stop::Damaged(Error::from(e)))?;
        if n == 0 {
            break;
        }
        budget.take(n as u64).map_err(Stop::Budget)?;
        out.extend_from_slice(&chunk[..n]);
        if out.len() as u64 > declared {
            // The reader is bounded by the declared size; never past it.
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sevenz_rust2::encoder_options::AesEncoderOptions;
    use sevenz_rust2::{ArchiveWriter, EncoderConfiguration, EncoderMethod};
    use std::time::{Duration, Instant};

    const FILES: [(&str, &[u8]); 2] = [
        (
            "invoice.xls",
            b"not really a workbook, but bytes to find again",
        ),
        ("readme.txt", b"hello hello hello hello hello hello"),
    ];

    /// A 7z of `FILES`, optionally AES-encrypted (headers too if asked),
    /// solid or one block per file.
    fn seven_z(password: Option<&str>, encrypt_header: bool, solid: bool) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
        let mut methods: Vec<EncoderConfiguration> = Vec::new();
        if let Some(pw) = password {
            methods.push(AesEncoderOptions::new(Password::new(pw)).into());
        }
        methods.push(EncoderConfiguration::new(EncoderMethod::LZMA2));
        w.set_content_methods(methods);
        w.set_encrypt_header(encrypt_header);
        if solid {
            let entries = FILES
                .iter()
                .map(|(n, _)| ArchiveEntry::new_file(n))
                .collect();
            let readers = FILES.iter().map(|(_, d)| Cursor::new(*d).into()).collect();
            w.push_archive_entries(entries, readers).unwrap();
        } else {
            for (name, data) in FILES {
                w.push_archive_entry(ArchiveEntry::new_file(name), Some(Cursor::new(data)))
                    .unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn run(data: &[u8], candidates: &[&str], max_attempts: usize) -> Opened {
        let c: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
        open(
            data,
            &Budget::generous(),
            Passwords {
                candidates: &c,
                max_attempts,
            },
        )
    }

    fn names_and_data(o: &Opened) -> Vec<(String, Vec<u8>)> {
        o.embedded
            .iter()
            .map(|e| (e.name.clone().unwrap_or_default(), e.data.to_vec()))
            .collect()
    }

    fn expected() -> Vec<(String, Vec<u8>)> {
        FILES
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect()
    }

    #[test]
    fn plain_archives_solid_or_not_give_their_entries() {
        for solid in [false, true] {
            let a = seven_z(None, false, solid);
            assert!(sniff(&a));
            let o = run(&a, &[], 0);
            assert_eq!(names_and_data(&o), expected(), "solid={solid}");
            assert!(o.encrypted.is_empty() && o.limits.is_empty());
            assert!(o
                .embedded
                .iter()
                .all(|e| !e.decrypted && e.how == "7z entry"));
        }
    }

    #[test]
    fn encrypted_content_opens_with_the_right_candidate_only() {
        let a = seven_z(Some("secret"), false, false);
        let none = run(&a, &[], 5);
        assert!(none.embedded.is_empty());
        assert_eq!(none.encrypted.len(), 2);
        assert!(none.encrypted.iter().all(|i| i.opened_with.is_none()));
        assert_eq!(none.encrypted[0].name, "invoice.xls");

        let o = run(&a, &["wrong", "secret"], 5);
        assert_eq!(names_and_data(&o), expected());
        assert!(o.embedded.iter().all(|e| e.decrypted));
        assert!(o
            .encrypted
            .iter()
            .all(|i| i.opened_with.as_deref() == Some("secret")));
    }

    #[test]
    fn password_attempts_are_bounded() {
        let a = seven_z(Some("secret"), false, true);
        // One solid block: two tries are not enough when the password comes third.
        let o = run(&a, &["a", "b", "secret"], 2);
        assert!(o.embedded.is_empty());
        assert!(o.encrypted.iter().all(|i| i.opened_with.is_none()));
        let o = run(&a, &["a", "b", "secret"], 3);
        assert_eq!(names_and_data(&o), expected());
    }

    #[test]
    fn encrypted_headers_hide_names_until_opened() {
        let a = seven_z(Some("secret"), true, true);
        let o = run(&a, &["wrong"], 5);
        assert!(o.embedded.is_empty());
        assert_eq!(o.encrypted.len(), 1);
        assert_eq!(o.encrypted[0].name, "(7z headers)");
        let o = run(&a, &["wrong", "secret"], 5);
        assert_eq!(names_and_data(&o), expected());
        assert_eq!(o.encrypted.len(), 2);
        assert_eq!(o.encrypted[1].opened_with.as_deref(), Some("secret"));
    }

    #[test]
    fn the_budget_stops_extraction() {
        let a = seven_z(None, false, false);
        let tiny = Budget::new(Instant::now() + Duration::from_secs(60), 50, 1000);
        let o = open(&a, &tiny, Passwords::default());
        assert_eq!(o.embedded.len(), 1, "only the first entry fits");
        assert_eq!(o.limits.len(), 1, "{:?}", o.limits);
        let late = Budget::new(Instant::now(), 1 << 20, 1000);
        let o = open(&a, &late, Passwords::default());
        assert!(o.embedded.is_empty());
        assert!(!o.limits.is_empty());
    }

    #[test]
    fn declared_block_sizes_are_checked_before_decoding() {
        let a = seven_z(None, false, true);
        let limits = Limits {
            max_block_bytes: 10,
            ..Limits::default()
        };
        let o = open_with(&a, &Budget::generous(), Passwords::default(), limits);
        assert!(o.embedded.is_empty());
        assert!(
            o.limits[0].contains("over the 10 byte limit"),
            "{:?}",
            o.limits
        );
    }

    #[test]
    fn padded_blocks_are_reported() {
        // 4 MiB of zeros compresses to a few hundred bytes with LZMA2; the
        // thresholds are scaled down from 100 MiB so the test stays quick.
        let mut w = ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
        let zeros = std::io::repeat(0).take(4 << 20);
        w.push_archive_entry(ArchiveEntry::new_file("invoice.doc"), Some(zeros))
            .unwrap();
        let a = w.finish().unwrap().into_inner();
        let limits = Limits {
            padding: padding::Thresholds {
                min_declared: 1 << 20,
                min_ratio: 1000,
            },
            ..Limits::default()
        };
        let budget = Budget::new(Instant::now() + Duration::from_secs(60), 1 << 30, 1000);
        let o = open_with(&a, &budget, Passwords::default(), limits);
        let padded: Vec<_> = o
            .indicators
            .iter()
            .filter(|i| i.kind == IndicatorKind::Padded)
            .collect();
        assert_eq!(padded.len(), 1);
        assert!(padded[0]
            .detail
            .starts_with("invoice.doc: declares 4194304 bytes"));
        // And the block itself is not inflated: over the ratio.
        assert!(o.embedded.is_empty());
        assert!(!o.limits.is_empty());
    }

    #[test]
    fn damaged_archives_never_panic() {
        let a = seven_z(Some("pw"), false, true);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..300 {
            let mut m = a.clone();
            for _ in 0..1 + round % 8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % m.len();
                m[at] = (seed >> 32) as u8;
            }
            m.truncate(m.len() - (round % 40));
            let _ = run(&m, &["pw"], 2);
        }
        let _ = run(SIGNATURE, &[], 0);
        let _ = run(b"", &[], 0);
    }
}
