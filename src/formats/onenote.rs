//! OneNote sections (`.one`, MS-ONESTORE): the files embedded in them.
//!
//! The 2023 malspam wave hid HTA, BAT, VBS, CMD and EXE files behind a
//! "double-click to view" picture in a OneNote section. Rather than walk the
//! whole revision store, this does what the field's tools do: it scans for
//! `FileDataStoreObject` blocks (a header GUID, a 64-bit length, the file
//! data, a footer GUID), which hold every embedded file and picture.
//!
//! Names come from two further places, both found by scanning and checked
//! against each other before use:
//! - `ObjectDeclarationFileData3RefCountFND` nodes (0x072/0x073) give, for
//!   the data's GUID (`<ifndf>{GUID}`), the object's type (embedded file or
//!   picture) and the file's extension; `FileDataStoreObjectReferenceFND`
//!   nodes (0x094) tie that GUID to the block's offset.
//! - `EmbeddedFileName` properties (0x1C001D9C) give the names a user saw;
//!   one is paired with a block when its extension matches the block's.

use bytes::Bytes;
use memchr::memmem;

use super::le::{u16_at, u32_at, u64_at};
use super::{Budget, Embedded, Opened, Passwords};

/// `{BDE316E7-2665-4511-A4C4-8D4D0B7A9EAC}` as stored (little-endian fields).
const FDSO_HEADER: [u8; 16] = [
    0xE7, 0x16, 0xE3, 0xBD, 0x65, 0x26, 0x11, 0x45, 0xA4, 0xC4, 0x8D, 0x4D, 0x0B, 0x7A, 0x9E, 0xAC,
];
/// `{71FBA722-0F79-4A0B-BB13-899256426B24}`, after the data (8-aligned).
const FDSO_FOOTER: [u8; 16] = [
    0x22, 0xA7, 0xFB, 0x71, 0x79, 0x0F, 0x0B, 0x4A, 0xBB, 0x13, 0x89, 0x92, 0x56, 0x42, 0x6B, 0x24,
];
/// guidFileType of a `.one` section: `{7B5C52E4-D88C-4DA7-AEB1-5378D02996D3}`.
const GUID_ONE: [u8; 16] = [
    0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96, 0xD3,
];
/// guidFileType of a `.onetoc2` table of contents: `{43FF2FA1-EFD9-4C76-9EE2-10EA5722765F}`.
const GUID_ONETOC2: [u8; 16] = [
    0xA1, 0x2F, 0xFF, 0x43, 0xD9, 0xEF, 0x76, 0x4C, 0x9E, 0xE2, 0x10, 0xEA, 0x57, 0x22, 0x76, 0x5F,
];
/// guidFileFormat of the revision store: `{109ADD3F-911B-49F5-A5D0-1791EDC8AED8}`.
const GUID_FILE_FORMAT: [u8; 16] = [
    0x3F, 0xDD, 0x9A, 0x10, 0x1B, 0x91, 0xF5, 0x49, 0xA5, 0xD0, 0x17, 0x91, 0xED, 0xC8, 0xAE, 0xD8,
];

/// Header GUID, cbLength (u64), unused (u32), reserved (u64).
const FDSO_HEAD_LEN: usize = 16 + 8 + 4 + 8;
/// `EmbeddedFileName` property id (MS-ONE 2.1.12), little-endian.
const PRID_EMBEDDED_FILE_NAME: [u8; 4] = [0x9C, 0x1D, 0x00, 0x1C];
/// jcidEmbeddedFileContainer / jcidPictureContainer14 (MS-ONE 2.2).
const JCID_EMBEDDED_FILE: u32 = 0x0008_0036;
const JCID_PICTURE: u32 = 0x0008_0039;

/// At most this many embedded blocks, names or references are read.
pub const MAX_FILES: usize = 1024;
/// Longest name or extension kept, in UTF-16 code units.
const MAX_NAME_UNITS: usize = 512;

/// True when `data` is a OneNote revision-store file (`.one`, `.onetoc2`):
/// by its file-type GUID, or by the file-format GUID that follows it when
/// the header is damaged (a byte dropped or added at the start).
pub fn sniff(data: &[u8]) -> bool {
    let head = data.get(..16);
    if head == Some(&GUID_ONE[..]) || head == Some(&GUID_ONETOC2[..]) {
        return true;
    }
    // guidFileFormat sits at offset 48; accept it a few bytes off.
    let window = &data[..data.len().min(64)];
    memmem::find(window, &GUID_FILE_FORMAT).is_some()
}

/// The embedded files (and pictures) of a OneNote file, within the budget.
pub fn open(data: &[u8], budget: &Budget, _passwords: Passwords<'_>) -> Opened {
    let mut out = Opened::default();
    let refs = file_data_references(data, budget, header_shift(data));
    let mut names = embedded_file_names(data, budget);

    let mut pos = 0usize;
    let mut found = 0usize;
    while let Some(rel) = data.get(pos..).and_then(|d| memmem::find(d, &FDSO_HEADER)) {
        if budget.expired() {
            out.limits
                .push("OneNote: the scan's time budget ran out".into());
            break;
        }
        let at = pos.saturating_add(rel);
        if found == MAX_FILES {
            out.limits.push(format!(
                "OneNote: more than {MAX_FILES} embedded files, the rest not read"
            ));
            break;
        }
        found += 1;
        let Some(declared) = u64_at(data, at + 16) else {
            out.limits
                .push("OneNote: a file data block is cut short in its header".into());
            break;
        };
        let start = at + FDSO_HEAD_LEN;
        if start > data.len() {
            out.limits
                .push("OneNote: a file data block is cut short in its header".into());
            break;
        }
        let avail = data.len().saturating_sub(start) as u64;
        let len = declared.min(avail);
        // `len <= avail <= data.len()`, so this fits in usize.
        let len_usize = len as usize;
        let end = start + len_usize;

        let info = refs.iter().find(|r| r.block == at);
        let how = match info.map(|r| r.jcid) {
            Some(JCID_PICTURE) => "OneNote picture",
            _ => "OneNote embedded file",
        };
        let ext = info.and_then(|r| r.extension.clone());
        let name = match &ext {
            Some(ext) => take_name_with_extension(&mut names, ext).or_else(|| {
                // The section keeps the extension even when no name is found.
                (info.map(|r| r.jcid) == Some(JCID_EMBEDDED_FILE)).then(|| format!("embedded{ext}"))
            }),
            None => None,
        };

        if let Err(why) = budget.take(len) {
            out.limits.push(format!(
                "OneNote: embedded file of {len} bytes not read: {why}"
            ));
            break;
        }
        let mut e = Embedded::new(name, Bytes::copy_from_slice(&data[start..end]), how);
        if declared != len {
            e.declared_size = Some(declared);
            out.limits.push(format!(
                "OneNote: an embedded file declares {declared} bytes, only {len} are present"
            ));
        }
        out.embedded.push(e);
        if declared != len {
            break;
        }
        // Continue after the data (and its footer when it is there), so a
        // OneNote file carried inside is left whole for its own opening.
        let footer_at = align8(end);
        pos = match data.get(footer_at..footer_at.saturating_add(16)) {
            Some(f) if f == FDSO_FOOTER => footer_at + 16,
            _ => end,
        };
    }
    out
}

/// How far the file sits from where its header says: a section published
/// with bytes dropped from (negative) or added at (positive) its start
/// still opens; the offsets it stores are corrected by this much.
fn header_shift(data: &[u8]) -> isize {
    let window = &data[..data.len().min(64)];
    match memmem::find(window, &GUID_FILE_FORMAT) {
        Some(at) => at as isize - 48,
        None => 0,
    }
}

fn align8(n: usize) -> usize {
    n.checked_add(7).map_or(n, |m| m & !7)
}

/// UTF-16LE code units `d[at..at + 2*units]` as text; `None` when out of
/// range, too long or holding control characters.
fn utf16_at(d: &[u8], at: usize, units: usize) -> Option<String> {
    if units > MAX_NAME_UNITS {
        return None;
    }
    let bytes = d.get(at..at.checked_add(units.checked_mul(2)?)?)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let s = String::from_utf16(&units).ok()?;
    let s = s.trim_end_matches('\0');
    if s.is_empty() || s.chars().any(char::is_control) {
        return None;
    }
    Some(s.to_string())
}

/// What the revision store says about one file data block.
#[derive(Debug)]
struct BlockInfo {
    /// Offset of the block's header GUID.
    block: usize,
    jcid: u32,
    /// `.hta`, `.png`, ... as stored (with its dot).
    extension: Option<String>,
}

/// GUID → (jcid, extension) from the file data declarations, then GUID →
/// block offset from the file data references.
fn file_data_references(data: &[u8], budget: &Budget, shift: isize) -> Vec<BlockInfo> {
    let marker: Vec<u8> = "<ifndf>{"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut decls: Vec<([u8; 16], u32, Option<String>)> = Vec::new();
    for p in memmem::find_iter(data, &marker) {
        if decls.len() >= MAX_FILES || budget.expired() {
            break;
        }
        let Some(d) = declaration_at(data, p) else {
            continue;
        };
        if !decls.iter().any(|(g, _, _)| *g == d.0) {
            decls.push(d);
        }
    }
    let mut out = Vec::new();
    for (guid, jcid, extension) in decls {
        if budget.expired() {
            break;
        }
        for g in memmem::find_iter(data, &guid).take(64) {
            if let Some(block) = reference_before(data, g, shift) {
                out.push(BlockInfo {
                    block,
                    jcid,
                    extension: extension.clone(),
                });
                break;
            }
        }
    }
    out
}

/// Reads an `ObjectDeclarationFileData3(Large)RefCountFND` whose
/// `FileDataReference` string starts at `p`: (GUID as stored, jcid, extension).
fn declaration_at(data: &[u8], p: usize) -> Option<([u8; 16], u32, Option<String>)> {
    let cch = u32_at(data, p.checked_sub(4)?)? as usize;
    // "<ifndf>{" + 36 + "}" = 45 units
    if cch != 45 {
        return None;
    }
    let text = utf16_at(data, p, cch)?;
    let guid = parse_guid(text.get(8..)?)?;
    // The node header: 0x072 has a 1-byte cRef, 0x073 a 4-byte one.
    let (jcid_at, header_at, id) = if fnd_id(data, p.checked_sub(4 + 1 + 4 + 4 + 4)?) == Some(0x072)
    {
        (p - 4 - 1 - 4, p - 17, 0x072)
    } else {
        (p.checked_sub(4 + 4 + 4)?, p.checked_sub(20)?, 0x073)
    };
    if fnd_id(data, header_at) != Some(id) {
        return None;
    }
    let jcid = u32_at(data, jcid_at)?;
    let ext_at = p + cch * 2;
    let ext_cch = u32_at(data, ext_at)? as usize;
    let extension = if (2..=16).contains(&ext_cch) {
        utf16_at(data, ext_at + 4, ext_cch).filter(|e| e.starts_with('.'))
    } else {
        None
    };
    Some((guid, jcid, extension))
}

fn fnd_id(data: &[u8], at: usize) -> Option<u32> {
    u32_at(data, at).map(|h| h & 0x3FF)
}

/// `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` → the GUID as stored.
fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let s = s.strip_suffix('}')?;
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() != 5 || s.len() != 36 {
        return None;
    }
    let d1 = u32::from_str_radix(parts[0], 16).ok()?;
    let d2 = u16::from_str_radix(parts[1], 16).ok()?;
    let d3 = u16::from_str_radix(parts[2], 16).ok()?;
    let rest = format!("{}{}", parts[3], parts[4]);
    if rest.len() != 16 {
        return None;
    }
    let mut g = [0u8; 16];
    g[..4].copy_from_slice(&d1.to_le_bytes());
    g[4..6].copy_from_slice(&d2.to_le_bytes());
    g[6..8].copy_from_slice(&d3.to_le_bytes());
    for (i, slot) in g[8..].iter_mut().enumerate() {
        *slot = u8::from_str_radix(rest.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(g)
}

/// A `FileDataStoreObjectReferenceFND` (0x094) ending with the GUID at `g`:
/// the offset of the block it points at, when one is there.
fn reference_before(data: &[u8], g: usize, shift: isize) -> Option<usize> {
    for stp_fmt in 0..4u32 {
        for cb_fmt in 0..4u32 {
            let stp_len = [8usize, 4, 2, 4][stp_fmt as usize];
            let cb_len = [4usize, 8, 1, 2][cb_fmt as usize];
            let Some(h) = g.checked_sub(4 + stp_len + cb_len) else {
                continue;
            };
            let Some(header) = u32_at(data, h) else {
                continue;
            };
            if header & 0x3FF != 0x094
                || (header >> 23) & 3 != stp_fmt
                || (header >> 25) & 3 != cb_fmt
            {
                continue;
            }
            let stp = match stp_fmt {
                0 => u64_at(data, h + 4)?,
                1 => u64::from(u32_at(data, h + 4)?),
                2 => u64::from(u16_at(data, h + 4)?) * 8,
                _ => u64::from(u32_at(data, h + 4)?) * 8,
            };
            let stp = usize::try_from(stp).ok()?.checked_add_signed(shift)?;
            if data.get(stp..stp.checked_add(16)?) == Some(&FDSO_HEADER[..]) {
                return Some(stp);
            }
        }
    }
    None
}

/// Every distinct `EmbeddedFileName` property value, in file order.
fn embedded_file_names(data: &[u8], budget: &Budget) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in memmem::find_iter(data, &PRID_EMBEDDED_FILE_NAME).take(MAX_FILES) {
        if budget.expired() {
            break;
        }
        if let Some(n) = property_string(data, p) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// Bytes a property of this type takes in a PropertySet's data stream
/// (MS-ONESTORE 2.6.6); `None` for the nested types we do not walk.
fn property_data_len(data: &[u8], at: usize, prid: u32) -> Option<usize> {
    Some(match (prid >> 26) & 0x1F {
        0x1 | 0x2 | 0x8 | 0xA | 0xC => 0,
        0x3 => 1,
        0x4 => 2,
        0x5 | 0x9 | 0xB | 0xD => 4,
        0x6 => 8,
        0x7 => 4usize.checked_add(u32_at(data, at)? as usize)?,
        _ => return None,
    })
}

fn valid_prid(prid: u32) -> bool {
    prid >> 31 == 0 && matches!((prid >> 26) & 0x1F, 0x1..=0xD | 0x10 | 0x11)
}

/// The string value of the property whose id sits at `p`, found by walking
/// back to the PropertySet's count and forward through its data stream.
fn property_string(data: &[u8], p: usize) -> Option<String> {
    for index in 0..64usize {
        let start = p.checked_sub(index * 4 + 2)?;
        let count = u16_at(data, start)? as usize;
        if count <= index || count > 256 {
            continue;
        }
        let prids_at = start + 2;
        let prids: Option<Vec<u32>> = (0..count).map(|i| u32_at(data, prids_at + i * 4)).collect();
        let Some(prids) = prids else { continue };
        if !prids.iter().all(|&id| valid_prid(id)) {
            continue;
        }
        let mut at = prids_at + count * 4;
        for &prid in &prids[..index] {
            at = at.checked_add(property_data_len(data, at, prid)?)?;
        }
        let len = u32_at(data, at)? as usize;
        if len < 2 || !len.is_multiple_of(2) {
            return None;
        }
        return utf16_at(data, at + 4, len / 2);
    }
    None
}

/// Removes and returns the first name ending with `ext` (any case).
fn take_name_with_extension(names: &mut Vec<String>, ext: &str) -> Option<String> {
    let ext = ext.to_lowercase();
    let i = names
        .iter()
        .position(|n| n.to_lowercase().ends_with(&ext))?;
    Some(names.remove(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn block(payload: &[u8]) -> Vec<u8> {
        let mut b = FDSO_HEADER.to_vec();
        b.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        b.extend_from_slice(&[0u8; 12]);
        b.extend_from_slice(payload);
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        b.extend_from_slice(&FDSO_FOOTER);
        b
    }

    /// A section with a header, a picture and an embedded `.hta` whose
    /// declaration, reference and `EmbeddedFileName` are all present.
    fn section() -> (Vec<u8>, usize, usize) {
        let mut d = GUID_ONE.to_vec();
        d.resize(64, 0);
        // EmbeddedFileName in a PropertySet: a FourBytes prop, then the name.
        d.extend_from_slice(&2u16.to_le_bytes());
        d.extend_from_slice(&0x1400_34CEu32.to_le_bytes());
        d.extend_from_slice(&PRID_EMBEDDED_FILE_NAME);
        d.extend_from_slice(&[1, 2, 3, 4]);
        let name = utf16("Open.hta\0");
        d.extend_from_slice(&(name.len() as u32).to_le_bytes());
        d.extend_from_slice(&name);
        // Declarations: 0x072 with jcid, cRef 1, "<ifndf>{guid}", ext.
        let decl = |d: &mut Vec<u8>, guid: &str, jcid: u32, ext: &str| {
            d.extend_from_slice(&0x0000_0072u32.to_le_bytes());
            d.extend_from_slice(&0x10u32.to_le_bytes());
            d.extend_from_slice(&jcid.to_le_bytes());
            d.push(1);
            let s = format!("<ifndf>{{{guid}}}");
            d.extend_from_slice(&(s.encode_utf16().count() as u32).to_le_bytes());
            d.extend_from_slice(&utf16(&s));
            d.extend_from_slice(&(ext.encode_utf16().count() as u32).to_le_bytes());
            d.extend_from_slice(&utf16(ext));
        };
        decl(
            &mut d,
            "A9C6DA05-F06B-4D38-A6C8-449DE4CCFF6A",
            JCID_PICTURE,
            ".png",
        );
        decl(
            &mut d,
            "13A0A844-BBCB-46EC-9EF7-1CEE0E09E8DD",
            JCID_EMBEDDED_FILE,
            ".hta",
        );
        // References (0x094, stp 8 bytes, cb 4 bytes), patched below.
        let refs_at = d.len();
        d.resize(refs_at + 2 * (4 + 8 + 4 + 16), 0);
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        let pic_at = d.len();
        d.extend_from_slice(&block(b"\x89PNG\r\n\x1a\nrest"));
        let hta_at = d.len();
        d.extend_from_slice(&block(b"<hta:application><script>x</script>"));
        for (i, (at, guid)) in [
            (pic_at, "A9C6DA05-F06B-4D38-A6C8-449DE4CCFF6A}"),
            (hta_at, "13A0A844-BBCB-46EC-9EF7-1CEE0E09E8DD}"),
        ]
        .into_iter()
        .enumerate()
        {
            let r = refs_at + i * 32;
            d[r..r + 4].copy_from_slice(&0x0000_0094u32.to_le_bytes());
            d[r + 4..r + 12].copy_from_slice(&(at as u64).to_le_bytes());
            d[r + 12..r + 16].copy_from_slice(&40u32.to_le_bytes());
            d[r + 16..r + 32].copy_from_slice(&parse_guid(guid).unwrap());
        }
        (d, pic_at, hta_at)
    }

    #[test]
    fn sniffs_by_file_type_guid_and_damaged_header() {
        let (d, _, _) = section();
        assert!(sniff(&d));
        let mut header = vec![0u8; 47];
        header.extend_from_slice(&GUID_FILE_FORMAT);
        assert!(sniff(&header), "file-format GUID one byte early");
        assert!(!sniff(b"<html>"));
        assert!(!sniff(&[]));
    }

    #[test]
    fn extracts_files_with_names_and_kinds() {
        let (d, _, _) = section();
        let o = open(&d, &Budget::generous(), Passwords::default());
        assert!(o.limits.is_empty(), "{:?}", o.limits);
        assert_eq!(o.embedded.len(), 2);
        assert_eq!(o.embedded[0].how, "OneNote picture");
        assert_eq!(o.embedded[0].name, None);
        assert!(o.embedded[0].data.starts_with(b"\x89PNG"));
        assert_eq!(o.embedded[1].how, "OneNote embedded file");
        assert_eq!(o.embedded[1].name.as_deref(), Some("Open.hta"));
        assert_eq!(
            &o.embedded[1].data[..],
            b"<hta:application><script>x</script>"
        );
        assert!(
            o.indicators.is_empty(),
            "pictures and files are not indicators"
        );
    }

    #[test]
    fn extension_alone_names_an_unnamed_embedded_file() {
        let (mut d, _, _) = section();
        // Break the EmbeddedFileName property id.
        let p = memmem::find(&d, &PRID_EMBEDDED_FILE_NAME).unwrap();
        d[p] = 0;
        let o = open(&d, &Budget::generous(), Passwords::default());
        assert_eq!(o.embedded[1].name.as_deref(), Some("embedded.hta"));
    }

    #[test]
    fn bare_blocks_are_found_without_any_structure() {
        let mut d = b"junk".to_vec();
        d.extend_from_slice(&block(b"MZ\x90\x00payload"));
        let o = open(&d, &Budget::generous(), Passwords::default());
        assert_eq!(o.embedded.len(), 1);
        assert_eq!(o.embedded[0].name, None);
        assert_eq!(&o.embedded[0].data[..], b"MZ\x90\x00payload");
    }

    #[test]
    fn a_length_past_the_end_is_cut_and_noted() {
        let mut d = FDSO_HEADER.to_vec();
        d.extend_from_slice(&u64::MAX.to_le_bytes());
        d.extend_from_slice(&[0u8; 12]);
        d.extend_from_slice(b"short");
        let o = open(&d, &Budget::generous(), Passwords::default());
        assert_eq!(o.embedded.len(), 1);
        assert_eq!(&o.embedded[0].data[..], b"short");
        assert_eq!(o.embedded[0].declared_size, Some(u64::MAX));
        assert_eq!(o.limits.len(), 1);
        // A header cut inside its length field, or just after it.
        for cut in [16, 24, 30] {
            let mut d = FDSO_HEADER.to_vec();
            d.extend_from_slice(&[1u8; 20]);
            d.truncate(cut);
            let o = open(&d, &Budget::generous(), Passwords::default());
            assert!(o.embedded.is_empty());
            assert_eq!(o.limits.len(), 1);
        }
    }

    #[test]
    fn the_budget_refuses_and_says_so() {
        let (d, _, _) = section();
        let b = Budget::new(
            std::time::Instant::now() + std::time::Duration::from_secs(60),
            4,
            10,
        );
        let o = open(&d, &b, Passwords::default());
        assert!(o.embedded.is_empty());
        assert_eq!(o.limits.len(), 1);
        assert!(o.limits[0].contains("budget"), "{}", o.limits[0]);
    }

    #[test]
    fn guid_text_round_trips_to_stored_bytes() {
        assert_eq!(
            parse_guid("BDE316E7-2665-4511-A4C4-8D4D0B7A9EAC}"),
            Some(FDSO_HEADER)
        );
        assert_eq!(parse_guid("BDE316E7-2665-4511-A4C4-8D4D0B7A9EA}"), None);
        assert_eq!(parse_guid("ZZE316E7-2665-4511-A4C4-8D4D0B7A9EAC}"), None);
    }
}
