//! The detectors, one module each, and the catalogue of every rule.
//!
//! To add a detector: write its module with a `NAME`, a `RULES` table and a
//! type implementing [`Detector`], then list it in `catalog()` and `build()`.

pub mod attachment;
pub mod display_name;
pub mod encrypted_archive;
pub mod thread_hijack;

use crate::config::Config;
use crate::detector::{Detector, RuleInfo};

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

/// Every detector's name and rules, the scan core's first.
pub fn catalog() -> Vec<(&'static str, &'static [RuleInfo])> {
    vec![
        ("scan", SCAN_RULES),
        (display_name::NAME, display_name::RULES),
        (encrypted_archive::NAME, encrypted_archive::RULES),
        (attachment::NAME, attachment::RULES),
        (outbound::NAME, outbound::RULES),
        (thread_hijack::NAME, thread_hijack::RULES),
        (office_macro::NAME, office_macro::RULES),
        (links::NAME, links::RULES),
        (payload::NAME, payload::RULES),
    ]
}

/// `detector.rule` for every rule in the catalogue.
pub fn all_rule_names() -> Vec<String> {
    catalog()
        .into_iter()
        .flat_map(|(d, rules)| rules.iter().map(move |r| format!("{d}.{}", r.name)))
        .collect()
}

/// Build every detector from the config.
pub fn build(config: &Config) -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(display_name::DisplayNameDetector::new(config)),
        Box::new(encrypted_archive::EncryptedArchive::new(
            &config.encrypted_archive,
        )),
        Box::new(attachment::Attachment),
        Box::new(thread_hijack::ThreadHijack::new(config)),
        Box::new(outbound::Outbound::new()),
        Box::new(office_macro::OfficeMacro::new(&config.office_macro)),
        Box::new(links::Links::new(&config.links)),
        Box::new(payload::Payload),
    ]
}
