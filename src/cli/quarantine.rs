//! `malspam-milter quarantine list | show ID | release ID | delete ID`:
//! review what the milter held in Postfix's hold queue, and decide.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;
use crate::quarantine::postfix::{Postfix, QuarantineError};
use crate::quarantine::release::ReleaseError;
use crate::quarantine::{clean, structure, HeldMessage};

/// A `quarantine` subcommand failed; printed after
/// `malspam-milter: quarantine: `.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineCommandError {
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A held message could not be written as JSON (`list --json`).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Asked to act without `--yes` where nobody can answer.
    #[error("{id}: refusing to {verb} without --yes: stdin is not a terminal")]
    NotATerminal { id: String, verb: &'static str },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Held messages: queue id, age, sender, recipients, subject, verdict,
    /// score and the top findings.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One JSON object per held message per line, every finding.
        #[arg(long)]
        json: bool,
    },
    /// One held message: every finding with its evidence and the message's
    /// structure (attachment tree with detected types; never content).
    Show {
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Release a held message: Postfix delivers it now (`postsuper -H` and
    /// `postqueue -i`, `postsuper -r` when it was held long enough to risk
    /// expiry, or re-injected with `X-Malspam-Released` when
    /// `[quarantine] reinject` is set).
    Release {
        id: String,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short)]
        yes: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Delete a held message for good.
    Delete {
        id: String,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short)]
        yes: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

impl QuarantineCommand {
    /// The `--config` slot, for the default config path.
    pub fn config_mut(&mut self) -> &mut Option<PathBuf> {
        match self {
            QuarantineCommand::List { config, .. }
            | QuarantineCommand::Show { config, .. }
            | QuarantineCommand::Release { config, .. }
            | QuarantineCommand::Delete { config, .. } => config,
        }
    }
}

/// Run a `quarantine` subcommand; returns the exit code.
pub fn run(command: QuarantineCommand) -> i32 {
    super::init_logging("info");
    let config_path = match &command {
        QuarantineCommand::List { config, .. }
        | QuarantineCommand::Show { config, .. }
        | QuarantineCommand::Release { config, .. }
        | QuarantineCommand::Delete { config, .. } => config.clone(),
    };
    let Some(config) = super::load_config(config_path.as_deref()) else {
        return 1;
    };
    let result = match command {
        QuarantineCommand::List { json, .. } => list(&config, json),
        QuarantineCommand::Show { id, .. } => show(&config, &id),
        QuarantineCommand::Release { id, yes, .. } => decide(&config, &id, Action::Release, yes),
        QuarantineCommand::Delete { id, yes, .. } => decide(&config, &id, Action::Delete, yes),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("malspam-milter: quarantine: {}", clean(&e.to_string()));
            1
        }
    }
}

fn now() -> u64 {
    crate::store::unix_now()
}

fn summary(
    postfix: &Postfix,
    entry: &crate::quarantine::postfix::QueueEntry,
) -> Result<HeldMessage, QuarantineError> {
    Ok(HeldMessage::new(entry, &postfix.headers(&entry.queue_id)?))
}

fn list(config: &Config, json: bool) -> Result<(), QuarantineCommandError> {
    let postfix = Postfix::new(&config.quarantine);
    let held = postfix.held()?;
    let mut out = std::io::stdout().lock();
    let now = now();
    if held.is_empty() && !json {
        let _ = writeln!(out, "the hold queue is empty");
        return Ok(());
    }
    for entry in &held {
        // A message released or deleted since the listing is skipped.
        let message = match summary(&postfix, entry) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("{}: skipped: {e}", entry.queue_id);
                continue;
            }
        };
        let text = if json {
            let mut value = serde_json::to_value(&message)?;
            value["age_secs"] = now.saturating_sub(message.arrival_time).into();
            format!(
                "{}\n",
                crate::sanitize::json_escape_controls(&value.to_string())
            )
        } else {
            message.list_text(now, config.quarantine.list_findings)
        };
        let _ = out.write_all(text.as_bytes());
    }
    if !json {
        let _ = writeln!(out, "{} held message(s)", held.len());
    }
    Ok(())
}

fn show(config: &Config, id: &str) -> Result<(), QuarantineCommandError> {
    let postfix = Postfix::new(&config.quarantine);
    let entry = postfix.held_entry(id)?;
    let message = summary(&postfix, &entry)?;
    let body = postfix.message(id)?;
    print!(
        "{}Structure:\n{}",
        message.show_text(now()),
        structure(&body, &config.limits)
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Action {
    Release,
    Delete,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Release => "release",
            Action::Delete => "delete",
        }
    }
}

/// Release or delete after confirmation (or --yes), then log it.
fn decide(
    config: &Config,
    id: &str,
    action: Action,
    yes: bool,
) -> Result<(), QuarantineCommandError> {
    let postfix = Postfix::new(&config.quarantine);
    let entry = postfix.held_entry(id)?;
    let message = summary(&postfix, &entry)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(QuarantineCommandError::NotATerminal {
                id: id.to_string(),
                verb: action.verb(),
            });
        }
        eprint!(
            "{}",
            message.list_text(now(), config.quarantine.list_findings)
        );
        let question = match action {
            Action::Release => format!(
                "Release {id} to {} recipient(s)? [y/N] ",
                message.recipients.len()
            ),
            Action::Delete => format!("Delete {id} for good? [y/N] "),
        };
        if !confirm(&question) {
            eprintln!("{id}: nothing done");
            return Ok(());
        }
    }
    let who = super::invoking_user();
    let released = match action {
        Action::Release => Some(crate::quarantine::release::release(
            &postfix,
            config,
            &entry,
            &message,
            &who,
            now(),
        )?),
        Action::Delete => {
            postfix.delete(id)?;
            None
        }
    };
    let verdict = message
        .verdict
        .as_ref()
        .map(|v| format!("{} {}", v.verdict, v.score))
        .unwrap_or_else(|| "none".into());
    tracing::info!(
        "{id}: quarantine {}d by {who}; sender {}, {} recipient(s), verdict {}, subject {:?}",
        action.verb(),
        clean(&message.sender),
        message.recipients.len(),
        clean(&verdict),
        clean(&message.subject)
    );
    match released {
        Some(how) => println!("{id}: {}", how.describe()),
        None => println!("{id}: deleted"),
    }
    Ok(())
}

fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}
