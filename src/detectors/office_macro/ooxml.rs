//! OOXML packages (docm, xlsm, xlsb, pptm, dotm, xltm, xlam, ...), opened
//! with the `zip` crate: vbaProject.bin wherever it sits, OLE objects and
//! packages embedded in the package, Excel 4.0 macro sheets (xl/macrosheets,
//! XML or binary), Auto_Open defined names, and content types declaring them.

use std::io::{Cursor, Read};
use std::sync::LazyLock;

use regex::Regex;

use super::keywords::Class;
use super::{ole, xlm, App, Budget, DocumentReport, VbaReport, XlmReport};
use crate::formats::Exhausted;

/// A part of the package not read; the text follows the part's name in
/// the document's error (evidence).
#[derive(Debug, thiserror::Error)]
enum PartError {
    /// The zip entry could not be opened.
    #[error(transparent)]
    Zip(#[from] zip::result::ZipError),
    /// It would inflate past the allowed compression ratio.
    #[error("{size} bytes from {compressed} compressed: not inflated, {why} (limits.max_inflation_ratio)")]
    Ratio {
        size: u64,
        compressed: u64,
        #[source]
        why: Exhausted,
    },
    /// It declares more than the limits let us inflate.
    #[error("{size} bytes inflated, over the limit of {limit} (limits.max_entry_bytes / max_inflated_bytes / max_inflation_ratio)")]
    OverLimit { size: u64, limit: u64 },
    /// Inflating failed (damaged data).
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// It inflated past what its header declares.
    #[error("inflates past {limit} bytes, more than its header declares; not checked")]
    InflatesPast { limit: u64 },
}

/// XLM functions that run code or write files, as they appear in macro-sheet
/// formula text (`<f>EXEC("calc")</f>`).
const XLM_FORMULA_KEYWORDS: &[(Class, &str)] = &[
    (Class::Execute, "EXEC"),
    (Class::Execute, "CALL"),
    (Class::Execute, "REGISTER"),
    (Class::Execute, "REGISTER.ID"),
    (Class::Write, "FOPEN"),
    (Class::Write, "FWRITE"),
    (Class::Write, "FWRITELN"),
];

static FORMULA_CALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(EXEC|CALL|REGISTER(?:\.ID)?|FOPEN|FWRITE(?:LN)?)\s*\(").expect("valid")
});
static DEFINED_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"<definedName\b[^>]*\bname="([^"]*)""#).expect("valid"));

pub fn analyze(
    data: &[u8],
    location: &str,
    depth: usize,
    report: &mut DocumentReport,
    budget: &mut Budget<'_>,
) {
    let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(a) => a,
        Err(e) => {
            report.error(location, format!("not a readable OOXML package: {e}"));
            return;
        }
    };
    let names: Vec<String> = (0..archive.len())
        .map(|i| match archive.name_for_index(i) {
            Some(Ok(name)) => name.into_owned(),
            _ => String::new(),
        })
        .collect();
    if depth == 0 {
        report.app = app_of(&names);
    }
    let mut declared_vba = false;
    let mut macro_sheets: Vec<String> = Vec::new();
    let mut auto_names: Vec<String> = Vec::new();
    let mut xlm_keywords: Vec<(Class, String)> = Vec::new();
    let mut vba_found = false;

    let max_entries = budget.limits.max_archive_entries;
    if names.len() > max_entries {
        report.error(
            location,
            format!(
                "more than {max_entries} parts (limits.max_archive_entries); the rest not checked"
            ),
        );
    }
    for (index, name) in names.iter().enumerate().take(max_entries) {
        if budget.out_of_time(location, report) {
            break;
        }
        let lower = name.to_ascii_lowercase();
        let is_vba = lower.ends_with("vbaproject.bin");
        let is_embedded = lower.contains("/embeddings/") || lower.contains("/activex/");
        let is_macro_sheet = lower.starts_with("xl/macrosheets/") && !lower.contains("/_rels/");
        let is_workbook = lower == "xl/workbook.xml" || lower == "xl/workbook.bin";
        let is_types = lower == "[content_types].xml";
        if !(is_vba || is_embedded || is_macro_sheet || is_workbook || is_types) {
            continue;
        }
        let part = match read_part(&mut archive, index, budget) {
            Ok(p) => p,
            Err(e) => {
                report.error(location, format!("{name}: {e}"));
                continue;
            }
        };
        let inner = join(location, name);
        if is_types {
            let text = String::from_utf8_lossy(&part);
            declared_vba = text.contains("vnd.ms-office.vbaProject");
        } else if is_macro_sheet {
            macro_sheets.push(name.clone());
            if lower.ends_with(".bin") {
                binary_macro_sheet(&part, &mut xlm_keywords);
            } else {
                let text = String::from_utf8_lossy(&part);
                for m in FORMULA_CALL.captures_iter(&text) {
                    let word = m[1].to_ascii_uppercase();
                    if let Some((class, w)) = XLM_FORMULA_KEYWORDS.iter().find(|(_, w)| *w == word)
                    {
                        xlm::push_unique(&mut xlm_keywords, *class, w);
                    }
                }
                xlm::note_strings(&text, &mut xlm_keywords);
            }
        } else if is_workbook {
            if lower.ends_with(".xml") {
                let text = String::from_utf8_lossy(&part);
                for m in DEFINED_NAME.captures_iter(&text) {
                    if xlm::is_auto_name(&m[1]) && !auto_names.contains(&m[1].to_string()) {
                        auto_names.push(m[1].to_string());
                    }
                }
            } else {
                // BIFF12 names are UTF-16 strings; look for them as text.
                let text = utf16_text(&part).to_ascii_lowercase();
                for name in ["auto_open", "auto_close", "auto_activate"] {
                    if text.contains(name) {
                        auto_names.push(name.to_string());
                    }
                }
            }
        } else if ole::is_ole(&part) {
            if is_vba {
                vba_found = true;
            }
            if budget.enter_nested(&inner, depth + 1, report) {
                ole::analyze(&part, &inner, depth + 1, report, budget);
            }
        } else if is_embedded
            && crate::view::filetype::detect(&part) == crate::view::FileType::Ooxml
        {
            if budget.enter_nested(&inner, depth + 1, report) {
                analyze(&part, &inner, depth + 1, report, budget);
            }
        } else if is_vba {
            vba_found = true;
            report.vba.push(VbaReport {
                location: inner,
                error: Some("vbaProject.bin is not an OLE2 file".into()),
                ..VbaReport::default()
            });
        }
    }
    if declared_vba && !vba_found {
        report.vba.push(VbaReport {
            location: location.to_string(),
            error: Some("content types declare a VBA project, but the package holds none".into()),
            ..VbaReport::default()
        });
    }
    if !macro_sheets.is_empty() {
        report.xlm.push(XlmReport {
            location: location.to_string(),
            sheets: macro_sheets
                .into_iter()
                .map(|s| (s, "in package"))
                .collect(),
            auto_names,
            keywords: xlm_keywords,
        });
    }
}

/// Which application the package is for, by its main folder.
fn app_of(names: &[String]) -> App {
    for (prefix, app) in [
        ("word/", App::Word),
        ("xl/", App::Excel),
        ("ppt/", App::PowerPoint),
        ("visio/", App::Visio),
    ] {
        if names.iter().any(|n| n.starts_with(prefix)) {
            return app;
        }
    }
    App::Other
}

/// Read one part within the per-entry and per-document byte budgets.
fn read_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    index: usize,
    budget: &mut Budget<'_>,
) -> Result<Vec<u8>, PartError> {
    let entry = archive.by_index(index)?;
    if let Err(why) = budget
        .shared
        .check_ratio(entry.compressed_size(), entry.size())
    {
        return Err(PartError::Ratio {
            size: entry.size(),
            compressed: entry.compressed_size(),
            why,
        });
    }
    let limit = budget.inflate_cap(budget.limits.max_entry_bytes, entry.compressed_size());
    if entry.size() > limit {
        return Err(PartError::OverLimit {
            size: entry.size(),
            limit,
        });
    }
    let mut out = Vec::new();
    let read = entry.take(limit + 1).read_to_end(&mut out);
    budget.spent(out.len() as u64);
    read?;
    if out.len() as u64 > limit {
        return Err(PartError::InflatesPast { limit });
    }
    Ok(out)
}

/// Binary (xlsb) macro sheets: formulas are BIFF12 tokens. Look for the
/// FuncVar/Func tokens of EXEC, CALL and REGISTER and for telling strings.
fn binary_macro_sheet(part: &[u8], keywords: &mut Vec<(Class, String)>) {
    for w in part.windows(4) {
        let index = match w[0] {
            0x22 | 0x42 | 0x62 if w[1] < 0x7F => u16::from_le_bytes([w[2], w[3]]),
            _ => continue,
        };
        let word = match index {
            110 => "EXEC",
            149 => "REGISTER",
            150 => "CALL",
            _ => continue,
        };
        xlm::push_unique(keywords, Class::Execute, word);
    }
    xlm::note_strings(&utf16_text(part), keywords);
    xlm::note_strings(&String::from_utf8_lossy(part), keywords);
}

fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn join(location: &str, inner: &str) -> String {
    if location.is_empty() {
        inner.to_string()
    } else {
        format!("{location}/{inner}")
    }
}
