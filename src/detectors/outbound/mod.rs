//! `outbound`: catch a compromised account while it is still sending.
//!
//! Mail is outbound when the session authenticated ({auth_authen}) or the
//! client is in `outbound.internal_networks`. For such mail the account is
//! controlled from the envelope alone, before and apart from the content
//! scan ([`account_control`], run by the engine's envelope stage): its
//! messages, recipients, recipient domains and never-before-seen
//! recipients over sliding windows (`counters`); when a limit is broken its
//! mail is held for `hold_minutes` (`holds`), with one alert per episode
//! and the notify command (`notify`). The detector proper judges the From
//! against the identities the account uses (`identity`). Both only read
//! the store: what they would write (counters, identities, the hold) is
//! proposed as effects (`crate::effects`), applied after the verdict.
//!
//! Content findings on outbound mail weigh more: after every detector ran,
//! the policy (`Policy::weigh_outbound_payload`) adds `outbound.payload` when
//! outbound mail carries a finding of `payload_rules`.

pub mod config;
pub mod counters;
pub mod holds;
pub mod identity;
pub mod notify;

use std::sync::Arc;
use std::time::Duration;

pub use config::OutboundConfig;

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::effects::{Effect, Trip};
use crate::envelope::Envelope;
use crate::store::{Reads, Snapshot, StoreError};
use crate::view::MessageView;

pub const NAME: &str = "outbound";

pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "rate_exceeded",
        description: "Outbound: the account sent more messages, recipients or recipient domains in a window than its limit; starts a hold",
        default_score: 10.0,
    },
    RuleInfo {
        name: "new_recipients_burst",
        description: "Outbound: the account wrote to more never-before-seen recipients in a window than its limit; starts a hold",
        default_score: 10.0,
    },
    RuleInfo {
        name: "from_not_owned",
        description: "Outbound: From address, domain or display name the account has never used",
        default_score: 5.0,
    },
    RuleInfo {
        name: "payload",
        description: "Outbound mail carries a payload finding (macro document, encrypted zip with password, ...): weighs more outbound",
        default_score: 5.0,
    },
    RuleInfo {
        name: "hold_unknown",
        description: "Outbound: whether the account is on hold could not be read (state store error); held by default (fail closed), see [policy.actions]",
        default_score: 0.0,
    },
    RuleInfo {
        name: "held",
        description: "Outbound: the account is on hold after tripping a limit; its mail is quarantined until the hold ends or `outbound release`",
        default_score: 10.0,
    },
];

/// Where the engine reads the time (Unix seconds); tests set it.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// More envelope recipients than this are counted but not each remembered.
const MAX_RECIPIENTS_REMEMBERED: usize = 5000;

#[derive(Default)]
pub struct Outbound {
    config: OutboundConfig,
}

impl Outbound {
    pub fn new(config: &OutboundConfig) -> Self {
        Outbound {
            config: config.clone(),
        }
    }
}

/// The account an envelope's mail is counted against, when it is outbound.
pub fn account_of(config: &OutboundConfig, envelope: &Envelope) -> Option<String> {
    if !config.enabled {
        return None;
    }
    if let Some(user) = envelope.auth_user.as_deref().map(str::trim) {
        if !user.is_empty() {
            return Some(user.to_lowercase());
        }
    }
    let ip = envelope.client_addr?;
    if !config.internal_networks.iter().any(|n| n.contains(&ip)) {
        return None;
    }
    let sender = envelope
        .mail_from
        .as_deref()
        .map(|s| s.trim().trim_matches(['<', '>']).to_lowercase())
        .filter(|s| !s.is_empty());
    Some(match (config.internal_account, sender) {
        (config::InternalAccount::Sender, Some(sender)) => sender,
        _ => format!("ip:{ip}"),
    })
}

/// The envelope's recipients (how many, and the first
/// [`MAX_RECIPIENTS_REMEMBERED`] of them).
fn recipients(envelope: &Envelope) -> (usize, Vec<String>) {
    let mut rcpts: Vec<String> = envelope
        .rcpt_to
        .iter()
        .map(|r| r.trim().trim_matches(['<', '>']).to_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    let total = rcpts.len();
    rcpts.truncate(MAX_RECIPIENTS_REMEMBERED);
    (total, rcpts)
}

/// `1m: 31 messages (limit 30)` for every metric over its limit.
fn over_limits(
    window: &config::WindowConfig,
    usage: &counters::Usage,
    rate: &mut Vec<String>,
    fresh: &mut Vec<String>,
) {
    let checks = [
        ("messages", usage.messages, window.messages, false),
        ("recipients", usage.recipients, window.recipients, false),
        ("recipient domains", usage.domains, window.domains, false),
        (
            "new recipients",
            usage.new_recipients,
            window.new_recipients,
            true,
        ),
    ];
    for (what, count, limit, is_new) in checks {
        if limit > 0 && count > limit {
            let line = format!("{count} {what} in {} (limit {limit})", window.name);
            if is_new {
                fresh.push(line);
            } else {
                rate.push(line);
            }
        }
    }
}

/// The counters of every window, for the alert line and the episode record.
pub fn describe_usage(windows: &[config::WindowConfig], usage: &[counters::Usage]) -> String {
    windows
        .iter()
        .zip(usage)
        .map(|(w, u)| {
            format!(
                "{}: {} msg, {} rcpt, {} domains, {} new",
                w.name, u.messages, u.recipients, u.domains, u.new_recipients
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the envelope stage found for an outbound account: the trip
/// findings of this message and the effects that count it and update the
/// account's hold.
#[derive(Debug, Default)]
pub struct Control {
    pub hits: Vec<Hit>,
    pub effects: Vec<Effect>,
}

/// The lookup stage's part of [`account_control`]: the account's counters
/// and whether its recipients are known.
pub fn control_reads(
    cfg: &OutboundConfig,
    account: &str,
    envelope: &Envelope,
    now: u64,
    reads: &mut Reads,
) {
    let (_, rcpts) = recipients(envelope);
    counters::reads(account, &cfg.windows_for(account), &rcpts, now, reads);
}

/// Count one outbound message of `account` (read only: the counts are what
/// they will be once this message is committed) and judge its rates.
/// Needs only the envelope, so no content scan can make a message go
/// uncounted. Recipients are the envelope's.
pub fn account_control(
    state: &Snapshot,
    cfg: &OutboundConfig,
    account: &str,
    envelope: &Envelope,
    now: u64,
) -> Result<Control, StoreError> {
    let windows = cfg.windows_for(account);
    let (total, rcpts) = recipients(envelope);
    let known_ttl = Duration::from_secs(cfg.known_recipients_days.max(1) * 86400);
    let (mut usage, writes) = counters::predict(state, account, &windows, &rcpts, known_ttl, now)?;
    if total > rcpts.len() {
        // Recipients beyond those remembered still count towards the rate.
        let extra = (total - rcpts.len()) as u64;
        usage.iter_mut().for_each(|u| u.recipients += extra);
    }
    let (mut rate, mut fresh) = (Vec::new(), Vec::new());
    for (w, u) in windows.iter().zip(&usage) {
        over_limits(w, u, &mut rate, &mut fresh);
    }
    let mut control = Control::default();
    let mut trips = Vec::new();
    if !rate.is_empty() {
        let evidence = format!("{account}: {}", rate.join("; "));
        trips.push(format!("outbound.rate_exceeded: {evidence}"));
        control.hits.push(Hit::new("rate_exceeded", evidence));
    }
    if !fresh.is_empty() {
        let evidence = format!("{account}: {}", fresh.join("; "));
        trips.push(format!("outbound.new_recipients_burst: {evidence}"));
        control
            .hits
            .push(Hit::new("new_recipients_burst", evidence));
    }
    control.effects.push(Effect::Write(writes));
    let trip = (!trips.is_empty()).then(|| Trip {
        rule: if rate.is_empty() {
            "outbound.new_recipients_burst"
        } else {
            "outbound.rate_exceeded"
        },
        reason: trips.join("; "),
        counters: describe_usage(&windows, &usage),
    });
    control.effects.push(Effect::Hold {
        account: account.to_string(),
        queue_id: envelope.log_id().to_string(),
        trip,
    });
    Ok(control)
}

impl Detector for Outbound {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [RuleInfo] {
        RULES
    }

    fn reads(&self, view: &MessageView, reads: &mut Reads) {
        if let Some(account) = account_of(&self.config, &view.envelope) {
            identity::reads(&account, view.from.as_ref(), reads);
        }
    }

    fn inspect(
        &self,
        view: &MessageView,
        ctx: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        let cfg = &self.config;
        let Some(account) = account_of(cfg, &view.envelope) else {
            return Ok(());
        };
        let state = ctx.lookup.snapshot()?;
        let (evidence, writes) = identity::judge(state, cfg, &account, view.from.as_ref())?;
        if let Some(evidence) = evidence {
            hits.push(Hit::new("from_not_owned", evidence));
        }
        ctx.effects.propose(Effect::Write(writes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(auth: Option<&str>, ip: &str, from: &str) -> Envelope {
        Envelope {
            auth_user: auth.map(str::to_string),
            client_addr: Some(ip.parse().unwrap()),
            mail_from: Some(from.into()),
            ..Envelope::default()
        }
    }

    #[test]
    fn which_mail_is_outbound_and_whose_it_is() {
        let mut c = OutboundConfig {
            internal_networks: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            ..OutboundConfig::default()
        };
        let login = env(Some(" Alice@Example.JP "), "203.0.113.1", "<x@y.example>");
        assert_eq!(account_of(&c, &login).as_deref(), Some("alice@example.jp"));
        let host = env(None, "10.9.8.7", "<Web@Example.jp>");
        assert_eq!(account_of(&c, &host).as_deref(), Some("ip:10.9.8.7"));
        let v6 = env(Some(""), "2001:db8::25", "<>");
        assert_eq!(account_of(&c, &v6).as_deref(), Some("ip:2001:db8::25"));
        assert_eq!(
            account_of(&c, &env(None, "203.0.113.1", "<a@b.example>")),
            None
        );
        c.internal_account = config::InternalAccount::Sender;
        assert_eq!(account_of(&c, &host).as_deref(), Some("web@example.jp"));
        // A null sender falls back to the host.
        assert_eq!(account_of(&c, &v6).as_deref(), Some("ip:2001:db8::25"));
        c.enabled = false;
        assert_eq!(account_of(&c, &login), None);
    }
}
