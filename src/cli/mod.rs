//! The command line: argument parsing and the offline commands.

pub mod check;
pub mod docs;
pub mod learn;
pub mod outbound;
pub mod quarantine;
pub mod run;
pub mod web;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "malspam-milter",
    version,
    about = "A milter that stops Emotet-style malspam"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the milter daemon (Postfix/Sendmail). SIGHUP reloads the config,
    /// SIGTERM finishes messages in flight and exits.
    Run {
        /// Config file (default: built-in defaults, inet:127.0.0.1:7357).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Scan .eml files, directories, mbox files and Maildirs offline. Reads
    /// the configured state store but never writes to it (use `learn`).
    Check {
        /// Config file (default: built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON object per message per line.
        #[arg(long)]
        json: bool,
        /// Exit 1 when any message gets this verdict or a stronger one.
        #[arg(long, value_enum)]
        fail_on: Option<FailOn>,
        /// Files, directories, mbox files or Maildirs.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Feed existing mail (a Sent folder, an archive: .eml, mbox, Maildir)
    /// into the state store, so thread memory and known correspondents work
    /// from day one. Running it twice changes nothing.
    Learn {
        /// Config file (default: built-in defaults); its [store] is used.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Files, directories, mbox files or Maildirs.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// List every rule with its default score and description.
    Rules,
    /// Outbound accounts: counters and holds (`status`), end a hold (`release`).
    Outbound {
        #[command(subcommand)]
        command: outbound::OutboundCommand,
    },
    /// Review mail held in Postfix's hold queue: `list`, `show ID`,
    /// `release ID`, `delete ID`.
    Quarantine {
        #[command(subcommand)]
        command: quarantine::QuarantineCommand,
    },
    /// The quarantine reviewers' web page (`web --config FILE`), and its
    /// users (`web user add NAME --role reviewer --domains '*'`, `web user del NAME`).
    Web {
        /// Config file; its [web] and [quarantine] sections are used.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<web::WebCommand>,
    },
    /// Print the structure of messages: text parts, attachment tree with
    /// detected types (never attachment content).
    Structure {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the man pages and shell completions into DIR (the package
    /// build runs this; not for everyday use).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory: man/ and completions/ are created in it.
        dir: PathBuf,
    },
}

/// The config file commands read when `--config` is not given and this file
/// exists (the packaged config).
pub const DEFAULT_CONFIG: &str = "/etc/malspam-milter/malspam-milter.toml";

/// The config file a command uses: `--config` if given; else
/// `$MALSPAM_MILTER_CONFIG` (empty: built-in defaults); else
/// [`DEFAULT_CONFIG`] when it exists; else None (built-in defaults).
pub fn config_path(given: Option<PathBuf>) -> Option<PathBuf> {
    if given.is_some() {
        return given;
    }
    if let Some(env) = std::env::var_os("MALSPAM_MILTER_CONFIG") {
        return (!env.is_empty()).then(|| PathBuf::from(env));
    }
    let default = std::path::Path::new(DEFAULT_CONFIG);
    default.exists().then(|| default.to_path_buf())
}

impl Command {
    /// Fill in the default config file of every command that takes one.
    pub fn resolve_config(&mut self) {
        let slot = match self {
            Command::Run { config }
            | Command::Check { config, .. }
            | Command::Learn { config, .. }
            | Command::Structure { config, .. }
            | Command::Web { config, .. }
            | Command::Config {
                command: ConfigCommand::Check { config },
            } => config,
            Command::Outbound { command } => command.config_mut(),
            Command::Quarantine { command } => command.config_mut(),
            Command::Rules | Command::GenerateDocs { .. } => return,
        };
        *slot = config_path(slot.take());
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and print the effective configuration.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FailOn {
    Tag,
    Quarantine,
    Reject,
}

impl FailOn {
    pub fn verdict(self) -> crate::Verdict {
        match self {
            FailOn::Tag => crate::Verdict::Tag,
            FailOn::Quarantine => crate::Verdict::Quarantine,
            FailOn::Reject => crate::Verdict::Reject,
        }
    }
}

/// The config at `path` (built-in defaults without one); on errors, prints
/// every one of them to stderr and gives None (the command exits 1).
pub(crate) fn load_config(path: Option<&std::path::Path>) -> Option<crate::Config> {
    match crate::Config::load(path) {
        Ok(config) => Some(config),
        Err(errors) => {
            eprint!("{errors}");
            None
        }
    }
}

/// `config check`: every error at once, or the effective config.
pub fn config_check(path: Option<&std::path::Path>) -> i32 {
    match crate::Config::load(path) {
        Ok(config) => {
            let from = path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into());
            println!("# effective configuration (from {from})");
            println!("# state store: {}", store_location(&config.store));
            print!("{}", config.to_toml());
            0
        }
        Err(errors) => {
            eprint!("{errors}");
            1
        }
    }
}

/// Where the state store is, as `config check` prints it: the resolved
/// embedded path (also when `store.path` is unset), or the Redis URL with
/// any password hidden.
pub fn store_location(store: &crate::store::StoreConfig) -> String {
    use crate::store::StoreBackend;
    match store.backend {
        StoreBackend::Embedded => match store
            .path
            .clone()
            .or_else(crate::store::default_embedded_path)
        {
            Some(path) => format!("embedded, {}", path.display()),
            None => "embedded, no path (store.path unset and no HOME)".into(),
        },
        StoreBackend::Redis => {
            let (url, from) = match std::env::var("MALSPAM_REDIS_URL") {
                Ok(url) if !url.is_empty() => (url, " (from MALSPAM_REDIS_URL)"),
                _ => (store.url.clone(), ""),
            };
            let shown = if crate::security::url_has_password(&url) {
                hide_password(&url)
            } else {
                url
            };
            format!("redis, {shown}{from}")
        }
        StoreBackend::Memory => "memory (forgotten when the process ends)".into(),
    }
}

/// `redis://user:secret@host/0` → `redis://user:***@host/0`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// `structure`: what the message view sees in each message.
pub fn structure(config: &crate::Config, paths: &[PathBuf]) -> i32 {
    let mut code = 0;
    crate::input::walk(paths, |item| match item {
        Ok(m) => {
            let deadline = std::time::Instant::now()
                + std::time::Duration::from_secs(config.limits.scan_timeout_secs);
            let view = crate::view::MessageView::build(
                crate::Envelope::default(),
                &m.bytes,
                &config.limits,
                deadline,
            );
            println!(
                "== {}\n{}",
                crate::sanitize::escape_controls(&m.label),
                crate::sanitize::escape_lines(&view.describe())
            );
        }
        Err(e) => {
            eprintln!(
                "malspam-milter: {}: {}",
                crate::sanitize::escape_controls(&e.label),
                e.error
            );
            code = 2;
        }
    });
    code
}

/// `rules`: the catalogue, with default scores.
pub fn list_rules() -> i32 {
    for (detector, rules) in crate::detectors::catalog() {
        for rule in rules {
            let name = format!("{detector}.{}", rule.name);
            println!("{name:<42} {:>5}  {}", rule.default_score, rule.description);
        }
    }
    0
}

/// Log to stderr as text (the admin commands: the operator's terminal).
/// `RUST_LOG` overrides `level`.
pub(crate) fn init_logging(level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level))
        // Log lines quote mail: one sanitiser keeps each record one safe line.
        .with_writer(|| crate::sanitize::LogWriter(std::io::stderr()))
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// The daemon's log: `[log] format = "json"`: one JSON object per line on
/// stderr; else, under systemd with stderr connected to the journal
/// (`JOURNAL_STREAM`), native journal entries whose fields (QUEUE_ID,
/// VERDICT, SCORE, RULES) can be filtered with `journalctl QUEUE_ID=...`;
/// else text lines on stderr.
pub(crate) fn init_daemon_logging(level: &str, log: &crate::config::LogConfig) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(level);
    if log.format == crate::config::LogFormat::Json {
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
        return;
    }
    if stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()) {
        match tracing_journald::layer() {
            Ok(journal) => {
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(
                        journal
                            .with_syslog_identifier("malspam-milter".into())
                            // QUEUE_ID, not tracing-journald's default F_QUEUE_ID.
                            .with_field_prefix(None),
                    )
                    .try_init();
                return;
            }
            Err(e) => {
                eprintln!("malspam-milter: cannot log to the journal ({e}); logging to stderr")
            }
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(text_fields())
        // Log lines quote mail: one sanitiser keeps each record one safe line.
        .with_writer(|| crate::sanitize::LogWriter(std::io::stderr()))
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// The text log writes the message alone: the per-message fields repeat
/// what the message says (`ID: verdict=... findings=...`).
fn text_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| match field.name() {
        "message" => write!(w, "{value:?}"),
        "queue_id" | "verdict" | "score" | "rules" => Ok(()),
        name => write!(w, " {name}={value:?}"),
    })
}

fn log_filter(level: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|e| {
            eprintln!("malspam-milter: log level {level:?}: {e}; using \"info\"");
            EnvFilter::new("info")
        })
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is the
/// journal; a child that inherited the variable but writes elsewhere (a
/// pipe, a file) must not switch, so the device and inode must be stderr's.
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Who acted: the login behind sudo if any, else the account we run as.
pub(crate) fn invoking_user() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok().map(|m| m.uid());
    let user = std::env::var("SUDO_USER")
        .ok()
        .or_else(|| uid.and_then(account_name))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    match uid {
        Some(uid) => format!("user {} (uid {uid})", crate::quarantine::clean(&user)),
        None => format!("user {}", crate::quarantine::clean(&user)),
    }
}

/// The account name of a uid, from /etc/passwd.
fn account_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_used_only_when_stderr_is_the_stream_systemd_named() {
        use std::os::unix::fs::MetadataExt;
        let stderr = std::fs::metadata("/proc/self/fd/2").unwrap();
        let own = format!("{}:{}", stderr.dev(), stderr.ino());
        assert!(stderr_is_journal(Some(&own)));
        let other = format!("{}:{}", stderr.dev(), stderr.ino() + 1);
        assert!(
            !stderr_is_journal(Some(&other)),
            "inherited by a child writing elsewhere"
        );
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(None));
    }

    #[test]
    fn redis_passwords_are_hidden_in_the_store_location() {
        assert_eq!(
            hide_password("redis://user:s3cret@redis.example:6379/0"),
            "redis://user:***@redis.example:6379/0"
        );
        assert_eq!(
            hide_password("redis://:s3cret@127.0.0.1/1"),
            "redis://:***@127.0.0.1/1"
        );
        let store = crate::store::StoreConfig {
            path: Some("/var/lib/malspam-milter/state.sqlite3".into()),
            ..Default::default()
        };
        assert_eq!(
            store_location(&store),
            "embedded, /var/lib/malspam-milter/state.sqlite3"
        );
    }
}
