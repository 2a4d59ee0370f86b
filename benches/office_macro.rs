//! office_macro on big documents: a ~10 MB xlsm, a ~10 MB doc, and a message
//! carrying both (through the whole engine: MIME parse, base64, every
//! detector). The big files are built here from the test fixtures, padded
//! with real content: the corpus' own Office files and mail, as a picture
//! part (xlsm) and a `Data` stream (doc) would be in a real document.
//!
//! Run: `cargo bench --bench office_macro`

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use malspam_milter::config::Limits;
use malspam_milter::detectors::office_macro::{analyze_document, OfficeMacroConfig};
use malspam_milter::view::MessageView;
use malspam_milter::{Config, Engine, Envelope};

const TARGET: usize = 10 * 1024 * 1024;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/office")
            .join(name),
    )
    .expect("fixture")
}

/// About `size` bytes of real content: the fixtures and (when present) the
/// shared corpus' Office files, concatenated and repeated.
fn filler(size: usize) -> Vec<u8> {
    let mut sources: Vec<Vec<u8>> = Vec::new();
    let corpus =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/apache-poi/spreadsheet");
    if let Ok(dir) = std::fs::read_dir(&corpus) {
        let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths.into_iter().take(200) {
            if let Ok(d) = std::fs::read(&p) {
                sources.push(d);
            }
        }
    }
    for name in [
        "bootstrap35.xlsx",
        "SimpleMacro.docm",
        "excel4_sample_macro.xls",
    ] {
        sources.push(fixture(name));
    }
    let mut out = Vec::with_capacity(size);
    'fill: loop {
        for s in &sources {
            if out.len() >= size {
                break 'fill;
            }
            out.extend_from_slice(&s[..s.len().min(size - out.len())]);
        }
    }
    out
}

/// The crafted xlsm with a ~10 MB media part added (stored, as pictures are).
fn big_xlsm() -> Vec<u8> {
    let base = fixture("d4_auto_open_adodb_savetofile.xlsm");
    let mut archive = zip::ZipArchive::new(Cursor::new(&base[..])).unwrap();
    let mut out = Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let name = entry.name().unwrap().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            w.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(&data).unwrap();
        }
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("xl/media/image1.bin", stored).unwrap();
        w.write_all(&filler(TARGET)).unwrap();
        w.finish().unwrap();
    }
    out.into_inner()
}

/// The crafted .doc copied stream by stream into a new compound file, with
/// a ~10 MB `Data` stream (where Word keeps pictures).
fn big_doc() -> Vec<u8> {
    let base = fixture("d1_document_open_shell.doc");
    let mut src = cfb::CompoundFile::open(Cursor::new(&base[..])).unwrap();
    let entries: Vec<(String, bool)> = src
        .walk()
        .filter(|e| !e.is_root())
        .map(|e| (e.path().to_string_lossy().into_owned(), e.is_stream()))
        .collect();
    let mut dst = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for (path, is_stream) in entries {
        if is_stream {
            let mut data = Vec::new();
            src.open_stream(&path)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            dst.create_stream(&path).unwrap().write_all(&data).unwrap();
        } else {
            dst.create_storage(&path).unwrap();
        }
    }
    dst.create_stream("/Data")
        .unwrap()
        .write_all(&filler(TARGET))
        .unwrap();
    dst.flush().unwrap();
    dst.into_inner().into_inner()
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 38);
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            out.push(if k <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

fn message(attachments: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = String::from(
        "From: a@example.net\r\nTo: b@example.org\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n",
    );
    for (name, data) in attachments {
        m.push_str(&format!(
            "--B\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64(data)
        ));
    }
    m.push_str("--B--\r\n");
    m.into_bytes()
}

fn bench(c: &mut Criterion) {
    let xlsm = big_xlsm();
    let doc = big_doc();
    let settings = OfficeMacroConfig::default();
    let limits = Limits::default();
    // The big files must still be found as what they are.
    assert!(analyze_document(&xlsm, &settings, &limits).is_suspicious());
    assert!(analyze_document(&doc, &settings, &limits).is_suspicious());
    eprintln!("xlsm {} bytes, doc {} bytes", xlsm.len(), doc.len());

    let mut group = c.benchmark_group("office_macro");
    group.sample_size(20);
    group.bench_function("xlsm_10mb", |b| {
        b.iter(|| analyze_document(&xlsm, &settings, &limits))
    });
    group.bench_function("doc_10mb", |b| {
        b.iter(|| analyze_document(&doc, &settings, &limits))
    });
    let raw = message(&[("invoice.xlsm", &xlsm), ("invoice.doc", &doc)]);
    let engine = Engine::new(Config::default()).unwrap();
    let report = engine.scan(Envelope::default(), &raw);
    assert_eq!(
        report.verdict,
        malspam_milter::Verdict::Quarantine,
        "{report:?}"
    );
    group.bench_function("message_with_both_engine_scan", |b| {
        b.iter(|| engine.scan(Envelope::default(), &raw))
    });
    // The share of the above spent before any detector runs: MIME parsing,
    // base64 decoding and the attachment tree (not this detector's code).
    group.bench_function("message_with_both_view_only", |b| {
        b.iter(|| {
            MessageView::build(
                Envelope::default(),
                &raw,
                &limits,
                Instant::now() + Duration::from_secs(60),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
