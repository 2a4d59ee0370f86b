//! `malspam-milter check` as a user runs it: files, directories, mbox; JSON
//! lines per the DESIGN contract; exit codes.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_malspam-milter"))
}

const CLEAN: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: lunch\r\nMessage-ID: <1@example.com>\r\n\r\nSee you at noon.\r\n";

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

#[test]
fn json_lines_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "clean.eml", CLEAN);
    write(
        dir.path(),
        "box.mbox",
        &format!("From alice@example.com Mon Jan  1 00:00:00 2024\n{}\nFrom x@y Mon Jan  1 00:00:00 2024\n{}", CLEAN.replace("\r\n", "\n"), CLEAN.replace("\r\n", "\n")),
    );
    let out = bin()
        .arg("check")
        .arg("--json")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let files: Vec<&str> = lines.iter().map(|l| l["file"].as_str().unwrap()).collect();
    assert!(
        files[0].ends_with("box.mbox:1")
            && files[1].ends_with("box.mbox:2")
            && files[2].ends_with("clean.eml"),
        "{files:?}"
    );
    for l in &lines {
        assert_eq!(l["verdict"], "accept");
        assert_eq!(l["score"], 0.0);
        assert!(l["findings"].as_array().unwrap().is_empty());
    }
}

#[test]
fn unreadable_input_is_named_and_the_rest_still_scanned() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "clean.eml", CLEAN);
    let missing = dir.path().join("missing.eml");
    let out = bin()
        .arg("check")
        .arg(&missing)
        .arg(dir.path().join("clean.eml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.eml"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("clean.eml: accept score 0"), "{stdout}");
}

#[test]
fn findings_with_evidence_and_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    // An empty file is not a parsable message: scan.error, scored by this config.
    write(dir.path(), "empty.eml", "");
    write(
        dir.path(),
        "cfg.toml",
        "[policy.scores]\n\"scan.error\" = 6.0\n",
    );
    let cfg = dir.path().join("cfg.toml");
    let out = bin()
        .args(["check", "--json", "--config"])
        .arg(&cfg)
        .arg(dir.path().join("empty.eml"))
        .output()
        .unwrap();
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["verdict"], "tag");
    assert_eq!(line["score"], 6.0);
    let f = &line["findings"][0];
    assert_eq!(
        (
            f["detector"].as_str(),
            f["rule"].as_str(),
            f["score"].as_f64()
        ),
        (Some("scan"), Some("error"), Some(6.0))
    );
    assert!(f["evidence"]
        .as_str()
        .unwrap()
        .contains("not a parsable MIME message"));
    assert_eq!(out.status.code(), Some(0));

    let out = bin()
        .args(["check", "--fail-on", "tag", "--config"])
        .arg(&cfg)
        .arg(dir.path().join("empty.eml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tag score 6") && stdout.contains("scan.error (+6): not a parsable"),
        "{stdout}"
    );
}

#[test]
fn config_check_lists_every_error_with_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[milter]\nlisten = \"tcp:1\"\n\n[policy.scores]\n\"office_macro.nosuch\" = 1.0\n",
    )
    .unwrap();
    let out = bin()
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 errors"), "{stderr}");
    assert!(stderr.contains("bad.toml:2: milter.listen:"), "{stderr}");
    assert!(
        stderr.contains("bad.toml:5: policy.scores.\"office_macro.nosuch\": unknown rule"),
        "{stderr}"
    );

    let out = bin().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("listen = \"inet:127.0.0.1:7357\""),
        "{stdout}"
    );
}

#[test]
fn rules_lists_the_whole_catalogue_with_default_scores() {
    let out = bin().arg("rules").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        listed,
        malspam_milter::detectors::all_rule_names(),
        "every rule, in catalogue order"
    );
    let suspicious = stdout
        .lines()
        .find(|l| l.starts_with("office_macro.suspicious "))
        .unwrap();
    assert_eq!(
        suspicious.split_whitespace().nth(1),
        Some("6"),
        "{suspicious}"
    );
}

#[test]
fn structure_shows_the_attachment_tree_without_content() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/emotet-hijacked-reply.eml"
    );
    let out = bin().arg("structure").arg(sample).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("Subject: RE: 請求書の送付について"),
        "{stdout}"
    );
    assert!(stdout.contains("  請求書_1121.zip [zip, "), "{stdout}");
    assert!(
        stdout.contains(
            "encrypted 請求書_1121.doc (ZipCrypto, decrypted), password 8**** from body line 7"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("    請求書_1121.zip/請求書_1121.doc [ole2, "),
        "the decrypted entry: {stdout}"
    );
    assert!(
        !stdout.contains("8Xk2pq"),
        "no password, no body text: {stdout}"
    );
}

#[test]
fn a_directory_walk_counts_every_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "clean.eml", CLEAN);
    // Named .eml but not a message: an error, not a silent skip.
    std::fs::write(dir.path().join("broken.eml"), b"\x00\x01\x02 not mail\n").unwrap();
    write(dir.path(), "README.txt", "Notes about these messages.\n");
    let out = bin()
        .env("MALSPAM_MILTER_CONFIG", "")
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an unreadable file is exit 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.eml: not a mail message"),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("1 message(s) scanned, 1 unreadable, 1 file skipped (not mail: ")
            && last.ends_with("README.txt)"),
        "{last}"
    );
}
