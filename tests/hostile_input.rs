//! Hostile input: zip bombs, absurd nesting, huge archives, broken OLE, a
//! flood of MIME parts, a megabyte header. Each message must come back with
//! a verdict, `tag` by default, and `scan.limit` evidence naming the limit
//! that stopped the walk — never a panic, a hang or unbounded memory.
//!
//! The inputs are built here, byte by byte where the zip crate would not
//! write them (sizes that lie, zip64 sizes of 10 GB, overlapping entries).

use std::io::Write;

use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

// ---- building blocks ---------------------------------------------------

fn scan(raw: &[u8]) -> Report {
    Engine::new(Config::default())
        .unwrap()
        .scan(Envelope::default(), raw)
}

/// The `scan.limit` evidence of a report.
fn limit_evidence(report: &Report) -> Vec<&str> {
    report
        .findings
        .iter()
        .filter(|f| f.full_rule() == "scan.limit")
        .map(|f| f.evidence.as_str())
        .collect()
}

/// The report is tagged and one `scan.limit` finding names `limit`.
fn assert_limited(report: &Report, limit: &str) {
    let evidence = limit_evidence(report);
    assert!(
        evidence.iter().any(|e| e.starts_with(limit)),
        "expected scan.limit for {limit}, got {:?}",
        report.findings
    );
    assert_eq!(report.verdict, Verdict::Tag, "{:?}", report.findings);
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// A mail with one base64 attachment.
fn mail_with(name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "From: Sender <a@sender.example>\r\nTo: b@rcpt.example\r\nSubject: files\r\n\
Message-ID: <hostile@sender.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain\r\n\r\nsee attached\r\n--b1\r\n\
Content-Type: {content_type}; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}--b1--\r\n",
        base64(data)
    )
    .into_bytes()
}

/// A zip written by the zip crate (honest headers).
fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, data) in entries {
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

/// Raw deflate of `n_mib` MiB of zeros, built from one compressed MiB
/// repeated: a sync-flushed block ends on a byte boundary and only refers
/// back to zeros, so copies of it chain into one valid stream.
fn deflated_zeros(n_mib: usize) -> Vec<u8> {
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let mut block = Vec::with_capacity(4096);
    compress
        .compress_vec(&zeros, &mut block, flate2::FlushCompress::Sync)
        .unwrap();
    let mut stream = Vec::with_capacity(block.len() * n_mib + 2);
    for _ in 0..n_mib {
        stream.extend_from_slice(&block);
    }
    // A final, empty fixed-Huffman block.
    stream.extend_from_slice(&[0x03, 0x00]);
    stream
}

/// One entry as it will be written by [`raw_zip`]: the sizes are whatever
/// the test claims, not what the data holds.
struct RawEntry<'a> {
    name: String,
    method: u16,
    crc: u32,
    declared_size: u64,
    data: &'a [u8],
}

/// A zip written by hand: sizes past 4 GiB go in zip64 extra fields.
fn raw_zip(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let zip64 = e.declared_size > u32::MAX as u64;
        let extra: Vec<u8> = if zip64 {
            let mut x = Vec::new();
            x.extend_from_slice(&1u16.to_le_bytes());
            x.extend_from_slice(&16u16.to_le_bytes());
            x.extend_from_slice(&e.declared_size.to_le_bytes());
            x.extend_from_slice(&(e.data.len() as u64).to_le_bytes());
            x
        } else {
            Vec::new()
        };
        let (size32, csize32) = if zip64 {
            (u32::MAX, u32::MAX)
        } else {
            (e.declared_size as u32, e.data.len() as u32)
        };
        let version: u16 = if zip64 { 45 } else { 20 };
        // Local header.
        out.extend_from_slice(&0x04034b50u32.to_le_bytes());
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&e.method.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // time, date
        out.extend_from_slice(&e.crc.to_le_bytes());
        out.extend_from_slice(&csize32.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&extra);
        out.extend_from_slice(e.data);
        // Central directory header.
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        central.extend_from_slice(&version.to_le_bytes()); // made by
        central.extend_from_slice(&version.to_le_bytes()); // needed
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&e.method.to_le_bytes());
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&e.crc.to_le_bytes());
        central.extend_from_slice(&csize32.to_le_bytes());
        central.extend_from_slice(&size32.to_le_bytes());
        central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 6]); // comment len, disk, internal attrs
        central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(e.name.as_bytes());
        central.extend_from_slice(&extra);
    }
    end_of_central_directory(&mut out, &central, entries.len());
    out
}

fn end_of_central_directory(out: &mut Vec<u8>, central: &[u8], entries: usize) {
    let start = out.len() as u32;
    out.extend_from_slice(central);
    let count = entries.min(0xFFFF) as u16;
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
}

const DEFLATE: u16 = 8;

// ---- zip bombs ----------------------------------------------------------

/// 42.zip style: layers of 16 zips, each leaf 16 entries of 4 MiB of zeros;
/// four layers would unpack to 4 TiB.
#[test]
fn nested_zip_bomb_stops_at_the_entry_and_byte_budgets() {
    let zeros = vec![0u8; 4 << 20];
    let names: Vec<String> = (0..16).map(|i| format!("{i:x}.bin")).collect();
    let leaf_entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &zeros[..])).collect();
    let mut layer = zip_of(&leaf_entries, zip::CompressionMethod::Deflated);
    for level in 0..3 {
        let names: Vec<String> = (0..16).map(|i| format!("{level}{i:x}.zip")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &layer[..])).collect();
        layer = zip_of(&entries, zip::CompressionMethod::Deflated);
    }
    let report = scan(&mail_with("42.zip", "application/zip", &layer));
    let evidence = limit_evidence(&report).join(" | ");
    assert!(
        evidence.contains("limits.max_inflated_bytes")
            || evidence.contains("limits.max_archive_entries"),
        "{evidence}"
    );
    assert_eq!(report.verdict, Verdict::Tag);
}

/// An entry that says (in zip64 fields) it holds 10 GiB is not inflated.
#[test]
fn entry_declaring_ten_gib_is_not_inflated() {
    let stream = deflated_zeros(10 * 1024);
    let zip = raw_zip(&[RawEntry {
        name: "disk.img".into(),
        method: DEFLATE,
        crc: 0,
        declared_size: 10 << 30,
        data: &stream,
    }]);
    let report = scan(&mail_with("disk.zip", "application/zip", &zip));
    assert_limited(&report, "limits.max_entry_bytes");
}

/// The same 10 GiB stream behind headers that claim 1 KiB: reading stops at
/// the entry's cap and the lie is reported.
#[test]
fn entry_lying_about_its_size_stops_at_its_cap() {
    let stream = deflated_zeros(10 * 1024);
    let zip = raw_zip(&[RawEntry {
        name: "small.txt".into(),
        method: DEFLATE,
        crc: 0,
        declared_size: 1024,
        data: &stream,
    }]);
    let report = scan(&mail_with("small.zip", "application/zip", &zip));
    assert_limited(&report, "limits.max_entry_bytes");
    let evidence = limit_evidence(&report).join(" | ");
    assert!(
        evidence.contains("small.txt: inflates past its declared 1024 bytes"),
        "{evidence}"
    );
}

/// Fifield's "better zip bomb": many central-directory entries share one
/// compressed kernel, so the same bytes inflate once per entry.
#[test]
fn overlapping_entries_are_not_inflated() {
    let kernel = deflated_zeros(1);
    let mut out = Vec::new();
    let mut central = Vec::new();
    let count = 200;
    // One local header + kernel; every central entry points at it.
    let name = "k";
    out.extend_from_slice(&0x04034b50u32.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&DEFLATE.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(kernel.len() as u32).to_le_bytes());
    out.extend_from_slice(&(1u32 << 20).to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&kernel);
    for i in 0..count {
        let entry_name = format!("{i:03}");
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&DEFLATE.to_le_bytes());
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&(kernel.len() as u32).to_le_bytes());
        central.extend_from_slice(&(1u32 << 20).to_le_bytes());
        central.extend_from_slice(&(entry_name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment len, disk, attrs
        central.extend_from_slice(&0u32.to_le_bytes()); // local header at 0
        central.extend_from_slice(entry_name.as_bytes());
    }
    end_of_central_directory(&mut out, &central, count);
    let report = scan(&mail_with("overlap.zip", "application/zip", &out));
    assert_limited(&report, "limits.max_inflated_bytes");
    let evidence = limit_evidence(&report).join(" | ");
    assert!(evidence.contains("overlap"), "{evidence}");
}

// ---- nesting --------------------------------------------------------------

#[test]
fn thousand_deep_nested_zips_stop_at_max_depth() {
    let mut layer = zip_of(&[("leaf.txt", b"hello")], zip::CompressionMethod::Stored);
    for _ in 0..1000 {
        layer = zip_of(&[("inner.zip", &layer[..])], zip::CompressionMethod::Stored);
    }
    let report = scan(&mail_with("deep.zip", "application/zip", &layer));
    assert_limited(&report, "limits.max_depth");
}

#[test]
fn thousand_deep_nested_messages_stop_at_max_depth() {
    let mut message = String::from("From: inner@x.example\r\nSubject: leaf\r\n\r\nhello\r\n");
    for level in 0..1000 {
        message = format!(
            "From: a{level}@x.example\r\nSubject: layer {level}\r\nMIME-Version: 1.0\r\n\
Content-Type: message/rfc822\r\n\r\n{message}"
        );
    }
    let report = scan(message.as_bytes());
    assert_limited(&report, "limits.max_depth");
}

// ---- size of the walk -----------------------------------------------------

/// 100,000 empty stored entries: only the first `max_archive_entries` are
/// looked at.
#[test]
fn hundred_thousand_entry_archive_stops_at_max_archive_entries() {
    let entries: Vec<RawEntry<'_>> = (0..100_000)
        .map(|i| RawEntry {
            name: format!("{i:05}.txt"),
            method: 0,
            crc: 0,
            declared_size: 0,
            data: &[],
        })
        .collect();
    let zip = raw_zip(&entries);
    let report = scan(&mail_with("many.zip", "application/zip", &zip));
    assert_limited(&report, "limits.max_archive_entries");
}

#[test]
fn ten_thousand_mime_parts_stop_at_max_mime_parts() {
    let mut m = String::from(
        "From: a@x.example\r\nTo: b@y.example\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n",
    );
    for i in 0..10_000 {
        m.push_str(&format!(
            "--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--p--\r\n");
    let report = scan(m.as_bytes());
    assert_limited(&report, "limits.max_mime_parts");
}

#[test]
fn megabyte_header_line_is_cut_at_max_header_bytes() {
    let subject = "A".repeat(1 << 20);
    let m = format!(
        "From: Sender <a@x.example>\r\nTo: b@y.example\r\nSubject: {subject}\r\n\r\nhello\r\n"
    );
    let report = scan(m.as_bytes());
    assert_limited(&report, "limits.max_header_bytes");
}

// ---- OLE --------------------------------------------------------------

/// A compound file whose FAT sends the directory chain round in a loop
/// (sector 1 -> 1). Whatever reads it must give up, not spin.
fn ole_with_fat_loop() -> Vec<u8> {
    let mut file = vec![0u8; 512 * 3];
    let h = &mut file[..512];
    h[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    h[0x18..0x1A].copy_from_slice(&0x003Eu16.to_le_bytes()); // minor version
    h[0x1A..0x1C].copy_from_slice(&3u16.to_le_bytes()); // major version 3
    h[0x1C..0x1E].copy_from_slice(&0xFFFEu16.to_le_bytes()); // little endian
    h[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes()); // 512-byte sectors
    h[0x20..0x22].copy_from_slice(&6u16.to_le_bytes()); // 64-byte mini sectors
    h[0x2C..0x30].copy_from_slice(&1u32.to_le_bytes()); // one FAT sector
    h[0x30..0x34].copy_from_slice(&1u32.to_le_bytes()); // directory at sector 1
    h[0x38..0x3C].copy_from_slice(&4096u32.to_le_bytes()); // mini cutoff
    h[0x3C..0x40].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes()); // no mini FAT
    h[0x44..0x48].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes()); // no DIFAT sectors
                                                                  // DIFAT: FAT in sector 0; the rest free.
    h[0x4C..0x50].copy_from_slice(&0u32.to_le_bytes());
    for slot in 1..109 {
        let at = 0x4C + slot * 4;
        h[at..at + 4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    }
    // FAT (file sector 0 = offset 512): sector 0 is the FAT, sector 1
    // chains to itself.
    let fat = &mut file[512..1024];
    fat[..4].copy_from_slice(&0xFFFF_FFFDu32.to_le_bytes());
    fat[4..8].copy_from_slice(&1u32.to_le_bytes());
    for i in 2..128 {
        fat[i * 4..i * 4 + 4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    }
    // Directory (sector 1): a root entry.
    let dir = &mut file[1024..1536];
    let root: Vec<u8> = "Root Entry\0"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    dir[..root.len()].copy_from_slice(&root);
    dir[0x40..0x42].copy_from_slice(&(root.len() as u16).to_le_bytes());
    dir[0x42] = 5; // root storage
    dir[0x43] = 1; // black
    for at in [0x44, 0x48, 0x4C] {
        dir[at..at + 4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    }
    dir[0x74..0x78].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    file
}

#[test]
fn ole_with_a_fat_loop_is_refused_by_cfb() {
    let file = ole_with_fat_loop();
    assert!(cfb::CompoundFile::open(std::io::Cursor::new(file)).is_err());
}

#[test]
fn scan_of_an_ole_attachment_with_a_fat_loop_ends_with_a_verdict() {
    let file = ole_with_fat_loop();
    let raw = mail_with("invoice.doc", "application/msword", &file);
    let report = scan(&raw);
    // Whatever the detectors make of it, the scan returns and says so.
    assert!(!report
        .findings
        .iter()
        .any(|f| f.full_rule() == "scan.limit" && f.evidence.contains("scan_timeout")));
    let view = malspam_milter::view::MessageView::build(
        Envelope::default(),
        &raw,
        &malspam_milter::config::Limits::default(),
        std::time::Instant::now() + std::time::Duration::from_secs(60),
    );
    assert_eq!(
        view.attachments[0].file_type,
        malspam_milter::view::FileType::Ole2
    );
}

// ---- quoted history ------------------------------------------------------

/// A reply body built to make quoted-history parsing work hard: a megabyte
/// of lines that each start a header block or an attribution (full-width
/// colons, so NFKC rewrites the text), bare newlines, and deep `>`
/// quoting, with no display name to excuse anything. It scans to a verdict;
/// whatever it finds, a hostile reply is never passed as clean.
#[test]
fn megabyte_of_fake_quoted_headers_scans_to_a_verdict() {
    let mut body = String::new();
    let block = "差出人： Boss <boss@corp.example>\r\n送信日時： 2019年3月4日 10:12\r\n\
宛先： you@corp.example\r\n件名： RE: 請求書\r\n\r\n\r\n\r\n>>>>>>>>>>>>>>>> quoted\r\n\
On Mon, Mar 4, 2019 at 10:12 AM Boss <boss@corp.example> wrote:\r\n";
    while body.len() < (1 << 20) {
        body.push_str(block);
    }
    let m = format!(
        "From: <kx8@stranger.example>\r\nTo: you@corp.example\r\nSubject: RE: 請求書\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
    );
    let report = scan(m.as_bytes());
    let rules: Vec<String> = report.findings.iter().map(|f| f.full_rule()).collect();
    assert!(
        rules.iter().any(|r| r == "thread_hijack.fake_reply"),
        "{rules:?}"
    );
    assert!(report.verdict >= Verdict::Tag, "{rules:?}");
}
