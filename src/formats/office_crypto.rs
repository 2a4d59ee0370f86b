//! Password-encrypted Office documents ([MS-OFFCRYPTO], [MS-XLS] 2.2.10,
//! [MS-DOC] 2.2.6, [MS-PPT] 2.3.7): tell the scheme, try Excel's default
//! password `VelvetSweatshop` (a workbook encrypted with it opens without a
//! prompt, yet hides its macros from scanners) and then the candidates mined
//! from the mail, and hand back the decrypted document.
//!
//! Schemes told apart:
//! - `.xls` (BIFF8): a `FILEPASS` record in the `Workbook` stream — XOR
//!   obfuscation, RC4 (40-bit "standard") or RC4 CryptoAPI;
//! - `.doc`: the FIB's `fEncrypted` flag, with `fObfuscated` (XOR) or the
//!   encryption header at the start of the table stream (RC4 / CryptoAPI);
//! - `.ppt`: the `Current User` stream's encrypted header token (the
//!   `CryptSession10Container`, RC4 CryptoAPI);
//! - OOXML in a compound file: `EncryptionInfo` + `EncryptedPackage`,
//!   ECMA-376 standard (AES, SHA-1) or agile (AES, SHA-1/2, XML header).
//!
//! Decrypted: RC4 and RC4 CryptoAPI `.xls` and `.doc` (written back as a
//! compound file whose other streams are copied as they are), standard and
//! agile OOXML (the inner zip). Told but not decrypted: XOR obfuscation and
//! `.ppt` (its persist directory is encrypted object by object).
//!
//! In a decrypted `.xls` the record headers, `BOF` and the other records the
//! spec leaves in the clear stay as they were, and `FILEPASS` keeps its size
//! (every `BoundSheet8` offset stays right) but its type becomes 0, an
//! unknown record: a BIFF reader then walks the whole clear workbook. In a
//! decrypted `.doc` the FIB's `fEncrypted` and `fObfuscated` bits are
//! cleared.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use aes::cipher::{BlockCipherDecrypt, KeyInit};
use base64::Engine as _;
use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::{Sha256, Sha384, Sha512};

use super::le::{u16_at, u32_at};
use super::{Budget, Embedded, EncryptedItem, Exhausted, IndicatorKind, Opened, Passwords};

/// A document not decrypted although its password is known, or whose
/// passwords are not tried; the text goes into the opener's limits.
#[derive(Debug, thiserror::Error)]
enum OfficeCryptoError {
    /// An agile document asks for more key derivation rounds than allowed.
    #[error(
        "ECMA-376 agile: spin count {spin_count} is over the limit {limit}: passwords not tried"
    )]
    SpinCount { spin_count: u32, limit: u32 },
    /// The message's time or bytes ran out.
    #[error(transparent)]
    Budget(#[from] Exhausted),
    /// The compound file could not be read or written again.
    #[error(transparent)]
    Cfb(#[from] std::io::Error),
    #[error("more than {MAX_ENTRIES} streams")]
    TooManyStreams,
    #[error("EncryptedPackage unreadable")]
    PackageUnreadable,
    #[error("EncryptedPackage too short")]
    PackageTooShort,
    #[error("EncryptedPackage declares {declared} bytes but holds {stored}")]
    PackageSize { declared: u64, stored: u64 },
    /// A scheme and key we have no decryption for.
    #[error("this scheme is not decrypted")]
    NotDecrypted,
}

/// Excel's built-in password: a workbook "encrypted" with it opens without
/// asking anyone anything.
pub const DEFAULT_PASSWORD: &str = "VelvetSweatshop";

/// The ECMA-376 standard scheme's fixed number of hash rounds.
const STANDARD_SPIN_COUNT: u32 = 50_000;
/// Streams and storages copied at most into a decrypted compound file.
const MAX_ENTRIES: usize = 4_096;
/// RC4 re-keying block sizes: [MS-XLS] 2.2.10 and [MS-DOC] 2.2.6.2.
const XLS_BLOCK: usize = 1024;
const DOC_BLOCK: usize = 512;
/// The Word FibBase, never encrypted.
const FIB_BASE_LEN: usize = 68;
/// Agile packages are encrypted in segments of this size.
const AGILE_SEGMENT: usize = 4096;

/// Limits of this opener (proposed config key: `[limits]
/// max_office_spin_count`, default 100000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest agile `spinCount` tried. Office writes 100,000; the spec
    /// allows up to 10,000,000 and a hostile header may declare 2^32 - 1.
    /// A document over it is reported (`limits`) and not tried.
    pub max_spin_count: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_spin_count: 100_000,
        }
    }
}

/// The encryption scheme of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    XlsXor,
    XlsRc4,
    XlsRc4CryptoApi,
    DocXor,
    DocRc4,
    DocRc4CryptoApi,
    PptRc4CryptoApi,
    Ecma376Standard,
    Ecma376Agile,
    /// `EncryptionInfo` of a version this opener does not read
    /// (extensible encryption, damaged header).
    Ecma376Other,
}

impl Scheme {
    /// The name reviewers read (`EncryptedDocument` detail, item method).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::XlsXor => "Excel XOR obfuscation",
            Scheme::XlsRc4 => "Excel RC4",
            Scheme::XlsRc4CryptoApi => "Excel RC4 CryptoAPI",
            Scheme::DocXor => "Word XOR obfuscation",
            Scheme::DocRc4 => "Word RC4",
            Scheme::DocRc4CryptoApi => "Word RC4 CryptoAPI",
            Scheme::PptRc4CryptoApi => "PowerPoint RC4 CryptoAPI",
            Scheme::Ecma376Standard => "ECMA-376 standard",
            Scheme::Ecma376Agile => "ECMA-376 agile",
            Scheme::Ecma376Other => "ECMA-376 (other)",
        }
    }

    /// The stream that holds the encrypted content.
    fn item_name(self) -> &'static str {
        match self {
            Scheme::XlsXor | Scheme::XlsRc4 | Scheme::XlsRc4CryptoApi => "Workbook",
            Scheme::DocXor | Scheme::DocRc4 | Scheme::DocRc4CryptoApi => "WordDocument",
            Scheme::PptRc4CryptoApi => "PowerPoint Document",
            _ => "EncryptedPackage",
        }
    }
}

/// True when `data` is a compound file holding an encrypted Office document.
pub fn sniff(data: &[u8]) -> bool {
    scheme(data).is_some()
}

/// The encryption scheme of `data`, if it is an encrypted Office document.
pub fn scheme(data: &[u8]) -> Option<Scheme> {
    let doc = Doc::read(data).ok()?;
    doc.scheme()
}

/// Everything found in an encrypted Office document, with default limits.
pub fn open(data: &[u8], budget: &Budget, passwords: Passwords<'_>) -> Opened {
    open_with(data, budget, passwords, Limits::default())
}

/// Everything found in an encrypted Office document.
pub fn open_with(data: &[u8], budget: &Budget, passwords: Passwords<'_>, limits: Limits) -> Opened {
    let mut out = Opened::default();
    let Ok(doc) = Doc::read(data) else {
        return out;
    };
    let Some(scheme) = doc.scheme() else {
        return out;
    };
    out.indicator(IndicatorKind::EncryptedDocument, scheme.name());
    let mut item = EncryptedItem {
        name: scheme.item_name().to_string(),
        method: scheme.name().to_string(),
        opened_with: None,
    };
    let cipher = match doc.cipher(scheme, limits) {
        Ok(Some(c)) => c,
        Ok(None) => {
            out.encrypted.push(item);
            return out;
        }
        Err(why) => {
            out.limits.push(why.to_string());
            out.encrypted.push(item);
            return out;
        }
    };

    let mut found = None;
    let tries = std::iter::once(DEFAULT_PASSWORD).chain(
        passwords
            .candidates
            .iter()
            .map(String::as_str)
            .filter(|p| *p != DEFAULT_PASSWORD)
            .take(passwords.max_attempts),
    );
    for password in tries {
        if budget.expired() {
            out.limits.push(format!(
                "{}: the scan's time budget ran out while trying passwords",
                scheme.name()
            ));
            break;
        }
        match cipher.verify(password, budget) {
            Verified::Key(key) => {
                found = Some((password, key));
                break;
            }
            Verified::Wrong => {}
            Verified::OutOfTime => {
                out.limits.push(format!(
                    "{}: the scan's time budget ran out while deriving a key",
                    scheme.name()
                ));
                break;
            }
        }
    }
    if let Some((password, key)) = found {
        item.opened_with = Some(password.to_string());
        if password == DEFAULT_PASSWORD {
            out.indicator(IndicatorKind::DefaultPassword, DEFAULT_PASSWORD);
        }
        match doc.decrypt(scheme, &key, budget) {
            Ok(plain) => {
                let mut e = Embedded::new(None, plain, "decrypted Office document");
                e.decrypted = true;
                out.embedded.push(e);
            }
            Err(why) => out.limits.push(format!("{}: {why}", scheme.name())),
        }
    }
    out.encrypted.push(item);
    out
}

// ---------------------------------------------------------------------------
// The compound file and the streams that matter.

struct Doc<'a> {
    data: &'a [u8],
    /// Root streams read whole (only the few we need).
    workbook: Option<Vec<u8>>,
    word: Option<Vec<u8>>,
    current_user: Option<Vec<u8>>,
    encryption_info: Option<Vec<u8>>,
    has_package: bool,
}

type Cfb<'a> = cfb::CompoundFile<Cursor<&'a [u8]>>;

fn open_cfb(data: &[u8]) -> std::io::Result<Cfb<'_>> {
    if !data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Err(std::io::Error::other("not a compound file"));
    }
    cfb::CompoundFile::open(Cursor::new(data))
}

/// A stream read whole; no stream may be larger than the file holding it.
fn read_stream(cf: &mut Cfb<'_>, path: &Path, file_len: usize) -> Option<Vec<u8>> {
    read_stream_head(cf, path, file_len, usize::MAX)
}

/// The first `max` bytes of a stream (all of it if shorter).
fn read_stream_head(cf: &mut Cfb<'_>, path: &Path, file_len: usize, max: usize) -> Option<Vec<u8>> {
    if !cf.is_stream(path) {
        return None;
    }
    let mut s = cf.open_stream(path).ok()?;
    let len = usize::try_from(s.len()).ok()?;
    if len > file_len {
        return None;
    }
    let len = len.min(max);
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).ok()?;
    s.by_ref().take(len as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// How much of each stream telling the scheme needs: FILEPASS sits among
/// the first records, the FIB flags in the first bytes, and so on. Whole
/// streams are read only to decrypt.
const WORKBOOK_HEAD: usize = 64 << 10;
const WORD_HEAD: usize = 4 << 10;
const CURRENT_USER_HEAD: usize = 64;
const ENCRYPTION_INFO_MAX: usize = 1 << 20;
/// The Word encryption header (`lKey` bytes) is read at most this long.
const WORD_HEADER_MAX: usize = 64 << 10;

impl<'a> Doc<'a> {
    fn read(data: &'a [u8]) -> std::io::Result<Doc<'a>> {
        let mut cf = open_cfb(data)?;
        let n = data.len();
        let workbook = read_stream_head(&mut cf, Path::new("/Workbook"), n, WORKBOOK_HEAD);
        let word = read_stream_head(&mut cf, Path::new("/WordDocument"), n, WORD_HEAD);
        let current_user =
            read_stream_head(&mut cf, Path::new("/Current User"), n, CURRENT_USER_HEAD);
        let encryption_info = read_stream_head(
            &mut cf,
            Path::new("/EncryptionInfo"),
            n,
            ENCRYPTION_INFO_MAX,
        );
        let has_package = cf.is_stream("/EncryptedPackage");
        Ok(Doc {
            data,
            workbook,
            word,
            current_user,
            encryption_info,
            has_package,
        })
    }

    fn scheme(&self) -> Option<Scheme> {
        if let (Some(info), true) = (&self.encryption_info, self.has_package) {
            return Some(match version(info) {
                Some((3 | 4, 2)) => Scheme::Ecma376Standard,
                Some((4, 4)) => Scheme::Ecma376Agile,
                _ => Scheme::Ecma376Other,
            });
        }
        if let Some(wb) = &self.workbook {
            if let Some(fp) = filepass(wb) {
                return Some(match (u16_at(fp.data, 0), version(fp.data.get(2..)?)) {
                    (Some(0), _) => Scheme::XlsXor,
                    (Some(1), Some((1, 1))) => Scheme::XlsRc4,
                    (Some(1), _) => Scheme::XlsRc4CryptoApi,
                    _ => Scheme::XlsXor,
                });
            }
        }
        if let Some(word) = &self.word {
            let flags = u16_at(word, 0x0A)?;
            if u16_at(word, 0)? == 0xA5EC && flags & 0x0100 != 0 {
                if flags & 0x8000 != 0 {
                    return Some(Scheme::DocXor);
                }
                // The header's version is read when the table stream is.
                return Some(match self.word_table(4).as_deref().and_then(version) {
                    Some((1, 1)) => Scheme::DocRc4,
                    _ => Scheme::DocRc4CryptoApi,
                });
            }
        }
        if let Some(cu) = &self.current_user {
            // CurrentUserAtom: record header (8), size (4), headerToken (4).
            if u32_at(cu, 12) == Some(0xF3D1_C4DF) {
                return Some(Scheme::PptRc4CryptoApi);
            }
        }
        None
    }

    /// The first `max` bytes of the Word table stream named by
    /// `fWhichTblStm`.
    fn word_table(&self, max: usize) -> Option<Vec<u8>> {
        let flags = u16_at(self.word.as_ref()?, 0x0A)?;
        self.stream(word_table_name(flags), max)
    }

    /// The first `max` bytes of a stream, read again from the file.
    fn stream(&self, path: &str, max: usize) -> Option<Vec<u8>> {
        let mut cf = open_cfb(self.data).ok()?;
        read_stream_head(&mut cf, Path::new(path), self.data.len(), max)
    }

    /// The verifier of the scheme: `Ok(None)` when it is not one we
    /// decrypt, `Err` when a limit forbids trying.
    fn cipher(&self, scheme: Scheme, limits: Limits) -> Result<Option<Cipher>, OfficeCryptoError> {
        Ok(match scheme {
            Scheme::XlsRc4 | Scheme::XlsRc4CryptoApi => self
                .workbook
                .as_deref()
                .and_then(filepass)
                .and_then(|fp| fp.data.get(2..))
                .and_then(rc4_cipher),
            Scheme::DocRc4 | Scheme::DocRc4CryptoApi => {
                let word = self.word.as_deref().unwrap_or_default();
                let lkey = u32_at(word, 0x0E).unwrap_or(0) as usize;
                self.word_table(WORD_HEADER_MAX)
                    .and_then(|t| t.get(..lkey).map(<[u8]>::to_vec))
                    .and_then(|h| rc4_cipher(&h))
            }
            Scheme::Ecma376Standard => self
                .encryption_info
                .as_deref()
                .and_then(|i| i.get(4..))
                .and_then(standard_cipher),
            Scheme::Ecma376Agile => {
                let xml = self.encryption_info.as_deref().and_then(|i| i.get(8..));
                match xml.and_then(agile_cipher) {
                    Some(a) if a.spin_count > limits.max_spin_count => {
                        return Err(OfficeCryptoError::SpinCount {
                            spin_count: a.spin_count,
                            limit: limits.max_spin_count,
                        })
                    }
                    other => other.map(Cipher::Agile),
                }
            }
            _ => None,
        })
    }

    /// The decrypted document: a compound file for `.xls`/`.doc`, the inner
    /// zip for OOXML.
    fn decrypt(
        &self,
        scheme: Scheme,
        key: &Key,
        budget: &Budget,
    ) -> Result<Vec<u8>, OfficeCryptoError> {
        if matches!(key, Key::Rc4(_)) {
            // The decrypted streams, before they are written back (which
            // `rewrite_cfb` charges again): together no larger than the file.
            budget.take(self.data.len() as u64)?;
        }
        match (scheme, key) {
            (Scheme::XlsRc4 | Scheme::XlsRc4CryptoApi, Key::Rc4(k)) => {
                let wb = self.stream("/Workbook", usize::MAX).unwrap_or_default();
                let clear = decrypt_workbook(&wb, k);
                rewrite_cfb(self.data, budget, &[("/Workbook".into(), clear)])
            }
            (Scheme::DocRc4 | Scheme::DocRc4CryptoApi, Key::Rc4(k)) => {
                let word = self.stream("/WordDocument", usize::MAX).unwrap_or_default();
                let flags = u16_at(&word, 0x0A).unwrap_or(0);
                let lkey = u32_at(&word, 0x0E).unwrap_or(0) as usize;
                let mut clear_word = rc4_positional(&word, k, DOC_BLOCK);
                restore(&mut clear_word, &word, 0, FIB_BASE_LEN);
                if let Some(f) = clear_word.get_mut(0x0B) {
                    // fEncrypted (0x0100) and fObfuscated (0x8000) off.
                    *f &= !(0x01 | 0x80);
                }
                let mut replaced = vec![(PathBuf::from("/WordDocument"), clear_word)];
                let table_name = word_table_name(flags);
                if let Some(table) = self.word_table(usize::MAX) {
                    let mut clear = rc4_positional(&table, k, DOC_BLOCK);
                    restore(&mut clear, &table, 0, lkey);
                    replaced.push((table_name.into(), clear));
                }
                let mut cf = open_cfb(self.data)?;
                if let Some(data) = read_stream(&mut cf, Path::new("/Data"), self.data.len()) {
                    replaced.push(("/Data".into(), rc4_positional(&data, k, DOC_BLOCK)));
                }
                rewrite_cfb(self.data, budget, &replaced)
            }
            (Scheme::Ecma376Standard, Key::Aes(aes)) => {
                let package = self.package()?;
                decrypt_standard_package(&package, aes, budget)
            }
            (Scheme::Ecma376Agile, Key::Agile(k)) => {
                let package = self.package()?;
                decrypt_agile_package(&package, k, budget)
            }
            _ => Err(OfficeCryptoError::NotDecrypted),
        }
    }

    fn package(&self) -> Result<Vec<u8>, OfficeCryptoError> {
        let mut cf = open_cfb(self.data)?;
        read_stream(&mut cf, Path::new("/EncryptedPackage"), self.data.len())
            .ok_or(OfficeCryptoError::PackageUnreadable)
    }
}

fn word_table_name(fib_flags: u16) -> &'static str {
    if fib_flags & 0x0200 != 0 {
        "/1Table"
    } else {
        "/0Table"
    }
}

/// An `EncryptionVersionInfo`: (major, minor).
fn version(d: &[u8]) -> Option<(u16, u16)> {
    Some((u16_at(d, 0)?, u16_at(d, 2)?))
}

// ---------------------------------------------------------------------------
// BIFF8 records.

const BOF: u16 = 0x0809;
const FILEPASS: u16 = 0x002F;
const BOUNDSHEET8: u16 = 0x0085;
/// Records [MS-XLS] 2.2.10 leaves unencrypted: BOF, FILEPASS, UsrExcl,
/// FileLock, InterfaceHdr, RRDInfo, RRDHead.
const CLEAR_RECORDS: [u16; 7] = [BOF, FILEPASS, 0x0194, 0x0195, 0x00E1, 0x0196, 0x0138];

struct Record<'a> {
    kind: u16,
    /// Offset of the record header in the stream.
    at: usize,
    data: &'a [u8],
}

/// The records of a BIFF stream, stopping at the first one cut short.
fn records(stream: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let kind = u16_at(stream, pos)?;
        let len = usize::from(u16_at(stream, pos + 2)?);
        let data = stream.get(pos + 4..pos + 4 + len)?;
        let r = Record {
            kind,
            at: pos,
            data,
        };
        pos += 4 + len;
        Some(r)
    })
}

/// The FILEPASS record, which must come right after the first BOF (a
/// handful of records such as InterfaceHdr are tolerated before it).
fn filepass(stream: &[u8]) -> Option<Record<'_>> {
    let mut recs = records(stream);
    if recs.next()?.kind != BOF {
        return None;
    }
    recs.take(16).find(|r| r.kind == FILEPASS)
}

/// The Workbook stream decrypted record by record ([MS-XLS] 2.2.10): the
/// keystream runs over the whole stream by offset, record headers and the
/// records listed in `CLEAR_RECORDS` stay as they were, so does the
/// `lbPlyPos` of each BoundSheet8; FILEPASS becomes an unknown record.
fn decrypt_workbook(wb: &[u8], key: &Rc4Key) -> Vec<u8> {
    let mut clear = rc4_positional(wb, key, XLS_BLOCK);
    let mut seen_filepass = false;
    for r in records(wb) {
        restore(&mut clear, wb, r.at, 4);
        let body = r.at + 4;
        if !seen_filepass || CLEAR_RECORDS.contains(&r.kind) {
            restore(&mut clear, wb, body, r.data.len());
        } else if r.kind == BOUNDSHEET8 {
            restore(&mut clear, wb, body, r.data.len().min(4));
        }
        if r.kind == FILEPASS && !seen_filepass {
            seen_filepass = true;
            if let Some(t) = clear.get_mut(r.at..r.at + 2) {
                t.copy_from_slice(&[0, 0]);
            }
        }
    }
    clear
}

/// Copy `len` bytes at `at` from `orig` back into `clear`.
fn restore(clear: &mut [u8], orig: &[u8], at: usize, len: usize) {
    let end = at.saturating_add(len).min(orig.len()).min(clear.len());
    if at < end {
        clear[at..end].copy_from_slice(&orig[at..end]);
    }
}

/// A compound file like `data` with some streams replaced.
fn rewrite_cfb(
    data: &[u8],
    budget: &Budget,
    replaced: &[(PathBuf, Vec<u8>)],
) -> Result<Vec<u8>, OfficeCryptoError> {
    let cf = open_cfb(data)?;
    let entries: Vec<(PathBuf, bool, u64)> = cf
        .walk()
        .filter(|e| !e.is_root())
        .take(MAX_ENTRIES + 1)
        .map(|e| (e.path().to_path_buf(), e.is_stream(), e.len()))
        .collect();
    if entries.len() > MAX_ENTRIES {
        return Err(OfficeCryptoError::TooManyStreams);
    }
    // The copy is produced output: charge it (streams plus a sector of
    // directory and allocation overhead per entry) before writing.
    let total = entries
        .iter()
        .map(|(_, _, len)| len.saturating_add(512))
        .fold(data.len() as u64, u64::saturating_add);
    budget.take(total)?;
    let mut src = cf;
    let mut dst = cfb::CompoundFile::create(Cursor::new(Vec::new()))?;
    for (path, is_stream, _) in &entries {
        if budget.expired() {
            return Err(Exhausted::Time.into());
        }
        if !is_stream {
            dst.create_storage_all(path)?;
            continue;
        }
        let bytes = match replaced.iter().find(|(p, _)| p == path) {
            Some((_, b)) => b.clone(),
            None => read_stream(&mut src, path, data.len()).unwrap_or_default(),
        };
        let mut s = dst.create_stream(path)?;
        s.write_all(&bytes)?;
    }
    dst.flush()?;
    Ok(dst.into_inner().into_inner())
}

// ---------------------------------------------------------------------------
// Keys and password verification.

enum Cipher {
    /// RC4 40-bit ([MS-OFFCRYPTO] 2.3.6): salt, encrypted verifier + hash.
    Rc4 {
        salt: [u8; 16],
        verifier: [u8; 32],
    },
    /// RC4 CryptoAPI (2.3.5): key length in bytes.
    Rc4CryptoApi {
        key_len: usize,
        salt: Vec<u8>,
        verifier: [u8; 16],
        verifier_hash: [u8; 20],
    },
    /// ECMA-376 standard (2.3.4.5): AES, SHA-1, 50,000 rounds.
    Standard {
        key_len: usize,
        salt: Vec<u8>,
        verifier: [u8; 16],
        verifier_hash: [u8; 32],
    },
    Agile(Agile),
}

enum Verified {
    Key(Box<Key>),
    Wrong,
    OutOfTime,
}

enum Key {
    Rc4(Rc4Key),
    Aes(AesKey),
    Agile(AgileKey),
}

enum Rc4Key {
    /// H1 of 2.3.6.2 (5 bytes): block key = MD5(H1 + block).
    Standard([u8; 5]),
    /// H0 of 2.3.5.2 and the key length in bytes.
    CryptoApi([u8; 20], usize),
}

impl Rc4Key {
    fn block(&self, block: u32) -> Rc4 {
        match self {
            Rc4Key::Standard(h1) => {
                let k = Md5::new()
                    .chain_update(h1)
                    .chain_update(block.to_le_bytes())
                    .finalize();
                Rc4::new(&k)
            }
            Rc4Key::CryptoApi(h0, len) => {
                let h = Sha1::new()
                    .chain_update(h0)
                    .chain_update(block.to_le_bytes())
                    .finalize();
                let mut k = [0u8; 16];
                let n = (*len).min(16);
                k[..n].copy_from_slice(&h[..n]);
                // 40-bit keys are used as 128-bit keys padded with zeros.
                Rc4::new(if *len == 5 { &k[..] } else { &k[..n] })
            }
        }
    }
}

/// The RC4 40-bit key of 2.3.6.2: H0 = MD5(password), H1 = MD5 of 16
/// times (H0[..5] + salt), cut to 5 bytes.
fn rc4_standard_key(pw: &[u8], salt: &[u8]) -> Rc4Key {
    let h0 = Md5::digest(pw);
    let mut buf = Vec::with_capacity(16 * 21);
    for _ in 0..16 {
        buf.extend_from_slice(&h0[..5]);
        buf.extend_from_slice(salt);
    }
    let mut h1 = [0u8; 5];
    h1.copy_from_slice(&Md5::digest(&buf)[..5]);
    Rc4Key::Standard(h1)
}

/// The RC4 CryptoAPI key of 2.3.5.2: H0 = SHA-1(salt + password).
fn cryptoapi_key(pw: &[u8], salt: &[u8], key_len: usize) -> Rc4Key {
    let h0: [u8; 20] = Sha1::new()
        .chain_update(salt)
        .chain_update(pw)
        .finalize()
        .into();
    Rc4Key::CryptoApi(h0, key_len)
}

fn utf16(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Parse an RC4 encryption header (`EncryptionVersionInfo` first), as
/// found in FILEPASS and at the start of the Word table stream.
fn rc4_cipher(h: &[u8]) -> Option<Cipher> {
    match version(h)? {
        (1, 1) => Some(Cipher::Rc4 {
            salt: h.get(4..20)?.try_into().ok()?,
            verifier: h.get(20..52)?.try_into().ok()?,
        }),
        (2..=4, 2) => {
            let std = parse_standard(h.get(4..)?)?;
            // AlgID 0x6801 = RC4; 0 = by flags (fCryptoAPI without fAES).
            if std.alg_id != 0x6801 && std.alg_id != 0 {
                return None;
            }
            let bits = if std.key_bits == 0 { 40 } else { std.key_bits };
            if !(40..=128).contains(&bits) || bits % 8 != 0 {
                return None;
            }
            Some(Cipher::Rc4CryptoApi {
                key_len: bits as usize / 8,
                salt: std.salt,
                verifier: std.verifier,
                verifier_hash: std.verifier_hash.get(..20)?.try_into().ok()?,
            })
        }
        _ => None,
    }
}

/// The standard `EncryptionHeader` + `EncryptionVerifier` after the
/// version: flags (4), header size (4), header, verifier.
struct StandardHeader {
    alg_id: u32,
    key_bits: u32,
    salt: Vec<u8>,
    verifier: [u8; 16],
    verifier_hash: Vec<u8>,
}

fn parse_standard(d: &[u8]) -> Option<StandardHeader> {
    let header_size = u32_at(d, 4)? as usize;
    let header = d.get(8..8usize.checked_add(header_size)?)?;
    let alg_id = u32_at(header, 8)?;
    let key_bits = u32_at(header, 16)?;
    let v = d.get(8 + header_size..)?;
    let salt_size = u32_at(v, 0)? as usize;
    if salt_size != 16 {
        return None;
    }
    let salt = v.get(4..20)?.to_vec();
    let verifier = v.get(20..36)?.try_into().ok()?;
    // The verifier hash is 20 bytes (SHA-1), stored padded to 32 for AES
    // (AlgID 0x660E-0x6610, or 0 with the header's fAES flag 0x20).
    let header_flags = u32_at(header, 0)?;
    let aes = (0x660E..=0x6610).contains(&alg_id) || alg_id == 0 && header_flags & 0x20 != 0;
    // VerifierHashSize (always 20) must be there.
    u32_at(v, 36)?;
    let stored = if aes { 32 } else { 20 };
    let verifier_hash = v.get(40..40 + stored)?.to_vec();
    Some(StandardHeader {
        alg_id,
        key_bits,
        salt,
        verifier,
        verifier_hash,
    })
}

fn standard_cipher(d: &[u8]) -> Option<Cipher> {
    let std = parse_standard(d)?;
    // AES-128, -192, -256.
    let key_len = match (std.alg_id, std.key_bits) {
        (0x660E | 0, 128) => 16,
        (0x660F, 192) => 24,
        (0x6610, 256) => 32,
        _ => return None,
    };
    Some(Cipher::Standard {
        key_len,
        salt: std.salt,
        verifier: std.verifier,
        verifier_hash: std.verifier_hash.get(..32)?.try_into().ok()?,
    })
}

impl Cipher {
    fn verify(&self, password: &str, budget: &Budget) -> Verified {
        let pw = utf16(password);
        match self {
            Cipher::Rc4 { salt, verifier } => {
                let key = rc4_standard_key(&pw, salt);
                let mut v = *verifier;
                key.block(0).apply(&mut v);
                if Md5::digest(&v[..16])[..] == v[16..] {
                    Verified::Key(Box::new(Key::Rc4(key)))
                } else {
                    Verified::Wrong
                }
            }
            Cipher::Rc4CryptoApi {
                key_len,
                salt,
                verifier,
                verifier_hash,
            } => {
                let key = cryptoapi_key(&pw, salt, *key_len);
                let mut v = [0u8; 36];
                v[..16].copy_from_slice(verifier);
                v[16..].copy_from_slice(verifier_hash);
                key.block(0).apply(&mut v);
                if Sha1::digest(&v[..16])[..] == v[16..] {
                    Verified::Key(Box::new(Key::Rc4(key)))
                } else {
                    Verified::Wrong
                }
            }
            Cipher::Standard {
                key_len,
                salt,
                verifier,
                verifier_hash,
            } => {
                let Some(h) = spin::<Sha1>(salt, &pw, STANDARD_SPIN_COUNT, budget) else {
                    return Verified::OutOfTime;
                };
                let hfinal = Sha1::new()
                    .chain_update(&h)
                    .chain_update(0u32.to_le_bytes())
                    .finalize();
                let mut x = Vec::with_capacity(40);
                for pad in [0x36u8, 0x5C] {
                    let mut buf = [pad; 64];
                    for (b, h) in buf.iter_mut().zip(hfinal.iter()) {
                        *b ^= h;
                    }
                    x.extend_from_slice(&Sha1::digest(buf));
                }
                let Some(aes) = AesKey::new(&x[..*key_len]) else {
                    return Verified::Wrong;
                };
                let mut v = *verifier;
                aes.decrypt_ecb(&mut v);
                let mut vh = *verifier_hash;
                aes.decrypt_ecb(&mut vh);
                if Sha1::digest(v)[..] == vh[..20] {
                    Verified::Key(Box::new(Key::Aes(aes)))
                } else {
                    Verified::Wrong
                }
            }
            Cipher::Agile(a) => a.verify(&pw, budget),
        }
    }
}

/// `H0 = H(salt + password)`, then `Hn = H(n as u32 LE + Hn-1)` `count`
/// times ([MS-OFFCRYPTO] 2.3.4.7/2.3.4.11). `None` past the deadline.
/// Remembered for the documents seen last ([`SpinMemo`]).
fn spin<D: Digest>(salt: &[u8], pw: &[u8], count: u32, budget: &Budget) -> Option<Vec<u8>> {
    let key = SpinMemo::key(std::any::type_name::<D>(), salt, pw, count);
    if let Some(h) = SpinMemo::get(&key) {
        return Some(h);
    }
    let h = spin_uncached::<D>(salt, pw, count, budget)?;
    SpinMemo::put(key, &h);
    Some(h)
}

fn spin_uncached<D: Digest>(
    salt: &[u8],
    pw: &[u8],
    count: u32,
    budget: &Budget,
) -> Option<Vec<u8>> {
    let mut h = D::new().chain_update(salt).chain_update(pw).finalize();
    for i in 0..count {
        if i % 4096 == 0 && budget.expired() {
            return None;
        }
        h = D::new()
            .chain_update(i.to_le_bytes())
            .chain_update(&h)
            .finalize();
    }
    Some(h.to_vec())
}

/// The spun hashes of the last [`SpinMemo::CAPACITY`] (password, salt)
/// pairs, for the whole process. A campaign sends one encrypted document
/// to every recipient, and each try of a password on it costs up to
/// 100,000 hashes (about 20 ms): with this, the first copy pays and the
/// others look it up. A memo of a pure function: what a scan finds does not
/// depend on it. Keyed by a SHA-256 of everything the hash depends on.
struct SpinMemo;

type SpinKey = [u8; 32];

static SPIN_MEMO: std::sync::Mutex<Option<SpinMemoState>> = std::sync::Mutex::new(None);

#[derive(Default)]
struct SpinMemoState {
    hashes: std::collections::HashMap<SpinKey, Vec<u8>>,
    /// Keys oldest first: the first goes when the memo is full.
    order: std::collections::VecDeque<SpinKey>,
}

impl SpinMemo {
    const CAPACITY: usize = 512;

    fn key(hash: &str, salt: &[u8], pw: &[u8], count: u32) -> SpinKey {
        Sha256::new()
            .chain_update((hash.len() as u64).to_le_bytes())
            .chain_update(hash)
            .chain_update(count.to_le_bytes())
            .chain_update((salt.len() as u64).to_le_bytes())
            .chain_update(salt)
            .chain_update(pw)
            .finalize()
            .into()
    }

    fn get(key: &SpinKey) -> Option<Vec<u8>> {
        let memo = SPIN_MEMO.lock().unwrap_or_else(|e| e.into_inner());
        memo.as_ref()?.hashes.get(key).cloned()
    }

    fn put(key: SpinKey, h: &[u8]) {
        let mut memo = SPIN_MEMO.lock().unwrap_or_else(|e| e.into_inner());
        let memo = memo.get_or_insert_with(SpinMemoState::default);
        if memo.hashes.insert(key, h.to_vec()).is_none() {
            memo.order.push_back(key);
        }
        while memo.order.len() > Self::CAPACITY {
            if let Some(old) = memo.order.pop_front() {
                memo.hashes.remove(&old);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// RC4.

/// RC4 (a few lines, any key length 1..=256; the cipher of the 1990s Office
/// formats).
struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u8; 256];
        for (i, v) in s.iter_mut().enumerate() {
            *v = i as u8;
        }
        if !key.is_empty() {
            let mut j = 0u8;
            for i in 0..256 {
                j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
                s.swap(i, j as usize);
            }
        }
        Rc4 { s, i: 0, j: 0 }
    }

    fn apply(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.s[self.i as usize]);
            self.s.swap(self.i as usize, self.j as usize);
            let k =
                self.s[(self.s[self.i as usize].wrapping_add(self.s[self.j as usize])) as usize];
            *b ^= k;
        }
    }
}

/// A stream decrypted by offset: block `n` (of `block` bytes) uses the key
/// of block `n`, from its first byte.
fn rc4_positional(data: &[u8], key: &Rc4Key, block: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    for (n, chunk) in out.chunks_mut(block).enumerate() {
        key.block(n as u32).apply(chunk);
    }
    out
}

// ---------------------------------------------------------------------------
// AES.

enum AesKey {
    A128(aes::Aes128),
    A192(aes::Aes192),
    A256(aes::Aes256),
}

impl AesKey {
    fn new(key: &[u8]) -> Option<AesKey> {
        Some(match key.len() {
            16 => AesKey::A128(aes::Aes128::new_from_slice(key).ok()?),
            24 => AesKey::A192(aes::Aes192::new_from_slice(key).ok()?),
            32 => AesKey::A256(aes::Aes256::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    fn decrypt_block(&self, block: &mut [u8]) {
        let mut b = aes::Block::default();
        b.copy_from_slice(block);
        match self {
            AesKey::A128(c) => c.decrypt_block(&mut b),
            AesKey::A192(c) => c.decrypt_block(&mut b),
            AesKey::A256(c) => c.decrypt_block(&mut b),
        }
        block.copy_from_slice(&b);
    }

    /// ECB over whole blocks; a trailing partial block is left alone.
    fn decrypt_ecb(&self, data: &mut [u8]) {
        for block in data.chunks_exact_mut(16) {
            self.decrypt_block(block);
        }
    }

    /// CBC over whole blocks with `iv`.
    fn decrypt_cbc(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut prev = *iv;
        for block in data.chunks_exact_mut(16) {
            let mut cipher = [0u8; 16];
            cipher.copy_from_slice(block);
            self.decrypt_block(block);
            for (b, p) in block.iter_mut().zip(prev.iter()) {
                *b ^= p;
            }
            prev = cipher;
        }
    }
}

/// `EncryptedPackage`: the clear size (u64 LE), then the ciphertext.
fn package_size(package: &[u8], budget: &Budget) -> Result<usize, OfficeCryptoError> {
    let declared = u64::from_le_bytes(
        package
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(OfficeCryptoError::PackageTooShort)?,
    );
    let stored = package.len().saturating_sub(8) as u64;
    if declared > stored {
        return Err(OfficeCryptoError::PackageSize { declared, stored });
    }
    budget.take(stored)?;
    Ok(declared as usize)
}

fn decrypt_standard_package(
    package: &[u8],
    key: &AesKey,
    budget: &Budget,
) -> Result<Vec<u8>, OfficeCryptoError> {
    let size = package_size(package, budget)?;
    let mut out = package[8..].to_vec();
    for (i, chunk) in out.chunks_mut(1 << 16).enumerate() {
        if i % 16 == 0 && budget.expired() {
            return Err(Exhausted::Time.into());
        }
        key.decrypt_ecb(chunk);
    }
    out.truncate(size);
    Ok(out)
}

// ---------------------------------------------------------------------------
// ECMA-376 agile.

#[derive(Clone, Copy, PartialEq, Eq)]
enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn parse(name: &str) -> Option<HashAlg> {
        Some(match name {
            "SHA1" | "SHA-1" => HashAlg::Sha1,
            "SHA256" => HashAlg::Sha256,
            "SHA384" => HashAlg::Sha384,
            "SHA512" => HashAlg::Sha512,
            _ => return None,
        })
    }

    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn h<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => h::<Sha1>(parts),
            HashAlg::Sha256 => h::<Sha256>(parts),
            HashAlg::Sha384 => h::<Sha384>(parts),
            HashAlg::Sha512 => h::<Sha512>(parts),
        }
    }

    fn spin(self, salt: &[u8], pw: &[u8], count: u32, budget: &Budget) -> Option<Vec<u8>> {
        match self {
            HashAlg::Sha1 => spin::<Sha1>(salt, pw, count, budget),
            HashAlg::Sha256 => spin::<Sha256>(salt, pw, count, budget),
            HashAlg::Sha384 => spin::<Sha384>(salt, pw, count, budget),
            HashAlg::Sha512 => spin::<Sha512>(salt, pw, count, budget),
        }
    }
}

struct Agile {
    spin_count: u32,
    /// The password key encryptor.
    hash: HashAlg,
    key_bytes: usize,
    salt: Vec<u8>,
    verifier_input: Vec<u8>,
    verifier_value: Vec<u8>,
    key_value: Vec<u8>,
    /// The package's own key data.
    data_hash: HashAlg,
    data_salt: Vec<u8>,
}

struct AgileKey {
    aes: AesKey,
    data_hash: HashAlg,
    data_salt: Vec<u8>,
}

/// The attributes of the first element named `tag` (any namespace prefix).
fn element<'x>(xml: &'x str, tag: &str) -> Option<&'x str> {
    let mut from = 0;
    while let Some(i) = xml.get(from..)?.find(tag) {
        let at = from + i;
        let before = xml.get(..at)?.chars().next_back();
        let after = xml.get(at + tag.len()..)?.chars().next();
        if matches!(before, Some('<' | ':')) && matches!(after, Some(' ' | '\t' | '\r' | '\n')) {
            let rest = xml.get(at..)?;
            return Some(&rest[..rest.find('>').unwrap_or(rest.len())]);
        }
        from = at + tag.len();
    }
    None
}

fn attr<'x>(elem: &'x str, name: &str) -> Option<&'x str> {
    let mut from = 0;
    loop {
        let i = elem.get(from..)?.find(name)? + from;
        let rest = elem.get(i + name.len()..)?;
        let before_ok = matches!(
            elem.get(..i)?.chars().next_back(),
            Some(' ' | '\t' | '\r' | '\n')
        );
        if before_ok {
            if let Some(v) = rest.strip_prefix("=\"") {
                return v.get(..v.find('"')?);
            }
        }
        from = i + name.len();
    }
}

fn b64(v: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()
}

fn agile_cipher(xml: &[u8]) -> Option<Agile> {
    let xml = std::str::from_utf8(xml).ok()?;
    let key_data = element(xml, "keyData")?;
    let enc_key = element(xml, "encryptedKey")?;
    let is_aes = |e: &str| attr(e, "cipherAlgorithm") == Some("AES");
    let is_cbc = |e: &str| attr(e, "cipherChaining") == Some("ChainingModeCBC");
    if !(is_aes(key_data) && is_aes(enc_key) && is_cbc(key_data) && is_cbc(enc_key)) {
        return None;
    }
    let key_bits: usize = attr(enc_key, "keyBits")?.parse().ok()?;
    if !matches!(key_bits, 128 | 192 | 256) {
        return None;
    }
    Some(Agile {
        spin_count: attr(enc_key, "spinCount")?.parse().ok()?,
        hash: HashAlg::parse(attr(enc_key, "hashAlgorithm")?)?,
        key_bytes: key_bits / 8,
        salt: b64(attr(enc_key, "saltValue")?)?,
        verifier_input: b64(attr(enc_key, "encryptedVerifierHashInput")?)?,
        verifier_value: b64(attr(enc_key, "encryptedVerifierHashValue")?)?,
        key_value: b64(attr(enc_key, "encryptedKeyValue")?)?,
        data_hash: HashAlg::parse(attr(key_data, "hashAlgorithm")?)?,
        data_salt: b64(attr(key_data, "saltValue")?)?,
    })
}

/// `bytes` cut or padded with 0x36 to `len` (2.3.4.11/2.3.4.12).
fn fit(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
    bytes.resize(len, 0x36);
    bytes
}

fn iv16(bytes: &[u8]) -> [u8; 16] {
    let mut iv = [0x36u8; 16];
    let n = bytes.len().min(16);
    iv[..n].copy_from_slice(&bytes[..n]);
    iv
}

impl Agile {
    const VERIFIER_INPUT_BLOCK: [u8; 8] = [0xfe, 0xa7, 0xd2, 0x76, 0x3b, 0x4b, 0x9e, 0x79];
    const VERIFIER_VALUE_BLOCK: [u8; 8] = [0xd7, 0xaa, 0x0f, 0x6d, 0x30, 0x61, 0x34, 0x4e];
    const KEY_VALUE_BLOCK: [u8; 8] = [0x14, 0x6e, 0x0b, 0xe7, 0xab, 0xac, 0xd0, 0xd6];

    fn verify(&self, pw: &[u8], budget: &Budget) -> Verified {
        let Some(h) = self.hash.spin(&self.salt, pw, self.spin_count, budget) else {
            return Verified::OutOfTime;
        };
        let iv = iv16(&self.salt);
        let decrypt = |block: &[u8], data: &[u8]| -> Option<Vec<u8>> {
            let key = fit(self.hash.hash(&[&h, block]), self.key_bytes);
            let aes = AesKey::new(&key)?;
            let mut d = data.to_vec();
            aes.decrypt_cbc(&iv, &mut d);
            Some(d)
        };
        let (Some(input), Some(value), Some(key)) = (
            decrypt(&Self::VERIFIER_INPUT_BLOCK, &self.verifier_input),
            decrypt(&Self::VERIFIER_VALUE_BLOCK, &self.verifier_value),
            decrypt(&Self::KEY_VALUE_BLOCK, &self.key_value),
        ) else {
            return Verified::Wrong;
        };
        let expect = self.hash.hash(&[input
            .get(..self.salt.len().min(input.len()))
            .unwrap_or(&input)]);
        let n = expect.len();
        if value.len() < n || value[..n] != expect[..] {
            return Verified::Wrong;
        }
        match key.get(..self.key_bytes).and_then(AesKey::new) {
            Some(aes) => Verified::Key(Box::new(Key::Agile(AgileKey {
                aes,
                data_hash: self.data_hash,
                data_salt: self.data_salt.clone(),
            }))),
            None => Verified::Wrong,
        }
    }
}

fn decrypt_agile_package(
    package: &[u8],
    key: &AgileKey,
    budget: &Budget,
) -> Result<Vec<u8>, OfficeCryptoError> {
    let size = package_size(package, budget)?;
    let mut out = package[8..].to_vec();
    for (i, segment) in out.chunks_mut(AGILE_SEGMENT).enumerate() {
        if i % 256 == 0 && budget.expired() {
            return Err(Exhausted::Time.into());
        }
        let iv = iv16(
            &key.data_hash
                .hash(&[&key.data_salt, &(i as u32).to_le_bytes()]),
        );
        key.aes.decrypt_cbc(&iv, segment);
    }
    out.truncate(size);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn rc4_matches_the_published_vectors() {
        let mut b = *b"Plaintext";
        Rc4::new(b"Key").apply(&mut b);
        assert_eq!(b, [0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3]);
        let mut b = *b"Attack at dawn";
        Rc4::new(b"Secret").apply(&mut b);
        assert_eq!(
            b,
            [0x45, 0xA0, 0x1F, 0x64, 0x5F, 0xC3, 0x5B, 0x38, 0x35, 0x52, 0x54, 0x4B, 0x9B, 0xF5]
        );
    }

    fn record(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut r = kind.to_le_bytes().to_vec();
        r.extend_from_slice(&(data.len() as u16).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    /// A compound file with the given streams.
    fn cfb_with(streams: &[(&str, &[u8])]) -> Vec<u8> {
        let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        for (path, data) in streams {
            if let Some(parent) = Path::new(path).parent() {
                cf.create_storage_all(parent).unwrap();
            }
            cf.create_stream(path).unwrap().write_all(data).unwrap();
        }
        cf.flush().unwrap();
        cf.into_inner().into_inner()
    }

    /// An RC4 FILEPASS body and its key: "standard" (1.1) or CryptoAPI
    /// (4.2, 128-bit), for `password`, with a verifier that checks.
    fn filepass_body(password: &str, cryptoapi: bool) -> (Vec<u8>, Rc4Key) {
        let pw = utf16(password);
        let salt = [7u8; 16];
        let verifier = *b"0123456789abcdef";
        let mut body = 1u16.to_le_bytes().to_vec(); // wEncryptionType: RC4
        if cryptoapi {
            let key = cryptoapi_key(&pw, &salt, 16);
            let mut v = verifier.to_vec();
            v.extend_from_slice(&Sha1::digest(verifier));
            key.block(0).apply(&mut v);
            body.extend_from_slice(&[4, 0, 2, 0]);
            body.extend_from_slice(&0u32.to_le_bytes()); // flags
            let mut header = Vec::new();
            for v in [0x04u32, 0, 0x6801, 0x8004, 128, 1, 0, 0] {
                header.extend_from_slice(&v.to_le_bytes());
            }
            body.extend_from_slice(&(header.len() as u32).to_le_bytes());
            body.extend_from_slice(&header);
            body.extend_from_slice(&16u32.to_le_bytes());
            body.extend_from_slice(&salt);
            body.extend_from_slice(&v[..16]);
            body.extend_from_slice(&20u32.to_le_bytes());
            body.extend_from_slice(&v[16..]);
            (body, key)
        } else {
            let key = rc4_standard_key(&pw, &salt);
            let mut v = verifier.to_vec();
            v.extend_from_slice(&Md5::digest(verifier));
            key.block(0).apply(&mut v);
            body.extend_from_slice(&[1, 0, 1, 0]);
            body.extend_from_slice(&salt);
            body.extend_from_slice(&v);
            (body, key)
        }
    }

    /// A BIFF8 workbook with FILEPASS, a sheet, a long record (across
    /// RC4 blocks) and EOF: (clear workbook, encrypted workbook).
    fn workbook(password: &str, cryptoapi: bool) -> (Vec<u8>, Vec<u8>) {
        let (fp, key) = filepass_body(password, cryptoapi);
        let mut sheet = 0x1234u32.to_le_bytes().to_vec();
        sheet.extend_from_slice(&[0, 1, 6, 0]);
        sheet.extend_from_slice(b"Macro1");
        let long: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let plain = [
            record(BOF, &[0, 6, 5, 0, 0, 0, 0, 0]),
            record(FILEPASS, &fp),
            record(BOUNDSHEET8, &sheet),
            record(0x00FC, &long),
            record(0x000A, &[]),
        ]
        .concat();
        // RC4 is its own inverse: "decrypting" the clear stream encrypts it.
        let mut enc = decrypt_workbook(&plain, &key);
        let at = records(&plain).find(|r| r.kind == FILEPASS).unwrap().at;
        enc[at..at + 2].copy_from_slice(&FILEPASS.to_le_bytes());
        assert_ne!(enc, plain);
        (plain, enc)
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

    fn decrypted_stream(o: &Opened, path: &str) -> Vec<u8> {
        let data = &o.embedded[0].data;
        let mut cf = cfb::CompoundFile::open(Cursor::new(&data[..])).unwrap();
        let mut out = Vec::new();
        cf.open_stream(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn xls_rc4_with_the_default_password_opens_without_candidates() {
        let (plain, enc) = workbook(DEFAULT_PASSWORD, false);
        let doc = cfb_with(&[("/Workbook", &enc), ("/_VBA_PROJECT_CUR/VBA/dir", b"vba")]);
        assert_eq!(scheme(&doc), Some(Scheme::XlsRc4));
        let o = run(&doc, &[], 0);
        assert!(o.indicators.contains(&crate::formats::Indicator {
            kind: IndicatorKind::DefaultPassword,
            detail: DEFAULT_PASSWORD.into()
        }));
        assert_eq!(
            o.encrypted[0].opened_with.as_deref(),
            Some(DEFAULT_PASSWORD)
        );
        assert!(o.embedded[0].decrypted);
        let wb = decrypted_stream(&o, "/Workbook");
        // Clear again, FILEPASS neutralised (type 0, same size).
        let mut expect = plain.clone();
        let at = records(&plain).find(|r| r.kind == FILEPASS).unwrap().at;
        expect[at..at + 2].copy_from_slice(&[0, 0]);
        assert_eq!(wb, expect);
        assert_eq!(decrypted_stream(&o, "/_VBA_PROJECT_CUR/VBA/dir"), b"vba");
    }

    #[test]
    fn xls_cryptoapi_opens_with_a_candidate_within_the_attempts() {
        let (plain, enc) = workbook("secret", true);
        let doc = cfb_with(&[("/Workbook", &enc)]);
        assert_eq!(scheme(&doc), Some(Scheme::XlsRc4CryptoApi));
        // Not within one attempt: "wrong" comes first.
        let o = run(&doc, &["wrong", "secret"], 1);
        assert!(o.embedded.is_empty());
        assert_eq!(o.encrypted[0].opened_with, None);
        let o = run(&doc, &["wrong", "secret"], 2);
        assert_eq!(o.encrypted[0].opened_with.as_deref(), Some("secret"));
        assert!(!o
            .indicators
            .iter()
            .any(|i| i.kind == IndicatorKind::DefaultPassword));
        let wb = decrypted_stream(&o, "/Workbook");
        assert_eq!(wb.len(), plain.len());
        // The sheet name and the long record read in the clear.
        assert!(wb.windows(6).any(|w| w == b"Macro1"));
        assert_eq!(
            &wb[wb.len() - 3004..wb.len() - 4],
            &plain[plain.len() - 3004..plain.len() - 4]
        );
    }

    #[test]
    fn doc_rc4_decrypts_and_clears_the_encrypted_flag() {
        let (body, key) = filepass_body("secret", false);
        let header = &body[2..]; // the table stream starts with the version
        let mut word = vec![0u8; 2000];
        word[0..2].copy_from_slice(&0xA5ECu16.to_le_bytes());
        word[0x0A..0x0C].copy_from_slice(&(0x0100u16 | 0x0200).to_le_bytes());
        word[0x0E..0x12].copy_from_slice(&(header.len() as u32).to_le_bytes());
        for (i, b) in word.iter_mut().enumerate().skip(FIB_BASE_LEN) {
            *b = b"Document_Open Shell "[i % 20];
        }
        let mut table = header.to_vec();
        table.extend_from_slice(&[0x55; 700]);
        let mut enc_word = rc4_positional(&word, &key, DOC_BLOCK);
        restore(&mut enc_word, &word, 0, FIB_BASE_LEN);
        let mut enc_table = rc4_positional(&table, &key, DOC_BLOCK);
        restore(&mut enc_table, &table, 0, header.len());
        let doc = cfb_with(&[("/WordDocument", &enc_word), ("/1Table", &enc_table)]);
        assert_eq!(scheme(&doc), Some(Scheme::DocRc4));
        let o = run(&doc, &["secret"], 3);
        assert_eq!(o.encrypted[0].opened_with.as_deref(), Some("secret"));
        let clear = decrypted_stream(&o, "/WordDocument");
        let mut expect = word.clone();
        expect[0x0B] &= !0x01;
        assert_eq!(clear, expect);
        assert_eq!(decrypted_stream(&o, "/1Table"), table);
    }

    fn agile_doc(spin_count: u64, key_bits: u32) -> Vec<u8> {
        let xml = format!(
            "<?xml version=\"1.0\"?><encryption xmlns=\"http://schemas.microsoft.com/office/2006/encryption\" \
             xmlns:p=\"http://schemas.microsoft.com/office/2006/keyEncryptor/password\">\
             <keyData saltSize=\"16\" blockSize=\"16\" keyBits=\"256\" hashSize=\"64\" cipherAlgorithm=\"AES\" \
             cipherChaining=\"ChainingModeCBC\" hashAlgorithm=\"SHA512\" saltValue=\"AAAAAAAAAAAAAAAAAAAAAA==\"/>\
             <keyEncryptors><keyEncryptor uri=\"http://schemas.microsoft.com/office/2006/keyEncryptor/password\">\
             <p:encryptedKey spinCount=\"{spin_count}\" saltSize=\"16\" blockSize=\"16\" keyBits=\"{key_bits}\" \
             hashSize=\"64\" cipherAlgorithm=\"AES\" cipherChaining=\"ChainingModeCBC\" hashAlgorithm=\"SHA512\" \
             saltValue=\"AAAAAAAAAAAAAAAAAAAAAA==\" encryptedVerifierHashInput=\"AAAAAAAAAAAAAAAAAAAAAA==\" \
             encryptedVerifierHashValue=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\" \
             encryptedKeyValue=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"/></keyEncryptor></keyEncryptors></encryption>"
        );
        let mut info = vec![4, 0, 4, 0, 0x40, 0, 0, 0];
        info.extend_from_slice(xml.as_bytes());
        let mut package = 16u64.to_le_bytes().to_vec();
        package.extend_from_slice(&[0u8; 16]);
        cfb_with(&[("/EncryptionInfo", &info), ("/EncryptedPackage", &package)])
    }

    #[test]
    fn a_hostile_spin_count_is_a_limit_not_a_hang() {
        let doc = agile_doc(u32::MAX as u64, 256);
        assert_eq!(scheme(&doc), Some(Scheme::Ecma376Agile));
        let o = run(&doc, &["a", "b"], 2);
        assert_eq!(o.limits.len(), 1);
        assert!(
            o.limits[0].contains("spin count 4294967295"),
            "{:?}",
            o.limits
        );
        assert!(o.embedded.is_empty());
        assert_eq!(o.encrypted[0].method, "ECMA-376 agile");
        // Over u32 does not parse: told, not tried.
        let o = run(&agile_doc(1 << 40, 256), &["a"], 1);
        assert!(o.limits.is_empty() && o.embedded.is_empty());
        assert!(o
            .indicators
            .iter()
            .any(|i| i.kind == IndicatorKind::EncryptedDocument));
    }

    #[test]
    fn errors_read_as_before() {
        assert_eq!(
            OfficeCryptoError::TooManyStreams.to_string(),
            "more than 4096 streams"
        );
        assert_eq!(
            OfficeCryptoError::from(Exhausted::Time).to_string(),
            "the scan's time budget ran out"
        );
        // A compound file that does not open keeps cfb's error as it is.
        let e = OfficeCryptoError::from(open_cfb(b"not ole").err().unwrap());
        assert_eq!(e.to_string(), "not a compound file");
    }

    #[test]
    fn wrong_passwords_and_odd_key_sizes_fail_cleanly() {
        // A small spin count: the wrong verifier is rejected quickly.
        let o = run(&agile_doc(10, 256), &["a", "b"], 2);
        assert!(o.embedded.is_empty() && o.limits.is_empty());
        assert_eq!(o.encrypted[0].opened_with, None);
        let o = run(&agile_doc(10, 12345), &["a"], 1);
        assert!(o.embedded.is_empty());
    }

    #[test]
    fn spun_hashes_are_remembered_and_the_memo_stays_bounded() {
        let budget = Budget::new(Instant::now() + Duration::from_secs(30), 1 << 20, 100);
        let salt = b"memo-test-salt-01";
        let h = spin::<Sha512>(salt, b"p\0w\0", 1000, &budget).unwrap();
        assert_eq!(
            h,
            spin_uncached::<Sha512>(salt, b"p\0w\0", 1000, &budget).unwrap()
        );
        let key = SpinMemo::key(std::any::type_name::<Sha512>(), salt, b"p\0w\0", 1000);
        assert_eq!(SpinMemo::get(&key), Some(h));
        // Anything the hash depends on makes another entry.
        for other in [
            SpinMemo::key(std::any::type_name::<Sha512>(), salt, b"p\0w\0", 1001),
            SpinMemo::key(std::any::type_name::<Sha256>(), salt, b"p\0w\0", 1000),
            SpinMemo::key(
                std::any::type_name::<Sha512>(),
                b"memo-test-salt-02",
                b"p\0w\0",
                1000,
            ),
            SpinMemo::key(std::any::type_name::<Sha512>(), salt, b"p\0W\0", 1000),
        ] {
            assert_ne!(other, key);
            assert_eq!(SpinMemo::get(&other), None);
        }
        // A flood of other documents pushes the oldest out; the memo stays
        // at its size.
        for i in 0..SpinMemo::CAPACITY + 10 {
            SpinMemo::put(SpinMemo::key("flood", &i.to_le_bytes(), b"", 0), &[0; 64]);
        }
        let len = SPIN_MEMO
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |m| m.hashes.len());
        assert!(len <= SpinMemo::CAPACITY, "{len}");
        assert_eq!(SpinMemo::get(&key), None);
    }

    #[test]
    fn the_deadline_stops_password_attempts() {
        let (_, enc) = workbook("secret", true);
        let doc = cfb_with(&[("/Workbook", &enc)]);
        let budget = Budget::new(Instant::now() - Duration::from_secs(1), 1 << 20, 100);
        let c = vec!["secret".to_string()];
        let o = open(
            &doc,
            &budget,
            Passwords {
                candidates: &c,
                max_attempts: 5,
            },
        );
        assert!(o.embedded.is_empty());
        assert!(o.limits[0].contains("time budget"), "{:?}", o.limits);
    }

    #[test]
    fn xor_obfuscation_and_powerpoint_are_told_not_opened() {
        let wb = [
            record(BOF, &[0, 6, 5, 0]),
            record(FILEPASS, &[0, 0, 0x12, 0x34, 0x56, 0x78]),
        ]
        .concat();
        let doc = cfb_with(&[("/Workbook", &wb)]);
        assert_eq!(scheme(&doc), Some(Scheme::XlsXor));
        let o = run(&doc, &["x"], 1);
        assert_eq!(o.encrypted[0].method, "Excel XOR obfuscation");
        assert!(o.embedded.is_empty());

        let mut cu = vec![0u8; 16];
        cu[12..16].copy_from_slice(&0xF3D1_C4DFu32.to_le_bytes());
        let ppt = cfb_with(&[("/Current User", &cu), ("/PowerPoint Document", &[0u8; 64])]);
        assert_eq!(scheme(&ppt), Some(Scheme::PptRc4CryptoApi));
        // An unencrypted deck: the other token.
        cu[12..16].copy_from_slice(&0xE391_C05Fu32.to_le_bytes());
        assert_eq!(scheme(&cfb_with(&[("/Current User", &cu)])), None);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let (_, enc) = workbook("secret", true);
        let doc = cfb_with(&[("/Workbook", &enc)]);
        let agile = agile_doc(10, 256);
        assert!(!sniff(b"PK\x03\x04"));
        assert!(run(b"", &[], 0).is_empty());
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for base in [&doc, &agile] {
            for round in 0..200 {
                let mut m = base.clone();
                for _ in 0..1 + round % 6 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let at = 512 + (seed as usize) % (m.len() - 512);
                    m[at] = (seed >> 40) as u8;
                }
                let _ = run(&m, &["secret"], 1);
                let _ = run(&m[..m.len() / 2], &[], 0);
            }
        }
    }
}
