//! The shared message view: charsets, HTML, nesting of messages and archives,
//! and the limits that keep hostile attachments bounded.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use base64::Engine as _;
use malspam_milter::config::Limits;
use malspam_milter::view::{FileType, MessageView, Origin};
use malspam_milter::Envelope;

fn build(raw: &[u8]) -> MessageView {
    build_with(raw, &Limits::default())
}

fn build_with(raw: &[u8], limits: &Limits) -> MessageView {
    MessageView::build(
        Envelope::default(),
        raw,
        limits,
        Instant::now() + Duration::from_secs(30),
    )
}

fn encode(charset: &str, text: &str) -> Vec<u8> {
    let enc = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap();
    let (bytes, _, bad) = enc.encode(text);
    assert!(!bad, "{text} not encodable in {charset}");
    bytes.into_owned()
}

fn b64(data: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut buf);
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
    buf.into_inner()
}

const JA_BODY: &str = "お世話になっております。\n請求書を添付いたします。\nパスワード：ab12cd\n";

#[test]
fn japanese_charsets_are_decoded() {
    for charset in ["ISO-2022-JP", "Shift_JIS", "EUC-JP", "UTF-8"] {
        let mut raw = format!(
            "From: =?UTF-8?B?5bGx55Sw5aSq6YOO?= <taro@example.co.jp>\r\nTo: a@example.com\r\n\
             Subject: =?ISO-2022-JP?B?GyRCQEE1YT1xGyhC?=\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        )
        .into_bytes();
        raw.extend(encode(charset, JA_BODY));
        let view = build(&raw);
        assert!(view.parsed);
        assert_eq!(view.subject, "請求書", "{charset}");
        assert_eq!(
            view.from.as_ref().unwrap().name.as_deref(),
            Some("山田太郎")
        );
        assert_eq!(view.texts.len(), 1);
        assert!(
            view.body_text().contains("パスワード：ab12cd"),
            "{charset}: {:?}",
            view.body_text()
        );
    }
}

#[test]
fn html_parts_are_text_and_markup() {
    let raw = b"From: a@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
<html><body><p>Pass=\r\nword: <b>x9y8</b></p><a href=3D\"https://example.net/a.docm\">here</a></body></html>\r\n";
    let view = build(raw);
    let part = &view.texts[0];
    assert!(part.text.contains("Password: x9y8"), "{:?}", part.text);
    assert!(part
        .html
        .as_deref()
        .unwrap()
        .contains("href=\"https://example.net/a.docm\""));
}

#[test]
fn attached_message_with_zip_is_opened_with_paths_and_depths() {
    let doc = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1not really an ole body";
    let zip = zip_of(&[("請求書.doc", doc), ("readme.txt", b"hello")]);
    let inner = format!(
        "From: b@example.org\r\nSubject: inner\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\ninner body\r\n\
         --in\r\nContent-Type: application/zip; name=invoice.zip\r\nContent-Disposition: attachment; filename=invoice.zip\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--in--\r\n",
        b64(&zip)
    );
    let outer = format!(
        "From: a@example.com\r\nSubject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n\
         --out\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--out\r\nContent-Type: message/rfc822\r\n\
         Content-Disposition: attachment; filename=fwd.eml\r\n\r\n{inner}\r\n--out--\r\n"
    );
    let view = build(outer.as_bytes());
    let summary: Vec<(String, FileType, usize, Option<usize>)> = view
        .attachments
        .iter()
        .map(|a| (a.path.clone(), a.file_type, a.depth, a.parent))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("fwd.eml".to_string(), FileType::Email, 0, None),
            ("fwd.eml/invoice.zip".to_string(), FileType::Zip, 1, Some(0)),
            (
                "fwd.eml/invoice.zip/請求書.doc".to_string(),
                FileType::Ole2,
                2,
                Some(1)
            ),
            (
                "fwd.eml/invoice.zip/readme.txt".to_string(),
                FileType::Text,
                2,
                Some(1)
            ),
        ]
    );
    assert_eq!(view.attachments[2].origin, Origin::ArchiveEntry);
    assert_eq!(view.attachments[1].archive.as_ref().unwrap().entry_count, 2);
    // The attached message's text is there too, one level down.
    assert!(view
        .texts
        .iter()
        .any(|t| t.depth == 1 && t.text.contains("inner body")));
    assert!(view.limits_hit.is_empty());
}

#[test]
fn nesting_deeper_than_the_limit_stops_with_a_note() {
    let mut data = zip_of(&[("core.txt", b"x")]);
    for i in 0..6 {
        data = zip_of(&[(&format!("level{i}.zip"), &data)]);
    }
    let raw = format!(
        "From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\nContent-Type: application/zip; name=d.zip\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64(&data)
    );
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let view = build_with(raw.as_bytes(), &limits);
    assert!(view.attachments.iter().all(|a| a.depth <= 3));
    assert_eq!(view.limits_hit.len(), 1);
    assert_eq!(view.limits_hit[0].limit, "limits.max_depth");
}

#[test]
fn bombs_and_entry_floods_are_bounded() {
    // One entry of 50 MB of zeros: deflates to ~50 KB, ratio ~1000.
    let zeros = vec![0u8; 50 * 1024 * 1024];
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("bomb.bin", opts).unwrap();
        w.write_all(&zeros).unwrap();
        w.finish().unwrap();
    }
    let bomb = buf.into_inner();
    let many: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("f{i}.txt"), b"x".to_vec()))
        .collect();
    let many_refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let flood = zip_of(&many_refs);
    let raw = format!(
        "From: a@example.com\r\nSubject: bomb\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: application/zip; name=bomb.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --b\r\nContent-Type: application/zip; name=flood.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        b64(&bomb),
        b64(&flood)
    );
    let limits = Limits {
        max_archive_entries: 20,
        ..Limits::default()
    };
    let view = build_with(raw.as_bytes(), &limits);
    let hit: Vec<&str> = view.limits_hit.iter().map(|l| l.limit).collect();
    assert!(hit.contains(&"limits.max_inflation_ratio"), "{hit:?}");
    assert!(hit.contains(&"limits.max_archive_entries"), "{hit:?}");
    assert!(
        view.attachments.iter().all(|a| a.data.len() < 1024 * 1024),
        "the bomb was not inflated"
    );
}

#[test]
fn unparsable_bytes_still_give_a_view() {
    let view = build(b"");
    assert!(!view.parsed);
    let view = build(b"\x00\x01\x02 garbage with no headers");
    assert!(view.texts.len() <= 1);
}

#[test]
fn list_id_is_read_with_or_without_a_phrase() {
    let with_phrase = build(
        b"From: a@example.com\r\nList-Id: Sales team <sales.lists.example.com>\r\n\r\nhi\r\n",
    );
    assert_eq!(
        with_phrase.list_id.as_deref(),
        Some("sales.lists.example.com")
    );
    let bare = build(b"From: a@example.com\r\nList-Id: <sales.lists.example.com>\r\n\r\nhi\r\n");
    assert_eq!(bare.list_id.as_deref(), Some("sales.lists.example.com"));
    let none = build(b"From: a@example.com\r\n\r\nhi\r\n");
    assert_eq!(none.list_id, None);
}

/// A text body is read as UTF-8 when it is UTF-8, and its invalid bytes
/// become U+FFFD when it is not (vendor/mail-parser's `utf8_lossy`).
#[test]
fn text_bodies_are_utf8_with_invalid_bytes_replaced() {
    let valid = build(
        "From: a@example.com\r\nSubject: x\r\n\r\nこんにちは, plain ASCII too\r\n".as_bytes(),
    );
    assert!(valid.texts[0].text.contains("こんにちは, plain ASCII too"));
    let invalid = build(b"From: a@example.com\r\nSubject: x\r\n\r\nbad \xff\xfe bytes\r\n");
    assert!(
        invalid.texts[0].text.contains("bad \u{FFFD}\u{FFFD} bytes"),
        "{:?}",
        invalid.texts[0].text
    );
}
