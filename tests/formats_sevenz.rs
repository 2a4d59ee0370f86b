//! 7z archives around real files: honest documents from ../shared/corpus
//! packed here with sevenz-rust2 (plain, AES content, AES headers) come
//! back byte for byte with the right password, and the development
//! malware samples told 7z by content (none today) open without a panic.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use malspam_milter::detectors::encrypted_archive::formats::{seven_zip, HeaderEncryption};
use malspam_milter::formats::{sevenz, Budget, Opened, Passwords};
use sevenz_rust2::encoder_options::AesEncoderOptions;
use sevenz_rust2::{ArchiveEntry, ArchiveWriter, EncoderConfiguration, EncoderMethod, Password};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

fn present(path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is absent and CI is set", path.display());
    }
    eprintln!("SKIPPED: {} is absent", path.display());
    false
}

/// A few honest Office files of the corpus, smallest first.
fn honest_files() -> Vec<(String, Vec<u8>)> {
    let dir = shared("corpus/oletools/basic");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort_by_key(|(_, d)| d.len());
    files.truncate(4);
    files
}

fn pack(files: &[(String, Vec<u8>)], password: Option<&str>, encrypt_header: bool) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Cursor::new(Vec::new())).unwrap();
    let mut methods: Vec<EncoderConfiguration> = Vec::new();
    if let Some(pw) = password {
        methods.push(AesEncoderOptions::new(Password::new(pw)).into());
    }
    methods.push(EncoderConfiguration::new(EncoderMethod::LZMA2));
    w.set_content_methods(methods);
    w.set_encrypt_header(encrypt_header);
    let entries = files
        .iter()
        .map(|(n, _)| ArchiveEntry::new_file(n))
        .collect();
    let readers = files
        .iter()
        .map(|(_, d)| Cursor::new(d.clone()).into())
        .collect();
    w.push_archive_entries(entries, readers).unwrap();
    w.finish().unwrap().into_inner()
}

fn open(data: &[u8], candidates: &[&str]) -> Opened {
    let c: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
    sevenz::open(
        data,
        &Budget::generous(),
        Passwords {
            candidates: &c,
            max_attempts: 4,
        },
    )
}

fn assert_same(o: &Opened, files: &[(String, Vec<u8>)], decrypted: bool) {
    let got: Vec<(String, Vec<u8>)> = o
        .embedded
        .iter()
        .map(|e| (e.name.clone().unwrap(), e.data.to_vec()))
        .collect();
    assert_eq!(got.len(), files.len());
    for ((gn, gd), (n, d)) in got.iter().zip(files) {
        assert_eq!(gn, n);
        assert!(gd == d, "{n}: bytes differ");
    }
    assert!(o.embedded.iter().all(|e| e.decrypted == decrypted));
    assert!(
        o.indicators.is_empty(),
        "honest files, no indicator: {:?}",
        o.indicators
    );
}

#[test]
fn honest_documents_round_trip_plain_and_encrypted() {
    if !present(&shared("corpus/oletools/basic")) {
        return;
    }
    let files = honest_files();
    assert!(!files.is_empty());

    let plain = pack(&files, None, false);
    assert_eq!(seven_zip(&plain), None);
    let o = open(&plain, &[]);
    assert_same(&o, &files, false);
    assert!(o.encrypted.is_empty() && o.limits.is_empty());

    // Content encrypted, names visible: the detector's header check agrees.
    let content = pack(&files, Some("PPAP-2024"), false);
    assert_eq!(seven_zip(&content), Some(HeaderEncryption::Content));
    let shut = open(&content, &["nope"]);
    assert!(shut.embedded.is_empty());
    let names: Vec<&str> = shut.encrypted.iter().map(|i| i.name.as_str()).collect();
    let expect: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expect);
    let o = open(&content, &["nope", "PPAP-2024"]);
    assert_same(&o, &files, true);
    assert!(o
        .encrypted
        .iter()
        .all(|i| i.opened_with.as_deref() == Some("PPAP-2024")));
    assert!(o.encrypted.iter().all(|i| i.method == "7z AES-256"));

    // Headers encrypted too: nothing but the fact before the password.
    let hidden = pack(&files, Some("PPAP-2024"), true);
    assert_eq!(seven_zip(&hidden), Some(HeaderEncryption::Headers));
    let shut = open(&hidden, &["nope"]);
    assert_eq!(shut.encrypted.len(), 1);
    assert_eq!(shut.encrypted[0].name, "(7z headers)");
    let o = open(&hidden, &["PPAP-2024"]);
    assert_same(&o, &files, true);
}

/// Every cut of an encrypted archive of real files: never a panic.
#[test]
fn truncated_archives_never_panic() {
    if !present(&shared("corpus/oletools/basic")) {
        return;
    }
    let files = honest_files();
    let a = pack(&files[..1], Some("pw"), false);
    for cut in (0..a.len()).step_by(7) {
        let _ = open(&a[..cut], &["pw"]);
    }
}

#[test]
fn malware_samples_told_7z_by_content() {
    let path = shared("malware-dev/samples.zip");
    if !present(&path) {
        return;
    }
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let (mut read, mut archives) = (0, 0);
    for i in 0..zip.len() {
        let mut entry = zip.by_index_decrypt(i, b"infected").unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        read += 1;
        let o = open(&data, &["infected"]);
        if sevenz::sniff(&data) {
            archives += 1;
            assert!(!o.embedded.is_empty() || !o.encrypted.is_empty() || !o.limits.is_empty());
        } else {
            assert!(o.is_empty());
        }
    }
    eprintln!("samples: {read} read, {archives} 7z archives");
    assert!(read > 0);
}
