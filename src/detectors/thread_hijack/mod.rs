//! `thread_hijack`: replies that hijack a real conversation, the way Emotet
//! answers mail stolen from a victim's mailbox — "RE: <old subject>", the
//! old conversation quoted below, a participant's name, a stranger's address.
//!
//! Four rules, each with evidence:
//! - `fake_reply`: a reply subject with quoted history but no In-Reply-To
//!   or References (a reply composed from stolen text, not a real reply).
//! - `unknown_participant`: In-Reply-To/References name messages the store
//!   remembers, and the sender's address (and its organisation) was never
//!   among their participants.
//! - `quoted_header_mismatch`: the quoted header block names participants,
//!   none at the sender's registrable domain, while the sender's display
//!   name (or the subject of a reply to a block with recipients) ties the
//!   mail to them.
//! - `revived_thread`: the newest quoted message is older than
//!   `revived_after_days` and the reply carries a payload (document,
//!   archive, executable or HTML attachment, or a link in the new text).
//!
//! Mailing-list mail (List-Id) is not judged by the two participant rules:
//! on a list, strangers joining a thread is normal.

/// Quoted history, and reply and forward markers, live in the view
/// (display_name and the store read them too).
pub use crate::view::{quoted, subject};

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::domains::{registrable, registrable_as_written, OrgDomains};
use crate::names::normalize as normalize_name;
use crate::store::threads::{self, normalize_subject, ThreadRecord};
use crate::store::{correspondents, Reads};
use crate::view::{urls, FileType, MessageView};
use quoted::{History, QuotedBlock, Style};
use std::borrow::Cow;
use subject::PrefixKind;

pub const NAME: &str = "thread_hijack";

// Scores add up so that a hijack with a payload is quarantined (10) while
// any one rule alone on a genuine reply stays below tagging or just tags:
// revived_thread (4) + unknown_participant (6) = 10,
// revived_thread (4) + quoted_header_mismatch (6) = 10,
// fake_reply (3) + quoted_header_mismatch (6) + revived_thread (4) = 13.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "fake_reply",
        description: "Reply subject (Re/RE/AW/SV/返信…) with quoted history but no In-Reply-To or References",
        default_score: 3.0,
    },
    RuleInfo {
        name: "unknown_participant",
        description: "In-Reply-To/References name a remembered thread, and the sender's address and organisation were never among its participants",
        default_score: 6.0,
    },
    RuleInfo {
        name: "quoted_header_mismatch",
        description: "The quoted header block names participants, none at the sender's domain, while the display name or subject ties the mail to them",
        default_score: 6.0,
    },
    RuleInfo {
        name: "revived_thread",
        description: "The newest quoted message is older than thread_hijack.revived_after_days and the reply carries an attachment, archive or link",
        default_score: 4.0,
    },
];

/// `[thread_hijack]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreadHijackConfig {
    /// A quoted conversation older than this many days is "revived".
    pub revived_after_days: u64,
    /// Message-IDs of In-Reply-To/References looked up, newest first.
    pub max_references: usize,
    /// Bytes of each text part searched for quoted history.
    pub max_text_bytes: usize,
}

impl Default for ThreadHijackConfig {
    fn default() -> Self {
        ThreadHijackConfig {
            revived_after_days: 30,
            max_references: 20,
            max_text_bytes: 256 * 1024,
        }
    }
}

pub struct ThreadHijack {
    config: ThreadHijackConfig,
    /// The organisation's own domains: one organisation even when it
    /// writes from several domains.
    org_domains: OrgDomains,
}

impl ThreadHijack {
    pub fn new(config: &ThreadHijackConfig, site: &crate::detectors::Site<'_>) -> Self {
        ThreadHijack {
            config: config.clone(),
            org_domains: site.org_domains.clone(),
        }
    }

    /// Same organisation: same registrable domain, or both the organisation's.
    fn same_org(&self, a: &str, b: &str) -> bool {
        self.org_domains.same_org(a, b)
    }
}

/// What the detector gathered from the message before judging it.
struct Facts<'v> {
    view: &'v MessageView,
    /// The quoted history, and what was written now above it (the view's,
    /// derived once per message).
    history: Cow<'v, History>,
    sender_address: Option<String>,
    sender_name: Option<String>,
    /// The sender's registrable domain (a key, compared).
    sender_domain: Option<String>,
    /// The same as the mail wrote it, for evidence.
    sender_domain_shown: Option<String>,
    is_list: bool,
}

impl Detector for ThreadHijack {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [RuleInfo] {
        RULES
    }

    /// The threads In-Reply-To and References name, and the sender's own
    /// correspondent record when the quoted headers name someone else
    /// under the sender's display name.
    fn reads(&self, view: &MessageView, reads: &mut Reads) {
        for id in self.referenced_ids(view) {
            reads.value(threads::thread_key(&id));
        }
        // The sender's record excuses a mismatch tied by the display name;
        // judged here as in `inspect`, as if the mail were no list's (the
        // list is known only from this lookup): at worst one key too many.
        let facts = Facts {
            is_list: false,
            ..self.gather(view)
        };
        let is_reply = subject::parse(&view.subject).outer() == Some(PrefixKind::Reply);
        if let (Some(a), Some((_, true))) = (
            facts.sender_address.as_ref(),
            self.quoted_mismatch(&facts, is_reply),
        ) {
            reads.value(correspondents::address_key(a));
        }
    }

    fn inspect(
        &self,
        view: &MessageView,
        ctx: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        let mut facts = self.gather(view);
        // Only a post to a list the organisation knows is judged as list mail.
        facts.is_list = ctx.known_list.is_some();
        let subject = subject::parse(&view.subject);
        let is_reply = subject.outer() == Some(PrefixKind::Reply);

        // Rules that need no store first: a store error must not hide them.
        if is_reply
            && facts.history.has_history()
            && view.in_reply_to.is_empty()
            && view.references.is_empty()
        {
            hits.push(Hit::new(
                "fake_reply",
                format!(
                    "subject {:?} quotes earlier mail ({}) but has no In-Reply-To or References",
                    view.subject,
                    describe_history(&facts.history)
                ),
            ));
        }
        let mismatch = self.quoted_mismatch(&facts, is_reply);

        // What the lookup read: the remembered threads, and the sender's
        // own record (it matters only to excuse a name-tied mismatch).
        let refs = self.referenced_ids(view);
        let want_sender = mismatch.as_ref().is_some_and(|(_, name_tie)| *name_tie);
        // Mail that is no reply and shows no mismatch (most mail) needs
        // nothing the store knows, and no store error concerns it.
        let nothing_read = crate::store::Snapshot::default();
        let needed = !refs.is_empty() || want_sender;
        let state = match ctx.lookup.snapshot() {
            _ if !needed => &nothing_read,
            Ok(state) => state,
            Err(e) => {
                if let Some((evidence, _)) = mismatch {
                    hits.push(Hit::new("quoted_header_mismatch", evidence));
                }
                return Err(DetectorError::Store(e));
            }
        };
        let mut values = Vec::with_capacity(refs.len() + 1);
        for id in &refs {
            values.push(state.value(&threads::thread_key(id))?);
        }
        if let Some(a) = facts.sender_address.as_ref().filter(|_| want_sender) {
            values.push(state.value(&correspondents::address_key(a))?);
        }
        let records: Vec<ThreadRecord> = values[..refs.len()]
            .iter()
            .filter_map(|v| serde_json::from_slice(v.as_ref()?).ok())
            .collect();
        let sender_record = facts
            .sender_address
            .as_ref()
            .filter(|_| want_sender)
            .and_then(|_| correspondents::parse_record(*values.last()?));

        if let Some((evidence, name_tie)) = mismatch {
            // The sender writing from this address under this name before
            // means it is theirs (a second address), not a stranger's.
            let known_under_name = name_tie
                && facts
                    .sender_name
                    .as_deref()
                    .zip(sender_record.as_ref())
                    .is_some_and(|(n, r)| r.has_name(n));
            if !known_under_name {
                hits.push(Hit::new("quoted_header_mismatch", evidence));
            }
        }
        if let Some(evidence) = self.unknown_participant(&facts, &records) {
            hits.push(Hit::new("unknown_participant", evidence));
        }
        if let Some(evidence) = self.revived(&facts, &records, ctx.now) {
            hits.push(Hit::new("revived_thread", evidence));
        }
        Ok(())
    }
}

impl ThreadHijack {
    fn gather<'v>(&self, view: &'v MessageView) -> Facts<'v> {
        let from = view.from.as_ref();
        let sender_address = from.and_then(|m| m.address_lower());
        let from_domain = from.and_then(|m| m.domain());
        let sender_domain = from_domain.as_deref().map(registrable);
        let sender_domain_shown = from_domain.as_deref().map(registrable_as_written);
        Facts {
            view,
            history: view.history(self.config.max_text_bytes),
            sender_address,
            sender_name: from.and_then(|m| m.name.clone()),
            sender_domain,
            sender_domain_shown,
            is_list: is_list_mail(view),
        }
    }

    /// In-Reply-To first, then References newest first; at most `max_references`.
    fn referenced_ids(&self, view: &MessageView) -> Vec<String> {
        let mut seen = BTreeSet::new();
        view.in_reply_to
            .iter()
            .chain(view.references.iter().rev())
            .map(|id| id.trim().trim_matches(['<', '>']).to_string())
            .filter(|id| !id.is_empty() && seen.insert(id.clone()))
            .take(self.config.max_references)
            .collect()
    }

    /// `quoted_header_mismatch`: (evidence, whether the tie is the display name).
    fn quoted_mismatch(&self, f: &Facts<'_>, is_reply: bool) -> Option<(String, bool)> {
        if f.is_list {
            return None;
        }
        let sender_domain = f.sender_domain.as_deref()?;
        let with_address: Vec<(&str, String)> = f
            .history
            .blocks
            .iter()
            .flat_map(QuotedBlock::people)
            .filter_map(|p| {
                let a = p.address.as_deref()?;
                let d = crate::view::address::domain_of(a)?;
                Some((a, registrable(&d)))
            })
            .collect();
        if with_address.is_empty()
            || with_address
                .iter()
                .any(|(_, d)| self.same_org(d, sender_domain))
        {
            return None;
        }
        let sender_name = f.sender_name.as_deref().unwrap_or("");
        let norm = normalize_name(sender_name);
        let lower_name = sender_name.to_lowercase();
        let named = f
            .history
            .blocks
            .iter()
            .flat_map(QuotedBlock::people)
            .find(|p| {
                let by_name = !norm.is_empty()
                    && p.name.as_deref().is_some_and(|n| normalize_name(n) == norm);
                let by_address = p.address.as_deref().is_some_and(|a| lower_name.contains(a));
                by_name || by_address
            });
        let subject_tie = || {
            let own = normalize_subject(&f.view.subject);
            is_reply
                && !own.is_empty()
                && f.history.blocks.iter().any(|b| {
                    b.style == Style::HeaderBlock
                        && !b.recipients.is_empty()
                        && b.subject
                            .as_deref()
                            .is_some_and(|s| normalize_subject(s) == own)
                })
        };
        let tie = if let Some(p) = named {
            format!(
                "the display name {sender_name:?} is the quoted participant {}",
                describe_person(p)
            )
        } else if subject_tie() {
            "it replies to the quoted message's subject without having been among its participants"
                .to_string()
        } else {
            return None;
        };
        let shown = f.sender_domain_shown.as_deref().unwrap_or(sender_domain);
        let mut quoted_addresses: Vec<&str> = with_address.iter().map(|(a, _)| *a).collect();
        quoted_addresses.dedup();
        quoted_addresses.truncate(5);
        Some((
            format!(
                "sender {} ({shown}): quoted headers name {}, none at {shown}; {tie}",
                f.sender_address.as_deref().unwrap_or(""),
                quoted_addresses.join(", "),
            ),
            named.is_some(),
        ))
    }

    fn unknown_participant(&self, f: &Facts<'_>, records: &[ThreadRecord]) -> Option<String> {
        // A remembered list thread excuses nobody by itself: a reply that
        // arrives outside the list is judged like any direct reply.
        if records.is_empty() || f.is_list {
            return None;
        }
        let address = f.sender_address.as_deref()?;
        let domain = f.sender_domain.as_deref()?;
        if records.iter().any(|r| r.has_address(address)) {
            return None;
        }
        let mut domains: Vec<&str> = records
            .iter()
            .flat_map(|r| r.vouching().map(|p| p.domain.as_str()))
            .filter(|d| !d.is_empty())
            .collect();
        domains.sort();
        domains.dedup();
        if domains.iter().any(|d| self.same_org(d, domain)) {
            return None;
        }
        let name_note = match f.sender_name.as_deref() {
            Some(n) if records.iter().any(|r| r.has_name(n)) => {
                format!("; the display name {n:?} is a participant's")
            }
            _ => String::new(),
        };
        domains.truncate(5);
        Some(format!(
            "references {} remembered message(s) with participants at {}; the sender {address} never took part{name_note}",
            records.len(),
            domains.join(", "),
        ))
    }

    /// `now` is the scan's clock, never the reply's own Date header, which
    /// the sender writes (a hijacker would date it next to the old thread).
    fn revived(&self, f: &Facts<'_>, records: &[ThreadRecord], now: i64) -> Option<String> {
        let newest = f
            .history
            .blocks
            .iter()
            .filter_map(|b| b.date)
            .chain(records.iter().map(|r| r.date))
            .max()?;
        let age_days = (now - newest) / 86_400;
        if age_days <= self.config.revived_after_days as i64 {
            return None;
        }
        let payload = payload(f)?;
        Some(format!(
            "the newest quoted message is from {} ({age_days} days earlier) and the reply carries {payload}",
            crate::calendar::ymd(newest)
        ))
    }
}

/// Mail that says it came through a mailing list (see
/// [`MessageView::has_list_headers`]).
pub fn is_list_mail(view: &MessageView) -> bool {
    view.has_list_headers()
}

/// The payload a reply carries, described; None when it carries none.
fn payload(f: &Facts<'_>) -> Option<String> {
    let attachment = f.view.attachments.iter().find(|a| {
        a.parent.is_none()
            && !matches!(
                a.file_type,
                FileType::Text
                    | FileType::Unknown
                    | FileType::Png
                    | FileType::Jpeg
                    | FileType::Gif
                    | FileType::Email
            )
    });
    if let Some(a) = attachment {
        return Some(format!("{} ({})", a.path, a.file_type));
    }
    f.history
        .new_texts(f.view)
        .flat_map(urls::in_text)
        .chain(f.history.new_links.iter().map(|l| urls::trim_end(l)))
        .next()
        .map(|url| format!("a link {}", crate::sanitize::evidence(url)))
}

fn describe_person(p: &quoted::Person) -> String {
    match (&p.name, &p.address) {
        (Some(n), Some(a)) => format!("{n:?} <{a}>"),
        (Some(n), None) => format!("{n:?}"),
        (None, Some(a)) => a.clone(),
        (None, None) => "?".into(),
    }
}

fn describe_history(q: &History) -> String {
    match q.blocks.first() {
        Some(b) => {
            let kind = match b.style {
                Style::HeaderBlock => "a quoted header block",
                Style::Attribution => "a quoted attribution line",
            };
            match b.from.first() {
                Some(p) => format!("{kind} from {}", describe_person(p)),
                None => kind.to_string(),
            }
        }
        None => format!("{} quoted lines", q.quote_lines),
    }
}

#[cfg(test)]
mod tests;
