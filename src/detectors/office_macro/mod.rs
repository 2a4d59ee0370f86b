//! `office_macro`: Word, Excel and PowerPoint files with macros, found by
//! content (never by name) at any depth of the attachment tree, and graded by
//! what the macros do (mraptor-style A/W/X classes, see `keywords`).
//!
//! - `ole`: OLE2 files (VBA storages, BIFF workbooks, PowerPoint objects)
//! - `ooxml`: OOXML packages (vbaProject.bin, macro sheets, embedded objects)
//! - `vba`: MS-OVBA decompression and the project's `dir` stream
//! - `xlm`: Excel 4.0 macro sheets in BIFF5/8
//! - `keywords`: the A/W/X keyword tables
//!
//! Each document is analysed on its own, inside `catch_unwind` and budgets,
//! so one hostile file cannot stop the others from being checked.

pub mod keywords;
pub mod ole;
pub mod ooxml;
pub mod vba;
pub mod xlm;

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::formats;
use crate::view::{FileType, MessageView};

use keywords::{Class, Match};

pub const NAME: &str = "office_macro";

pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "present",
        description: "An Office document carries macros (VBA or Excel 4.0); many honest documents do, so this alone tags",
        default_score: 5.0,
    },
    RuleInfo {
        name: "autoexec",
        description: "The macros run by themselves when the document opens (AutoOpen, Document_Open, Workbook_Open, Auto_Open, ..._Painted)",
        default_score: 1.0,
    },
    RuleInfo {
        name: "suspicious",
        description: "Auto-executing macros that also write files/download (W) or run programs/objects (X), as mraptor grades them",
        default_score: 6.0,
    },
    RuleInfo {
        name: "xlm",
        // present (5) + xlm (4) tags; with Auto_Open (+1) it quarantines:
        // an auto-running macro sheet is the 2020-22 malspam hallmark.
        description: "An Excel 4.0 (XLM) macro sheet, the old macro language Emotet used to evade VBA scanners",
        default_score: 4.0,
    },
    RuleInfo {
        name: "encrypted_document",
        description: "A password-encrypted Office document (EncryptedPackage, RC4/XOR FILEPASS, Word fEncrypted): its content cannot be inspected",
        default_score: 4.0,
    },
    RuleInfo {
        name: "renamed",
        description: "An Office document whose file name's extension belongs to another kind of file (e.g. a workbook called .jpg)",
        default_score: 5.0,
    },
];

/// `[office_macro]` settings. Archive and package limits come from `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfficeMacroConfig {
    pub enabled: bool,
    /// Bytes read from one OLE stream (Workbook, dir, a module, ...).
    pub max_stream_bytes: u64,
    /// Bytes of decompressed VBA source read per attachment.
    pub max_vba_source_bytes: u64,
    /// Modules read per VBA project.
    pub max_modules: usize,
    /// Entries (streams and storages) listed per OLE file.
    pub max_ole_entries: usize,
    /// Documents embedded in a document (OLE objects in packages or in
    /// PowerPoint files, packages in packages) analysed per attachment.
    pub max_nested_documents: usize,
    /// How deep documents nested in documents are followed.
    pub max_nesting_depth: usize,
}

impl Default for OfficeMacroConfig {
    fn default() -> Self {
        OfficeMacroConfig {
            enabled: true,
            max_stream_bytes: 64 * 1024 * 1024,
            max_vba_source_bytes: 16 * 1024 * 1024,
            max_modules: 1000,
            max_ole_entries: 10_000,
            max_nested_documents: 64,
            max_nesting_depth: 3,
        }
    }
}

/// The Office application a document belongs to, told from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum App {
    Word,
    Excel,
    PowerPoint,
    Visio,
    /// A bare vbaProject.bin.
    VbaProject,
    /// An encrypted OOXML file: the application is not visible.
    EncryptedPackage,
    /// Some other OLE2 or zip-based file (.msi, .msg, ...).
    #[default]
    Other,
}

impl App {
    fn describe(self) -> &'static str {
        match self {
            App::Word => "Word document",
            App::Excel => "Excel workbook",
            App::PowerPoint => "PowerPoint presentation",
            App::Visio => "Visio drawing",
            App::VbaProject => "VBA project",
            App::EncryptedPackage => "encrypted Office document",
            App::Other => "Office file",
        }
    }

    /// Extensions under which this content is honest. Within one
    /// application, old and new formats are interchangeable (exporters often
    /// write xlsx content into a .xls name), so they all count.
    fn extensions(self) -> &'static [&'static str] {
        const WORD: &[&str] = &[
            "doc", "dot", "docx", "docm", "dotx", "dotm", "wbk", "wiz", "rtf", "wps",
        ];
        const EXCEL: &[&str] = &[
            "xls", "xlt", "xla", "xlsx", "xlsm", "xlsb", "xltx", "xltm", "xlam", "xlw", "xlk",
        ];
        const POWERPOINT: &[&str] = &[
            "ppt", "pps", "pot", "ppa", "pptx", "pptm", "ppsx", "ppsm", "potx", "potm", "ppam",
            "sldx", "sldm", "thmx",
        ];
        const VISIO: &[&str] = &[
            "vsd", "vss", "vst", "vdw", "vsdx", "vsdm", "vssx", "vssm", "vstx", "vstm",
        ];
        match self {
            App::Word => WORD,
            App::Excel => EXCEL,
            App::PowerPoint => POWERPOINT,
            App::Visio => VISIO,
            App::VbaProject => &["bin"],
            App::EncryptedPackage | App::Other => &[],
        }
    }
}

/// A VBA project found in a document.
#[derive(Debug, Clone, Default)]
pub struct VbaReport {
    /// Where in the document ("" = the document itself).
    pub location: String,
    pub modules: Vec<String>,
    pub keywords: Vec<Match>,
    /// Why the project could not be read (fully), if it could not.
    pub error: Option<String>,
}

/// Excel 4.0 macro sheets found in a document.
#[derive(Debug, Clone, Default)]
pub struct XlmReport {
    pub location: String,
    /// Sheet (or package part) names and their visibility.
    pub sheets: Vec<(String, &'static str)>,
    pub auto_names: Vec<String>,
    pub keywords: Vec<(Class, String)>,
}

/// Everything found in one attachment.
#[derive(Debug, Clone, Default)]
pub struct DocumentReport {
    pub app: App,
    pub vba: Vec<VbaReport>,
    pub xlm: Vec<XlmReport>,
    /// How (and where) the document is encrypted.
    pub encryption: Vec<String>,
    /// Problems that kept part of the document from being checked.
    pub errors: Vec<String>,
}

impl DocumentReport {
    fn error(&mut self, location: &str, message: String) {
        self.errors.push(at(location, &message));
    }

    fn encryption(&mut self, location: &str, how: &str) {
        let entry = at(location, how);
        if !self.encryption.contains(&entry) {
            self.encryption.push(entry);
        }
    }

    /// True when VBA or XLM macros were found (readable or not).
    pub fn has_macros(&self) -> bool {
        !self.vba.is_empty() || !self.xlm.is_empty()
    }

    /// Every keyword found, VBA first then XLM, with the language it came in.
    fn keywords(&self) -> Vec<(&'static str, Class, String)> {
        let mut out: Vec<(&'static str, Class, String)> = Vec::new();
        let mut push = |lang: &'static str, class: Class, word: &str| {
            if !out.iter().any(|(_, c, w)| *c == class && w == word) {
                out.push((lang, class, word.to_string()));
            }
        };
        for v in &self.vba {
            for m in &v.keywords {
                push("VBA", m.class, &m.shown);
            }
        }
        for x in &self.xlm {
            for name in &x.auto_names {
                push("XLM", Class::AutoExec, name);
            }
            for (class, word) in &x.keywords {
                push("XLM", *class, word);
            }
        }
        out
    }

    /// Whether any keyword of `class` was found (what [`Self::keywords`]
    /// lists, without building the list).
    pub fn has_class(&self, class: Class) -> bool {
        self.vba
            .iter()
            .any(|v| v.keywords.iter().any(|m| m.class == class))
            || self.xlm.iter().any(|x| {
                (class == Class::AutoExec && !x.auto_names.is_empty())
                    || x.keywords.iter().any(|(c, _)| *c == class)
            })
    }

    /// mraptor's verdict: auto-exec together with write or execute.
    pub fn is_suspicious(&self) -> bool {
        self.has_class(Class::AutoExec)
            && (self.has_class(Class::Write) || self.has_class(Class::Execute))
    }
}

fn at(location: &str, message: &str) -> String {
    if location.is_empty() {
        message.to_string()
    } else {
        format!("{location}: {message}")
    }
}

/// Limits and running totals for one attachment. Bytes inflated and the
/// deadline are drawn from the message's shared [`formats::Budget`], so 200
/// documents in one mail share one decompression budget, not one each.
pub struct Budget<'a> {
    pub settings: &'a OfficeMacroConfig,
    pub limits: &'a Limits,
    pub shared: &'a formats::Budget,
    pub source_bytes_left: u64,
    nested_left: usize,
}

impl<'a> Budget<'a> {
    pub fn new(
        settings: &'a OfficeMacroConfig,
        limits: &'a Limits,
        shared: &'a formats::Budget,
    ) -> Budget<'a> {
        Budget {
            settings,
            limits,
            shared,
            source_bytes_left: settings.max_vba_source_bytes,
            nested_left: settings.max_nested_documents,
        }
    }

    /// Bytes one decompression may still produce: the message's budget,
    /// this kind of item's own cap, and the ratio to its compressed size.
    pub fn inflate_cap(&self, item_cap: u64, compressed: u64) -> u64 {
        self.shared.cap_for(compressed).min(item_cap)
    }

    /// Count bytes already produced under a cap from [`Budget::inflate_cap`].
    pub fn spent(&self, n: u64) {
        self.shared.charge(n);
    }

    /// True (with a note) once the scan's deadline has passed.
    pub fn out_of_time(&self, location: &str, report: &mut DocumentReport) -> bool {
        if self.shared.expired() {
            report.error(
                location,
                "the scan's time budget ran out (limits.scan_timeout_secs); the rest not checked"
                    .to_string(),
            );
            true
        } else {
            false
        }
    }

    /// Count one nested document; false (with a note) when over the limit.
    fn enter_nested(&mut self, location: &str, depth: usize, report: &mut DocumentReport) -> bool {
        if depth > self.settings.max_nesting_depth {
            report.error(
                location,
                format!(
                    "embedded deeper than {} documents (office_macro.max_nesting_depth); not checked",
                    self.settings.max_nesting_depth
                ),
            );
            return false;
        }
        if self.nested_left == 0 {
            report.error(
                location,
                format!(
                    "more than {} embedded documents (office_macro.max_nested_documents); not checked",
                    self.settings.max_nested_documents
                ),
            );
            return false;
        }
        self.nested_left -= 1;
        true
    }
}

/// Analyse one file's bytes as an Office document. Never panics: a panic in
/// a parser becomes an error in the report.
pub fn analyze_document(
    data: &[u8],
    settings: &OfficeMacroConfig,
    limits: &Limits,
) -> DocumentReport {
    let shared = limits.budget();
    analyze_document_within(data, settings, limits, &shared)
}

/// [`analyze_document`] drawing on a message's shared budget.
pub fn analyze_document_within(
    data: &[u8],
    settings: &OfficeMacroConfig,
    limits: &Limits,
    shared: &formats::Budget,
) -> DocumentReport {
    let mut report = DocumentReport::default();
    let mut budget = Budget::new(settings, limits, shared);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut inner = DocumentReport::default();
        match crate::view::filetype::detect(data) {
            FileType::Ole2 => ole::analyze(data, "", 0, &mut inner, &mut budget),
            FileType::Ooxml => ooxml::analyze(data, "", 0, &mut inner, &mut budget),
            _ if xlm::is_sylk(data) => {
                let text = String::from_utf8_lossy(
                    &data[..data.len().min(limits.max_entry_bytes as usize)],
                );
                if let Some(wb) = xlm::parse_sylk(&text) {
                    inner.xlm.push(XlmReport {
                        location: String::new(),
                        sheets: wb.macro_sheets,
                        auto_names: wb.auto_names,
                        keywords: wb.keywords,
                    });
                }
            }
            // Not Office: nothing to find (the detector never asks).
            _ => {}
        }
        inner
    }));
    match outcome {
        Ok(inner) => report = inner,
        Err(_) => report.error("", "internal error (panic) while parsing".into()),
    }
    report
}

pub struct OfficeMacro {
    config: OfficeMacroConfig,
}

impl OfficeMacro {
    pub fn new(config: &OfficeMacroConfig) -> Self {
        OfficeMacro {
            config: config.clone(),
        }
    }
}

/// Findings of one rule across all documents of a message: one hit per rule,
/// so that two honest macro workbooks in one mail still only tag it.
#[derive(Default)]
struct Evidence {
    by_rule: Vec<(&'static str, Vec<String>)>,
}

impl Evidence {
    fn add(&mut self, rule: &'static str, text: String) {
        match self.by_rule.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, v)) => v.push(text),
            None => self.by_rule.push((rule, vec![text])),
        }
    }

    fn into_hits(self, hits: &mut Vec<Hit>) {
        for (rule, texts) in self.by_rule {
            hits.push(Hit::new(rule, texts.join("; ")));
        }
    }
}

impl Detector for OfficeMacro {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [RuleInfo] {
        RULES
    }

    fn inspect(
        &self,
        message: &MessageView,
        ctx: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        if !self.config.enabled {
            return Ok(());
        }
        let mut evidence = Evidence::default();
        let mut errors = Vec::new();
        for attachment in &message.attachments {
            let office = matches!(attachment.file_type, FileType::Ole2 | FileType::Ooxml);
            if !office && !xlm::is_sylk(&attachment.data) {
                continue;
            }
            if embedded_in_office(message, attachment) {
                // Already analysed with its document (nested documents are
                // followed there, within office_macro's own limits).
                continue;
            }
            let report =
                analyze_document_within(&attachment.data, &self.config, ctx.limits, ctx.budget);
            let path = attachment.path.as_str();
            let mut report = report;
            if message.children(attachment.id).any(|c| c.decrypted) {
                // Decrypted (Excel's default password, or the mail's): its
                // content was scanned as a document of its own, so the
                // encryption hid nothing.
                report.encryption.clear();
            }
            describe(path, &report, &mut evidence);
            if let Some(ext) = attachment.extension() {
                let fits = report.app.extensions().contains(&ext.as_str());
                let judged = !matches!(report.app, App::Other | App::EncryptedPackage);
                if judged && !fits {
                    evidence.add(
                        "renamed",
                        format!(
                            "{path}: {} content ({}) named .{ext}",
                            report.app.describe(),
                            attachment.file_type
                        ),
                    );
                }
            }
            for e in &report.errors {
                errors.push(format!("{path}: {e}"));
            }
        }
        evidence.into_hits(hits);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DetectorError::new(format!(
                "could not fully check: {}",
                errors.join("; ")
            )))
        }
    }
}

/// An object the formats parsers took out of an Office document (an OOXML
/// embedding, an OLE object stream): its macros are the document's, found
/// when the document itself is analysed. A document decrypted out of an
/// encrypted one is new content, and is analysed on its own.
fn embedded_in_office(view: &MessageView, node: &crate::view::Attachment) -> bool {
    matches!(node.origin, crate::view::Origin::Embedded(_))
        && !node.decrypted
        && node
            .parent
            .and_then(|p| view.attachments.get(p))
            .is_some_and(|p| matches!(p.file_type, FileType::Ole2 | FileType::Ooxml))
}

/// Turn one document's report into evidence per rule.
fn describe(path: &str, report: &DocumentReport, evidence: &mut Evidence) {
    if !report.encryption.is_empty() {
        evidence.add(
            "encrypted_document",
            format!("{path}: {}", report.encryption.join(", ")),
        );
    }
    if !report.has_macros() {
        return;
    }
    let vba: Vec<String> = report.vba.iter().map(describe_vba).collect();
    let xlm: Vec<String> = report.xlm.iter().map(describe_xlm).collect();
    let all: Vec<&str> = vba.iter().chain(&xlm).map(String::as_str).collect();
    evidence.add("present", format!("{path}: {}", all.join("; ")));
    if !xlm.is_empty() {
        evidence.add("xlm", format!("{path}: {}", xlm.join("; ")));
    }
    let keywords = report.keywords();
    let autoexec: Vec<_> = keywords
        .iter()
        .filter(|(_, c, _)| *c == Class::AutoExec)
        .collect();
    if !autoexec.is_empty() {
        evidence.add("autoexec", format!("{path}: {}", render(&autoexec)));
    }
    if report.is_suspicious() {
        // A first, then W and X in the order found.
        let mut all = autoexec.clone();
        all.extend(keywords.iter().filter(|(_, c, _)| *c != Class::AutoExec));
        evidence.add("suspicious", format!("{path}: {}", render(&all)));
    }
}

/// `VBA in word/embeddings/x.bin modules ThisDocument, Module1`
fn describe_vba(v: &VbaReport) -> String {
    let mut text = String::from("VBA");
    // Name the place only when it is not the usual one.
    if !v.location.is_empty() && !v.location.to_ascii_lowercase().ends_with("vbaproject.bin") {
        text.push_str(&format!(" in {}", v.location));
    }
    if !v.modules.is_empty() {
        text.push_str(&format!(" modules {}", v.modules.join(", ")));
    }
    if let Some(e) = &v.error {
        text.push_str(&format!(" (unreadable: {e})"));
    }
    text
}

/// `Excel 4.0 macro sheet "Macro1" (very hidden)`
fn describe_xlm(x: &XlmReport) -> String {
    let sheets: Vec<String> = x
        .sheets
        .iter()
        .map(|(name, state)| match *state {
            "in package" | "visible" => format!("\"{name}\""),
            _ => format!("\"{name}\" ({state})"),
        })
        .collect();
    let mut text = format!("Excel 4.0 macro sheet {}", sheets.join(", "));
    if !x.location.is_empty() {
        text.push_str(&format!(" in {}", x.location));
    }
    text
}

/// `VBA Document_Open (A), Shell (X), XLM EXEC (X)`: the language is named
/// when it changes.
fn render(keywords: &[&(&'static str, Class, String)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut last_lang = "";
    for (lang, class, word) in keywords {
        let prefix = if *lang != last_lang {
            last_lang = lang;
            format!("{lang} ")
        } else {
            String::new()
        };
        parts.push(format!("{prefix}{word} ({})", class.letter()));
    }
    parts.join(", ")
}
