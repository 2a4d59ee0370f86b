//! `attachment`: files a mail should not carry. `dangerous_type` flags
//! executables, scripts, shortcuts and disk images, inside any archive (also
//! ones opened with a password from the mail) or attached directly: by
//! content where the format has a magic (PE, LNK, ISO 9660, OneNote), by
//! name for scripts and images that have none.

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::view::{self, FileType, MessageView, Origin};

pub const NAME: &str = "attachment";

pub const RULES: &[RuleInfo] = &[RuleInfo {
    name: "dangerous_type",
    description: "An executable, script, shortcut or disk image (exe, scr, js, vbs, wsf, hta, lnk, iso, img, one, ...) attached or inside an archive; told by content where a magic exists, by name for scripts",
    default_score: 6.0,
}];

/// Hits reported per message at most; the evidence says how many more.
const MAX_HITS: usize = 5;

/// Names that run (or mount and run) when a Windows user double-clicks them.
const DANGEROUS_EXTENSIONS: &[(&str, &str)] = &[
    ("exe", "Windows executable"),
    ("scr", "screen saver (executable)"),
    ("com", "DOS executable"),
    ("pif", "program information file (executable)"),
    ("cpl", "control panel item (executable)"),
    ("msi", "Windows installer"),
    ("dll", "Windows library"),
    ("bat", "batch script"),
    ("cmd", "batch script"),
    ("js", "JScript"),
    ("jse", "encoded JScript"),
    ("vbs", "VBScript"),
    ("vbe", "encoded VBScript"),
    ("wsf", "Windows Script File"),
    ("wsh", "Windows Script Host settings"),
    ("hta", "HTML application"),
    ("ps1", "PowerShell script"),
    ("lnk", "Windows shortcut"),
    ("url", "Internet shortcut"),
    ("iso", "disk image"),
    ("img", "disk image"),
    ("vhd", "virtual disk image"),
    ("vhdx", "virtual disk image"),
    ("one", "OneNote section"),
];

pub struct Attachment;

/// Why a node is dangerous: (what it is, how we know), or None.
fn dangerous(node: &view::Attachment) -> Option<(&'static str, &'static str)> {
    let by_content = match node.file_type {
        FileType::Pe => Some("Windows executable"),
        FileType::Lnk => Some("Windows shortcut"),
        FileType::Iso => Some("disk image"),
        FileType::OneNote => Some("OneNote section"),
        _ => None,
    };
    if let Some(what) = by_content {
        return Some((what, "by content"));
    }
    let ext = node.extension()?;
    DANGEROUS_EXTENSIONS
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, what)| (*what, "by name"))
}

impl Detector for Attachment {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self) -> &'static [RuleInfo] {
        RULES
    }

    fn inspect(
        &self,
        message: &MessageView,
        _ctx: &ScanContext<'_>,
        hits: &mut Vec<Hit>,
    ) -> Result<(), DetectorError> {
        let found: Vec<String> = message
            .attachments
            .iter()
            .filter_map(|node| {
                let (what, how) = dangerous(node)?;
                let place = match (node.origin, node.decrypted) {
                    (Origin::ArchiveEntry, true) => ", inside an encrypted archive",
                    (Origin::ArchiveEntry, false) => ", inside an archive",
                    (Origin::MimePart, _) => "",
                };
                Some(format!("{}: {what} ({how}{place})", node.path))
            })
            .collect();
        for evidence in found.iter().take(MAX_HITS) {
            hits.push(Hit::new("dangerous_type", evidence.clone()));
        }
        if found.len() > MAX_HITS {
            if let Some(last) = hits.last_mut() {
                last.evidence
                    .push_str(&format!("; and {} more", found.len() - MAX_HITS));
            }
        }
        Ok(())
    }
}
