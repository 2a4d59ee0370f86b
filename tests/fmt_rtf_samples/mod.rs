//! Shared by tests/formats_rtf.rs, formats_ole_objects.rs and
//! formats_ooxml.rs: the malware samples of ../shared/malware-dev, read in
//! memory from their AES zip, and files of ../shared/corpus.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use malspam_milter::formats::Opened;

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

/// One row of INDEX.tsv with the sample's bytes.
pub struct Sample {
    pub path: String,
    pub file_type: String,
    pub category: String,
    /// The `macros` column (oletools' findings: external targets, ...).
    pub notes: String,
    pub data: Vec<u8>,
}

/// The samples whose row passes `keep`, read in memory from the AES zip;
/// `None` (after saying why) when the zip is absent outside CI.
pub fn samples(keep: impl Fn(&str, &str) -> bool) -> Option<Vec<Sample>> {
    let zip_path = shared("malware-dev/samples.zip");
    let index_path = shared("malware-dev/INDEX.tsv");
    if !zip_path.exists() || !index_path.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{} is absent in CI", zip_path.display());
        }
        eprintln!(
            "SKIP: {} absent; malware samples not checked",
            zip_path.display()
        );
        return None;
    }
    let index = std::fs::read_to_string(&index_path).unwrap();
    let mut lines = index.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path_col, type_col, cat_col, notes_col) = (
        col("path"),
        col("file_type"),
        col("category"),
        col("macros"),
    );
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if !keep(f[type_col], f[cat_col]) {
            continue;
        }
        let mut entry = archive
            .by_name_decrypt(f[path_col], b"infected")
            .unwrap_or_else(|e| panic!("{}: {e}", f[path_col]));
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push(Sample {
            path: f[path_col].to_string(),
            file_type: f[type_col].to_string(),
            category: f[cat_col].to_string(),
            notes: f[notes_col].to_string(),
            data,
        });
    }
    Some(out)
}

/// Corpus files (path relative to ../shared/corpus) of the labels.tsv
/// categories given; `None` (after saying why) when the corpus is absent
/// outside CI.
pub fn corpus(categories: &[&str]) -> Option<Vec<(String, Vec<u8>)>> {
    let labels = shared("corpus/labels.tsv");
    if !labels.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{} is absent in CI", labels.display());
        }
        eprintln!(
            "SKIP: {} absent; honest files not checked",
            labels.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&labels).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 2 || !categories.contains(&f[1]) {
            continue;
        }
        let path = shared("corpus").join(f[0]);
        if let Ok(data) = std::fs::read(&path) {
            out.push((f[0].to_string(), data));
        }
    }
    Some(out)
}

pub fn summary(o: &Opened) -> String {
    let mut s: Vec<String> = o
        .indicators
        .iter()
        .map(|i| format!("{:?}: {}", i.kind, i.detail))
        .collect();
    s.push(format!("{} embedded", o.embedded.len()));
    s.extend(o.limits.iter().map(|l| format!("limit: {l}")));
    s.join(" | ")
}
