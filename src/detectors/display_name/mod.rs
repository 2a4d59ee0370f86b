//! `display_name`: a real person's or company's name over a stranger's address.
//!
//! Every Emotet incident report says it: the From display name is a real
//! employee or partner, the address belongs to an unrelated domain. The rules:
//! an address written inside the display name, a directory person, a
//! correspondent learned from earlier mail (state store), the organisation's
//! own name, an organisation address repeated at the top of
//! the body (seed 000), and a Reply-To elsewhere.
//!
//! Guards against the legitimate look-alikes: the sender's own registrable
//! domain always passes, and mail from the organisation's own domains is not
//! judged by the names it shows; a person's listed addresses pass (free-mail
//! ones only when equal); services that notify on a person's behalf
//! ("Name (via Google Docs)") pass; mail from a mailing list (List-Id) is
//! reported only by the low-scored `via_mailing_list`; the organisation's
//! name is reported only when no person was recognised, and not when the
//! sender's own domain carries it (a brand named after its domain).

pub mod directory;
mod known;
pub mod services;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::detectors::Site;
use crate::domains::{self, registrable, OrgDomains};
use crate::names::{self, NameKey};
use crate::view::address::find_in_text;
use crate::view::{quoted, MessageView};
use directory::{Directory, Person};

pub const NAME: &str = "display_name";

pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "embedded_address",
        description: "The display name contains an address (also with full-width @, spaces or brackets) at another registrable domain than the From address",
        default_score: 6.0,
    },
    RuleInfo {
        name: "directory_person",
        description: "The display name matches a directory person whose addresses are all elsewhere",
        default_score: 6.0,
    },
    RuleInfo {
        name: "known_correspondent",
        description: "The display name is known from earlier mail (state store: learn, or mail the milter passed) only at other organisations than the sender's",
        default_score: 5.0,
    },
    RuleInfo {
        name: "organization_name",
        description: "The display name contains the organisation's name or a label of its domains, but From is not the organisation's",
        default_score: 5.0,
    },
    RuleInfo {
        name: "body_address",
        description: "The first lines of the body show an address of the organisation or a directory domain, but the sender is elsewhere (seed 000)",
        default_score: 3.0,
    },
    RuleInfo {
        name: "reply_to_impersonation",
        description: "Reply-To at another registrable domain than From, on a message whose display name impersonates someone",
        default_score: 3.0,
    },
    RuleInfo {
        name: "reply_to_mismatch",
        description: "Reply-To at another registrable domain than From (common in newsletters too: weak alone)",
        default_score: 1.0,
    },
    RuleInfo {
        name: "via_mailing_list",
        description: "A display name that would be an impersonation, on mail from a mailing list (List-Id), where posters use other addresses: noted, weak",
        default_score: 1.0,
    },
];

/// `[display_name]`: impersonation through the From display name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayNameConfig {
    /// CSV file of `display name,address` lines (staff and partners). A
    /// relative path is taken from the config file's folder. Empty: none.
    pub directory: String,
    /// Domains of services that send on a person's behalf (calendar,
    /// documents, tickets). A domain covers its subdomains. Replaces the
    /// built-in list when set.
    pub services: Vec<String>,
    /// Free-mail domains in addition to the built-in list; never an organisation.
    pub freemail_domains: Vec<String>,
    /// How many non-empty lines at the top of the body `body_address` reads.
    pub body_lines: usize,
    /// Display names longer than this (in characters) are cut before matching.
    pub max_name_chars: usize,
}

impl Default for DisplayNameConfig {
    fn default() -> Self {
        DisplayNameConfig {
            directory: String::new(),
            services: services::DEFAULT_SERVICES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            freemail_domains: Vec::new(),
            body_lines: 5,
            max_name_chars: 200,
        }
    }
}

impl DisplayNameConfig {
    /// The directory file, resolved against the folder of `config_file`.
    pub fn directory_path(&self, config_file: Option<&Path>) -> Option<PathBuf> {
        let dir = self.directory.trim();
        if dir.is_empty() {
            return None;
        }
        let path = PathBuf::from(dir);
        if path.is_relative() {
            if let Some(parent) = config_file.and_then(Path::parent) {
                return Some(parent.join(path));
            }
        }
        Some(path)
    }
}

/// Problems with the `[display_name]` section that need the file system: the
/// directory file, each error naming its file and line. Called by config
/// validation so that `config check` and start-up report them.
pub fn check_config(config: &DisplayNameConfig, config_file: Option<&Path>) -> Vec<String> {
    let Some(path) = config.directory_path(config_file) else {
        return Vec::new();
    };
    match Directory::load(&path) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The staff directory could not be loaded: every problem found, each
/// naming its file and line (reported on every message, as `scan.error`).
#[derive(Debug, thiserror::Error)]
#[error("directory not loaded: {}", join_problems(.0))]
pub struct DirectoryNotLoaded(pub Vec<directory::DirectoryError>);

fn join_problems(errors: &[directory::DirectoryError]) -> String {
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

/// The organisation's name or domain label, prepared for phrase search.
#[derive(Debug, Clone)]
struct OrgTerm {
    /// As configured, for evidence.
    shown: String,
    /// Skeleton words joined, e.g. "legalholdings".
    joined: String,
    /// Written in Han/kana: matched as a substring (no word boundaries).
    cjk: bool,
}

pub struct DisplayNameDetector {
    settings: DisplayNameConfig,
    /// The organisation's domains (free-mail ones dropped).
    org_domains: OrgDomains,
    org_terms: Vec<OrgTerm>,
    /// The directory, or why it could not be loaded (reported per message).
    directory: Result<Directory, DirectoryNotLoaded>,
    /// Registrable, non-free-mail domains of the directory's addresses.
    directory_domains: BTreeSet<String>,
}

impl DisplayNameDetector {
    pub fn new(settings: &DisplayNameConfig, site: &Site<'_>) -> Self {
        let settings = settings.clone();
        let is_free = |d: &str| domains::is_freemail(d, &settings.freemail_domains);
        let org_domains = site.org_domains.clone();
        let mut org_terms = Vec::new();
        for name in &site.organization.names {
            if let Some(key) = NameKey::new(name) {
                push_term(&mut org_terms, name, key.canonical());
            }
        }
        for (domain, shown) in org_domains.registrable_domains() {
            // The label as a reader sees it: 例え, not xn--r8jz45g.
            let joined: String = names::words(&first_label(domain)).concat();
            push_term(&mut org_terms, shown, joined);
        }
        let directory = match settings.directory_path(site.config_file) {
            None => Ok(Directory::default()),
            Some(path) => Directory::load(&path).map_err(DirectoryNotLoaded),
        };
        let directory_domains = directory
            .as_ref()
            .map(|d| d.organisation_domains(is_free))
            .unwrap_or_default();
        DisplayNameDetector {
            settings,
            org_domains,
            org_terms,
            directory,
            directory_domains,
        }
    }

    fn is_freemail(&self, domain: &str) -> bool {
        domains::is_freemail(domain, &self.settings.freemail_domains)
    }

    fn is_service(&self, domain: &str) -> bool {
        let Some(key) = domains::valid_key(domain) else {
            return false;
        };
        self.settings
            .services
            .iter()
            .any(|s| domains::key_within(&key, s))
    }
}

/// The first label of a registrable domain in its Unicode form, the way a
/// reader would write it in a name: `例え` for `xn--r8jz45g.jp`.
fn first_label(domain: &str) -> String {
    let unicode = domains::unicode(domain);
    unicode.split('.').next().unwrap_or("").to_string()
}

fn push_term(terms: &mut Vec<OrgTerm>, shown: &str, joined: String) {
    let cjk = joined.chars().any(names::is_cjk);
    // Short Latin labels ("ab", "jp") would match ordinary words.
    let long_enough = if cjk {
        joined.chars().count() >= 2
    } else {
        joined.chars().count() >= 4
    };
    if long_enough && !terms.iter().any(|t| t.joined == joined) {
        terms.push(OrgTerm {
            shown: shown.to_string(),
            joined,
            cjk,
        });
    }
}

/// The sender as the rules compare it.
struct Sender<'a> {
    /// The address as written (lower case), for evidence.
    address: String,
    /// The address as compared ([`domains::address_key`]).
    address_key: String,
    /// The domain as written (lower case).
    domain: String,
    /// The registrable domain, as compared (a key).
    reg: String,
    /// The display name, cut to `max_name_chars`.
    name: Option<String>,
    view: &'a MessageView,
}

/// An impersonation found by one rule, before the guards decide its fate.
struct Match {
    rule: &'static str,
    evidence: String,
}

impl Detector for DisplayNameDetector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [RuleInfo] {
        RULES
    }

    /// The names the correspondent memory knows: read for every named
    /// sender outside the organisation (whether the rule needs them is
    /// known only once the directory rules ran; the keys cost nothing
    /// more in the one batched read).
    fn reads(&self, message: &MessageView, reads: &mut crate::store::Reads) {
        let Some(from) = &message.from else {
            return;
        };
        let (Some(name), Some(domain)) = (from.name.as_deref(), from.domain()) else {
            return;
        };
        if from.address_lower().is_none() || self.org_domains.contains(&domain) {
            return;
        }
        let name: String = name.chars().take(self.settings.max_name_chars).collect();
        known::reads(&name, reads);
    }

    fn inspect(
        &self,
        message: &MessageView,
        ctx: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        let directory = self
            .directory
            .as_ref()
            .map_err(|e| DetectorError::new(e.to_string()))?;
        let Some(from) = &message.from else {
            return Ok(());
        };
        let (Some(address), Some(domain)) = (from.address_lower(), from.domain()) else {
            return Ok(());
        };
        let sender = Sender {
            reg: registrable(&domain),
            address_key: domains::address_key(&address),
            address,
            domain,
            name: from
                .name
                .as_deref()
                .map(|n| n.chars().take(self.settings.max_name_chars).collect()),
            view: message,
        };
        if self.sent_by_service(&sender) {
            return Ok(());
        }

        let mut matches = Vec::new();
        // A store that cannot answer costs this rule only: the others still
        // report, and the error becomes scan.error evidence at the end.
        let mut store_error = None;
        if let Some(name) = &sender.name {
            self.embedded_addresses(&sender, name, directory, &mut matches);
            self.directory_people(&sender, name, directory, &mut matches);
            // The directory is the stronger claim; the store covers the rest.
            if matches.is_empty() && !self.org_domains.contains(&sender.domain) {
                let free = |d: &str| self.is_freemail(d);
                let state = ctx.lookup.snapshot();
                let checked =
                    state.and_then(|s| known::check(&sender, name, s, free, &mut matches));
                if let Err(e) = checked {
                    store_error = Some(DetectorError::new(format!("known_correspondent: {e}")));
                }
            }
            // The organisation's name is the weaker claim: worth reporting
            // only when no person or address was recognised.
            if matches.is_empty() {
                self.organization_names(&sender, name, &mut matches);
            }
        }
        self.body_addresses(&sender, directory, &mut matches);

        // Only a list the organisation knows (configured, or learned over
        // days from its list server): anyone can write a List-Id header.
        if let Some(list) = ctx.known_list {
            // Posters to a list write from whatever address they like, and
            // lists rewrite From and Reply-To: note, don't accuse.
            if let Some(first) = matches.first() {
                let more = if matches.len() > 1 {
                    format!(" (+{} more)", matches.len() - 1)
                } else {
                    String::new()
                };
                hits.push(Hit::new(
                    "via_mailing_list",
                    format!(
                        "list {}: {}: {}{more}",
                        clip(list, 80),
                        first.rule,
                        first.evidence
                    ),
                ));
            }
            return store_error.map_or(Ok(()), Err);
        }

        let reply = self.reply_to(&sender, &matches);
        hits.extend(matches.into_iter().map(|m| Hit::new(m.rule, m.evidence)));
        hits.extend(reply);
        store_error.map_or(Ok(()), Err)
    }
}

impl DisplayNameDetector {
    /// Notifications sent by a service on a person's behalf: the From domain
    /// is a listed service, or the name says "(via X)" / "X経由" and X is the
    /// sender's own domain.
    fn sent_by_service(&self, sender: &Sender<'_>) -> bool {
        if self.is_service(&sender.domain) {
            return true;
        }
        let Some(name) = &sender.name else {
            return false;
        };
        static VIA: OnceLock<Regex> = OnceLock::new();
        let via = VIA.get_or_init(|| {
            Regex::new(r"(?i)(?:^|[\s(\[])via\s+([^()\[\]]+)|[(\[]?([^()\[\]\s]+)\s*経由").unwrap()
        });
        let folded = names::nfkc(name);
        let label: String = names::words(&first_label(&sender.reg)).concat();
        via.captures_iter(&folded).any(|c| {
            let service = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
            names::words(service)
                .iter()
                .any(|w| w.chars().count() >= 3 && label.contains(w.as_str()))
        })
    }

    /// `embedded_address`: an address written in the display name.
    fn embedded_addresses(
        &self,
        sender: &Sender<'_>,
        name: &str,
        directory: &Directory,
        out: &mut Vec<Match>,
    ) {
        // The organisation's own systems (help desks, portals) show their
        // customers' addresses; spoofing our own domain is DMARC's business.
        if self.org_domains.contains(&sender.domain) {
            return;
        }
        let listed_sender = directory.person_with_address(&sender.address);
        for shown in find_in_text(name) {
            let reg = registrable(domain_part(&shown));
            if reg == sender.reg {
                continue;
            }
            let person = directory.person_with_address(&shown);
            // The same person writing from another address of theirs.
            if let (Some(p), Some(s)) = (person, listed_sender) {
                if std::ptr::eq(p, s) {
                    continue;
                }
            }
            let who = match person {
                Some(p) => format!(" (directory: {})", describe(p)),
                None => String::new(),
            };
            out.push(Match {
                rule: "embedded_address",
                evidence: format!(
                    "display name \"{}\" shows {shown}{who}; From is {}",
                    clip(name, 80),
                    sender.address
                ),
            });
        }
    }

    /// `directory_person`: the name of a directory person whose addresses
    /// are all elsewhere.
    fn directory_people(
        &self,
        sender: &Sender<'_>,
        name: &str,
        directory: &Directory,
        out: &mut Vec<Match>,
    ) {
        if directory.is_empty() || self.org_domains.contains(&sender.domain) {
            return;
        }
        let mut seen: Vec<&Person> = Vec::new();
        for key in names::lookup_keys(name) {
            for person in directory.lookup(&key) {
                if seen.contains(&person) {
                    continue;
                }
                seen.push(person);
                if self.is_own_address(person, sender) {
                    continue;
                }
                out.push(Match {
                    rule: "directory_person",
                    evidence: format!(
                        "display name \"{}\" is {}; From is {}",
                        clip(name, 80),
                        describe(person),
                        sender.address
                    ),
                });
            }
        }
    }

    /// True when the sender is one of the person's addresses: the same
    /// address, or the same registrable domain unless that is free mail.
    fn is_own_address(&self, person: &Person, sender: &Sender<'_>) -> bool {
        person.addresses.iter().any(|a| {
            domains::address_key(a) == sender.address_key
                || (!self.is_freemail(&sender.domain) && registrable(domain_part(a)) == sender.reg)
        })
    }

    /// `organization_name`: the organisation's name or domain label in the
    /// display name while the sender is not the organisation.
    fn organization_names(&self, sender: &Sender<'_>, name: &str, out: &mut Vec<Match>) {
        if self.org_terms.is_empty() || self.org_domains.contains(&sender.domain) {
            return;
        }
        let words = names::words(name);
        let all: String = words.concat();
        // A brand named after the sender's own domain (a newsletter from
        // examplecloud.io naming "Example") is the sender's own name.
        let sender_label: String = names::words(&first_label(&sender.reg)).concat();
        for term in &self.org_terms {
            let found = if term.cjk {
                all.contains(&term.joined)
            } else {
                contains_phrase(&words, &term.joined)
            };
            if !found || sender_label.contains(&term.joined) {
                continue;
            }
            let domains = self.org_domains.shown();
            out.push(Match {
                rule: "organization_name",
                evidence: format!(
                    "display name \"{}\" names the organisation ({}; its domains: {}); From is {}",
                    clip(name, 80),
                    term.shown,
                    domains.join(", "),
                    sender.address
                ),
            });
            return;
        }
    }

    /// `body_address`: the top of the body shows an address of the
    /// organisation or of a directory domain, and the sender is none of them.
    fn body_addresses(&self, sender: &Sender<'_>, directory: &Directory, out: &mut Vec<Match>) {
        let known =
            |reg: &str| self.org_domains.contains(reg) || self.directory_domains.contains(reg);
        if known(&sender.reg) || self.body_lines_empty() {
            return;
        }
        let view = sender.view;
        let recipients: BTreeSet<String> = view
            .to
            .iter()
            .chain(&view.cc)
            .filter_map(|m| m.address.as_deref())
            .chain(view.envelope.rcpt_to.iter().map(String::as_str))
            .map(domains::address_key)
            .collect();
        // The first text the reader sees: the message's own first text part
        // (for multipart/alternative, either rendering starts the same).
        let Some(body) = view.texts.iter().find(|t| t.depth == 0 && !t.is_attachment) else {
            return;
        };
        // What the sender wrote now: the text down to its quoted history.
        let written = quoted::parse_head(&body.text, self.settings.body_lines, BODY_BYTES).new_text;
        let mut shown_lines = 0;
        for (n, line) in written.lines().enumerate() {
            // A "line" of megabytes (no newlines) is read only so far.
            let line = clip_bytes(line, MAX_LINE_BYTES).trim();
            if line.is_empty() {
                continue;
            }
            if shown_lines >= self.settings.body_lines {
                break;
            }
            shown_lines += 1;
            for shown in find_in_text(line) {
                let reg = registrable(domain_part(&shown));
                if reg == sender.reg
                    || !known(&reg)
                    || recipients.contains(&domains::address_key(&shown))
                {
                    continue;
                }
                let who = match directory.person_with_address(&shown) {
                    Some(p) => format!(" (directory: {})", describe(p)),
                    None => " (organisation domain)".to_string(),
                };
                out.push(Match {
                    rule: "body_address",
                    evidence: format!(
                        "body line {} shows {shown}{who}; From is {}",
                        n + 1,
                        sender.address
                    ),
                });
                return;
            }
        }
    }

    fn body_lines_empty(&self) -> bool {
        self.settings.body_lines == 0
    }

    /// `reply_to_mismatch` / `reply_to_impersonation`.
    fn reply_to(&self, sender: &Sender<'_>, matches: &[Match]) -> Option<Hit> {
        for reply in &sender.view.reply_to {
            let (Some(address), Some(domain)) = (reply.address_lower(), reply.domain()) else {
                continue;
            };
            if registrable(&domain) == sender.reg {
                continue;
            }
            // The domain as the mail wrote it: evidence is read by people.
            let from_domain = domains::registrable_as_written(&sender.domain);
            let (rule, why) = match matches.first() {
                Some(m) => (
                    "reply_to_impersonation",
                    format!("; display name: {}", m.rule),
                ),
                None => ("reply_to_mismatch", String::new()),
            };
            return Some(Hit::new(
                rule,
                format!("Reply-To {address} is not at From's domain ({from_domain}){why}"),
            ));
        }
        None
    }
}

/// `"Name" <a@b, c@d>` for evidence: who is impersonated and where they
/// really write from.
fn describe(person: &Person) -> String {
    format!("\"{}\" <{}>", person.name, person.addresses.join(", "))
}

/// How much of one body line `body_address` reads.
const MAX_LINE_BYTES: usize = 1000;
/// How much of the body `body_address` looks at for quoted history (as
/// much as `thread_hijack` does by default).
const BODY_BYTES: usize = 256 * 1024;

/// The longest prefix of `s` of at most `max` bytes that ends on a character.
fn clip_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// At most `max` characters, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

fn domain_part(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// True when `words` has a run of consecutive words that spells `phrase`.
fn contains_phrase(words: &[String], phrase: &str) -> bool {
    (0..words.len()).any(|start| {
        let mut joined = String::new();
        for w in &words[start..] {
            joined.push_str(w);
            if joined.len() >= phrase.len() {
                return joined == phrase;
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_bytes_keeps_characters_whole() {
        assert_eq!(clip_bytes("山田太郎", 4), "山");
        assert_eq!(clip_bytes("abc", 10), "abc");
    }

    #[test]
    fn phrases_need_word_boundaries() {
        let w = names::words("Acmeville Bank");
        assert!(!contains_phrase(&w, "acme"));
        let w = names::words("Legal-Holdings 山田");
        assert!(contains_phrase(&w, "legalholdings"));
    }
}
