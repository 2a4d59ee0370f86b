//! Encrypted Office documents, real ones: oletools' encrypted test files
//! (`../shared/corpus`) and the development malware samples
//! (`../shared/malware-dev/samples.zip`, read in memory only).

use std::io::Read;
use std::path::{Path, PathBuf};

use malspam_milter::formats::office_crypto::{self, Scheme};
use malspam_milter::formats::{Budget, IndicatorKind, Opened, Passwords};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

/// `None` (after saying why) when the shared folder is absent outside CI.
fn present(path: &Path) -> Option<()> {
    if path.exists() {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is absent and CI is set", path.display());
    }
    eprintln!("SKIPPED: {} is absent", path.display());
    None
}

/// Every member of the samples zip, read in memory.
fn samples() -> Option<Vec<(String, Vec<u8>)>> {
    let path = shared("malware-dev/samples.zip");
    present(&path)?;
    let file = std::fs::File::open(&path).expect("open samples.zip");
    let mut zip = zip::ZipArchive::new(file).expect("read samples.zip");
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index_decrypt(i, b"infected")
            .expect("decrypt sample");
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("inflate sample");
        out.push((name, data));
    }
    Some(out)
}

fn open(data: &[u8], passwords: &[&str]) -> Opened {
    let candidates: Vec<String> = passwords.iter().map(|p| p.to_string()).collect();
    office_crypto::open(
        data,
        &Budget::generous(),
        Passwords {
            candidates: &candidates,
            max_attempts: 8,
        },
    )
}

fn has(o: &Opened, kind: IndicatorKind) -> bool {
    o.indicators.iter().any(|i| i.kind == kind)
}

/// The records of a BIFF stream: (type, data), stopping at a cut record.
fn records(stream: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= stream.len() {
        let kind = u16::from_le_bytes([stream[pos], stream[pos + 1]]);
        let len = usize::from(u16::from_le_bytes([stream[pos + 2], stream[pos + 3]]));
        let Some(data) = stream.get(pos + 4..pos + 4 + len) else {
            break;
        };
        out.push((kind, data));
        pos += 4 + len;
    }
    out
}

/// What a reviewer must see in a decrypted document: an OOXML zip with
/// its content types, or a compound file whose workbook reads in the clear
/// (no FILEPASS left, sheet names printable) and keeps its VBA storage.
fn check_decrypted(name: &str, original: &[u8], o: &Opened) {
    assert_eq!(o.embedded.len(), 1, "{name}: {:?}", o.limits);
    let e = &o.embedded[0];
    assert!(e.decrypted, "{name}");
    if e.data.starts_with(b"PK\x03\x04") {
        let zip = zip::ZipArchive::new(std::io::Cursor::new(&e.data[..])).expect("decrypted zip");
        assert!(
            zip.file_names()
                .any(|n| n.is_ok_and(|n| n == "[Content_Types].xml")),
            "{name}: no [Content_Types].xml"
        );
        return;
    }
    let mut cf = cfb::CompoundFile::open(std::io::Cursor::new(&e.data[..])).expect("decrypted CFB");
    let mut wb = Vec::new();
    cf.open_stream("/Workbook")
        .expect("Workbook")
        .read_to_end(&mut wb)
        .unwrap();
    let recs = records(&wb);
    assert_eq!(recs.first().map(|r| r.0), Some(0x0809), "{name}: BOF first");
    assert!(recs.iter().all(|r| r.0 != 0x002F), "{name}: FILEPASS left");
    let sheets: Vec<String> = recs
        .iter()
        .filter(|r| r.0 == 0x0085 && r.1.len() > 8)
        .map(|r| {
            // lbPlyPos, state, type, ShortXLUnicodeString (cch, flags, chars).
            let cch = usize::from(r.1[6]);
            if r.1[7] & 1 == 0 {
                String::from_utf8_lossy(r.1.get(8..8 + cch).unwrap_or_default()).to_string()
            } else {
                let units: Vec<u16> = r.1[8..]
                    .chunks_exact(2)
                    .take(cch)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
        })
        .collect();
    assert!(!sheets.is_empty(), "{name}: no sheets");
    for s in &sheets {
        assert!(
            s.chars().all(|c| !c.is_control()),
            "{name}: sheet name {s:?} still encrypted"
        );
    }
    // Every stream of the original is still there.
    let orig = cfb::CompoundFile::open(std::io::Cursor::new(original)).unwrap();
    for entry in orig.walk() {
        assert!(
            cf.exists(entry.path()),
            "{name}: {} lost",
            entry.path().display()
        );
    }
    eprintln!("{name}: sheets {sheets:?}");
}

/// oletools' 17 encrypted files: all told encrypted with their scheme; the
/// seven "standardpassword" ones open with VelvetSweatshop, with no
/// candidate given, and decrypt to a readable document.
#[test]
fn oletools_encrypted_files() {
    let dir = shared("corpus/oletools/encrypted");
    if present(&dir).is_none() {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut by_scheme = std::collections::BTreeMap::<&str, usize>::new();
    let mut opened = 0;
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let scheme = office_crypto::scheme(&data).unwrap_or_else(|| panic!("{name}: not told"));
        *by_scheme.entry(scheme.name()).or_default() += 1;
        let o = open(&data, &[]);
        assert!(has(&o, IndicatorKind::EncryptedDocument), "{name}");
        assert_eq!(o.encrypted.len(), 1, "{name}");
        assert_eq!(o.encrypted[0].method, scheme.name());
        let default = name.contains("standardpassword");
        assert_eq!(has(&o, IndicatorKind::DefaultPassword), default, "{name}");
        if default {
            assert_eq!(
                o.encrypted[0].opened_with.as_deref(),
                Some("VelvetSweatshop")
            );
            check_decrypted(&name, &data, &o);
            opened += 1;
        } else {
            assert!(o.embedded.is_empty() && o.encrypted[0].opened_with.is_none());
        }
    }
    eprintln!("oletools encrypted by scheme: {by_scheme:?}; {opened} opened with VelvetSweatshop");
    assert_eq!(opened, 7);
    assert_eq!(by_scheme.get("Excel RC4"), Some(&3));
    assert_eq!(by_scheme.get("Word RC4"), Some(&1));
    assert_eq!(by_scheme.get("PowerPoint RC4 CryptoAPI"), Some(&1));
    assert_eq!(by_scheme.get("ECMA-376 agile"), Some(&12));
}

/// Apache POI's files encrypted with "tika" (ECMA-376 standard and agile)
/// open with the password given as a candidate, and not without it.
#[test]
fn poi_files_open_with_a_mined_password() {
    let dir = shared("corpus/apache-poi/spreadsheet");
    if present(&dir).is_none() {
        return;
    }
    for (file, scheme) in [
        ("protected_passtika.xlsx", Scheme::Ecma376Standard),
        ("protected_passtika.xlsb", Scheme::Ecma376Agile),
    ] {
        let data = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(office_crypto::scheme(&data), Some(scheme), "{file}");
        let without = open(&data, &["wrong"]);
        assert!(without.embedded.is_empty(), "{file}");
        assert_eq!(without.encrypted[0].opened_with, None);
        let with = open(&data, &["wrong", "tika"]);
        assert_eq!(
            with.encrypted[0].opened_with.as_deref(),
            Some("tika"),
            "{file}"
        );
        assert!(!has(&with, IndicatorKind::DefaultPassword));
        check_decrypted(file, &data, &with);
    }
}

/// SpamAssassin's encrypted.eml: an encrypted .docx whose password is in
/// the body ("Doc password is password").
#[test]
fn spamassassin_encrypted_docx_opens_with_the_body_password() {
    let path = shared("corpus/spamassassin-olevbmacro/encrypted.eml");
    if present(&path).is_none() {
        return;
    }
    let raw = std::fs::read(&path).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let att = msg.attachments().next().expect("attachment");
    let data = att.contents();
    assert_eq!(office_crypto::scheme(data), Some(Scheme::Ecma376Agile));
    let o = open(data, &["password"]);
    assert_eq!(o.encrypted[0].opened_with.as_deref(), Some("password"));
    check_decrypted("encrypted_word_doc.docx", data, &o);
}

/// The malware samples: every one told encrypted by content is reported
/// with its scheme, matches the index's `encrypted-office` category, and
/// no other sample is told encrypted.
#[test]
fn malware_samples() {
    let Some(samples) = samples() else {
        return;
    };
    let index = std::fs::read_to_string(shared("malware-dev/INDEX.tsv")).unwrap();
    let expected = index
        .lines()
        .filter(|l| l.split('\t').nth(3) == Some("encrypted-office"))
        .count();
    let mut told = 0;
    for (name, data) in &samples {
        let o = open(data, &[]);
        match office_crypto::scheme(data) {
            Some(scheme) => {
                told += 1;
                assert!(has(&o, IndicatorKind::EncryptedDocument), "{name}");
                assert_eq!(o.encrypted.len(), 1);
                eprintln!(
                    "{name}: {} opened_with={:?}",
                    scheme.name(),
                    o.encrypted[0].opened_with
                );
            }
            None => assert!(o.is_empty(), "{name}: {o:?}"),
        }
    }
    eprintln!(
        "samples: {} read, {told} encrypted Office documents",
        samples.len()
    );
    assert_eq!(told, expected);
    assert!(told > 0);
}

/// Honest Office files of the corpus (labelled clean or macro by their
/// sources) are not told encrypted, except those that are: POI's and
/// calamine's password-protected test files, which say so in their names
/// or are opened by the default password.
#[test]
fn honest_corpus_files_are_not_told_encrypted() {
    let root = shared("corpus");
    if present(&root).is_none() {
        return;
    }
    let labels = std::fs::read_to_string(root.join("labels.tsv")).unwrap();
    let (mut checked, mut encrypted) = (0, 0);
    for line in labels.lines() {
        let mut f = line.split('\t');
        let (Some(path), Some(cat)) = (f.next(), f.next()) else {
            continue;
        };
        if !matches!(
            cat,
            "ole-clean"
                | "ooxml-clean"
                | "ole-macro"
                | "ooxml-macro"
                | "xlm-macro"
                | "odf-clean"
                | "other-doc"
        ) {
            continue;
        }
        let Ok(data) = std::fs::read(root.join(path)) else {
            continue;
        };
        checked += 1;
        if let Some(s) = office_crypto::scheme(&data) {
            encrypted += 1;
            let o = open(&data, &[]);
            let named = ["pass", "protect", "encrypt"]
                .iter()
                .any(|w| path.to_lowercase().contains(w));
            assert!(
                named || has(&o, IndicatorKind::DefaultPassword),
                "{path}: told {s:?}"
            );
        }
    }
    eprintln!("honest corpus: {checked} files, {encrypted} truly encrypted");
    assert!(checked > 400);
}
