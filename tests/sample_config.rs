//! The shipped sample config parses, and documents every key the program knows.

use malspam_milter::Config;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/malspam-milter.toml");

#[test]
fn sample_config_is_valid() {
    let config = Config::load(Some(std::path::Path::new(SAMPLE))).unwrap_or_else(|e| panic!("{e}"));
    let defaults = Config {
        source: config.source.clone(),
        ..Config::default()
    };
    assert_eq!(config, defaults, "the sample shows the built-in defaults");
}

/// Walk the defaults as TOML and require each key to appear in the sample,
/// set or commented out, under its section header.
#[test]
fn sample_config_documents_every_key() {
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let defaults: toml::Table = toml::from_str(&Config::default().to_toml()).unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (section, value) in &defaults {
        let header = format!("[{section}]");
        // The header on a line of its own (not a mention in a comment).
        let Some(start) = text
            .match_indices(&header)
            .map(|(i, _)| i)
            .find(|&i| i == 0 || text[..i].ends_with('\n'))
        else {
            missing.push(header);
            continue;
        };
        // The section runs until the next header that is not one of its subtables.
        let rest = &text[start + header.len()..];
        let end = rest
            .match_indices("\n[")
            .find(|(i, _)| {
                let next = rest[i + 1..].trim_start_matches('[');
                !next.starts_with(&format!("{section}."))
            })
            .map_or(rest.len(), |(i, _)| i);
        let body = &rest[..end];
        for key in value.as_table().unwrap().keys() {
            checked += 1;
            let documented = body.lines().any(|l| {
                let l = l.trim_start_matches('#').trim_start();
                l.starts_with(&format!("{key} ="))
                    || l.starts_with(&format!("[{section}.{key}]"))
                    || l.starts_with(&format!("[[{section}.{key}]]"))
                    || l.starts_with(&format!("[{section}.{key}."))
            });
            if !documented {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(checked >= 20, "only {checked} keys checked");
    assert!(
        missing.is_empty(),
        "undocumented in config/malspam-milter.toml: {missing:?}"
    );
}
