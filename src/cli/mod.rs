//! The command line: argument parsing and the offline commands.

pub mod check;
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

/// `config check`: every error at once, or the effective config.
pub fn config_check(path: Option<&std::path::Path>) -> i32 {
    match crate::Config::load(path) {
        Ok(config) => {
            let from = path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into());
            println!("# effective configuration (from {from})");
            print!("{}", config.to_toml());
            0
        }
        Err(errors) => {
            eprint!("{errors}");
            1
        }
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

/// Log to stderr (the journal under systemd, the operator's terminal for the
/// admin commands). `RUST_LOG` overrides `level`.
pub(crate) fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|e| {
            eprintln!("malspam-milter: log level {level:?}: {e}; using \"info\"");
            EnvFilter::new("info")
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Log lines quote mail: one sanitiser keeps each record one safe line.
        .with_writer(|| crate::sanitize::LogWriter(std::io::stderr()))
        .with_target(false)
        .with_ansi(false)
        .try_init();
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
