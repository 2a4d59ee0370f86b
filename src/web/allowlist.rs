//! "Release and allowlist this sender": add the envelope sender to
//! `[allowlist] senders` in the milter's config file, keeping every comment
//! and key as it was (toml_edit), written safely, then ask the milter to
//! reload.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::auth::WriteError;

/// The sender could not be added to `[allowlist] senders`; the config file
/// is as it was.
#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    /// Empty, the null sender, or text that is no address.
    #[error("{0:?} is not a sender address to allowlist")]
    NotASender(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{}: {source}", path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml_edit::TomlError,
    },
    #[error("{}: allowlist is not a table", path.display())]
    NotATable { path: PathBuf },
    #[error("{}: allowlist.senders is not an array", path.display())]
    NotAnArray { path: PathBuf },
    /// The edited file would not load (the file was already invalid).
    #[error("the new config would not load: {0}")]
    WouldNotLoad(#[source] crate::config::ConfigErrors),
    /// Someone else wrote the file while we edited it.
    #[error("{file} changed while it was being edited; try again")]
    ChangedMeanwhile { file: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// `[web] reload_command` did not make the milter reload.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no [web] reload_command: reload the milter by hand")]
    NoCommand,
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed; `stderr` is its words.
    #[error("{program}: {status} {stderr}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// One writer at a time within this process.
static WRITING: Mutex<()> = Mutex::new(());

/// Add `sender` to `[allowlist] senders` in `path`. Ok(false) when it was
/// there already. The new text must load as a valid config before it
/// replaces the file; a file changed by someone else meanwhile is an error.
pub fn add_sender(path: &Path, sender: &str) -> Result<bool, AllowlistError> {
    let sender = sender.trim().to_ascii_lowercase();
    if sender.is_empty()
        || !sender.contains('@')
        || sender.eq_ignore_ascii_case("MAILER-DAEMON")
        || sender
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '"')
    {
        return Err(AllowlistError::NotASender(sender));
    }
    let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let read = || {
        std::fs::read_to_string(path).map_err(|source| AllowlistError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let before = read()?;
    let mut doc: toml_edit::DocumentMut =
        before.parse().map_err(|source| AllowlistError::Toml {
            path: path.to_path_buf(),
            source,
        })?;
    let table = doc
        .entry("allowlist")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| AllowlistError::NotATable {
            path: path.to_path_buf(),
        })?;
    let senders = table
        .entry("senders")
        .or_insert_with(|| toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(|| AllowlistError::NotAnArray {
            path: path.to_path_buf(),
        })?;
    if senders
        .iter()
        .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&sender)))
    {
        return Ok(false);
    }
    senders.push(sender.as_str());
    let after = doc.to_string();
    let file = path.display().to_string();
    crate::Config::parse(&after, &file).map_err(AllowlistError::WouldNotLoad)?;
    if read()? != before {
        return Err(AllowlistError::ChangedMeanwhile { file });
    }
    super::auth::write_atomically(path, after.as_bytes(), 0o640)?;
    Ok(true)
}

/// Run `[web] reload_command` (no shell), e.g.
/// `["/usr/bin/systemctl", "reload", "malspam-milter"]`.
pub fn reload(command: &[String]) -> Result<(), ReloadError> {
    let Some((program, args)) = command.split_first() else {
        return Err(ReloadError::NoCommand);
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| ReloadError::Spawn {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ReloadError::Failed {
            program: program.clone(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_keeping_comments_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        let text = "# my config\n[policy]\ntag = 5.0 # keep this\n\n[allowlist]\n# who\nsenders = [\"a@b.example\"]\n";
        std::fs::write(&path, text).unwrap();
        assert!(add_sender(&path, "New@Partner.example").unwrap());
        let got = std::fs::read_to_string(&path).unwrap();
        assert!(
            got.contains("# my config\n[policy]\ntag = 5.0 # keep this\n"),
            "{got}"
        );
        assert!(got.contains("# who\n"), "{got}");
        let config = crate::Config::parse(&got, "m.toml").unwrap();
        assert_eq!(
            config.allowlist.senders,
            ["a@b.example", "new@partner.example"]
        );
        assert!(
            !add_sender(&path, "new@partner.example").unwrap(),
            "already there"
        );

        // No [allowlist] yet: made.
        std::fs::write(&path, "[policy]\ntag = 5.0\n").unwrap();
        assert!(add_sender(&path, "x@y.example").unwrap());
        let config = crate::Config::parse(&std::fs::read_to_string(&path).unwrap(), "m").unwrap();
        assert_eq!(config.allowlist.senders, ["x@y.example"]);

        for bad in ["", "MAILER-DAEMON", "a b@c", "x\"@y"] {
            assert!(add_sender(&path, bad).is_err(), "{bad:?}");
        }
        // A broken config is never made worse: refused, file unchanged.
        std::fs::write(&path, "[allowlist]\nsenders = \"oops\"\n").unwrap();
        let e = add_sender(&path, "x@y.example").unwrap_err();
        assert!(matches!(e, AllowlistError::NotAnArray { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[allowlist]\nsenders = \"oops\"\n"
        );
        // A config that is TOML but not valid: the config's errors kept.
        let invalid = "[policy]\ntag = -1.0\n";
        std::fs::write(&path, invalid).unwrap();
        let e = add_sender(&path, "x@y.example").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the new config would not load: 1 error in configuration:"),
            "{e}"
        );
        let errors = std::error::Error::source(&e).unwrap();
        assert!(errors.is::<crate::config::ConfigErrors>(), "{errors:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), invalid);
    }
}
