//! office_macro through the whole engine: messages carrying real Office
//! files (tests/fixtures/office, see tests/fixtures/README.md) bare, renamed,
//! inside a plain zip and inside an attached message. Each case checks the
//! exact office_macro findings and the verdict with the default scores.

use std::io::Write;

use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/office/").to_string() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
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
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A multipart message with a short body and the given attachments.
fn message(attachments: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
    let mut m = String::from(
        "From: Taro <taro@example.co.jp>\r\nTo: hanako@example.net\r\nSubject: =?UTF-8?B?6KuL5rGC5pu4?=\r\n\
         Message-ID: <t1@example.co.jp>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\n\
         --BOUNDARY\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the attached file.\r\n",
    );
    for (name, ctype, data) in attachments {
        m.push_str(&format!(
            "--BOUNDARY\r\nContent-Type: {ctype}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64(data)
        ));
    }
    m.push_str("--BOUNDARY--\r\n");
    m.into_bytes()
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn scan(raw: &[u8]) -> Report {
    Engine::new(Config::default())
        .unwrap()
        .scan(Envelope::default(), raw)
}

/// `rule: evidence` of every office_macro and scan finding, in order.
fn findings(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.detector == "office_macro" || f.detector == "scan")
        .map(|f| format!("{}: {}", f.full_rule(), f.evidence))
        .collect()
}

const OLE: &str = "application/msword";
const XLSM: &str = "application/vnd.ms-excel.sheet.macroEnabled.12";

#[test]
fn document_open_shell_doc_is_quarantined() {
    let r = scan(&message(&[(
        "請求書.doc",
        OLE,
        fixture("d1_document_open_shell.doc"),
    )]));
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: 請求書.doc: VBA modules ThisDocument, Module1",
            "office_macro.autoexec: 請求書.doc: VBA Document_Open (A)",
            "office_macro.suspicious: 請求書.doc: VBA Document_Open (A), Shell (X), cmd /c (X)",
        ]
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn doc_inside_a_plain_zip_is_named_by_its_path() {
    let zip = zip_of(&[("請求書.doc", fixture("d1_document_open_shell.doc"))]);
    let r = scan(&message(&[("invoice.zip", "application/zip", zip)]));
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: invoice.zip/請求書.doc: VBA modules ThisDocument, Module1",
            "office_macro.autoexec: invoice.zip/請求書.doc: VBA Document_Open (A)",
            "office_macro.suspicious: invoice.zip/請求書.doc: VBA Document_Open (A), Shell (X), cmd /c (X)",
        ]
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn xlsm_renamed_to_jpg_is_found_by_content() {
    let r = scan(&message(&[(
        "photo.jpg",
        "image/jpeg",
        fixture("d4_auto_open_adodb_savetofile.xlsm"),
    )]));
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: photo.jpg: VBA modules Module1, ThisWorkbook, Sheet1, Sheet2, Sheet3",
            "office_macro.autoexec: photo.jpg: VBA Auto_Open (A)",
            "office_macro.suspicious: photo.jpg: VBA Auto_Open (A), ADODB.Stream (W), SaveToFile (W), WriteText (W), CreateObject (X)",
            "office_macro.renamed: photo.jpg: Excel workbook content (ooxml) named .jpg",
        ]
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn docm_inside_an_attached_message() {
    let inner = message(&[(
        "order.docm",
        "application/vnd.ms-word.document.macroEnabled.12",
        fixture("d3_autoopen_urldownloadtofile_shell.docm"),
    )]);
    let outer = message(&[("fwd.eml", "message/rfc822", inner)]);
    let r = scan(&outer);
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: fwd.eml/order.docm: VBA modules ThisDocument, Module1",
            "office_macro.autoexec: fwd.eml/order.docm: VBA AutoOpen (A)",
            "office_macro.suspicious: fwd.eml/order.docm: VBA AutoOpen (A), URLDownloadToFile (W), Shell (X), cmd /c (X), Declare Lib (X)",
        ]
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn benign_macros_are_tagged_not_quarantined() {
    // d5 auto-runs but only formats a paragraph; SimpleMacro.docm has a
    // macro that does not run by itself.
    let r = scan(&message(&[(
        "format.doc",
        OLE,
        fixture("d5_autoopen_benign_format.doc"),
    )]));
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: format.doc: VBA modules ThisDocument, Module1",
            "office_macro.autoexec: format.doc: VBA AutoOpen (A)",
        ]
    );
    assert_eq!(r.verdict, Verdict::Tag);

    let r = scan(&message(&[(
        "report.docm",
        "application/vnd.ms-word.document.macroEnabled.12",
        fixture("SimpleMacro.docm"),
    )]));
    assert_eq!(
        findings(&r),
        ["office_macro.present: report.docm: VBA modules ThisDocument, Module1"]
    );
    assert_eq!(r.verdict, Verdict::Tag);
}

#[test]
fn two_honest_macro_workbooks_still_only_tag() {
    let r = scan(&message(&[
        ("a.docm", XLSM, fixture("SimpleMacro.docm")),
        ("b.docm", XLSM, fixture("SimpleMacro.docm")),
    ]));
    assert_eq!(
        findings(&r),
        ["office_macro.present: a.docm: VBA modules ThisDocument, Module1; b.docm: VBA modules ThisDocument, Module1"]
    );
    assert_eq!(r.verdict, Verdict::Tag);
}

#[test]
fn excel4_macro_sheet_with_auto_open() {
    let r = scan(&message(&[(
        "book.xls",
        "application/vnd.ms-excel",
        fixture("excel4_sample_macro.xls"),
    )]));
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: book.xls: Excel 4.0 macro sheet \"Macro1\"",
            "office_macro.xlm: book.xls: Excel 4.0 macro sheet \"Macro1\"",
            "office_macro.autoexec: book.xls: XLM Auto_Open (A)",
        ]
    );
    // A macro sheet that runs itself on opening is held (5 + 4 + 1).
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn encrypted_workbook_and_clean_workbook() {
    let r = scan(&message(&[
        (
            "secret.xls",
            "application/vnd.ms-excel",
            fixture("encrypted.xls"),
        ),
        (
            "table.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            fixture("bootstrap35.xlsx"),
        ),
    ]));
    assert_eq!(
        findings(&r),
        ["office_macro.encrypted_document: secret.xls: Excel workbook encrypted (RC4, FILEPASS)"]
    );
    assert_eq!(r.verdict, Verdict::Accept);
}

#[test]
fn unparsable_document_is_a_scan_error_and_others_are_still_checked() {
    let mut broken = fixture("d2_workbook_open_wscript_shell.xls");
    // Keep the OLE header, destroy the FAT and directory.
    for b in broken.iter_mut().skip(76).take(8000) {
        *b = 0xFF;
    }
    let r = scan(&message(&[
        ("broken.xls", "application/vnd.ms-excel", broken),
        (
            "good.xls",
            "application/vnd.ms-excel",
            fixture("d2_workbook_open_wscript_shell.xls"),
        ),
    ]));
    let f = findings(&r);
    assert_eq!(f.len(), 4, "{f:#?}");
    assert_eq!(
        f[..3],
        [
            "office_macro.present: good.xls: VBA modules Module1, ThisWorkbook, Sheet1, Sheet2, Sheet3",
            "office_macro.autoexec: good.xls: VBA Workbook_Open (A)",
            "office_macro.suspicious: good.xls: VBA Workbook_Open (A), Shell (X), WScript.Shell (X), CreateObject (X), cmd /c (X)",
        ]
    );
    assert!(
        f[3].starts_with(
            "scan.error: office_macro: could not fully check: broken.xls: not a readable OLE2 file"
        ),
        "{}",
        f[3]
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn shipped_config_documents_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/malspam-milter.toml");
    let config = Config::load(Some(std::path::Path::new(path))).unwrap();
    let defaults = Config::default();
    assert_eq!(config.office_macro, defaults.office_macro);
    assert_eq!(config.links, defaults.links);
}

#[test]
fn macro_workbook_embedded_in_a_clean_xlsx() {
    // A clean workbook with a macro .xls embedded as an OLE object, the way
    // Office stores it (xl/embeddings/oleObject1.bin).
    let base = fixture("bootstrap35.xlsx");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&base[..])).unwrap();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut e = archive.by_index(i).unwrap();
        let name = e.name().unwrap().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        entries.push((name, data));
    }
    entries.push((
        "xl/embeddings/oleObject1.bin".to_string(),
        fixture("d2_workbook_open_wscript_shell.xls"),
    ));
    let refs: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    let r = scan(&message(&[(
        "table.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        zip_of(&refs),
    )]));
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: table.xlsx: VBA in xl/embeddings/oleObject1.bin modules Module1, ThisWorkbook, Sheet1, Sheet2, Sheet3",
            "office_macro.autoexec: table.xlsx: VBA Workbook_Open (A)",
            "office_macro.suspicious: table.xlsx: VBA Workbook_Open (A), Shell (X), WScript.Shell (X), CreateObject (X), cmd /c (X)",
        ]
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn excel4_macro_calling_exec_is_quarantined() {
    // The oletools sample's first formula is =ALERT("This is a sample Excel 4
    // macro"): FuncVar tokens 42 01 76 80 (command 0x76). Turn it into
    // =EXEC(...) (function 110 = 0x6E) in place, as a dropper would have it.
    let mut book = fixture("excel4_sample_macro.xls");
    let text = b"This is a sample Excel 4 macro";
    let at = book
        .windows(text.len())
        .position(|w| w == text)
        .expect("formula string")
        + text.len();
    assert_eq!(book[at..at + 4], [0x42, 0x01, 0x76, 0x80]);
    book[at + 2..at + 4].copy_from_slice(&[0x6E, 0x00]);
    let r = scan(&message(&[("book.xls", "application/vnd.ms-excel", book)]));
    assert_eq!(
        findings(&r),
        [
            "office_macro.present: book.xls: Excel 4.0 macro sheet \"Macro1\"",
            "office_macro.xlm: book.xls: Excel 4.0 macro sheet \"Macro1\"",
            "office_macro.autoexec: book.xls: XLM Auto_Open (A)",
            "office_macro.suspicious: book.xls: XLM Auto_Open (A), EXEC (X)",
        ]
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}
