//! `malspam-milter generate-docs DIR` (hidden): the man pages and shell
//! completions the Debian package installs, generated from the clap
//! definitions and from the documented sample config, so they never drift
//! from the code.
//!
//! - `DIR/man/malspam-milter.8` and one page per subcommand
//!   (`malspam-milter-check.8`, `malspam-milter-config-check.8`, ...);
//! - `DIR/man/malspam-milter.toml.5` from `config/malspam-milter.toml`;
//! - `DIR/completions/malspam-milter.bash`, `_malspam-milter` (zsh),
//!   `malspam-milter.fish`;
//! - `DIR/malspam-milter.toml`: the packaged config, the sample with the
//!   socket in Postfix's queue directory and the store under /var/lib.

use std::path::Path;

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

use super::Cli;

/// The documented sample config, the source of `malspam-milter.toml(5)`.
pub const SAMPLE_CONFIG: &str = include_str!("../../config/malspam-milter.toml");

/// Write every page and completion under `dir`; returns the exit code.
pub fn generate(dir: &Path) -> i32 {
    match write_all(dir) {
        Ok(n) => {
            println!("wrote {n} files under {}", dir.display());
            0
        }
        Err(e) => {
            eprintln!("malspam-milter: generate-docs: {e}");
            1
        }
    }
}

fn write_all(dir: &Path) -> std::io::Result<usize> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = man_pages(&cmd, &man)?;
    let packaged = packaged_config(SAMPLE_CONFIG)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    std::fs::write(dir.join("malspam-milter.toml"), packaged)?;
    written += 1;
    std::fs::write(
        man.join("malspam-milter.toml.5"),
        config_page(SAMPLE_CONFIG),
    )?;
    written += 1;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let mut cmd = Cli::command();
        clap_complete::generate_to(shell, &mut cmd, "malspam-milter", &completions)?;
        written += 1;
    }
    Ok(written)
}

/// Where the packaged daemon listens: in Postfix's queue directory, so that
/// a chrooted smtpd and cleanup (the Debian default) reach it as
/// `unix:malspam-milter/milter.sock`, and an unchrooted Postfix too.
pub const PACKAGED_LISTEN: &str = "unix:/var/spool/postfix/malspam-milter/milter.sock";
/// The packaged embedded store.
pub const PACKAGED_STORE: &str = "/var/lib/malspam-milter/state.sqlite3";

/// The sample config lacks a line [`packaged_config`] changes.
#[derive(Debug, thiserror::Error)]
#[error("the sample config lacks `{listen}` or `{path}`: cannot make the packaged config")]
pub struct PackagedConfigError {
    /// The lines looked for.
    pub listen: &'static str,
    pub path: String,
}

/// The sample config with the packaged socket and store: the same comments
/// and defaults, two lines changed. An error if the sample no longer has
/// the lines to change (a test keeps them).
pub fn packaged_config(sample: &str) -> Result<String, PackagedConfigError> {
    let listen = "listen = \"inet:127.0.0.1:7357\"";
    let path = format!("# path = \"{PACKAGED_STORE}\"");
    let mut out = String::with_capacity(sample.len() + 200);
    let (mut saw_listen, mut saw_path) = (false, false);
    for line in sample.lines() {
        if line == listen && !saw_listen {
            saw_listen = true;
            out.push_str(&format!("listen = \"{PACKAGED_LISTEN}\"\n"));
        } else if line == path && !saw_path {
            saw_path = true;
            out.push_str(&format!("path = \"{PACKAGED_STORE}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !(saw_listen && saw_path) {
        return Err(PackagedConfigError { listen, path });
    }
    Ok(out)
}

/// Section 8 (system administration) pages for the command and each
/// visible subcommand, recursively.
fn man_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        n += man_pages(sub, dir)?;
    }
    let page = Man::new(cmd.clone())
        .section("8")
        .manual("System Manager's Manual")
        .source(format!("malspam-milter {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    page.render(&mut out)?;
    if cmd.get_name() == "malspam-milter" {
        out.extend_from_slice(see_also_main().as_bytes());
    }
    std::fs::write(dir.join(page.get_filename()), out)?;
    Ok(n + 1)
}

fn see_also_main() -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"])
        .control("TP", [] as [&str; 0])
        .text([bold(super::DEFAULT_CONFIG)])
        .text([roman(
            "The configuration every command reads when --config is not given \
             (see malspam-milter.toml(5)); MALSPAM_MILTER_CONFIG names another, \
             an empty value means the built-in defaults.",
        )])
        .control("TP", [] as [&str; 0])
        .text([bold("/var/lib/malspam-milter/state.sqlite3")])
        .text([roman(
            "The packaged state store (thread memory, correspondents, outbound counters).",
        )])
        .control("SH", ["SEE ALSO"])
        .text([
            bold("malspam-milter.toml"),
            roman("(5), "),
            bold("postconf"),
            roman("(5), "),
            bold("sendmail"),
            roman("(8)"),
        ]);
    roff.to_roff()
}

/// `malspam-milter.toml(5)` from the sample config: each `[section]` a
/// subsection, each key with its default and the comment above it; the
/// comment blocks between keys become paragraphs.
pub fn config_page(sample: &str) -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "MALSPAM-MILTER.TOML",
            "5",
            "",
            &format!("malspam-milter {}", env!("CARGO_PKG_VERSION")),
            "File Formats Manual",
        ],
    )
    .control("SH", ["NAME"])
    .text([roman(
        "malspam-milter.toml - configuration of the malspam-milter mail filter",
    )])
    .control("SH", ["SYNOPSIS"])
    .text([bold(super::DEFAULT_CONFIG)])
    .control("SH", ["DESCRIPTION"])
    .text([roman(
        "malspam-milter reads one TOML file. Every key is optional; what is shown \
         here is its built-in default, taken from the documented sample config \
         the package installs. ",
    )])
    .text([
        bold("malspam-milter config check"),
        roman(" validates a file and prints the effective configuration and the state store's location; every error names the file, line and key. SIGHUP ("),
        bold("systemctl reload malspam-milter"),
        roman(") re-reads it."),
    ])
    .control("SH", ["SECTIONS AND KEYS"]);
    let mut comment: Vec<String> = Vec::new();
    let flush = |roff: &mut Roff, comment: &mut Vec<String>| {
        if !comment.is_empty() {
            roff.control("PP", [] as [&str; 0]);
            roff.text([roman(comment.join(" "))]);
            comment.clear();
        }
    };
    for line in sample.lines() {
        let trimmed = line.trim();
        if let Some(text) = trimmed.strip_prefix('#') {
            let text = text.trim();
            // Rules of dashes only frame comment blocks.
            if text.chars().all(|c| c == '-') {
                continue;
            }
            comment.push(text.to_string());
        } else if trimmed.starts_with('[') {
            flush(&mut roff, &mut comment);
            roff.control("SS", [trimmed]);
        } else if let Some((key, value)) = trimmed.split_once('=') {
            roff.control("TP", [] as [&str; 0]);
            roff.text([bold(key.trim()), roman(" = "), italic(value.trim())]);
            if !comment.is_empty() {
                roff.text([roman(comment.join(" "))]);
                comment.clear();
            }
        } else if trimmed.is_empty() {
            flush(&mut roff, &mut comment);
        } else {
            comment.push(trimmed.to_string());
        }
    }
    flush(&mut roff, &mut comment);
    roff.control("SH", ["ENVIRONMENT"])
        .control("TP", [] as [&str; 0])
        .text([bold("MALSPAM_REDIS_URL")])
        .text([roman(
            "Replaces store.url, so that a Redis password need not be in this file \
             (the systemd unit reads it from /etc/default/malspam-milter).",
        )])
        .control("SH", ["SEE ALSO"])
        .text([bold("malspam-milter"), roman("(8)")]);
    roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_config_is_the_sample_with_socket_and_store_switched() {
        let text = packaged_config(SAMPLE_CONFIG).unwrap();
        let config = crate::Config::parse(&text, "packaged").unwrap();
        assert_eq!(config.milter.listen, PACKAGED_LISTEN);
        assert_eq!(
            config.store.path.as_deref(),
            Some(std::path::Path::new(PACKAGED_STORE))
        );
        let mut expected = crate::Config::default();
        expected.milter.listen = PACKAGED_LISTEN.into();
        expected.store.path = Some(PACKAGED_STORE.into());
        assert_eq!(config, expected, "nothing else differs from the defaults");
        assert_eq!(
            text.lines().count(),
            SAMPLE_CONFIG.lines().count(),
            "the comments are kept"
        );
    }

    #[test]
    fn the_config_page_has_every_section_and_key_of_the_sample() {
        let page = config_page(SAMPLE_CONFIG);
        for section in ["[milter]", "[policy]", "[store]", "[display_name]"] {
            assert!(page.contains(&format!(".SS {section}")), "{section}");
        }
        assert!(page.contains("listen"), "keys are listed");
        assert!(page.contains("scan_timeout_secs"), "keys are listed");
        assert!(page.contains("MALSPAM_REDIS_URL"));
    }
}
