//! Encrypted Office documents, real ones: oletools' encrypted test files
//! (`../shared/corpus`) and the development malware samples
//! (`../shared/malware-dev/samples.zip`, read in memory only).

use std::io::Read;
use std::path::{Path, PathBuf};

use malspam_milter::formats::office_crypto::{self, Scheme};
use malspam_milter::formats::{Budget, IndicatorKind, Opened, Passwords};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared").join(rel)
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
    let (mut seen, mut opened) = (0, 0);
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let scheme = office_crypto::scheme(&data);
        let o = open(&data, &[]);
        eprintln!(
            "{name}: {:?} default={} embedded={} limits={:?} items={:?}",
            scheme,
            has(&o, IndicatorKind::DefaultPassword),
            o.embedded.len(),
            o.limits,
            o.encrypted
        );
        assert!(scheme.is_some(), "{name}: not told encrypted");
        assert!(has(&o, IndicatorKind::EncryptedDocument), "{name}");
        seen += 1;
        if has(&o, IndicatorKind::DefaultPassword) {
            opened += 1;
        }
    }
    eprintln!("oletools encrypted: {seen} told, {opened} opened with VelvetSweatshop");
    assert_eq!(seen, files.len());
    let _ = Scheme::XlsRc4;
}
