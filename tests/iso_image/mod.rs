//! A small ISO 9660 image built in memory, for tests and benches that need
//! a disk image with known files (no image tool on the build machine).
//! `src/formats/disk_image.rs`'s unit tests build their own images from
//! its directory records.
#![allow(dead_code)] // each user takes what it needs

pub const SECTOR: usize = 2048;

/// A file of the image: its ISO name and its bytes.
pub type File<'a> = (&'a str, &'a [u8]);

/// A 32-bit number as ISO 9660 writes it: little- then big-endian.
pub fn both_endian(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// One directory record (ECMA-119 9.1), padded to an even length.
pub fn dir_record(extent: u32, size: u32, dir: bool, name: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 33];
    r[2..10].copy_from_slice(&both_endian(extent));
    r[10..18].copy_from_slice(&both_endian(size));
    r[25] = if dir { 2 } else { 0 };
    r[32] = name.len() as u8;
    r.extend_from_slice(name);
    if r.len() % 2 == 1 {
        r.push(0);
    }
    r[0] = r.len() as u8;
    r
}

/// An image whose root holds `files` (ISO names such as `README.TXT;1`)
/// and, when `folder` is given, one folder `(name, files)` under it.
pub fn iso(files: &[File<'_>], folder: Option<(&str, &[File<'_>])>) -> Vec<u8> {
    const ROOT: usize = 18;
    const FOLDER: usize = 19;
    let mut img = vec![0u8; 20 * SECTOR];
    let mut next = 20;
    // Each file from `next` on, sector-aligned.
    let mut place = |img: &mut Vec<u8>, data: &[u8]| -> u32 {
        let at = next;
        let sectors = data.len().div_ceil(SECTOR).max(1);
        img.resize((at + sectors) * SECTOR, 0);
        img[at * SECTOR..at * SECTOR + data.len()].copy_from_slice(data);
        next += sectors;
        at as u32
    };
    let mut root = vec![
        dir_record(ROOT as u32, SECTOR as u32, true, &[0]),
        dir_record(ROOT as u32, SECTOR as u32, true, &[1]),
    ];
    if let Some((name, inner)) = folder {
        root.push(dir_record(
            FOLDER as u32,
            SECTOR as u32,
            true,
            name.as_bytes(),
        ));
        let mut entries = vec![
            dir_record(FOLDER as u32, SECTOR as u32, true, &[0]),
            dir_record(ROOT as u32, SECTOR as u32, true, &[1]),
        ];
        for (file, data) in inner {
            let at = place(&mut img, data);
            entries.push(dir_record(at, data.len() as u32, false, file.as_bytes()));
        }
        let entries = entries.concat();
        img[FOLDER * SECTOR..FOLDER * SECTOR + entries.len()].copy_from_slice(&entries);
    }
    for (file, data) in files {
        let at = place(&mut img, data);
        root.push(dir_record(at, data.len() as u32, false, file.as_bytes()));
    }
    let root = root.concat();
    img[ROOT * SECTOR..ROOT * SECTOR + root.len()].copy_from_slice(&root);
    // The primary volume descriptor at sector 16, the terminator at 17.
    let pvd = 16 * SECTOR;
    img[pvd] = 1;
    img[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    img[pvd + 6] = 1;
    img[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
    let root_record = dir_record(ROOT as u32, SECTOR as u32, true, &[0]);
    img[pvd + 156..pvd + 156 + root_record.len()].copy_from_slice(&root_record);
    img[17 * SECTOR] = 255;
    img[17 * SECTOR + 1..17 * SECTOR + 6].copy_from_slice(b"CD001");
    img
}
