//! Issue "fail closed, stay up": crafted messages that once crashed the
//! scanner, slipped past it unscanned, or were judged `accept` after an
//! internal error. Each test builds the attack first, then checks that the
//! message gets a verdict of at least `tag` with evidence, and that the
//! process is still standing.

use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

fn scan(raw: &[u8]) -> Report {
    Engine::new(Config::default())
        .unwrap()
        .scan(Envelope::default(), raw)
}

fn rules(report: &Report) -> Vec<String> {
    report.findings.iter().map(|f| f.full_rule()).collect()
}

/// `levels` of un-encoded `message/rfc822` nesting, optionally with an
/// encoded (base64) leaf at the bottom.
fn nested_messages(levels: usize, encoded_leaf: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(levels * 40 + 200);
    out.extend_from_slice(b"From: a@sender.example\r\nTo: b@rcpt.example\r\nSubject: deep\r\n");
    for _ in 0..levels {
        out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    if encoded_leaf {
        out.extend_from_slice(
            b"Content-Type: application/octet-stream; name=\"x.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nUEsDBAo=\r\n",
        );
    } else {
        out.extend_from_slice(b"Subject: bottom\r\n\r\nhello\r\n");
    }
    out
}

#[test]
fn sixty_thousand_levels_of_nesting_get_a_verdict() {
    for encoded in [false, true] {
        let report = scan(&nested_messages(60_000, encoded));
        assert!(report.verdict >= Verdict::Tag, "{:?}", report.findings);
        assert!(
            rules(&report).iter().any(|r| r == "scan.limit"),
            "{:?}",
            report.findings
        );
    }
}

#[test]
fn two_hundred_thousand_levels_of_nesting_get_a_verdict() {
    for encoded in [false, true] {
        let report = scan(&nested_messages(200_000, encoded));
        assert!(report.verdict >= Verdict::Tag, "{:?}", report.findings);
        assert!(
            rules(&report).iter().any(|r| r == "scan.limit"),
            "{:?}",
            report.findings
        );
    }
}

// ---- an encrypted Emotet zip, and the tricks around it ------------------

use std::io::Write;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/office")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An AES-encrypted zip (password `abc123`) holding a macro document and an
/// executable, optionally after a decoy entry in the clear.
fn emotet_zip(decoy: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let plain = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        if let Some((name, data)) = decoy {
            w.start_file(name, plain).unwrap();
            w.write_all(data).unwrap();
        }
        let secret = zip::write::SimpleFileOptions::default()
            .with_aes_encryption(zip::AesMode::Aes256, "abc123");
        w.start_file("invoice.doc", secret).unwrap();
        w.write_all(&fixture("d1_document_open_shell.doc")).unwrap();
        w.start_file("invoice.exe", secret).unwrap();
        w.write_all(b"MZ\x90\x00\x03\x00\x00\x00 this program cannot be run in DOS mode")
            .unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn base64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    encoded
        .as_bytes()
        .chunks(76)
        .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
        .collect()
}

/// The Emotet mail: the zip attached, the password in the body, and
/// `extra_line` (if any) in the body too.
fn emotet_mail(zip: &[u8], extra_line: &str) -> Vec<u8> {
    format!(
        "From: Sender <a@sender.example>\r\nTo: b@rcpt.example\r\nSubject: invoice\r\n\
Message-ID: <emotet@sender.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
請求書を送付します。\r\n{extra_line}\r\nパスワード: abc123\r\n--b1\r\n\
Content-Type: application/zip; name=\"invoice.zip\"\r\n\
Content-Disposition: attachment; filename=\"invoice.zip\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}--b1--\r\n",
        base64_lines(zip)
    )
    .into_bytes()
}

fn sorted_rules(report: &Report) -> Vec<String> {
    let mut r = rules(report);
    r.sort();
    r
}

#[test]
fn the_plain_emotet_zip_is_opened_and_quarantined() {
    let report = scan(&emotet_mail(&emotet_zip(None), ""));
    let r = rules(&report);
    assert!(
        r.contains(&"encrypted_archive.password_in_body".to_string()),
        "{r:?}"
    );
    assert!(r.contains(&"office_macro.suspicious".to_string()), "{r:?}");
    assert!(
        r.contains(&"attachment.dangerous_type".to_string()),
        "{r:?}"
    );
    assert_eq!(report.verdict, Verdict::Quarantine);
}

#[test]
fn case_mapping_around_the_archive_name_neither_panics_nor_changes_the_verdict() {
    let zip = emotet_zip(None);
    let without = scan(&emotet_mail(&zip, ""));
    // Each line mixes characters whose lowercase is longer or shorter in
    // UTF-8 than they are, so offsets in a lowercased copy drift.
    for line in [
        "İinvoice.zipẞ",
        "KKKinvoice.zip(İİ)",
        "ȺȺinvoice.zip ẞẞ Ω",
        "ǅİinvoice.ZIPK (abc123)",
    ] {
        let with = scan(&emotet_mail(&zip, line));
        assert!(
            !rules(&with).contains(&"scan.error".to_string()),
            "{line}: {:?}",
            with.findings
        );
        assert_eq!(with.verdict, without.verdict, "{line}");
        assert_eq!(sorted_rules(&with), sorted_rules(&without), "{line}");
    }
}

#[test]
fn a_zip_that_claims_to_be_a_document_is_still_opened() {
    let baseline = sorted_rules(&scan(&emotet_mail(&emotet_zip(None), "")));
    for decoy in [
        ("mimetype", &b""[..]),
        ("mimetype", &b"application/vnd.oasis.opendocument.text"[..]),
        (
            "[Content_Types].xml",
            &b"<?xml version=\"1.0\"?><Types/>"[..],
        ),
    ] {
        let report = scan(&emotet_mail(&emotet_zip(Some(decoy)), ""));
        assert_eq!(sorted_rules(&report), baseline, "decoy {:?}", decoy.0);
        assert_eq!(report.verdict, Verdict::Quarantine, "decoy {:?}", decoy.0);
    }
}

#[test]
fn japanese_entity_in_link_text_keeps_the_links_detector() {
    let raw = "From: a@sender.example\r\nTo: b@rcpt.example\r\nSubject: x\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p><a href=\"https://evil.example/invoice.docm\">&amp;日本語の請求書 https://bank.example/</a></p>\r\n";
    let report = scan(raw.as_bytes());
    assert!(
        !rules(&report).contains(&"scan.error".to_string()),
        "{:?}",
        report.findings
    );
    assert!(
        rules(&report).iter().any(|r| r.starts_with("links.")),
        "{:?}",
        report.findings
    );
}

// ---- headers an attacker writes must not switch detectors off ----------

fn engine_with(toml: &str, dir: &std::path::Path) -> Engine {
    let path = dir.join("malspam-milter.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(Some(&path)).unwrap();
    Engine::with_store(
        config,
        std::sync::Arc::new(malspam_milter::store::MemoryStore::new()),
    )
    .unwrap()
}

fn impersonation(extra_headers: &str) -> Vec<u8> {
    format!(
        "From: Taro Yamada <kx8@stranger-host.example>\r\nTo: staff@example.jp\r\n\
Subject: payment\r\nMessage-ID: <imp@stranger-host.example>\r\n{extra_headers}\r\n\
Please pay the attached invoice today.\r\n"
    )
    .into_bytes()
}

#[test]
fn a_forged_list_id_does_not_soften_an_impersonation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("staff.csv"),
        "Taro Yamada,taro@example.jp\n",
    )
    .unwrap();
    let base =
        "[organization]\ndomains = [\"example.jp\"]\n[display_name]\ndirectory = \"staff.csv\"\n";
    let engine = engine_with(base, dir.path());
    let plain = engine.scan_and_commit(Envelope::default(), &impersonation(""));
    let forged = engine.scan_and_commit(
        Envelope::default(),
        &impersonation("List-Id: <sales.lists.example>\r\nList-Post: <mailto:x@lists.example>\r\n"),
    );
    assert!(
        rules(&plain).contains(&"display_name.directory_person".to_string()),
        "{:?}",
        plain.findings
    );
    assert_eq!(sorted_rules(&forged), sorted_rules(&plain));
    assert_eq!(forged.score, plain.score);

    // A list the organisation knows keeps its lenient rule.
    let engine = engine_with(
        "[organization]\ndomains = [\"example.jp\"]\nmailing_lists = [\"sales.lists.example\"]\n\
[display_name]\ndirectory = \"staff.csv\"\n",
        dir.path(),
    );
    let post = engine.scan_and_commit(
        Envelope::default(),
        &impersonation("List-Id: <sales.lists.example>\r\n"),
    );
    assert_eq!(
        rules(&post),
        ["display_name.via_mailing_list"],
        "{:?}",
        post.findings
    );
}

#[test]
fn a_planted_thread_does_not_vouch_for_its_planter() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with("[organization]\ndomains = [\"example.jp\"]\n", dir.path());
    // The attacker plants a record under the Message-ID of a real thread
    // (stolen from a mailbox), naming himself as its author.
    let plant =
        "From: Ichiro Suzuki <billing@evil-host.example>\r\nTo: Hanako <hanako@example.jp>\r\n\
Subject: Invoice for March\r\nMessage-ID: <thread-42@partner.example>\r\n\
Date: Mon, 4 Mar 2019 10:12:00 +0900\r\n\r\nSee you soon.\r\n";
    assert_eq!(
        engine
            .scan_and_commit(Envelope::default(), plant.as_bytes())
            .verdict,
        Verdict::Accept
    );
    // Then replies into it.
    let hijack =
        "From: Ichiro Suzuki <billing@evil-host.example>\r\nTo: Hanako <hanako@example.jp>\r\n\
Subject: RE: Invoice for March\r\nMessage-ID: <r1@evil-host.example>\r\n\
In-Reply-To: <thread-42@partner.example>\r\nReferences: <thread-42@partner.example>\r\n\r\n\
Please find the new bank details attached.\r\n";
    let report = engine.scan_and_commit(Envelope::default(), hijack.as_bytes());
    assert!(
        rules(&report).contains(&"thread_hijack.unknown_participant".to_string()),
        "{:?}",
        report.findings
    );
}

#[test]
fn one_forged_message_cannot_make_a_name_generic() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with("[organization]\ndomains = [\"example.jp\"]\n", dir.path());
    // Taro is a real correspondent (learnt from the organisation's mail).
    let real = "From: Taro Yamada <taro@legal-holdings.co.jp>\r\nTo: staff@example.jp\r\n\
Subject: hello\r\nMessage-ID: <t1@legal-holdings.co.jp>\r\n\r\nhi\r\n";
    let view = malspam_milter::view::MessageView::build(
        Envelope::default(),
        real.as_bytes(),
        &engine.config().limits,
        std::time::Instant::now() + std::time::Duration::from_secs(10),
    );
    engine
        .remember_as(
            &malspam_milter::store::threads::Remembrance::of(&view),
            true,
        )
        .unwrap();
    let spoof = "From: Taro Yamada <taro@stranger-host.example>\r\nTo: staff@example.jp\r\n\
Subject: urgent\r\nMessage-ID: <s1@stranger-host.example>\r\n\r\nplease call me\r\n";
    let before = engine.scan_and_commit(Envelope::default(), spoof.as_bytes());
    assert!(
        rules(&before).contains(&"display_name.known_correspondent".to_string()),
        "{:?}",
        before.findings
    );
    // One accepted inbound message Cc'ing "Taro Yamada" at three domains.
    let forged = "From: news@bulk-host.example\r\nTo: staff@example.jp\r\n\
Cc: Taro Yamada <t@one.example>, Taro Yamada <t@two.example>, Taro Yamada <t@three.example>\r\n\
Subject: newsletter\r\nMessage-ID: <n1@bulk-host.example>\r\n\r\nnews\r\n";
    assert_eq!(
        engine
            .scan_and_commit(Envelope::default(), forged.as_bytes())
            .verdict,
        Verdict::Accept
    );
    let after = engine.scan_and_commit(
        Envelope::default(),
        spoof.replace("<s1@", "<s2@").as_bytes(),
    );
    assert_eq!(sorted_rules(&after), sorted_rules(&before));
}

// ---- every front end that parses mail survives the deep nesting --------

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_malspam-milter"))
}

#[test]
fn check_learn_and_structure_survive_deep_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.eml");
    std::fs::write(&file, nested_messages(200_000, true)).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            dir.path().join("s.sqlite3").display()
        ),
    )
    .unwrap();
    let check = bin()
        .args(["check", "--json", "--config"])
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        out.contains("\"verdict\":\"tag\"") && out.contains("scan"),
        "{out}"
    );
    let learn = bin()
        .args(["learn", "--config"])
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        learn.status.success(),
        "{}",
        String::from_utf8_lossy(&learn.stderr)
    );
    let structure = bin().args(["structure"]).arg(&file).output().unwrap();
    assert!(
        structure.status.success(),
        "{}",
        String::from_utf8_lossy(&structure.stderr)
    );
    assert!(String::from_utf8_lossy(&structure.stdout).contains("limit limits.max_depth"));
}

// ---- 200 Office documents whose parts are bzip2 bombs --------------------

#[test]
fn two_hundred_bzip2_bombs_in_office_parts_end_at_the_ratio_check() {
    // One .docm whose VBA part declares 64 MiB of zeros in ~100 bytes.
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let plain = zip::write::SimpleFileOptions::default();
        w.start_file("[Content_Types].xml", plain).unwrap();
        w.write_all(b"<?xml version=\"1.0\"?><Types/>").unwrap();
        let bz = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Bzip2)
            .large_file(false);
        w.start_file("word/vbaProject.bin", bz).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            w.write_all(&zeros).unwrap();
        }
        w.finish().unwrap();
    }
    let docm = buf.into_inner();
    assert!(docm.len() < 4096, "{} bytes", docm.len());
    let encoded = base64_lines(&docm);
    let mut mail = String::from(
        "From: a@sender.example\r\nTo: b@rcpt.example\r\nSubject: docs\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n",
    );
    for i in 0..200 {
        mail.push_str(&format!(
            "--b1\r\nContent-Type: application/octet-stream; name=\"d{i}.docm\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        ));
    }
    mail.push_str("--b1--\r\n");
    assert!(mail.len() < 1 << 20);
    let report = scan(mail.as_bytes());
    // Not one part was inflated: the ratio check refuses each before it
    // reads a byte, and the message is tagged as not fully checked.
    assert!(report.verdict >= Verdict::Tag, "{:?}", report.findings);
    let errors: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.full_rule() == "scan.error")
        .map(|f| f.evidence.as_str())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("limits.max_inflation_ratio")),
        "{errors:?}"
    );
}

// ---- an outbound account whose hold cannot be read ----------------------

struct DownStore;

impl malspam_milter::store::Store for DownStore {
    fn backend(&self) -> &'static str {
        "down"
    }
    fn get(&self, _: &str) -> malspam_milter::store::StoreResult<Option<Vec<u8>>> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
    fn put(
        &self,
        _: &str,
        _: &[u8],
        _: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<()> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
    fn delete(&self, _: &str) -> malspam_milter::store::StoreResult<()> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
    fn incr(
        &self,
        _: &str,
        _: i64,
        _: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<i64> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
    fn set_add(
        &self,
        _: &str,
        _: &[u8],
        _: Option<std::time::Duration>,
    ) -> malspam_milter::store::StoreResult<bool> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
    fn set_members(&self, _: &str) -> malspam_milter::store::StoreResult<Vec<Vec<u8>>> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
    fn set_contains(&self, _: &str, _: &[u8]) -> malspam_milter::store::StoreResult<bool> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
    fn keys_with_prefix(&self, _: &str) -> malspam_milter::store::StoreResult<Vec<String>> {
        Err(malspam_milter::store::StoreError::new("connection refused"))
    }
}

/// A short message alice sends out, logged in as `login`.
fn alice_writes_out(engine: &Engine, login: &str) -> Report {
    let envelope = Envelope {
        auth_user: Some(login.into()),
        rcpt_to: vec!["<bob@partner.example>".into()],
        ..Envelope::default()
    };
    engine.scan(
        envelope,
        b"From: Alice <alice@example.jp>\r\nTo: bob@partner.example\r\nSubject: hi\r\n\r\nhello\r\n",
    )
}

#[test]
fn an_outbound_account_is_held_when_the_store_cannot_say() {
    let engine = Engine::with_store(Config::default(), std::sync::Arc::new(DownStore)).unwrap();
    let report = alice_writes_out(&engine, "alice@example.jp");
    assert!(
        rules(&report).contains(&"outbound.hold_unknown".to_string()),
        "{:?}",
        report.findings
    );
    assert_eq!(report.verdict, Verdict::Quarantine);
}

/// A hold record that cannot be read is no "not held": the account's mail
/// is held, and the evidence says why.
#[test]
fn an_outbound_account_is_held_when_its_hold_record_is_unreadable() {
    let store = std::sync::Arc::new(malspam_milter::store::MemoryStore::new());
    malspam_milter::store::Store::put(
        store.as_ref(),
        "ob:hold:alice@example.jp",
        b"{not json",
        None,
    )
    .unwrap();
    let engine = Engine::with_store(Config::default(), store).unwrap();
    let report = alice_writes_out(&engine, "Alice@example.jp");
    let unknown = report
        .findings
        .iter()
        .find(|f| f.full_rule() == "outbound.hold_unknown")
        .unwrap_or_else(|| panic!("{:?}", report.findings));
    assert!(
        unknown
            .evidence
            .contains("ob:hold:alice@example.jp: unreadable hold record"),
        "{}",
        unknown.evidence
    );
    assert_eq!(report.verdict, Verdict::Quarantine);
}
