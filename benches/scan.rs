//! What the scan core costs per message, on one core: `Engine::scan` over a
//! mixed set built from the shared corpus (plain and HTML mail, Office
//! attachments, encrypted zips with their password in the body), one mail
//! with a 10 MB attachment, and one with a 10 MB OneNote section, a 10 MB
//! ISO and a 10 MB RTF.
//!
//! Run: `cargo bench --bench scan` (criterion; the "mix" group reports
//! messages per second as elem/s). Without ../shared/corpus the mix is
//! skipped with a message; the 10 MB case is built here and always runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../tests/iso_image/mod.rs"]
mod iso_image;
use malspam_milter::{Config, Engine, Envelope};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

/// Office files and zips larger than this are left out of the mix (mail
/// attachments are mostly small; the 10 MB case measures size on its own).
const MAX_ATTACHMENT: u64 = 2 << 20;

fn base64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str("\r\n");
    }
    out
}

fn mail_with(body: &str, name: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "From: Accounts <accounts@supplier.example>\r\nTo: staff@example.com\r\n\
Subject: Invoice {name}\r\nMessage-ID: <{name}@supplier.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--b1\r\n\
Content-Type: application/octet-stream; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}--b1--\r\n",
        base64_lines(data)
    )
    .into_bytes()
}

/// The mix: every mail of the corpus (ham, spam, tricky), plus each small
/// Office file and encrypted zip sent as an attachment.
fn corpus_mix(root: &Path) -> Vec<Vec<u8>> {
    let labels = std::fs::read_to_string(root.join("labels.tsv")).expect("labels.tsv");
    let mut mails = Vec::new();
    for row in labels.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (path, category) = (cols[0], cols.get(1).copied().unwrap_or(""));
        let file: PathBuf = root.join(path);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match category {
            "eml-ham" | "eml-spam" | "eml-tricky" => {
                mails.push(std::fs::read(&file).unwrap());
            }
            "ole-clean" | "ole-macro" | "ooxml-clean" | "ooxml-macro" | "xlm-macro"
                if meta.len() <= MAX_ATTACHMENT =>
            {
                let data = std::fs::read(&file).unwrap();
                mails.push(mail_with("Please find the invoice attached.", &name, &data));
            }
            "zip-encrypted" if meta.len() <= MAX_ATTACHMENT => {
                let password = cols
                    .get(3)
                    .and_then(|n| n.split("password=").nth(1))
                    .and_then(|p| p.split([';', ' ']).next())
                    .unwrap_or("unknown");
                let body = format!("The archive is protected.\r\nPassword: {password}");
                let data = std::fs::read(&file).unwrap();
                mails.push(mail_with(&body, &name, &data));
            }
            _ => {}
        }
    }
    mails
}

/// 10 MB of incompressible bytes in a zip, attached to a mail.
fn ten_mb_mail() -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let data: Vec<u8> = (0..10 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut zip = std::io::Cursor::new(Vec::new());
    {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(&mut zip);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("backup.bin", options).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
    }
    mail_with("The backup you asked for.", "backup.zip", &zip.into_inner())
}

/// `n` bytes that do not compress (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A 10 MB OneNote section with one 10 MB embedded file (a
/// FileDataStoreObject between its header and footer GUIDs).
fn onenote_10mb() -> Vec<u8> {
    const ONE: [u8; 16] = [
        0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96,
        0xD3,
    ];
    const FDSO: [u8; 16] = [
        0xE7, 0x16, 0xE3, 0xBD, 0x65, 0x26, 0x11, 0x45, 0xA4, 0xC4, 0x8D, 0x4D, 0x0B, 0x7A, 0x9E,
        0xAC,
    ];
    const FOOTER: [u8; 16] = [
        0x22, 0xA7, 0xFB, 0x71, 0x79, 0x0F, 0x0B, 0x4A, 0xBB, 0x13, 0x89, 0x92, 0x56, 0x42, 0x6B,
        0x24,
    ];
    let data = noise(10 << 20, 7);
    let mut one = ONE.to_vec();
    one.resize(1024, 0);
    one.extend_from_slice(&FDSO);
    one.extend_from_slice(&(data.len() as u64).to_le_bytes());
    one.extend_from_slice(&[0; 12]);
    one.extend_from_slice(&data);
    one.extend_from_slice(&FOOTER);
    one
}

/// A 10 MB ISO 9660 image holding one 10 MB file.
fn iso_10mb() -> Vec<u8> {
    iso_image::iso(&[("DATA.BIN;1", &noise(10 << 20, 11))], None)
}

/// A 10 MB RTF: text, a picture, and an embedded OLE object of 4 MB in
/// hex (\objdata).
fn rtf_10mb() -> Vec<u8> {
    let mut rtf = b"{\\rtf1\\ansi{\\fonttbl{\\f0 Arial;}}\\f0 ".to_vec();
    while rtf.len() < 2 << 20 {
        rtf.extend_from_slice(b"Quarterly figures follow in the table below.\\par ");
    }
    rtf.extend_from_slice(b"{\\object\\objemb{\\*\\objclass Package}{\\*\\objdata ");
    let mut objdata = Vec::new();
    objdata.extend_from_slice(&0x0501u32.to_le_bytes());
    objdata.extend_from_slice(&2u32.to_le_bytes());
    objdata.extend_from_slice(&8u32.to_le_bytes());
    objdata.extend_from_slice(b"Package\0");
    objdata.extend_from_slice(&0u64.to_le_bytes());
    let native = noise(4 << 20, 13);
    objdata.extend_from_slice(&(native.len() as u32).to_le_bytes());
    objdata.extend_from_slice(&native);
    for b in &objdata {
        rtf.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    rtf.extend_from_slice(b"}}");
    while rtf.len() < 10 << 20 {
        rtf.extend_from_slice(b"\\par More text after the object.");
    }
    rtf.extend_from_slice(b"}");
    rtf
}

/// One mail carrying a 10 MB OneNote section, a 10 MB ISO and a 10 MB RTF.
fn payloads_30mb_mail() -> Vec<u8> {
    let part = |name: &str, data: &[u8]| {
        format!(
            "--b1\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}",
            base64_lines(data)
        )
    };
    format!(
        "From: Accounts <accounts@supplier.example>\r\nTo: staff@example.com\r\n\
Subject: files\r\nMessage-ID: <files@supplier.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain\r\n\r\nThe files.\r\n{}{}{}--b1--\r\n",
        part("notes.one", &onenote_10mb()),
        part("disk.iso", &iso_10mb()),
        part("letter.rtf", &rtf_10mb()),
    )
    .into_bytes()
}

/// A plain text mail of about `size` bytes, like the ones
/// `scripts/postfix-bench.sh` sends through Postfix (smtp-source).
fn plain_mail(size: usize, n: usize) -> Vec<u8> {
    let mut mail = format!(
        "From: <sender@bench.example>\r\nTo: <rcpt@dest.example>\r\n\
Date: Sun, 22 Nov 2026 02:00:00 +0000\r\nMessage-ID: <{n}.bench@bench.example>\r\n\
Subject: bench {n}\r\n\r\n"
    )
    .into_bytes();
    let line = b"La La La La La La La La La La La La La La La La La La La La La\r\n";
    while mail.len() < size {
        mail.extend_from_slice(line);
    }
    mail
}

/// A 2 kB reply among a thousand correspondents, each with a display name:
/// every one reads the sender's name and the thread it answers (written
/// 500 messages before) in the lookup, while the writer gathers what the
/// last messages taught.
fn correspondence_mail(n: usize) -> Vec<u8> {
    let who = n % 1000;
    let mut mail = format!(
        "From: \"Correspondent {who}\" <c{who}@partner{}.example>\r\nTo: <rcpt@dest.example>\r\n\
Date: Sun, 22 Nov 2026 02:00:00 +0000\r\nMessage-ID: <{n}.bench@partner.example>\r\n\
In-Reply-To: <{}.bench@partner.example>\r\nSubject: Re: bench {}\r\n\r\n",
        who % 50,
        n.saturating_sub(500),
        n.saturating_sub(500)
    )
    .into_bytes();
    let line = b"La La La La La La La La La La La La La La La La La La La La La\r\n";
    while mail.len() < 2000 {
        mail.extend_from_slice(line);
    }
    mail
}

/// The daemon's per-message work for the Postfix benchmark's traffic: scan
/// and remember in the embedded (SQLite) state store. Remembering is handed
/// to the store's writer thread, as in the daemon: its time is not in these
/// figures (the Postfix benchmark counts the whole process's CPU).
fn bench_plain(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.backend = malspam_milter::store::StoreBackend::Embedded;
    config.store.path = Some(dir.path().join("state.sqlite3"));
    let store = malspam_milter::store::open(&config.store).expect("embedded store");
    let engine = Engine::with_store(config, store).expect("default config");
    let mut group = c.benchmark_group("plain");
    for size in [2_000, 10_000, 50_000, 200_000] {
        let mut n = 0;
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{}kB", size / 1000), |b| {
            b.iter(|| {
                n += 1;
                std::hint::black_box(
                    engine.scan_and_commit(Envelope::default(), &plain_mail(size, n)),
                )
            })
        });
    }
    let mut n = 0;
    group.bench_function("correspondence_2kB", |b| {
        b.iter(|| {
            n += 1;
            std::hint::black_box(
                engine.scan_and_commit(Envelope::default(), &correspondence_mail(n)),
            )
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(Config::default()).expect("default config");
    let root = Path::new(CORPUS);
    if root.join("labels.tsv").exists() {
        let mix = corpus_mix(root);
        let bytes: usize = mix.iter().map(Vec::len).sum();
        // One plain pass first: the figure people ask for.
        let start = Instant::now();
        for raw in &mix {
            std::hint::black_box(engine.scan(Envelope::default(), raw));
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "mix: {} messages, {:.1} MB, one pass {:.3} s = {:.0} messages/s on one core",
            mix.len(),
            bytes as f64 / 1e6,
            elapsed,
            mix.len() as f64 / elapsed
        );
        let mut group = c.benchmark_group("mix");
        group.throughput(Throughput::Elements(mix.len() as u64));
        group.sample_size(10);
        group.bench_function("scan_all", |b| {
            b.iter(|| {
                for raw in &mix {
                    std::hint::black_box(engine.scan(Envelope::default(), raw));
                }
            })
        });
        group.finish();
    } else {
        println!("SKIP mix: corpus absent at {CORPUS}");
    }
    let big = ten_mb_mail();
    let mut group = c.benchmark_group("attachment_10mb");
    group.sample_size(10);
    group.bench_function("scan", |b| {
        b.iter(|| std::hint::black_box(engine.scan(Envelope::default(), &big)))
    });
    group.finish();
    // OneNote + ISO + RTF, 10 MB each, in one mail (issue: <= 100 ms).
    let payloads = payloads_30mb_mail();
    let report = engine.scan(Envelope::default(), &payloads);
    println!(
        "payloads_30mb: {:.1} MB mail, verdict {} {:?}",
        payloads.len() as f64 / 1e6,
        report.verdict,
        report.finding_lines()
    );
    let mut group = c.benchmark_group("payloads_30mb");
    group.sample_size(10);
    group.bench_function("scan", |b| {
        b.iter(|| std::hint::black_box(engine.scan(Envelope::default(), &payloads)))
    });
    group.finish();
}

criterion_group!(benches, bench, bench_plain);
criterion_main!(benches);
