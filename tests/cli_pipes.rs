//! Every command exits quietly when its reader goes away, as Unix tools do:
//! `malspam-milter COMMAND | head -1` exits 0 with no panic text (Rust
//! ignores SIGPIPE, so a print to a closed pipe used to panic with "failed
//! printing to stdout: Broken pipe").

use std::process::Command;

const MILTER: &str = env!("CARGO_BIN_EXE_malspam-milter");

/// `sh -c 'set -o pipefail... '` is not POSIX; the pipeline's status is
/// head's, so the milter's own status and stderr are checked separately.
fn piped_to_head(args: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("stderr");
    let status = dir.path().join("status");
    let script = format!(
        "cd {root} && {{ MALSPAM_MILTER_CONFIG= XDG_STATE_HOME={state} {MILTER} {args} 2>{err}; echo $? >{status}; }} | head -1",
        root = env!("CARGO_MANIFEST_DIR"),
        state = dir.path().display(),
        err = err.display(),
        status = status.display(),
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "the pipeline fails: {out:?}");
    let code: i32 = std::fs::read_to_string(&status)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        std::fs::read_to_string(&err).unwrap(),
    )
}

#[test]
fn commands_piped_into_head_end_quietly() {
    // Enough output to overrun a pipe buffer once head has gone: every
    // command is made to print well over 64 KiB.
    let many_samples = "samples/ ".repeat(300);
    for args in [
        "rules",
        "config check",
        "--help",
        &format!("check {many_samples}"),
        &format!("check --json {many_samples}"),
        &format!("structure {many_samples}"),
    ] {
        let (code, first, stderr) = piped_to_head(args);
        assert!(!first.is_empty(), "{args}: head got a line");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args}: {stderr}"
        );
        // Ended by SIGPIPE (the shell reports 128 + 13) or finished: never
        // a panic's 101.
        assert!(code == 0 || code == 141, "{args}: exit status {code}");
    }
}
