//! Shared helpers of the `formats_*` integration tests of the container
//! formats (OneNote, LNK, disk images, HTML): real samples read in memory
//! from `../shared/malware-dev/samples.zip`, honest files from
//! `../shared/corpus`.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

/// `../shared/<rel>` beside the repository (CI clones it there).
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

/// True when the file is present; otherwise prints why the test skips, and
/// panics under CI (where `../shared` must be present).
pub fn present(path: &Path, test: &str) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {} is absent under CI", path.display());
    }
    eprintln!("{test}: SKIPPED, {} is absent", path.display());
    false
}

/// One real sample, read in memory only.
pub struct Sample {
    pub path: String,
    pub category: String,
    pub data: Vec<u8>,
}

/// Every sample whose INDEX.tsv `category` is one of `categories`, decrypted
/// in memory (never written anywhere). `None` when the zip is absent.
pub fn samples(categories: &[&str], test: &str) -> Option<Vec<Sample>> {
    let zip_path = shared("malware-dev/samples.zip");
    if !present(&zip_path, test) {
        return None;
    }
    let index = std::fs::read_to_string(shared("malware-dev/INDEX.tsv")).expect("INDEX.tsv");
    let mut header: Vec<&str> = Vec::new();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (i, line) in index.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if i == 0 {
            header = cols;
            continue;
        }
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|p| cols.get(p))
                .copied()
                .unwrap_or("")
        };
        if categories.contains(&col("category")) {
            wanted.push((col("path").to_string(), col("category").to_string()));
        }
    }
    let file = std::fs::File::open(&zip_path).expect("open samples.zip");
    let mut zip = zip::ZipArchive::new(file).expect("samples.zip is a zip");
    let mut out = Vec::new();
    for (path, category) in wanted {
        let mut entry = zip
            .by_name_decrypt(&path, b"infected")
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read sample");
        out.push(Sample {
            path,
            category,
            data,
        });
    }
    Some(out)
}

/// Every file under `../shared/corpus/<rel>` (recursively), sorted.
pub fn corpus_files(rel: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![shared("corpus").join(rel)];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
