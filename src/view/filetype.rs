//! File types told from content (magic bytes), never from names.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    /// OLE2 compound file: .doc, .xls, .ppt, .msg, encrypted OOXML, vbaProject.bin.
    Ole2,
    /// A zip holding `[Content_Types].xml`: .docx/.docm/.xlsx/.xlsm/.pptx/...
    Ooxml,
    /// A zip holding a `mimetype` of an OpenDocument type.
    OpenDocument,
    /// Any other zip archive.
    Zip,
    SevenZip,
    Rar,
    Gzip,
    Bzip2,
    Xz,
    Cab,
    Pdf,
    Rtf,
    /// Windows executable (MZ).
    Pe,
    Elf,
    MachO,
    /// Windows shortcut (.lnk).
    Lnk,
    /// ISO 9660 disk image (also .img files carrying one).
    Iso,
    /// OneNote section (.one).
    OneNote,
    /// An attached RFC 5322 message.
    Email,
    Html,
    Png,
    Jpeg,
    Gif,
    /// Looks like text, type otherwise unknown.
    Text,
    Unknown,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Ole2 => "ole2",
            FileType::Ooxml => "ooxml",
            FileType::OpenDocument => "opendocument",
            FileType::Zip => "zip",
            FileType::SevenZip => "7z",
            FileType::Rar => "rar",
            FileType::Gzip => "gzip",
            FileType::Bzip2 => "bzip2",
            FileType::Xz => "xz",
            FileType::Cab => "cab",
            FileType::Pdf => "pdf",
            FileType::Rtf => "rtf",
            FileType::Pe => "pe",
            FileType::Elf => "elf",
            FileType::MachO => "macho",
            FileType::Lnk => "lnk",
            FileType::Iso => "iso",
            FileType::OneNote => "onenote",
            FileType::Email => "email",
            FileType::Html => "html",
            FileType::Png => "png",
            FileType::Jpeg => "jpeg",
            FileType::Gif => "gif",
            FileType::Text => "text",
            FileType::Unknown => "unknown",
        }
    }

    /// Zips, whatever they claim to be: plain, Office package, OpenDocument.
    pub fn is_zip_based(self) -> bool {
        matches!(
            self,
            FileType::Zip | FileType::Ooxml | FileType::OpenDocument
        )
    }

    /// Archive formats (not counting Office packages, which are zips too).
    pub fn is_archive(self) -> bool {
        matches!(
            self,
            FileType::Zip
                | FileType::SevenZip
                | FileType::Rar
                | FileType::Gzip
                | FileType::Bzip2
                | FileType::Xz
                | FileType::Cab
        )
    }
}

impl std::fmt::Display for FileType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const OLE2_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const ONENOTE_MAGIC: &[u8] = &[
    0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96, 0xD3,
];
const LNK_MAGIC: &[u8] = &[0x4C, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00];

/// Tell the type of `data` from its first bytes. Zips are classified further by
/// their central directory (Office package, OpenDocument or plain archive).
pub fn detect(data: &[u8]) -> FileType {
    let starts = |m: &[u8]| data.starts_with(m);
    if starts(OLE2_MAGIC) {
        return FileType::Ole2;
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        return classify_zip(data);
    }
    if starts(b"7z\xBC\xAF\x27\x1C") {
        return FileType::SevenZip;
    }
    if starts(b"Rar!\x1A\x07") {
        return FileType::Rar;
    }
    if starts(&[0x1F, 0x8B]) {
        return FileType::Gzip;
    }
    if starts(b"BZh") && data.len() > 3 && data[3].is_ascii_digit() {
        return FileType::Bzip2;
    }
    if starts(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        return FileType::Xz;
    }
    if starts(b"MSCF") {
        return FileType::Cab;
    }
    if starts(b"%PDF-") || find(&data[..data.len().min(1024)], b"%PDF-").is_some() {
        return FileType::Pdf;
    }
    if starts(b"{\\rt") {
        return FileType::Rtf;
    }
    if starts(b"MZ") {
        return FileType::Pe;
    }
    if starts(b"\x7FELF") {
        return FileType::Elf;
    }
    if starts(&[0xCF, 0xFA, 0xED, 0xFE]) || starts(&[0xCE, 0xFA, 0xED, 0xFE]) {
        return FileType::MachO;
    }
    if starts(LNK_MAGIC) {
        return FileType::Lnk;
    }
    if starts(ONENOTE_MAGIC) {
        return FileType::OneNote;
    }
    // ISO 9660: "CD001" at sector 16 (offset 0x8001); UDF images carry it too.
    if data.len() > 0x8006 && &data[0x8001..0x8006] == b"CD001" {
        return FileType::Iso;
    }
    if starts(b"\x89PNG") {
        return FileType::Png;
    }
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return FileType::Jpeg;
    }
    if starts(b"GIF8") {
        return FileType::Gif;
    }
    let head = &data[..data.len().min(2048)];
    if looks_like_text(head) {
        let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
        let trimmed = lower.trim_start();
        if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
            return FileType::Html;
        }
        if looks_like_message(&lower) {
            return FileType::Email;
        }
        return FileType::Text;
    }
    FileType::Unknown
}

/// Office packages and OpenDocument files are zips; tell them apart by the
/// names in the central directory, which the zip crate reads without inflating.
fn classify_zip(data: &[u8]) -> FileType {
    let Ok(archive) = zip::ZipArchive::new(std::io::Cursor::new(data)) else {
        // A truncated or damaged zip is still a zip for the purpose of policy.
        return FileType::Zip;
    };
    let mut ooxml = false;
    for name in archive.file_names_raw() {
        if name.eq_ignore_ascii_case(b"[Content_Types].xml") {
            ooxml = true;
            break;
        }
        if name == b"mimetype" {
            return FileType::OpenDocument;
        }
    }
    if ooxml {
        FileType::Ooxml
    } else {
        FileType::Zip
    }
}

fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let binary = head
        .iter()
        .filter(|&&b| b < 0x09 || (b > 0x0D && b < 0x20 && b != 0x1B))
        .count();
    binary * 100 / head.len() < 2
}

fn looks_like_message(lower_head: &str) -> bool {
    let mut header_lines = 0;
    for line in lower_head.lines().take(20) {
        if line.is_empty() {
            break;
        }
        for h in [
            "from:",
            "to:",
            "subject:",
            "date:",
            "received:",
            "message-id:",
            "return-path:",
        ] {
            if line.starts_with(h) {
                header_lines += 1;
            }
        }
    }
    header_lines >= 2
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(OLE2_MAGIC), FileType::Ole2);
        assert_eq!(detect(b"MZ\x90\x00"), FileType::Pe);
        assert_eq!(detect(b"%PDF-1.7\n"), FileType::Pdf);
        assert_eq!(detect(b"{\\rtf1\\ansi"), FileType::Rtf);
        assert_eq!(detect(b"7z\xBC\xAF\x27\x1C\x00\x04"), FileType::SevenZip);
        assert_eq!(detect(b"Rar!\x1A\x07\x01\x00"), FileType::Rar);
        assert_eq!(detect(LNK_MAGIC), FileType::Lnk);
        assert_eq!(detect(b"From: a@b\r\nTo: c@d\r\n\r\nhi"), FileType::Email);
        assert_eq!(detect(b"hello world\n"), FileType::Text);
        assert_eq!(detect(&[0u8, 1, 2, 3, 4, 5]), FileType::Unknown);
    }

    #[test]
    fn tells_office_packages_from_plain_zips() {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            w.start_file("[Content_Types].xml", opts).unwrap();
            w.start_file("word/document.xml", opts).unwrap();
            w.finish().unwrap();
        }
        assert_eq!(detect(buf.get_ref()), FileType::Ooxml);

        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            w.start_file("a.txt", zip::write::SimpleFileOptions::default())
                .unwrap();
            w.finish().unwrap();
        }
        assert_eq!(detect(buf.get_ref()), FileType::Zip);
    }
}
