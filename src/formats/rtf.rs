//! RTF: embedded OLE objects (`\object`, `\objdata`, `\objupdate`), the
//! carrier of Equation Editor exploits (CVE-2017-11882, CVE-2018-0802), OLE
//! Packages and `OLE2Link` objects (CVE-2017-0199).
//!
//! One pass over the bytes with an explicit group stack (no recursion; the
//! stack is bounded by [`Limits::max_depth`], deeper groups share the state
//! of the deepest one kept). It reads RTF the lenient way Word does, which
//! is what exploit writers rely on:
//! - the header only needs `{\rt` (anything else after it is
//!   [`IndicatorKind::Malformed`]);
//! - inside `\objdata`, every hex digit counts wherever it sits: whitespace
//!   and junk between digits, control words, nested groups without a
//!   destination (their text still counts), `\binN` runs of raw bytes;
//!   `{\*\...}` groups inside the data are skipped. Junk is `Malformed`.
//!
//! The decoded data is an OLE1 object ([MS-OLEDS] 2.2.4 ObjectHeader, 2.2.5
//! EmbeddedObject, 2.2.6 LinkedObject): the ProgID (`ClassName`) and the
//! native data, which is often an OLE2 compound file (returned as
//! [`Embedded`], scanned like any Office file) or, for `Package`, the
//! Packager's file (returned as [`Embedded`] with its name).

use bytes::Bytes;

use super::ole_objects::{
    equation_clsid_in, is_equation_prog_id, moniker_targets, package_native, root_clsid, Reader,
    OLE_MAGIC, STD_OLE_LINK,
};
use super::{Budget, Embedded, IndicatorKind, Opened, Passwords};

/// Bounds on the work one RTF file may cause (besides the budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Group nesting followed; deeper groups share the deepest state.
    pub max_depth: usize,
    /// `\object`/`\objdata` objects decoded per file.
    pub max_objects: usize,
    /// Bytes decoded from one `\objdata`.
    pub max_object_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 1024,
            max_objects: 64,
            max_object_bytes: 64 << 20,
        }
    }
}

/// True when `data` is RTF as Word reads it: it starts with `{\rt`.
pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(b"{\\rt")
}

/// Everything found inside, within the budget, with the default limits.
pub fn open(data: &[u8], budget: &Budget, _passwords: Passwords<'_>) -> Opened {
    open_with(data, budget, &Limits::default())
}

/// How decoded bytes are charged to the budget: in chunks, not per byte.
const CHARGE_CHUNK: usize = 64 << 10;

/// Tokens of `\objdata` besides hex digit values (0-15): `\'` escapes,
/// which Word reads in ways exploit writers use to hide digits.
/// An escape of lower-case hex with a letter (`\'cc`).
const ESC_LETTERS: u8 = 16;
/// An escape of two decimal digits (`\'29`).
const ESC_DIGITS: u8 = 17;
/// Any other escape (`\'2F`, `\'1R`, `\'!*`).
const ESC_OTHER: u8 = 18;

/// Where the text of the current group goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// Text that does not matter here (document text, tables, pictures).
    Other,
    /// Hex (and `\bin`) data of object `n`.
    ObjData(usize),
    /// The `\objclass` name of object `n`.
    ObjClass(usize),
}

#[derive(Debug, Clone, Copy)]
struct Group {
    dest: Dest,
    /// The `\object` this group belongs to.
    object: Option<usize>,
    /// No control word or text seen yet in this group.
    fresh: bool,
}

#[derive(Debug, Default)]
struct Object {
    class: String,
    /// Hex digit values and escape markers, in order.
    tokens: Vec<u8>,
    /// Entries of `tokens` already charged to the budget.
    charged: usize,
    escapes: bool,
    update: bool,
    link: bool,
    /// Non-hex, non-whitespace bytes and skipped groups inside the data.
    junk: u64,
    bin_runs: u64,
    has_data: bool,
    /// The data stopped at a limit.
    cut: Option<String>,
}

pub fn open_with(data: &[u8], budget: &Budget, limits: &Limits) -> Opened {
    let mut out = Opened::default();
    if !sniff(data) {
        return out;
    }
    if !header_is_proper(data) {
        let shown: String = data
            .iter()
            .take(12)
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        out.indicator(
            IndicatorKind::Malformed,
            format!("RTF header broken on purpose: {shown}"),
        );
    }
    let mut objects: Vec<Object> = Vec::new();
    let mut stack: Vec<Group> = Vec::new();
    let mut extra_depth: u64 = 0;
    let mut deep_noted = false;
    let mut top = Group {
        dest: Dest::Other,
        object: None,
        fresh: true,
    };
    let mut i = 0usize;
    let mut objects_noted = false;
    let mut stray_update = false;
    let mut steps = 0u32;
    while i < data.len() {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(65536) && budget.expired() {
            out.limits
                .push("the scan's time budget ran out in an RTF file".into());
            break;
        }
        let b = data[i];
        match b {
            b'{' => {
                i += 1;
                if stack.len() >= limits.max_depth {
                    extra_depth += 1;
                    if !deep_noted {
                        deep_noted = true;
                        out.indicator(
                            IndicatorKind::Malformed,
                            format!("RTF groups nested deeper than {}", limits.max_depth),
                        );
                    }
                    continue;
                }
                stack.push(top);
                top.fresh = true;
            }
            b'}' => {
                i += 1;
                if extra_depth > 0 {
                    extra_depth -= 1;
                    continue;
                }
                if let Some(g) = stack.pop() {
                    top = g;
                }
            }
            b'\\' => {
                let (word, param, next) = control(data, i);
                i = next;
                match word {
                    Control::Star => {
                        if let Dest::ObjData(n) = top.dest {
                            if let Some(o) = objects.get_mut(n) {
                                o.junk += 1;
                            }
                            // `{\*\junk ...}` inside the data: Word skips
                            // the group (a `\objdata` in it starts anew).
                            if top.fresh {
                                top.dest = Dest::Other;
                            }
                        }
                        continue;
                    }
                    Control::Hex => {
                        if let Dest::ObjData(n) = top.dest {
                            if let Some(o) = objects.get_mut(n) {
                                o.junk += 1;
                                let escaped = data.get(next.saturating_sub(2)..next).unwrap_or(&[]);
                                let token = escape_token(escaped);
                                o.escapes = true;
                                push_token(o, token, budget, limits);
                            }
                        }
                    }
                    Control::Symbol(_) => {}
                    Control::Word(w) => {
                        if w == b"bin" {
                            let n = usize::try_from(param.unwrap_or(0).max(0)).unwrap_or(0);
                            let end = i.saturating_add(n).min(data.len());
                            if let Dest::ObjData(k) = top.dest {
                                if let Some(o) = objects.get_mut(k) {
                                    o.bin_runs += 1;
                                    let run = data.get(i..end).unwrap_or(&[]);
                                    for &byte in run {
                                        if !push_token(o, byte >> 4, budget, limits)
                                            || !push_token(o, byte & 0x0F, budget, limits)
                                        {
                                            break;
                                        }
                                    }
                                }
                            }
                            i = end;
                        } else if w == b"object" {
                            if objects.len() < limits.max_objects {
                                objects.push(Object::default());
                                top.object = Some(objects.len() - 1);
                            } else if !objects_noted {
                                objects_noted = true;
                                out.limits.push(format!(
                                    "more than {} objects in an RTF file; the rest not decoded",
                                    limits.max_objects
                                ));
                            }
                        } else if w == b"objdata" {
                            let n = match top.object {
                                Some(n) if !objects.get(n).is_some_and(|o| o.has_data) => Some(n),
                                _ if objects.len() < limits.max_objects => {
                                    objects.push(Object::default());
                                    Some(objects.len() - 1)
                                }
                                _ => None,
                            };
                            if let Some(n) = n {
                                if let Some(o) = objects.get_mut(n) {
                                    o.has_data = true;
                                }
                                top.object = Some(n);
                                top.dest = Dest::ObjData(n);
                            }
                        } else if w == b"objclass" {
                            if let Some(n) = top.object {
                                top.dest = Dest::ObjClass(n);
                            }
                        } else if w == b"objupdate" {
                            if let Some(o) = top.object.and_then(|n| objects.get_mut(n)) {
                                o.update = true;
                            } else if !stray_update {
                                stray_update = true;
                                out.indicator(
                                    IndicatorKind::AutoUpdate,
                                    "\\objupdate outside any object",
                                );
                            }
                        } else if w == b"objlink" || w == b"objautlink" {
                            if let Some(o) = top.object.and_then(|n| objects.get_mut(n)) {
                                o.link = true;
                            }
                        } else if let Dest::ObjData(n) = top.dest {
                            if is_destination(w) {
                                // Decoy data: the rest of this group goes
                                // to another destination.
                                if let Some(o) = objects.get_mut(n) {
                                    o.junk += 1;
                                }
                                top.dest = Dest::Other;
                            }
                        }
                    }
                }
                top.fresh = false;
            }
            _ => {
                top.fresh = false;
                if top.dest == Dest::Other {
                    // Document text: nothing to read until the next token.
                    i = memchr::memchr3(b'{', b'}', b'\\', &data[i..])
                        .map_or(data.len(), |p| i + p);
                    continue;
                }
                if let Dest::ObjData(n) = top.dest {
                    // Object data: the whole run of text up to the next
                    // token at once (megabytes of hex in a real object).
                    let end = memchr::memchr3(b'{', b'}', b'\\', &data[i..])
                        .map_or(data.len(), |p| i + p);
                    if let Some(o) = objects.get_mut(n) {
                        push_hex_run(o, &data[i..end], budget, limits);
                    }
                    i = end;
                    continue;
                }
                i += 1;
                match top.dest {
                    Dest::ObjData(_) => {}
                    Dest::ObjClass(n) => {
                        if let Some(o) = objects.get_mut(n) {
                            if o.class.len() < 256 && b != b'\r' && b != b'\n' {
                                o.class.push(b as char);
                            }
                        }
                    }
                    Dest::Other => {}
                }
            }
        }
    }
    for (n, object) in objects.into_iter().enumerate() {
        if budget.expired() {
            out.limits
                .push("the scan's time budget ran out in an RTF file".into());
            break;
        }
        report_object(n + 1, object, budget, &mut out);
    }
    out
}

/// `{\rtf1` followed by a delimiter, as every honest writer puts it.
fn header_is_proper(data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"{\\rtf1") else {
        return false;
    };
    match rest.first() {
        None => true,
        Some(&c) => c == b'\\' || c == b'{' || c == b'}' || c.is_ascii_whitespace(),
    }
}

/// What a byte of object data is: a hex digit's value (0-15), or one of
/// these.
const SPACE: u8 = 0x40;
const JUNK: u8 = 0x80;
static DATA_BYTE: [u8; 256] = {
    let mut t = [JUNK; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b' ' | b'\t' | b'\n' | b'\r' | 0x0C | 0 => SPACE,
            _ => JUNK,
        };
        b += 1;
    }
    t
};

/// Add a run of object-data text (no `{`, `}` or `\\` in it): hex digits
/// become tokens, whitespace and NUL are skipped, anything else is junk.
fn push_hex_run(o: &mut Object, run: &[u8], budget: &Budget, limits: &Limits) {
    o.tokens.reserve(run.len().min(CHARGE_CHUNK));
    for &b in run {
        match DATA_BYTE[b as usize] {
            SPACE => {}
            JUNK => o.junk += 1,
            v => {
                push_token(o, v, budget, limits);
            }
        }
    }
}

/// Add one token to an object's data, charging the budget a chunk at a
/// time. False once the object is cut at a limit.
#[inline]
fn push_token(o: &mut Object, token: u8, budget: &Budget, limits: &Limits) -> bool {
    // Already charged and under the cap: the common case, kept cheap.
    if o.tokens.len() < o.charged
        && (o.tokens.len() as u64) < limits.max_object_bytes.saturating_mul(2)
    {
        o.tokens.push(token);
        return true;
    }
    push_token_slow(o, token, budget, limits)
}

#[cold]
fn push_token_slow(o: &mut Object, token: u8, budget: &Budget, limits: &Limits) -> bool {
    if o.cut.is_some() {
        return false;
    }
    // Two digits make a byte: the token count bounds the decoded size.
    if o.tokens.len() as u64 >= limits.max_object_bytes.saturating_mul(2) {
        o.cut = Some(format!(
            "RTF object data over {} bytes; the rest not decoded",
            limits.max_object_bytes
        ));
        return false;
    }
    if o.tokens.len() >= o.charged {
        if let Err(e) = budget.take(CHARGE_CHUNK as u64) {
            o.cut = Some(format!("RTF object data not fully decoded: {e}"));
            return false;
        }
        o.charged += CHARGE_CHUNK;
    }
    o.tokens.push(token);
    true
}

fn escape_token(hh: &[u8]) -> u8 {
    let lower = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    if hh.len() == 2 && hh.iter().all(u8::is_ascii_digit) {
        ESC_DIGITS
    } else if hh.len() == 2 && hh.iter().all(lower) {
        ESC_LETTERS
    } else {
        ESC_OTHER
    }
}

/// How `\'` escapes inside the data are read. Word's behaviour is what
/// exploit writers test against; the observed forms are tried in turn and
/// the reading that gives a well-formed object wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// An escape drops a digit waiting for its pair; a lower-case letter
    /// escape also drops the last digit of a complete byte.
    Letters,
    /// As `Letters`, digit escapes included.
    LettersAndDigits,
    /// An escape drops a digit waiting for its pair, nothing else.
    Pending,
    /// Escapes change nothing.
    Ignore,
}

/// Decode the tokens into bytes under one reading of the escapes.
fn decode(tokens: &[u8], reading: Reading) -> Vec<u8> {
    if tokens.iter().all(|&t| t < 16) {
        // No escapes: every reading is the same, digits pair up.
        return tokens
            .chunks_exact(2)
            .map(|pair| (pair[0] << 4) | pair[1])
            .collect();
    }
    let mut out = Vec::with_capacity(tokens.len() / 2);
    let mut half: Option<u8> = None;
    for &t in tokens {
        if t < 16 {
            match half.take() {
                Some(h) => out.push((h << 4) | t),
                None => half = Some(t),
            }
            continue;
        }
        let drops_complete = match reading {
            Reading::Letters => t == ESC_LETTERS,
            Reading::LettersAndDigits => t == ESC_LETTERS || t == ESC_DIGITS,
            Reading::Pending | Reading::Ignore => false,
        };
        if reading == Reading::Ignore {
            continue;
        }
        if half.take().is_none() && drops_complete {
            if let Some(b) = out.pop() {
                half = Some(b >> 4);
            }
        }
    }
    out
}

/// How well-formed decoded data looks: an OLE1 header, and native data
/// that starts as a compound file or a package.
fn quality(data: &[u8]) -> u8 {
    match parse_ole1(data) {
        Some(h) => {
            let native = h.native.and_then(|(s, e, _)| data.get(s..e)).unwrap_or(&[]);
            if native.starts_with(&OLE_MAGIC) || super::ole_objects::parse_package(native).is_some()
            {
                3
            } else {
                1
            }
        }
        None if memchr::memmem::find(data, &OLE_MAGIC).is_some() => 1,
        None => 0,
    }
}

/// The object's bytes: decoded once, or, when escapes hide digits, under
/// each reading until one gives a well-formed object. Every decoded copy
/// is charged to the budget first.
fn decode_object(o: &Object, budget: &Budget, out: &mut Opened) -> Vec<u8> {
    let size = (o.tokens.len() / 2) as u64;
    let readings: &[Reading] = if o.escapes {
        &[
            Reading::Letters,
            Reading::Pending,
            Reading::LettersAndDigits,
            Reading::Ignore,
        ]
    } else {
        &[Reading::Ignore]
    };
    let mut best: Option<(u8, Vec<u8>)> = None;
    for &reading in readings {
        if let Err(e) = budget.take(size) {
            out.limits.push(format!("RTF object data not decoded: {e}"));
            break;
        }
        let data = decode(&o.tokens, reading);
        let q = quality(&data);
        if best.as_ref().is_none_or(|(bq, _)| q > *bq) {
            best = Some((q, data));
        }
        if q >= 3 {
            break;
        }
    }
    best.map(|(_, d)| d).unwrap_or_default()
}

/// RTF destination control words (RTF 1.9.1), lower-case and sorted. Text
/// after one of these inside `\objdata` belongs to that destination, not
/// to the object: exploits hide decoy hex behind them (`{\hlsrc ...}`).
const DESTINATIONS: &[&str] = &[
    "aftncn",
    "aftnsep",
    "aftnsepc",
    "annotation",
    "atnauthor",
    "atndate",
    "atnicn",
    "atnid",
    "atnparent",
    "atnref",
    "atntime",
    "atrfend",
    "atrfstart",
    "author",
    "background",
    "bkmkend",
    "bkmkstart",
    "blipuid",
    "buptim",
    "category",
    "colorschememapping",
    "colortbl",
    "comment",
    "company",
    "creatim",
    "datafield",
    "datastore",
    "defchp",
    "defpap",
    "do",
    "doccomm",
    "docvar",
    "dptxbxtext",
    "ebcend",
    "ebcstart",
    "factoidname",
    "falt",
    "fchars",
    "ffdeftext",
    "ffentrymcr",
    "ffexitmcr",
    "ffformat",
    "ffhelptext",
    "ffl",
    "ffname",
    "ffstattext",
    "field",
    "file",
    "filetbl",
    "fldinst",
    "fldrslt",
    "fldtype",
    "fname",
    "fontemb",
    "fontfile",
    "fonttbl",
    "footer",
    "footerf",
    "footerl",
    "footerr",
    "footnote",
    "formfield",
    "ftncn",
    "ftnsep",
    "ftnsepc",
    "g",
    "generator",
    "gridtbl",
    "header",
    "headerf",
    "headerl",
    "headerr",
    "hl",
    "hlfr",
    "hlinkbase",
    "hlloc",
    "hlsrc",
    "hsv",
    "htmltag",
    "info",
    "keycode",
    "keywords",
    "latentstyles",
    "lchars",
    "levelnumbers",
    "leveltext",
    "lfolevel",
    "linkval",
    "list",
    "listlevel",
    "listname",
    "listoverride",
    "listoverridetable",
    "listpicture",
    "liststylename",
    "listtable",
    "listtext",
    "lsdlockedexcept",
    "macc",
    "maccpr",
    "mailmerge",
    "maln",
    "malnscr",
    "manager",
    "margpr",
    "mbar",
    "mbarpr",
    "mbasejc",
    "mbegchr",
    "mborderbox",
    "mborderboxpr",
    "mbox",
    "mboxpr",
    "mchr",
    "mcount",
    "mctrlpr",
    "md",
    "mdeg",
    "mdeghide",
    "mden",
    "mdiff",
    "mdpr",
    "me",
    "mendchr",
    "meqarr",
    "meqarrpr",
    "mf",
    "mfname",
    "mfpr",
    "mfunc",
    "mfuncpr",
    "mgroupchr",
    "mgroupchrpr",
    "mgrow",
    "mhidebot",
    "mhideleft",
    "mhideright",
    "mhidetop",
    "mhtmltag",
    "mlim",
    "mlimloc",
    "mlimlow",
    "mlimlowpr",
    "mlimupp",
    "mlimupppr",
    "mm",
    "mmaddfieldname",
    "mmath",
    "mmathpict",
    "mmathpr",
    "mmaxdist",
    "mmc",
    "mmcjc",
    "mmconnectstr",
    "mmconnectstrdata",
    "mmcpr",
    "mmcs",
    "mmdatasource",
    "mmheadersource",
    "mmmailsubject",
    "mmodso",
    "mmodsofilter",
    "mmodsofldmpdata",
    "mmodsomappedname",
    "mmodsoname",
    "mmodsorecipdata",
    "mmodsosort",
    "mmodsosrc",
    "mmodsotable",
    "mmodsoudl",
    "mmodsoudldata",
    "mmodsouniquetag",
    "mmpr",
    "mmquery",
    "mmr",
    "mnary",
    "mnarypr",
    "mnobreak",
    "mnum",
    "mobjdist",
    "momath",
    "momathpara",
    "momathparapr",
    "mopemu",
    "mphant",
    "mphantpr",
    "mplchide",
    "mpos",
    "mr",
    "mrad",
    "mradpr",
    "mrpr",
    "msepchr",
    "mshow",
    "mshp",
    "mspre",
    "msprepr",
    "mssub",
    "mssubpr",
    "mssubsup",
    "mssubsuppr",
    "mssup",
    "mssuppr",
    "mstrikebltr",
    "mstrikeh",
    "mstriketlbr",
    "mstrikev",
    "msub",
    "msubhide",
    "msup",
    "msuphide",
    "mtransp",
    "mtype",
    "mvertjc",
    "mvfmf",
    "mvfml",
    "mvtof",
    "mvtol",
    "mzeroasc",
    "mzerodesc",
    "mzerowid",
    "nesttableprops",
    "nextfile",
    "nonesttables",
    "objalias",
    "objname",
    "objsect",
    "objtime",
    "oldcprops",
    "oldpprops",
    "oldsprops",
    "oldtprops",
    "oleclsid",
    "operator",
    "panose",
    "password",
    "passwordhash",
    "pgp",
    "pgptbl",
    "picprop",
    "pict",
    "pn",
    "pnseclvl",
    "pntext",
    "pntxta",
    "pntxtb",
    "printim",
    "private",
    "propname",
    "protend",
    "protstart",
    "protusertbl",
    "pxe",
    "result",
    "revtbl",
    "revtim",
    "rsidtbl",
    "rxe",
    "shp",
    "shpgrp",
    "shpinst",
    "shppict",
    "shprslt",
    "shptxt",
    "sn",
    "sp",
    "subject",
    "sv",
    "svb",
    "tc",
    "template",
    "themedata",
    "title",
    "txe",
    "ud",
    "upr",
    "userprops",
    "wgrffmtfilter",
    "windowcaption",
    "writereservation",
    "writereservhash",
    "xe",
    "xform",
    "xmlattrname",
    "xmlattrvalue",
    "xmlclose",
    "xmlname",
    "xmlnstbl",
    "xmlopen",
];

fn is_destination(word: &[u8]) -> bool {
    let lower = word.to_ascii_lowercase();
    let Ok(lower) = std::str::from_utf8(&lower) else {
        return false;
    };
    DESTINATIONS.binary_search(&lower).is_ok()
}

#[derive(Debug, PartialEq, Eq)]
enum Control<'a> {
    /// `\` + letters (the name, at most 32 letters kept).
    Word(&'a [u8]),
    /// `\*`
    Star,
    /// `\'hh`
    Hex,
    /// Any other control symbol (`\{`, `\\`, `\~`, ...).
    Symbol(u8),
}

/// Read the control word or symbol at `data[at] == b'\\'`: its kind, its
/// numeric parameter, and where the next token starts.
fn control(data: &[u8], at: usize) -> (Control<'_>, Option<i64>, usize) {
    let start = at + 1;
    let Some(&first) = data.get(start) else {
        return (Control::Symbol(0), None, start);
    };
    if !first.is_ascii_alphabetic() {
        return match first {
            b'*' => (Control::Star, None, start + 1),
            b'\'' => (Control::Hex, None, (start + 3).min(data.len())),
            c => (Control::Symbol(c), None, start + 1),
        };
    }
    let mut i = start;
    while i < data.len() && data[i].is_ascii_alphabetic() {
        i += 1;
    }
    let name = &data[start..i];
    let name = &name[..name.len().min(32)];
    let mut param: Option<i64> = None;
    let mut j = i;
    let negative = data.get(j) == Some(&b'-');
    if negative {
        j += 1;
    }
    let digits_start = j;
    while j < data.len() && data[j].is_ascii_digit() {
        if j - digits_start < 10 {
            let d = i64::from(data[j] - b'0');
            param = Some(param.unwrap_or(0) * 10 + d);
        }
        j += 1;
    }
    if j > digits_start {
        if negative {
            param = param.map(|p| -p);
        }
        i = j;
    }
    // One space after a control word is its delimiter.
    if data.get(i) == Some(&b' ') {
        i += 1;
    }
    (Control::Word(name), param, i)
}

/// The parts of an OLE1 object ([MS-OLEDS] 2.2.4-2.2.6).
struct Ole1 {
    class: String,
    topic: String,
    item: String,
    linked: bool,
    /// Native data range and declared size (embedded objects).
    native: Option<(usize, usize, u64)>,
}

fn parse_ole1(data: &[u8]) -> Option<Ole1> {
    let mut r = Reader::new(data);
    let _version = r.u32()?;
    let format = r.u32()?;
    if format != 1 && format != 2 {
        return None;
    }
    let class = r.lpstr(4096)?;
    let topic = r.lpstr(65536).unwrap_or_default();
    let item = r.lpstr(65536).unwrap_or_default();
    let mut ole = Ole1 {
        class,
        topic,
        item,
        linked: format == 1,
        native: None,
    };
    if format == 2 {
        if let Some(size) = r.u32() {
            let start = r.pos;
            let end = start.saturating_add(size as usize).min(data.len());
            ole.native = Some((start, end, u64::from(size)));
        }
    }
    Some(ole)
}

fn report_object(n: usize, mut o: Object, budget: &Budget, out: &mut Opened) {
    if let Some(cut) = o.cut.take() {
        out.limits.push(cut);
    }
    let rtf_class = o
        .class
        .trim_matches(|c: char| c.is_whitespace() || c == ';')
        .to_string();
    if (o.junk > 0 || o.bin_runs > 0) && o.has_data {
        let bin = if o.bin_runs > 0 {
            format!(" and {} \\bin runs", o.bin_runs)
        } else {
            String::new()
        };
        out.indicator(
            IndicatorKind::Malformed,
            format!(
                "RTF object {n}: \\objdata hex split with {} junk bytes or groups{bin}",
                o.junk
            ),
        );
    }
    let data = Bytes::from(decode_object(&o, budget, out));
    o.tokens = Vec::new();
    let ole1 = parse_ole1(&data);
    let prog_id = ole1
        .as_ref()
        .map(|h| h.class.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| rtf_class.clone());
    let shown = if prog_id.is_empty() {
        "(no class)".to_string()
    } else {
        prog_id.clone()
    };
    let auto_update = |ole2link: bool, out: &mut Opened| {
        if o.update {
            let link = if ole2link && !shown.eq_ignore_ascii_case("OLE2Link") {
                ", an OLE2Link object"
            } else {
                ""
            };
            out.indicator(
                IndicatorKind::AutoUpdate,
                format!("RTF \\objupdate on object {n} ({shown}{link})"),
            );
        }
    };
    if data.is_empty() {
        auto_update(false, out);
        if !o.has_data && !rtf_class.is_empty() {
            object_kind(&rtf_class, &[], n, out);
        }
        return;
    }
    let native = match &ole1 {
        Some(h) => match h.native {
            Some((s, e, declared)) => {
                if declared > (e - s) as u64 {
                    out.indicator(
                        IndicatorKind::Malformed,
                        format!(
                            "RTF object {n}: native data declared {declared} bytes, {} present",
                            e - s
                        ),
                    );
                }
                data.slice(s..e)
            }
            None => Bytes::new(),
        },
        None => {
            // No OLE1 header: an exploit hides the object behind junk. Take
            // the compound file wherever it starts.
            out.indicator(
                IndicatorKind::Malformed,
                format!("RTF object {n}: \\objdata is not an OLE1 object"),
            );
            match memchr::memmem::find(&data, &OLE_MAGIC) {
                Some(at) => data.slice(at..),
                None => data.clone(),
            }
        }
    };
    // OLE2Link objects (CVE-2017-0199) fetch the target of their moniker;
    // the class name may be junk when the compound file names StdOleLink.
    let root = if native.starts_with(&OLE_MAGIC) {
        root_clsid(&native, budget)
    } else {
        None
    };
    let ole2link =
        prog_id.eq_ignore_ascii_case("OLE2Link") || root.as_deref() == Some(STD_OLE_LINK);
    auto_update(ole2link, out);
    if let Some(h) = &ole1 {
        if !rtf_class.is_empty()
            && !h.class.is_empty()
            && !rtf_class.eq_ignore_ascii_case(h.class.trim_end_matches('\0'))
            && (is_equation_prog_id(&rtf_class) || is_equation_prog_id(&h.class))
        {
            // \objclass and the data's class disagree: name both.
            out.indicator(
                IndicatorKind::EquationEditor,
                format!(
                    "RTF object {n}: \\objclass {rtf_class}, data class {}",
                    h.class
                ),
            );
        }
    }
    let is_package = prog_id
        .trim_matches(char::from(0))
        .eq_ignore_ascii_case("package");
    let kind = object_kind(&prog_id, &native, n, out);
    if let Some(h) = &ole1 {
        if h.linked {
            out.indicator(
                IndicatorKind::OleObject,
                format!("RTF object {n}: link to {} {}", h.topic, h.item),
            );
        }
    }
    if is_package && kind == IndicatorKind::OlePackage {
        package_native(&native, "RTF \\objdata OLE Package", out);
        return;
    }
    if let Some(clsid) = &root {
        if !is_equation_clsid_str(clsid) {
            out.indicator(
                IndicatorKind::OleObject,
                format!("RTF object {n}: compound file of CLSID {clsid}"),
            );
        }
    }
    if ole2link || o.link {
        // Named as the relationship an OOXML document would use for it.
        for url in moniker_targets(&native, 8) {
            out.indicator(
                IndicatorKind::ExternalReference,
                format!("OLE2Link oleObject: {url}"),
            );
        }
    }
    if !native.is_empty() {
        let mut e = Embedded::new(None, native, "RTF \\objdata");
        if let Some((s, end, declared)) = ole1.as_ref().and_then(|h| h.native) {
            if declared != (end - s) as u64 {
                e.declared_size = Some(declared);
            }
        }
        out.embedded.push(e);
    }
}

/// Report what an object of class `prog_id` with native data `native` is.
fn object_kind(prog_id: &str, native: &[u8], n: usize, out: &mut Opened) -> IndicatorKind {
    let clsid = equation_clsid_in(native);
    let equation_name = is_equation_prog_id(prog_id)
        || (prog_id.is_empty() && find_ascii_ci(native, b"equation.3"));
    if equation_name || clsid.is_some() {
        let shown = if prog_id.is_empty() {
            "(no class)"
        } else {
            prog_id
        };
        let detail = match clsid {
            Some(c) => format!("RTF object {n}: {shown} (CLSID {c})"),
            None => format!("RTF object {n}: {shown}"),
        };
        out.indicator(IndicatorKind::EquationEditor, detail);
        return IndicatorKind::EquationEditor;
    }
    if prog_id
        .trim_matches(char::from(0))
        .eq_ignore_ascii_case("package")
    {
        // The package itself is reported with its file name by the caller.
        return IndicatorKind::OlePackage;
    }
    let shown = if prog_id.is_empty() {
        "(no class)"
    } else {
        prog_id
    };
    out.indicator(IndicatorKind::OleObject, format!("RTF object {n}: {shown}"));
    IndicatorKind::OleObject
}

fn is_equation_clsid_str(clsid: &str) -> bool {
    super::ole_objects::is_equation_clsid(clsid)
}

fn find_ascii_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn ole1(class: &str, native: &[u8]) -> Vec<u8> {
        let mut v = vec![0x01, 0x05, 0, 0, 0x02, 0, 0, 0];
        let c = format!("{class}\0");
        v.extend_from_slice(&(c.len() as u32).to_le_bytes());
        v.extend_from_slice(c.as_bytes());
        v.extend_from_slice(&[0; 8]); // empty topic and item names
        v.extend_from_slice(&(native.len() as u32).to_le_bytes());
        v.extend_from_slice(native);
        v
    }

    fn hex(data: &[u8]) -> String {
        data.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn equation_cfb() -> Vec<u8> {
        let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        c.set_storage_clsid("/", "0002CE02-0000-0000-C000-000000000046".parse().unwrap())
            .unwrap();
        c.create_stream("/Equation Native")
            .unwrap()
            .write_all(&[0x1C, 0, 0, 0, 2, 0, 0x9E, 0xC4])
            .unwrap();
        c.flush().unwrap();
        c.into_inner().into_inner()
    }

    fn run(rtf: &[u8]) -> Opened {
        open(rtf, &Budget::generous(), Passwords::default())
    }

    fn kinds(o: &Opened) -> Vec<IndicatorKind> {
        o.indicators.iter().map(|i| i.kind).collect()
    }

    #[test]
    fn equation_object_is_found_and_its_compound_file_returned() {
        let cfb = equation_cfb();
        let rtf = format!(
            "{{\\rtf1\\ansi{{\\object\\objemb\\objupdate{{\\*\\objclass Equation.3}}\\objw380\\objh260{{\\*\\objdata {}}}}}}}",
            hex(&ole1("Equation.3", &cfb))
        );
        let o = run(rtf.as_bytes());
        assert_eq!(
            kinds(&o),
            vec![IndicatorKind::AutoUpdate, IndicatorKind::EquationEditor],
            "{o:?}"
        );
        assert!(o.indicators[1].detail.contains("Equation.3"));
        assert!(o.indicators[1].detail.contains("0002CE02"));
        assert_eq!(o.embedded.len(), 1);
        assert_eq!(&o.embedded[0].data[..], &cfb[..]);
    }

    #[test]
    fn obfuscated_hex_still_decodes() {
        let cfb = equation_cfb();
        let h = hex(&ole1("eQuAtIoN.3", &cfb));
        // Junk: CR/LF and spaces, a control word with a parameter, a
        // nested group without destination (its text counts), an ignorable
        // group (skipped), `\'hh` and a `\bin` run of raw bytes.
        let (a, rest) = h.split_at(10);
        let (b, rest) = rest.split_at(7);
        let (c, d) = rest.split_at(31);
        let mut rtf = format!(
            "{{\\rt0junk{{\\object{{\\*\\objdata \r\n{a}\\par12 {b} {{{c}}}{{\\*\\xx 4142}}\\'4A zz"
        )
        .into_bytes();
        // The next byte, raw, then the rest as hex.
        let (first, tail) = d.split_at(2);
        let byte = u8::from_str_radix(first, 16).unwrap();
        rtf.extend_from_slice(b"\\bin1 ");
        rtf.push(byte);
        rtf.extend_from_slice(tail.as_bytes());
        rtf.extend_from_slice(b"}}}");
        let o = run(&rtf);
        assert!(kinds(&o).contains(&IndicatorKind::EquationEditor), "{o:?}");
        let malformed: Vec<_> = o
            .indicators
            .iter()
            .filter(|i| i.kind == IndicatorKind::Malformed)
            .map(|i| i.detail.as_str())
            .collect();
        assert!(
            malformed.iter().any(|d| d.contains("header")),
            "{malformed:?}"
        );
        assert!(
            malformed.iter().any(|d| d.contains("junk")),
            "{malformed:?}"
        );
        assert_eq!(&o.embedded[0].data[..], &cfb[..]);
    }

    #[test]
    fn escapes_drop_the_digit_before_them_and_decoys_are_skipped() {
        let cfb = equation_cfb();
        let h = hex(&ole1("Equation.3", &cfb));
        // Decoy hex in `{\\hlsrc ...}` and after `\\listtable` is not object
        // data. Between bytes: a junk digit then a lower-case `\\'cc` (drops
        // the digit before it); `\\'1R\\'2F` with no digit pending (no
        // effect); a junk digit then `\\'!*` (drops the pending digit).
        let mut rtf =
            String::from("{\\rtf1{\\object{\\*\\objdata {\\hlsrc 4142}{ x\\listtable 4344}");
        for (j, pair) in h.as_bytes().chunks(2).enumerate() {
            rtf.push_str(std::str::from_utf8(pair).unwrap());
            rtf.push_str(match j % 3 {
                0 => "7\\'cc",
                1 => "\\'1R\\'2F",
                _ => "a\\'!*",
            });
        }
        rtf.push_str("}}}");
        let o = run(rtf.as_bytes());
        assert!(kinds(&o).contains(&IndicatorKind::EquationEditor), "{o:?}");
        assert_eq!(&o.embedded[0].data[..], &cfb[..]);
    }

    #[test]
    fn package_object_yields_the_packaged_file() {
        let mut native = vec![2, 0];
        native.extend_from_slice(b"run.hta\0C:\\Users\\a\\run.hta\0\0\0\x03\0");
        let temp = b"C:\\Temp\\run.hta\0";
        native.extend_from_slice(&(temp.len() as u32).to_le_bytes());
        native.extend_from_slice(temp);
        let body = b"<script>new ActiveXObject('WScript.Shell')</script>";
        native.extend_from_slice(&(body.len() as u32).to_le_bytes());
        native.extend_from_slice(body);
        let rtf = format!(
            "{{\\rtf1{{\\object\\objemb{{\\*\\objclass Package}}{{\\*\\objdata {}}}}}}}",
            hex(&ole1("Package", &native))
        );
        let o = run(rtf.as_bytes());
        assert_eq!(kinds(&o), vec![IndicatorKind::OlePackage], "{o:?}");
        assert!(o.indicators[0].detail.starts_with("run.hta"));
        assert_eq!(o.embedded.len(), 1);
        assert_eq!(o.embedded[0].name.as_deref(), Some("run.hta"));
        assert_eq!(&o.embedded[0].data[..], body);
    }

    #[test]
    fn other_objects_and_ole2link_urls() {
        let mut native = equation_cfb();
        native.clear();
        let url: Vec<u8> = "http://evil.example/x.hta\0"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        native.extend_from_slice(&[0xE0, 0xC9, 0xEA, 0x79]);
        native.extend_from_slice(&url);
        let rtf = format!(
            "{{\\rtf1{{\\object\\objautlink\\objupdate{{\\*\\objdata {}}}}}{{\\object{{\\*\\objclass Word.Document.8}}{{\\*\\objdata {}}}}}}}",
            hex(&ole1("OLE2Link", &native)),
            hex(&ole1("Word.Document.8", b"data"))
        );
        let o = run(rtf.as_bytes());
        assert_eq!(
            kinds(&o),
            vec![
                IndicatorKind::AutoUpdate,
                IndicatorKind::OleObject,
                IndicatorKind::ExternalReference,
                IndicatorKind::OleObject
            ],
            "{o:?}"
        );
        assert_eq!(
            o.indicators[2].detail,
            "OLE2Link oleObject: http://evil.example/x.hta"
        );
        assert!(o.indicators[3].detail.contains("Word.Document.8"));
    }

    #[test]
    fn data_without_ole1_header_is_searched() {
        let cfb = equation_cfb();
        let mut junk = b"garbage!".to_vec();
        junk.extend_from_slice(&cfb);
        let rtf = format!("{{\\rtf1{{\\*\\objdata {}}}}}", hex(&junk));
        let o = run(rtf.as_bytes());
        assert!(kinds(&o).contains(&IndicatorKind::EquationEditor), "{o:?}");
        assert!(kinds(&o).contains(&IndicatorKind::Malformed));
        assert_eq!(&o.embedded[0].data[..], &cfb[..]);
    }

    #[test]
    fn honest_rtf_gives_nothing() {
        let pict = "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times;}}{\\*\\generator Writer}\
            \\pard Hello {\\b world}\\par{\\pict\\pngblip\\picw10\\pich10 89504e470d0a1a0a0000}\
            {\\*\\bkmkstart x}\\'e9t\\'e9\\par}";
        let o = run(pict.as_bytes());
        assert!(o.is_empty(), "{o:?}");
        assert!(!sniff(b"hello"));
        assert!(run(b"not rtf").is_empty());
    }

    #[test]
    fn deep_groups_and_hostile_bytes_are_bounded() {
        let mut rtf = b"{\\rtf1".to_vec();
        rtf.extend(std::iter::repeat_n(b'{', 100_000));
        rtf.extend_from_slice(b"\\object{\\*\\objdata 0105");
        rtf.extend(std::iter::repeat_n(b'}', 100_000));
        let o = run(&rtf);
        assert!(o
            .indicators
            .iter()
            .any(|i| i.kind == IndicatorKind::Malformed && i.detail.contains("deeper")));
        // Control words at the very end, huge parameters, lone backslashes.
        for tail in [
            &b"\\"[..],
            b"\\'",
            b"\\'4",
            b"\\bin99999999999999999999",
            b"\\bin-5",
            b"\\objdata\\bin",
            b"\\object\\objdata 0",
        ] {
            let mut r = b"{\\rtf1 ".to_vec();
            r.extend_from_slice(tail);
            let _ = run(&r);
        }
    }

    #[test]
    fn object_bytes_are_charged_to_the_budget() {
        let rtf = format!(
            "{{\\rtf1{{\\object{{\\*\\objdata {}}}}}}}",
            "41".repeat(200_000)
        );
        let small = Budget::new(
            std::time::Instant::now() + std::time::Duration::from_secs(60),
            100_000,
            10,
        );
        let o = open(rtf.as_bytes(), &small, Passwords::default());
        assert!(
            o.limits.iter().any(|l| l.contains("not fully decoded")),
            "{o:?}"
        );
        assert!(o.embedded.iter().all(|e| e.data.len() <= 100_000));
        let limited = Limits {
            max_object_bytes: 1000,
            ..Limits::default()
        };
        let o = open_with(rtf.as_bytes(), &Budget::generous(), &limited);
        assert!(
            o.limits.iter().any(|l| l.contains("over 1000 bytes")),
            "{o:?}"
        );
    }

    #[test]
    fn destinations_list_is_sorted_and_found() {
        assert!(DESTINATIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_destination(b"mlimLow"));
        assert!(is_destination(b"hlsrc"));
        assert!(!is_destination(b"par"));
        assert!(!is_destination(b"objdata"));
    }

    #[test]
    fn control_words_parse_like_word() {
        assert_eq!(
            control(b"\\objw380 x", 0),
            (Control::Word(b"objw"), Some(380), 9)
        );
        assert_eq!(
            control(b"\\bin-12", 0),
            (Control::Word(b"bin"), Some(-12), 7)
        );
        assert_eq!(control(b"\\*\\x", 0), (Control::Star, None, 2));
        assert_eq!(control(b"\\'e9", 0), (Control::Hex, None, 4));
        assert_eq!(control(b"\\'", 0), (Control::Hex, None, 2));
        assert_eq!(control(b"\\", 0), (Control::Symbol(0), None, 1));
        assert!(header_is_proper(b"{\\rtf1\\ansi"));
        assert!(!header_is_proper(b"{\\rtf1junk"));
        assert!(!header_is_proper(b"{\\rt\\ansi"));
    }
}
