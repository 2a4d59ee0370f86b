//! formats::rtf, ole_objects and ooxml on big files: a ~10 MB RTF (document
//! text, a picture and an embedded object of ~4 MB hex, obfuscated like the
//! 2018 exploit wave), the compound file it carries, and a ~10 MB package.
//!
//! Run: `cargo bench --bench formats_rtf`

use std::io::{Cursor, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use malspam_milter::formats::{ole_objects, ooxml, rtf, Budget, Passwords};

const TARGET: usize = 10 * 1024 * 1024;

fn compound_file(stream_bytes: usize) -> Vec<u8> {
    let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    c.set_storage_clsid("/", "0002CE02-0000-0000-C000-000000000046".parse().unwrap())
        .unwrap();
    let body: Vec<u8> = (0..stream_bytes).map(|i| (i * 31 % 251) as u8).collect();
    c.create_stream("/Equation Native")
        .unwrap()
        .write_all(&body)
        .unwrap();
    c.flush().unwrap();
    c.into_inner().into_inner()
}

fn big_rtf(cfb: &[u8]) -> Vec<u8> {
    let mut ole1 = vec![0x01, 0x05, 0, 0, 0x02, 0, 0, 0, 11, 0, 0, 0];
    ole1.extend_from_slice(b"Equation.3\0");
    ole1.extend_from_slice(&[0; 8]);
    ole1.extend_from_slice(&(cfb.len() as u32).to_le_bytes());
    ole1.extend_from_slice(cfb);
    let mut out = b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times;}}".to_vec();
    out.extend_from_slice(b"{\\object\\objemb\\objupdate{\\*\\objclass Equation.3}{\\*\\objdata ");
    for (k, b) in ole1.iter().enumerate() {
        write!(out, "{b:02x}").unwrap();
        if k % 64 == 0 {
            out.extend_from_slice(b"7\\'cc\r\n");
        }
    }
    out.extend_from_slice(b"}}");
    out.extend_from_slice(b"{\\pict\\pngblip ");
    while out.len() < TARGET * 6 / 10 {
        out.extend_from_slice(b"89504e470d0a1a0a0000000d4948445200000010");
    }
    out.extend_from_slice(b"}");
    while out.len() < TARGET {
        out.extend_from_slice(
            b"\\pard Lorem ipsum dolor sit amet, {\\b consectetur} adipiscing.\\par\r\n",
        );
    }
    out.push(b'}');
    out
}

fn big_package() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("[Content_Types].xml", o).unwrap();
    w.write_all(b"<Types/>").unwrap();
    w.start_file("word/_rels/settings.xml.rels", o).unwrap();
    w.write_all(br#"<Relationships><Relationship Id="r" Type="x/attachedTemplate" Target="http://e.example/t.dotm" TargetMode="External"/></Relationships>"#).unwrap();
    w.start_file("word/document.xml", o).unwrap();
    let mut doc = Vec::new();
    while doc.len() < TARGET / 2 {
        doc.extend_from_slice(b"<w:p><w:r><w:t>Lorem ipsum dolor sit amet</w:t></w:r></w:p>");
    }
    w.write_all(&doc).unwrap();
    w.start_file("word/embeddings/oleObject1.bin", o).unwrap();
    let noise: Vec<u8> = (0..TARGET / 2).map(|i| (i * 7919 % 256) as u8).collect();
    w.write_all(&noise).unwrap();
    w.finish().unwrap().into_inner()
}

fn bench(c: &mut Criterion) {
    let cfb = compound_file(4 * 1024 * 1024 / 2);
    let rtf_file = big_rtf(&cfb);
    let package = big_package();
    let mut g = c.benchmark_group("formats");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("rtf 10 MB", |b| {
        b.iter(|| rtf::open(&rtf_file, &Budget::generous(), Passwords::default()))
    });
    g.bench_function("ole_objects 2 MB", |b| {
        b.iter(|| ole_objects::open(&cfb, &Budget::generous(), Passwords::default()))
    });
    g.bench_function("ooxml 10 MB", |b| {
        b.iter(|| ooxml::open(&package, &Budget::generous(), Passwords::default()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
