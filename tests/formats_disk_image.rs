//! Disk image opener over real images made by real tools (genisoimage,
//! mkfs.fat + mtools; see tests/fixtures/README.md), over the real LNK
//! sample carried inside an image, and over every other file of
//! `../shared/malware-dev` and `../shared/corpus`, none of which may be
//! taken for an image.

mod containers_common;

use std::io::Read;
use std::path::Path;

use containers_common::{corpus_files, present, samples, shared};
use malspam_milter::formats::{disk_image, Budget, Opened, Passwords};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/disk_images")
        .join(name);
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn open(data: &[u8]) -> Opened {
    disk_image::open(data, &Budget::generous(), Passwords::default())
}

fn listing(o: &Opened) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = o
        .embedded
        .iter()
        .map(|e| (e.name.clone().unwrap_or_default(), e.data.len()))
        .collect();
    v.sort();
    v
}

fn expect(names: &[&str]) -> Vec<(String, usize)> {
    let sizes = [43usize, 15, 5000, 12];
    let mut v: Vec<(String, usize)> = names
        .iter()
        .zip(sizes)
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    v.sort();
    v
}

const LONG: [&str; 4] = [
    "Installation Guide.txt",
    "README.TXT",
    "docs/data.bin",
    "docs/deeper/deepest/a very long file name indeed.txt",
];

#[test]
fn iso_images_list_their_files() {
    let joliet = fixture("joliet.iso.gz");
    assert_eq!(
        disk_image::kind(&joliet),
        Some(disk_image::ImageKind::Iso9660)
    );
    let o = open(&joliet);
    assert!(o.limits.is_empty() && o.indicators.is_empty(), "{o:?}");
    assert_eq!(listing(&o), expect(&LONG));
    let readme = o
        .embedded
        .iter()
        .find(|e| e.name.as_deref() == Some("README.TXT"))
        .unwrap();
    assert_eq!(&readme.data[..], b"Read me first.\n");

    // Without Joliet: ISO level 1 names (8.3, upper case).
    let o = open(&fixture("plain.iso.gz"));
    assert_eq!(
        listing(&o),
        expect(&[
            "INSTALLA.TXT",
            "README.TXT",
            "DOCS/DATA.BIN",
            "DOCS/DEEPER/DEEPEST/A_VERY_L.TXT"
        ])
    );

    // ISO/UDF bridge: listed through its ISO side.
    let bridge = fixture("bridge.iso.gz");
    let o = open(&bridge);
    assert_eq!(listing(&o), expect(&LONG));
}

#[test]
fn udf_only_image_lists_its_files() {
    // The bridge with its ISO 9660 descriptors replaced by a second copy of
    // its UDF recognition sequence: what a UDF-only image looks like.
    let mut udf = fixture("bridge.iso.gz");
    let vrs: Vec<u8> = udf[19 * 2048..22 * 2048].to_vec();
    assert_eq!(&vrs[1..6], b"BEA01", "bridge layout changed");
    udf[16 * 2048..19 * 2048].copy_from_slice(&vrs);
    assert_eq!(disk_image::kind(&udf), Some(disk_image::ImageKind::Udf));
    let o = open(&udf);
    assert!(o.limits.is_empty(), "{:?}", o.limits);
    assert_eq!(listing(&o), expect(&LONG));
}

#[test]
fn fat_images_list_their_files() {
    for name in ["fat12.img.gz", "fat16.img.gz", "fat32.img.gz"] {
        let img = fixture(name);
        assert_eq!(
            disk_image::kind(&img),
            Some(disk_image::ImageKind::Fat),
            "{name}"
        );
        let o = open(&img);
        assert!(o.limits.is_empty(), "{name}: {:?}", o.limits);
        assert_eq!(listing(&o), expect(&LONG), "{name}");
        let data = o
            .embedded
            .iter()
            .find(|e| e.name.as_deref() == Some("docs/data.bin"))
            .unwrap();
        assert!(data.data.iter().all(|&b| b == b'x'), "{name}");
    }
}

/// Each real LNK sample, written into a FAT12 image in memory (a chain of
/// free clusters given to `README.TXT`), comes out whole.
#[test]
fn real_lnk_inside_an_image_comes_out_whole() {
    let Some(lnks) = samples(&["lnk"], "real_lnk_inside_an_image_comes_out_whole") else {
        return;
    };
    let base = fixture("fat12.img.gz");
    let u16_at = |d: &[u8], at: usize| u16::from_le_bytes([d[at], d[at + 1]]) as usize;
    let bps = u16_at(&base, 11);
    let spc = base[13] as usize;
    let reserved = u16_at(&base, 14);
    let fats = base[16] as usize;
    let root_entries = u16_at(&base, 17);
    let fat_sectors = u16_at(&base, 22);
    let data_at = (reserved + fats * fat_sectors) * bps + root_entries * 32;
    let cluster_bytes = bps * spc;
    for s in &lnks {
        let mut img = base.clone();
        let first = 1000usize;
        let n = s.data.len().div_ceil(cluster_bytes);
        for i in 0..n {
            let c = first + i;
            let value = if i + 1 == n { 0xFFF } else { c + 1 } as u16;
            for copy in 0..fats {
                let at = (reserved + copy * fat_sectors) * bps + c + c / 2;
                let mut pair = u16_at(&img, at) as u16;
                pair = if c % 2 == 0 {
                    (pair & 0xF000) | value
                } else {
                    (pair & 0x000F) | (value << 4)
                };
                img[at..at + 2].copy_from_slice(&pair.to_le_bytes());
            }
        }
        let start = data_at + (first - 2) * cluster_bytes;
        img[start..start + s.data.len()].copy_from_slice(&s.data);
        let entry = img.windows(11).position(|w| w == b"README  TXT").unwrap();
        img[entry + 26..entry + 28].copy_from_slice(&(first as u16).to_le_bytes());
        img[entry + 28..entry + 32].copy_from_slice(&(s.data.len() as u32).to_le_bytes());
        let o = open(&img);
        let got = o
            .embedded
            .iter()
            .find(|e| e.name.as_deref() == Some("README.TXT"))
            .unwrap();
        assert!(got.data[..] == s.data[..], "{}", s.path);
        assert!(malspam_milter::formats::lnk::sniff(&got.data), "{}", s.path);
    }
}

/// No malware sample and no corpus file is taken for a disk image.
#[test]
fn no_other_file_is_taken_for_an_image() {
    let mut checked = 0;
    if let Some(all) = samples(
        &[
            "ole-vba",
            "ole-xlm",
            "ooxml-vba",
            "ooxml-xlm",
            "ooxml-nomacro",
            "ooxml-external-template/object",
            "rtf",
            "onenote",
            "lnk",
            "html",
            "script",
            "pdf",
            "encrypted-office",
        ],
        "no_other_file_is_taken_for_an_image",
    ) {
        for s in &all {
            assert!(!disk_image::sniff(&s.data), "{}", s.path);
            assert!(open(&s.data).is_empty(), "{}", s.path);
            checked += 1;
        }
    }
    let root = shared("corpus");
    if present(&root, "no_other_file_is_taken_for_an_image") {
        for path in corpus_files("") {
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            assert!(!disk_image::sniff(&data), "{}", path.display());
            checked += 1;
        }
    }
    eprintln!("{checked} files, none taken for a disk image");
}
