//! The links detector through the engine: crafted lure messages must hit the
//! exact rules, and the ham of the shared corpus (every `eml-ham` row of
//! labels.tsv: the linux-man list sample and SpamAssassin's nice mail) must
//! not, apart from the exceptions listed below with their reason.

use std::path::Path;

use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

fn scan(engine: &Engine, raw: &[u8]) -> Report {
    engine.scan(Envelope::default(), raw)
}

fn links_findings(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.detector == "links")
        .map(|f| format!("{}: {}", f.full_rule(), f.evidence))
        .collect()
}

#[test]
fn macro_document_link_in_plain_text() {
    let engine = Engine::new(Config::default()).unwrap();
    let raw = "From: a@example.net\r\nTo: b@example.org\r\nSubject: =?UTF-8?B?6KuL5rGC5pu4?=\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\r\n\
               請求書をお送りします。\r\nhttps://files.example.com/share/%E8%AB%8B%E6%B1%82%E6%9B%B8.xlsm?dl=1\r\n\
               パスワード: abc\r\n";
    let r = scan(&engine, raw.as_bytes());
    assert_eq!(
        links_findings(&r),
        ["links.macro_document_download: body: hxxps://files[.]example[.]com/share/%E8%AB%8B%E6%B1%82%E6%9B%B8.xlsm?dl=1"]
    );
    // A link alone tags, it does not quarantine.
    assert_eq!(r.verdict, Verdict::Tag);
}

#[test]
fn html_anchor_with_mismatched_text_and_archive_target() {
    let engine = Engine::new(Config::default()).unwrap();
    let raw = "From: a@example.net\r\nTo: b@example.org\r\nSubject: Invoice\r\n\
               MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
               <html><body><p>Your invoice: <a href=\"http://203.0.113.9.nip.io/get.php?f=inv%2E7z\">\
               https://www.mybank.co.jp/invoice</a></p>\
               <p><a href=\"https://www.mybank.co.jp/help\">www.mybank.co.jp</a></p></body></html>\r\n";
    let r = scan(&engine, raw.as_bytes());
    assert_eq!(
        links_findings(&r),
        [
            "links.text_mismatch: body.html: text shows www[.]mybank[.]co[.]jp, link goes to hxxp://203[.]0[.]113[.]9[.]nip[.]io/get.php?f=inv%2E7z",
            "links.archive_download: body.html: hxxp://203[.]0[.]113[.]9[.]nip[.]io/get.php?f=inv%2E7z",
        ]
    );
    assert_eq!(r.verdict, Verdict::Tag);
}

#[test]
fn every_link_a_reader_can_click() {
    // view::urls::anchors: an image map's <area href>, and an <a> the
    // next link closes, are links too; the text an <a> shows ends there.
    let engine = Engine::new(Config::default()).unwrap();
    let raw = "From: a@example.net\r\nTo: b@example.org\r\nSubject: Invoice\r\n\
               MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
               <html><body><map name=m><area shape=rect coords=0,0,9,9 href=\"http://evil.example.net/inv.docm\"></map>\
               <a href=\"http://evil.example.net/login\">www.mybank.co.jp\
               <a href=\"https://www.mybank.co.jp/help\">help</a></body></html>\r\n";
    let r = scan(&engine, raw.as_bytes());
    assert_eq!(
        links_findings(&r),
        [
            "links.text_mismatch: body.html: text shows www[.]mybank[.]co[.]jp, link goes to hxxp://evil[.]example[.]net/login",
            "links.macro_document_download: body.html: hxxp://evil[.]example[.]net/inv.docm",
        ]
    );
}

#[test]
fn rspamd_phishing_samples() {
    let dir = Path::new(CORPUS).join("rspamd-messages");
    if !dir.exists() {
        eprintln!(
            "SKIPPED rspamd phishing samples: {} not found",
            dir.display()
        );
        return;
    }
    let engine = Engine::new(Config::default()).unwrap();
    for (file, shown) in [
        ("phishing1.eml", "www[.]cnn[.]com"),
        ("phishing2.eml", "www[.]myspace[.]com"),
        ("phishing3.eml", "www[.]bank[.]com"),
        (
            "phishing_same_label_cross_tld.eml",
            "www[.]davidaustinroses[.]co[.]za",
        ),
    ] {
        let raw = std::fs::read(dir.join(file)).unwrap();
        let found = links_findings(&scan(&engine, &raw));
        assert_eq!(found.len(), 1, "{file}: {found:?}");
        assert!(
            found[0].starts_with(&format!(
                "links.text_mismatch: body.html: text shows {shown}, link goes to "
            )),
            "{file}: {found:?}"
        );
    }
    // rspamd's "safe" case: a redirector whose destination is the shown site.
    let raw = std::fs::read(dir.join("phishing_query_safe.eml")).unwrap();
    assert!(links_findings(&scan(&engine, &raw)).is_empty());
}

/// Ham messages where a links rule fires for a reason we accept.
const JUSTIFIED: &[(&str, &str)] = &[];

#[test]
fn no_hits_on_ham() {
    let labels = Path::new(CORPUS).join("labels.tsv");
    let Ok(text) = std::fs::read_to_string(&labels) else {
        eprintln!(
            "SKIPPED links ham check: {} not found (the shared corpus is not in this checkout)",
            labels.display()
        );
        return;
    };
    let engine = Engine::new(Config::default()).unwrap();
    let mut checked = 0;
    let mut hits = Vec::new();
    for line in text.lines() {
        let mut cols = line.split('\t');
        let (Some(path), Some("eml-ham")) = (cols.next(), cols.next()) else {
            continue;
        };
        let raw = std::fs::read(Path::new(CORPUS).join(path)).unwrap();
        let found = links_findings(&scan(&engine, &raw));
        checked += 1;
        if !found.is_empty() && !JUSTIFIED.iter().any(|(p, _)| *p == path) {
            hits.push(format!("{path}: {found:?}"));
        }
    }
    assert_eq!(checked, 311, "eml-ham rows in labels.tsv");
    assert!(hits.is_empty(), "links hits on ham:\n{}", hits.join("\n"));
}
