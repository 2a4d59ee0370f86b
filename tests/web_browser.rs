//! The reviewers' page in a REAL browser: headless Chromium driven over
//! WebDriver (chromedriver, plain HTTP + JSON) against a real
//! `malspam-milter web` process and a real throwaway Postfix
//! (tests/common/postfix.rs) whose hold queue holds what the milter
//! quarantined. Postfix's queue_run_delay is 300 s, so a release that only
//! moved the message out of hold would not reach the sink in time.
//!
//! Steps: log in; see the held samples with their findings; open the
//! hijacked-reply sample and find the explanation; release it and see it
//! arrive at the sink within seconds, with X-Malspam-Released; delete
//! another and see it gone from the hold queue; a reviewer of another
//! domain cannot see this domain's mail.
//!
//! The root-only Postfix tools go through `[quarantine] privileged`, here
//! `/usr/bin/env` (in production sudo with an exact sudoers allowlist).
//!
//! Screenshots of the list and the message view are saved under
//! `target/tmp/web-screenshots/`. Needs root, Debian's `postfix`,
//! `chromium` and `chromium-driver`; skips loudly without them (fails in CI).

#[path = "common/postfix.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{can_run_postfix, free_port, smtp_session, wait_for_port, TestPostfix, MILTER};
use serde_json::{json, Value};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "browser test password";
/// "Within seconds", far below the 300 s queue run.
const PROMPT: Duration = Duration::from_secs(20);

#[test]
fn reviewer_in_a_real_browser() {
    let mut why_not = can_run_postfix();
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if why_not.is_none() && !Path::new(tool).exists() {
            why_not = Some(format!(
                "{tool} is not installed (apt-get install chromium chromium-driver)"
            ));
        }
    }
    let Some(why_not) = why_not else {
        scenario();
        return;
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI must run the real-browser test, but: {why_not} (see .ci/run)");
    }
    eprintln!("\n*** SKIPPED tests/web_browser.rs: {why_not} ***\n");
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then exactly the body (chromedriver may keep the
    // connection open whatever we ask).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            let body_len = raw.len() - end - 4;
            let complete = match length {
                Some(n) => body_len >= n,
                None if head.contains("transfer-encoding: chunked") => {
                    raw.ends_with(b"\r\n0\r\n\r\n") || raw[end..].ends_with(b"0\r\n\r\n")
                }
                None => false,
            };
            if complete {
                break;
            }
        }
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let payload = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (
        status,
        serde_json::from_str(&payload).unwrap_or(Value::Null),
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A WebDriver session (W3C protocol) on chromedriver.
struct Browser {
    port: u16,
    session: String,
    profile: PathBuf,
    _driver: Process,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(profile: &Path) -> Browser {
        let port = free_port();
        let driver = Process(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        wait_for_port(port);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1200,900", "--lang=en-US",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {"intl.accept_languages": "en-US,en"}
            }
        }}});
        let (status, v) = http(port, "POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            port,
            session,
            profile: profile.to_path_buf(),
            _driver: driver,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn find(&self, using: &str, value: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": using, "value": value })),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("find {using} {value}: {v}"))
            .to_string()
    }

    fn css(&self, selector: &str) -> String {
        self.find("css selector", selector)
    }

    fn click(&self, element: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }

    fn login(&self, base: &str, user: &str) {
        self.goto(&format!("{base}/messages"));
        self.wait_url("/login");
        let u = self.css("input[name=user]");
        self.type_into(&u, user);
        let p = self.css("input[name=password]");
        self.type_into(&p, PASSWORD);
        let b = self.css("form[action='/login'] button[type=submit]");
        self.click(&b);
        self.wait_url("/messages");
    }

    /// Wait until the current URL ends with `suffix`.
    fn wait_url(&self, suffix: &str) {
        let start = Instant::now();
        loop {
            let url = self.url();
            if url.ends_with(suffix) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "still at {url}, not at {suffix}:\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page source once it contains `needle` (a click's navigation
    /// may still be under way when the click returns).
    fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let src = self.source();
            if src.contains(needle) {
                return src;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the page never showed {needle:?}:\n{src}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reload the list until `done(page source)`.
    fn wait_list(&self, base: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            self.goto(&format!("{base}/messages"));
            let src = self.source();
            if done(&src) {
                return src;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the list never got there:\n{src}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; chromedriver is killed after.
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        // Some Chromium helpers outlive the session: end those started with
        // this test's own profile directory, by pid.
        let mark = format!("--user-data-dir={}", self.profile.display());
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline.split(|&b| b == 0).any(|arg| arg == mark.as_bytes()) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}

fn add_user(config: &Path, name: &str, domains: &str) {
    let mut child = Command::new(MILTER)
        .args([
            "web",
            "user",
            "add",
            name,
            "--role",
            "reviewer",
            "--domains",
            domains,
        ])
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "web user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scenario() {
    let reinject_port = free_port();
    let mut pf = TestPostfix::start_with(
        "queue_run_delay = 300s\nminimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n",
        &format!(
            "127.0.0.1:{reinject_port} inet n - n - - smtpd\n  \
             -o smtpd_milters=\n  -o receive_override_options=no_milters\n  \
             -o smtpd_relay_restrictions=permit_mynetworks,reject\n"
        ),
    );
    let root = pf.root().to_path_buf();
    let web_port = free_port();
    pf.write_milter_config(
        "",
        &format!(
            "[headers]\nsubject_prefix = \"[SUSPICIOUS]\"\n\n\
             [quarantine]\npostfix_config_dir = \"{}\"\nreinject = \"127.0.0.1:{reinject_port}\"\n\
             privileged = [\"/usr/bin/env\"]\n\n\
             [web]\nlisten = \"127.0.0.1:{web_port}\"\nusers_file = \"{}\"\naudit_log = \"{}\"\nrefresh_secs = 1\n",
            pf.etc().display(),
            root.join("web-users").display(),
            root.join("web-audit.log").display()
        ),
    );
    pf.start_milter();
    let config = pf.milter_config();
    add_user(&config, "root", "*");
    add_user(&config, "alice", "other.example");

    // Two hijacked replies to rcpt.example, a macro invoice to other.example.
    let emotet = std::fs::read_to_string(format!("{SAMPLES}/emotet-hijacked-reply.eml")).unwrap();
    let invoice = std::fs::read_to_string(format!("{SAMPLES}/macro-invoice.eml")).unwrap();
    let send = |m: &str, rcpt: &str| {
        smtp_session(pf.smtp_port, None, "alice@sender.example", rcpt, m).expect("accepted")
    };
    send(&emotet, "bob@rcpt.example");
    send(&emotet, "bob@rcpt.example");
    send(&invoice, "carol@other.example");
    let held = pf.wait_for_queue("hold", 3);
    let rcpt_of = |id: &str| {
        pf.postqueue(&["-j"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["queue_id"] == id)
            .unwrap()["recipients"][0]["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ours: Vec<String> = held
        .iter()
        .filter(|id| rcpt_of(id) == "bob@rcpt.example")
        .cloned()
        .collect();
    let theirs = held
        .iter()
        .find(|id| rcpt_of(id) == "carol@other.example")
        .unwrap()
        .clone();
    assert_eq!(ours.len(), 2);

    let web_log = std::fs::File::create(root.join("web.log")).unwrap();
    let _web = Process(
        Command::new(MILTER)
            .args(["web", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(web_log)
            .spawn()
            .expect("start malspam-milter web"),
    );
    wait_for_port(web_port);
    let base = format!("http://127.0.0.1:{web_port}");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(profile.path());

    // 1-2. Log in; the held samples with their findings.
    browser.login(&base, "root");
    let list = browser.wait_list(&base, |s| s.matches("<tr class=\"held\">").count() == 3);
    assert!(
        list.contains("[SUSPICIOUS] RE: 請求書の送付について"),
        "{list}"
    );
    assert!(list.contains("display_name.embedded_address"));
    assert!(list.contains("office_macro.suspicious"));
    for id in &held {
        assert!(list.contains(id.as_str()), "{id} listed");
    }
    browser.screenshot(&shots.join("list.png"));

    // 3. The hijacked reply, and what it means.
    let link = browser.css(&format!("a[href='/messages/{}']", ours[0]));
    browser.click(&link);
    let view = browser.wait_for("What this means");
    assert!(
        view.contains("This message is a reply into a conversation you had with 鈴木 一郎"),
        "{view}"
    );
    assert!(view.contains("never took part in that conversation"));
    assert!(view.contains("請求書_1121.zip/請求書_1121.doc"));
    browser.screenshot(&shots.join("message.png"));

    // 4. Release it: confirmation, then at the sink within seconds, the
    // verdict headers replaced by the release note.
    let release = browser.find("partial link text", "Release (deliver now)");
    browser.click(&release);
    browser.wait_for("Deliver these messages to their recipients now?");
    let yes = browser.css("main form button[type=submit]");
    let clicked = Instant::now();
    browser.click(&yes);
    browser.wait_for("Released: delivered now.");
    let delivered = loop {
        let got = pf.sink_messages();
        if !got.is_empty() && pf.maillog().contains("status=sent") {
            break got;
        }
        assert!(
            clicked.elapsed() < PROMPT,
            "not delivered {PROMPT:?} after release:\n{}",
            pf.maillog()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "released in the browser: at the sink {:?} after the click",
        clicked.elapsed()
    );
    assert_eq!(delivered.len(), 1);
    let note = delivered[0].header("X-Malspam-Released").join("");
    assert!(note.starts_with("by root (web) at "), "{note}");
    assert!(delivered[0].header("X-Malspam-Verdict").is_empty());

    // 5. Delete the other one from the list's selection.
    let list = browser.wait_list(&base, |s| s.matches("<tr class=\"held\">").count() == 2);
    assert!(!list.contains(&format!("/messages/{}\"", ours[0])));
    let check = browser.css(&format!("input[type=checkbox][value='{}']", ours[1]));
    browser.click(&check);
    let delete = browser.css("button[name=action][value=delete]");
    browser.click(&delete);
    browser.wait_for("cannot be undone");
    let yes = browser.css("main form button[type=submit]");
    browser.click(&yes);
    browser.wait_for("Deleted.");
    assert_eq!(
        pf.queue("hold"),
        std::slice::from_ref(&theirs),
        "deleted from the hold queue"
    );

    // 6. alice reviews other.example: sees carol's mail, not bob's.
    let logout = browser.css("form[action='/logout'] button");
    browser.click(&logout);
    browser.login(&base, "alice");
    let list = browser.source();
    assert!(list.contains(theirs.as_str()), "{list}");
    assert!(!list.contains("rcpt.example"), "{list}");
    browser.goto(&format!("{base}/messages/{}", ours[1]));
    browser.wait_for("No such held message");

    // Every action audited with who and what.
    let audit = std::fs::read_to_string(root.join("web-audit.log")).unwrap();
    assert!(audit.contains("\"action\":\"release\"") && audit.contains(&ours[0]));
    assert!(audit.contains("\"action\":\"delete\"") && audit.contains(&ours[1]));
    eprintln!("screenshots: {}", shots.display());
}
