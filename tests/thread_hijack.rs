//! Conversations learned (with `learn` from an mbox and a Maildir, and by
//! the engine remembering passed mail), then hijacked the way Emotet does,
//! in each quoting style, English and Japanese, encoded as real mailers
//! encode them (ISO-2022-JP, UTF-8 base64 and quoted-printable). Genuine
//! replies, forwards and list replies must pass. The corpus run at the end
//! counts false positives on real replies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use malspam_milter::store::{EmbeddedStore, MemoryStore, Store};
use malspam_milter::view::MessageView;
use malspam_milter::{Config, Engine, Envelope, Report, Verdict};

// ---------------------------------------------------------------- encoding

fn b64(bytes: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// Quoted-printable as mailers write it: soft breaks before 76 columns.
fn qp(text: &str) -> String {
    let mut out = String::new();
    for line in text.split("\r\n") {
        let mut col = 0;
        for &b in line.as_bytes() {
            let piece = if (b == b' ' || b.is_ascii_graphic()) && b != b'=' {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if col + piece.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
    }
    out
}

fn iso2022jp(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::ISO_2022_JP.encode(text);
    assert!(!unmappable, "not encodable: {text}");
    bytes.into_owned()
}

/// An RFC 2047 encoded word, B encoding.
fn word(charset: &str, text: &str) -> String {
    let bytes = if charset == "ISO-2022-JP" {
        iso2022jp(text)
    } else {
        text.as_bytes().to_vec()
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("=?{charset}?B?{encoded}?=")
}

/// A real zip archive holding one file.
fn zip_with(name: &str, content: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(content).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn attachment_part(boundary: &str, name: &str, data: &[u8]) -> String {
    format!(
        "--{boundary}\r\nContent-Type: application/zip; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        b64(data)
    )
}

// ------------------------------------------------- the conversations learned

const TARO: &str = "taro@legal-holdings.co.jp";
const HANAKO: &str = "hanako@partner.example.com";
const STRANGER: &str = "kx8@stranger-host.example";

/// English, Outlook, us-ascii QP: Taro's invoice mail (in Taro's Sent mbox).
fn m1() -> String {
    format!(
        "From: Taro Yamada <{TARO}>\r\nTo: Hanako Sato <{HANAKO}>\r\nSubject: Invoice for March\r\n\
Date: Mon, 4 Mar 2019 10:12:00 +0900\r\nMessage-ID: <m1.1551661920@legal-holdings.co.jp>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}",
        qp("Dear Hanako,\r\n\r\nPlease find the invoice for March = 120,000 yen.\r\n\r\nTaro")
    )
}

/// Japanese, ISO-2022-JP as Japanese Outlook and Thunderbird send it (Sent mbox).
fn j1() -> Vec<u8> {
    let mut out = format!(
        "From: {} <{TARO}>\r\nTo: {} <{HANAKO}>\r\nSubject: {}\r\n\
Date: Tue, 5 Mar 2019 09:30:00 +0900\r\nMessage-ID: <j1.1551745800@legal-holdings.co.jp>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"ISO-2022-JP\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
        word("ISO-2022-JP", "山田 太郎"),
        word("ISO-2022-JP", "佐藤 花子"),
        word("ISO-2022-JP", "請求書の件"),
    )
    .into_bytes();
    out.extend(iso2022jp(
        "佐藤様\r\n\r\n請求書をお送りします。\r\nご確認ください。\r\n\r\n山田\r\n",
    ));
    out
}

/// Gmail, UTF-8 base64: Hanako's mail to Taro about a meeting (Taro's Maildir).
fn g1() -> String {
    format!(
        "From: Hanako Sato <{HANAKO}>\r\nTo: Taro Yamada <{TARO}>\r\nSubject: Meeting on Friday\r\n\
Date: Wed, 6 Mar 2019 14:00:00 +0900\r\nMessage-ID: <CAg1abc@mail.gmail.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        b64("Hi Taro,\r\nCan we meet on Friday at 10?\r\nHanako\r\n".as_bytes())
    )
}

/// A list message (the team list), remembered too.
fn l1() -> String {
    "From: Jiro <jiro@team.example.org>\r\nTo: team@lists.example.org\r\nSubject: Release notes\r\n\
Date: Thu, 7 Mar 2019 08:00:00 +0000\r\nMessage-ID: <l1@team.example.org>\r\nList-Id: <team.lists.example.org>\r\n\r\nDraft attached.\r\n"
        .to_string()
}

fn lf(crlf: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(crlf)
        .replace("\r\n", "\n")
        .into_bytes()
}

/// Taro's Sent folder as an mbox, his inbox as a Maildir.
fn write_mailboxes(dir: &Path) -> (PathBuf, PathBuf) {
    let mbox = dir.join("Sent.mbox");
    let mut data = Vec::new();
    for msg in [m1().into_bytes(), j1()] {
        data.extend_from_slice(b"From taro@legal-holdings.co.jp Mon Mar  4 10:12:00 2019\n");
        data.extend(lf(&msg));
        data.extend_from_slice(b"\n");
    }
    std::fs::write(&mbox, data).unwrap();
    let maildir = dir.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(maildir.join("cur/1551848400.M1P1.host:2,S"), g1()).unwrap();
    std::fs::write(maildir.join("new/1551945600.M2P1.host"), l1()).unwrap();
    (mbox, maildir)
}

// ------------------------------------------------------- the hijacks (Emotet)

const LATE: &str = "Mon, 10 Jun 2019 09:00:00 +0900";

fn outlook_quote() -> String {
    format!(
        "-----Original Message-----\r\nFrom: Taro Yamada <{TARO}>\r\nSent: Monday, March 4, 2019 10:12 AM\r\n\
To: Hanako Sato <{HANAKO}>\r\nSubject: Invoice for March\r\n\r\nDear Hanako,\r\n\r\nPlease find the invoice for March.\r\n"
    )
}

/// English Outlook, QP, References kept, a zip attached, sender a stranger
/// under Taro's name.
fn hijack_outlook_en() -> Vec<u8> {
    let body = format!(
        "Hello,\r\n\r\nPlease see the updated invoice attached.\r\n\r\n{}",
        outlook_quote()
    );
    format!(
        "From: Taro Yamada <{STRANGER}>\r\nTo: Hanako Sato <{HANAKO}>\r\nSubject: RE: Invoice for March\r\n\
Date: {LATE}\r\nMessage-ID: <h1@stranger-host.example>\r\nIn-Reply-To: <m1.1551661920@legal-holdings.co.jp>\r\n\
References: <m1.1551661920@legal-holdings.co.jp>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_b1\"\r\n\r\n\
--=_b1\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n{}--=_b1--\r\n",
        qp(&body),
        attachment_part("=_b1", "Invoice_0610.zip", &zip_with("Invoice_0610.doc", b"not really a document")),
    )
    .into_bytes()
}

/// Japanese Outlook, ISO-2022-JP, no In-Reply-To/References (composed from
/// stolen text), a zip attached.
fn hijack_outlook_ja() -> Vec<u8> {
    let text = format!(
        "お世話になっております。\r\n請求書を再送いたします。\r\n\r\n-----Original Message-----\r\n\
差出人: 山田 太郎 <{TARO}>\r\n送信日時: 2019年3月5日 9:30\r\n宛先: 佐藤 花子 <{HANAKO}>\r\n件名: 請求書の件\r\n\r\n\
佐藤様\r\n請求書をお送りします。\r\n"
    );
    let mut out = format!(
        "From: {} <{STRANGER}>\r\nTo: {} <{HANAKO}>\r\nSubject: {}\r\nDate: {LATE}\r\n\
Message-ID: <h2@stranger-host.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n\
--b2\r\nContent-Type: text/plain; charset=\"ISO-2022-JP\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
        word("ISO-2022-JP", "山田 太郎"),
        word("ISO-2022-JP", "佐藤 花子"),
        word("ISO-2022-JP", "RE: 請求書の件"),
    )
    .into_bytes();
    out.extend(iso2022jp(&text));
    out.extend(
        format!(
            "\r\n{}--b2--\r\n",
            attachment_part("b2", "seikyu.zip", &zip_with("請求書.doc", b"x"))
        )
        .into_bytes(),
    );
    out
}

/// Gmail, multipart/alternative UTF-8 base64, a download link, In-Reply-To
/// kept, sender a stranger under Hanako's name.
fn hijack_gmail_en() -> Vec<u8> {
    let plain = format!(
        "Hi Taro,\r\nThe agenda is here: https://docs-share.example.net/agenda.doc\r\n\r\n\
On Wed, Mar 6, 2019 at 2:00 PM Hanako Sato <{HANAKO}> wrote:\r\n> Hi Taro,\r\n> Can we meet on Friday at 10?\r\n"
    );
    let html = format!(
        "<div dir=\"ltr\">Hi Taro,<br>The agenda is <a href=\"https://docs-share.example.net/agenda.doc\">here</a>.</div>\
<br><div class=\"gmail_quote\"><div class=\"gmail_attr\">On Wed, Mar 6, 2019 at 2:00 PM Hanako Sato &lt;<a href=\"mailto:{HANAKO}\">{HANAKO}</a>&gt; wrote:<br></div>\
<blockquote class=\"gmail_quote\">Hi Taro,<br>Can we meet on Friday at 10?</blockquote></div>"
    );
    format!(
        "From: Hanako Sato <{STRANGER}>\r\nTo: Taro Yamada <{TARO}>\r\nSubject: Re: Meeting on Friday\r\nDate: {LATE}\r\n\
Message-ID: <CAh3@mail.gmail.com>\r\nIn-Reply-To: <CAg1abc@mail.gmail.com>\r\nReferences: <CAg1abc@mail.gmail.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"000b3\"\r\n\r\n\
--000b3\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
--000b3\r\nContent-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--000b3--\r\n",
        b64(plain.as_bytes()),
        b64(html.as_bytes())
    )
    .into_bytes()
}

/// Japanese Gmail, UTF-8 quoted-printable, no References, a zip attached.
fn hijack_gmail_ja() -> Vec<u8> {
    let text = format!(
        "山田様\r\n\r\n資料を添付いたします。\r\n\r\n2019年3月5日(火) 9:30 山田 太郎 <{TARO}>:\r\n> 佐藤様\r\n> 請求書をお送りします。\r\n"
    );
    format!(
        "From: {} <{STRANGER}>\r\nTo: {} <{HANAKO}>\r\nSubject: {}\r\nDate: {LATE}\r\n\
Message-ID: <CAh4@mail.gmail.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"000b4\"\r\n\r\n\
--000b4\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n{}--000b4--\r\n",
        word("UTF-8", "山田 太郎"),
        word("UTF-8", "佐藤 花子"),
        word("UTF-8", "Re: 請求書の件"),
        qp(&text),
        attachment_part("000b4", "shiryo.zip", &zip_with("資料.xls", b"x")),
    )
    .into_bytes()
}

/// Thunderbird reply (no address in the attribution), References kept, a
/// stranger with a name of its own: only the store can tell.
fn hijack_thunderbird() -> Vec<u8> {
    let text = "Please find the corrected file.\r\n\r\nOn 3/4/19 10:12 AM, Taro Yamada wrote:\r\n> Dear Hanako,\r\n> Please find the invoice for March.\r\n";
    format!(
        "From: Accounts Dept <{STRANGER}>\r\nTo: {HANAKO}\r\nSubject: Re: Invoice for March\r\nDate: {LATE}\r\n\
Message-ID: <h5@stranger-host.example>\r\nIn-Reply-To: <m1.1551661920@legal-holdings.co.jp>\r\n\
References: <m1.1551661920@legal-holdings.co.jp>\r\nUser-Agent: Mozilla/5.0 Thunderbird/60.5.1\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"------------b5\"\r\n\r\n\
--------------b5\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n{}--------------b5--\r\n",
        attachment_part("------------b5", "invoice.zip", &zip_with("invoice.doc", b"Rechnung 2019-06")),
    )
    .into_bytes()
}

// ------------------------------------------------------------- the genuine

/// Hanako's genuine reply months later, References proper, a zip attached.
fn genuine_late_reply_with_attachment() -> Vec<u8> {
    let body = format!(
        "Dear Taro,\r\n\r\nHere is the signed copy, sorry for the delay.\r\n\r\n{}",
        outlook_quote()
    );
    format!(
        "From: Hanako Sato <{HANAKO}>\r\nTo: Taro Yamada <{TARO}>\r\nSubject: RE: Invoice for March\r\nDate: {LATE}\r\n\
Message-ID: <ok1@partner.example.com>\r\nIn-Reply-To: <m1.1551661920@legal-holdings.co.jp>\r\n\
References: <m1.1551661920@legal-holdings.co.jp>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"ok1\"\r\n\r\n\
--ok1\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n{}--ok1--\r\n",
        qp(&body),
        attachment_part("ok1", "signed.zip", &zip_with("signed.pdf", b"%PDF-1.4")),
    )
    .into_bytes()
}

/// Hanako's genuine Japanese reply in ISO-2022-JP, soon after.
fn genuine_japanese_reply() -> Vec<u8> {
    let text = format!(
        "山田様\r\n\r\n受領いたしました。\r\n\r\n-----Original Message-----\r\n差出人: 山田 太郎 <{TARO}>\r\n\
送信日時: 2019年3月5日 9:30\r\n宛先: 佐藤 花子 <{HANAKO}>\r\n件名: 請求書の件\r\n\r\n佐藤様\r\n"
    );
    let mut out = format!(
        "From: {} <{HANAKO}>\r\nTo: {} <{TARO}>\r\nSubject: {}\r\nDate: Wed, 6 Mar 2019 10:00:00 +0900\r\n\
Message-ID: <ok2@partner.example.com>\r\nIn-Reply-To: <j1.1551745800@legal-holdings.co.jp>\r\n\
References: <j1.1551745800@legal-holdings.co.jp>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=\"ISO-2022-JP\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
        word("ISO-2022-JP", "佐藤 花子"),
        word("ISO-2022-JP", "山田 太郎"),
        word("ISO-2022-JP", "RE: 請求書の件"),
    )
    .into_bytes();
    out.extend(iso2022jp(&text));
    out
}

/// Hanako forwards Taro's mail to a colleague (Outlook forwards carry no
/// References), with the attachment.
fn genuine_forward() -> Vec<u8> {
    let body = format!(
        "Jiro, FYI - please pay this one.\r\n\r\n{}",
        outlook_quote()
    );
    format!(
        "From: Hanako Sato <{HANAKO}>\r\nTo: Jiro Suzuki <jiro@partner.example.com>\r\nSubject: FW: Invoice for March\r\n\
Date: {LATE}\r\nMessage-ID: <ok3@partner.example.com>\r\nThread-Topic: Invoice for March\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"ok3\"\r\n\r\n\
--ok3\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\n{body}\r\n{}--ok3--\r\n",
        attachment_part("ok3", "invoice.zip", &zip_with("invoice.pdf", b"%PDF-1.4")),
    )
    .into_bytes()
}

/// A new list member answers on the list, with a link.
fn genuine_list_reply() -> Vec<u8> {
    "From: Newcomer <newbie@elsewhere.example>\r\nTo: team@lists.example.org\r\nSubject: Re: Release notes\r\n\
Date: Mon, 10 Jun 2019 09:00:00 +0000\r\nMessage-ID: <ok4@elsewhere.example>\r\nIn-Reply-To: <l1@team.example.org>\r\n\
References: <l1@team.example.org>\r\nList-Id: <team.lists.example.org>\r\n\r\n\
See https://wiki.example.org/notes for my comments.\r\n\r\nOn Thu, Mar 7, 2019 at 8:00 AM Jiro <jiro@team.example.org> wrote:\r\n> Draft attached.\r\n"
        .as_bytes()
        .to_vec()
}

// ------------------------------------------------------------------ helpers

fn thread_rules(report: &Report) -> Vec<String> {
    let mut r: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.detector == "thread_hijack")
        .map(|f| f.rule.to_string())
        .collect();
    r.sort();
    r
}

fn thread_score(report: &Report) -> f64 {
    report
        .findings
        .iter()
        .filter(|f| f.detector == "thread_hijack")
        .map(|f| f.score)
        .sum()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_malspam-milter"))
}

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("malspam-milter.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            dir.join("state/state.sqlite3").display()
        ),
    )
    .unwrap();
    path
}

// -------------------------------------------------------------------- tests

#[test]
fn learn_from_mbox_and_maildir_is_idempotent_and_catches_every_hijack() {
    let dir = tempfile::tempdir().unwrap();
    let (mbox, maildir) = write_mailboxes(dir.path());
    let config = write_config(dir.path());
    let learn = || {
        let out = bin()
            .arg("learn")
            .arg("--config")
            .arg(&config)
            .arg(&mbox)
            .arg(&maildir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = learn();
    assert!(
        first.contains("learned 4 message(s) into the embedded store: 4 new, 0 already known"),
        "{first}"
    );
    let second = learn();
    assert!(
        second.contains("learned 4 message(s) into the embedded store: 0 new, 4 already known"),
        "{second}"
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("hijack-outlook-en.eml", hijack_outlook_en()),
        ("hijack-outlook-ja.eml", hijack_outlook_ja()),
        ("hijack-gmail-en.eml", hijack_gmail_en()),
        ("hijack-gmail-ja.eml", hijack_gmail_ja()),
        ("hijack-thunderbird.eml", hijack_thunderbird()),
        (
            "genuine-late-reply.eml",
            genuine_late_reply_with_attachment(),
        ),
        ("genuine-japanese-reply.eml", genuine_japanese_reply()),
        ("genuine-forward.eml", genuine_forward()),
        ("genuine-list-reply.eml", genuine_list_reply()),
    ];
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    for (name, bytes) in &cases {
        std::fs::write(mail.join(name), bytes).unwrap();
    }
    let out = bin()
        .args(["check", "--json", "--config"])
        .arg(&config)
        .arg(&mail)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut seen = 0;
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = v["file"].as_str().unwrap();
        let verdict = v["verdict"].as_str().unwrap();
        let mut rules: Vec<&str> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["detector"] == "thread_hijack")
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        rules.sort();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let expected: &[&str] = match name {
            "hijack-outlook-en.eml" | "hijack-gmail-en.eml" => &[
                "quoted_header_mismatch",
                "revived_thread",
                "unknown_participant",
            ],
            "hijack-outlook-ja.eml" | "hijack-gmail-ja.eml" => {
                &["fake_reply", "quoted_header_mismatch", "revived_thread"]
            }
            "hijack-thunderbird.eml" => &["revived_thread", "unknown_participant"],
            // Old threads revived with a payload, by their own participants
            // or on a list: 4 points, below tagging.
            "genuine-late-reply.eml" | "genuine-forward.eml" | "genuine-list-reply.eml" => {
                &["revived_thread"]
            }
            _ => &[],
        };
        assert_eq!(rules, expected, "{name}: {line}");
        let want = if name.starts_with("hijack") {
            "quarantine"
        } else {
            "accept"
        };
        assert_eq!(verdict, want, "{name}: {line}");
        seen += 1;
    }
    assert_eq!(seen, cases.len(), "{stdout}");
    // `check` only reads: running learn again still finds nothing new.
    assert!(learn().contains("0 new, 4 already known"));
}

#[test]
fn the_engine_remembers_passed_mail_and_not_held_mail() {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::with_store(Config::default(), store.clone()).unwrap();
    // Taro's mail (sent by the organisation: authenticated submission)
    // passes and is remembered, believed whole.
    let taro = Envelope {
        auth_user: Some("taro".into()),
        ..Envelope::default()
    };
    let r = engine.scan_and_commit(taro, m1().as_bytes());
    assert_eq!(r.verdict, Verdict::Accept);
    assert_eq!(store.keys_with_prefix("thread:").unwrap().len(), 1);
    // The hijack is quarantined and not remembered: its sender does not
    // become a participant.
    let r = engine.scan_and_commit(Envelope::default(), &hijack_outlook_en());
    assert_eq!(r.verdict, Verdict::Quarantine, "{:?}", r.findings);
    assert_eq!(
        thread_rules(&r),
        [
            "quoted_header_mismatch",
            "revived_thread",
            "unknown_participant"
        ]
    );
    assert_eq!(thread_score(&r), 16.0);
    assert_eq!(store.keys_with_prefix("thread:").unwrap().len(), 1);
    // Hanako's genuine reply passes and is remembered; it is still a
    // genuine reply when scanned again.
    let ok = genuine_late_reply_with_attachment();
    assert_eq!(
        engine.scan_and_commit(Envelope::default(), &ok).verdict,
        Verdict::Accept
    );
    assert_eq!(store.keys_with_prefix("thread:").unwrap().len(), 2);
    assert_eq!(
        engine.scan_and_commit(Envelope::default(), &ok).verdict,
        Verdict::Accept
    );

    // Without remembering (as `check` runs), nothing is written.
    let quiet_store = Arc::new(MemoryStore::new());
    let quiet = Engine::with_store(Config::default(), quiet_store.clone()).unwrap();
    quiet.scan(Envelope::default(), m1().as_bytes());
    assert!(quiet_store.keys_with_prefix("").unwrap().is_empty());
}

#[test]
fn hijack_learned_through_the_library_learn_is_quarantined() {
    // The same learn code as the command, into an in-memory store.
    let dir = tempfile::tempdir().unwrap();
    let (mbox, maildir) = write_mailboxes(dir.path());
    let engine = Engine::with_store(Config::default(), Arc::new(MemoryStore::new())).unwrap();
    let progress = indicatif::ProgressBar::hidden();
    let sum =
        malspam_milter::cli::learn::learn(&engine, &[mbox.clone(), maildir.clone()], &progress);
    assert_eq!((sum.read, sum.new, sum.known), (4, 4, 0));
    let again = malspam_milter::cli::learn::learn(&engine, &[mbox, maildir], &progress);
    assert_eq!((again.read, again.new, again.known), (4, 0, 4));
    let r = engine.scan(Envelope::default(), &hijack_thunderbird());
    assert_eq!(r.verdict, Verdict::Quarantine);
    assert_eq!(
        thread_score(&r),
        10.0,
        "revived (4) + unknown participant (6)"
    );
}

#[test]
fn thread_memory_expires_in_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(1_560_000_000_000));
    let clock = now.clone();
    let store = Arc::new(
        EmbeddedStore::open_with_clock(
            &dir.path().join("s.sqlite3"),
            Duration::from_secs(1),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        )
        .unwrap(),
    );
    let config = Config {
        store: malspam_milter::store::StoreConfig {
            thread_ttl_days: 2,
            ..Default::default()
        },
        ..Config::default()
    };
    let engine = Engine::with_store(config, store).unwrap();
    engine.scan_and_commit(Envelope::default(), m1().as_bytes());
    let r = engine.scan_and_commit(Envelope::default(), &hijack_thunderbird());
    assert_eq!(thread_rules(&r), ["revived_thread", "unknown_participant"]);
    now.fetch_add(3 * 86_400_000, Ordering::SeqCst);
    let r = engine.scan_and_commit(Envelope::default(), &hijack_thunderbird());
    // Forgotten: the store no longer knows the thread; the quote still dates it.
    assert_eq!(thread_rules(&r), ["revived_thread"]);
}

/// Real replies from a public mailing list and SpamAssassin's ham, with an
/// empty store: none may reach the tag threshold on thread_hijack alone.
/// The list is one the organisation reads, so it is configured as known (a
/// List-Id header alone is only a claim).
#[test]
fn real_replies_are_not_tagged() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");
    let sets = ["linux-man-list", "spamassassin-tdata/nice"];
    if !Path::new(corpus).join(sets[0]).is_dir() {
        eprintln!("SKIPPED: corpus not found at {corpus} (only in the project's workspace)");
        return;
    }
    let config = Config::parse(
        "[organization]\nmailing_lists = [\"linux-man.vger.kernel.org\"]\n",
        "t.toml",
    )
    .unwrap();
    let engine = Engine::new(config).unwrap();
    let tag = engine.config().policy.tag;
    for set in sets {
        let (mut scanned, mut replies, mut tagged) = (0, 0, Vec::new());
        let mut by_rule = std::collections::BTreeMap::<String, usize>::new();
        malspam_milter::input::walk(&[Path::new(corpus).join(set)], |item| {
            let Ok(m) = item else { return };
            scanned += 1;
            // mail-parser panics on a few broken messages; the engine
            // catches that, and so must this count.
            let limits = engine.config().limits.clone();
            let view = std::panic::catch_unwind(|| {
                MessageView::build(
                    Envelope::default(),
                    &m.bytes,
                    &limits,
                    Instant::now() + Duration::from_secs(20),
                )
            });
            if view.is_ok_and(|v| !v.in_reply_to.is_empty() || !v.references.is_empty()) {
                replies += 1;
            }
            let r = engine.scan(Envelope::default(), &m.bytes);
            for rule in thread_rules(&r) {
                *by_rule.entry(rule).or_default() += 1;
            }
            if thread_score(&r) >= tag {
                tagged.push(format!("{}: {:?}", m.label, r.findings));
            }
        });
        eprintln!(
            "{set}: {scanned} messages ({replies} replies), thread_hijack rules fired: {by_rule:?}, at or above tag: {}",
            tagged.len()
        );
        assert!(scanned > 40, "{set}: only {scanned} messages");
        assert!(
            tagged.is_empty(),
            "{set}: false positives:\n{}",
            tagged.join("\n")
        );
    }
}

#[test]
fn check_on_an_unwritable_store_falls_back_to_memory_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the state directory should be: the store cannot be made.
    std::fs::write(dir.path().join("blocker"), "not a directory").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n",
            dir.path().join("blocker/state.sqlite3").display()
        ),
    )
    .unwrap();
    let mail = dir.path().join("hijack.eml");
    std::fs::write(&mail, hijack_outlook_ja()).unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(&config)
        .arg(&mail)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("malspam-milter: state store: ")
            && stderr.contains("using an in-memory store")
            && !stderr.contains("state store: state store"),
        "{stderr}"
    );
    // The rules that need no memory still catch the hijack.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("quarantine score 13"), "{stdout}");
    // `learn` cannot learn into nothing: it fails and says why.
    let out = bin()
        .args(["learn", "--config"])
        .arg(&config)
        .arg(&mail)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("blocker"));
}

#[test]
fn allowlisted_outbound_mail_is_remembered_too() {
    let store = Arc::new(MemoryStore::new());
    let config = Config {
        allowlist: malspam_milter::config::AllowlistConfig {
            auth_users: vec!["taro".into()],
            ..Default::default()
        },
        ..Config::default()
    };
    let engine = Engine::with_store(config, store.clone()).unwrap();
    let outbound = Envelope {
        auth_user: Some("taro".into()),
        ..Envelope::default()
    };
    let r = engine.scan_and_commit(outbound, m1().as_bytes());
    assert!(r.allowlisted.is_some());
    assert_eq!(store.keys_with_prefix("thread:").unwrap().len(), 1);
    // And a stranger's reply to it is then recognised.
    let r = engine.scan_and_commit(Envelope::default(), &hijack_thunderbird());
    assert_eq!(thread_rules(&r), ["revived_thread", "unknown_participant"]);
}

// ------------------------------------------- the organisation's domains, IDNA

fn config_with_org(domains: &[&str], names: &[&str]) -> Config {
    let mut config = Config::default();
    config.organization.domains = domains.iter().map(|d| d.to_string()).collect();
    config.organization.names = names.iter().map(|n| n.to_string()).collect();
    config
}

fn findings_of(report: &Report, detector: &str) -> Vec<String> {
    let mut r: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.detector == detector)
        .map(|f| f.rule.to_string())
        .collect();
    r.sort();
    r
}

#[test]
fn free_mail_among_the_organisations_domains_is_ignored_by_both_detectors() {
    // An admin lists gmail.com among the organisation's domains. Both
    // detectors read [organization] domains through Config::org_domains,
    // which drops free mail: a stranger at gmail.com is not the
    // organisation for thread_hijack (it was: both "the organisation's")
    // any more than for display_name.
    let config = config_with_org(&["legal-holdings.co.jp", "gmail.com"], &["Legal Holdings"]);
    let engine = Engine::with_store(config, Arc::new(MemoryStore::new())).unwrap();
    let raw = format!(
        "From: \"Taro Yamada (Legal Holdings)\" <t.yamada.2019@gmail.com>\r\nTo: Hanako Sato <{HANAKO}>\r\n\
Subject: RE: Invoice for March\r\nDate: {LATE}\r\nMessage-ID: <g9@gmail.com>\r\n\r\n\
Please see the updated invoice.\r\n\r\n{}",
        outlook_quote()
    );
    let r = engine.scan(Envelope::default(), raw.as_bytes());
    let thread = thread_rules(&r);
    assert!(
        thread.contains(&"quoted_header_mismatch".to_string()),
        "{thread:?}"
    );
    let evidence = &r
        .findings
        .iter()
        .find(|f| f.rule == "quoted_header_mismatch")
        .unwrap()
        .evidence;
    assert!(
        evidence.starts_with("sender t.yamada.2019@gmail.com (gmail.com): quoted headers name"),
        "{evidence}"
    );
    assert_eq!(findings_of(&r, "display_name"), ["organization_name"]);
}

fn remembered_idn_thread(engine: &Engine, from: &str) {
    let original = format!(
        "From: Taro Yamada <{from}>\r\nTo: Hanako Sato <{HANAKO}>\r\nSubject: Invoice for March\r\n\
Date: Mon, 4 Mar 2019 10:12:00 +0900\r\nMessage-ID: <m1@xn--r8jz45g.jp>\r\n\r\nPlease find the invoice.\r\n"
    );
    let view = MessageView::build(
        Envelope::default(),
        original.as_bytes(),
        &Config::default().limits,
        Instant::now() + Duration::from_secs(10),
    );
    engine
        .remember_as(
            &malspam_milter::store::threads::Remembrance::of(&view),
            true,
        )
        .unwrap();
}

fn idn_reply(from: &str) -> Vec<u8> {
    format!(
        "From: Taro Yamada <{from}>\r\nTo: Hanako Sato <{HANAKO}>\r\nSubject: RE: Invoice for March\r\n\
Date: Wed, 6 Mar 2019 09:00:00 +0900\r\nMessage-ID: <r1@xn--r8jz45g.jp>\r\n\
In-Reply-To: <m1@xn--r8jz45g.jp>\r\nReferences: <m1@xn--r8jz45g.jp>\r\n\r\nThanks, noted.\r\n"
    )
    .into_bytes()
}

#[test]
fn thread_participants_compare_in_either_form_of_an_idn() {
    // Remembered in Unicode, replied to in punycode, and the reverse: one
    // participant. A look-alike of the domain is a stranger.
    for (remembered, replying) in [
        ("taro@例え.jp", "taro@xn--r8jz45g.jp"),
        ("taro@XN--R8JZ45G.JP", "Taro@例え。jp"),
    ] {
        let engine = Engine::with_store(Config::default(), Arc::new(MemoryStore::new())).unwrap();
        remembered_idn_thread(&engine, remembered);
        let r = engine.scan(Envelope::default(), &idn_reply(replying));
        assert_eq!(thread_rules(&r), Vec::<String>::new(), "{replying}");
        let r = engine.scan(Envelope::default(), &idn_reply("taro@例ぇ.jp"));
        assert_eq!(thread_rules(&r), ["unknown_participant"], "{remembered}");
    }
}

#[test]
fn the_organisation_configured_in_one_idn_form_vouches_in_the_other() {
    // The organisation's colleague replies from its other form of the
    // domain: the quoted header names the organisation, the sender is the
    // organisation; no mismatch either way round.
    for (configured, sender) in [
        ("例え.jp", "jiro@xn--r8jz45g.jp"),
        ("xn--r8jz45g.jp", "jiro@mail.例え.jp"),
    ] {
        let config = config_with_org(&[configured, "legal-holdings.co.jp"], &[]);
        let engine = Engine::with_store(config, Arc::new(MemoryStore::new())).unwrap();
        let raw = format!(
            "From: Taro Yamada <{sender}>\r\nTo: Hanako Sato <{HANAKO}>\r\n\
Subject: RE: Invoice for March\r\nDate: {LATE}\r\nMessage-ID: <j9@xn--r8jz45g.jp>\r\n\
In-Reply-To: <m1.1551661920@legal-holdings.co.jp>\r\n\r\nSee the new figures.\r\n\r\n{}",
            outlook_quote()
        );
        let r = engine.scan(Envelope::default(), raw.as_bytes());
        assert_eq!(thread_rules(&r), Vec::<String>::new(), "{configured}");
        // A look-alike of the organisation's IDN is not the organisation.
        let raw = raw.replace(sender, "jiro@例ぇ.jp");
        let r = engine.scan(Envelope::default(), raw.as_bytes());
        assert_eq!(thread_rules(&r), ["quoted_header_mismatch"], "{configured}");
    }
}
