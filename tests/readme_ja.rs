//! README.ja.md is a native Japanese README, not a translation, but it must
//! not fall behind: both READMEs name the same commands and the same config
//! sections, and every command of the binary is in both.

use std::collections::BTreeSet;

use clap::CommandFactory;
use malspam_milter::cli::Cli;

fn read(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `malspam-milter COMMAND [SUBCOMMAND]` as written in the text, checked
/// against the clap definitions (`quarantine list|show` names both).
fn commands(text: &str) -> BTreeSet<String> {
    let cli = Cli::command();
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("malspam-milter ") {
        let mut words = text[i + "malspam-milter ".len()..]
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '|'));
        let Some(first) = words.next() else { continue };
        let Some(command) = cli.find_subcommand(first) else {
            continue;
        };
        let subs: Vec<String> = words
            .next()
            .map(|w| {
                w.split('|')
                    .filter(|s| command.find_subcommand(s).is_some())
                    .map(|s| format!("{first} {s}"))
                    .collect()
            })
            .unwrap_or_default();
        if subs.is_empty() {
            found.insert(first.to_string());
        } else {
            found.extend(subs);
        }
    }
    found
}

/// Config sections written as `[name]`, among the sections of the sample.
fn sections(text: &str) -> BTreeSet<String> {
    let sample = read("config/malspam-milter.toml");
    sample
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
        .filter(|name| !name.starts_with('['))
        .filter(|name| text.contains(&format!("[{name}]")))
        .map(str::to_string)
        .collect()
}

#[test]
fn both_readmes_name_the_same_commands_and_sections() {
    let en = read("README.md");
    let ja = read("README.ja.md");
    assert_eq!(
        commands(&en),
        commands(&ja),
        "commands: README.md vs README.ja.md"
    );
    assert_eq!(
        sections(&en),
        sections(&ja),
        "sections: README.md vs README.ja.md"
    );
    let visible: Vec<String> = Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    for (name, text) in [("README.md", &en), ("README.ja.md", &ja)] {
        let named = commands(text);
        for command in &visible {
            assert!(
                named.iter().any(|c| c.split(' ').next() == Some(command)),
                "{name} does not name `malspam-milter {command}`: {named:?}"
            );
        }
        assert!(sections(text).len() >= 8, "{name}: {:?}", sections(text));
    }
}

#[test]
fn the_japanese_readme_is_japanese() {
    let ja = read("README.ja.md");
    let kana = ja
        .chars()
        .filter(|c| ('\u{3040}'..='\u{30ff}').contains(c))
        .count();
    assert!(kana > 1000, "{kana} kana characters");
    for heading in [
        "クイックスタート",
        "インストール",
        "Postfix",
        "Sendmail",
        "ヘッダー",
        "隔離",
    ] {
        assert!(ja.contains(heading), "README.ja.md covers {heading}");
    }
}
