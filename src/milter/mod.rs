//! The milter daemon: the front end that Postfix and Sendmail talk to.
//!
//! [`run`] is what the binary (`malspam-milter run`) and the integration tests
//! call. It serves the milter protocol (indymilter) on a listener, collects
//! each message ([`session`]), scans it with the shared [`Engine`] off the
//! async reactor at end of message, and acts on the verdict
//! ([`callbacks`]):
//!
//! - every scanned message gets `X-Malspam-Verdict` and `X-Malspam-Score`
//!   (accepted mail too: a reviewer or a Sieve rule can then tell "scanned,
//!   clean" from "never scanned", e.g. mail that passed while the milter was
//!   down with `milter_default_action = accept`), plus `X-Malspam-Findings`
//!   when there are findings;
//! - quarantine uses the milter quarantine action (Postfix: the hold queue)
//!   with the findings as reason; reject answers with a 5xx;
//! - incoming `X-Malspam-*` headers are deleted, so a sender cannot forge a
//!   verdict;
//! - one log line per message, starting with the queue id.
//!
//! SIGHUP ([`Daemon::reload`]) swaps in a new engine; a failed reload keeps
//! the old one. Shutdown stops accepting connections, waits for messages in
//! flight, then closes the remaining connections.

mod callbacks;
mod listener;
pub use callbacks::NO_REPLY_STAGES;
pub mod session;

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigErrors, ListenAddr};
use crate::envelope::Envelope;
use crate::report::Report;
use crate::scan::{Engine, EnvelopeFindings};
use crate::store::Store;
use listener::{GracefulListener, StopAccepting};

/// Builds an engine from a (re)loaded config. The daemon's default keeps one
/// state store across reloads; tests add their own detectors.
pub type BuildEngine = dyn Fn(Config) -> Result<Engine, ConfigErrors> + Send + Sync;

/// Extra time the milter grants a scan beyond `limits.scan_timeout_secs`
/// (the core checks its deadline between detectors) before giving up on it.
const SCAN_GRACE: Duration = Duration::from_secs(5);

/// How long shutdown waits for messages in flight before closing anyway.
/// Postfix then applies `milter_default_action` to what was cut off.
const SHUTDOWN_GRACE_EXTRA: Duration = Duration::from_secs(10);

/// State shared by every connection: the current engine, the scan pool, and
/// the count of messages in flight.
pub struct Daemon {
    config_path: Option<PathBuf>,
    build: Box<BuildEngine>,
    engine: RwLock<Arc<Engine>>,
    /// Scans running at once; sized at start (a change needs a restart).
    scan_permits: Arc<Semaphore>,
    scan_slots: usize,
    in_flight: Arc<InFlightCount>,
}

impl Daemon {
    /// Load the config (None: built-in defaults) and build the engine over
    /// the configured state store, opened once and kept across reloads (a
    /// change of `[store]` takes effect at the next start). Every message
    /// the daemon passes is remembered (thread memory, correspondents).
    pub fn load(config_path: Option<PathBuf>) -> Result<Daemon, ConfigErrors> {
        let config = Config::load(config_path.as_deref())?;
        let store: Arc<dyn Store> = crate::store::open(&config.store).map_err(|e| {
            ConfigErrors(vec![crate::config::ConfigError {
                file: config_path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "<built-in defaults>".into()),
                line: None,
                key: Some("store".into()),
                message: format!("cannot open the state store: {e}"),
            }])
        })?;
        info!("state store: {}", store.backend());
        Daemon::with_builder(
            config_path,
            Box::new(move |config| Engine::with_store(config, store.clone())),
        )
    }

    /// Like [`Daemon::load`], with a custom engine builder (tests use it to
    /// add detectors).
    pub fn with_builder(
        config_path: Option<PathBuf>,
        build: Box<BuildEngine>,
    ) -> Result<Daemon, ConfigErrors> {
        let config = Config::load(config_path.as_deref())?;
        let engine = build(config)?;
        let scan_slots = scan_slots(engine.config());
        Ok(Daemon {
            config_path,
            build,
            engine: RwLock::new(Arc::new(engine)),
            scan_permits: Arc::new(Semaphore::new(scan_slots)),
            scan_slots,
            in_flight: Arc::new(InFlightCount::default()),
        })
    }

    /// The engine in force now. A message keeps the engine it started with
    /// (an `Arc`), even if a reload swaps in a new one meanwhile.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// Reread the config file and swap in a new engine. On error the old
    /// engine stays in force and every error is returned. Keys that only
    /// take effect at start are warned about.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let config = Config::load(self.config_path.as_deref())?;
        let old = self.engine();
        for key in needs_restart(old.config(), &config) {
            warn!("config reload: {key} changed; it takes effect only after a restart");
        }
        let engine = (self.build)(config)?;
        *self
            .engine
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(engine);
        Ok(())
    }

    /// Reload, logging the outcome: what SIGHUP does.
    pub fn reload_and_log(&self) {
        let from = self
            .config_path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into());
        match self.reload() {
            Ok(()) => info!("configuration reloaded from {from}"),
            Err(errors) => {
                error!(
                    "configuration reload from {from} failed; keeping the previous configuration"
                );
                for e in &errors.0 {
                    error!("  {e}");
                }
            }
        }
    }

    /// Scan off the async reactor, at most `scan_slots` at once, within the
    /// scan time budget plus a grace period. A scan that overruns is
    /// reported as not fully scanned (its thread finishes in the background,
    /// still holding its slot, so CPU use stays bounded).
    ///
    /// Light messages (see [`scans_inline`]) are scanned right here instead:
    /// for plain text mail the hand-off to a pool thread and back costs more
    /// CPU than the scan itself.
    pub async fn scan(
        &self,
        engine: Arc<Engine>,
        pre: EnvelopeFindings,
        envelope: Envelope,
        raw: Vec<u8>,
    ) -> Report {
        if scans_inline(engine.config(), &envelope, &raw) {
            return engine.scan_after(&pre, envelope, &raw);
        }
        // One budget for waiting for a slot and scanning: a flood of big
        // messages makes the next ones wait, never wait forever.
        let budget = Duration::from_secs(engine.config().limits.scan_timeout_secs) + SCAN_GRACE;
        let deadline = tokio::time::Instant::now() + budget;
        let permit = match tokio::time::timeout_at(
            deadline,
            self.scan_permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return engine.not_scanned("the scan pool is closed", &pre),
            Err(_) => {
                return engine.not_scanned(
                    &format!("every scan slot stayed busy for {} s", budget.as_secs()),
                    &pre,
                )
            }
        };
        let scan_engine = engine.clone();
        let scan_pre = pre.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            scan_engine.scan_after(&scan_pre, envelope, &raw)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(report)) => report,
            Ok(Err(join_error)) => engine.not_scanned(
                &format!(
                    "internal error in the scan ({})",
                    if join_error.is_panic() {
                        "a panic"
                    } else {
                        "cancelled"
                    }
                ),
                &pre,
            ),
            Err(_) => engine.not_scanned(
                &format!("the scan did not finish within {} s", budget.as_secs()),
                &pre,
            ),
        }
    }

    /// The envelope stage of a message, off the protocol thread when it
    /// needs the store (outbound mail only), within the store's own
    /// timeout plus a second: a store that hangs gives
    /// `outbound.hold_unknown`, held, never a message let out unheld.
    pub async fn envelope_stage(
        &self,
        engine: Arc<Engine>,
        envelope: &Envelope,
    ) -> EnvelopeFindings {
        let config = engine.config();
        let Some(account) = crate::detectors::outbound::account_of(&config.outbound, envelope)
        else {
            return EnvelopeFindings::default();
        };
        let limit = Duration::from_millis(config.store.timeout_ms) + Duration::from_secs(1);
        let stage_engine = engine.clone();
        let stage_envelope = envelope.clone();
        let task =
            tokio::task::spawn_blocking(move || stage_engine.envelope_stage(&stage_envelope));
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(found)) => found,
            _ => engine.hold_unknown(
                &account,
                &format!("could not be read in {} ms", limit.as_millis()),
            ),
        }
    }

    /// Apply what the scan of a message proposed (`Engine::commit`) before
    /// its end-of-message reply, so the next message of an outbound account
    /// sees its count and hold. On the protocol thread when it only
    /// remembers mail in the memory or embedded store: both take it without
    /// waiting (the embedded store's writer thread reads and writes it
    /// later; a full queue is waited on for 20 ms at most). Anything else
    /// (outbound counters and holds, Redis) runs off the protocol thread,
    /// within the store's timeout plus a second; past that it finishes in
    /// the background.
    pub async fn commit(&self, engine: Arc<Engine>, effects: Vec<crate::effects::Effect>) {
        if effects.is_empty() {
            return;
        }
        let light = engine.config().store.backend != crate::store::StoreBackend::Redis
            && effects
                .iter()
                .all(|e| matches!(e, crate::effects::Effect::Remember { .. }));
        if light {
            engine.commit(&effects);
            return;
        }
        let limit =
            Duration::from_millis(engine.config().store.timeout_ms) + Duration::from_secs(1);
        let task = tokio::task::spawn_blocking(move || engine.commit(&effects));
        if tokio::time::timeout(limit, task).await.is_err() {
            warn!(
                "committing a message's effects took over {} ms; it goes on in the background",
                limit.as_millis()
            );
        }
    }

    /// Messages between `MAIL FROM` and end of message (or abort), now.
    pub fn messages_in_flight(&self) -> usize {
        self.in_flight.count.load(Ordering::SeqCst)
    }

    fn begin_in_flight(&self) -> InFlight {
        self.in_flight.count.fetch_add(1, Ordering::SeqCst);
        InFlight(Some(self.in_flight.clone()))
    }

    /// Wait until no message is in flight.
    async fn drained(&self) {
        loop {
            let notified = self.in_flight.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.messages_in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Whether a message is scanned on the protocol thread: at most
/// `milter.inline_scan_max_bytes`, nothing but text parts (no attachment,
/// archive or Office file to open, which is where a scan's time goes, in
/// whatever transfer encoding it comes), a store that answers without the
/// network, and not outbound mail (whose counters are written at once, and
/// may wait on a store lock or start a notify command).
pub fn scans_inline(config: &Config, envelope: &Envelope, raw: &[u8]) -> bool {
    raw.len() <= config.milter.inline_scan_max_bytes
        && config.store.backend != crate::store::StoreBackend::Redis
        && crate::detectors::outbound::account_of(&config.outbound, envelope).is_none()
        && is_plain_text_mail(raw)
}

/// True only when `raw` plainly has nothing but text: no `name=` or
/// `filename` parameter, no `Content-Type` other than text/* and
/// multipart/*, no base64 and no uuencode ("begin 644 name"). Errs on the
/// side of no: a quoted-printable or 8bit attachment goes to the pool.
fn is_plain_text_mail(raw: &[u8]) -> bool {
    // One case-insensitive pass over the message, without a lower-cased
    // copy of it (this runs on every message, on the protocol thread).
    static MARKS: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r"(?i-u)base64|name=|name\*|\nbegin [0-9]|content-type:")
            .expect("valid regex")
    });
    let starts_with = |value: &[u8], prefix: &[u8]| {
        value
            .get(..prefix.len())
            .is_some_and(|v| v.eq_ignore_ascii_case(prefix))
    };
    MARKS.find_iter(raw).all(|mark| {
        // Every Content-Type must be text/* or multipart/*; anything else
        // found is an encoded part, a file name or uuencode.
        mark.as_bytes().eq_ignore_ascii_case(b"content-type:") && {
            let value = raw[mark.end()..].trim_ascii_start();
            starts_with(value, b"text/") || starts_with(value, b"multipart/")
        }
    })
}

/// Scan slots from `milter.max_concurrent_scans` (0 = one per core).
fn scan_slots(config: &Config) -> usize {
    match config.milter.max_concurrent_scans {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// `[milter]` keys that are read only at start.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.milter, &new.milter);
    [
        ("milter.listen", a.listen != b.listen),
        ("milter.socket_mode", a.socket_mode != b.socket_mode),
        (
            "milter.max_concurrent_scans",
            a.max_concurrent_scans != b.max_concurrent_scans,
        ),
        ("milter.io_threads", a.io_threads != b.io_threads),
        (
            "milter.max_connections",
            a.max_connections != b.max_connections,
        ),
        (
            "milter.connection_timeout_secs",
            a.connection_timeout_secs != b.connection_timeout_secs,
        ),
        ("milter.log_level", a.log_level != b.log_level),
        ("log", old.log != new.log),
        ("store", old.store != new.store),
        ("metrics", old.metrics != new.metrics),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

#[derive(Default)]
struct InFlightCount {
    count: AtomicUsize,
    idle: Notify,
}

/// Marks one message as in flight while it lives.
pub struct InFlight(Option<Arc<InFlightCount>>);

impl InFlight {
    /// A marker counted nowhere (for unit tests of the session).
    pub fn detached() -> InFlight {
        InFlight(None)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(count) = self.0.take() {
            if count.count.fetch_sub(1, Ordering::SeqCst) == 1 {
                count.idle.notify_waiters();
            }
        }
    }
}

/// The socket the daemon listens on.
pub enum MilterListener {
    Tcp(TcpListener),
    /// The path is removed when the listener is dropped.
    Unix(UnixListener, PathBuf),
}

impl MilterListener {
    /// Bind the address from `milter.listen`. A unix socket gets
    /// `milter.socket_mode`; a stale socket file left by a crash is
    /// removed, but a socket some live process still serves is not.
    pub async fn bind(addr: &ListenAddr, socket_mode: &str) -> io::Result<MilterListener> {
        match addr {
            ListenAddr::Inet(hostport) => {
                Ok(MilterListener::Tcp(TcpListener::bind(hostport).await?))
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path)?;
                let mode = u32::from_str_radix(socket_mode, 8).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("milter.socket_mode is not octal: {socket_mode:?}"),
                    )
                })?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                Ok(MilterListener::Unix(listener, path.clone()))
            }
        }
    }

    /// `inet:HOST:PORT` or `unix:/path`, as Postfix's `smtpd_milters` wants it.
    pub fn describe(&self) -> String {
        match self {
            MilterListener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("inet:{a}"),
                Err(_) => "inet:?".into(),
            },
            MilterListener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

impl Drop for MilterListener {
    fn drop(&mut self) {
        if let MilterListener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by another process", path.display()),
        ));
    }
    info!("removing stale socket {}", path.display());
    std::fs::remove_file(path)
}

/// Serve the milter protocol on `listener` until `shutdown` completes.
///
/// Each message on `reload` rereads the config ([`Daemon::reload_and_log`]).
/// On shutdown: stop accepting connections, let messages in flight finish
/// (bounded by the scan budget plus a margin), then close the remaining
/// connections and return.
pub async fn run(
    listener: MilterListener,
    daemon: Arc<Daemon>,
    mut reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    info!(
        "listening on {} ({} scan slots)",
        listener.describe(),
        daemon.scan_slots
    );
    let stop = Arc::new(StopAccepting::default());
    let listener = GracefulListener::new(listener, stop.clone(), daemon.clone());
    let milter_config = daemon.engine().config().milter.clone();
    let config = indymilter::Config {
        max_connections: milter_config.max_connections.max(1),
        connection_timeout: Duration::from_secs(milter_config.connection_timeout_secs.max(1)),
        ..Default::default()
    };
    let (close_sessions, sessions_closed) = oneshot::channel::<()>();
    let milter = indymilter::run(
        listener,
        callbacks::make(daemon.clone()),
        config,
        async move {
            let _ = sessions_closed.await;
        },
    );
    let mut milter: Pin<Box<dyn Future<Output = io::Result<()>> + Send>> = Box::pin(milter);
    tokio::pin!(shutdown);

    let mut reloads_open = true;
    loop {
        tokio::select! {
            result = &mut milter => return result,
            _ = &mut shutdown => break,
            msg = reload.recv(), if reloads_open => match msg {
                Some(()) => {
                    let d = daemon.clone();
                    // Building an engine may read files: keep it off the reactor.
                    let _ = tokio::task::spawn_blocking(move || d.reload_and_log()).await;
                }
                None => reloads_open = false,
            },
        }
    }

    let pending = daemon.messages_in_flight();
    info!("shutting down: no new connections; {pending} message(s) in flight");
    stop.stop();
    let grace = Duration::from_secs(daemon.engine().config().limits.scan_timeout_secs)
        + SCAN_GRACE
        + SHUTDOWN_GRACE_EXTRA;
    tokio::select! {
        result = &mut milter => return result,
        drained = tokio::time::timeout(grace, daemon.drained()) => {
            if drained.is_err() {
                warn!(
                    "shutdown: {} message(s) still in flight after {} s; closing their connections",
                    daemon.messages_in_flight(),
                    grace.as_secs()
                );
            }
        }
    }
    let _ = close_sessions.send(());
    let result = milter.await;
    flush_store(&daemon).await;
    info!("stopped");
    result
}

/// Wait until the store has written what it queued (what the last
/// messages taught), off the reactor (a commit waits on the disk).
async fn flush_store(daemon: &Daemon) {
    let store = daemon.engine().store().clone();
    match tokio::task::spawn_blocking(move || store.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("writing the state store's queued writes: {e}"),
        Err(e) => warn!("writing the state store's queued writes: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[u8] = b"From: a@example.com\r\nSubject: hi\r\n\r\nLunch at noon?\r\n";

    fn inbound() -> Envelope {
        Envelope {
            client_addr: Some("192.0.2.1".parse().unwrap()),
            ..Envelope::default()
        }
    }

    #[test]
    fn a_reload_names_the_keys_that_wait_for_a_restart() {
        let old = Config::default();
        assert!(needs_restart(&old, &Config::default()).is_empty());
        let mut new = Config::default();
        new.milter.io_threads = 4;
        new.milter.connection_timeout_secs = 600;
        new.store.timeout_ms = 1000;
        new.policy.tag = 3.0; // takes effect at once
        assert_eq!(
            needs_restart(&old, &new),
            [
                "milter.io_threads",
                "milter.connection_timeout_secs",
                "store"
            ]
        );
    }

    #[test]
    fn plain_small_mail_is_scanned_inline() {
        assert!(scans_inline(&Config::default(), &inbound(), PLAIN));
    }

    /// Header names and values in any case are read as the MTA reads them.
    #[test]
    fn the_text_only_check_ignores_case() {
        let plain = |raw: &[u8]| is_plain_text_mail(raw);
        assert!(plain(b"CONTENT-TYPE: TEXT/Plain\r\n\r\nhi\r\n"));
        assert!(plain(
            b"Content-Type:\r\n Multipart/Alternative; boundary=x\r\n\r\n"
        ));
        assert!(!plain(b"Content-Type: Application/PDF\r\n\r\n%PDF\r\n"));
        assert!(!plain(b"Content-Transfer-Encoding: BaSe64\r\n\r\nAAAA\r\n"));
        assert!(!plain(
            b"Content-Disposition: attachment; FileName=\"a.txt\"\r\n\r\n"
        ));
        assert!(!plain(
            b"Content-Disposition: attachment; NAME*=utf-8''a.txt\r\n\r\n"
        ));
        assert!(!plain(b"hi\r\nBEGIN 644 a.doc\r\n"));
    }

    #[test]
    fn outbound_mail_goes_to_the_pool() {
        let mut config = Config::default();
        config.outbound.enabled = true;
        let submitted = Envelope {
            auth_user: Some("alice".into()),
            ..inbound()
        };
        assert!(!scans_inline(&config, &submitted, PLAIN));
        assert!(scans_inline(&config, &inbound(), PLAIN));
    }

    #[test]
    fn encoded_parts_size_and_redis_send_the_scan_to_the_pool() {
        let config = Config::default();
        let env = inbound();
        let attachment = b"Content-Type: application/zip\r\n\
Content-Transfer-Encoding: BASE64\r\n\r\nUEsDBA==\r\n";
        assert!(!scans_inline(&config, &env, attachment));
        let uuencoded = b"Hi\r\nbegin 644 invoice.doc\r\nM9&]C\r\n";
        assert!(!scans_inline(&config, &env, uuencoded));
        // "begin" in prose is no uuencode.
        assert!(scans_inline(&config, &env, b"Hi\r\nbegin here\r\n"));
        let big = [PLAIN, &vec![b'a'; 300 * 1024]].concat();
        assert!(!scans_inline(&config, &env, &big));

        let mut none = Config::default();
        none.milter.inline_scan_max_bytes = 0;
        assert!(!scans_inline(&none, &env, PLAIN));
        let mut redis = Config::default();
        redis.store.backend = crate::store::StoreBackend::Redis;
        assert!(!scans_inline(&redis, &env, PLAIN));
    }

    #[test]
    fn attachments_in_any_transfer_encoding_go_to_the_pool() {
        let config = Config::default();
        let env = inbound();
        // 150 quoted-printable Office parts under 256 KiB: no "base64"
        // anywhere, yet each is a document to open.
        let mut qp = String::from(
            "From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n",
        );
        for _ in 0..150 {
            qp.push_str(
                "--b\r\nContent-Type: application/vnd.ms-word.document.macroEnabled.12\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nPK=03=04=14=00\r\n",
            );
        }
        qp.push_str("--b--\r\n");
        assert!(qp.len() < 256 * 1024);
        assert!(!scans_inline(&config, &env, qp.as_bytes()));
        // An 8bit part with a file name, whatever its type claims.
        let named = b"Content-Type: text/plain; name=\"run.js\"\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\nWScript.Echo(1)\r\n";
        assert!(!scans_inline(&config, &env, named));
        // Text and HTML alternatives stay inline.
        let alt = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b--\r\n";
        assert!(scans_inline(&config, &env, alt));
    }
}
