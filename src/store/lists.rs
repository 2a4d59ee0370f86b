//! Mailing lists the organisation knows. Mail through a list is judged
//! leniently (posters write from any address, lists rewrite From), but a
//! `List-Id` header is only a claim anyone can write. A list is known when
//! it is configured (`[organization] mailing_lists`), or when its posts
//! arrived on at least [`MIN_DAYS`] different days from the same list
//! server (the registrable domain of the envelope sender, which a list
//! sets to its own bounce address). A one-off `List-Id` on a stranger's
//! mail is not a known list.
//!
//! Key: `list:<hash(list id)>` → JSON [`ListRecord`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{hash, StoreResult, WriteOp};

/// Distinct days a list must have been seen on to be known.
pub const MIN_DAYS: usize = 3;
/// Days remembered per list (the most recent).
const MAX_DAYS: usize = 30;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRecord {
    /// Registrable domain of the list server's envelope sender.
    pub server: String,
    /// Distinct days (Unix days) posts were seen, oldest first.
    pub days: Vec<i64>,
    /// Seen in mail the organisation vouches for (`learn` of an archive):
    /// known whatever the days and server.
    #[serde(default)]
    pub vouched: bool,
}

impl ListRecord {
    pub fn known_from(&self, server: &str) -> bool {
        self.vouched
            || (!server.is_empty()
                && crate::domains::same_organization(&self.server, server)
                && self.days.len() >= MIN_DAYS)
    }
}

/// The list server of a message: the registrable domain of the envelope
/// sender (the list's bounce address), or of `Return-Path` when scanning a
/// file that has no envelope. Empty when neither is known.
pub fn server_of(view: &crate::view::MessageView) -> String {
    let sender = view
        .envelope
        .mail_from
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| view.header("Return-Path").map(str::to_string))
        .unwrap_or_default();
    let address = sender.trim().trim_matches(['<', '>']);
    crate::view::address::domain_of(address)
        .map(|d| crate::domains::registrable(&d))
        .unwrap_or_default()
}

/// A List-Id as compared: it has the form of a domain (`list.example.org`),
/// so its IDNA key ([`crate::domains::domain_key`]; plain ASCII ids are
/// only lower-cased).
fn list_key(list_id: &str) -> String {
    crate::domains::domain_key(list_id.trim())
}

pub fn key(list_id: &str) -> String {
    format!("list:{}", hash::digest("list", &list_key(list_id)))
}

pub fn parse(value: Option<&[u8]>) -> Option<ListRecord> {
    value.and_then(|v| serde_json::from_slice(v).ok())
}

/// The lookup stage's part: the record of the message's list, if it names one.
pub fn reads(view: &crate::view::MessageView, reads: &mut super::Reads) {
    if let Some(id) = view.list_id.as_deref() {
        reads.value(key(id));
    }
}

/// Whether a post to `list_id` from list server `server` is a post to a
/// known list: configured, or learned (as the lookup read it, [`reads`]).
pub fn is_known(
    state: &super::Snapshot,
    configured: &[String],
    list_id: &str,
    server: &str,
) -> StoreResult<bool> {
    let id = list_key(list_id);
    if configured.iter().any(|c| list_key(c) == id) {
        return Ok(true);
    }
    Ok(parse(state.value(&key(&id))?).is_some_and(|r| r.known_from(server)))
}

/// The write that records one post to `list_id` from `server` on `now`'s
/// day. A post from another server restarts the count for the new one (a
/// list moves rarely; a forger never gets three days in a row unnoticed).
pub fn record(
    previous: Option<ListRecord>,
    list_id: &str,
    server: &str,
    now: i64,
    ttl: Duration,
    vouched: bool,
) -> Option<WriteOp> {
    if server.is_empty() && !vouched {
        return None;
    }
    let day = now.div_euclid(86_400);
    let was_vouched = previous.as_ref().is_some_and(|r| r.vouched);
    let mut rec = previous
        .filter(|r| r.vouched || crate::domains::same_organization(&r.server, server))
        .unwrap_or_else(|| ListRecord {
            server: server.to_string(),
            days: Vec::new(),
            vouched: false,
        });
    rec.vouched = was_vouched || vouched;
    if !rec.days.contains(&day) {
        rec.days.push(day);
        rec.days.sort_unstable();
        let excess = rec.days.len().saturating_sub(MAX_DAYS);
        rec.days.drain(..excess);
    }
    Some(WriteOp::Put {
        key: key(list_id),
        value: serde_json::to_vec(&rec).ok()?,
        ttl: Some(ttl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Reads, Store};

    /// Look the list up as a scan does, then judge it.
    fn known(
        store: &MemoryStore,
        configured: &[String],
        id: &str,
        server: &str,
    ) -> StoreResult<bool> {
        let mut reads = Reads::default();
        reads.value(key(id));
        is_known(&store.read(&reads)?, configured, id, server)
    }

    fn post(store: &MemoryStore, server: &str, day: i64) {
        let prev = parse(store.get(&key("sales.example.org")).unwrap().as_deref());
        let op = record(
            prev,
            "sales.example.org",
            server,
            day * 86_400 + 100,
            Duration::from_secs(86_400 * 400),
            false,
        )
        .unwrap();
        store.write_batch(&[op]).unwrap();
    }

    #[test]
    fn a_list_is_known_after_three_days_from_one_server() {
        let store = MemoryStore::new();
        assert!(!known(&store, &[], "sales.example.org", "lists.example.org").unwrap());
        post(&store, "lists.example.org", 20_000);
        post(&store, "lists.example.org", 20_000);
        post(&store, "lists.example.org", 20_001);
        assert!(!known(&store, &[], "sales.example.org", "lists.example.org").unwrap());
        post(&store, "lists.example.org", 20_005);
        assert!(known(&store, &[], "Sales.Example.org", "lists.example.org").unwrap());
        // The same List-Id from another server is not the known list.
        assert!(!known(&store, &[], "sales.example.org", "evil.example").unwrap());
    }

    #[test]
    fn configured_lists_are_known_at_once() {
        let store = MemoryStore::new();
        let configured = vec!["Sales.Example.org".to_string()];
        assert!(known(&store, &configured, "sales.example.org", "").unwrap());
        // A List-Id has the form of a domain: one IDN, either form.
        let configured = vec!["users.例え.jp".to_string()];
        assert!(known(&store, &configured, "USERS.xn--r8jz45g.jp", "").unwrap());
        assert!(!known(&store, &configured, "users.例ぇ.jp", "").unwrap());
    }

    #[test]
    fn a_list_server_is_one_in_either_form_of_its_idn() {
        let store = MemoryStore::new();
        post(&store, "lists.例え.jp", 20_000);
        post(&store, "xn--r8jz45g.jp", 20_001);
        post(&store, "lists.例え。jp", 20_002);
        assert!(known(&store, &[], "sales.example.org", "xn--r8jz45g.jp").unwrap());
        assert!(!known(&store, &[], "sales.example.org", "例ぇ.jp").unwrap());
    }
}
