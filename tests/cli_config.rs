//! Which config file the commands read, and what `config check` says about
//! it: `--config`, else `$MALSPAM_MILTER_CONFIG` (empty: built-in defaults),
//! else /etc/malspam-milter/malspam-milter.toml when it exists; and the
//! state store's resolved location.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_malspam-milter"))
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn config_check_names_the_file_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("m.toml");
    std::fs::write(&config, "[store]\npath = \"/srv/milter/state.sqlite3\"\n").unwrap();

    // From the environment variable, no --config.
    let text = stdout(
        bin()
            .env("MALSPAM_MILTER_CONFIG", &config)
            .args(["config", "check"]),
    );
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("# effective configuration (from {})", config.display())
    );
    assert_eq!(
        lines.next().unwrap(),
        "# state store: embedded, /srv/milter/state.sqlite3"
    );

    // Empty: the built-in defaults, with the store under XDG_STATE_HOME.
    let text = stdout(
        bin()
            .env("MALSPAM_MILTER_CONFIG", "")
            .env("XDG_STATE_HOME", dir.path())
            .args(["config", "check"]),
    );
    assert!(
        text.starts_with("# effective configuration (from built-in defaults)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "# state store: embedded, {}/malspam-milter/state.sqlite3\n",
            dir.path().display()
        )),
        "{text}"
    );

    // --config wins over the environment.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "[store]\nbackend = \"memory\"\n").unwrap();
    let text = stdout(
        bin()
            .env("MALSPAM_MILTER_CONFIG", &config)
            .args(["config", "check", "--config"])
            .arg(&other),
    );
    assert!(text.contains("# state store: memory"), "{text}");
}

#[test]
fn a_redis_password_is_not_printed_as_the_store_location() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("m.toml");
    std::fs::write(&config, "[store]\nbackend = \"redis\"\n").unwrap();
    let text = stdout(
        bin()
            .env("MALSPAM_REDIS_URL", "redis://:hunter2@10.0.0.5:6379/2")
            .args(["config", "check", "--config"])
            .arg(&config),
    );
    assert!(
        text.contains(
            "# state store: redis, redis://:***@10.0.0.5:6379/2 (from MALSPAM_REDIS_URL)"
        ),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
