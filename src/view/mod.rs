//! The shared view of one message, built once per scan: envelope, headers,
//! decoded text of every text part, and the attachment tree with archives and
//! attached messages opened within limits. Detectors only read it.

pub mod address;
pub mod archive;
mod containers;
mod decrypt;
pub mod filetype;
pub mod password;
pub mod quoted;
pub mod subject;
pub mod urls;

use std::time::Instant;

use bytes::Bytes;
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};

pub use address::Mailbox;
pub use archive::{ArchiveInfo, EncryptedEntry, EncryptionMethod, EntryState};
pub use filetype::FileType;

use crate::config::Limits;
use crate::config::{EncryptedArchiveConfig, FormatsConfig};
use crate::envelope::Envelope;
use crate::formats::Budget;
use password::{Candidate, MinerInput};

/// A decoded text part: plain text as sent, HTML both as text and as markup.
#[derive(Debug, Clone)]
pub struct TextPart {
    /// Where the part sits, e.g. `body` or `forwarded.eml/body`.
    pub location: String,
    /// The text, decoded to UTF-8 (HTML converted to text).
    pub text: String,
    /// The original markup, for HTML parts (links need the hrefs).
    pub html: Option<String>,
    /// 0 for the message itself, 1 for a message attached to it, ...
    pub depth: usize,
    /// True when the part was sent as a named attachment (e.g. `note.txt`).
    pub is_attachment: bool,
}

/// How an attachment came to be in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A MIME part of the message (or of an attached message).
    MimePart,
    /// An entry of an archive; its parent is the archive.
    ArchiveEntry,
    /// A file found inside another by a format parser (an RTF object, a
    /// OneNote embedded file, a disk image's file, a smuggled blob); the
    /// text says how it was found.
    Embedded(&'static str),
}

/// One node of the attachment tree. The tree is kept flat: parents come
/// before their children, and `parent` points back up.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: usize,
    pub parent: Option<usize>,
    /// Display path through archives and messages: `invoice.zip/請求書.doc`.
    pub path: String,
    /// The file name as given by the sender (MIME name or archive entry name).
    pub name: Option<String>,
    /// The MIME type the sender declared, for MIME parts.
    pub declared_type: Option<String>,
    /// The type told from content.
    pub file_type: FileType,
    /// The content, decoded (and inflated/decrypted for archive entries).
    pub data: Bytes,
    pub origin: Origin,
    /// Number of archives and messages between the top message and this node.
    pub depth: usize,
    /// For archives: what was inside and what was encrypted.
    pub archive: Option<ArchiveInfo>,
    /// For archive entries that were encrypted and opened with a password.
    pub decrypted: bool,
    /// What a format parser observed in this file (an Equation Editor
    /// object, a remote template, a shortcut's command): read by the
    /// `payload` detector.
    pub indicators: Vec<crate::formats::Indicator>,
    /// The size its container declared, when that differs from what was
    /// read (padding, truncation).
    pub declared_size: Option<u64>,
}

impl Attachment {
    /// The extension of the sender-given name, lowercased, without the dot.
    pub fn extension(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let (_, ext) = base.rsplit_once('.')?;
        (!ext.is_empty()).then(|| ext.to_ascii_lowercase())
    }
}

/// A limit that stopped the walk short; reported as `scan.limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// The config key of the limit, e.g. `limits.max_depth`.
    pub limit: &'static str,
    pub detail: String,
}

/// Everything detectors look at, built once.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub envelope: Envelope,
    pub size: usize,
    /// Every header in order, name as sent, value unfolded (RFC 2047 not decoded).
    pub headers: Vec<(String, String)>,
    pub from: Option<Mailbox>,
    pub sender: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// Decoded subject (RFC 2047), empty when missing.
    pub subject: String,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub list_id: Option<String>,
    /// Date header as a Unix timestamp.
    pub date: Option<i64>,
    pub texts: Vec<TextPart>,
    pub attachments: Vec<Attachment>,
    pub limits_hit: Vec<LimitHit>,
    /// False when the bytes could not be parsed as a message at all.
    pub parsed: bool,
    /// [`MessageView::history`], worked out on first use (with the text
    /// limit it was asked with).
    history: std::sync::OnceLock<(usize, quoted::History)>,
}

impl MessageView {
    /// The quoted history of the message's own text, reading at most
    /// `max_text_bytes` of each part: derived once per message however many
    /// readers ask (the lookup stage and `thread_hijack` both do).
    pub fn history(&self, max_text_bytes: usize) -> std::borrow::Cow<'_, quoted::History> {
        let (limit, history) = self
            .history
            .get_or_init(|| (max_text_bytes, quoted::History::of(self, max_text_bytes)));
        if *limit == max_text_bytes {
            std::borrow::Cow::Borrowed(history)
        } else {
            std::borrow::Cow::Owned(quoted::History::of(self, max_text_bytes))
        }
    }

    /// Values of every header with this name (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the message carries mailing-list headers (List-Id,
    /// List-Post). Only a claim: `store::lists` says whether the list is
    /// one the organisation knows.
    pub fn has_list_headers(&self) -> bool {
        self.list_id.is_some()
            || self.header("List-Id").is_some()
            || self.header("List-Post").is_some()
    }

    /// The first header with this name.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    /// The message's own text (depth 0), parts joined by blank lines.
    pub fn body_text(&self) -> String {
        let parts: Vec<&str> = self
            .texts
            .iter()
            .filter(|t| t.depth == 0 && !t.is_attachment)
            .map(|t| t.text.as_str())
            .collect();
        parts.join("\n\n")
    }

    /// The direct children of an attachment node.
    pub fn children(&self, id: usize) -> impl Iterator<Item = &Attachment> {
        self.attachments
            .iter()
            .filter(move |a| a.parent == Some(id))
    }

    /// Parse `raw` and build the view. Never fails: unparsable bytes yield a
    /// view with `parsed = false` and the raw bytes as its only text.
    /// Encrypted zips are tried with the default `[encrypted_archive]` bounds.
    pub fn build(envelope: Envelope, raw: &[u8], limits: &Limits, deadline: Instant) -> Self {
        let passwords = EncryptedArchiveConfig::default();
        MessageView::build_with(envelope, raw, limits, &passwords, deadline)
    }

    /// [`MessageView::build_with`] drawing on a message's shared budget
    /// (the scan core's: detectors then draw on what the view left), with
    /// the file-format parsers bounded by `[formats]`.
    pub fn build_within(
        envelope: Envelope,
        raw: &[u8],
        limits: &Limits,
        passwords: &EncryptedArchiveConfig,
        formats: &FormatsConfig,
        budget: &Budget,
    ) -> Self {
        let mut builder = Builder {
            limits,
            passwords,
            formats,
            budget,
            subject: String::new(),
            candidates: None,
            password_attempts: 0,
            bytes_decrypted: 0,
            attachments: Vec::new(),
            texts: Vec::new(),
            limits_hit: Vec::new(),
            entries_seen: 0,
            parts_seen: 0,
            pending: std::collections::VecDeque::new(),
        };
        let parser = MessageParser::default();
        let Some(message) = parser.parse(raw) else {
            return MessageView::unparsed(envelope, raw);
        };
        let mut view = MessageView::headers_of(envelope, &message, raw.len());
        view.cut_long_headers(&mut builder);
        builder.subject = view.subject.clone();
        builder.walk_message(message, None, "", 0);
        builder.open_pending();
        view.texts = builder.texts;
        view.attachments = builder.attachments;
        view.limits_hit = builder.limits_hit;
        view
    }

    /// [`MessageView::build`] with explicit bounds on password guessing.
    pub fn build_with(
        envelope: Envelope,
        raw: &[u8],
        limits: &Limits,
        passwords: &EncryptedArchiveConfig,
        deadline: Instant,
    ) -> Self {
        let budget = Budget::new(
            deadline,
            limits.max_inflated_bytes,
            limits.max_inflation_ratio,
        );
        let formats = FormatsConfig::default();
        MessageView::build_within(envelope, raw, limits, passwords, &formats, &budget)
    }

    fn unparsed(envelope: Envelope, raw: &[u8]) -> Self {
        MessageView {
            envelope,
            size: raw.len(),
            headers: Vec::new(),
            from: None,
            sender: None,
            reply_to: Vec::new(),
            to: Vec::new(),
            cc: Vec::new(),
            subject: String::new(),
            message_id: None,
            in_reply_to: Vec::new(),
            references: Vec::new(),
            list_id: None,
            date: None,
            texts: vec![TextPart {
                location: "body".into(),
                text: String::from_utf8_lossy(raw).into_owned(),
                html: None,
                depth: 0,
                is_attachment: false,
            }],
            attachments: Vec::new(),
            limits_hit: Vec::new(),
            parsed: false,
            history: Default::default(),
        }
    }

    fn headers_of(envelope: Envelope, message: &Message<'_>, size: usize) -> Self {
        let headers = message
            .headers_raw()
            .map(|(n, v)| (n.to_string(), unfold(v)))
            .collect();
        let first = |v: Option<&mail_parser::Address<'_>>| {
            v.and_then(|a| a.first()).map(Mailbox::from_addr)
        };
        let all = |v: Option<&mail_parser::Address<'_>>| -> Vec<Mailbox> {
            v.map(|a| a.iter().map(Mailbox::from_addr).collect())
                .unwrap_or_default()
        };
        MessageView {
            envelope,
            size,
            headers,
            from: first(message.from()),
            sender: first(message.sender()),
            reply_to: all(message.reply_to()),
            to: all(message.to()),
            cc: all(message.cc()),
            subject: message.subject().unwrap_or_default().to_string(),
            message_id: message.message_id().map(str::to_string),
            in_reply_to: text_list(message.in_reply_to()),
            references: text_list(message.references()),
            list_id: list_id_of(message),
            date: message.date().map(|d| d.to_timestamp()),
            texts: Vec::new(),
            attachments: Vec::new(),
            limits_hit: Vec::new(),
            parsed: true,
            history: Default::default(),
        }
    }
}

impl MessageView {
    /// Cut header values (and the decoded subject) longer than
    /// `limits.max_header_bytes`, so detectors never run their patterns
    /// over a megabyte-long line.
    fn cut_long_headers(&mut self, builder: &mut Builder<'_>) {
        let max = builder.limits.max_header_bytes;
        let mut cut = Vec::new();
        for (name, value) in &mut self.headers {
            if truncate_at_char(value, max) {
                cut.push(name.clone());
            }
        }
        if truncate_at_char(&mut self.subject, max) && cut.is_empty() {
            cut.push("Subject".to_string());
        }
        if let Some(first) = cut.first() {
            builder.note_limit(
                "limits.max_header_bytes",
                format!("{first}: header longer than {max} bytes; the rest not scanned"),
            );
        }
    }
}

/// Truncate `s` to at most `max` bytes on a char boundary; true if cut.
fn truncate_at_char(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

fn text_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i > 0 && !line.is_empty() {
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line.trim_start());
        }
    }
    out.trim_end().to_string()
}

/// Walks a parsed message into the flat attachment tree, counting against limits.
/// The list's id from `List-Id`: "<list.example.org>" and
/// "Our List <list.example.org>" alike (mail-parser reads the second as an
/// address).
fn list_id_of(message: &Message<'_>) -> Option<String> {
    let value = message.list_id();
    value
        .as_text()
        .map(str::to_string)
        .or_else(|| {
            value
                .as_address()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_string)
        })
        .map(|id| id.trim().trim_matches(['<', '>']).to_string())
        .filter(|id| !id.is_empty())
}

pub(crate) struct Builder<'l> {
    pub(crate) limits: &'l Limits,
    /// Bounds on password candidates, attempts and decrypted bytes.
    pub(crate) passwords: &'l EncryptedArchiveConfig,
    /// Bounds of the file-format parsers.
    pub(crate) formats: &'l FormatsConfig,
    /// The message's deadline and decompression budget.
    pub(crate) budget: &'l Budget,
    /// The decoded subject, a source of password candidates.
    pub(crate) subject: String,
    /// Password candidates, mined when the first encrypted entry is met.
    /// Mined once per message, shared by every archive tried.
    pub(crate) candidates: Option<std::sync::Arc<[Candidate]>>,
    pub(crate) password_attempts: usize,
    pub(crate) bytes_decrypted: u64,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) texts: Vec<TextPart>,
    pub(crate) limits_hit: Vec<LimitHit>,
    pub(crate) entries_seen: usize,
    pub(crate) parts_seen: usize,
    /// Containers (archives, messages) found but not opened yet. The top
    /// message's text is all read before any archive is opened, so that the
    /// password miner sees every text part.
    pending: std::collections::VecDeque<usize>,
}

impl Builder<'_> {
    pub(crate) fn note_limit(&mut self, limit: &'static str, detail: String) {
        // One note per limit is enough evidence; more would flood the headers.
        if !self.limits_hit.iter().any(|l| l.limit == limit) {
            self.limits_hit.push(LimitHit { limit, detail });
        }
    }

    /// The mail's password candidates, mined on first use from the subject,
    /// every text part read so far (all of the top message's, since
    /// containers are opened only after its parts are walked) and the names
    /// of the archives met so far.
    pub(crate) fn password_candidates(&mut self) -> std::sync::Arc<[Candidate]> {
        if let Some(c) = &self.candidates {
            return c.clone();
        }
        let mined = password::mine(&MinerInput {
            subject: &self.subject,
            texts: self
                .texts
                .iter()
                .map(|t| (t.location.as_str(), t.text.as_str()))
                .collect(),
            archive_names: self
                .attachments
                .iter()
                .filter(|a| a.file_type.is_archive() || a.file_type.is_zip_based())
                .filter_map(|a| a.name.as_deref())
                .collect(),
            max_candidates: self.passwords.max_candidates,
            max_text_bytes: self.passwords.max_text_bytes,
        });
        let mined: std::sync::Arc<[Candidate]> = mined.into();
        self.candidates = Some(mined.clone());
        mined
    }

    pub(crate) fn out_of_time(&mut self) -> bool {
        if self.budget.expired() {
            self.note_limit(
                "limits.scan_timeout_secs",
                format!("scan stopped after {} s", self.limits.scan_timeout_secs),
            );
            true
        } else {
            false
        }
    }

    /// Add the parts of `message` under `parent` (None for the top message).
    fn walk_message(
        &mut self,
        message: Message<'_>,
        parent: Option<usize>,
        prefix: &str,
        depth: usize,
    ) {
        let mut message = message;
        let mut parts = std::mem::take(&mut message.parts).into_iter().enumerate();
        while let Some((index, part)) = parts.next() {
            self.parts_seen += 1;
            if self.parts_seen > self.limits.max_mime_parts {
                self.note_limit(
                    "limits.max_mime_parts",
                    format!(
                        "more than {} MIME parts; the rest not scanned",
                        self.limits.max_mime_parts
                    ),
                );
                drop_flat(std::iter::once(part).chain(parts.map(|(_, p)| p)));
                return;
            }
            if self.out_of_time() {
                drop_flat(std::iter::once(part).chain(parts.map(|(_, p)| p)));
                return;
            }
            let name = part.attachment_name().map(str::to_string);
            let declared = part.content_type().map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            });
            let is_attachment = name.is_some()
                || part
                    .content_disposition()
                    .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
            let label = name.clone().unwrap_or_else(|| format!("part{index}"));
            // Text and HTML are read as text (and kept as a node when sent
            // as an attachment); binary parts are nodes.
            let (text, binary) = match part.body {
                PartType::Text(text) => (Some((text, false)), None),
                PartType::Html(html) => (Some((html, true)), None),
                PartType::Binary(data) | PartType::InlineBinary(data) => {
                    (None, Some(Bytes::from(data.into_owned())))
                }
                PartType::Message(inner) => {
                    let label = name.clone().unwrap_or_else(|| {
                        inner
                            .subject()
                            .map(|s| format!("{s}.eml"))
                            .unwrap_or_else(|| "message.eml".to_string())
                    });
                    let data = Bytes::copy_from_slice(inner.raw_message());
                    let id = self.push_node(
                        parent,
                        prefix,
                        Some(label.clone()),
                        declared,
                        data,
                        FileType::Email,
                        Origin::MimePart,
                        depth,
                    );
                    if depth + 1 > self.limits.max_depth {
                        self.note_limit(
                            "limits.max_depth",
                            format!("{label}: nested deeper than {}", self.limits.max_depth),
                        );
                        drop_flat(inner.parts);
                        continue;
                    }
                    let path = self.attachments[id].path.clone();
                    self.walk_message(inner, Some(id), &path, depth + 1);
                    continue;
                }
                PartType::Multipart(_) => continue,
            };
            let mut node = binary;
            if let Some((body, is_html)) = text {
                let (shown, html, place) = if is_html {
                    let shown = mail_parser::decoders::html::html_to_text(&body);
                    (shown, Some(body.to_string()), "body.html")
                } else {
                    (body.to_string(), None, "body")
                };
                self.texts.push(TextPart {
                    location: join(prefix, if is_attachment { &label } else { place }),
                    text: shown,
                    html,
                    depth,
                    is_attachment,
                });
                if is_attachment {
                    node = Some(Bytes::from(body.into_owned().into_bytes()));
                }
            }
            if let Some(data) = node {
                self.add_node(
                    parent,
                    prefix,
                    name,
                    declared,
                    data,
                    Origin::MimePart,
                    depth,
                );
            }
        }
    }

    /// Add a leaf found in a MIME part or an archive, then open it if it is a
    /// container (archive or message).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_node(
        &mut self,
        parent: Option<usize>,
        prefix: &str,
        name: Option<String>,
        declared: Option<String>,
        data: Bytes,
        origin: Origin,
        depth: usize,
    ) -> usize {
        let file_type = filetype::detect(&data);
        let id = self.push_node(
            parent, prefix, name, declared, data, file_type, origin, depth,
        );
        self.pending.push_back(id);
        id
    }

    fn open_pending(&mut self) {
        while let Some(id) = self.pending.pop_front() {
            if self.out_of_time() {
                return;
            }
            self.open_container(id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_node(
        &mut self,
        parent: Option<usize>,
        prefix: &str,
        name: Option<String>,
        declared: Option<String>,
        data: Bytes,
        file_type: FileType,
        origin: Origin,
        depth: usize,
    ) -> usize {
        let id = self.attachments.len();
        let label = name
            .clone()
            .unwrap_or_else(|| format!("unnamed-{id}.{}", file_type.as_str()));
        self.attachments.push(Attachment {
            id,
            parent,
            path: join(prefix, &label),
            name,
            declared_type: declared,
            file_type,
            data,
            origin,
            depth,
            archive: None,
            decrypted: false,
            indicators: Vec::new(),
            declared_size: None,
        });
        id
    }

    fn open_container(&mut self, id: usize) {
        let node = &self.attachments[id];
        let (file_type, depth) = (node.file_type, node.depth);
        let by_format = containers::has_opener(file_type, &node.data);
        if !by_format
            && !matches!(
                file_type,
                FileType::Zip | FileType::Ooxml | FileType::OpenDocument | FileType::Email
            )
        {
            return;
        }
        if depth + 1 > self.limits.max_depth {
            let path = node.path.clone();
            self.note_limit(
                "limits.max_depth",
                format!("{path}: nested deeper than {}", self.limits.max_depth),
            );
            return;
        }
        match file_type {
            FileType::Zip => archive::open_zip(self, id, false),
            FileType::Ooxml | FileType::OpenDocument => archive::open_zip(self, id, true),
            FileType::Email => {
                let data = self.attachments[id].data.clone();
                let path = self.attachments[id].path.clone();
                if let Some(inner) = MessageParser::default().parse(&data[..]) {
                    self.walk_message(inner, Some(id), &path, depth + 1);
                }
            }
            _ => {}
        }
        if by_format {
            containers::open_formats(self, id);
        }
    }
}

/// Drop MIME parts without recursion. mail-parser builds un-encoded
/// `message/rfc822` nesting of any depth (it parses with a stack of its
/// own), but Rust's drop glue recurses once per level: 60,000 levels would
/// overflow the thread's stack and abort the process. Every part tree we
/// do not walk goes through here.
pub(crate) fn drop_flat<'x>(parts: impl IntoIterator<Item = mail_parser::MessagePart<'x>>) {
    let mut stack: Vec<mail_parser::MessagePart<'x>> = parts.into_iter().collect();
    while let Some(part) = stack.pop() {
        if let PartType::Message(mut inner) = part.body {
            stack.append(&mut inner.parts);
        }
    }
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

impl MessageView {
    /// The message's structure for people: text parts and the attachment
    /// tree with detected types and sizes. Never prints attachment content.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let from = self
            .from
            .as_ref()
            .map(|m| {
                format!(
                    "{:?} <{}>",
                    m.name.as_deref().unwrap_or(""),
                    m.address.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default();
        out.push_str(&format!("From: {from}\nSubject: {}\n", self.subject));
        for t in &self.texts {
            let kind = if t.html.is_some() { "html" } else { "text" };
            out.push_str(&format!(
                "  [{kind}] {} ({} chars)\n",
                t.location,
                t.text.chars().count()
            ));
        }
        for a in &self.attachments {
            let indent = "  ".repeat(a.depth + 1);
            let mut notes = Vec::new();
            if let Some(declared) = &a.declared_type {
                notes.push(format!("declared {declared}"));
            }
            if a.decrypted {
                notes.push("decrypted".to_string());
            }
            if let Some(info) = &a.archive {
                notes.push(format!("{} entries", info.entry_count));
                for e in &info.encrypted {
                    let state = match e.state {
                        EntryState::Locked => "locked",
                        EntryState::Decrypted => "decrypted",
                        EntryState::FlagOnly => "flag only, data plain",
                    };
                    notes.push(format!(
                        "encrypted {} ({}, {state})",
                        e.name,
                        e.method.as_str()
                    ));
                }
                for p in &info.passwords {
                    notes.push(format!(
                        "password {} from {}",
                        password::mask(&p.password),
                        p.found
                    ));
                }
                if let Some(err) = &info.error {
                    notes.push(err.clone());
                }
            }
            out.push_str(&format!(
                "{indent}{} [{}, {} bytes{}{}]\n",
                a.path,
                a.file_type,
                a.data.len(),
                if notes.is_empty() { "" } else { ", " },
                notes.join(", ")
            ));
        }
        for l in &self.limits_hit {
            out.push_str(&format!("  limit {}: {}\n", l.limit, l.detail));
        }
        out
    }
}
