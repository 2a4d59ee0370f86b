//! The configuration: TOML, one section per concern, every key with a safe
//! default. Loading reports every error at once, each with file, line and key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::report::Verdict;

/// `[milter]`: the daemon's socket and message handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilterConfig {
    /// `unix:/path/to.sock` or `inet:HOST:PORT` (Postfix/Sendmail style).
    pub listen: String,
    /// Messages larger than this are not buffered nor scanned; they are tagged
    /// "not scanned: too large" and passed on.
    pub max_message_size: u64,
    /// Scans running at once; 0 means one per CPU core.
    pub max_concurrent_scans: usize,
    /// Threads serving the milter protocol. 1: one event loop thread, the
    /// least overhead per message; more only for very busy servers.
    pub io_threads: usize,
    /// Messages up to this size (bytes) with no base64 or uuencoded part
    /// (plain text and HTML mail, no binary attachment) are scanned on the
    /// protocol thread, sparing the hand-off to the scan pool; 0: every
    /// scan goes to the pool. Never inline for outbound mail (its counters
    /// are written at once) nor with the Redis store (its calls wait on the
    /// network).
    pub inline_scan_max_bytes: usize,
    /// Close an MTA connection that sends no complete command for this long.
    pub connection_timeout_secs: u64,
    /// Close an MTA connection that has not started a message (MAIL FROM)
    /// this long after it connected: idle connections cannot pile up.
    pub idle_timeout_secs: u64,
    /// MTA connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Permissions of the unix socket, octal as a string.
    pub socket_mode: String,
    /// `tracing` filter for the log, e.g. `info` or `malspam_milter=debug`.
    pub log_level: String,
}

impl Default for MilterConfig {
    fn default() -> Self {
        MilterConfig {
            listen: "inet:127.0.0.1:7357".into(),
            max_message_size: 32 * 1024 * 1024,
            max_concurrent_scans: 0,
            io_threads: 1,
            inline_scan_max_bytes: 256 * 1024,
            connection_timeout_secs: 7210,
            idle_timeout_secs: 60,
            max_connections: 1000,
            socket_mode: "0660".into(),
            log_level: "info".into(),
        }
    }
}

/// Where the daemon listens, parsed from `milter.listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Inet(String),
}

/// `milter.listen` is not a socket address; each variant holds the whole
/// value as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error("unix socket path must be absolute: {0:?}")]
    RelativePath(String),
    #[error("expected unix:/path or inet:host:port, got {0:?}")]
    Scheme(String),
    #[error("missing port in {0:?}")]
    MissingPort(String),
    #[error("bad port {port:?} in {listen:?}")]
    BadPort {
        port: String,
        listen: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("missing host in {0:?}")]
    MissingHost(String),
}

impl MilterConfig {
    pub fn listen_addr(&self) -> Result<ListenAddr, ListenError> {
        parse_listen(&self.listen)
    }
}

pub fn parse_listen(s: &str) -> Result<ListenAddr, ListenError> {
    if let Some(path) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
        if !path.starts_with('/') {
            return Err(ListenError::RelativePath(s.to_string()));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let rest = s
        .strip_prefix("inet:")
        .or_else(|| s.strip_prefix("inet6:"))
        .ok_or_else(|| ListenError::Scheme(s.to_string()))?;
    // Sendmail writes inet:PORT@HOST; accept it too.
    let hostport = match rest.split_once('@') {
        Some((port, host)) => format!("{host}:{port}"),
        None => rest.to_string(),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| ListenError::MissingPort(s.to_string()))?;
    port.parse::<u16>().map_err(|source| ListenError::BadPort {
        port: port.to_string(),
        listen: s.to_string(),
        source,
    })?;
    if host.is_empty() {
        return Err(ListenError::MissingHost(s.to_string()));
    }
    Ok(ListenAddr::Inet(hostport))
}

/// `[policy]`: how findings become a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Score from which a message is tagged (headers added).
    pub tag: f64,
    /// Score from which a message is quarantined (Postfix: hold queue).
    pub quarantine: f64,
    /// Score from which a message is rejected; 0 turns rejection off.
    pub reject: f64,
    /// Observe only: add headers and log, never quarantine or reject.
    pub observe: bool,
    /// SMTP reply text for rejected mail.
    pub reject_message: String,
    /// Score overrides per rule, `"detector.rule" = score`.
    pub scores: BTreeMap<String, f64>,
    /// Forced actions per rule, `"detector.rule" = "tag" | "quarantine" | "reject" | "accept"`.
    /// A forced action is a floor: the verdict is at least this. `accept` removes
    /// a built-in floor (e.g. for `scan.limit`).
    pub actions: BTreeMap<String, Verdict>,
    /// Forced actions that apply to mail from outside the organisation
    /// only (not outbound: not authenticated, not from an internal
    /// network). Built in: files that run on a double-click and the
    /// payload rules of issue-grade attacks are quarantined.
    pub inbound_actions: BTreeMap<String, Verdict>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            tag: 5.0,
            quarantine: 10.0,
            reject: 0.0,
            observe: false,
            reject_message: "Message rejected as malspam".into(),
            scores: BTreeMap::new(),
            actions: BTreeMap::new(),
            inbound_actions: BTreeMap::new(),
        }
    }
}

/// `[allowlist]`: mail that is passed without scanning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowlistConfig {
    /// Envelope senders: `user@example.com` exactly, or `example.com` for the
    /// domain and its subdomains.
    pub senders: Vec<String>,
    /// Client networks in CIDR form, e.g. `192.0.2.0/24`, `::1/128`.
    pub client_networks: Vec<ipnet::IpNet>,
    /// SASL login names.
    pub auth_users: Vec<String>,
}

/// `[limits]`: bounds on the work one message may cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Archives and attached messages nested deeper than this are not opened.
    pub max_depth: usize,
    /// MIME parts looked at per message (all nesting levels).
    pub max_mime_parts: usize,
    /// Archive entries looked at per message (all archives).
    pub max_archive_entries: usize,
    /// Bytes one archive entry may inflate to.
    pub max_entry_bytes: u64,
    /// Bytes all archive entries of a message may inflate to together.
    pub max_inflated_bytes: u64,
    /// Inflated/compressed size ratio above which an entry (over 1 MiB) is a bomb.
    pub max_inflation_ratio: u64,
    /// Wall-clock budget for one message's scan, in seconds. Keep it well
    /// under Postfix's milter_content_timeout (300 s).
    pub scan_timeout_secs: u64,
    /// Bytes of one header value (unfolded) the detectors see; longer
    /// values are cut. Postfix's own header_size_limit is 102400.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_mime_parts: 1000,
            max_archive_entries: 1000,
            max_entry_bytes: 64 * 1024 * 1024,
            max_inflated_bytes: 128 * 1024 * 1024,
            max_inflation_ratio: 100,
            scan_timeout_secs: 20,
            max_header_bytes: 100 * 1024,
        }
    }
}

impl Limits {
    /// A fresh per-message budget: `scan_timeout_secs` from now,
    /// `max_inflated_bytes` to produce, `max_inflation_ratio` per item.
    pub fn budget(&self) -> crate::formats::Budget {
        crate::formats::Budget::new(
            std::time::Instant::now() + std::time::Duration::from_secs(self.scan_timeout_secs),
            self.max_inflated_bytes,
            self.max_inflation_ratio,
        )
    }
}

/// `[encrypted_archive]`: bounds on password guessing and decryption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptedArchiveConfig {
    /// Password candidates mined from one message (subject and text parts).
    pub max_candidates: usize,
    /// Password checks per message, over all archives and entries.
    pub max_attempts: usize,
    /// Bytes decrypted (after inflation) per message; decrypted entries also
    /// count against `[limits]` like any archive entry.
    pub max_decrypted_bytes: u64,
    /// Wall-clock budget for trying passwords on one archive, in seconds.
    pub max_seconds_per_archive: u64,
    /// Bytes read from the start of each text part when mining candidates.
    pub max_text_bytes: usize,
}

impl Default for EncryptedArchiveConfig {
    fn default() -> Self {
        EncryptedArchiveConfig {
            max_candidates: 16,
            max_attempts: 64,
            max_decrypted_bytes: 64 * 1024 * 1024,
            max_seconds_per_archive: 5,
            max_text_bytes: 1024 * 1024,
        }
    }
}

/// `[formats]`: bounds of the file-format parsers, one table per format
/// (`[formats.rtf]`, `[formats.sevenz]`, ...). The per-message budget
/// (`[limits]`) applies on top of these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormatsConfig {
    pub rtf: crate::formats::rtf::Limits,
    pub ole_objects: crate::formats::ole_objects::Limits,
    pub ooxml: crate::formats::ooxml::Limits,
    pub office_crypto: crate::formats::office_crypto::Limits,
    pub disk_image: crate::formats::disk_image::Limits,
    pub sevenz: crate::formats::sevenz::Limits,
    pub rar: crate::formats::rar::Limits,
}

/// `[organization]`: who "we" are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganizationConfig {
    /// The organisation's own mail domains.
    pub domains: Vec<String>,
    /// Names the organisation goes by, e.g. "Example Holdings", "株式会社例".
    pub names: Vec<String>,
    /// List-Ids of mailing lists the organisation reads (known at once;
    /// others become known after posts on several days from one server).
    pub mailing_lists: Vec<String>,
}

/// `[headers]`: what the milter writes into scanned messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadersConfig {
    /// Add X-Malspam-Verdict and -Score to accepted mail too (tagged and
    /// quarantined mail always gets all three headers).
    pub on_accept: bool,
    /// Also write SpamAssassin-style `X-Spam-Flag: YES` and `X-Spam-Status`
    /// so existing Sieve rules and mail-client filters sort tagged mail.
    pub spam_compat: bool,
    /// Prefix added to the Subject of tagged and quarantined mail, e.g.
    /// "[SUSPICIOUS]"; empty = leave the Subject alone.
    pub subject_prefix: String,
    /// Write X-Malspam-Findings (and the rule names in X-Spam-Status) into
    /// outbound mail for recipients outside `[organization] domains` too.
    /// Off: such mail carries only verdict and score, since findings name
    /// the sender's login and addresses; the log and quarantine keep them.
    pub findings_on_outbound_external: bool,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            on_accept: true,
            spam_compat: false,
            subject_prefix: String::new(),
            findings_on_outbound_external: false,
        }
    }
}

/// `[log]`: how the daemon writes its log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text`: one line per event on stderr; under systemd (stderr is the
    /// journal, `JOURNAL_STREAM`) the events go to the journal with their
    /// fields (QUEUE_ID, VERDICT, SCORE, RULES). `json`: one JSON object per
    /// line on stderr, the fields at top level, for log shippers.
    pub format: LogFormat,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Declares the config sections once: the struct fields and the loader's
/// dispatch from section name to type both come from this list.
macro_rules! sections {
    ($($name:ident : $ty:ty),* $(,)?) => {
        /// The whole configuration.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $(pub $name: $ty,)*
            /// The file this was read from, if any.
            #[serde(skip)]
            pub source: Option<PathBuf>,
        }

        impl Config {
            const SECTIONS: &'static [&'static str] = &[$(stringify!($name)),*];

            fn load_section(&mut self, name: &str, table: &toml::Table, ctx: &mut Loader<'_>) {
                match name {
                    $(stringify!($name) => {
                        if let Some(v) = ctx.section::<$ty>(name, table) {
                            self.$name = v;
                        }
                    })*
                    _ => unreachable!("unknown sections are reported before dispatch"),
                }
            }
        }
    };
}

sections! {
    milter: MilterConfig,
    policy: PolicyConfig,
    allowlist: AllowlistConfig,
    limits: Limits,
    formats: FormatsConfig,
    organization: OrganizationConfig,
    headers: HeadersConfig,
    log: LogConfig,
    outbound: crate::detectors::outbound::OutboundConfig,
    metrics: crate::metrics::MetricsConfig,
    encrypted_archive: EncryptedArchiveConfig,
    display_name: crate::detectors::display_name::DisplayNameConfig,
    store: crate::store::StoreConfig,
    thread_hijack: crate::detectors::thread_hijack::ThreadHijackConfig,
    quarantine: crate::quarantine::QuarantineConfig,
    office_macro: crate::detectors::office_macro::OfficeMacroConfig,
    links: crate::detectors::links::LinksConfig,
    web: crate::web::WebConfig,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    /// Dotted key, e.g. `policy.scores."office_macro.nope"`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} error{} in configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// The organisation's own domains as every reader compares them:
    /// `[organization] domains` without the free-mail ones (built in, and
    /// `[display_name] freemail_domains`), by IDNA key.
    pub fn org_domains(&self) -> crate::domains::OrgDomains {
        crate::domains::OrgDomains::new(
            &self.organization.domains,
            &self.display_name.freemail_domains,
        )
    }

    /// Load from `path`, or the built-in defaults when `path` is None.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        let Some(path) = path else {
            let config = Config::default();
            config.validate("<built-in defaults>", None)?;
            return Ok(config);
        };
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: None,
                key: None,
                message: if e.kind() == std::io::ErrorKind::PermissionDenied {
                    format!(
                        "cannot read: {e} (the packaged config is readable by root and the \
                         malspam-milter group only: run as root, or pass --config FILE)"
                    )
                } else {
                    format!("cannot read: {e}")
                },
            }])
        })?;
        let mut config = Config::parse(&text, &file)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        let doc = toml_edit::Document::parse(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                line: e.span().map(|s| line_at(text, s.start)),
                key: None,
                message: format!("TOML syntax: {}", e.message()),
            }])
        })?;
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                line: e.span().map(|s| line_at(text, s.start)),
                key: None,
                message: e.message().to_string(),
            }])
        })?;
        let mut loader = Loader {
            file,
            text,
            doc: &doc,
            errors: Vec::new(),
        };
        let mut config = Config::default();
        for (name, value) in &table {
            if !Config::SECTIONS.contains(&name.as_str()) {
                loader.error(
                    &[name],
                    format!(
                        "unknown section; expected one of: {}",
                        Config::SECTIONS.join(", ")
                    ),
                );
                continue;
            }
            let Some(section) = value.as_table() else {
                loader.error(&[name], "expected a [section] table".into());
                continue;
            };
            config.load_section(name, section, &mut loader);
        }
        let mut errors = loader.errors;
        if let Err(ConfigErrors(more)) = config.validate(file, Some((text, &doc))) {
            errors.extend(more);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Checks across keys: thresholds, rule names, addresses.
    fn validate(
        &self,
        file: &str,
        source: Option<(&str, &toml_edit::Document<&str>)>,
    ) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        let mut push = |path: &[&str], message: String| {
            errors.push(ConfigError {
                file: file.to_string(),
                line: source.and_then(|(text, doc)| line_of(text, doc, path)),
                key: Some(dotted(path)),
                message,
            });
        };
        if let Err(e) = self.milter.listen_addr() {
            push(&["milter", "listen"], e.to_string());
        }
        if self.milter.idle_timeout_secs == 0 {
            push(
                &["milter", "idle_timeout_secs"],
                "must be at least 1".into(),
            );
        }
        if u32::from_str_radix(&self.milter.socket_mode, 8).is_err() {
            push(
                &["milter", "socket_mode"],
                format!("not an octal mode: {:?}", self.milter.socket_mode),
            );
        }
        let p = &self.policy;
        if p.tag.is_nan() || p.tag <= 0.0 {
            push(&["policy", "tag"], "must be greater than 0".into());
        }
        if p.quarantine < p.tag {
            push(
                &["policy", "quarantine"],
                format!("must not be below tag ({})", p.tag),
            );
        }
        if p.reject != 0.0 && p.reject < p.quarantine {
            push(
                &["policy", "reject"],
                format!("must be 0 (off) or not below quarantine ({})", p.quarantine),
            );
        }
        let known = crate::detectors::all_rule_names();
        for rule in p.scores.keys() {
            if !known.contains(rule) {
                push(
                    &["policy", "scores", rule],
                    unknown_rule_message(rule, &known),
                );
            }
        }
        for rule in p.actions.keys() {
            if !known.contains(rule) {
                push(
                    &["policy", "actions", rule],
                    unknown_rule_message(rule, &known),
                );
            }
        }
        for rule in p.inbound_actions.keys() {
            if !known.contains(rule) {
                push(
                    &["policy", "inbound_actions", rule],
                    unknown_rule_message(rule, &known),
                );
            }
        }
        for (path, message) in self.outbound.problems(&known) {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            push(&path, message);
        }
        for (path, message) in self.quarantine.problems() {
            push(&path, message);
        }
        for (path, message) in self.web.problems() {
            push(&path, message);
        }
        if let Err(e) = self.metrics.listen_addr() {
            push(&["metrics", "listen"], e.to_string());
        }
        if self.metrics.max_connections == 0 {
            push(&["metrics", "max_connections"], "must be at least 1".into());
        }
        if self.metrics.held_refresh_secs == 0 {
            push(
                &["metrics", "held_refresh_secs"],
                "must be at least 1".into(),
            );
        }
        if self.store.timeout_ms == 0 {
            push(&["store", "timeout_ms"], "must be at least 1".into());
        }
        if self.store.thread_ttl_days == 0 {
            push(&["store", "thread_ttl_days"], "must be at least 1".into());
        }
        if self.store.backend == crate::store::StoreBackend::Redis
            && !self.store.url.starts_with("redis://")
            && !self.store.url.starts_with("unix://")
            && !self.store.url.starts_with("redis+unix://")
        {
            push(
                &["store", "url"],
                format!("expected redis://host:port/db, got {:?}", self.store.url),
            );
        }
        if self.limits.max_depth == 0 {
            push(&["limits", "max_depth"], "must be at least 1".into());
        }
        if self.limits.scan_timeout_secs == 0 {
            push(
                &["limits", "scan_timeout_secs"],
                "must be at least 1".into(),
            );
        }
        let config_file = source.map(|_| Path::new(file));
        for problem in crate::detectors::display_name::check_config(&self.display_name, config_file)
        {
            push(&["display_name", "directory"], problem);
        }
        for (i, s) in self.allowlist.senders.iter().enumerate() {
            if s.trim().is_empty() || s.contains(char::is_whitespace) {
                push(
                    &["allowlist", "senders"],
                    format!("entry {} is not an address or domain: {s:?}", i + 1),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The effective configuration as TOML, for `config check`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

fn unknown_rule_message(rule: &str, known: &[String]) -> String {
    let detector = rule.split('.').next().unwrap_or("");
    let same: Vec<&str> = known
        .iter()
        .filter(|k| k.split('.').next() == Some(detector))
        .map(String::as_str)
        .collect();
    if same.is_empty() {
        format!("unknown rule {rule:?}; run `malspam-milter rules` for the list")
    } else {
        format!("unknown rule {rule:?}; {detector} has: {}", same.join(", "))
    }
}

/// Collects errors while sections are deserialized.
struct Loader<'a> {
    file: &'a str,
    text: &'a str,
    doc: &'a toml_edit::Document<&'a str>,
    errors: Vec<ConfigError>,
}

impl Loader<'_> {
    fn error(&mut self, path: &[&str], message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: line_of(self.text, self.doc, path),
            key: Some(dotted(path)),
            message,
        });
    }

    /// Deserialize one section. Each key is first tried alone (every field
    /// has a default), so that one bad key does not hide the next.
    fn section<T: DeserializeOwned>(&mut self, name: &str, table: &toml::Table) -> Option<T> {
        let mut ok = true;
        for (key, value) in table {
            let mut single = toml::Table::new();
            single.insert(key.clone(), value.clone());
            if let Err(e) = T::deserialize(toml::Value::Table(single)) {
                ok = false;
                let message = humanize(e.message().trim());
                self.error(&[name, key], message);
            }
        }
        if !ok {
            return None;
        }
        match T::deserialize(toml::Value::Table(table.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(&[name], humanize(e.message().trim()));
                None
            }
        }
    }
}

/// serde's wording (`invalid type: string "high", expected f64`) in words
/// an admin uses: `expected a number (e.g. 5.0), got the string "high"`.
fn humanize(message: &str) -> String {
    let types = [
        ("f64", "a number (e.g. 5.0)"),
        ("f32", "a number (e.g. 5.0)"),
        ("u64", "a whole number, 0 or more"),
        ("u32", "a whole number, 0 or more"),
        ("u16", "a whole number from 0 to 65535"),
        ("u8", "a whole number from 0 to 255"),
        ("usize", "a whole number, 0 or more"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("a boolean", "true or false"),
        ("a sequence", "a list, e.g. [\"a\", \"b\"]"),
        ("a string", "a string in quotes"),
    ];
    let explain = |expected: &str| {
        types
            .iter()
            .find(|(t, _)| *t == expected)
            .map_or_else(|| expected.to_string(), |(_, words)| words.to_string())
    };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((got, expected)) = rest.split_once(", expected ") {
                let got = got.replace('`', "");
                return format!("expected {}, got {got}", explain(expected));
            }
        }
    }
    message.to_string()
}

fn dotted(path: &[&str]) -> String {
    path.iter()
        .map(|p| {
            if p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                p.to_string()
            } else {
                format!("{p:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The 1-based line of the deepest key of `path` that the document has.
fn line_of(text: &str, doc: &toml_edit::Document<&str>, path: &[&str]) -> Option<usize> {
    let mut item = doc.as_item();
    let mut best = None;
    for part in path {
        let table = item.as_table_like()?;
        let (key, value) = table.get_key_value(part)?;
        if let Some(span) = key.span().or_else(|| value.span()) {
            best = Some(line_at(text, span.start));
        }
        item = value;
    }
    best
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.milter.listen, "inet:127.0.0.1:7357");
        assert_eq!(c.policy.reject, 0.0);
    }

    #[test]
    fn all_errors_are_reported_with_line_and_key() {
        let text = "[policy]\ntag = \"high\"\nquarantine = 3.0\n\n[limits]\nmax_depht = 4\n\n[nosuch]\nx = 1\n";
        let errs = Config::parse(text, "test.toml").unwrap_err().0;
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with("test.toml:2: policy.tag:")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with("test.toml:6: limits.max_depht:")
                    && e.contains("unknown field")),
            "{shown:?}"
        );
        assert!(
            shown.iter().any(|e| e.starts_with("test.toml:8: nosuch:")),
            "{shown:?}"
        );
        assert_eq!(errs.len(), 3, "{shown:?}");
    }

    #[test]
    fn type_errors_are_in_words_not_rust_types() {
        let text = "[policy]\ntag = \"high\"\n\n[limits]\nmax_depth = -1\n\n[headers]\non_accept = \"yes\"\n";
        let errs = Config::parse(text, "t.toml").unwrap_err().0;
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            shown.contains(
                &"t.toml:2: policy.tag: expected a number (e.g. 5.0), got string \"high\""
                    .to_string()
            ),
            "{shown:?}"
        );
        assert!(
            shown.iter().any(|e| e.starts_with(
                "t.toml:5: limits.max_depth: expected a whole number, 0 or more, got integer -1"
            )),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with("t.toml:8: headers.on_accept: expected true or false")),
            "{shown:?}"
        );
        assert!(
            !shown
                .iter()
                .any(|e| e.contains("f64") || e.contains("usize")),
            "{shown:?}"
        );
    }

    #[test]
    fn scoring_an_unknown_rule_is_an_error() {
        let text = "[policy.scores]\n\"scan.nope\" = 3.0\n";
        let errs = Config::parse(text, "t.toml").unwrap_err().0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[0].message.contains("unknown rule"), "{}", errs[0]);
    }

    #[test]
    fn thresholds_must_be_ordered() {
        let errs = Config::parse("[policy]\ntag = 8.0\nquarantine = 4.0\n", "t.toml")
            .unwrap_err()
            .0;
        assert_eq!(errs[0].key.as_deref(), Some("policy.quarantine"));
        assert_eq!(errs[0].line, Some(3));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("unix:/run/m.sock"),
            Ok(ListenAddr::Unix("/run/m.sock".into()))
        );
        assert_eq!(
            parse_listen("inet:127.0.0.1:7357"),
            Ok(ListenAddr::Inet("127.0.0.1:7357".into()))
        );
        assert_eq!(
            parse_listen("inet:7357@localhost"),
            Ok(ListenAddr::Inet("localhost:7357".into()))
        );
        assert!(parse_listen("tcp:1").is_err());
        assert!(parse_listen("unix:relative.sock").is_err());
        let e = parse_listen("inet:localhost:99999").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad port \"99999\" in \"inet:localhost:99999\""
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "the parse error kept"
        );
    }
}
