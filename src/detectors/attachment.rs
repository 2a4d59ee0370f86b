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

/// Containers whose files are judged one by one once listed: a disk image
/// or OneNote section is dangerous itself only when nothing inside it could
/// be read (a VHD, a UDF-only image, a damaged file).
const CONTAINER_EXTENSIONS: &[&str] = &["iso", "img", "vhd", "vhdx", "one"];

/// Why a node is dangerous: (what it is, how we know), or None.
fn dangerous(view: &MessageView, node: &view::Attachment) -> Option<(&'static str, &'static str)> {
    let ext = node.extension();
    let listed = || view.children(node.id).next().is_some();
    match node.file_type {
        // UEFI boot loaders on an installer image are PE files that no
        // double-click runs.
        FileType::Pe if ext.as_deref() == Some("efi") => return None,
        // Inside a mounted disk image Windows runs what the name says: a
        // Linux kernel (an "MZ" bzImage) named vmlinuz runs nothing.
        FileType::Pe if in_disk_image(view, node) && !runs_by_name(ext.as_deref()) => return None,
        FileType::Pe => return Some(("Windows executable", "by content")),
        FileType::Lnk => return Some(("Windows shortcut", "by content")),
        FileType::Iso if !listed() => {
            return Some(("disk image whose files could not be listed", "by content"))
        }
        FileType::Iso | FileType::OneNote => return None,
        FileType::Text | FileType::Unknown => {
            if let Some(language) = crate::formats::script::sniff(&node.data) {
                return Some((language, "by content"));
            }
            if crate::formats::disk_image::sniff_vhd(&node.data) {
                return Some(("virtual disk image (not opened)", "by content"));
            }
        }
        _ => {}
    }
    let ext = ext?;
    if CONTAINER_EXTENSIONS.contains(&ext.as_str()) && listed() {
        return None;
    }
    DANGEROUS_EXTENSIONS
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, what)| (*what, "by name"))
}

fn in_disk_image(view: &MessageView, node: &view::Attachment) -> bool {
    node.parent
        .and_then(|p| view.attachments.get(p))
        .is_some_and(|p| p.file_type == FileType::Iso || crate::formats::disk_image::sniff(&p.data))
}

/// Names Windows runs (or loads, beside a shortcut) as programs.
fn runs_by_name(ext: Option<&str>) -> bool {
    matches!(
        ext,
        Some("exe" | "scr" | "com" | "pif" | "cpl" | "msi" | "dll" | "sys" | "ocx" | "xll")
    )
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
                let (what, how) = dangerous(message, node)?;
                let place = match (node.origin, node.decrypted) {
                    (Origin::ArchiveEntry, true) => ", inside an encrypted archive".to_string(),
                    (Origin::ArchiveEntry, false) => ", inside an archive".to_string(),
                    (Origin::MimePart, _) => String::new(),
                    (Origin::Embedded(how), _) => format!(", {how}"),
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
