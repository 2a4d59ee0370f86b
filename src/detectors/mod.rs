//! The detectors, one module each, and the registry that names them.
//!
//! To add a detector: write its module with a `NAME`, a `RULES` table and a
//! type implementing [`Detector`], then give it one entry in [`REGISTRY`]:
//! the catalogue of rules (`malspam-milter rules`, the policy's scores, the
//! config check) and the detectors a scan runs both come from there, so
//! they cannot drift apart.

pub mod attachment;
pub mod display_name;
pub mod encrypted_archive;
pub mod thread_hijack;

use std::path::Path;

use crate::config::{Config, OrganizationConfig};
use crate::detector::{Detector, RuleInfo};
use crate::domains::OrgDomains;

pub mod links;
pub mod office_macro;
pub mod outbound;
pub mod payload;

/// Rules the scan core itself emits.
pub const SCAN_RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "error",
        description: "A detector failed on this message (the others still ran); evidence is the error",
        default_score: 0.0,
    },
    RuleInfo {
        name: "limit",
        description: "Not fully scanned: a limit (depth, entries, bytes, time) stopped the scan; tagged by default",
        default_score: 0.0,
    },
    RuleInfo {
        name: "too_large",
        description: "Not scanned: the message is larger than milter.max_message_size; tagged by default",
        default_score: 0.0,
    },
];

/// What every detector may be built from besides its own config section:
/// the organisation it protects. (The scan limits reach detectors at scan
/// time, in [`crate::detector::ScanContext`].)
pub struct Site<'a> {
    /// `[organization]`: its names and domains as configured.
    pub organization: &'a OrganizationConfig,
    /// The organisation's own domains as every detector compares them.
    pub org_domains: &'a OrgDomains,
    /// The config file, when there is one: relative paths in a section
    /// are relative to its folder.
    pub config_file: Option<&'a Path>,
}

/// One detector: its name, its rules, and how it is built: from its own
/// config section (the entry picks it) and the [`Site`].
pub struct Registered {
    pub name: &'static str,
    pub rules: &'static [RuleInfo],
    pub build: fn(&Config, &Site<'_>) -> Box<dyn Detector>,
}

/// Every detector, in the order a scan runs them.
pub const REGISTRY: &[Registered] = &[
    Registered {
        name: display_name::NAME,
        rules: display_name::RULES,
        build: |c, site| {
            Box::new(display_name::DisplayNameDetector::new(
                &c.display_name,
                site,
            ))
        },
    },
    Registered {
        name: encrypted_archive::NAME,
        rules: encrypted_archive::RULES,
        build: |c, _| {
            Box::new(encrypted_archive::EncryptedArchive::new(
                &c.encrypted_archive,
            ))
        },
    },
    Registered {
        name: attachment::NAME,
        rules: attachment::RULES,
        build: |_, _| Box::new(attachment::Attachment),
    },
    Registered {
        name: thread_hijack::NAME,
        rules: thread_hijack::RULES,
        build: |c, site| Box::new(thread_hijack::ThreadHijack::new(&c.thread_hijack, site)),
    },
    Registered {
        name: outbound::NAME,
        rules: outbound::RULES,
        build: |c, _| Box::new(outbound::Outbound::new(&c.outbound)),
    },
    Registered {
        name: office_macro::NAME,
        rules: office_macro::RULES,
        build: |c, _| Box::new(office_macro::OfficeMacro::new(&c.office_macro)),
    },
    Registered {
        name: links::NAME,
        rules: links::RULES,
        build: |c, _| Box::new(links::Links::new(&c.links)),
    },
    Registered {
        name: payload::NAME,
        rules: payload::RULES,
        build: |_, _| Box::new(payload::Payload),
    },
];

/// Every detector's name and rules, the scan core's first.
pub fn catalog() -> Vec<(&'static str, &'static [RuleInfo])> {
    std::iter::once(("scan", SCAN_RULES))
        .chain(REGISTRY.iter().map(|d| (d.name, d.rules)))
        .collect()
}

/// `detector.rule` for every rule in the catalogue.
pub fn all_rule_names() -> Vec<String> {
    catalog()
        .into_iter()
        .flat_map(|(d, rules)| rules.iter().map(move |r| format!("{d}.{}", r.name)))
        .collect()
}

/// The rule `detector.rule` as the catalogue spells it, with the names
/// borrowed from it for the life of the program (findings carry these,
/// not copies).
pub fn rule_id(detector: &str, rule: &str) -> Option<(&'static str, &'static str)> {
    catalog()
        .into_iter()
        .find(|(d, _)| *d == detector)
        .and_then(|(d, rules)| rules.iter().find(|r| r.name == rule).map(|r| (d, r.name)))
}

/// Build every detector from the config.
pub fn build(config: &Config) -> Vec<Box<dyn Detector>> {
    let org_domains = config.org_domains();
    let site = Site {
        organization: &config.organization,
        org_domains: &org_domains,
        config_file: config.source.as_deref(),
    };
    REGISTRY.iter().map(|d| (d.build)(config, &site)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_built_is_what_the_catalogue_says() {
        let built = build(&Config::default());
        assert_eq!(built.len(), REGISTRY.len());
        for (detector, entry) in built.iter().zip(REGISTRY) {
            assert_eq!(detector.name(), entry.name);
            let names = |rules: &[RuleInfo]| rules.iter().map(|r| r.name).collect::<Vec<_>>();
            assert_eq!(
                names(detector.rules()),
                names(entry.rules),
                "{}: rules() is not the registered table",
                entry.name
            );
        }
        let mut names: Vec<&str> = catalog().iter().map(|(d, _)| *d).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len() + 1, "a detector name twice");
        assert_eq!(rule_id("payload", "padded"), Some(("payload", "padded")));
        assert_eq!(rule_id("payload", "nope"), None);
    }
}
