//! Password candidates from the subject and every text part of a message.
//!
//! Text is first normalised with Unicode NFKC, so full-width `ＰＷ：ａｂ１２３`
//! reads as `PW:ab123` and the ideographic space as a space. A candidate is
//! the token after a cue (`パスワード`, `PW`, `password`, ...) on the same line,
//! or alone on the next line when the cue line ends (`【パスワード】`, `パスワードは
//! 以下の通りです。`); or a lone short token beside the archive's file name.
//! Candidates are bounded and each says where it was found, for the evidence.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// A password guess and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub password: String,
    /// For people: `body line 3 after "パスワード"`, `subject after "PW"`.
    pub found: String,
}

/// What the miner reads.
pub struct MinerInput<'a> {
    pub subject: &'a str,
    /// (location, text) of every text part, in message order.
    pub texts: Vec<(&'a str, &'a str)>,
    /// File names of the encrypted archives, for the "lone token nearby" rule.
    pub archive_names: Vec<&'a str>,
    /// At most this many candidates.
    pub max_candidates: usize,
    /// Bytes of each text part read (the start of the part).
    pub max_text_bytes: usize,
}

/// Password cues, longest first so that `パスワード` wins over `パス`.
/// ASCII cues must stand as words; see [`is_word_at`].
static CUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(解凍用?パスワード|解凍キー|暗証番号|パスワード|パス|zip\s?password|pass\s?word|pass\s?code|passwd|pwd|pw|pass)",
    )
    .expect("cue regex")
});

/// What may stand between a cue and its token: closing brackets of
/// `【パスワード】`, a note in parentheses like `(半角英数)`, and a separator
/// (`:`, `=`, `は`, `is`, `for the zip file is`, arrows).
static BETWEEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^
        [\s\]】」』)>》〉]*
        (?:[(][^)]{0,24}[)]\s*)?
        (?P<sep>
            (?:for|of|to)\s[^:]{0,40}?\s(?:is|:)
          | is\b | : | = | は | が | → | ⇒ | -+>
        )?
        \s*:?\s*",
    )
    .expect("between regex")
});

/// A token in quotes or brackets.
static QUOTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^[「【『"'“‘\[<(]\s*([!-~]{1,64}?)\s*[」】』"'”’\]>)]"#).expect("quoted regex")
});

/// A bare token: printable ASCII without spaces. Bounded (longer ones are
/// rejected by `accept`), so that a long line full of cues stays linear.
static BARE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[!-~]{1,65}").expect("bare regex"));

/// The cue line says the password follows on the next line.
static POINTS_BELOW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:以下|下記|次|below|as follows|follows)").expect("below regex")
});

/// A line that holds nothing but one token (possibly quoted).
static LONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^[「【『"'“‘\[<(]?\s*([!-~]{2,64}?)\s*[」】』"'”’\]>)]?[.。]?$"#)
        .expect("lone regex")
});

/// Words that follow a cue in prose, never passwords.
const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "and",
    "are",
    "as",
    "be",
    "been",
    "below",
    "by",
    "change",
    "changed",
    "code",
    "expired",
    "expires",
    "follows",
    "following",
    "for",
    "has",
    "have",
    "here",
    "in",
    "incorrect",
    "invalid",
    "is",
    "it",
    "later",
    "n/a",
    "none",
    "not",
    "of",
    "on",
    "or",
    "please",
    "protected",
    "required",
    "reset",
    "same",
    "send",
    "sent",
    "separate",
    "separately",
    "that",
    "the",
    "this",
    "to",
    "via",
    "was",
    "will",
    "with",
    "you",
    "your",
];

/// Every candidate in the message, first found first, deduplicated, at most
/// `max_candidates`.
pub fn mine(input: &MinerInput<'_>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |password: String, found: String| {
        if out.len() < input.max_candidates && !out.iter().any(|c| c.password == password) {
            out.push(Candidate { password, found });
        }
    };
    let subject: String = input.subject.nfkc().collect();
    for (password, cue) in cues_in_lines(&[subject.as_str()], 0) {
        push(password, format!("subject after {cue:?}"));
    }
    let names: Vec<String> = input
        .archive_names
        .iter()
        .map(|n| n.nfkc().collect::<String>().to_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    for (location, text) in &input.texts {
        let text = head(text, input.max_text_bytes);
        let normal: String = text.nfkc().collect();
        let lines: Vec<&str> = normal.lines().collect();
        for line in 0..lines.len() {
            for (password, cue) in cues_in_lines(&lines, line) {
                push(
                    password,
                    format!("{location} line {} after {cue:?}", line + 1),
                );
            }
        }
        for (password, line, name) in near_archive_names(&lines, &names) {
            push(
                password,
                format!("{location} line {} (lone token near {name:?})", line + 1),
            );
        }
    }
    out
}

/// The start of `text`, at most `max` bytes, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Candidates from the cues on `lines[index]` (the next lines are read when
/// the cue line ends): (password, cue as written).
fn cues_in_lines(lines: &[&str], index: usize) -> Vec<(String, String)> {
    let line = lines[index];
    let mut out = Vec::new();
    for cue in CUE.find_iter(line) {
        let text = cue.as_str();
        if text.is_ascii() && !is_word_at(line, cue.start(), cue.end()) {
            continue;
        }
        if let Some(token) = token_after(&line[cue.end()..], lines, index, text) {
            out.push((token, text.to_string()));
        }
    }
    out
}

/// True when `line[start..end]` is not glued to other ASCII letters or digits
/// (`PW` in `PW:x` yes, in `PWM` no; `pass` in `compass` no).
fn is_word_at(line: &str, start: usize, end: usize) -> bool {
    let before = line[..start].chars().next_back();
    let after = line[end..].chars().next();
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !glued(before) && !glued(after)
}

/// The password after a cue, from the rest of the cue's line or the next line.
fn token_after(rest: &str, lines: &[&str], index: usize, cue: &str) -> Option<String> {
    let between = BETWEEN.captures(rest)?;
    let had_separator = between.name("sep").is_some() || rest.starts_with(['】', ']', '」', '』']);
    let after = &rest[between.get(0).map_or(0, |m| m.end())..];
    if let Some(q) = QUOTED.captures(after) {
        return accept(&q[1]);
    }
    if let Some(bare) = BARE.find(after) {
        let token = bare.as_str().trim_end_matches(|c| {
            matches!(c, '.' | ',' | ';' | ':' | ')' | ']' | '>' | '"' | '\'')
        });
        // Without a separator only a token with a digit is taken
        // ("passcode 4452"), so that prose ("password reset") is not.
        // `パス` alone is too common in Japanese to go without one.
        let sep_needed =
            !had_separator && (cue == "パス" || !token.chars().any(|c| c.is_ascii_digit()));
        return if sep_needed { None } else { accept(token) };
    }
    let tail = after.trim();
    let cue_line_ends = tail.is_empty() || POINTS_BELOW.is_match(tail) || tail.ends_with(':');
    // A bare cue ending its line pulls the next line only for Japanese cues
    // ("■パスワード" above the token); `$ pwd` above a path must not.
    let bare_ok = !cue.is_ascii() && cue != "パス";
    if !cue_line_ends || (!had_separator && tail.is_empty() && !bare_ok) {
        return None;
    }
    // The token on the next non-empty line, if that line holds nothing else.
    let next = lines
        .iter()
        .skip(index + 1)
        .take(2)
        .map(|l| l.trim())
        .find(|l| !l.is_empty())?;
    LONE.captures(next).and_then(|c| accept(&c[1]))
}

/// A plausible password: 2..=64 printable characters with a letter or digit,
/// not a prose word, a link or an address.
fn accept(token: &str) -> Option<String> {
    let token = token.trim();
    let len = token.chars().count();
    if !(2..=64).contains(&len) || !token.chars().any(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let lower = token.to_ascii_lowercase();
    if STOPWORDS.contains(&lower.as_str())
        || lower.contains("://")
        || lower.starts_with("www.")
        || (lower.contains('@') && lower.rsplit('@').next().is_some_and(|d| d.contains('.')))
    {
        return None;
    }
    Some(token.to_string())
}

/// `line` lowercased, with, for every byte offset of the result (and its
/// end), the offset in `line` of the character it came from. A lowercased
/// character never starts mid-way in the original, so `line[origin[k]..]`
/// is always a valid slice.
fn lowercase_with_offsets(line: &str) -> (String, Vec<usize>) {
    let mut lower = String::with_capacity(line.len());
    let mut origin = Vec::with_capacity(line.len() + 1);
    for (at, ch) in line.char_indices() {
        let before = lower.len();
        lower.extend(ch.to_lowercase());
        origin.resize(origin.len() + (lower.len() - before), at);
    }
    origin.push(line.len());
    (lower, origin)
}

/// Lone short tokens within two lines of a line naming an archive, or in
/// parentheses right after the name: (password, line index, archive name).
fn near_archive_names(lines: &[&str], names: &[String]) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    if names.is_empty() {
        return out;
    }
    for (i, line) in lines.iter().enumerate() {
        let (lower, origin) = lowercase_with_offsets(line);
        let Some(name) = names.iter().find(|n| lower.contains(n.as_str())) else {
            continue;
        };
        // Case mapping changes byte lengths (İ grows, ẞ and the Kelvin sign
        // shrink): an offset in `lower` is mapped back to `line` by `origin`.
        let end = lower.find(name.as_str()).unwrap_or(0) + name.len();
        if let Some(rest) = origin.get(end).and_then(|&at| line.get(at..)) {
            if let Some(c) = PAREN_AFTER_NAME.captures(rest) {
                if let Some(token) = lone_password(&c[1]) {
                    out.push((token, i, name.clone()));
                }
            }
        }
        let lo = i.saturating_sub(2);
        let hi = (i + 2).min(lines.len().saturating_sub(1));
        for (j, other) in lines.iter().enumerate().take(hi + 1).skip(lo) {
            if j == i {
                continue;
            }
            if let Some(token) = LONE
                .captures(other.trim())
                .and_then(|c| lone_password(&c[1]))
            {
                out.push((token, j, name.clone()));
            }
        }
    }
    out
}

static PAREN_AFTER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*[(\[]\s*([!-~]{3,32}?)\s*[)\]]").expect("paren regex"));

/// A lone token counts only if it looks made up: 4..=32 characters mixing
/// digits with letters, or all digits — not a word, date or signature.
fn lone_password(token: &str) -> Option<String> {
    let len = token.chars().count();
    let digits = token.chars().any(|c| c.is_ascii_digit());
    let letters = token.chars().any(|c| c.is_ascii_alphabetic());
    let all_digits = token.chars().all(|c| c.is_ascii_digit());
    let mixed = digits && letters;
    if !(4..=32).contains(&len) || !(mixed || all_digits) || token.contains(['/', '-', ':']) {
        return None;
    }
    accept(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mined(subject: &str, body: &str) -> Vec<String> {
        mine(&MinerInput {
            subject,
            texts: vec![("body", body)],
            archive_names: vec!["請求書.zip"],
            max_candidates: 16,
            max_text_bytes: 1 << 20,
        })
        .into_iter()
        .map(|c| c.password)
        .collect()
    }

    #[test]
    fn japanese_cues() {
        assert_eq!(mined("", "パスワード：ab12cd"), ["ab12cd"]);
        assert_eq!(mined("", "ＰＷ：ａｂ１２３"), ["ab123"]);
        assert_eq!(mined("", "解凍パスワードは「Xy7#kq」です。"), ["Xy7#kq"]);
        assert_eq!(mined("", "【パスワード】\n  7kQp2x\n"), ["7kQp2x"]);
        assert_eq!(
            mined("", "パスワードは以下の通りです。\n\nqwe789\n"),
            ["qwe789"]
        );
        assert_eq!(mined("", "暗証番号 : 4821"), ["4821"]);
        assert_eq!(mined("", "解凍キー【K9m2Zt】"), ["K9m2Zt"]);
        assert_eq!(mined("", "パスワードはabc123です"), ["abc123"]);
        assert_eq!(mined("", "■パスワード\nh4Ks8q\n"), ["h4Ks8q"]);
    }

    #[test]
    fn english_cues() {
        assert_eq!(mined("", "Password: sa"), ["sa"]);
        assert_eq!(mined("", "The password is 'tiger42'."), ["tiger42"]);
        assert_eq!(
            mined("", "Password for the zip file is: AB12cd"),
            ["AB12cd"]
        );
        assert_eq!(mined("", "pwd=hello1"), ["hello1"]);
        assert_eq!(mined("", "passcode 4452 to open"), ["4452"]);
        assert_eq!(mined("[PW:abc123] invoice", ""), ["abc123"]);
    }

    #[test]
    fn prose_is_not_a_password() {
        assert!(mined("", "パスワードは別途メールにてお送りします。").is_empty());
        assert!(mined("", "Your password has expired. Reset your password here.").is_empty());
        assert!(mined("", "パスポートの写しを添付します").is_empty());
        assert!(mined("", "The compass pwm passed").is_empty());
        assert!(mined("", "Password will be sent in a separate email.").is_empty());
        assert!(mined("", "    $ pwd\n    /home/user/src2\n").is_empty());
    }

    #[test]
    fn lone_token_near_the_archive_name() {
        assert_eq!(mined("", "添付：請求書.zip\nr8Tq2w\n"), ["r8Tq2w"]);
        assert_eq!(mined("", "請求書.zip (k3j9x2)"), ["k3j9x2"]);
        assert!(mined("", "請求書.zip\n2024/11/01\nThanks\n").is_empty());
    }

    #[test]
    fn hostile_text_stays_cheap() {
        // Every cue's look-ahead is bounded, so 200 KB of cues in one
        // line is linear work (quadratic would not finish in a debug build).
        let line = "pw:\"pw:".repeat(30_000);
        assert!(mined("", &line).len() <= 16);
        let long = format!("PW: {}", "x".repeat(100_000));
        assert!(mined("", &long).is_empty());
    }

    #[test]
    fn bounded_and_sourced() {
        let body: String = (0..40).map(|i| format!("PW: pass{i:02}x\n")).collect();
        let c = mine(&MinerInput {
            subject: "",
            texts: vec![("body", &body)],
            archive_names: vec![],
            max_candidates: 5,
            max_text_bytes: 1 << 20,
        });
        assert_eq!(c.len(), 5);
        assert_eq!(c[2].found, "body line 3 after \"PW\"");
    }
}
