//! Hostile Office files never panic or hang the office_macro analysis:
//! truncated and bit-flipped real documents, FAT chains that loop, and
//! malformed VBA dir streams and compressed containers. Deterministic (a
//! fixed pseudo-random sequence), so a failure reproduces. The cargo-fuzz
//! target in fuzz/ explores the same path at random; crashers it finds are
//! kept in tests/fixtures/office/fuzz-regressions/.

use std::io::{Cursor, Read};

use malspam_milter::config::Limits;
use malspam_milter::detectors::office_macro::{
    analyze_document, vba, DocumentReport, OfficeMacroConfig,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/office/").to_string() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The vbaProject.bin inside an OOXML fixture (the OLE part of a docm/xlsm).
fn vba_project_of(name: &str) -> Vec<u8> {
    let data = fixture(name);
    let mut zip = zip::ZipArchive::new(Cursor::new(&data[..])).unwrap();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        if entry.name().unwrap().ends_with("vbaProject.bin") {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).unwrap();
            return out;
        }
    }
    panic!("{name} has no vbaProject.bin")
}

fn analyze(data: &[u8]) -> DocumentReport {
    let report = analyze_document(data, &OfficeMacroConfig::default(), &Limits::default());
    assert!(
        !report.errors.iter().any(|e| e.contains("panic")),
        "{:?}",
        report.errors
    );
    report
}

/// A small linear congruential generator: the same sequence on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn ole_samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = [
        "d1_document_open_shell.doc",
        "d2_workbook_open_wscript_shell.xls",
        "excel4_sample_macro.xls",
        "encrypted.xls",
    ]
    .iter()
    .map(|n| (n.to_string(), fixture(n)))
    .collect();
    for n in [
        "d3_autoopen_urldownloadtofile_shell.docm",
        "d4_auto_open_adodb_savetofile.xlsm",
    ] {
        out.push((format!("{n}/vbaProject.bin"), vba_project_of(n)));
    }
    out
}

#[test]
fn truncated_documents() {
    let mut checked = 0;
    for (_, data) in ole_samples() {
        for k in 1..40 {
            analyze(&data[..data.len() * k / 40]);
            checked += 1;
        }
    }
    for n in [
        "d3_autoopen_urldownloadtofile_shell.docm",
        "d4_auto_open_adodb_savetofile.xlsm",
    ] {
        let data = fixture(n);
        for k in 1..40 {
            analyze(&data[..data.len() * k / 40]);
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 39);
}

#[test]
fn bit_flipped_documents() {
    let mut rng = Lcg(20241122);
    let mut still_found = 0;
    let mut runs = 0;
    for (_, data) in ole_samples() {
        for _ in 0..150 {
            let mut copy = data.clone();
            let flips = 1 + rng.next() % 16;
            for _ in 0..flips {
                let at = rng.next() as usize % copy.len();
                copy[at] ^= 1 << (rng.next() % 8);
            }
            let report = analyze(&copy);
            runs += 1;
            if report.has_macros() {
                still_found += 1;
            }
        }
    }
    assert_eq!(runs, 6 * 150);
    // Most flips land in content that does not matter: the analysis must
    // still work on the majority, not give up on any damage.
    assert!(still_found > runs / 2, "{still_found} of {runs}");
}

#[test]
fn fat_chains_that_loop_are_refused() {
    let mut data = fixture("d1_document_open_shell.doc");
    // Header: 512-byte sectors; DIFAT[0] at 0x4C is the first FAT sector.
    let fat = u32::from_le_bytes([data[0x4C], data[0x4D], data[0x4E], data[0x4F]]) as usize;
    let start = (fat + 1) * 512;
    // Every FAT entry points to itself: every chain is a loop.
    for i in 0..128u32 {
        let at = start + i as usize * 4;
        if i as usize != fat {
            data[at..at + 4].copy_from_slice(&i.to_le_bytes());
        }
    }
    let report = analyze(&data);
    assert!(!report.has_macros());
    assert!(!report.errors.is_empty(), "a looping FAT must be reported");

    // A header claiming 4 billion FAT sectors: nothing is allocated for
    // them (the retry that pads truncated files is bounded by
    // max_stream_bytes), and the analysis still finishes.
    let mut data = fixture("d1_document_open_shell.doc");
    data[0x2C..0x30].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = analyze(&data);
    // cfb finds the FAT through the DIFAT array, so the document still reads.
    assert!(report.has_macros(), "{:?}", report.errors);
}

#[test]
fn malformed_dir_streams_and_containers() {
    // Records claiming sizes far past the end, and a module count bomb.
    let mut dir = Vec::new();
    for _ in 0..5000 {
        dir.extend_from_slice(&0x0019u16.to_le_bytes());
        dir.extend_from_slice(&1u32.to_le_bytes());
        dir.push(b'M');
    }
    let err = vba::parse_dir(&dir, 1000).unwrap_err();
    assert!(err.to_string().contains("max_modules"), "{err}");
    let mut huge = vec![0x19, 0x00];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(vba::parse_dir(&huge, 1000).is_err());
    assert!(vba::parse_dir(&[], 1000).is_err());

    // Compressed containers: every chunk a run of maximal copy tokens
    // (the best expansion the format allows) stays within the output cap.
    let mut bomb = vec![1u8];
    for _ in 0..2000 {
        // A flag byte saying "8 copy tokens", then 8 tokens of 0x0000.
        let mut group = vec![0xFFu8];
        group.extend(std::iter::repeat_n(0u8, 16));
        let mut chunk = vec![0x00, b'a'];
        for _ in 0..64 {
            chunk.extend_from_slice(&group);
        }
        let header = 0xB000u16 | (chunk.len() as u16 + 2 - 3);
        bomb.extend_from_slice(&header.to_le_bytes());
        bomb.extend_from_slice(&chunk);
    }
    if let Ok(out) = vba::decompress(&bomb, 100_000) {
        assert!(out.len() <= 100_000);
    }
    let mut rng = Lcg(7);
    for _ in 0..2000 {
        let len = (rng.next() % 300) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(first) = junk.first_mut() {
            *first = 1;
        }
        if let Ok(out) = vba::decompress(&junk, 10_000) {
            assert!(out.len() <= 10_000);
        }
        let _ = vba::parse_dir(&junk, 100);
    }
}

/// Inputs the fuzzer found crashing, kept so they never come back: every
/// file in tests/fixtures/office/fuzz-regressions/ (see its README.md).
#[test]
fn fuzz_regressions() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/office/fuzz-regressions"
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        analyze(&std::fs::read(&path).unwrap());
        checked += 1;
    }
    assert!(checked >= 1, "no regression inputs in {dir}");
}
