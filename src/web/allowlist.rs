//! "Release and allowlist this sender": add the envelope sender to
//! `[allowlist] senders` in the milter's config file, keeping every comment
//! and key as it was (toml_edit), written safely, then ask the milter to
//! reload.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// One writer at a time within this process.
static WRITING: Mutex<()> = Mutex::new(());

/// Add `sender` to `[allowlist] senders` in `path`. Ok(false) when it was
/// there already. The new text must load as a valid config before it
/// replaces the file; a file changed by someone else meanwhile is an error.
pub fn add_sender(path: &Path, sender: &str) -> Result<bool, String> {
    let sender = sender.trim().to_ascii_lowercase();
    if sender.is_empty()
        || !sender.contains('@')
        || sender.eq_ignore_ascii_case("MAILER-DAEMON")
        || sender
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '"')
    {
        return Err(format!("{sender:?} is not a sender address to allowlist"));
    }
    let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let before = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = before
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let table = doc
        .entry("allowlist")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| format!("{}: allowlist is not a table", path.display()))?;
    let senders = table
        .entry("senders")
        .or_insert_with(|| toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(|| format!("{}: allowlist.senders is not an array", path.display()))?;
    if senders
        .iter()
        .any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&sender)))
    {
        return Ok(false);
    }
    senders.push(sender.as_str());
    let after = doc.to_string();
    let file = path.display().to_string();
    crate::Config::parse(&after, &file)
        .map_err(|e| format!("the new config would not load: {e}"))?;
    let now = std::fs::read_to_string(path).map_err(|e| format!("cannot read {file}: {e}"))?;
    if now != before {
        return Err(format!(
            "{file} changed while it was being edited; try again"
        ));
    }
    super::auth::write_atomically(path, after.as_bytes(), 0o640)?;
    Ok(true)
}

/// Run `[web] reload_command` (no shell), e.g.
/// `["/usr/bin/systemctl", "reload", "malspam-milter"]`.
pub fn reload(command: &[String]) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else {
        return Err("no [web] reload_command: reload the milter by hand".into());
    };
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
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
        assert!(add_sender(&path, "x@y.example").is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[allowlist]\nsenders = \"oops\"\n"
        );
    }
}
