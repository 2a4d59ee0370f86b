//! Quoted history in a reply's text: the header blocks and attribution
//! lines mailers write above the quoted message.
//!
//! - Outlook: `-----Original Message-----` (or a rule of underscores) then
//!   `From: / Sent: / To: / Cc: / Subject:` lines.
//! - Japanese Outlook: `差出人: / 送信日時: / 宛先: / CC: / 件名:`; German
//!   (`Von: / Gesendet: / An: / Betreff:`) and French (`De : / Envoyé : / À : / Objet :`).
//! - Thunderbird forwards: `-------- Original Message --------` then
//!   `Subject: / Date: / From: / To:`.
//! - Gmail: `On Mon, Mar 4, 2019 at 10:12 AM Taro <taro@x.example> wrote:`,
//!   Japanese Gmail: `2019年3月4日(月) 10:12 山田太郎 <taro@x.example>:`,
//!   Thunderbird replies: `On 3/4/19 10:12 AM, Taro wrote:` and
//!   `2019/03/04 10:12 に 山田太郎 さんは書きました:`.
//!
//! The text is NFKC-normalised first, so full-width colons and digits read
//! as ASCII. Only the first `max_bytes` of a text are looked at.
//!
//! This is the one place that says where quoted history starts: in text
//! ([`parse`], its `new_text` is what the sender wrote now) and in HTML
//! ([`html_history_start`]). `thread_hijack` reads the blocks, `display_name`
//! reads the top of the body down to the history.

use std::sync::LazyLock;

use regex::Regex;

use super::address::find_in_text;

/// Which mailer's layout a block follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A header block (Outlook, Japanese Outlook, Thunderbird forward).
    HeaderBlock,
    /// An attribution line (Gmail, Thunderbird reply, mutt), English or Japanese.
    Attribution,
}

/// A person named in quoted history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: Option<String>,
    /// Lower-cased address, when the block shows one.
    pub address: Option<String>,
}

/// One quoted message's header block or attribution line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotedBlock {
    pub style: Style,
    pub from: Vec<Person>,
    /// To and Cc (header blocks only).
    pub recipients: Vec<Person>,
    pub subject: Option<String>,
    /// The quoted message's date, as unix seconds (midnight UTC of the day).
    pub date: Option<i64>,
}

impl QuotedBlock {
    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.from.iter().chain(&self.recipients)
    }
}

/// The quoted history of a message's own text (its depth-0 parts that are
/// not attachments), derived once per message ([`crate::view::MessageView::history`]):
/// every quoted block once, the deepest `>` quoting, what the sender wrote
/// above the history, and the links in the HTML written above it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Every quoted block of every part, once.
    pub blocks: Vec<QuotedBlock>,
    /// The deepest `>` quoting of a part (lines quoted).
    pub quote_lines: usize,
    /// Where each part's text above the quoted history is (see [`History::new_texts`]).
    new_text: Vec<NewText>,
    /// Links (hrefs that parse as URLs) in the HTML above its quote marks.
    pub new_links: Vec<String>,
}

/// What a part's sender wrote now: the head of the view's text (no copy of
/// a long body per message), or the normalised head when NFKC changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NewText {
    Head { part: usize, len: usize },
    Normalised(String),
}

impl History {
    /// Read `view`'s own text, at most `max_text_bytes` of each part.
    pub fn of(view: &crate::view::MessageView, max_text_bytes: usize) -> History {
        let mut history = History::default();
        for (index, part) in view
            .texts
            .iter()
            .enumerate()
            .filter(|(_, t)| t.depth == 0 && !t.is_attachment)
        {
            let (q, text, end) = find(&part.text, max_text_bytes);
            for b in q.blocks {
                if !history.blocks.contains(&b) {
                    history.blocks.push(b);
                }
            }
            history.quote_lines = history.quote_lines.max(q.quote_lines);
            history.new_text.push(match text {
                // Borrowed: `end` is an offset in the part's own text.
                std::borrow::Cow::Borrowed(_) => NewText::Head {
                    part: index,
                    len: end,
                },
                std::borrow::Cow::Owned(mut normalised) => {
                    normalised.truncate(end);
                    NewText::Normalised(normalised)
                }
            });
            if let Some(html) = &part.html {
                let cut = html_history_start(html, max_text_bytes);
                for a in super::urls::anchors(&html[..cut]) {
                    if super::urls::parse(&a.href).is_some() {
                        history.new_links.push(a.href);
                    }
                }
            }
        }
        history
    }

    /// True when the text carries quoted history of any form.
    pub fn has_history(&self) -> bool {
        !self.blocks.is_empty() || self.quote_lines >= 2
    }

    /// What the sender wrote now above the quoted history, part by part;
    /// `view` is the message this history was derived from.
    pub fn new_texts<'a>(
        &'a self,
        view: &'a crate::view::MessageView,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.new_text.iter().map(move |t| match t {
            NewText::Head { part, len } => view
                .texts
                .get(*part)
                .and_then(|p| p.text.get(..*len))
                .unwrap_or(""),
            NewText::Normalised(text) => text.as_str(),
        })
    }
}

/// The quoted history found in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quoted {
    pub blocks: Vec<QuotedBlock>,
    /// Lines quoted with `>`.
    pub quote_lines: usize,
    /// The text above the quoted history: what the sender wrote now.
    pub new_text: String,
}

impl Quoted {
    /// True when the text carries quoted history of any form.
    pub fn has_history(&self) -> bool {
        !self.blocks.is_empty() || self.quote_lines >= 2
    }
}

static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\*?(from|sent|date|to|cc|subject|差出人|送信者|送信日時|日付|宛先|件名|von|gesendet|datum|an|betreff|de|envoyé|à|objet)\*?\s*:\s*(.*)$")
        .expect("label regex")
});
static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(-{3,}\s*(original message|forwarded message|ursprüngliche nachricht|message d'origine|元のメッセージ|転送されたメッセージ)\s*-{3,}|_{10,}|-{2,}\s*forwarded message\s*-{2,})$")
        .expect("separator regex")
});
static TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\d{1,2}:\d{2}(:\d{2})?(\s*[ap]\.?m\.?)?(\s*[+-]\d{4})?(\s*\([A-Z]{2,5}\))?")
        .expect("time regex")
});
static JA_DATE_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日").expect("ja date regex")
});

/// Lines a header block may span ([`header_block`] reads no more).
const BLOCK_LINES: usize = 24;

/// [`parse`] of the head of `text` only: its first `lines` lines that hold
/// anything, and after them as many lines as a header block starting among
/// them may span, so that history starting among those lines is found
/// where [`parse`] finds it. For a reader of the top of a body
/// (`display_name`) that should not pay for parsing all of a long one.
pub fn parse_head(text: &str, lines: usize, max_bytes: usize) -> Quoted {
    let (mut shown, mut after) = (0, 0);
    let mut end = text.len();
    let mut offset = 0;
    for line in text.split('\n') {
        if shown >= lines {
            after += 1;
            if after > BLOCK_LINES {
                end = offset;
                break;
            }
        } else if !line.trim().is_empty() {
            shown += 1;
        }
        offset += line.len() + 1;
    }
    parse(&text[..end], max_bytes)
}

/// Find the quoted history in `text` (first `max_bytes` bytes).
pub fn parse(text: &str, max_bytes: usize) -> Quoted {
    let (mut quoted, text, end) = find(text, max_bytes);
    quoted.new_text = text[..end].to_string();
    quoted
}

/// [`parse`] without copying the new text: the quoted history (its
/// `new_text` left empty), the text it was found in (NFKC-normalised, of
/// `text` when that changed nothing), and where the new text ends in it.
fn find(text: &str, max_bytes: usize) -> (Quoted, std::borrow::Cow<'_, str>, usize) {
    let mut cut = text.len().min(max_bytes);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    // NFKC over a whole body is most of a text mail's scan time; skipped
    // when the text already is (ASCII always is).
    let text = crate::names::nfkc_cow(&text[..cut]);
    let lines: Vec<(usize, &str)> = line_offsets(&text);
    let mut out = Quoted::default();
    let mut history_start: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let (offset, raw) = lines[i];
        if is_plain_line(raw) {
            i += 1;
            continue;
        }
        let (depth, line) = unquote(raw);
        if depth > 0 && !line.is_empty() {
            out.quote_lines += 1;
            mark(offset, &mut history_start);
        }
        // Every separator starts with '-' or '_', every label and
        // attribution line holds a colon: most body lines skip the regexes.
        if line.starts_with(['-', '_']) && SEPARATOR.is_match(line) {
            mark(offset, &mut history_start);
            i += 1;
            continue;
        }
        let has_colon = line.contains(':');
        if has_colon && LABEL.is_match(line) {
            let (block, used) = header_block(&lines[i..]);
            if let Some(block) = block {
                mark(offset, &mut history_start);
                out.blocks.push(block);
                i += used.max(1);
                continue;
            }
        }
        if !has_colon {
            i += 1;
            continue;
        }
        if let Some((block, start)) = attribution(&lines, i) {
            mark(start, &mut history_start);
            out.blocks.push(block);
        }
        i += 1;
    }
    let end = history_start.unwrap_or(text.len());
    (out, text, end)
}

/// Where quoted history starts in HTML, by the marks mailers leave.
const HTML_QUOTE_MARKS: &[&str] = &[
    "gmail_quote",
    "<blockquote",
    "divrplyfwdmsg",
    "-----original message-----",
    "moz-cite-prefix",
    "olk_src_body_section",
    "appendonsend",
];

/// The byte offset (on a character boundary) where quoted history starts
/// in `html`, looking at its first `max_bytes`; at most `max_bytes` (or
/// the length) when it has none.
pub fn html_history_start(html: &str, max_bytes: usize) -> usize {
    // The first mark in ASCII case (no lower-cased copy of the page).
    static MARKS: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
        let marks: Vec<String> = HTML_QUOTE_MARKS.iter().map(|m| regex::escape(m)).collect();
        regex::bytes::Regex::new(&format!("(?i-u){}", marks.join("|"))).expect("quote marks")
    });
    // Only a mark that starts within `max_bytes` matters: search no further.
    let longest = HTML_QUOTE_MARKS.iter().map(|m| m.len()).max().unwrap_or(0);
    let searched = &html.as_bytes()[..html.len().min(max_bytes.saturating_add(longest))];
    let mut cut = MARKS
        .find(searched)
        .map_or(html.len(), |m| m.start())
        .min(max_bytes)
        .min(html.len());
    while !html.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// A line that can be nothing of quoted history: its first character
/// (after blanks) is not `>`, `-` or `_` and it has no colon. Checked on
/// bytes where it can be, because nearly every line of a long body is such
/// a line.
fn is_plain_line(line: &str) -> bool {
    let mut start = line.trim_start_matches([' ', '\t']);
    if start.as_bytes().first().is_some_and(|b| !b.is_ascii()) {
        // Other Unicode blanks (rare after NFKC) may stand before a '>'.
        start = start.trim_start();
    }
    !start.starts_with(['>', '-', '_']) && memchr::memchr(b':', line.as_bytes()).is_none()
}

/// Note that quoted history starts at `offset` (keeping the earliest).
fn mark(offset: usize, start: &mut Option<usize>) {
    if start.is_none_or(|s| offset < s) {
        *start = Some(offset);
    }
}

fn line_offsets(text: &str) -> Vec<(usize, &str)> {
    // Most lines of mail are shorter than 80 bytes; a guess saves the
    // copies of growing the list line by line for a long body.
    let mut out = Vec::with_capacity(text.len() / 64 + 1);
    let mut offset = 0;
    for end in memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]) {
        // Cut at '\n', an ASCII byte: always a character boundary.
        let line = &text[offset..end];
        out.push((offset, line.trim_end_matches('\r')));
        offset = end + 1;
    }
    out
}

/// Strip `>` quoting: (levels, rest trimmed).
fn unquote(line: &str) -> (usize, &str) {
    let mut depth = 0;
    let mut rest = line.trim_start();
    while let Some(r) = rest.strip_prefix('>') {
        depth += 1;
        rest = r.trim_start();
    }
    (depth, rest.trim())
}

/// A header block starting at `lines[0]`: consecutive `Label: value` lines
/// (blank lines between them allowed, as HTML-to-text leaves them). Valid
/// with a sender, a date, and a subject or recipients. Returns the lines used.
fn header_block(lines: &[(usize, &str)]) -> (Option<QuotedBlock>, usize) {
    let mut block = QuotedBlock {
        style: Style::HeaderBlock,
        from: Vec::new(),
        recipients: Vec::new(),
        subject: None,
        date: None,
    };
    let (mut has_from, mut has_date, mut has_to) = (false, false, false);
    let mut used = 0;
    let mut fields = 0;
    for (n, (_, raw)) in lines.iter().enumerate().take(24) {
        let (_, line) = unquote(raw);
        if line.is_empty() {
            continue;
        }
        let Some(c) = LABEL.captures(line) else {
            break;
        };
        let label = c[1].to_lowercase();
        let value = c[2].trim();
        fields += 1;
        used = n + 1;
        match label.as_str() {
            "from" | "差出人" | "送信者" | "von" | "de" => {
                has_from = true;
                block.from = people(value);
            }
            "sent" | "date" | "送信日時" | "日付" | "gesendet" | "datum" | "envoyé" => {
                has_date = true;
                block.date = parse_loose_date(value);
            }
            "to" | "cc" | "宛先" | "an" | "à" => {
                has_to = true;
                block.recipients.extend(people(value));
            }
            _ => block.subject = Some(value.to_string()),
        }
        if fields >= 8 {
            break;
        }
    }
    let valid = has_from && has_date && (has_to || block.subject.is_some());
    (valid.then_some(block), used)
}

/// The people of a header value: `Name <a@b>; "Other" <c@d>`, `a@b`,
/// Outlook's `Name [mailto:a@b]`, or a bare name.
fn people(value: &str) -> Vec<Person> {
    let segments: Vec<&str> = if value.contains(';') {
        value.split(';').collect()
    } else if find_in_text(value).len() > 1 {
        value.split(',').collect()
    } else {
        vec![value]
    };
    segments
        .into_iter()
        .filter_map(|seg| {
            let address = find_in_text(seg).into_iter().next();
            let mut name = seg.to_string();
            for cut in ["<", "[mailto:", "(mailto:"] {
                if let Some(p) = name.find(cut) {
                    name.truncate(p);
                }
            }
            if let Some(a) = &address {
                if name.trim().eq_ignore_ascii_case(a) {
                    name.clear();
                }
            }
            let name = clean_name(&name);
            (address.is_some() || name.is_some()).then_some(Person { name, address })
        })
        .collect()
}

fn clean_name(s: &str) -> Option<String> {
    let t = s
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == ',' || c.is_whitespace());
    (!t.is_empty() && !t.contains('@')).then(|| t.to_string())
}

/// An attribution line at `lines[i]`, possibly wrapped onto it from the
/// line before. Returns the block and where it starts.
fn attribution(lines: &[(usize, &str)], i: usize) -> Option<(QuotedBlock, usize)> {
    let (offset, raw) = lines[i];
    let (_, line) = unquote(raw);
    if !line.ends_with(':') {
        return None;
    }
    let lower = line.to_lowercase();
    let english = lower.ends_with("wrote:") || lower.ends_with("writes:");
    let japanese_tb = line.ends_with("書きました:");
    let japanese_gmail = line.ends_with(">:");
    if !(english || japanese_tb || japanese_gmail) {
        return None;
    }
    let starts_right = |l: &str| {
        l.starts_with("On ") || l.starts_with("on ") || JA_DATE_START.is_match(l) || date_first(l)
    };
    let (start, full) = if starts_right(line) {
        (offset, line.to_string())
    } else if i > 0 {
        let (prev_offset, prev_raw) = lines[i - 1];
        let (_, prev) = unquote(prev_raw);
        if !starts_right(prev) {
            return None;
        }
        (prev_offset, format!("{prev} {line}"))
    } else {
        return None;
    };
    if japanese_gmail && !english && !japanese_tb && !JA_DATE_START.is_match(&full) {
        return None;
    }
    if full.chars().count() > 300 {
        return None;
    }
    let date = parse_loose_date(&full);
    let address = find_in_text(&full).into_iter().next();
    // The name: after the date/time, before the address or "wrote:".
    let mut name_part = full.clone();
    for suffix in [
        "さんは書きました:",
        "は書きました:",
        "書きました:",
        " wrote:",
        " writes:",
        ":",
    ] {
        if let Some(p) = name_part.to_ascii_lowercase().rfind(suffix) {
            if p + suffix.len() == name_part.len() {
                name_part.truncate(p);
                break;
            }
        }
    }
    if let Some(p) = name_part.find('<') {
        name_part.truncate(p);
    } else if let Some(a) = &address {
        if let Some(p) = name_part.to_ascii_lowercase().find(a.as_str()) {
            name_part.truncate(p);
        }
    }
    let after_time = TIME
        .find_iter(&name_part)
        .last()
        .map(|m| m.end())
        .unwrap_or(0);
    let mut name = name_part[after_time..].trim().to_string();
    if after_time == 0 {
        if let Some(p) = name.rfind(", ") {
            name = name[p + 2..].to_string();
        }
    }
    let name = name
        .trim_start_matches([',', ' '])
        .trim_start_matches("に ")
        .trim_start_matches("に")
        .to_string();
    let block = QuotedBlock {
        style: Style::Attribution,
        from: vec![Person {
            name: clean_name(&name),
            address,
        }],
        recipients: Vec::new(),
        subject: None,
        date,
    };
    Some((block, start))
}

/// `2019/03/04 10:12 ...` or `04.03.2019 ...`: a line that opens with a date.
fn date_first(line: &str) -> bool {
    let head: String = line.chars().take(12).collect();
    head.chars().next().is_some_and(|c| c.is_ascii_digit()) && parse_loose_date(&head).is_some()
}

static YMD_JA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日").expect("re"));
static YMD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b").expect("re"));
static DMY_DOT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b").expect("re"));
static MDY_SLASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\b").expect("re"));
static D_MON_Y: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d{1,2})(?:st|nd|rd|th)?\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+(\d{4})\b")
        .expect("re")
});
static MON_D_Y: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
        .expect("re")
});

fn month_number(name: &str) -> u32 {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let n = name.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| n.starts_with(m))
        .map_or(0, |p| p as u32 + 1)
}

/// The day a quoted header or attribution names, as unix seconds at 00:00
/// UTC; None when no date is recognised. Day precision is all the
/// `revived_thread` rule needs, so times and zones are ignored.
pub fn parse_loose_date(s: &str) -> Option<i64> {
    let num = |m: Option<regex::Match<'_>>| m.and_then(|m| m.as_str().parse::<i64>().ok());
    let ymd = if let Some(c) = YMD_JA.captures(s) {
        (num(c.get(1)), num(c.get(2)), num(c.get(3)))
    } else if let Some(c) = YMD.captures(s) {
        (num(c.get(1)), num(c.get(2)), num(c.get(3)))
    } else if let Some(c) = D_MON_Y.captures(s) {
        (
            num(c.get(3)),
            Some(month_number(&c[2]) as i64),
            num(c.get(1)),
        )
    } else if let Some(c) = MON_D_Y.captures(s) {
        (
            num(c.get(3)),
            Some(month_number(&c[1]) as i64),
            num(c.get(2)),
        )
    } else if let Some(c) = DMY_DOT.captures(s) {
        (num(c.get(3)), num(c.get(2)), num(c.get(1)))
    } else if let Some(c) = MDY_SLASH.captures(s) {
        let (a, b) = (num(c.get(1))?, num(c.get(2))?);
        let mut y = num(c.get(3))?;
        if y < 100 {
            y += 2000;
        }
        // US order unless the first number cannot be a month.
        if a > 12 {
            (Some(y), Some(b), Some(a))
        } else {
            (Some(y), Some(a), Some(b))
        }
    } else {
        return None;
    };
    let (y, m, d) = (ymd.0?, ymd.1?, ymd.2?);
    if !(1990..=2100).contains(&y) {
        return None;
    }
    crate::calendar::day_start(y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAR_4_2019: i64 = 1_551_657_600;

    fn view_of(raw: &str) -> crate::view::MessageView {
        crate::view::MessageView::build(
            crate::Envelope::default(),
            raw.as_bytes(),
            &crate::config::Limits::default(),
            std::time::Instant::now() + std::time::Duration::from_secs(10),
        )
    }

    /// The history's new text is the head of the part's own text (no
    /// copy), or the normalised head when NFKC changed the text; either
    /// way what `parse` calls the new text.
    #[test]
    fn the_new_text_is_the_head_of_each_part() {
        let ascii = "Please see the attached.\r\n\r\n-----Original Message-----\r\n\
From: Taro <taro@x.example>\r\nSent: Monday, March 4, 2019 10:12 AM\r\n\
To: Hanako <hanako@y.example>\r\nSubject: invoice\r\n\r\nold text\r\n";
        let wide = "ＡＢＣの件、ご確認ください。\r\n";
        for body in [ascii, wide] {
            let view = view_of(&format!("From: a@b.example\r\nSubject: x\r\n\r\n{body}"));
            let history = History::of(&view, 1 << 20);
            let texts: Vec<&str> = history.new_texts(&view).collect();
            let text = &view.texts[0].text;
            assert_eq!(texts, [parse(text, 1 << 20).new_text.as_str()]);
        }
        let view = view_of(&format!("From: a@b.example\r\nSubject: x\r\n\r\n{ascii}"));
        let history = History::of(&view, 1 << 20);
        assert_eq!(
            history.new_texts(&view).next().unwrap().trim(),
            "Please see the attached."
        );
        assert!(history.has_history());
        let view = view_of(&format!("From: a@b.example\r\nSubject: x\r\n\r\n{wide}"));
        let history = History::of(&view, 1 << 20);
        assert_eq!(
            history.new_texts(&view).next().unwrap().trim(),
            "ABCの件、ご確認ください。"
        );
        assert!(!history.has_history());
    }

    /// Quote marks are found in any ASCII case; one beyond `max_bytes`
    /// cuts there.
    #[test]
    fn html_quote_marks_in_any_case() {
        let page = "<p>new</p><BLOCKQUOTE>old</BLOCKQUOTE>";
        assert_eq!(
            html_history_start(page, 1 << 20),
            page.find("<BLOCKQUOTE").unwrap()
        );
        let gmail = "<div>hi</div><div class=\"Gmail_Quote\">old</div>";
        assert_eq!(
            html_history_start(gmail, 1 << 20),
            gmail.find("Gmail_Quote").unwrap()
        );
        assert_eq!(html_history_start(page, 5), 5);
        // A mark that starts inside the bytes looked at and ends beyond them.
        let at = page.find("<BLOCKQUOTE").unwrap();
        assert_eq!(html_history_start(page, at + 3), at);
        assert_eq!(html_history_start(page, at), at);
        assert_eq!(html_history_start("<p>no history</p>", 1 << 20), 17);
        // A case fold beyond ASCII (the Kelvin sign for K) is no mark.
        assert_eq!(html_history_start("<bloc\u{212A}quote>", 1 << 20), 14);
    }

    #[test]
    fn only_lines_that_can_start_history_leave_the_fast_path() {
        assert!(is_plain_line("La La La, as agreed yesterday."));
        assert!(is_plain_line(""));
        assert!(!is_plain_line("  > quoted"));
        assert!(!is_plain_line("\u{1680}> quoted after an odd blank"));
        assert!(!is_plain_line("-----Original Message-----"));
        assert!(!is_plain_line("From: Taro <t@x.example>"));
        assert!(!is_plain_line(
            "2019年3月4日(月) 10:12 山田太郎 <t@x.example>:"
        ));
    }

    #[test]
    fn the_head_finds_history_where_the_whole_does() {
        let top = "Thanks.\r\n\r\nSee below.\r\n\r\n";
        let block = "-----Original Message-----\r\nFrom: Taro <t@x.example>\r\n\
Sent: Monday, March 4, 2019 10:12 AM\r\n\r\n\r\nTo: Hanako <h@y.example>\r\n\
Subject: Invoice\r\n\r\nold text\r\n";
        let tail = "filler\r\n".repeat(5000);
        let text = format!("{top}{block}{tail}");
        let whole = parse(&text, 1 << 20);
        for lines in [2, 3, 5] {
            let head = parse_head(&text, lines, 1 << 20);
            assert_eq!(head.new_text, whole.new_text, "{lines}");
            assert_eq!(head.blocks, whole.blocks, "{lines}");
        }
        // A block whose "From:" stands just after the head still ends it.
        let head = parse_head(&format!("a\r\nb\r\n{block}{tail}"), 2, 1 << 20);
        assert_eq!(head.new_text, "a\r\nb\r\n");
        assert!(parse_head(&tail, 5, 1 << 20).new_text.len() < 1000);
    }

    #[test]
    fn dates_in_the_forms_mailers_write() {
        for s in [
            "Monday, March 4, 2019 10:12 AM",
            "Mon, 4 Mar 2019 10:12:00 +0900",
            "2019年3月4日 10:12",
            "2019年3月4日(月) 10:12",
            "２０１９年３月４日",
            "2019/03/04 10:12",
            "2019-03-04",
            "04.03.2019 10:12",
            "3/4/19 10:12 AM",
            "On Mon, Mar 4, 2019 at 10:12 AM Taro <t@x.example> wrote:",
            "04 March 2019 10:12",
        ] {
            let s = crate::names::nfkc(s);
            assert_eq!(parse_loose_date(&s), Some(MAR_4_2019), "{s}");
        }
        assert_eq!(parse_loose_date("no date here"), None);
        assert_eq!(parse_loose_date("2019/13/45"), None);
        // A day the calendar does not have is no date (it used to roll
        // over into March).
        assert_eq!(parse_loose_date("2019/02/30"), None);
        assert_eq!(parse_loose_date("2020/02/29"), Some(1_582_934_400));
    }

    #[test]
    fn outlook_block_english() {
        let text = "Please see the attached.\r\n\r\n-----Original Message-----\r\nFrom: Taro Yamada [mailto:taro@legal-holdings.co.jp]\r\nSent: Monday, March 4, 2019 10:12 AM\r\nTo: Hanako Sato <hanako@partner.example.com>; ops@partner.example.com\r\nSubject: Invoice\r\n\r\nold text\r\n";
        let q = parse(text, 1 << 20);
        assert_eq!(q.blocks.len(), 1);
        let b = &q.blocks[0];
        assert_eq!(
            b.from,
            vec![Person {
                name: Some("Taro Yamada".into()),
                address: Some("taro@legal-holdings.co.jp".into())
            }]
        );
        assert_eq!(b.recipients.len(), 2);
        assert_eq!(
            b.recipients[1].address.as_deref(),
            Some("ops@partner.example.com")
        );
        assert_eq!(b.subject.as_deref(), Some("Invoice"));
        assert_eq!(b.date, Some(MAR_4_2019));
        assert_eq!(q.new_text.trim(), "Please see the attached.");
        assert!(q.has_history());
    }

    #[test]
    fn outlook_block_japanese_with_full_width_colons() {
        let text = "ご確認ください。\n\n差出人： 山田 太郎 <taro@legal-holdings.co.jp>\n送信日時： 2019年3月4日 10:12\n宛先： 佐藤 花子 <hanako@partner.example.com>\n件名： 請求書の件\n\n本文\n";
        let q = parse(text, 1 << 20);
        assert_eq!(q.blocks.len(), 1, "{q:?}");
        let b = &q.blocks[0];
        assert_eq!(b.from[0].name.as_deref(), Some("山田 太郎"));
        assert_eq!(b.subject.as_deref(), Some("請求書の件"));
        assert_eq!(b.date, Some(MAR_4_2019));
        assert_eq!(q.new_text.trim(), "ご確認ください。");
    }

    #[test]
    fn gmail_attributions_english_wrapped_and_japanese() {
        let text = "Thanks!\n\nOn Mon, Mar 4, 2019 at 10:12 AM Taro Yamada <\ntaro@legal-holdings.co.jp> wrote:\n> old\n> text\n";
        let q = parse(text, 1 << 20);
        assert_eq!(q.blocks.len(), 1, "{q:?}");
        assert_eq!(
            q.blocks[0].from[0],
            Person {
                name: Some("Taro Yamada".into()),
                address: Some("taro@legal-holdings.co.jp".into())
            }
        );
        assert_eq!(q.blocks[0].date, Some(MAR_4_2019));
        assert_eq!(q.new_text.trim(), "Thanks!");

        let ja = "了解です。\n\n2019年3月4日(月) 10:12 山田太郎 <taro@legal-holdings.co.jp>:\n> 古い本文\n";
        let q = parse(ja, 1 << 20);
        assert_eq!(q.blocks.len(), 1, "{q:?}");
        assert_eq!(q.blocks[0].from[0].name.as_deref(), Some("山田太郎"));
        assert_eq!(q.blocks[0].date, Some(MAR_4_2019));
    }

    #[test]
    fn thunderbird_forms() {
        let reply = "ok\n\nOn 3/4/19 10:12 AM, Taro Yamada wrote:\n> hi\n";
        let q = parse(reply, 1 << 20);
        assert_eq!(q.blocks[0].from[0].name.as_deref(), Some("Taro Yamada"));
        assert_eq!(q.blocks[0].from[0].address, None);
        assert_eq!(q.blocks[0].date, Some(MAR_4_2019));

        let ja = "はい\n\n2019/03/04 10:12 に 山田太郎 さんは書きました:\n> こんにちは\n";
        let q = parse(ja, 1 << 20);
        assert_eq!(q.blocks[0].from[0].name.as_deref(), Some("山田太郎"));

        let fwd = "see below\n\n-------- Original Message --------\nSubject: Invoice\nDate: Mon, 4 Mar 2019 10:12:00 +0900\nFrom: Taro Yamada <taro@legal-holdings.co.jp>\nTo: hanako@partner.example.com\n\nold\n";
        let q = parse(fwd, 1 << 20);
        assert_eq!(q.blocks.len(), 1);
        assert_eq!(
            q.blocks[0].recipients[0].address.as_deref(),
            Some("hanako@partner.example.com")
        );
        assert_eq!(q.new_text.trim(), "see below");
    }

    #[test]
    fn german_and_french_outlook_blocks() {
        let de = "Anbei.\n\nVon: Taro Yamada <taro@legal-holdings.co.jp>\nGesendet: Montag, 4. März 2019 10:12\nAn: hanako@partner.example.com\nBetreff: Rechnung\n";
        let q = parse(de, 1 << 20);
        assert_eq!(q.blocks.len(), 1, "{q:?}");
        assert_eq!(
            q.blocks[0].recipients[0].address.as_deref(),
            Some("hanako@partner.example.com")
        );
        let fr = "Ci-joint.\n\nDe : Taro Yamada <taro@legal-holdings.co.jp>\nEnvoyé : lundi 4 mars 2019 10:12\nÀ : hanako@partner.example.com\nObjet : Facture\n";
        let q = parse(fr, 1 << 20);
        assert_eq!(q.blocks.len(), 1, "{q:?}");
        assert_eq!(q.blocks[0].subject.as_deref(), Some("Facture"));
    }

    #[test]
    fn plain_text_is_not_history() {
        let q = parse(
            "From: the start of a sentence\nwe talk about dates.\n",
            1 << 20,
        );
        assert!(q.blocks.is_empty());
        assert!(!q.has_history());
        let q = parse("> one quoted line\n", 1 << 20);
        assert!(!q.has_history());
    }
}
