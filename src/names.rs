//! Names compared the way a reader sees them.
//!
//! A display name is reduced to *tokens*: Unicode NFKC (full-width letters,
//! ㈱ and the ideographic space become their plain forms), lower case,
//! honorifics (様, さん, Mr, Dr, ...) and company forms (株式会社, (株), Inc,
//! Ltd, ...) removed, every character that is not a letter or digit dropped
//! (dots, quotes, hyphens, ・), and each token reduced to its UTS #39 skeleton
//! so that Cyrillic or Greek look-alike letters compare equal to Latin ones.
//!
//! Word order differs between "Taro Yamada" and "YAMADA Taro" and between
//! "山田 太郎" and "山田太郎": a [`NameKey`] therefore offers every rotation of its
//! tokens joined without spaces, and two names match when those sets meet.
//!
//! Skeletons come from `unicode-security` (the UTS #39 confusables table).
//! `decancer` was tried too: it builds on Rust 1.95 and cures Latin well,
//! but it rewrites Japanese into Latin look-alikes ("山田" became "wo",
//! "ヤマダ" "pマダ"), which would make unrelated Japanese names collide.
//!
//! Shared by `display_name` (directory, learned correspondents) and the
//! state store's correspondent memory, so a name learned and a name shown
//! compare the same way: store [`normalize`] of a name, or keep a
//! [`NameKey`] and compare with [`NameKey::matches`]; look a display name up
//! by every key of [`lookup_keys`].

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Honorifics written as separate words (Western) — dropped wherever they stand.
const HONORIFIC_WORDS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "san", "sama", "sensei",
];

/// Honorifics and role words glued to a Japanese name ("山田様", "営業部御中").
/// Longest first, so that "さま" is tried before nothing shorter shadows it.
const HONORIFIC_SUFFIXES: &[&str] = &[
    "御中",
    "様",
    "さま",
    "サマ",
    "さん",
    "殿",
    "先生",
    "氏",
    "くん",
    "君",
    "ちゃん",
];

/// Company forms written as separate words, compared after dots are removed.
const COMPANY_WORDS: &[&str] = &[
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "co",
    "corp",
    "corporation",
    "company",
    "llc",
    "llp",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "srl",
    "bv",
    "nv",
    "kk",
    "pty",
    "oy",
    "ab",
];

/// Company forms glued to a Japanese name, before or after it. NFKC has
/// already turned ㈱ into "(株)"; parentheses are matched here because they
/// are dropped only later.
const COMPANY_AFFIXES: &[&str] = &[
    "株式会社",
    "有限会社",
    "合同会社",
    "合資会社",
    "合名会社",
    "一般社団法人",
    "一般財団法人",
    "公益社団法人",
    "公益財団法人",
    "社会福祉法人",
    "医療法人",
    "学校法人",
    "(株)",
    "(有)",
    "(同)",
    "(財)",
    "(社)",
];

/// NFKC and lower case: full-width letters, ＠ and the ideographic space
/// become their plain forms.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.nfkc().flat_map(char::to_lowercase).collect()
}

/// `s` in NFKC, borrowed when it already is (ASCII always is): normalising
/// a whole body costs far more than checking it.
pub fn nfkc_cow(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii()
        || unicode_normalization::is_nfkc_quick(s.chars())
            == unicode_normalization::IsNormalized::Yes
    {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.nfkc().collect())
    }
}

/// NFKC only. Names are cut into words in this form and lower-cased only
/// after their skeleton is taken: Greek Η must be seen as Latin H before
/// lower case turns it into η, which looks like n.
pub fn nfkc(s: &str) -> String {
    nfkc_cow(s).into_owned()
}

/// The UTS #39 skeleton of a word, then folded: Cyrillic а and Greek ο
/// become Latin a and o.
pub fn skeleton(s: &str) -> String {
    // Twice: the table maps upper and lower case apart (M stays M, m becomes
    // "rn"), so the lower-cased first skeleton is reduced once more; then
    // "YAMADA" and "Yamada" meet.
    let once = skeleton_once(s);
    skeleton_once(&once)
}

fn skeleton_once(s: &str) -> String {
    // The skeleton is in NFD: accents on Latin letters stand apart and are
    // dropped ("García" is written "Garcia" as often), while the voicing
    // marks of kana stay (ダ is not タ) and recompose in `fold`.
    let mut proto = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in unicode_security::skeleton(s) {
        if is_combining_mark(c) && prev.is_ascii_alphabetic() {
            continue;
        }
        proto.push(c);
        prev = c;
    }
    fold(&proto)
}

/// True for Han, kana and Hangul: scripts written without spaces between
/// family and given name.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x31F0..=0x31FF    // katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x20000..=0x2FFFF) // CJK extensions B..
}

/// Strip company affixes and honorific suffixes from one folded word.
fn strip_affixes(word: &str) -> &str {
    let mut w = word;
    loop {
        let before = w.len();
        for affix in COMPANY_AFFIXES {
            if let Some(rest) = w.strip_prefix(affix) {
                w = rest;
            }
            if let Some(rest) = w.strip_suffix(affix) {
                w = rest;
            }
        }
        for suffix in HONORIFIC_SUFFIXES {
            // Only when something remains: "様" alone is not a name either way.
            if let Some(rest) = w.strip_suffix(suffix) {
                if !rest.is_empty() {
                    w = rest;
                }
            }
        }
        if w.len() == before {
            return w;
        }
    }
}

/// The tokens of one name (no separators inside): folded, honorifics and
/// company forms removed, punctuation dropped, skeletons taken.
pub fn tokens(name: &str) -> Vec<String> {
    let folded = nfkc(name);
    let mut out = Vec::new();
    // Commas separate "Yamada, Taro"; slashes and dots inside words stay for
    // now so that "co.,ltd." can be recognised.
    for word in folded.split(|c: char| c.is_whitespace() || c == ',') {
        let word = strip_affixes(word);
        let bare: String = word.chars().filter(|c| c.is_alphanumeric()).collect();
        let lower = bare.to_lowercase();
        if bare.is_empty()
            || HONORIFIC_WORDS.contains(&lower.as_str())
            || COMPANY_WORDS.contains(&lower.as_str())
        {
            continue;
        }
        let bare = strip_affixes(&bare).to_string();
        if bare.is_empty() || HONORIFIC_SUFFIXES.contains(&bare.as_str()) {
            continue;
        }
        out.push(skeleton(&bare));
    }
    out
}

/// A name reduced for comparison. See the module comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameKey {
    tokens: Vec<String>,
}

/// Names with more tokens than this are not rotated (a sentence, not a name).
const MAX_ROTATED_TOKENS: usize = 6;

impl NameKey {
    /// The key of a whole name; None when nothing of it remains (an empty
    /// name, or only honorifics and company forms).
    pub fn new(name: &str) -> Option<NameKey> {
        NameKey::from_tokens(tokens(name))
    }

    fn from_tokens(tokens: Vec<String>) -> Option<NameKey> {
        (!tokens.is_empty()).then_some(NameKey { tokens })
    }

    /// The tokens joined in their written order: the stable key to store.
    pub fn canonical(&self) -> String {
        self.tokens.concat()
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Every rotation of the tokens joined without spaces: "taroyamada" and
    /// "yamadataro" for "Taro Yamada".
    pub fn variants(&self) -> Vec<String> {
        let n = self.tokens.len();
        if n > MAX_ROTATED_TOKENS {
            return vec![self.canonical()];
        }
        let mut out: Vec<String> = (0..n)
            .map(|start| {
                let mut s = String::new();
                for i in 0..n {
                    s.push_str(&self.tokens[(start + i) % n]);
                }
                s
            })
            .collect();
        out.dedup();
        out
    }

    /// True when the key is specific enough to stand for one person or
    /// company: three or more characters, or two Han/kana characters.
    pub fn is_specific(&self) -> bool {
        let key = self.canonical();
        let chars = key.chars().count();
        chars >= 3 || (chars == 2 && key.chars().all(is_cjk))
    }

    /// True when the two names are the same name, whatever the word order.
    pub fn matches(&self, other: &NameKey) -> bool {
        let mine = self.variants();
        other.variants().iter().any(|v| mine.contains(v))
    }
}

/// The canonical key of a name (tokens in written order, joined): the form to
/// store and look up, e.g. for learned correspondents. Empty when nothing of
/// the name remains. Use [`NameKey::matches`] for order-insensitive comparison.
pub fn normalize(name: &str) -> String {
    NameKey::new(name)
        .map(|k| k.canonical())
        .unwrap_or_default()
}

/// Characters that separate a name from a company, department or role:
/// "Name | Company", "Name (Company)", "【営業部】山田", "Name / Dept".
fn is_segment_separator(c: char) -> bool {
    matches!(
        c,
        '|' | '/'
            | '\\'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '<'
            | '>'
            | '"'
            | ':'
            | ';'
            | '【'
            | '】'
            | '「'
            | '」'
            | '『'
            | '』'
            | '〈'
            | '〉'
            | '《'
            | '》'
            | '〔'
            | '〕'
            | '＜'
            | '＞'
            | '–'
            | '—'
            | '•'
    )
}

/// The parts of a display name that may each be a name: the whole, and each
/// piece between separators. Company affixes in brackets such as "(株)" are
/// protected from the split.
pub fn segments(display: &str) -> Vec<String> {
    let folded = nfkc(display);
    let mut protected = folded.clone();
    for affix in COMPANY_AFFIXES.iter().filter(|a| a.starts_with('(')) {
        let inner = &affix[1..affix.len() - 1];
        protected = protected.replace(affix, &format!("\u{E000}{inner}\u{E001}"));
    }
    // " - " separates, a hyphen inside "Jean-Luc" does not.
    let protected = protected.replace(" - ", "|");
    let restore = |s: &str| s.replace('\u{E000}', "(").replace('\u{E001}', ")");
    let mut out = vec![restore(&protected)];
    let pieces: Vec<String> = protected
        .split(is_segment_separator)
        .map(|p| restore(p.trim()))
        .filter(|p| !p.is_empty())
        .collect();
    if pieces.len() > 1 {
        out.extend(pieces);
    }
    out
}

/// Keys to look a display name up by: for each segment, every contiguous
/// run of its tokens. A run of one token is offered only when it is the
/// whole segment or a long Han/kana word ("株式会社例 山田太郎"), so that a
/// first name alone never matches a directory entry.
pub fn lookup_keys(display: &str) -> Vec<NameKey> {
    let mut out: Vec<NameKey> = Vec::new();
    for segment in segments(display) {
        let toks = tokens(&segment);
        let n = toks.len();
        // Runs of up to MAX_ROTATED_TOKENS words: a name padded with filler
        // is still found, and the work stays linear in the name's length.
        for len in 1..=n.min(MAX_ROTATED_TOKENS) {
            for start in 0..=(n - len) {
                let run = &toks[start..start + len];
                if len == 1 && n > 1 {
                    let t = &run[0];
                    if !(t.chars().count() >= 3 && t.chars().all(is_cjk)) {
                        continue;
                    }
                }
                if let Some(key) = NameKey::from_tokens(run.to_vec()) {
                    if key.is_specific() && !out.contains(&key) {
                        out.push(key);
                    }
                }
            }
        }
    }
    out
}

/// The display name written as words for phrase search: folded, every
/// non-alphanumeric character a space, each word skeletonised.
pub fn words(display: &str) -> Vec<String> {
    nfkc(display)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(skeleton)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        match (NameKey::new(a), NameKey::new(b)) {
            (Some(a), Some(b)) => a.matches(&b),
            _ => false,
        }
    }

    #[test]
    fn japanese_forms_match() {
        assert!(same("山田太郎", "山田 太郎"));
        assert!(same("山田太郎", "山田\u{3000}太郎様"));
        assert!(same("山田 太郎", "太郎 山田"));
        assert!(same("ヤマダ タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ"));
        assert!(same(
            "株式会社リーガル・ホールディングス",
            "リーガルホールディングス(株)"
        ));
        assert!(same(
            "㈱リーガルホールディングス",
            "リーガルホールディングス 御中"
        ));
        assert!(!same("山田太郎", "山田花子"));
    }

    #[test]
    fn western_forms_match() {
        assert!(same("Taro Yamada", "YAMADA Taro"));
        assert!(same("Yamada, Taro", "taro yamada"));
        assert!(same("Mr. John O'Brien", "john obrien"));
        assert!(same("Dr John Smith", "\"Smith, John\""));
        assert!(same("Ｊｏｈｎ　Ｓｍｉｔｈ", "John Smith"));
        assert!(same("Example Co., Ltd.", "EXAMPLE"));
        assert!(same("Acme, Inc.", "acme"));
        assert!(!same("John Smith", "Jane Smith"));
    }

    #[test]
    fn confusables_reduce_to_the_same_skeleton() {
        // Cyrillic а, о, е and Greek ο standing in for Latin letters.
        assert!(same("J\u{043e}hn Smith", "John Smith"));
        assert!(same(
            "T\u{0430}r\u{03bf} Y\u{0430}m\u{0430}d\u{0430}",
            "Taro Yamada"
        ));
        // Greek capitals Η and Μ: compared before lower case makes them η, μ.
        assert!(same("\u{0397}anako \u{039c}aria", "Hanako Maria"));
        assert!(same("María García", "Maria Garcia"));
        assert!(!same("ヤマダ", "ヤマタ"));
        assert!(same("YAMADA Taro", "Taro Yamada"));
        assert_eq!(normalize("P\u{0430}yP\u{0430}l"), normalize("paypal"));
    }

    #[test]
    fn normalize_is_stable_and_exposed() {
        assert_eq!(normalize("山田　太郎 様"), normalize("山田太郎"));
        assert_eq!(normalize("Mr. Taro  Yamada"), normalize("taro yamada"));
        assert_eq!(normalize("様"), "");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn display_names_split_into_segments() {
        let keys: Vec<String> = lookup_keys("Taro Yamada | Example Corp")
            .iter()
            .map(NameKey::canonical)
            .collect();
        assert!(keys.contains(&normalize("Taro Yamada")), "{keys:?}");
        let keys: Vec<String> = lookup_keys("山田太郎(営業部)")
            .iter()
            .map(NameKey::canonical)
            .collect();
        assert!(keys.contains(&normalize("山田太郎")), "{keys:?}");
        let keys: Vec<String> = lookup_keys("株式会社例 山田太郎")
            .iter()
            .map(NameKey::canonical)
            .collect();
        assert!(keys.contains(&normalize("山田太郎")), "{keys:?}");
        // A first name alone inside a longer name is not offered.
        let keys: Vec<String> = lookup_keys("Taro Yamada")
            .iter()
            .map(NameKey::canonical)
            .collect();
        assert!(!keys.contains(&"taro".to_string()), "{keys:?}");
        // "(株)" is a company form, not a separator.
        assert!(lookup_keys("(株)例商事")
            .iter()
            .any(|k| k.canonical() == normalize("例商事")));
    }
}
