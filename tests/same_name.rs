//! Same name, different person (同姓同名): a directory of common Japanese
//! names matches honest outsiders who share them. The documented remedy
//! (config/malspam-milter.toml, README): list the outsider's address under
//! the name. Then their mail passes, and the name on a stranger's address
//! is still an impersonation.

use malspam_milter::{Config, Engine, Envelope, Verdict};

const STAFF: &str = "\
# staff
佐藤 健,ken.sato@legal-holdings.co.jp
鈴木 一郎,ichiro.suzuki@legal-holdings.co.jp
田中 裕子,yuko.tanaka@legal-holdings.co.jp
";

fn engine(directory: &str) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("staff.csv"), directory).unwrap();
    let config = dir.path().join("malspam-milter.toml");
    std::fs::write(
        &config,
        "[organization]\ndomains = [\"legal-holdings.co.jp\"]\n\n[display_name]\ndirectory = \"staff.csv\"\n",
    )
    .unwrap();
    let config = Config::load(Some(&config)).unwrap();
    (dir, Engine::new(config).unwrap())
}

fn mail(from: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: info@legal-holdings.co.jp\r\nSubject: お見積りの件\r\nMessage-ID: <1@x.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\n\r\nいつもお世話になっております。\r\n"
    )
    .into_bytes()
}

fn judge(engine: &Engine, from: &str) -> (Verdict, Vec<String>) {
    let report = engine.scan(Envelope::default(), &mail(from));
    let rules = report.findings.iter().map(|f| f.full_rule()).collect();
    (report.verdict, rules)
}

#[test]
fn listing_an_outside_address_under_a_shared_name_clears_that_sender_only() {
    let honest = [
        "佐藤 健 <sato@partner-firm.example.jp>",
        "鈴木 一郎 <suzuki.ichiro@customer.example>",
    ];
    let (_d, plain) = engine(STAFF);
    for from in honest {
        let (verdict, rules) = judge(&plain, from);
        assert!(
            rules.iter().any(|r| r == "display_name.directory_person"),
            "a shared name alone is taken for the staff member: {from}: {rules:?}"
        );
        assert_eq!(verdict, Verdict::Tag, "{from}");
    }

    // The remedy the docs give: the outsider's address under the same name.
    let listed = format!(
        "{STAFF}# same name, other people (customers)\n佐藤 健,sato@partner-firm.example.jp\n鈴木 一郎,suzuki.ichiro@customer.example\n"
    );
    let (_d, fixed) = engine(&listed);
    for from in honest {
        let (verdict, rules) = judge(&fixed, from);
        assert_eq!(verdict, Verdict::Accept, "{from}: {rules:?}");
        assert!(rules.is_empty(), "{from}: {rules:?}");
    }
    // A stranger using the name is still caught.
    let (verdict, rules) = judge(&fixed, "佐藤 健 <ken.sato@unrelated-mailer.example>");
    assert!(
        rules.iter().any(|r| r == "display_name.directory_person"),
        "{rules:?}"
    );
    assert_eq!(verdict, Verdict::Tag);
    // Staff mail is untouched.
    let (verdict, _) = judge(&fixed, "田中 裕子 <yuko.tanaka@legal-holdings.co.jp>");
    assert_eq!(verdict, Verdict::Accept);
}
