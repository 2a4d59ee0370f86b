//! Turns findings into a verdict: summed scores against thresholds, forced
//! actions per rule, allowlists, observe-only mode. The only place that decides.

use std::collections::HashMap;

use crate::config::Config;
use crate::envelope::Envelope;
use crate::report::{Finding, Report, Verdict};
use crate::view::address::domain_of;

pub struct Policy {
    tag: f64,
    quarantine: f64,
    reject: Option<f64>,
    observe: bool,
    scores: HashMap<String, f64>,
    actions: HashMap<String, Verdict>,
    /// Floors for mail from outside the organisation only.
    inbound_actions: HashMap<String, Verdict>,
    allow_senders: Vec<String>,
    allow_networks: Vec<ipnet::IpNet>,
    allow_auth_users: Vec<String>,
    /// `outbound.payload_rules` (or their default), resolved once.
    outbound_payload: Vec<String>,
}

/// A rule's finding before scoring: which detector, which rule, what evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFinding {
    /// The detector's and the rule's names, as the registry spells them
    /// (`detectors::REGISTRY`): borrowed, never copied per finding.
    pub detector: &'static str,
    pub rule: &'static str,
    pub evidence: String,
}

impl Policy {
    pub fn new(config: &Config) -> Policy {
        let mut scores: HashMap<String, f64> = HashMap::new();
        for (detector, rules) in crate::detectors::catalog() {
            for rule in rules {
                scores.insert(format!("{detector}.{}", rule.name), rule.default_score);
            }
        }
        for (rule, score) in &config.policy.scores {
            scores.insert(rule.clone(), *score);
        }
        // Fail closed: a message not fully judged (a limit, an internal
        // error) is at least tagged, and an outbound account on hold (or
        // whose hold state could not be read) is held, unless the admin
        // says otherwise in [policy.actions].
        let mut actions: HashMap<String, Verdict> = HashMap::from([
            ("scan.limit".to_string(), Verdict::Tag),
            ("scan.too_large".to_string(), Verdict::Tag),
            ("scan.error".to_string(), Verdict::Tag),
            ("outbound.held".to_string(), Verdict::Quarantine),
            ("outbound.hold_unknown".to_string(), Verdict::Quarantine),
        ]);
        for (rule, action) in &config.policy.actions {
            actions.insert(rule.clone(), *action);
        }
        // From outside, what runs on a double-click and the payloads that
        // came after macros (RTF exploits, remote templates, shortcuts,
        // smuggling, padding) are held: no honest sender needs them.
        let mut inbound_actions: HashMap<String, Verdict> = [
            "attachment.dangerous_type",
            "payload.equation_editor",
            "payload.remote_template",
            "payload.shortcut_command",
            "payload.html_smuggling",
            "payload.padded",
        ]
        .into_iter()
        .map(|r| (r.to_string(), Verdict::Quarantine))
        .collect();
        for (rule, action) in &config.policy.inbound_actions {
            inbound_actions.insert(rule.clone(), *action);
        }
        let p = &config.policy;
        Policy {
            tag: p.tag,
            quarantine: p.quarantine,
            reject: (p.reject > 0.0).then_some(p.reject),
            observe: p.observe,
            scores,
            actions,
            inbound_actions,
            allow_senders: config
                .allowlist
                .senders
                .iter()
                .map(|s| s.trim().to_lowercase())
                .collect(),
            allow_networks: config.allowlist.client_networks.clone(),
            allow_auth_users: config.allowlist.auth_users.clone(),
            outbound_payload: config.outbound.payload_patterns(),
        }
    }

    /// The score of `detector.rule` after config overrides.
    pub fn score_of(&self, rule: &str) -> f64 {
        self.scores.get(rule).copied().unwrap_or(0.0)
    }

    /// Why this envelope is allowlisted, if it is.
    pub fn allowlisted(&self, envelope: &Envelope) -> Option<String> {
        if let Some(user) = &envelope.auth_user {
            if self.allow_auth_users.iter().any(|u| u == user) {
                return Some(format!("auth user {user}"));
            }
        }
        if let Some(ip) = envelope.client_addr {
            if let Some(net) = self.allow_networks.iter().find(|n| n.contains(&ip)) {
                return Some(format!("client {ip} in {net}"));
            }
        }
        if let Some(sender) = envelope.mail_from.as_deref() {
            let sender = sender.trim_matches(['<', '>']).to_lowercase();
            let domain = domain_of(&sender);
            let sender_key = crate::domains::address_key(&sender);
            for entry in &self.allow_senders {
                // Compared by key: an IDN in either form is one domain.
                let hit = if entry.contains('@') {
                    crate::domains::address_key(entry) == sender_key
                } else {
                    let entry = entry.trim_start_matches('@').trim_start_matches('.');
                    domain
                        .as_deref()
                        .is_some_and(|d| crate::domains::within(d, entry))
                };
                if hit {
                    return Some(format!("sender {sender} matches {entry}"));
                }
            }
        }
        None
    }

    /// Score the findings and decide, for mail from outside the
    /// organisation (the strictest case: `[policy.inbound_actions]` apply).
    pub fn decide(&self, raw: Vec<RawFinding>) -> Report {
        self.decide_for(raw, true)
    }

    /// Score the findings and decide; `inbound`: mail from outside the
    /// organisation (not outbound), to which `inbound_actions` apply.
    pub fn decide_for(&self, raw: Vec<RawFinding>, inbound: bool) -> Report {
        let mut findings = Vec::with_capacity(raw.len());
        let mut forced = Verdict::Accept;
        for f in raw {
            let name = format!("{}.{}", f.detector, f.rule);
            if let Some(action) = self.actions.get(&name) {
                forced = forced.max(*action);
            }
            if inbound {
                if let Some(action) = self.inbound_actions.get(&name) {
                    forced = forced.max(*action);
                }
            }
            findings.push(Finding {
                score: self.score_of(&name),
                detector: f.detector,
                rule: f.rule,
                evidence: f.evidence,
            });
        }
        let score = findings.iter().fold(0.0_f64, |acc, f| acc + f.score);
        let by_score = if self.reject.is_some_and(|r| score >= r) {
            Verdict::Reject
        } else if score >= self.quarantine {
            Verdict::Quarantine
        } else if score >= self.tag {
            Verdict::Tag
        } else {
            Verdict::Accept
        };
        let mut verdict = by_score.max(forced);
        // A forced reject only applies when rejecting is switched on.
        if verdict == Verdict::Reject && self.reject.is_none() && forced != Verdict::Reject {
            verdict = Verdict::Quarantine;
        }
        let mut observed_only = false;
        if self.observe && verdict > Verdict::Tag {
            verdict = Verdict::Tag;
            observed_only = true;
        }
        Report {
            verdict,
            score,
            findings,
            observed_only,
            allowlisted: None,
            effects: Vec::new(),
        }
    }

    /// Outbound mail with a finding of `outbound.payload_rules` gets
    /// `outbound.payload`, naming those rules. Called by the engine once
    /// every detector ran (detectors do not see each other's hits).
    pub fn weigh_outbound_payload(
        &self,
        config: &crate::Config,
        envelope: &Envelope,
        findings: &mut Vec<RawFinding>,
    ) {
        let cfg = &config.outbound;
        let Some(account) = crate::detectors::outbound::account_of(cfg, envelope) else {
            return;
        };
        let patterns = &self.outbound_payload;
        let mut matched: Vec<String> = Vec::new();
        for f in findings.iter() {
            if crate::detectors::outbound::config::is_payload(patterns, f.detector, f.rule) {
                let name = format!("{}.{}", f.detector, f.rule);
                if !matched.contains(&name) {
                    matched.push(name);
                }
            }
        }
        if !matched.is_empty() {
            findings.push(RawFinding {
                detector: crate::detectors::outbound::NAME,
                rule: "payload",
                evidence: format!(
                    "outbound mail from {account} carries {}",
                    matched.join(", ")
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(rule: &str) -> RawFinding {
        let (d, r) = rule.split_once('.').unwrap();
        let (detector, rule) = crate::detectors::rule_id(d, r).expect("a catalogue rule");
        RawFinding {
            detector,
            rule,
            evidence: "e".into(),
        }
    }

    fn policy(toml: &str) -> Policy {
        Policy::new(&Config::parse(toml, "t.toml").unwrap())
    }

    #[test]
    fn thresholds_decide() {
        let p = policy("[policy]\ntag = 2.0\nquarantine = 4.0\nreject = 6.0\n[policy.scores]\n\"scan.error\" = 1.5\n[policy.actions]\n\"scan.error\" = \"accept\"\n");
        assert_eq!(p.decide(vec![]).verdict, Verdict::Accept);
        assert_eq!(p.decide(vec![raw("scan.error")]).verdict, Verdict::Accept);
        assert_eq!(p.decide(vec![raw("scan.error"); 2]).verdict, Verdict::Tag);
        assert_eq!(
            p.decide(vec![raw("scan.error"); 3]).verdict,
            Verdict::Quarantine
        );
        let r = p.decide(vec![raw("scan.error"); 4]);
        assert_eq!((r.verdict, r.score), (Verdict::Reject, 6.0));
    }

    #[test]
    fn reject_is_off_by_default() {
        let p = policy("[policy.scores]\n\"scan.error\" = 100.0\n");
        assert_eq!(
            p.decide(vec![raw("scan.error")]).verdict,
            Verdict::Quarantine
        );
    }

    #[test]
    fn limits_are_tagged_unless_overridden() {
        let p = policy("");
        let r = p.decide(vec![raw("scan.limit")]);
        assert_eq!((r.verdict, r.score), (Verdict::Tag, 0.0));
        let p = policy("[policy.actions]\n\"scan.limit\" = \"accept\"\n");
        assert_eq!(p.decide(vec![raw("scan.limit")]).verdict, Verdict::Accept);
    }

    #[test]
    fn forced_action_is_a_floor() {
        let p = policy("[policy.actions]\n\"scan.error\" = \"quarantine\"\n");
        assert_eq!(
            p.decide(vec![raw("scan.error")]).verdict,
            Verdict::Quarantine
        );
    }

    #[test]
    fn observe_never_goes_past_tag() {
        let p = policy(
            "[policy]\nobserve = true\nreject = 20.0\n[policy.scores]\n\"scan.error\" = 30.0\n",
        );
        let r = p.decide(vec![raw("scan.error")]);
        assert_eq!(r.verdict, Verdict::Tag);
        assert!(r.observed_only);
    }

    #[test]
    fn allowlists() {
        let p = policy(
            "[allowlist]\nsenders = [\"boss@example.com\", \"partner.example\"]\nclient_networks = [\"192.0.2.0/24\"]\nauth_users = [\"relay\"]\n",
        );
        let env = |from: &str| Envelope {
            mail_from: Some(from.into()),
            ..Envelope::default()
        };
        assert!(p.allowlisted(&env("<Boss@Example.com>")).is_some());
        assert!(p.allowlisted(&env("a@mail.partner.example")).is_some());
        assert!(p.allowlisted(&env("a@notpartner.example")).is_none());
        assert!(p.allowlisted(&env("other@example.com")).is_none());
        // An IDN allowlisted in one form matches the other, a look-alike
        // or an undecodable label under it does not.
        let p = policy("[allowlist]\nsenders = [\"例え.jp\", \"ceo@xn--r8jz45g.jp\"]\n");
        assert!(p.allowlisted(&env("<a@mail.xn--r8jz45g.jp>")).is_some());
        assert!(p.allowlisted(&env("CEO@例え。jp")).is_some());
        assert!(p.allowlisted(&env("a@例ぇ.jp")).is_none());
        assert!(p.allowlisted(&env("a@xn--zz.xn--r8jz45g.jp")).is_none());
        let p = policy(
            "[allowlist]\nsenders = [\"boss@example.com\", \"partner.example\"]\nclient_networks = [\"192.0.2.0/24\"]\nauth_users = [\"relay\"]\n",
        );
        let e = Envelope {
            client_addr: Some("192.0.2.7".parse().unwrap()),
            ..Envelope::default()
        };
        assert!(p.allowlisted(&e).is_some());
        let e = Envelope {
            auth_user: Some("relay".into()),
            ..Envelope::default()
        };
        assert!(p.allowlisted(&e).is_some());
    }
}
