//! End to end through a real Sendmail 8 (Debian's `sendmail-bin`): Sendmail
//! speaks SMTP on stdin/stdout (`-bs`), runs the malspam-milter binary as
//! its `INPUT_MAIL_FILTER` over loopback TCP, and queues what it accepts
//! (`-odq`: nothing is delivered, so nothing needs DNS). The configuration
//! is our own, built with `m4` from `sendmail-cf`; the queue is a temp dir.
//!
//! `sendmail-bin` conflicts with the `postfix` package, so it is not
//! installed: `.ci/run` unpacks it and `sendmail-cf` (`apt-get download`,
//! then `dpkg -x`) into a temp dir named by `MALSPAM_SENDMAIL_ROOT` (and installs
//! `libwrap0`, `liblockfile1` and `m4`). A system with sendmail-bin installed
//! works too. Sendmail looks up its own host name when it starts; to send
//! no DNS query at all, it runs in its own UTS and mount namespaces
//! (`unshare`, root) with a fully qualified host name, and `/etc/hosts` and
//! `/etc/nsswitch.conf` (hosts: files) bind-mounted over for it alone.
//!
//! Without root, `unshare`, `m4` or the unpacked Sendmail the test says so
//! and skips; in CI (`CI` set) it fails instead.
//!
//! One test, in steps:
//! 1. clean mail is accepted and queued with X-Malspam-Verdict/-Score added,
//!    and a forged X-Malspam-Score replaced;
//! 2. tagged mail carries X-Malspam-Findings;
//! 3. quarantined mail is held by Sendmail's own quarantine (`-bp -qQ`
//!    lists it with the findings as the reason), and `-qQ -Q -qI<ID>`
//!    releases it into the normal queue;
//! 4. with the milter stopped and `F=T`, mail is tempfailed (4xx, nothing
//!    queued: the client keeps it); once the milter is back, the retry is
//!    accepted.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const MILTER: &str = env!("CARGO_BIN_EXE_malspam-milter");
const PATIENCE: Duration = Duration::from_secs(60);
/// A fully qualified name only our namespace knows.
const HOSTNAME: &str = "sendmail-test.example";

#[test]
fn sendmail_with_the_milter_accepts_tags_quarantines_and_tempfails() {
    match find_sendmail() {
        Ok(kit) => run_scenario(&kit),
        Err(why_not) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI must run the real-Sendmail test, but: {why_not} (see .ci/run)");
            }
            eprintln!(
                "\n*** SKIPPED tests/sendmail.rs: {why_not} ***\n\
                 *** run as root with MALSPAM_SENDMAIL_ROOT set to an unpacked sendmail-bin + \
                 sendmail-cf, and m4 installed (.ci/run does) ***\n"
            );
        }
    }
}

/// Where Sendmail's binary and m4 files are.
struct Kit {
    sendmail: PathBuf,
    cf_dir: PathBuf,
}

fn find_sendmail() -> Result<Kit, String> {
    let root = match std::env::var_os("MALSPAM_SENDMAIL_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from("/"),
    };
    let kit = Kit {
        sendmail: root.join("usr/libexec/sendmail/sendmail"),
        cf_dir: root.join("usr/share/sendmail/cf"),
    };
    if !kit.sendmail.exists() {
        return Err(format!("{} does not exist", kit.sendmail.display()));
    }
    if !kit.cf_dir.join("m4/cf.m4").exists() {
        return Err(format!("{}/m4/cf.m4 does not exist", kit.cf_dir.display()));
    }
    for tool in ["m4", "unshare", "mount"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!("{tool} is not installed"));
        }
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not running as root (unshare and Sendmail's queue need it)".into());
    }
    Ok(kit)
}

fn run_scenario(kit: &Kit) {
    let sm = TestSendmail::new(kit);
    let mut milter = Milter::start(&sm.dir, sm.milter_port);

    // 1. Clean mail: accepted, queued with our headers, the forged one replaced.
    let clean = message(
        "clean",
        &[("X-Malspam-Score", "-100")],
        "Hello Bob,\r\n\r\nthe minutes of Tuesday's meeting are below.\r\n.leading dot stays\r\n",
    );
    let id = sm.send(&clean).expect("clean mail accepted");
    let queued = sm.queue_file(&format!("qf{id}"));
    assert_eq!(header(&queued, "X-Malspam-Verdict"), ["accept"], "{queued}");
    assert_eq!(
        header(&queued, "X-Malspam-Score"),
        ["0"],
        "forged -100 replaced: {queued}"
    );
    assert!(header(&queued, "X-Malspam-Findings").is_empty());
    let body = sm.queue_file(&format!("df{id}"));
    assert!(body.contains("\n.leading dot stays"), "{body}");
    milter.wait_for_log(&format!("{id}: verdict=accept"));

    // 2. Tagged mail: queued with the findings.
    let tagged = fixture("tests/fixtures/attacks/03-link-to-docm.eml");
    let id = sm.send(&tagged).expect("tagged mail accepted");
    let queued = sm.queue_file(&format!("qf{id}"));
    assert_eq!(header(&queued, "X-Malspam-Verdict"), ["tag"], "{queued}");
    let findings = header(&queued, "X-Malspam-Findings").join(" ");
    assert!(
        findings.contains("links.macro_document_download"),
        "{findings}"
    );

    // 3. Quarantined mail: held in Sendmail's quarantine, the findings as reason.
    let quarantined = fixture("samples/macro-invoice.eml");
    let id = sm
        .send(&quarantined)
        .expect("quarantined mail accepted (then held)");
    let held = sm.queue_file(&format!("hf{id}"));
    assert_eq!(header(&held, "X-Malspam-Verdict"), ["quarantine"], "{held}");
    assert!(
        !sm.queue_dir().join(format!("qf{id}")).exists(),
        "a held message is not in the normal queue"
    );
    let listing = sm.run(&["-bp", "-qQ"]);
    assert!(listing.contains(&id), "{listing}");
    assert!(
        listing.contains("QUARANTINE: malspam-milter: score 12; office_macro.present"),
        "{listing}"
    );
    let normal = sm.run(&["-bp"]);
    assert!(
        !normal.contains(&id),
        "held mail is not listed as queued: {normal}"
    );
    // A reviewer releases it (the README's command): back in the queue.
    sm.run(&["-qQ", "-Q", &format!("-qI{id}")]);
    let released = sm.queue_file(&format!("qf{id}"));
    assert_eq!(header(&released, "X-Malspam-Verdict"), ["quarantine"]);
    assert!(!sm.queue_dir().join(format!("hf{id}")).exists());

    // 4. Milter down, F=T: tempfailed, nothing queued; accepted once it is back.
    milter.stop();
    let before = sm.queue_entries();
    let retry = message("retry", &[], "sent while the milter was down\r\n");
    let (code, text) = sm.send(&retry).expect_err("4xx while the milter is down");
    assert!(code.starts_with('4'), "{code} {text}");
    assert_eq!(sm.queue_entries(), before, "nothing queued on tempfail");
    let mut milter = Milter::start(&sm.dir, sm.milter_port);
    let id = sm
        .send(&retry)
        .expect("retry accepted once the milter is back");
    let queued = sm.queue_file(&format!("qf{id}"));
    assert_eq!(header(&queued, "X-Malspam-Verdict"), ["accept"], "{queued}");
    milter.stop();
}

fn fixture(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn message(subject: &str, extra: &[(&str, &str)], body: &str) -> String {
    let mut m = format!(
        "From: Alice <alice@sender.example>\r\nTo: Bob <bob@rcpt.example>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@sender.example>\r\nDate: Sun, 22 Nov 2026 09:00:00 +0900\r\n"
    );
    for (name, value) in extra {
        m.push_str(&format!("{name}: {value}\r\n"));
    }
    m.push_str("\r\n");
    m.push_str(body);
    m
}

/// Header values in a Sendmail queue file (`H??Name: value` lines, folded
/// continuations start with a tab).
fn header(qf: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<usize> = None;
    for line in qf.lines() {
        if let Some(rest) = line.strip_prefix('H') {
            current = None;
            // `H?flags?Name: value`: skip the optional ?...? part.
            let rest = match rest.strip_prefix('?') {
                Some(r) => r.split_once('?').map_or(r, |(_, after)| after),
                None => rest,
            };
            if let Some((n, v)) = rest.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    out.push(v.trim().to_string());
                    current = Some(out.len() - 1);
                }
            }
        } else if line.starts_with(['\t', ' ']) {
            if let Some(i) = current {
                out[i].push(' ');
                out[i].push_str(line.trim());
            }
        } else {
            current = None;
        }
    }
    out
}

/// Sendmail's own world: config, queue, and the namespace wrapper.
struct TestSendmail {
    dir: tempfile::TempDir,
    sendmail: PathBuf,
    milter_port: u16,
}

impl TestSendmail {
    fn new(kit: &Kit) -> TestSendmail {
        let dir = tempfile::Builder::new()
            .prefix("malspam-sendmail-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("queue")).unwrap();
        chmod(&root.join("queue"), 0o700);
        let milter_port = free_port();
        // The README's Sendmail line, with this test's port and shorter
        // timeouts (deploy/sendmail.mc).
        let mc = format!(
            "divert(-1)\n\
             divert(0)dnl\n\
             VERSIONID(`malspam-milter tests/sendmail.rs')dnl\n\
             OSTYPE(`linux')dnl\n\
             define(`confDOMAIN_NAME', `{HOSTNAME}')dnl\n\
             define(`confDONT_PROBE_INTERFACES', `True')dnl\n\
             define(`QUEUE_DIR', `{q}')dnl\n\
             define(`confDELIVERY_MODE', `queueonly')dnl\n\
             define(`confHOST_STATUS_DIRECTORY', `')dnl\n\
             define(`ALIAS_FILE', `')dnl\n\
             define(`STATUS_FILE', `{r}/statistics')dnl\n\
             define(`confPID_FILE', `{r}/sendmail.pid')dnl\n\
             define(`confTO_IDENT', `0')dnl\n\
             FEATURE(`nocanonify')dnl\n\
             FEATURE(`accept_unresolvable_domains')dnl\n\
             FEATURE(`promiscuous_relay')dnl\n\
             INPUT_MAIL_FILTER(`malspam-milter', `S=inet:{milter_port}@127.0.0.1, F=T, T=C:10s;S:30s;R:30s;E:2m')dnl\n\
             MAILER(`smtp')dnl\n",
            q = root.join("queue").display(),
            r = root.display(),
        );
        std::fs::write(root.join("test.mc"), mc).unwrap();
        let cf = Command::new("m4")
            .arg(format!("-D_CF_DIR_={}/", kit.cf_dir.display()))
            .arg(kit.cf_dir.join("m4/cf.m4"))
            .arg(root.join("test.mc"))
            .output()
            .expect("run m4");
        assert!(
            cf.status.success(),
            "m4 failed: {}",
            String::from_utf8_lossy(&cf.stderr)
        );
        std::fs::write(root.join("test.cf"), &cf.stdout).unwrap();
        let cf_text = String::from_utf8_lossy(&cf.stdout);
        assert!(
            cf_text.contains("O InputMailFilters=malspam-milter"),
            "the milter is in the generated config"
        );
        // Sendmail resolves its own name at start; in our namespace it is
        // fully qualified and in /etc/hosts, and hosts come from files only.
        std::fs::write(
            root.join("hosts"),
            format!("127.0.0.1 localhost\n127.0.0.1 {HOSTNAME} sendmail-test\n::1 localhost {HOSTNAME} sendmail-test\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("nsswitch.conf"),
            "passwd: files\ngroup: files\nshadow: files\nhosts: files\nservices: files\nnetworks: files\nprotocols: files\n",
        )
        .unwrap();
        std::fs::write(
            root.join("ns.sh"),
            format!(
                "#!/bin/sh\nset -e\nhostname {HOSTNAME}\nmount --bind {r}/hosts /etc/hosts\nmount --bind {r}/nsswitch.conf /etc/nsswitch.conf\nexec \"$@\"\n",
                r = root.display()
            ),
        )
        .unwrap();
        chmod(&root.join("ns.sh"), 0o755);
        TestSendmail {
            dir,
            sendmail: kit.sendmail.clone(),
            milter_port,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn queue_dir(&self) -> PathBuf {
        self.root().join("queue")
    }

    /// Sendmail with our config, inside its namespace.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--uts", "--mount"])
            .arg(self.root().join("ns.sh"))
            .arg(&self.sendmail)
            .arg("-C")
            .arg(self.root().join("test.cf"))
            .args(args)
            .current_dir(self.root());
        cmd
    }

    /// Run a non-interactive Sendmail command (e.g. `-bp -qQ`); its stdout.
    fn run(&self, args: &[&str]) -> String {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sendmail");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sendmail {args:?} did not finish");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One SMTP session over `sendmail -bs`: the queue id on 250 after the
    /// data, or the first non-2xx/3xx reply as (code, text).
    fn send(&self, message: &str) -> Result<String, (String, String)> {
        let mut session = Session::start(self.command(&["-bs", "-odq"]));
        let result = session.transaction(message);
        session.quit();
        result
    }

    fn queue_file(&self, name: &str) -> String {
        let path = self.queue_dir().join(name);
        // Queue files carry Sendmail's own macro bytes (`$g` as 0x81...).
        std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; the queue holds {:?}",
                    path.display(),
                    self.queue_entries()
                )
            })
    }

    fn queue_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.queue_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Sendmail in `-bs` mode, read line by line on a thread so that a stuck
/// Sendmail fails the test instead of hanging it.
struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Session {
    fn start(mut cmd: Command) -> Session {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sendmail -bs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut session = Session {
            child,
            stdin,
            lines,
        };
        let (code, text) = session.reply();
        assert_eq!(code, "220", "greeting: {text}");
        session
    }

    /// One reply (multi-line replies joined): (code, text).
    fn reply(&mut self) -> (String, String) {
        let mut text = String::new();
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .expect("Sendmail answers in time");
            let line = line.trim_end().to_string();
            text.push_str(&line);
            text.push('\n');
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return (line.get(..3).unwrap_or("").to_string(), text);
            }
        }
    }

    fn command(&mut self, line: &str) -> (String, String) {
        write!(self.stdin, "{line}\r\n").unwrap();
        self.stdin.flush().unwrap();
        self.reply()
    }

    fn transaction(&mut self, message: &str) -> Result<String, (String, String)> {
        let ok = |(code, text): (String, String)| {
            if code.starts_with('2') || code.starts_with('3') {
                Ok(text)
            } else {
                Err((code, text))
            }
        };
        ok(self.command("EHLO client.example"))?;
        ok(self.command("MAIL FROM:<alice@sender.example>"))?;
        ok(self.command("RCPT TO:<bob@rcpt.example>"))?;
        ok(self.command("DATA"))?;
        let mut data = String::new();
        for line in message.replace("\r\n", "\n").lines() {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        self.stdin.write_all(data.as_bytes()).unwrap();
        let text = ok(self.command("."))?;
        // "250 2.0.0 6B2A8ere024341 Message accepted for delivery"
        let id = text
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no queue id in {text:?}"));
        Ok(id.to_string())
    }

    fn quit(mut self) {
        let _ = self.command("QUIT");
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sendmail -bs did not exit after QUIT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The malspam-milter binary on a loopback port, logging to a file.
struct Milter {
    child: Option<Child>,
    log: PathBuf,
}

impl Milter {
    fn start(dir: &tempfile::TempDir, port: u16) -> Milter {
        let config = dir.path().join("milter.toml");
        std::fs::write(
            &config,
            format!(
                "[milter]\nlisten = \"inet:127.0.0.1:{port}\"\n\n[store]\nbackend = \"memory\"\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("milter.log");
        let child = Command::new(MILTER)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start malspam-milter");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the milter did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Milter {
            child: Some(child),
            log,
        }
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the milter log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().unwrap();
            assert!(status.success(), "SIGTERM is a clean exit: {status}");
        }
    }
}

impl Drop for Milter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
