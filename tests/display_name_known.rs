//! `display_name.known_correspondent`: names learned from earlier mail (a Sent
//! folder fed to `learn`) and then shown on a stranger's address. Runs the
//! real binary over an embedded store, as an admin would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use malspam_milter::store::{Store, StoreError, StoreResult};
use malspam_milter::{Config, Engine, Envelope};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_malspam-milter"))
}

/// RFC 2047 B-encoding of a UTF-8 display name, as Japanese mailers send it.
fn b_encode(name: &str) -> String {
    use base64::Engine as _;
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(name)
    )
}

fn message(from: &str, to: &str, id: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: =?UTF-8?B?{}?=\r\nDate: Tue, 03 Mar 2026 16:15:00 +0900\r\n\
         Message-ID: <{id}>\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Please see the schedule below.\r\n",
        "5omT44Gh5ZCI44KP44Gb"
    )
}

/// A Sent-folder mbox: the organisation wrote with Taro Yamada (in kanji and
/// in romaji) at legal-holdings.co.jp, and with three different "Support"
/// desks, a role name shared by many senders.
fn sent_folder(dir: &Path) -> PathBuf {
    let ours = "Ichiro Suzuki <ichiro@partner.example.jp>";
    let mut mbox = String::new();
    let mails = [
        message(
            &format!(
                "{} <taro.yamada@legal-holdings.co.jp>",
                b_encode("山田 太郎")
            ),
            ours,
            "1@legal-holdings.co.jp",
            "",
        ),
        message(
            "Taro Yamada <taro.yamada@legal-holdings.co.jp>",
            ours,
            "2@legal-holdings.co.jp",
            "",
        ),
        message(
            ours,
            "Support <support@vendor-a.example>",
            "3@partner.example.jp",
            "",
        ),
        message(
            ours,
            "Support <help@vendor-b.example>",
            "4@partner.example.jp",
            "",
        ),
        message(
            ours,
            "Support <desk@vendor-c.example>",
            "5@partner.example.jp",
            "",
        ),
    ];
    for m in mails {
        mbox.push_str("From sender@example Tue Mar  3 07:15:00 2026\n");
        mbox.push_str(&m.replace("\r\n", "\n"));
        mbox.push('\n');
    }
    let path = dir.join("Sent.mbox");
    std::fs::write(&path, mbox).unwrap();
    path
}

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("malspam-milter.toml");
    std::fs::write(
        &path,
        format!(
            "[organization]\nmailing_lists = [\"users.lists.example.org\"]\n\
[store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            dir.join("state.sqlite3").display()
        ),
    )
    .unwrap();
    path
}

/// `check --json` one message; the display_name findings, sorted.
fn display_findings(config: &Path, dir: &Path, raw: &str) -> Vec<String> {
    let file = dir.join("incoming.eml");
    std::fs::write(&file, raw).unwrap();
    let out = bin()
        .args(["check", "--json", "--config"])
        .arg(config)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut rules: Vec<String> = line["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["detector"] == "display_name" || f["detector"] == "scan")
        .map(|f| {
            format!(
                "{}.{}: {}",
                f["detector"].as_str().unwrap(),
                f["rule"].as_str().unwrap(),
                f["evidence"].as_str().unwrap()
            )
        })
        .collect();
    rules.sort();
    rules
}

#[test]
fn learned_names_on_strangers_addresses_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let out = bin()
        .args(["learn", "--config"])
        .arg(&config)
        .arg(sent_folder(dir.path()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let to = "Ichiro Suzuki <ichiro@partner.example.jp>";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        // The seeds' attack: a real correspondent's name, a stranger's address.
        (
            "kanji name, stranger's address",
            message(&format!("{} <info@kansai-unrelated.example>", b_encode("山田　太郎")), to, "a@x", ""),
            vec!["display_name.known_correspondent: display name \"山田　太郎\" is known from earlier mail at legal-holdings.co.jp (1 address); From is info@kansai-unrelated.example"],
        ),
        (
            "word order reversed",
            message("\"Yamada Taro\" <billing@unrelated.example>", to, "b@x", ""),
            vec!["display_name.known_correspondent: display name \"Yamada Taro\" is known from earlier mail at legal-holdings.co.jp (1 address); From is billing@unrelated.example"],
        ),
        (
            "Cyrillic look-alike letters",
            message("\"Tаrо Yamada\" <t.yamada@unrelated.example>", to, "c@x", ""),
            vec!["display_name.known_correspondent: display name \"Tаrо Yamada\" is known from earlier mail at legal-holdings.co.jp (1 address); From is t.yamada@unrelated.example"],
        ),
        // Legitimate look-alikes.
        ("the person's own address", message("Taro Yamada <taro.yamada@legal-holdings.co.jp>", to, "d@x", ""), vec![]),
        ("another address at the person's organisation", message("Taro Yamada <t-yamada@mail.legal-holdings.co.jp>", to, "e@x", ""), vec![]),
        ("a role name seen at many organisations", message("Support <support@vendor-d.example>", to, "f@x", ""), vec![]),
        ("a name never seen", message("Hanako Sato <hanako@unrelated.example>", to, "g@x", ""), vec![]),
    ];
    for (what, raw, expected) in &cases {
        let got = display_findings(&config, dir.path(), raw);
        assert_eq!(&got, expected, "{what}");
    }
    // A post to a list the organisation reads only gets the weak list note...
    let list_post = message(
        "Taro Yamada <taro@lists.example.org>",
        to,
        "h@x",
        "List-Id: <users.lists.example.org>\r\n",
    );
    let got = display_findings(&config, dir.path(), &list_post);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "display_name.via_mailing_list: list users.lists.example.org: known_correspondent:"
        ),
        "{got:?}"
    );
    // ...but a List-Id of a list nobody knows is only a claim.
    let forged = message(
        "Taro Yamada <taro@lists.example.org>",
        to,
        "i@x",
        "List-Id: <other.lists.example.org>\r\n",
    );
    let got = display_findings(&config, dir.path(), &forged);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("display_name.known_correspondent:"),
        "{got:?}"
    );
}

/// A store that fails every call.
struct DownStore;
impl Store for DownStore {
    fn backend(&self) -> &'static str {
        "down"
    }
    fn get(&self, _: &str) -> StoreResult<Option<Vec<u8>>> {
        Err(StoreError::new("connection refused"))
    }
    fn put(&self, _: &str, _: &[u8], _: Option<std::time::Duration>) -> StoreResult<()> {
        Err(StoreError::new("connection refused"))
    }
    fn delete(&self, _: &str) -> StoreResult<()> {
        Err(StoreError::new("connection refused"))
    }
    fn incr(&self, _: &str, _: i64, _: Option<std::time::Duration>) -> StoreResult<i64> {
        Err(StoreError::new("connection refused"))
    }
    fn set_add(&self, _: &str, _: &[u8], _: Option<std::time::Duration>) -> StoreResult<bool> {
        Err(StoreError::new("connection refused"))
    }
    fn set_contains(&self, _: &str, _: &[u8]) -> StoreResult<bool> {
        Err(StoreError::new("connection refused"))
    }
    fn set_members(&self, _: &str) -> StoreResult<Vec<Vec<u8>>> {
        Err(StoreError::new("connection refused"))
    }
    fn keys_with_prefix(&self, _: &str) -> StoreResult<Vec<String>> {
        Err(StoreError::new("connection refused"))
    }
}

#[test]
fn a_store_that_is_down_costs_only_this_rule() {
    let engine = Engine::with_store(Config::default(), Arc::new(DownStore)).unwrap();
    let raw = message(
        "\"Taro Yamada\" <info@unrelated.example>",
        "ichiro@partner.example.jp",
        "z@x",
        "Reply-To: <collect@elsewhere.example>\r\n",
    );
    let report = engine.scan(Envelope::default(), raw.as_bytes());
    let rules: Vec<String> = report.findings.iter().map(|f| f.full_rule()).collect();
    // The other display_name rules still ran.
    assert!(
        rules.contains(&"display_name.reply_to_mismatch".to_string()),
        "{rules:?}"
    );
    let err = report
        .findings
        .iter()
        .find(|f| f.full_rule() == "scan.error" && f.evidence.contains("known_correspondent"))
        .unwrap_or_else(|| panic!("no scan.error for the store: {rules:?}"));
    assert!(
        err.evidence.contains("connection refused"),
        "{}",
        err.evidence
    );
}

#[test]
fn a_correspondent_learned_at_an_idn_is_known_in_either_form() {
    // Learned from taro@例え.jp; mail from the punycode form of the same
    // address is his, from a look-alike domain it is a stranger under his
    // name, and the evidence names the domain as the learned mail wrote it.
    let engine = Engine::with_store(
        Config::default(),
        Arc::new(malspam_milter::store::MemoryStore::new()),
    )
    .unwrap();
    let learned = message(
        &format!("{} <taro@例え.jp>", b_encode("山田 太郎")),
        "Ichiro Suzuki <ichiro@partner.example.jp>",
        "1@xn--r8jz45g.jp",
        "",
    );
    let view = malspam_milter::view::MessageView::build(
        Envelope::default(),
        learned.as_bytes(),
        &Config::default().limits,
        std::time::Instant::now() + std::time::Duration::from_secs(10),
    );
    engine
        .remember_as(
            &malspam_milter::store::threads::Remembrance::of(&view),
            true,
        )
        .unwrap();
    let known = |address: &str| -> Vec<String> {
        let raw = message(
            &format!("{} <{address}>", b_encode("山田 太郎")),
            "Ichiro Suzuki <ichiro@partner.example.jp>",
            "2@example.net",
            "",
        );
        engine
            .scan(Envelope::default(), raw.as_bytes())
            .findings
            .iter()
            .filter(|f| f.detector == "display_name")
            .map(|f| format!("{}: {}", f.rule, f.evidence))
            .collect()
    };
    assert_eq!(known("Taro@XN--R8JZ45G.JP"), Vec::<String>::new());
    assert_eq!(
        known("taro.yamada@mail.xn--r8jz45g.jp"),
        Vec::<String>::new()
    );
    assert_eq!(
        known("taro@例ぇ.jp"),
        ["known_correspondent: display name \"山田 太郎\" is known from earlier mail at 例え.jp (1 address); From is taro@例ぇ.jp"]
    );
}
