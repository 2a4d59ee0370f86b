//! RAR archives, versions 4 (RAR 2.9–4.x) and 5, read from their block
//! headers by hand: unrar's licence does not fit GPL-3.0, so nothing is
//! decompressed. Listed: entry names, sizes, compression, encryption of
//! entries and of the headers themselves. Returned: the data of entries
//! stored uncompressed (RAR4 method 0x30, RAR5 method 0) and not encrypted,
//! checked against their CRC32. Encrypted entries are reported, never
//! opened; compressed ones are named in `limits` (not inspected).

use super::le::{u16_at, u32_at};
use super::padding;
use super::{Budget, Embedded, EncryptedItem, IndicatorKind, Opened, Passwords};

const RAR4_SIGNATURE: &[u8] = b"Rar!\x1A\x07\x00";
const RAR5_SIGNATURE: &[u8] = b"Rar!\x1A\x07\x01\x00";

/// Limits of this opener (proposed config key: `[limits] max_rar_headers`,
/// default 10000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Block headers walked at most.
    pub max_headers: usize,
    /// What [`padding::padded`] calls padded.
    pub padding: padding::Thresholds,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_headers: 10_000,
            padding: padding::Thresholds::default(),
        }
    }
}

/// True when `data` starts like a RAR archive (4 or 5). Self-extracting
/// archives (a PE stub first) are not looked into.
pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(RAR4_SIGNATURE) || data.starts_with(RAR5_SIGNATURE)
}

/// The entries of a RAR archive, with default limits. Passwords are not
/// used: nothing encrypted is opened.
pub fn open(data: &[u8], budget: &Budget, passwords: Passwords<'_>) -> Opened {
    let _ = passwords;
    open_with(data, budget, Limits::default())
}

/// One file entry as the headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub unpacked: u64,
    pub packed: u64,
    /// Stored without compression.
    pub stored: bool,
    pub encrypted: bool,
    pub directory: bool,
    /// Continued from or into another volume.
    pub split: bool,
    pub crc32: Option<u32>,
    /// Where its data lies in the archive.
    data_at: usize,
}

/// What the headers say.
#[derive(Debug, Default)]
pub struct Listing {
    pub version: u8,
    pub entries: Vec<Entry>,
    /// The headers after the main header are encrypted (`rar -hp`).
    pub headers_encrypted: bool,
    /// Why the walk stopped before the end block, if it did.
    pub stopped: Option<String>,
}

/// Walk the block headers.
pub fn list(data: &[u8], max_headers: usize) -> Option<Listing> {
    if let Some(rest) = data.strip_prefix(RAR5_SIGNATURE) {
        Some(rar5(data, data.len() - rest.len(), max_headers))
    } else {
        data.strip_prefix(RAR4_SIGNATURE)
            .map(|rest| rar4(data, data.len() - rest.len(), max_headers))
    }
}

/// The entries of a RAR archive.
pub fn open_with(data: &[u8], budget: &Budget, limits: Limits) -> Opened {
    let mut out = Opened::default();
    let Some(listing) = list(data, limits.max_headers) else {
        return out;
    };
    let method = if listing.version == 5 {
        "RAR5 AES-256"
    } else {
        "RAR AES-128"
    };
    if listing.headers_encrypted {
        out.encrypted.push(EncryptedItem {
            name: "(RAR headers)".into(),
            method: format!("{method} (encrypted headers)"),
            opened_with: None,
        });
    }
    if let Some(why) = &listing.stopped {
        out.limits.push(why.clone());
    }
    for e in &listing.entries {
        if e.directory {
            continue;
        }
        if limits.padding.padded(e.unpacked, e.packed) {
            out.indicator(
                IndicatorKind::Padded,
                format!(
                    "{}: declares {} bytes, stored in {}",
                    e.name, e.unpacked, e.packed
                ),
            );
        }
        if e.encrypted {
            out.encrypted.push(EncryptedItem {
                name: e.name.clone(),
                method: method.into(),
                opened_with: None,
            });
            continue;
        }
        if !e.stored || e.split {
            let why = if e.split {
                "split across volumes"
            } else {
                "compressed"
            };
            out.limits
                .push(format!("RAR entry {}: {why}, not inspected", e.name));
            continue;
        }
        if budget.expired() {
            out.limits
                .push("RAR: the scan's time budget ran out".to_string());
            break;
        }
        let Some(bytes) = usize::try_from(e.packed)
            .ok()
            .and_then(|n| data.get(e.data_at..e.data_at.checked_add(n)?))
        else {
            out.limits
                .push(format!("RAR entry {}: data cut short", e.name));
            continue;
        };
        if e.crc32.is_some_and(|crc| crc != crc32fast::hash(bytes)) {
            out.limits
                .push(format!("RAR entry {}: CRC mismatch, not extracted", e.name));
            continue;
        }
        if let Err(why) = budget.take(bytes.len() as u64) {
            out.limits.push(format!("RAR entry {}: {why}", e.name));
            break;
        }
        let mut em = Embedded::new(Some(e.name.clone()), bytes.to_vec(), "RAR entry");
        if e.unpacked != bytes.len() as u64 {
            em.declared_size = Some(e.unpacked);
        }
        out.embedded.push(em);
    }
    out
}

/// A name from the archive: UTF-8 where it is, lossy otherwise; RAR4's
/// Unicode names keep their ASCII part (before the NUL).
fn name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// RAR 4 blocks: `crc u16, type u8, flags u16, size u16`, then for long
/// blocks `add_size u32` (file blocks: the packed size), the rest of the
/// header, and `add_size` bytes of data.
fn rar4(data: &[u8], mut pos: usize, max_headers: usize) -> Listing {
    const MAIN: u8 = 0x73;
    const FILE: u8 = 0x74;
    const END: u8 = 0x7B;
    const LONG_BLOCK: u16 = 0x8000;
    const MHD_PASSWORD: u16 = 0x0080;
    const LHD_SPLIT_BEFORE: u16 = 0x0001;
    const LHD_SPLIT_AFTER: u16 = 0x0002;
    const LHD_PASSWORD: u16 = 0x0004;
    const LHD_DIRECTORY: u16 = 0x00E0;
    const STORE: u8 = 0x30;

    let mut l = Listing {
        version: 4,
        ..Listing::default()
    };
    for _ in 0..max_headers {
        let Some(h) = data.get(pos..pos.saturating_add(7)) else {
            l.stopped = Some("RAR archive cut short (no end block)".into());
            return l;
        };
        let kind = h[2];
        let flags = u16::from_le_bytes([h[3], h[4]]);
        let size = usize::from(u16::from_le_bytes([h[5], h[6]]));
        if size < 7 {
            l.stopped = Some("RAR archive damaged (block header too short)".into());
            return l;
        }
        let Some(header) = data.get(pos..pos + size) else {
            l.stopped = Some("RAR archive cut short in a header".into());
            return l;
        };
        let mut add: u64 = 0;
        if flags & LONG_BLOCK != 0 || kind == FILE {
            add = u64::from(u32_at(header, 7).unwrap_or(0));
        }
        match kind {
            MAIN if flags & MHD_PASSWORD != 0 => {
                l.headers_encrypted = true;
                return l;
            }
            FILE => {
                let Some(file) = rar4_file(header, flags) else {
                    l.stopped = Some("RAR archive damaged (file header)".into());
                    return l;
                };
                let (packed, unpacked, name_bytes, method, crc) = file;
                add = packed;
                l.entries.push(Entry {
                    // RAR 4 separates folders with backslashes.
                    name: name(name_bytes).replace('\\', "/"),
                    unpacked,
                    packed,
                    stored: method == STORE,
                    encrypted: flags & LHD_PASSWORD != 0,
                    directory: flags & LHD_DIRECTORY == LHD_DIRECTORY,
                    split: flags & (LHD_SPLIT_BEFORE | LHD_SPLIT_AFTER) != 0,
                    crc32: Some(crc),
                    data_at: pos + size,
                });
            }
            END => return l,
            _ => {}
        }
        let next = u64::try_from(pos + size)
            .ok()
            .and_then(|p| p.checked_add(add))
            .and_then(|p| usize::try_from(p).ok());
        match next {
            Some(n) if n <= data.len() => pos = n,
            _ => {
                l.stopped = Some("RAR archive cut short in entry data".into());
                return l;
            }
        }
    }
    l.stopped = Some(format!("RAR archive has more than {max_headers} headers"));
    l
}

/// (packed, unpacked, name, method, crc) of a RAR 4 file header.
fn rar4_file(h: &[u8], flags: u16) -> Option<(u64, u64, &[u8], u8, u32)> {
    let mut packed = u64::from(u32_at(h, 7)?);
    let mut unpacked = u64::from(u32_at(h, 11)?);
    let crc = u32_at(h, 16)?;
    let method = *h.get(25)?;
    let name_len = usize::from(u16_at(h, 26)?);
    let mut at = 32;
    if flags & 0x0100 != 0 {
        packed |= u64::from(u32_at(h, 32)?) << 32;
        unpacked |= u64::from(u32_at(h, 36)?) << 32;
        at = 40;
    }
    let name = h.get(at..at + name_len)?;
    Some((packed, unpacked, name, method, crc))
}

/// A RAR 5 variable-length integer: 7 bits per byte, low first, the high
/// bit set on all but the last. `None` when cut short or over 64 bits.
fn vint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = *data.get(*at + i)?;
        let bits = u64::from(b & 0x7F);
        if i == 9 && bits > 1 {
            return None;
        }
        value |= bits << (7 * i);
        if b & 0x80 == 0 {
            *at += i + 1;
            return Some(value);
        }
    }
    None
}

/// RAR 5 blocks: `crc32 u32, header size vint, type vint, flags vint,
/// [extra size vint], [data size vint], fields, extra area`, then data.
fn rar5(data: &[u8], mut pos: usize, max_headers: usize) -> Listing {
    const FILE: u64 = 2;
    const ENCRYPTION: u64 = 4;
    const END: u64 = 5;
    const SPLIT: u64 = 0x0008 | 0x0010;

    let mut l = Listing {
        version: 5,
        ..Listing::default()
    };
    for _ in 0..max_headers {
        let Some(block) = rar5_block(data, pos) else {
            l.stopped = Some("RAR archive cut short or damaged (no end block)".into());
            return l;
        };
        match block.kind {
            ENCRYPTION => {
                l.headers_encrypted = true;
                return l;
            }
            FILE => {
                let Some(mut e) = rar5_file(block.fields, block.extra) else {
                    l.stopped = Some("RAR archive damaged (file header)".into());
                    return l;
                };
                e.packed = block.data_size;
                e.split = block.flags & SPLIT != 0;
                e.data_at = block.data_at;
                l.entries.push(e);
            }
            END => return l,
            _ => {}
        }
        match usize::try_from(block.data_size)
            .ok()
            .and_then(|n| block.data_at.checked_add(n))
        {
            Some(n) if n <= data.len() => pos = n,
            _ => {
                l.stopped = Some("RAR archive cut short in entry data".into());
                return l;
            }
        }
    }
    l.stopped = Some(format!("RAR archive has more than {max_headers} headers"));
    l
}

struct Rar5Block<'a> {
    kind: u64,
    flags: u64,
    /// The type-specific fields (between the common fields and the extra area).
    fields: &'a [u8],
    extra: &'a [u8],
    data_size: u64,
    data_at: usize,
}

fn rar5_block(data: &[u8], pos: usize) -> Option<Rar5Block<'_>> {
    let mut at = pos.checked_add(4)?;
    let header_size = usize::try_from(vint(data, &mut at)?).ok()?;
    // 2 MiB is RAR 5's own upper bound for a header.
    if header_size == 0 || header_size > 2 << 20 {
        return None;
    }
    let end = at.checked_add(header_size)?;
    let header = data.get(at..end)?;
    let mut h = 0;
    let kind = vint(header, &mut h)?;
    let flags = vint(header, &mut h)?;
    let extra_size = if flags & 0x0001 != 0 {
        usize::try_from(vint(header, &mut h)?).ok()?
    } else {
        0
    };
    let data_size = if flags & 0x0002 != 0 {
        vint(header, &mut h)?
    } else {
        0
    };
    let extra_at = header.len().checked_sub(extra_size)?;
    Some(Rar5Block {
        kind,
        flags,
        fields: header.get(h..extra_at)?,
        extra: header.get(extra_at..)?,
        data_size,
        data_at: end,
    })
}

fn rar5_file(f: &[u8], extra: &[u8]) -> Option<Entry> {
    const DIRECTORY: u64 = 0x0001;
    const HAS_MTIME: u64 = 0x0002;
    const HAS_CRC: u64 = 0x0004;
    const EXTRA_ENCRYPTION: u64 = 0x01;
    let mut at = 0;
    let file_flags = vint(f, &mut at)?;
    let unpacked = vint(f, &mut at)?;
    let _attributes = vint(f, &mut at)?;
    if file_flags & HAS_MTIME != 0 {
        at = at.checked_add(4)?;
    }
    let crc32 = if file_flags & HAS_CRC != 0 {
        let c = u32_at(f, at)?;
        at += 4;
        Some(c)
    } else {
        None
    };
    let compression = vint(f, &mut at)?;
    let _host = vint(f, &mut at)?;
    let name_len = usize::try_from(vint(f, &mut at)?).ok()?;
    let name_bytes = f.get(at..at.checked_add(name_len)?)?;
    let mut encrypted = false;
    let mut x = 0;
    while x < extra.len() {
        let size = usize::try_from(vint(extra, &mut x)?).ok()?;
        let record = extra.get(x..x.checked_add(size)?)?;
        let mut r = 0;
        if vint(record, &mut r)? == EXTRA_ENCRYPTION {
            encrypted = true;
        }
        x += size;
    }
    Some(Entry {
        name: name(name_bytes),
        unpacked,
        packed: 0,
        stored: (compression >> 7) & 0x07 == 0,
        encrypted,
        directory: file_flags & DIRECTORY != 0,
        split: false,
        crc32,
        data_at: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn v(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7F) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    /// A RAR 5 block: crc (unchecked), header size, header.
    fn block5(header: &[u8]) -> Vec<u8> {
        [vec![0; 4], v(header.len() as u64), header.to_vec()].concat()
    }

    /// A RAR 5 file header + data: stored or compressed (method 3),
    /// optionally with an encryption extra record.
    fn file5(name: &str, data: &[u8], declared: u64, method: u64, encrypted: bool) -> Vec<u8> {
        let extra = if encrypted { vec![2, 1, 0] } else { vec![] };
        let mut h = v(2); // type: file
        h.extend(v(if extra.is_empty() { 0x02 } else { 0x03 }));
        if !extra.is_empty() {
            h.extend(v(extra.len() as u64));
        }
        h.extend(v(data.len() as u64));
        h.extend(v(0x0004)); // file flags: CRC32 present
        h.extend(v(declared));
        h.extend(v(0x20)); // attributes
        h.extend(crc32fast::hash(data).to_le_bytes());
        h.extend(v(method << 7));
        h.extend(v(1)); // host OS
        h.extend(v(name.len() as u64));
        h.extend(name.as_bytes());
        h.extend(extra);
        [block5(&h), data.to_vec()].concat()
    }

    fn rar5(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = RAR5_SIGNATURE.to_vec();
        out.extend(block5(&[1, 0, 0])); // main header
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend(block5(&[5, 0, 0])); // end
        out
    }

    fn run(data: &[u8]) -> Opened {
        open(data, &Budget::generous(), Passwords::default())
    }

    #[test]
    fn rar5_stored_plain_entry_comes_back_with_its_name() {
        let a = rar5(&[
            file5("invoice.lnk", b"cmd /c evil", 11, 0, false),
            file5("secret.exe", b"MZ......", 8, 0, true),
            file5("big.doc", b"xx", 2000, 3, false),
        ]);
        assert!(sniff(&a));
        let o = run(&a);
        assert_eq!(o.embedded.len(), 1);
        assert_eq!(o.embedded[0].name.as_deref(), Some("invoice.lnk"));
        assert_eq!(&o.embedded[0].data[..], b"cmd /c evil");
        assert_eq!(o.encrypted.len(), 1);
        assert_eq!(o.encrypted[0].name, "secret.exe");
        assert_eq!(o.encrypted[0].method, "RAR5 AES-256");
        assert_eq!(o.limits, ["RAR entry big.doc: compressed, not inspected"]);
    }

    #[test]
    fn a_crc_mismatch_is_not_extracted() {
        let mut a = rar5(&[file5("a.txt", b"hello", 5, 0, false)]);
        let at = a.windows(5).position(|w| w == b"hello").unwrap();
        a[at] = b'j';
        let o = run(&a);
        assert!(o.embedded.is_empty());
        assert_eq!(o.limits, ["RAR entry a.txt: CRC mismatch, not extracted"]);
    }

    #[test]
    fn padded_entries_are_reported() {
        // 500 MiB declared, 4 KB stored: Emotet's padding.
        let a = rar5(&[file5("invoice.doc", &[0u8; 4096], 500 << 20, 3, false)]);
        let o = run(&a);
        let p: Vec<_> = o
            .indicators
            .iter()
            .filter(|i| i.kind == IndicatorKind::Padded)
            .collect();
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].detail,
            "invoice.doc: declares 524288000 bytes, stored in 4096"
        );
    }

    #[test]
    fn rar4_stored_and_encrypted_entries() {
        fn file4(name: &str, data: &[u8], flags: u16, method: u8) -> Vec<u8> {
            let size = 32 + name.len();
            let mut h = vec![0, 0, 0x74];
            h.extend((flags | 0x8000).to_le_bytes());
            h.extend((size as u16).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.push(2); // host OS
            h.extend(crc32fast::hash(data).to_le_bytes());
            h.extend([0; 4]); // time
            h.push(29);
            h.push(method);
            h.extend((name.len() as u16).to_le_bytes());
            h.extend([0; 4]); // attributes
            h.extend(name.as_bytes());
            h.extend_from_slice(data);
            h
        }
        let mut a = RAR4_SIGNATURE.to_vec();
        a.extend([0, 0, 0x73, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0]);
        a.extend(file4("dir\\a.vbs", b"WScript.Shell", 0, 0x30));
        a.extend(file4("b.exe", b"MZ", 0x0004, 0x30));
        a.extend([0, 0, 0x7B, 0, 0x40, 7, 0]);
        let o = run(&a);
        assert_eq!(o.embedded.len(), 1);
        assert_eq!(o.embedded[0].name.as_deref(), Some("dir/a.vbs"));
        assert_eq!(o.encrypted[0].name, "b.exe");
        assert_eq!(o.encrypted[0].method, "RAR AES-128");
        assert!(o.limits.is_empty(), "{:?}", o.limits);
        // Encrypted headers: the main header's flag.
        let mut h = RAR4_SIGNATURE.to_vec();
        h.extend([0, 0, 0x73, 0x80, 0, 13, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(run(&h).encrypted[0].name, "(RAR headers)");
    }

    #[test]
    fn vints_over_64_bits_and_endless_headers_are_refused() {
        let mut at = 0;
        assert_eq!(
            vint(
                &[0xFF; 9].iter().chain(&[0x01]).copied().collect::<Vec<_>>(),
                &mut at
            ),
            Some(u64::MAX)
        );
        let mut at = 0;
        assert_eq!(
            vint(
                &[0xFF; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>(),
                &mut at
            ),
            None
        );
        let mut at = 0;
        assert_eq!(vint(&[0x80; 12], &mut at), None);
        // A header size of 2^63: refused, not allocated.
        let mut a = RAR5_SIGNATURE.to_vec();
        a.extend([0, 0, 0, 0]);
        a.extend([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
        let o = run(&a);
        assert!(o.embedded.is_empty() && o.limits.len() == 1);
        // Thousands of empty service blocks: the header count bounds the walk.
        let many: Vec<Vec<u8>> = (0..50).map(|_| block5(&[3, 0, 0])).collect();
        let listing = list(&rar5(&many), 10).unwrap();
        assert_eq!(
            listing.stopped.as_deref(),
            Some("RAR archive has more than 10 headers")
        );
        // A data size past the end of the file.
        let mut h = v(2);
        h.extend(v(0x02));
        h.extend(v(u64::MAX));
        let o = run(&[RAR5_SIGNATURE.to_vec(), block5(&h)].concat());
        assert!(o.embedded.is_empty());
    }

    #[test]
    fn the_budget_bounds_what_is_copied() {
        let a = rar5(&[
            file5("a.txt", &[b'a'; 100], 100, 0, false),
            file5("b.txt", &[b'b'; 100], 100, 0, false),
        ]);
        let b = Budget::new(Instant::now() + Duration::from_secs(60), 150, 1000);
        let o = open(&a, &b, Passwords::default());
        assert_eq!(o.embedded.len(), 1);
        assert!(
            o.limits[0].starts_with("RAR entry b.txt: "),
            "{:?}",
            o.limits
        );
    }
}
