//! Encryption told from the headers of archives we do not open: 7z and RAR
//! (versions 4 and 5), and zips whose central directory is itself
//! encrypted. Only headers are read; nothing is decrypted.

/// What the headers say about an archive's encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEncryption {
    /// File names hidden: the headers themselves are encrypted.
    Headers,
    /// Names visible, content encrypted.
    Content,
}

/// The 7z coder id of AES-256 + SHA-256 (`06 F1 07 01`), preceded by its
/// flag byte: id size 4, with properties (0x24).
const SEVEN_ZIP_AES_CODER: &[u8] = &[0x24, 0x06, 0xF1, 0x07, 0x01];
const SEVEN_ZIP_HEADER: u8 = 0x01;
const SEVEN_ZIP_ENCODED_HEADER: u8 = 0x17;

/// A 7z archive: the next header is found from the 32-byte start header.
/// An encoded (packed) header whose coders include AES is an encrypted
/// header (`7z -mhe=on`); a plain header listing the AES coder in its
/// folders means encrypted content. Coder records are looked up by their
/// exact bytes, which do not occur in the UTF-16 names of a plain header
/// in practice.
pub fn seven_zip(data: &[u8]) -> Option<HeaderEncryption> {
    if data.len() < 32 || !data.starts_with(b"7z\xBC\xAF\x27\x1C") {
        return None;
    }
    let offset = u64::from_le_bytes(data[12..20].try_into().ok()?);
    let size = u64::from_le_bytes(data[20..28].try_into().ok()?);
    let start = 32usize.checked_add(usize::try_from(offset).ok()?)?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    let header = data.get(start..end)?;
    let has_aes = header
        .windows(SEVEN_ZIP_AES_CODER.len())
        .any(|w| w == SEVEN_ZIP_AES_CODER);
    match (header.first()?, has_aes) {
        (&SEVEN_ZIP_ENCODED_HEADER, true) => Some(HeaderEncryption::Headers),
        (&SEVEN_ZIP_HEADER, true) => Some(HeaderEncryption::Content),
        _ => None,
    }
}

/// Blocks walked at most in a RAR archive.
const MAX_RAR_BLOCKS: usize = 10_000;

/// A RAR archive, version 4 or 5.
pub fn rar(data: &[u8]) -> Option<HeaderEncryption> {
    if let Some(rest) = data.strip_prefix(b"Rar!\x1A\x07\x01\x00") {
        rar5(rest)
    } else if let Some(rest) = data.strip_prefix(b"Rar!\x1A\x07\x00") {
        rar4(rest)
    } else {
        None
    }
}

/// RAR 4: blocks of `crc u16, type u8, flags u16, size u16 [, add_size u32]`.
/// The main header's flag 0x0080 encrypts the headers; a file header's
/// flag 0x0004 encrypts that file.
fn rar4(mut data: &[u8]) -> Option<HeaderEncryption> {
    const MAIN: u8 = 0x73;
    const FILE: u8 = 0x74;
    const END: u8 = 0x7B;
    const LONG_BLOCK: u16 = 0x8000;
    for _ in 0..MAX_RAR_BLOCKS {
        if data.len() < 7 {
            return None;
        }
        let kind = data[2];
        let flags = u16::from_le_bytes([data[3], data[4]]);
        let size = u16::from_le_bytes([data[5], data[6]]) as usize;
        let add = if flags & LONG_BLOCK != 0 && data.len() >= 11 {
            u32::from_le_bytes([data[7], data[8], data[9], data[10]]) as usize
        } else {
            0
        };
        match kind {
            MAIN if flags & 0x0080 != 0 => return Some(HeaderEncryption::Headers),
            FILE if flags & 0x0004 != 0 => return Some(HeaderEncryption::Content),
            END => return None,
            _ => {}
        }
        if size < 7 {
            return None;
        }
        data = data.get(size.checked_add(add)?..)?;
    }
    None
}

/// RAR 5: blocks of `crc u32, header size vint, type vint, flags vint,
/// [extra size vint], [data size vint], ...`. Type 4 is the archive
/// encryption header; a file (2) or service (3) header whose extra area
/// holds a record of type 1 is encrypted.
fn rar5(mut data: &[u8]) -> Option<HeaderEncryption> {
    const FILE: u64 = 2;
    const SERVICE: u64 = 3;
    const ENCRYPTION: u64 = 4;
    const END: u64 = 5;
    const HAS_EXTRA: u64 = 0x01;
    const HAS_DATA: u64 = 0x02;
    const EXTRA_ENCRYPTION: u64 = 0x01;
    for _ in 0..MAX_RAR_BLOCKS {
        let rest = data.get(4..)?;
        let (header_size, n) = vint(rest)?;
        let header = rest.get(n..n.checked_add(usize::try_from(header_size).ok()?)?)?;
        let (kind, a) = vint(header)?;
        let (flags, b) = vint(header.get(a..)?)?;
        let mut at = a + b;
        let mut extra_size = 0;
        if flags & HAS_EXTRA != 0 {
            let (v, c) = vint(header.get(at..)?)?;
            extra_size = usize::try_from(v).ok()?;
            at += c;
        }
        let mut data_size = 0;
        if flags & HAS_DATA != 0 {
            let (v, _) = vint(header.get(at..)?)?;
            data_size = usize::try_from(v).ok()?;
        }
        match kind {
            ENCRYPTION => return Some(HeaderEncryption::Headers),
            FILE | SERVICE if extra_size > 0 => {
                let mut extra = header.get(header.len().checked_sub(extra_size)?..)?;
                while !extra.is_empty() {
                    let (record_size, c) = vint(extra)?;
                    let record =
                        extra.get(c..c.checked_add(usize::try_from(record_size).ok()?)?)?;
                    if vint(record)?.0 == EXTRA_ENCRYPTION {
                        return Some(HeaderEncryption::Content);
                    }
                    extra = &extra[c + record.len()..];
                }
            }
            END => return None,
            _ => {}
        }
        let next = 4usize
            .checked_add(n)?
            .checked_add(header.len())?
            .checked_add(data_size)?;
        data = data.get(next..)?;
    }
    None
}

/// A RAR 5 variable-length integer: 7 bits per byte, low bits first, high
/// bit set on every byte but the last. (value, bytes used).
fn vint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A zip whose central directory cannot be read but whose first local
/// header is flagged encrypted: PKWARE central directory encryption hides
/// the names, so only the local header tells.
pub fn zip_local_header_encrypted(data: &[u8]) -> bool {
    data.len() >= 8 && data.starts_with(b"PK\x03\x04") && data[6] & 0x01 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RAR 5 block: crc (not checked here), header size, header.
    fn rar5_block(header: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0, header.len() as u8];
        b.extend_from_slice(header);
        b
    }

    #[test]
    fn rar5_encryption_header_and_encrypted_file() {
        let sig = b"Rar!\x1A\x07\x01\x00".to_vec();
        // Main archive header (type 1, no flags, archive flags 0), then end (5).
        let main = rar5_block(&[1, 0, 0]);
        let end = rar5_block(&[5, 0, 0]);
        let plain = [sig.clone(), main.clone(), end.clone()].concat();
        assert_eq!(rar(&plain), None);
        // Archive encryption header (type 4) right after the signature.
        let enc = rar5_block(&[4, 0, 0, 0, 15]);
        assert_eq!(
            rar(&[sig.clone(), enc].concat()),
            Some(HeaderEncryption::Headers)
        );
        // File header: type 2, flags = extra + data, extra size 3, data size 2,
        // file fields (flags 0, size 2, attrs 0, comp 0, os 0, name len 1, "a"),
        // extra record: size 2, type 1 (encryption), one byte of data.
        let file = rar5_block(&[2, 3, 3, 2, 0, 2, 0, 0, 0, 1, b'a', 2, 1, 0]);
        let with_data = [sig, main, file, vec![0xAA, 0xBB], end].concat();
        assert_eq!(rar(&with_data), Some(HeaderEncryption::Content));
    }

    #[test]
    fn rar4_flags() {
        let sig = b"Rar!\x1A\x07\x00".to_vec();
        let main = |flags: u16| {
            let f = flags.to_le_bytes();
            vec![0, 0, 0x73, f[0], f[1], 13, 0, 0, 0, 0, 0, 0, 0]
        };
        // File header: LONG_BLOCK | password, size 32 with pack size 3.
        let mut file = vec![0, 0, 0x74, 0x04, 0x80, 32, 0, 3, 0, 0, 0];
        file.resize(32, 0);
        file.extend_from_slice(&[1, 2, 3]);
        let end = vec![0, 0, 0x7B, 0, 0x40, 7, 0];
        assert_eq!(
            rar(&[sig.clone(), main(0x0080)].concat()),
            Some(HeaderEncryption::Headers)
        );
        assert_eq!(
            rar(&[sig.clone(), main(0), file, end.clone()].concat()),
            Some(HeaderEncryption::Content)
        );
        assert_eq!(rar(&[sig, main(0), end].concat()), None);
    }

    #[test]
    fn hostile_headers_do_not_panic() {
        for data in [
            &b"Rar!\x1A\x07\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
            &b"Rar!\x1A\x07\x00\x00\x00\x74\x00\x80\x00\x00\xff\xff\xff\xff"[..],
            &b"7z\xBC\xAF\x27\x1C\x00\x04\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00"[..],
        ] {
            let _ = rar(data);
            let _ = seven_zip(data);
        }
    }
}
