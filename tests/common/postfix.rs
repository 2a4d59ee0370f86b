//! A throwaway Postfix for integration tests: its own config and queue
//! directories under a temp dir (never the system's), smtpd on a loopback
//! port, everything relayed to smtp-sink, the malspam-milter binary on a unix
//! socket in the queue directory. Used by tests/postfix.rs,
//! tests/postfix_deep_nesting.rs, tests/outbound_postfix.rs and others;
//! needs root and the Debian `postfix` package.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postfix");
pub const MILTER: &str = env!("CARGO_BIN_EXE_malspam-milter");

/// Upper bound for anything we wait for (Postfix delivers in well under a second).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// None when we can run; otherwise why not.
pub fn can_run_postfix() -> Option<String> {
    for tool in [
        "/usr/sbin/postfix",
        "/usr/sbin/smtp-sink",
        "/usr/sbin/postqueue",
        "/usr/sbin/postcat",
        "/usr/sbin/postsuper",
        "/usr/sbin/sendmail",
    ] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is not installed"));
        }
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root (Postfix must start as root)".into());
    }
    None
}

/// main.cf `template` with `extra`'s parameters in place of the template's
/// own: a parameter given twice makes every Postfix process warn at start-up
/// ("overriding earlier entry"), and those warnings can deadlock the instance
/// (see [`assert_config_is_quiet`]).
pub fn override_main_cf(template: &str, extra: &str) -> String {
    let name_of = |line: &str| -> Option<String> {
        let (name, _) = line.split_once('=')?;
        let name = name.trim();
        let plain = !name.is_empty()
            && !line.starts_with([' ', '\t', '#'])
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        plain.then(|| name.to_string())
    };
    let overridden: Vec<String> = extra.lines().filter_map(name_of).collect();
    let mut out = String::new();
    let mut dropping = false;
    for line in template.lines() {
        // A line that starts with white space continues the previous parameter.
        if !line.starts_with([' ', '\t']) {
            dropping = name_of(line).is_some_and(|n| overridden.contains(&n));
        }
        if !dropping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out + extra
}

/// The instance's config must parse without a warning. Each daemon logs its
/// start-up warnings to the instance's log socket before postlogd reads it;
/// with Linux's default queue of 10 datagrams (net.unix.max_dgram_qlen) a few
/// warnings per daemon fill it, postlogd blocks writing its own warnings to
/// itself, and every daemon (smtpd before its banner, `postfix stop`) blocks
/// behind it: a test that hangs for minutes instead of a clear message.
fn assert_config_is_quiet(etc: &Path) {
    // -n reads main.cf, -M master.cf.
    for file in ["-n", "-M"] {
        let out = Command::new("postconf")
            .arg("-c")
            .arg(etc)
            .arg(file)
            .output()
            .expect("run postconf");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "the test Postfix's config warns (every daemon would log this at start-up, \
             which can deadlock its log socket):\n{warnings}"
        );
    }
}

/// A message from alice to bob with CRLF line endings.
pub fn message(subject: &str, extra: &[(&str, &str)], body: &str) -> String {
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

pub fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// A message as smtp-sink dumped it.
pub struct Delivered {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Delivered {
    pub fn parse(text: &str) -> Delivered {
        let text = lf(text);
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((n, v)) = line.split_once(':') {
                headers.push((n.to_string(), v.trim().to_string()));
            }
        }
        // smtp-sink ends its dump with one empty line of its own.
        let body = body.strip_suffix('\n').unwrap_or(body);
        Delivered {
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The Postfix instance, the sink and the milter; all stopped on drop.
pub struct TestPostfix {
    dir: tempfile::TempDir,
    pub smtp_port: u16,
    sink: Child,
    milter: Option<Child>,
    started: bool,
}

impl TestPostfix {
    pub fn start() -> TestPostfix {
        TestPostfix::start_with("", "")
    }

    /// Like [`TestPostfix::start`], with lines appended to main.cf and
    /// master.cf (they may use `@DIR@`, the instance's root directory).
    pub fn start_with(extra_main: &str, extra_master: &str) -> TestPostfix {
        TestPostfix::start_prepared(extra_main, extra_master, |_| {})
    }

    /// Like [`TestPostfix::start_with`]; `before_start(root)` runs after the
    /// config is written and before Postfix starts, to make what the extra
    /// config needs (files under `root`).
    pub fn start_prepared(
        extra_main: &str,
        extra_master: &str,
        before_start: impl FnOnce(&Path),
    ) -> TestPostfix {
        let dir = tempfile::Builder::new()
            .prefix("malspam-postfix-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        // Postfix's daemons (user postfix) must reach the queue and sink dirs.
        chmod(root, 0o755);
        for sub in ["etc", "spool", "spool/malspam-milter", "data", "sink"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        chown_postfix(&root.join("data"));
        chown_postfix(&root.join("sink"));
        let (smtp_port, sink_port) = (free_port(), free_port());
        let vars = |text: String| {
            text.replace("@DIR@", &root.display().to_string())
                .replace("@SMTP_PORT@", &smtp_port.to_string())
                .replace("@SINK_PORT@", &sink_port.to_string())
        };
        let main_template = std::fs::read_to_string(format!("{TEMPLATES}/main.cf.in")).unwrap();
        let master_template = std::fs::read_to_string(format!("{TEMPLATES}/master.cf.in")).unwrap();
        let main_cf = override_main_cf(&main_template, extra_main);
        std::fs::write(root.join("etc/main.cf"), vars(main_cf)).unwrap();
        std::fs::write(
            root.join("etc/master.cf"),
            vars(master_template + extra_master),
        )
        .unwrap();
        assert_config_is_quiet(&root.join("etc"));
        before_start(root);
        let sink = Command::new("smtp-sink")
            .args(["-u", "postfix", "-d"])
            .arg(format!("{}/sink/msg.", root.display()))
            .arg(format!("127.0.0.1:{sink_port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let mut pf = TestPostfix {
            dir,
            smtp_port,
            sink,
            milter: None,
            started: false,
        };
        wait_for_port(sink_port);
        let out = Command::new("postfix")
            .arg("-c")
            .arg(pf.etc())
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            pf.maillog()
        );
        pf.started = true;
        wait_for_port(smtp_port);
        pf
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn etc(&self) -> PathBuf {
        self.root().join("etc")
    }

    /// The milter's config file (written by [`Self::write_milter_config`]).
    pub fn milter_config(&self) -> PathBuf {
        self.root().join("milter.toml")
    }

    pub fn write_milter_config(&self, milter_keys: &str, rest: &str) {
        // Postfix's daemons run as user postfix: let them at the socket.
        let text = format!(
            "[milter]\nlisten = \"unix:{}\"\nsocket_mode = \"0666\"\n{milter_keys}\n\
             [store]\nbackend = \"embedded\"\npath = \"{}\"\n{rest}",
            self.milter_socket().display(),
            self.root().join("state.sqlite3").display()
        );
        std::fs::write(self.root().join("milter.toml"), text).unwrap();
    }

    /// `<queue_directory>/malspam-milter/milter.sock`, which main.cf names
    /// as `unix:malspam-milter/milter.sock`.
    pub fn milter_socket(&self) -> PathBuf {
        self.root().join("spool/malspam-milter/milter.sock")
    }

    pub fn start_milter(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("milter.log"))
            .unwrap();
        let child = Command::new(MILTER)
            .arg("run")
            .arg("--config")
            .arg(self.root().join("milter.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the milter");
        self.milter = Some(child);
        let socket = self.milter_socket();
        wait_until(
            || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
            || {
                format!(
                    "the milter never listened on {}:\n{}",
                    socket.display(),
                    self.milter_log()
                )
            },
        );
    }

    pub fn signal_milter(&self, signal: &str) {
        let pid = self.milter.as_ref().expect("milter running").id();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {pid}");
    }

    /// The running milter's process id.
    pub fn milter_pid(&self) -> u32 {
        self.milter.as_ref().expect("milter running").id()
    }

    /// True while the milter process has not exited.
    pub fn milter_is_running(&mut self) -> bool {
        let child = self.milter.as_mut().expect("milter started");
        child.try_wait().unwrap().is_none()
    }

    pub fn wait_milter_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.milter.take().expect("milter running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "milter did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn milter_log(&self) -> String {
        std::fs::read_to_string(self.root().join("milter.log")).unwrap_or_default()
    }

    pub fn wait_for_milter_log(&self, needle: &str) {
        wait_until(
            || self.milter_log().contains(needle),
            || format!("milter log never said {needle:?}:\n{}", self.milter_log()),
        );
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.root().join("maillog")).unwrap_or_default()
    }

    pub fn wait_for_maillog(&self, needle: &str) {
        wait_until(
            || self.maillog().contains(needle),
            || format!("maillog never said {needle:?}:\n{}", self.maillog()),
        );
    }

    /// Send one message over SMTP. Err((code, text)) on the first refusal.
    pub fn smtp_send(&self, message: &str) -> Result<(), (String, String)> {
        smtp_session(
            self.smtp_port,
            None,
            "alice@sender.example",
            "bob@rcpt.example",
            message,
        )
    }

    /// Submit locally (the non_smtpd_milters path: pickup → cleanup).
    pub fn sendmail(&self, message: &str) {
        let mut child = Command::new("sendmail")
            .arg("-C")
            .arg(self.etc())
            .args(["-f", "alice@sender.example", "bob@rcpt.example"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "sendmail failed");
    }

    /// `postqueue -c DIR ARGS` with the postdrop group it needs.
    pub fn postqueue(&self, args: &[&str]) -> String {
        let out = Command::new("setpriv")
            .args(["--regid=postdrop", "--clear-groups", "postqueue", "-c"])
            .arg(self.etc())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postqueue {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The header block of a queued message (`postcat -h`).
    pub fn postcat_headers(&self, id: &str) -> String {
        let out = Command::new("postcat")
            .arg("-c")
            .arg(self.etc())
            .args(["-h", "-q", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "postcat -q {id}");
        // postcat prints "*** HEADER EXTRACTED ..." banners; keep header lines.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("***"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Queue ids in the named queue (hold, maildrop, deferred, ...).
    pub fn queue(&self, name: &str) -> Vec<String> {
        self.postqueue(&["-j"])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["queue_name"] == name)
            .map(|v| v["queue_id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn wait_for_queue(&self, name: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        wait_until(
            || {
                ids = self.queue(name);
                ids.len() >= n
            },
            || {
                format!(
                    "{name} queue never held {n} message(s):\n{}",
                    self.maillog()
                )
            },
        );
        ids
    }

    pub fn sink_messages(&self) -> Vec<Delivered> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root().join("sink")).unwrap() {
            let path = entry.unwrap().path();
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push(Delivered::parse(&text));
            }
        }
        out
    }

    pub fn wait_for_sink(&self, n: usize) -> Vec<Delivered> {
        // Postfix logs status=sent once smtp-sink has taken the whole message.
        let mut got = Vec::new();
        wait_until(
            || {
                if self.maillog().matches("status=sent").count() < n {
                    return false;
                }
                got = self.sink_messages();
                got.len() >= n
            },
            || {
                format!(
                    "smtp-sink never got {n} message(s):\n{}\n{}",
                    self.maillog(),
                    self.milter_log()
                )
            },
        );
        assert_eq!(got.len(), n, "exactly {n} delivered");
        got
    }
}

impl TestPostfix {
    /// `postfix stop`, bounded: if it has not finished in 20 s (seen once:
    /// the instance's postlogd stopped reading and every daemon blocked on
    /// its log socket), the instance's master and its children (one process
    /// group: master runs setsid) are killed, so no test can hang here.
    fn stop_postfix(&self) {
        let stop = Command::new("postfix")
            .arg("-c")
            .arg(self.etc())
            .arg("stop")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut stop) = stop else { return };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = stop.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = stop.kill();
        let _ = stop.wait();
        let pid_file = self.root().join("spool/pid/master.pid");
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            let pid = pid.trim();
            if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
                eprintln!(
                    "postfix stop did not finish in 20 s: killing the instance (master {pid})"
                );
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
        }
    }
}

impl Drop for TestPostfix {
    fn drop(&mut self) {
        if self.started {
            self.stop_postfix();
        }
        if let Some(mut m) = self.milter.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = self.sink.kill();
        let _ = self.sink.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- maillog ---\n{}\n--- milter log ---\n{}",
                self.maillog(),
                self.milter_log()
            );
        }
    }
}

/// One SMTP session on 127.0.0.1:`port` sending one message, after
/// `AUTH PLAIN` (RFC 4616) when `login` is given as (user, password).
/// Err((code, text)) on the first refusal.
pub fn smtp_session(
    port: u16,
    login: Option<(&str, &str)>,
    from: &str,
    rcpt: &str,
    message: &str,
) -> Result<(), (String, String)> {
    use base64::Engine as _;
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut step = |command: Option<&str>| -> Result<(), (String, String)> {
        if let Some(c) = command {
            writer.write_all(c.as_bytes()).unwrap();
            writer.write_all(b"\r\n").unwrap();
        }
        let (code, text) = read_reply(&mut reader);
        if code.starts_with('2') || code.starts_with('3') {
            Ok(())
        } else {
            Err((code, text))
        }
    };
    step(None)?;
    step(Some("EHLO client.sender.example"))?;
    if let Some((user, password)) = login {
        // authzid (empty) NUL authcid NUL password.
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        step(Some(&format!("AUTH PLAIN {token}")))?;
    }
    step(Some(&format!("MAIL FROM:<{from}>")))?;
    step(Some(&format!("RCPT TO:<{rcpt}>")))?;
    step(Some("DATA"))?;
    // Dot-stuffing (RFC 5321 4.5.2), then the end-of-data line.
    let mut data = String::new();
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
    }
    data.push('.');
    step(Some(&data))?;
    let _ = step(Some("QUIT"));
    Ok(())
}

pub fn read_reply(reader: &mut impl BufRead) -> (String, String) {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return ("000".into(), format!("connection closed after {text:?}"));
        }
        text.push_str(&line);
        // "250-more" continues, "250 last" ends the reply.
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return (line.get(..3).unwrap_or("000").to_string(), text);
        }
    }
}

pub fn wait_until(mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "{}", why());
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_for_port(port: u16) {
    wait_until(
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        || format!("nothing listens on 127.0.0.1:{port}"),
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown_postfix(path: &Path) {
    let ok = Command::new("chown")
        .arg("postfix")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown postfix {}", path.display());
}
