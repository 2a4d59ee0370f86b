//! Shared by the milter integration tests: spawn the real [`milter::run`] on
//! a loopback socket with a config file, and play the MTA with
//! `indymilter-test`.
#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indymilter_test::{EomActions, MacroStage, Status, TestConnection};
use malspam_milter::config::ListenAddr;
use malspam_milter::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use malspam_milter::milter::{self, Daemon, MilterListener};
use malspam_milter::view::MessageView;
use malspam_milter::{Engine, Envelope};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Body text that makes the marker detector ([`marker`]) report.
pub const MARKER: &str = "MALSPAM-TEST-MARKER";
/// Body text that makes the panicking detector ([`panicking`]) panic.
pub const PANIC: &str = "MALSPAM-TEST-PANIC";
/// Body text that makes the slow detector ([`slow`]) overrun any scan budget.
pub const SLOW: &str = "MALSPAM-TEST-SLOW";

/// A detector for pipeline tests: a name, no rules, and what it does with
/// each message (its outcome is the detector's).
pub struct OnView {
    pub name: &'static str,
    pub on_view: fn(&MessageView) -> Result<(), DetectorError>,
}

impl Detector for OnView {
    fn name(&self) -> &'static str {
        self.name
    }
    fn rules(&self) -> &'static [RuleInfo] {
        &[]
    }
    fn inspect(
        &self,
        view: &MessageView,
        _: &ScanContext<'_>,
        _: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        (self.on_view)(view)
    }
}

fn body_has(view: &MessageView, text: &str) -> bool {
    view.texts.iter().any(|t| t.text.contains(text))
}

/// Until real detectors land, no rule of a test detector can be scored by
/// config (unknown rules are refused), so this one reports through the one
/// channel a config can score: a detector error on messages carrying
/// [`MARKER`], which the core turns into `scan.error` with its evidence.
pub fn marker() -> OnView {
    OnView {
        name: "marker",
        on_view: |view| {
            if body_has(view, MARKER) {
                return Err(DetectorError::new(format!(
                    "test marker in the body of {:?}",
                    view.subject
                )));
            }
            Ok(())
        },
    }
}

/// Panics on messages carrying [`PANIC`]; the milter must survive it.
pub fn panicking() -> OnView {
    OnView {
        name: "panicking",
        on_view: |view| {
            if body_has(view, PANIC) {
                panic!("test detector panics on purpose");
            }
            Ok(())
        },
    }
}

/// On messages carrying [`SLOW`], sleeps past the milter's scan budget
/// (8 s > 1 s + 5 s grace with the test's config), like a detector stuck in
/// a pathological file; the milter must answer anyway.
pub fn slow() -> OnView {
    OnView {
        name: "slow",
        on_view: |view| {
            if body_has(view, SLOW) {
                std::thread::sleep(std::time::Duration::from_secs(8));
            }
            Ok(())
        },
    }
}

/// What the scan core was given for the last message.
#[derive(Default, Clone)]
pub struct Seen {
    pub envelope: Option<Envelope>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub size: usize,
}

/// Records the envelope and message the milter handed to the core.
pub struct RecordingDetector(pub Arc<Mutex<Seen>>);

impl Detector for RecordingDetector {
    fn name(&self) -> &'static str {
        "recording"
    }
    fn rules(&self) -> &'static [RuleInfo] {
        &[]
    }
    fn inspect(
        &self,
        view: &MessageView,
        _: &ScanContext<'_>,
        _: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        *self.0.lock().unwrap() = Seen {
            envelope: Some(view.envelope.clone()),
            headers: view.headers.clone(),
            body: view
                .texts
                .first()
                .map(|t| t.text.clone())
                .unwrap_or_default(),
            size: view.size,
        };
        Ok(())
    }
}

/// The real milter, running on 127.0.0.1:0 with a config file of its own.
pub struct TestMilter {
    pub addr: SocketAddr,
    pub daemon: Arc<Daemon>,
    pub config_path: PathBuf,
    pub seen: Arc<Mutex<Seen>>,
    shutdown: Option<oneshot::Sender<()>>,
    pub reload: mpsc::Sender<()>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestMilter {
    /// Start with `config` (TOML) and the test detectors.
    pub async fn start(config: &str) -> TestMilter {
        TestMilter::start_with(config, Vec::new).await
    }

    /// Start with `config`, the test detectors and those `extra` makes
    /// (called again at each reload).
    pub async fn start_with(config: &str, extra: fn() -> Vec<Box<dyn Detector>>) -> TestMilter {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let recorder = seen.clone();
        TestMilter::start_built(config, seen, move |config| {
            let mut detectors: Vec<Box<dyn Detector>> = vec![
                Box::new(marker()),
                Box::new(panicking()),
                Box::new(slow()),
                Box::new(RecordingDetector(recorder.clone())),
            ];
            detectors.extend(extra());
            Engine::with_detectors(config, detectors)
        })
        .await
    }

    /// Start with `config` and the engine `build` makes of it (called again
    /// at each reload): a store of the test's own, say.
    pub async fn start_built(
        config: &str,
        seen: Arc<Mutex<Seen>>,
        build: impl Fn(malspam_milter::Config) -> Engine + Send + Sync + 'static,
    ) -> TestMilter {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("malspam-milter.toml");
        std::fs::write(&config_path, config).unwrap();
        let daemon = Daemon::with_builder(
            Some(config_path.clone()),
            Box::new(move |config| Ok(build(config))),
        )
        .unwrap_or_else(|e| panic!("test config: {e}"));
        let daemon = Arc::new(daemon);
        let listener = MilterListener::bind(&ListenAddr::Inet("127.0.0.1:0".into()), "0660")
            .await
            .unwrap();
        let addr = match &listener {
            MilterListener::Tcp(l) => l.local_addr().unwrap(),
            MilterListener::Unix(..) => unreachable!(),
        };
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (reload_tx, reload_rx) = mpsc::channel(1);
        let handle = tokio::spawn(milter::run(listener, daemon.clone(), reload_rx, async {
            let _ = shutdown_rx.await;
        }));
        TestMilter {
            addr,
            daemon,
            config_path,
            seen,
            shutdown: Some(shutdown_tx),
            reload: reload_tx,
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Connect as an MTA offering every action and option.
    pub async fn open(&self) -> TestConnection {
        TestConnection::configure()
            .read_timeout(Duration::from_secs(60))
            .write_timeout(Duration::from_secs(60))
            .open_tcp(self.addr)
            .await
            .expect("milter accepts the connection")
    }

    /// One message over a fresh connection (negotiate, send, close), as an
    /// MTA sends it: what came back at end of message.
    pub async fn send_one(&self, msg: &Msg<'_>) -> (EomActions, Status) {
        let mut conn = self.open().await;
        handshake(&mut conn).await;
        let out = send(&mut conn, msg).await;
        conn.close().await.unwrap();
        out
    }

    /// Ask the milter to shut down (like SIGTERM), without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shut down and wait until `run` returns; it must return Ok.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        let handle = self.handle.take().unwrap();
        handle.await.unwrap().expect("milter run() ends cleanly");
    }
}

/// A message as the MTA passes it: envelope, headers, body.
pub struct Msg<'a> {
    pub queue_id: &'a str,
    pub from: &'a str,
    pub rcpts: &'a [&'a str],
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a str,
}

impl Default for Msg<'_> {
    fn default() -> Self {
        Msg {
            queue_id: "4ABC123",
            from: "<alice@sender.example>",
            rcpts: &["<bob@rcpt.example>"],
            headers: &[
                ("From", "Alice <alice@sender.example>"),
                ("To", "bob@rcpt.example"),
                ("Subject", "hello"),
            ],
            body: "Hello Bob,\r\nnothing to see here.\r\n",
        }
    }
}

/// The milter negotiates "no reply" for the stages where it only listens
/// (connect, HELO, MAIL, RCPT, headers, end of headers): the test MTA offers
/// it, so those stages answer `Noreply`; nothing may stop the message there.
pub fn listens(status: Status) {
    assert_eq!(status, Status::Noreply, "a listening stage answered");
}

/// Connect, HELO, then run one message through to end of message.
pub async fn handshake(conn: &mut TestConnection) {
    let status = conn
        .connect("client.sender.example", [192, 0, 2, 25])
        .await
        .unwrap();
    listens(status);
    let status = conn.helo("client.sender.example").await.unwrap();
    listens(status);
}

/// One message on an open connection (after [`handshake`]).
pub async fn send(conn: &mut TestConnection, msg: &Msg<'_>) -> (EomActions, Status) {
    listens(conn.mail([msg.from]).await.unwrap());
    for rcpt in msg.rcpts {
        listens(conn.rcpt([*rcpt]).await.unwrap());
    }
    conn.macros(MacroStage::Eoh, [("i", msg.queue_id)])
        .await
        .unwrap();
    for (name, value) in msg.headers {
        listens(conn.header(*name, *value).await.unwrap());
    }
    listens(conn.eoh().await.unwrap());
    let status = conn.body(msg.body.as_bytes().to_vec()).await.unwrap();
    assert!(
        matches!(status, Status::Continue | Status::Skip),
        "{status:?}"
    );
    conn.macros(MacroStage::Eom, [("i", msg.queue_id)])
        .await
        .unwrap();
    conn.eom().await.unwrap()
}

/// The added X-Malspam-Findings, one finding per entry (unfolded).
pub fn findings(actions: &EomActions) -> Vec<String> {
    added(actions, "X-Malspam-Findings")
        .map(|v| malspam_milter::headers::unfold_findings(&v))
        .unwrap_or_default()
}

/// The value of the header added with this name, if any.
pub fn added(actions: &EomActions, name: &str) -> Option<String> {
    actions.actions.iter().find_map(|a| match a {
        indymilter_test::EomAction::AddHeader { name: n, value }
            if n.to_bytes() == name.as_bytes() =>
        {
            Some(value.to_string_lossy().into_owned())
        }
        _ => None,
    })
}

/// The quarantine reason, if the milter quarantined.
pub fn quarantine_reason(actions: &EomActions) -> Option<String> {
    actions.actions.iter().find_map(|a| match a {
        indymilter_test::EomAction::Quarantine { reason } => {
            Some(reason.to_string_lossy().into_owned())
        }
        _ => None,
    })
}
