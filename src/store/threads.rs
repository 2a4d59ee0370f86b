//! Thread memory: for every message remembered, its Message-ID → who took
//! part (From, To, Cc), its normalised subject and date, whether it came
//! through a mailing list. `thread_hijack` looks up the messages a reply's
//! In-Reply-To/References name.
//!
//! Key: `thread:<hash(Message-ID)>` → JSON [`ThreadRecord`], expiring after
//! `store.thread_ttl_days`. Remembering a message also updates the
//! correspondents ([`super::correspondents`]) — once per Message-ID, so
//! reading the same mail twice (`learn` run again) changes nothing.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::correspondents::{self, name_hash, Seen};
use super::{hash, Store, StoreResult, WriteOp};
use crate::domains::{address_key, registrable, registrable_as_written, OrgDomains};
use crate::view::MessageView;

/// Threads one believed reply corroborates at most (In-Reply-To, then the
/// newest References).
const MAX_CORROBORATED: usize = 10;

/// Participants kept per message (a mail to a huge list is capped).
pub const MAX_PARTICIPANTS: usize = 50;

/// One participant of a remembered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Hash of the address.
    pub address: String,
    /// Registrable domain of the address, in clear, as the mail wrote it
    /// (for evidence; compared by its key, [`crate::domains`]).
    pub domain: String,
    /// Hash of the normalised display name, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether this participant's part in the thread is corroborated (see
    /// [`Trust`]); only such participants vouch for a later reply.
    #[serde(default = "yes")]
    pub vouches: bool,
}

fn yes() -> bool {
    true
}

/// How far a remembered message is believed. Mail the organisation sent
/// (authenticated or internal: outbound) and mail an admin feeds to
/// `learn` are believed whole. Inbound mail is only a claim: anyone can
/// write any Message-ID, From and Cc. Of an inbound message only these are
/// remembered as participants who vouch for a later reply:
/// - its recipients at the organisation's own domains (it reached them);
/// - its From, when the Message-ID's registrable domain is the From's
///   (an attacker who plants a record under a real thread's Message-ID
///   cannot also make it name himself).
///
/// Only its From becomes a known correspondent (so one forged message
/// Cc'ing a name at three domains cannot make that name "generic").
#[derive(Debug, Clone)]
pub struct Trust<'a> {
    pub believed: bool,
    /// The organisation's domains.
    pub org_domains: &'a OrgDomains,
}

impl Trust<'_> {
    pub const BELIEVED: Trust<'static> = Trust {
        believed: true,
        org_domains: &OrgDomains::EMPTY,
    };
}

/// What is remembered of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// The message's Date (unix seconds), or when it was remembered.
    pub date: i64,
    /// Hash of the subject without reply/forward prefixes.
    pub subject: String,
    pub participants: Vec<Participant>,
    /// It came through a mailing list (List-Id).
    #[serde(default)]
    pub list: bool,
}

impl ThreadRecord {
    /// The participants who vouch for a reply (see [`Trust`]).
    pub fn vouching(&self) -> impl Iterator<Item = &Participant> {
        self.participants.iter().filter(|p| p.vouches)
    }

    pub fn has_address(&self, address: &str) -> bool {
        let h = hash::address(address);
        self.vouching().any(|p| p.address == h)
    }

    pub fn has_name(&self, name: &str) -> bool {
        name_hash(name).is_some_and(|h| self.vouching().any(|p| p.name.as_ref() == Some(&h)))
    }
}

pub fn thread_key(message_id: &str) -> String {
    format!("thread:{}", hash::message_id(message_id))
}

/// The subject as threads compare it ([`crate::view::subject::normalize`]).
pub use crate::view::subject::normalize as normalize_subject;

/// The remembered messages among `ids` (Message-IDs), in the order given;
/// one read for all of them.
pub fn lookup(store: &dyn Store, ids: &[String]) -> StoreResult<Vec<(String, ThreadRecord)>> {
    let keys: Vec<String> = ids.iter().map(|id| thread_key(id)).collect();
    let values = store.get_many(&keys)?;
    Ok(ids
        .iter()
        .zip(values)
        .filter_map(|(id, v)| {
            let rec = serde_json::from_slice(&v?).ok()?;
            Some((id.clone(), rec))
        })
        .collect())
}

/// What [`remember`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// A message not seen before; thread and correspondents recorded.
    New,
    /// This Message-ID was already remembered; nothing changed.
    Known,
    /// No sender and no recipients: nothing worth remembering.
    Empty,
}

/// The id a message is remembered under: its Message-ID, or for mail
/// without one a hash of From, Date and Subject (stable across runs).
pub fn message_key_id(view: &MessageView) -> String {
    match view.message_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!(
            "no-id:{}",
            hash::digest(
                "noid",
                &format!(
                    "{}\n{}\n{}",
                    view.from
                        .as_ref()
                        .and_then(|m| m.address_lower())
                        .unwrap_or_default(),
                    view.date.unwrap_or(0),
                    view.subject
                )
            )
        ),
    }
}

/// What [`remember`] needs of a message, taken from its view when it is
/// scanned: owned, so that remembering can be proposed as an effect and
/// applied after the verdict (an effect of the scan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembrance {
    /// The id the message is remembered under ([`message_key_id`]).
    pub id: String,
    /// For log lines.
    pub log_id: String,
    /// From, To and Cc (address, display name), de-duplicated, at most
    /// [`MAX_PARTICIPANTS`].
    pub participants: Vec<(String, Option<String>)>,
    pub from: Option<String>,
    /// The registrable domain of the Message-ID.
    pub id_domain: Option<String>,
    /// In-Reply-To, then References newest first (threads a believed reply
    /// corroborates), at most [`MAX_CORROBORATED`].
    pub replies_to: Vec<String>,
    /// List-Id and the list server's registrable domain.
    pub list: Option<(String, String)>,
    pub has_list_headers: bool,
    /// The message's Date (unix seconds).
    pub date: Option<i64>,
    /// Hash of the normalised subject.
    pub subject: String,
}

impl Remembrance {
    pub fn of(view: &MessageView) -> Remembrance {
        let mut participants: Vec<(String, Option<String>)> = Vec::new();
        for m in view.from.iter().chain(&view.to).chain(&view.cc) {
            let Some(address) = m.address.as_deref() else {
                continue;
            };
            if !address.contains('@')
                || participants
                    .iter()
                    .any(|(a, _)| address_key(a) == address_key(address))
            {
                continue;
            }
            if participants.len() >= MAX_PARTICIPANTS {
                break;
            }
            participants.push((address.to_string(), m.name.clone()));
        }
        Remembrance {
            id: message_key_id(view),
            log_id: view.envelope.log_id().to_string(),
            participants,
            from: view.from.as_ref().and_then(|m| m.address.clone()),
            id_domain: view
                .message_id
                .as_deref()
                .and_then(|id| id.rsplit_once('@'))
                .map(|(_, d)| registrable(d.trim_end_matches('>'))),
            replies_to: view
                .in_reply_to
                .iter()
                .chain(view.references.iter().rev())
                .map(|id| id.trim().trim_matches(['<', '>']).to_string())
                .filter(|id| !id.is_empty())
                .take(MAX_CORROBORATED)
                .collect(),
            list: view
                .list_id
                .as_deref()
                .map(|l| (l.to_string(), super::lists::server_of(view))),
            has_list_headers: view.has_list_headers(),
            date: view.date,
            subject: hash::digest("subject", &normalize_subject(&view.subject)),
        }
    }
}

/// Remember a message: its thread record, and each participant as a
/// correspondent. `now` (unix seconds) dates mail without a Date header.
/// Read, work out and write as one step ([`Store::update`]): two messages
/// of the same correspondent remembered at once (two threads, two mail
/// servers on one Redis) both count.
pub fn remember(
    store: &dyn Store,
    message: &Remembrance,
    ttl: Duration,
    now: i64,
    trust: &Trust<'_>,
) -> StoreResult<Remembered> {
    if message.participants.is_empty() {
        return Ok(Remembered::Empty);
    }
    let mut outcome = Remembered::New;
    store.update(&keys_read(message, trust.believed), &mut |values| {
        let (remembered, ops) = writes(message, trust, values, now, ttl);
        outcome = remembered;
        ops
    })?;
    Ok(outcome)
}

/// [`remember`], without waiting: the store reads, works out and writes
/// it later, still as one step ([`Store::update_later`]). What the milter
/// does with each clean message, off its reply's path.
pub fn remember_later(
    store: &dyn Store,
    message: Remembrance,
    ttl: Duration,
    now: i64,
    believed: bool,
    org_domains: Arc<OrgDomains>,
) -> StoreResult<()> {
    if message.participants.is_empty() {
        return Ok(());
    }
    let keys = keys_read(&message, believed);
    let may_write = names_written(&message);
    store.update_later(
        keys,
        may_write,
        Box::new(move |values| {
            let trust = Trust {
                believed,
                org_domains: &org_domains,
            };
            writes(&message, &trust, values, now, ttl).1
        }),
    )
}

/// The keys [`writes`] may write besides [`keys_read`]: the name sets of
/// the participants (of those it learns, a subset).
fn names_written(message: &Remembrance) -> Vec<String> {
    message
        .participants
        .iter()
        .filter_map(|(_, name)| name.as_deref().and_then(correspondents::name_key_of))
        .collect()
}

/// The list remembered with a message: inbound mail's only when it came
/// from a known list server.
fn list_of(message: &Remembrance, believed: bool) -> Option<(&str, &str)> {
    message
        .list
        .as_ref()
        .map(|(l, server)| (l.as_str(), server.as_str()))
        .filter(|(_, server)| believed || !server.is_empty())
}

/// Mail the organisation believes (its own outbound, `learn`)
/// corroborates the threads it replies to: their participants vouch from
/// now on (see [`Trust`]).
fn corroborated(message: &Remembrance, believed: bool) -> &[String] {
    if believed {
        &message.replies_to
    } else {
        &[]
    }
}

/// The keys remembering `message` reads, in the order [`writes`] takes
/// their values: its thread, its participants' records, the threads it
/// corroborates, its list.
fn keys_read(message: &Remembrance, believed: bool) -> Vec<String> {
    let mut keys = vec![thread_key(&message.id)];
    keys.extend(
        message
            .participants
            .iter()
            .map(|(address, _)| correspondents::address_key(address)),
    );
    keys.extend(
        corroborated(message, believed)
            .iter()
            .map(|id| thread_key(id)),
    );
    if let Some((list_id, _)) = list_of(message, believed) {
        keys.push(super::lists::key(list_id));
    }
    keys
}

/// What remembering `message` writes, given the values of [`keys_read`]:
/// nothing when its thread is already known.
fn writes(
    message: &Remembrance,
    trust: &Trust<'_>,
    values: &[Option<Vec<u8>>],
    now: i64,
    ttl: Duration,
) -> (Remembered, Vec<WriteOp>) {
    if values.first().is_some_and(Option::is_some) {
        return (Remembered::Known, Vec::new());
    }
    let seen: Vec<Seen<'_>> = message
        .participants
        .iter()
        .map(|(address, name)| Seen {
            address,
            name: name.as_deref(),
        })
        .collect();
    let corroborates = corroborated(message, trust.believed);
    let refs_at = 1 + seen.len();
    let previous: Vec<_> = values[1..refs_at]
        .iter()
        .map(|v| correspondents::parse_record(v.as_deref()))
        .collect();
    // A message's own Date is only a claim: never later than now.
    let date = message.date.map_or(now, |d| d.min(now));
    let domain = |address: &str| crate::view::address::domain_of(address).unwrap_or_default();
    let from = message.from.as_deref();
    let is_from = |address: &str| from.is_some_and(|f| address_key(f) == address_key(address));
    let id_domain = message.id_domain.as_deref();
    let vouches = |address: &str| {
        trust.believed
            || trust.org_domains.contains(&domain(address))
            || (is_from(address) && id_domain == Some(registrable(&domain(address)).as_str()))
    };
    let record = ThreadRecord {
        date,
        subject: message.subject.clone(),
        participants: seen
            .iter()
            .map(|s| Participant {
                address: hash::address(s.address),
                domain: registrable_as_written(&domain(s.address)),
                name: s.name.and_then(name_hash),
                vouches: vouches(s.address),
            })
            .collect(),
        list: message.has_list_headers,
    };
    let mut ops = vec![WriteOp::Put {
        key: thread_key(&message.id),
        value: serde_json::to_vec(&record).unwrap_or_default(),
        ttl: Some(ttl),
    }];
    for (id, value) in corroborates
        .iter()
        .zip(&values[refs_at..refs_at + corroborates.len()])
    {
        let Some(mut earlier) = value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<ThreadRecord>(v).ok())
        else {
            continue;
        };
        if earlier.participants.iter().all(|p| p.vouches) {
            continue;
        }
        earlier
            .participants
            .iter_mut()
            .for_each(|p| p.vouches = true);
        ops.push(WriteOp::Put {
            key: thread_key(id),
            value: serde_json::to_vec(&earlier).unwrap_or_default(),
            ttl: Some(ttl),
        });
    }
    // Inbound mail teaches the correspondents only its sender.
    let (learnt, before): (Vec<Seen<'_>>, Vec<_>) = seen
        .iter()
        .zip(previous)
        .filter(|(s, _)| trust.believed || is_from(s.address))
        .map(|(s, p)| (*s, p))
        .unzip();
    ops.extend(correspondents::record_writes(&learnt, &before, date, ttl));
    if let Some((list_id, server)) = list_of(message, trust.believed) {
        let previous = super::lists::parse(values.last().and_then(|v| v.as_deref()));
        // The day a post arrived is ours to tell, not the post's Date; an
        // archive an admin feeds to `learn` is vouched for whole.
        let (day, vouched) = if trust.believed {
            (date, true)
        } else {
            (now, false)
        };
        ops.extend(super::lists::record(
            previous, list_id, server, day, ttl, vouched,
        ));
    }
    (Remembered::New, ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn view(raw: &str) -> MessageView {
        MessageView::build(
            crate::Envelope::default(),
            raw.as_bytes(),
            &crate::config::Limits::default(),
            std::time::Instant::now() + Duration::from_secs(10),
        )
    }

    fn memo(raw: &str) -> Remembrance {
        Remembrance::of(&view(raw))
    }

    const FIRST: &str = "From: =?UTF-8?B?5bGx55SwIOWkqumDjg==?= <taro@legal-holdings.co.jp>\r\n\
To: Hanako Sato <hanako@partner.example.com>, taro@legal-holdings.co.jp\r\n\
Cc: <ops@mail.partner.example.com>\r\n\
Subject: =?UTF-8?B?6KuL5rGC5pu444Gu5Lu2?=\r\n\
Date: Mon, 4 Mar 2019 10:12:00 +0900\r\n\
Message-ID: <m1@legal-holdings.co.jp>\r\n\r\nbody\r\n";

    fn embedded(dir: &tempfile::TempDir) -> crate::store::EmbeddedStore {
        crate::store::EmbeddedStore::open(&dir.path().join("s.sqlite3"), Duration::from_secs(1))
            .unwrap()
    }

    #[test]
    fn batched_writes_count_every_message_of_a_burst() {
        let dir = tempfile::tempdir().unwrap();
        let store = embedded(&dir);
        let ttl = Duration::from_secs(86_400);
        let second = FIRST
            .replace("m1@", "m2@")
            .replace("=?UTF-8?B?5bGx55SwIOWkqumDjg==?=", "Taro Yamada");
        assert_eq!(
            remember(&store, &memo(FIRST), ttl, 0, &Trust::BELIEVED).unwrap(),
            Remembered::New
        );
        assert_eq!(
            remember(&store, &memo(&second), ttl, 0, &Trust::BELIEVED).unwrap(),
            Remembered::New
        );
        assert_eq!(
            remember(&store, &memo(FIRST), ttl, 0, &Trust::BELIEVED).unwrap(),
            Remembered::Known
        );
        store.flush().unwrap();
        // Both messages counted, both names kept, though the second was
        // read before the first was written to the file.
        let taro = correspondents::lookup_address(&store, "taro@legal-holdings.co.jp")
            .unwrap()
            .unwrap();
        assert_eq!(taro.messages, 2);
        assert!(taro.has_name("山田太郎") && taro.has_name("Taro Yamada"));
    }

    /// Remembering later names every key it may write: the embedded
    /// store's writer refuses an undeclared write, and a read of another
    /// key does not wait for it. Believed mail (every participant, its
    /// list, the thread it corroborates) and inbound mail alike.
    #[test]
    fn remembering_later_declares_every_key_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = embedded(&dir);
        // A read that did not wait for the writes it needs would find
        // nothing: the writer gathers for ten minutes unless a read waits.
        store.set_write_delay(Duration::from_secs(600));
        let ttl = Duration::from_secs(86_400);
        let org = Arc::new(OrgDomains::EMPTY);
        let reply = |id: &str| {
            FIRST.replace(
                "Message-ID: <m1@legal-holdings.co.jp>\r\n",
                &format!(
                    "Message-ID: <{id}@legal-holdings.co.jp>\r\n\
In-Reply-To: <m1@legal-holdings.co.jp>\r\nList-Id: Team <team.legal-holdings.co.jp>\r\n"
                ),
            )
        };
        remember_later(&store, memo(FIRST), ttl, 0, true, org.clone()).unwrap();
        remember_later(&store, memo(&reply("m2")), ttl, 0, true, org.clone()).unwrap();
        remember_later(&store, memo(&reply("m3")), ttl, 0, false, org).unwrap();
        for name in ["Hanako Sato", "山田太郎"] {
            let key = correspondents::name_key_of(name).unwrap();
            assert!(!store.set_members(&key).unwrap().is_empty(), "{name}");
        }
        store.flush().unwrap();
        assert_eq!(store.lost_writes(), 0);
    }

    #[test]
    fn a_message_is_remembered_once_with_hashed_participants() {
        let store = MemoryStore::new();
        let v = memo(FIRST);
        let ttl = Duration::from_secs(86_400);
        let now = 2_000_000_000;
        assert_eq!(
            remember(&store, &v, ttl, now, &Trust::BELIEVED).unwrap(),
            Remembered::New
        );
        assert_eq!(
            remember(&store, &v, ttl, now, &Trust::BELIEVED).unwrap(),
            Remembered::Known
        );
        let found = lookup(
            &store,
            &[
                "nope@x".to_string(),
                "<m1@legal-holdings.co.jp>".to_string(),
            ],
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        let rec = &found[0].1;
        assert_eq!(rec.date, 1_551_661_920);
        assert_eq!(rec.participants.len(), 3, "duplicate address counted once");
        assert!(rec.has_address("Hanako@partner.example.com"));
        assert!(!rec.has_address("taro@stranger.example"));
        assert!(rec.has_name("山田太郎"));
        assert_eq!(rec.participants[2].domain, "example.com");
        assert_eq!(rec.subject, hash::digest("subject", "請求書の件"));
        // Nothing in clear but domains.
        let raw = store
            .get(&thread_key("m1@legal-holdings.co.jp"))
            .unwrap()
            .unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            !text.contains("hanako") && !text.contains("請求書"),
            "{text}"
        );
        // Correspondents were counted once, not twice.
        let taro = correspondents::lookup_address(&store, "taro@legal-holdings.co.jp")
            .unwrap()
            .unwrap();
        assert_eq!(taro.messages, 1);
    }

    #[test]
    fn reply_subjects_normalise_to_the_original() {
        assert_eq!(normalize_subject("RE: RE: 請求書の件"), "請求書の件");
        assert_eq!(
            normalize_subject("ＲＥ：  Meeting   Notes"),
            "meeting notes"
        );
        assert_eq!(normalize_subject("[linux-man] Re: [PATCH] x"), "x");
    }

    #[test]
    fn records_expire_with_the_ttl() {
        let store = MemoryStore::new();
        remember(
            &store,
            &memo(FIRST),
            Duration::from_millis(1),
            0,
            &Trust::BELIEVED,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(lookup(&store, &["m1@legal-holdings.co.jp".into()])
            .unwrap()
            .is_empty());
        assert_eq!(
            remember(
                &store,
                &memo(FIRST),
                Duration::from_secs(60),
                0,
                &Trust::BELIEVED
            )
            .unwrap(),
            Remembered::New
        );
    }

    #[test]
    fn mail_without_message_id_gets_a_stable_id() {
        let raw = "From: a@b.example\r\nTo: c@d.example\r\nSubject: s\r\nDate: Mon, 4 Mar 2019 10:12:00 +0900\r\n\r\nx\r\n";
        assert_eq!(message_key_id(&view(raw)), message_key_id(&view(raw)));
        assert!(message_key_id(&view(raw)).starts_with("no-id:"));
    }
}
