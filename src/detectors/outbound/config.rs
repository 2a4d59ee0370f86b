//! `[outbound]`: which mail is outbound, the sliding-window limits, holds,
//! the notify command and the payload rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How mail from `internal_networks` (without SASL login) is attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InternalAccount {
    /// One account per client address (`ip:192.0.2.7`): a compromised host
    /// cannot spread its volume over many forged senders.
    #[default]
    ClientAddress,
    /// One account per envelope sender (MAIL FROM).
    Sender,
}

/// One sliding window with its limits; 0 means no limit for that metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Short name used in evidence, logs and `overrides`, e.g. `1h`.
    pub name: String,
    /// Length of the window in seconds (10 s .. 7 days).
    pub seconds: u64,
    /// Messages the account may send in the window.
    pub messages: u64,
    /// Envelope recipients, summed over messages.
    pub recipients: u64,
    /// Distinct recipient domains (registrable domains).
    pub domains: u64,
    /// Recipients the account never wrote to before (`outbound.new_recipients_burst`).
    pub new_recipients: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            name: String::new(),
            seconds: 3600,
            messages: 0,
            recipients: 0,
            domains: 0,
            new_recipients: 0,
        }
    }
}

impl WindowConfig {
    fn new(name: &str, seconds: u64, limits: [u64; 4]) -> Self {
        let [messages, recipients, domains, new_recipients] = limits;
        WindowConfig {
            name: name.into(),
            seconds,
            messages,
            recipients,
            domains,
            new_recipients,
        }
    }
}

/// Per-account changes to one window's limits; unset keys keep the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domains: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_recipients: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Count and judge outbound mail at all.
    pub enabled: bool,
    /// Client networks whose mail is outbound even without SASL login (CIDR).
    /// Authenticated mail ({auth_authen}) is always outbound.
    pub internal_networks: Vec<ipnet::IpNet>,
    /// How unauthenticated mail from `internal_networks` is attributed.
    pub internal_account: InternalAccount,
    /// The sliding windows and their limits.
    pub windows: Vec<WindowConfig>,
    /// Per account (login name, or `ip:ADDR` / sender address), per window
    /// name: limits that differ from `windows`.
    pub overrides: BTreeMap<String, BTreeMap<String, LimitOverride>>,
    /// How long an account remembers a recipient it wrote to (days).
    pub known_recipients_days: u64,
    /// How long an account's From addresses, domains and names are remembered (days).
    pub history_days: u64,
    /// The first messages of an account teach its From identities; nothing
    /// is judged `from_not_owned` before this many messages.
    pub from_learning_messages: u64,
    /// An unfamiliar From identity becomes the account's own after this many
    /// messages (0: never; it keeps firing).
    pub from_adopt_after: u64,
    /// How long an account that trips a limit has its mail held (minutes).
    /// A new trip during the hold extends it.
    pub hold_minutes: u64,
    /// Program run once per hold episode, argv form (never a shell). Placeholders
    /// in any argument: {account} {rule} {reason} {counters} {queue_id}
    /// {since} {until} {hold_minutes}. Empty: no command.
    pub notify_command: Vec<String>,
    /// The notify command is killed after this many seconds.
    pub notify_timeout_secs: u64,
    /// Notify commands running at once, at most; a hold that starts while
    /// this many run is logged but not notified.
    pub notify_max_running: usize,
    /// Rules (`detector.rule`) or whole detectors (`detector`) whose findings
    /// on outbound mail add `outbound.payload`. Unset: every rule of
    /// office_macro, encrypted_archive and links with a positive default score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_rules: Option<Vec<String>>,
}

/// Detectors whose findings count as payload when `payload_rules` is unset.
pub const DEFAULT_PAYLOAD_DETECTORS: &[&str] = &["office_macro", "encrypted_archive", "links"];

pub const MAX_WINDOWS: usize = 8;
pub const MIN_WINDOW_SECS: u64 = 10;
pub const MAX_WINDOW_SECS: u64 = 7 * 24 * 3600;

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            enabled: true,
            internal_networks: Vec::new(),
            internal_account: InternalAccount::ClientAddress,
            windows: vec![
                WindowConfig::new("1m", 60, [30, 100, 30, 50]),
                WindowConfig::new("1h", 3600, [200, 1000, 150, 300]),
                WindowConfig::new("24h", 86400, [1000, 3000, 500, 1000]),
            ],
            overrides: BTreeMap::new(),
            known_recipients_days: 90,
            history_days: 180,
            from_learning_messages: 20,
            from_adopt_after: 10,
            hold_minutes: 60,
            notify_command: Vec::new(),
            notify_timeout_secs: 10,
            notify_max_running: 4,
            payload_rules: None,
        }
    }
}

impl OutboundConfig {
    /// The windows with `account`'s overrides applied.
    pub fn windows_for(&self, account: &str) -> Vec<WindowConfig> {
        let mut windows = self.windows.clone();
        if let Some(over) = self.overrides.get(account) {
            for w in &mut windows {
                if let Some(o) = over.get(&w.name) {
                    w.messages = o.messages.unwrap_or(w.messages);
                    w.recipients = o.recipients.unwrap_or(w.recipients);
                    w.domains = o.domains.unwrap_or(w.domains);
                    w.new_recipients = o.new_recipients.unwrap_or(w.new_recipients);
                }
            }
        }
        windows
    }

    /// The payload rule patterns in effect: explicit ones, or the defaults
    /// drawn from the catalogue (so detectors missing from a build are skipped).
    pub fn payload_patterns(&self) -> Vec<String> {
        match &self.payload_rules {
            Some(list) => list.clone(),
            None => crate::detectors::catalog()
                .into_iter()
                .filter(|(d, _)| DEFAULT_PAYLOAD_DETECTORS.contains(d))
                .flat_map(|(d, rules)| {
                    rules
                        .iter()
                        .filter(|r| r.default_score > 0.0)
                        .map(move |r| format!("{d}.{}", r.name))
                })
                .collect(),
        }
    }

    /// Problems the loader reports with file and line: (key path, message).
    pub fn problems(&self, known_rules: &[String]) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        let key = |parts: &[&str]| -> Vec<String> {
            std::iter::once("outbound")
                .chain(parts.iter().copied())
                .map(str::to_string)
                .collect()
        };
        if self.windows.len() > MAX_WINDOWS {
            out.push((key(&["windows"]), format!("at most {MAX_WINDOWS} windows")));
        }
        let mut names = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            if w.name.trim().is_empty() || w.name.contains([':', ' ']) {
                out.push((
                    key(&["windows"]),
                    format!("window {} needs a name without spaces or ':'", i + 1),
                ));
            }
            if names.contains(&w.name) {
                out.push((
                    key(&["windows"]),
                    format!("window name {:?} is used twice", w.name),
                ));
            }
            names.push(w.name.clone());
            if !(MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&w.seconds) {
                out.push((
                    key(&["windows"]),
                    format!(
                        "window {:?}: seconds must be between {MIN_WINDOW_SECS} and {MAX_WINDOW_SECS}",
                        w.name
                    ),
                ));
            }
        }
        for (account, windows) in &self.overrides {
            for name in windows.keys() {
                if !names.contains(name) {
                    out.push((
                        key(&["overrides", account, name]),
                        format!(
                            "no window named {name:?}; windows are: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        if self.hold_minutes == 0 {
            out.push((key(&["hold_minutes"]), "must be at least 1".into()));
        }
        if self.notify_timeout_secs == 0 {
            out.push((key(&["notify_timeout_secs"]), "must be at least 1".into()));
        }
        if self.notify_max_running == 0 {
            out.push((key(&["notify_max_running"]), "must be at least 1".into()));
        }
        if let Some(program) = self.notify_command.first() {
            if !program.starts_with('/') {
                out.push((
                    key(&["notify_command"]),
                    format!("the program must be an absolute path: {program:?}"),
                ));
            }
        }
        for pattern in self.payload_rules.iter().flatten() {
            let ok = if pattern.contains('.') {
                known_rules.contains(pattern)
            } else {
                known_rules
                    .iter()
                    .any(|r| r.split('.').next() == Some(pattern.as_str()))
            };
            if !ok || pattern.starts_with("outbound") {
                out.push((
                    key(&["payload_rules"]),
                    format!(
                        "unknown rule or detector {pattern:?} (outbound's own rules are not payload); run `malspam-milter rules` for the list"
                    ),
                ));
            }
        }
        out
    }
}

/// True when the finding `detector.rule` matches one of the patterns.
pub fn is_payload(patterns: &[String], detector: &str, rule: &str) -> bool {
    patterns.iter().any(|p| match p.split_once('.') {
        Some((d, r)) => d == detector && r == rule,
        None => p == detector,
    })
}
