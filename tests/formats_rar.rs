//! RAR archives, real ones: rarfile's test archives (RAR 3 and 5, plain,
//! entry-encrypted and header-encrypted; copied to tests/fixtures/rar with
//! their licence), and the development malware samples (read in memory).

use std::io::Read;
use std::path::{Path, PathBuf};

use malspam_milter::formats::{rar, Budget, IndicatorKind, Opened, Passwords};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rar")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn open(data: &[u8]) -> Opened {
    rar::open(data, &Budget::generous(), Passwords::default())
}

fn embedded(o: &Opened) -> Vec<(String, Vec<u8>)> {
    o.embedded
        .iter()
        .map(|e| (e.name.clone().unwrap_or_default(), e.data.to_vec()))
        .collect()
}

#[test]
fn rar5_stored_entry_is_returned_and_compressed_one_is_named() {
    let o = open(&fixture("rar5-crc.rar"));
    // stest1.txt: compressed (method 3), 55 -> 2048 bytes; stest2.txt:
    // stored, 2048 bytes, CRC32 0xc5b7e6a2 (rarfile's listing).
    let e = embedded(&o);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, "stest2.txt");
    assert_eq!(e[0].1.len(), 2048);
    assert_eq!(crc32fast::hash(&e[0].1), 0xc5b7_e6a2);
    assert_eq!(
        o.limits,
        ["RAR entry stest1.txt: compressed, not inspected"]
    );
    assert!(o.encrypted.is_empty() && o.indicators.is_empty());
}

#[test]
fn stored_trees_list_every_file() {
    for f in ["rar3-subdirs.rar", "rar5-subdirs.rar"] {
        let o = open(&fixture(f));
        let mut names: Vec<String> = embedded(&o).into_iter().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(names.len(), 4, "{f}: {names:?}");
        assert!(
            names.contains(&"sub/dir1/file1.txt".to_string()),
            "{f}: {names:?}"
        );
        assert!(
            names.contains(&"sub/with space/long fn.txt".to_string()),
            "{f}"
        );
        assert!(o.limits.is_empty() && o.encrypted.is_empty(), "{f}: {o:?}");
    }
}

#[test]
fn encrypted_entries_are_reported_never_opened() {
    for (f, method) in [
        ("rar3-comment-psw.rar", "RAR AES-128"),
        ("rar5-psw.rar", "RAR5 AES-256"),
    ] {
        let o = open(&fixture(f));
        assert!(o.embedded.is_empty(), "{f}");
        assert_eq!(o.encrypted.len(), 2, "{f}: {o:?}");
        for item in &o.encrypted {
            assert_eq!(item.method, method);
            assert_eq!(item.opened_with, None);
            assert!(!item.name.is_empty());
        }
    }
}

#[test]
fn encrypted_headers_hide_the_names() {
    for f in ["rar3-comment-hpsw.rar", "rar5-hpsw.rar"] {
        let o = open(&fixture(f));
        assert!(o.embedded.is_empty(), "{f}");
        assert_eq!(o.encrypted.len(), 1, "{f}: {o:?}");
        assert_eq!(o.encrypted[0].name, "(RAR headers)");
        assert!(o.encrypted[0].method.ends_with("(encrypted headers)"));
    }
}

#[test]
fn plain_compressed_archives_are_listed_without_dangerous_indicators() {
    for f in [
        "rar3-comment-plain.rar",
        "rar3-solid.rar",
        "rar5-solid.rar",
        "unicode.rar",
    ] {
        let data = fixture(f);
        assert!(rar::sniff(&data));
        let listing = rar::list(&data, 100).unwrap();
        assert!(listing.stopped.is_none(), "{f}: {:?}", listing.stopped);
        assert!(!listing.entries.is_empty(), "{f}");
        let o = open(&data);
        assert!(
            o.indicators.is_empty() && o.encrypted.is_empty(),
            "{f}: {o:?}"
        );
    }
}

/// Every cut of every fixture: never a panic, never more than was there.
#[test]
fn truncated_archives_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rar");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rar") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        for cut in 0..data.len() {
            let o = open(&data[..cut]);
            let total: usize = o.embedded.iter().map(|e| e.data.len()).sum();
            assert!(total <= cut);
        }
    }
}

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

/// The malware samples hold no RAR today; any that do (told by content)
/// must list without a panic and report their encryption.
#[test]
fn malware_samples_told_rar_by_content() {
    let path = shared("malware-dev/samples.zip");
    if !path.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{} is absent and CI is set", path.display());
        }
        eprintln!("SKIPPED: {} is absent", path.display());
        return;
    }
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let (mut read, mut rars) = (0, 0);
    for i in 0..zip.len() {
        let mut entry = zip.by_index_decrypt(i, b"infected").unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        read += 1;
        if rar::sniff(&data) {
            rars += 1;
            let o = open(&data);
            assert!(rar::list(&data, 10_000).is_some());
            let _ = o
                .indicators
                .iter()
                .filter(|i| i.kind == IndicatorKind::Padded)
                .count();
        } else {
            assert!(open(&data).is_empty());
        }
    }
    eprintln!("samples: {read} read, {rars} RAR archives");
    assert!(read > 0);
}
