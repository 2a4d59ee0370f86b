//! `malspam-milter run`: arguments, logging, signals and the socket around
//! [`crate::milter::run`].

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::error;

use crate::metrics;
use crate::milter::{self, Daemon, MilterListener};

/// Run the daemon until SIGTERM/SIGINT. Returns the exit code.
pub fn run(config_path: Option<PathBuf>) -> i32 {
    // A bad config refuses to start and says what and where.
    let daemon = match Daemon::load(config_path) {
        Ok(d) => d,
        Err(errors) => {
            eprint!("malspam-milter: {errors}");
            return 1;
        }
    };
    let milter_config = daemon.engine().config().milter.clone();
    super::init_logging(&milter_config.log_level);
    if crate::security::running_as_root() {
        tracing::warn!(
            "running as root: mail content is parsed with full privileges; \
             run as an unprivileged user (the systemd unit's User=)"
        );
    }
    if let Some(warning) = crate::security::config_secret_warning(daemon.engine().config()) {
        tracing::warn!("{warning}");
    }
    open_files_limit(milter_config.max_connections);

    // One event-loop thread by default: with several, every message wakes
    // and hands work between threads, which costs more CPU than the
    // protocol itself. Heavy scans run on the blocking pool either way.
    let mut builder = match milter_config.io_threads {
        0 | 1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("malspam-milter: cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let addr = match milter_config.listen_addr() {
            Ok(a) => a,
            Err(e) => {
                error!("milter.listen: {e}");
                return 1;
            }
        };
        let listener = match MilterListener::bind(&addr, &milter_config.socket_mode).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {}: {e}", milter_config.listen);
                return 1;
            }
        };
        // The Prometheus endpoint, when `[metrics] listen` is set. It lives
        // as long as the runtime: it ends when the milter has stopped.
        let engine = daemon.engine();
        match engine.config().metrics.listen_addr() {
            Ok(None) => {}
            Ok(Some(addr)) => match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::info!("metrics: serving http://{addr}/metrics");
                    let store = Some(engine.store().clone());
                    let config = engine.config().metrics.clone();
                    tokio::spawn(async move {
                        metrics::serve_metrics_on(listener, store, &config, std::future::pending())
                            .await
                    });
                }
                Err(e) => {
                    error!("cannot listen on metrics.listen = {addr}: {e}");
                    return 1;
                }
            },
            Err(e) => {
                error!("metrics.listen: {e}");
                return 1;
            }
        }
        drop(engine);
        let (reload_tx, reload_rx) = mpsc::channel(1);
        let (mut hup, mut term, mut int) = match (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(h), Ok(t), Ok(i)) => (h, t, i),
            _ => {
                error!("cannot install signal handlers");
                return 1;
            }
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // A reload already queued covers this one too.
                let _ = reload_tx.try_send(());
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        match milter::run(listener, Arc::new(daemon), reload_rx, shutdown).await {
            Ok(()) => 0,
            Err(e) => {
                error!("milter stopped on error: {e}");
                1
            }
        }
    })
}

/// Descriptors the daemon needs beside one per MTA connection: listeners,
/// the runtime, the store, the metrics endpoint, notify commands.
const SPARE_DESCRIPTORS: u64 = 128;

/// Raise the soft limit of open files to the hard one (the default soft
/// limit, 1,024, is about `milter.max_connections`), and warn when it is
/// still too low: past it, connections wait until others end.
fn open_files_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let below_hard = match (limit.current, limit.maximum) {
        (Some(current), Some(hard)) => current < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = raised,
            Err(e) => tracing::debug!("cannot raise the open files limit: {e}"),
        }
    }
    let needed = max_connections as u64 + SPARE_DESCRIPTORS;
    if let Some(current) = limit.current.filter(|&n| n < needed) {
        tracing::warn!(
            "open files limit {current} is below milter.max_connections ({max_connections}) + {SPARE_DESCRIPTORS}: \
             raise it (systemd: LimitNOFILE=) or lower max_connections; meanwhile accepting waits for free descriptors"
        );
    }
}
