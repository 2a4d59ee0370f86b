//! The held messages as the page lists them: Postfix's hold queue read
//! through the `quarantine` module (postqueue -j, postcat -h), each
//! message's summary kept in memory so that a list of 10,000 held messages
//! is filtered and paged without running postcat 10,000 times per page.
//! A background task refreshes it; actions update it at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use crate::quarantine::postfix::{Postfix, QuarantineError, QueueEntry};
use crate::quarantine::release::{self, ReleaseError, Released};
use crate::quarantine::{header_fields, HeldMessage};

/// What the page needs from Postfix; the real one is [`PostfixQueue`],
/// tests give a recorded queue.
pub trait HoldQueue: Send + Sync + 'static {
    /// The hold queue, oldest first.
    fn held(&self) -> Result<Vec<QueueEntry>, QuarantineError>;
    /// A held message's header block (postcat -h).
    fn headers(&self, id: &str) -> Result<Vec<u8>, QuarantineError>;
    /// The whole held message (postcat -bh).
    fn message(&self, id: &str) -> Result<Vec<u8>, QuarantineError>;
    fn release(
        &self,
        entry: &QueueEntry,
        held: &HeldMessage,
        reviewer: &str,
        now: u64,
    ) -> Result<Released, ReleaseError>;
    fn delete(&self, id: &str) -> Result<(), QuarantineError>;
}

/// Postfix's hold queue, as `[quarantine]` names it.
pub struct PostfixQueue {
    pub config: Arc<crate::Config>,
}

impl HoldQueue for PostfixQueue {
    fn held(&self) -> Result<Vec<QueueEntry>, QuarantineError> {
        Postfix::new(&self.config.quarantine).held()
    }
    fn headers(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        Postfix::new(&self.config.quarantine).headers(id)
    }
    fn message(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        Postfix::new(&self.config.quarantine).message(id)
    }
    fn release(
        &self,
        entry: &QueueEntry,
        held: &HeldMessage,
        reviewer: &str,
        now: u64,
    ) -> Result<Released, ReleaseError> {
        let postfix = Postfix::new(&self.config.quarantine);
        // Still held? (Another reviewer may have acted since the listing.)
        postfix.held_entry(&entry.queue_id)?;
        release::release(&postfix, &self.config, entry, held, reviewer, now)
    }
    fn delete(&self, id: &str) -> Result<(), QuarantineError> {
        Postfix::new(&self.config.quarantine).delete(id)
    }
}

/// One finding as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub detector: String,
    pub rule: String,
    pub score: f64,
    pub evidence: String,
}

impl Finding {
    /// `detector.rule (+6): evidence`, RFC 2047 words decoded.
    pub fn parse(line: &str) -> Finding {
        let line = decode_words(line);
        let (head, evidence) = line.split_once(": ").unwrap_or((line.as_str(), ""));
        let (name, score) = match head.rsplit_once(" (") {
            Some((n, s)) => (
                n,
                s.trim_end_matches(')')
                    .trim_start_matches('+')
                    .parse::<f64>()
                    .unwrap_or(0.0),
            ),
            None => (head, 0.0),
        };
        let (detector, rule) = name.split_once('.').unwrap_or((name, ""));
        Finding {
            detector: detector.trim().to_string(),
            rule: rule.trim().to_string(),
            score,
            evidence: evidence.to_string(),
        }
    }

    pub fn name(&self) -> String {
        format!("{}.{}", self.detector, self.rule)
    }
}

/// Decode RFC 2047 encoded-words (`=?utf-8?b?...?=`) in a header value;
/// text without them is returned as is.
pub fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let block = format!("Subject: {value}\n\n");
    mail_parser::MessageParser::default()
        .parse_headers(block.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| value.to_string())
}

/// One held message in the index.
#[derive(Debug, Clone)]
pub struct Item {
    pub held: HeldMessage,
    pub message_id: String,
    pub findings: Vec<Finding>,
    /// Lowercased domain of the envelope sender.
    pub sender_domain: String,
}

impl Item {
    pub fn new(entry: &QueueEntry, header_block: &[u8]) -> Item {
        let held = HeldMessage::new(entry, header_block);
        let fields = header_fields(header_block);
        let message_id = fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Message-ID"))
            .map(|(_, v)| {
                v.split_whitespace()
                    .collect::<String>()
                    .trim_matches(['<', '>'])
                    .to_string()
            })
            .unwrap_or_default();
        let findings = held
            .verdict
            .as_ref()
            .map(|v| v.findings.iter().map(|f| Finding::parse(f)).collect())
            .unwrap_or_default();
        let sender_domain = held
            .sender
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        Item {
            held,
            message_id,
            findings,
            sender_domain,
        }
    }

    pub fn verdict(&self) -> &str {
        self.held
            .verdict
            .as_ref()
            .map(|v| v.verdict.as_str())
            .unwrap_or("")
    }

    pub fn score(&self) -> f64 {
        self.held
            .verdict
            .as_ref()
            .and_then(|v| v.score.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The `n` highest-scored findings, in header order among equals.
    pub fn top_findings(&self, n: usize) -> Vec<&Finding> {
        let mut ranked: Vec<(usize, &Finding)> = self.findings.iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
        ranked.truncate(n);
        ranked.sort_by_key(|r| r.0);
        ranked.into_iter().map(|(_, f)| f).collect()
    }
}

/// The index: newest first.
#[derive(Default)]
pub struct Index {
    pub items: Vec<Arc<Item>>,
    by_id: HashMap<String, Arc<Item>>,
    /// The hold queue was read at least once.
    pub loaded: bool,
    /// The last refresh's error, if it failed.
    pub error: Option<String>,
}

impl Index {
    pub fn get(&self, id: &str) -> Option<Arc<Item>> {
        self.by_id.get(id).cloned()
    }

    pub fn remove(&mut self, id: &str) {
        if self.by_id.remove(id).is_some() {
            self.items.retain(|i| i.held.queue_id != id);
        }
    }

    fn set(&mut self, mut items: Vec<Arc<Item>>) {
        items.sort_by(|a, b| {
            (b.held.arrival_time, &b.held.queue_id).cmp(&(a.held.arrival_time, &a.held.queue_id))
        });
        self.by_id = items
            .iter()
            .map(|i| (i.held.queue_id.clone(), i.clone()))
            .collect();
        self.items = items;
    }
}

/// New messages read between two publications of a partial index.
const PUBLISH_EVERY: usize = 500;

/// Read the hold queue and bring `index` up to date: entries gone are
/// dropped, new ones read (postcat -h), known ones kept as they were
/// (a queue id with the same arrival time is the same message).
pub fn refresh(queue: &dyn HoldQueue, index: &RwLock<Index>) {
    let entries = match queue.held() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("web: reading the hold queue: {e}");
            index.write().unwrap_or_else(|e| e.into_inner()).error = Some(e.to_string());
            return;
        }
    };
    let known: HashMap<String, Arc<Item>> = {
        let idx = index.read().unwrap_or_else(|e| e.into_inner());
        idx.by_id.clone()
    };
    let mut items = Vec::with_capacity(entries.len());
    let mut seen = HashSet::new();
    let mut fresh = 0usize;
    for entry in &entries {
        if !seen.insert(entry.queue_id.clone()) {
            continue;
        }
        match known.get(&entry.queue_id) {
            Some(item) if item.held.arrival_time == entry.arrival_time => {
                items.push(item.clone());
            }
            _ => match queue.headers(&entry.queue_id) {
                Ok(block) => {
                    items.push(Arc::new(Item::new(entry, &block)));
                    fresh += 1;
                    // A first reading of thousands of held messages takes
                    // a while (one postcat each): show them as they come.
                    if fresh.is_multiple_of(PUBLISH_EVERY) {
                        let mut partial = items.clone();
                        partial.extend(
                            known
                                .values()
                                .filter(|i| !seen.contains(&i.held.queue_id))
                                .cloned(),
                        );
                        index
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .set(partial);
                    }
                }
                // Released or deleted since postqueue ran.
                Err(e) => tracing::debug!("{}: skipped: {e}", entry.queue_id),
            },
        }
    }
    let mut idx = index.write().unwrap_or_else(|e| e.into_inner());
    idx.set(items);
    idx.loaded = true;
    idx.error = None;
    if fresh > 0 {
        tracing::debug!(
            "web: {fresh} new held message(s), {} in all",
            idx.items.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_parsed_and_decoded() {
        let f = Finding::parse("office_macro.suspicious (+6): a.doc: VBA Document_Open (A)");
        assert_eq!(
            (f.detector.as_str(), f.rule.as_str(), f.score),
            ("office_macro", "suspicious", 6.0)
        );
        assert_eq!(f.evidence, "a.doc: VBA Document_Open (A)");
        let f = Finding::parse(
            "encrypted_archive.password_in_body (+6): =?utf-8?b?6KuL5rGC5pu4XzExMjEuemlw?= opened",
        );
        assert_eq!(f.evidence, "請求書_1121.zip opened");
        let f = Finding::parse("scan.error (-1.5): x");
        assert_eq!(f.score, -1.5);
        let f = Finding::parse("garbage");
        assert_eq!((f.detector.as_str(), f.rule.as_str()), ("garbage", ""));
    }
}
