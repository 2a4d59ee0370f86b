//! Excel 4.0 (XLM) macros in BIFF5/BIFF8 workbooks ([MS-XLS]): macro sheets
//! declared by BOUNDSHEET records, Auto_Open-style defined names, and the
//! formulas of macro sheets (parsed tokens, whose function numbers tell EXEC
//! and CALL apart from SUM). Also the FILEPASS record of encrypted workbooks.

use super::keywords::Class;

/// What the workbook stream says about macros and encryption.
#[derive(Debug, Clone, Default)]
pub struct Workbook {
    /// Macro sheets: name and visibility ("visible", "hidden", "very hidden").
    pub macro_sheets: Vec<(String, &'static str)>,
    /// Defined names that run on open (Auto_Open, Auto_Close, ...).
    pub auto_names: Vec<String>,
    /// Keywords found in macro-sheet formulas, with their class.
    pub keywords: Vec<(Class, String)>,
    /// The workbook is encrypted (FILEPASS): "RC4" or "XOR".
    pub encryption: Option<&'static str>,
}

const BOF: u16 = 0x0809;
const EOF: u16 = 0x000A;
const FILEPASS: u16 = 0x002F;
const BOUNDSHEET: u16 = 0x0085;
const NAME: u16 = 0x0018;
const FORMULA: u16 = 0x0006;
const STRING: u16 = 0x0207;
const LABEL: u16 = 0x0204;
const SUBSTREAM_MACRO_SHEET: u16 = 0x0040;

/// Built-in name codes ([MS-XLS] 2.5.114 Lbl, fBuiltin): 1 = Auto_Open,
/// 2 = Auto_Close, 10 = Auto_Activate, 11 = Auto_Deactivate.
fn builtin_name(code: u8) -> Option<&'static str> {
    match code {
        1 => Some("Auto_Open"),
        2 => Some("Auto_Close"),
        10 => Some("Auto_Activate"),
        11 => Some("Auto_Deactivate"),
        _ => None,
    }
}

/// XLM functions by their Ftab number ([MS-XLS] 2.5.198.17) that run code.
fn function_keyword(index: u16) -> Option<(Class, &'static str)> {
    match index {
        110 => Some((Class::Execute, "EXEC")),
        149 => Some((Class::Execute, "REGISTER")),
        150 => Some((Class::Execute, "CALL")),
        267 => Some((Class::Execute, "REGISTER.ID")),
        _ => None,
    }
}

/// Words in formula strings and cell text of macro sheets that name what a
/// macro is about to call (REGISTER takes the DLL and function as strings).
const STRING_KEYWORDS: &[(Class, &str)] = &[
    (Class::Write, "URLDownloadToFile"),
    (Class::Execute, "ShellExecute"),
    (Class::Execute, "WinExec"),
    (Class::Execute, "CreateProcess"),
    (Class::Execute, "powershell"),
    (Class::Execute, "mshta"),
    (Class::Execute, "rundll32"),
    (Class::Execute, "regsvr32"),
    (Class::Execute, "cmd /c"),
    (Class::Write, "VirtualAlloc"),
    (Class::Write, "WriteProcessMemory"),
];

pub(crate) fn note_strings(text: &str, keywords: &mut Vec<(Class, String)>) {
    let lower = text.to_ascii_lowercase();
    for (class, word) in STRING_KEYWORDS {
        if lower.contains(&word.to_ascii_lowercase()) {
            push_unique(keywords, *class, word);
        }
    }
}

pub(crate) fn push_unique(keywords: &mut Vec<(Class, String)>, class: Class, word: &str) {
    if !keywords.iter().any(|(_, w)| w.eq_ignore_ascii_case(word)) {
        keywords.push((class, word.to_string()));
    }
}

/// True when a defined name runs by itself: Auto_Open, and the case and
/// suffix games Excel accepts ("auto_open2", "Auto_Open_xyz").
pub(crate) fn is_auto_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let lower = lower.strip_prefix("_xlnm.").unwrap_or(&lower);
    [
        "auto_open",
        "auto_close",
        "auto_activate",
        "auto_deactivate",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

/// Walk the records of a `Workbook` (BIFF8) or `Book` (BIFF5) stream.
pub fn parse_workbook(stream: &[u8]) -> Workbook {
    let mut wb = Workbook::default();
    let mut biff8 = true;
    let mut in_macro_sheet = false;
    let mut pos = 0usize;
    while pos + 4 <= stream.len() {
        let kind = u16::from_le_bytes([stream[pos], stream[pos + 1]]);
        let len = usize::from(u16::from_le_bytes([stream[pos + 2], stream[pos + 3]]));
        let start = pos + 4;
        let end = (start + len).min(stream.len());
        let data = &stream[start..end];
        pos = start + len;
        match kind {
            BOF if data.len() >= 4 => {
                let version = u16::from_le_bytes([data[0], data[1]]);
                let substream = u16::from_le_bytes([data[2], data[3]]);
                // BIFF8 says 0x0600; BIFF5/7 say 0x0500.
                biff8 = version >= 0x0600;
                in_macro_sheet = substream == SUBSTREAM_MACRO_SHEET;
            }
            EOF => in_macro_sheet = false,
            FILEPASS => {
                // [MS-XLS] 2.4.117: wEncryptionType 0 = XOR, 1 = RC4.
                let xor = data.len() >= 2 && data[0] == 0 && data[1] == 0;
                wb.encryption = Some(if xor { "XOR" } else { "RC4" });
                // Everything after FILEPASS is encrypted: sheet types and
                // names would be noise.
                return wb;
            }
            BOUNDSHEET if data.len() >= 7 => {
                // lbPlyPos u32, hsState u8, dt u8, name.
                let state = match data[4] & 0x03 {
                    0 => "visible",
                    1 => "hidden",
                    _ => "very hidden",
                };
                if data[5] == 0x01 {
                    let name = short_string(&data[6..], biff8);
                    wb.macro_sheets.push((name, state));
                }
            }
            NAME => {
                if let Some(name) = defined_name(data, biff8) {
                    if is_auto_name(&name) && !wb.auto_names.contains(&name) {
                        wb.auto_names.push(name);
                    }
                }
            }
            FORMULA if in_macro_sheet && biff8 && data.len() >= 22 => {
                let cce = usize::from(u16::from_le_bytes([data[20], data[21]]));
                let rgce = &data[22..(22 + cce).min(data.len())];
                scan_formula(rgce, &mut wb.keywords);
            }
            STRING | LABEL if in_macro_sheet => {
                note_strings(&String::from_utf8_lossy(data), &mut wb.keywords);
                let units: Vec<u16> = data
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                note_strings(&String::from_utf16_lossy(&units), &mut wb.keywords);
            }
            _ => {}
        }
    }
    wb
}

/// True for SYLK text (`ID;P...`), the spreadsheet format Excel also opens
/// with macros in it.
pub fn is_sylk(data: &[u8]) -> bool {
    data.starts_with(b"ID;P")
}

/// Excel 4.0 macros in SYLK: `NN;N<name>;E<formula>` defines names (Auto_Open
/// runs on open) and `C;...;E<formula>` cells hold formulas. A SYLK file with
/// an auto-run name or macro-only functions is an XLM macro sheet.
pub fn parse_sylk(text: &str) -> Option<Workbook> {
    let mut wb = Workbook::default();
    let mut macro_functions = false;
    for line in text.lines() {
        let mut fields = line.split(';');
        let kind = fields.next().unwrap_or("");
        for field in fields {
            if kind == "NN" {
                if let Some(name) = field.strip_prefix('N') {
                    if is_auto_name(name) && !wb.auto_names.iter().any(|n| n == name) {
                        wb.auto_names.push(name.to_string());
                    }
                }
            }
            if let Some(formula) = field.strip_prefix('E') {
                let upper = formula.to_ascii_uppercase();
                for (class, word) in [
                    (Class::Execute, "EXEC("),
                    (Class::Execute, "CALL("),
                    (Class::Execute, "REGISTER("),
                    (Class::Write, "FOPEN("),
                    (Class::Write, "FWRITE("),
                ] {
                    if upper.contains(word) {
                        push_unique(&mut wb.keywords, class, word.trim_end_matches('('));
                    }
                }
                // Functions only macro sheets can use.
                if [
                    "HALT(",
                    "ALERT(",
                    "RETURN(",
                    "GOTO(",
                    "EXEC(",
                    "CALL(",
                    "REGISTER(",
                ]
                .iter()
                .any(|f| upper.contains(f))
                {
                    macro_functions = true;
                }
                note_strings(formula, &mut wb.keywords);
            }
        }
    }
    (macro_functions || !wb.auto_names.is_empty()).then(|| {
        wb.macro_sheets.push(("SYLK".to_string(), "visible"));
        wb
    })
}

/// A BIFF8 ShortXLUnicodeString (cch, flags, chars) or a BIFF5 byte string.
fn short_string(data: &[u8], biff8: bool) -> String {
    let Some((&cch, rest)) = data.split_first() else {
        return String::new();
    };
    let cch = usize::from(cch);
    if !biff8 {
        return super::vba::latin1(&rest[..cch.min(rest.len())]);
    }
    let Some((&flags, chars)) = rest.split_first() else {
        return String::new();
    };
    xl_chars(chars, cch, flags & 1 != 0)
}

fn xl_chars(chars: &[u8], cch: usize, wide: bool) -> String {
    if wide {
        let units: Vec<u16> = chars
            .chunks_exact(2)
            .take(cch)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        super::vba::latin1(&chars[..cch.min(chars.len())])
    }
}

/// The name of a NAME (Lbl) record; built-in names by their code.
fn defined_name(data: &[u8], biff8: bool) -> Option<String> {
    if data.len() < 14 {
        return None;
    }
    let flags = u16::from_le_bytes([data[0], data[1]]);
    let builtin = flags & 0x0020 != 0;
    let cch = usize::from(data[3]);
    // BIFF8: 14 fixed bytes, then a flags byte and the characters.
    // BIFF5: 14 fixed bytes, then the characters as bytes.
    let name = if biff8 {
        let wide = data.get(14).is_some_and(|f| f & 1 != 0);
        xl_chars(data.get(15..)?, cch, wide)
    } else {
        super::vba::latin1(&data[14..(14 + cch).min(data.len())])
    };
    if builtin {
        let code = name.chars().next().map(|c| c as u32).unwrap_or(0);
        return u8::try_from(code)
            .ok()
            .and_then(builtin_name)
            .map(str::to_string);
    }
    Some(name)
}

/// Walk BIFF8 formula tokens (Ptg, [MS-XLS] 2.5.198) looking for calls of
/// code-running functions and suspicious string constants. An unknown token
/// ends the walk: we cannot know its size, and guessing would misread.
fn scan_formula(rgce: &[u8], keywords: &mut Vec<(Class, String)>) {
    let mut pos = 0usize;
    while pos < rgce.len() {
        let ptg = rgce[pos];
        pos += 1;
        // Reference-class tokens come in three variants (0x2_, 0x4_, 0x6_).
        let base = if ptg >= 0x20 {
            (ptg & 0x1F) | 0x20
        } else {
            ptg
        };
        let size = match base {
            0x01 | 0x02 => 4, // Exp, Tbl
            0x03..=0x16 => 0, // operators, Paren, MissArg
            0x17 => {
                // Str: cch, flags, chars.
                let (Some(&cch), Some(&flags)) = (rgce.get(pos), rgce.get(pos + 1)) else {
                    return;
                };
                let wide = flags & 1 != 0;
                let n = usize::from(cch) * if wide { 2 } else { 1 };
                let chars = rgce.get(pos + 2..pos + 2 + n).unwrap_or(&[]);
                note_strings(&xl_chars(chars, usize::from(cch), wide), keywords);
                2 + n
            }
            0x19 => {
                // Attr: type, u16; Choose also carries a jump table.
                let (Some(&kind), Some(lo), Some(hi)) =
                    (rgce.get(pos), rgce.get(pos + 1), rgce.get(pos + 2))
                else {
                    return;
                };
                if kind & 0x04 != 0 {
                    3 + (usize::from(u16::from_le_bytes([*lo, *hi])) + 1) * 2
                } else {
                    3
                }
            }
            0x1C | 0x1D => 1, // Err, Bool
            0x1E => 2,        // Int
            0x1F => 8,        // Num
            0x20 => 7,        // Array
            0x21 | 0x22 => {
                // Func (u16 index) / FuncVar (argc, u16 index).
                let at = if base == 0x21 { pos } else { pos + 1 };
                let (Some(&lo), Some(&hi)) = (rgce.get(at), rgce.get(at + 1)) else {
                    return;
                };
                let index = u16::from_le_bytes([lo, hi]);
                // Bit 15 marks a command-equivalent, numbered elsewhere.
                if index & 0x8000 == 0 {
                    if let Some((class, word)) = function_keyword(index) {
                        push_unique(keywords, class, word);
                    }
                }
                if base == 0x21 {
                    2
                } else {
                    3
                }
            }
            0x23 => 4,               // Name
            0x24 | 0x2A | 0x2C => 4, // Ref, RefErr, RefN
            0x25 | 0x2B | 0x2D => 8, // Area, AreaErr, AreaN
            0x26..=0x28 => 6,        // MemArea, MemErr, MemNoMem
            0x29 => 2,               // MemFunc
            0x39 | 0x3A | 0x3C => 6, // NameX, Ref3d, RefErr3d
            0x3B | 0x3D => 10,       // Area3d, AreaErr3d
            _ => return,
        };
        pos = pos.saturating_add(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_in_a_formula_is_execute() {
        // =EXEC("calc") : Str "calc", FuncVar argc 1 index 110.
        let mut rgce = vec![0x17, 4, 0];
        rgce.extend_from_slice(b"calc");
        rgce.extend_from_slice(&[0x42, 1, 110, 0]);
        let mut kw = Vec::new();
        scan_formula(&rgce, &mut kw);
        assert_eq!(kw, [(Class::Execute, "EXEC".to_string())]);
    }

    #[test]
    fn register_with_urldownload_string() {
        let mut rgce = vec![0x17, 17, 0];
        rgce.extend_from_slice(b"URLDownloadToFile");
        rgce.extend_from_slice(&[0x42, 1, 149, 0]);
        let mut kw = Vec::new();
        scan_formula(&rgce, &mut kw);
        assert_eq!(
            kw,
            [
                (Class::Write, "URLDownloadToFile".to_string()),
                (Class::Execute, "REGISTER".to_string())
            ]
        );
    }

    #[test]
    fn truncated_tokens_stop_quietly() {
        let mut kw = Vec::new();
        scan_formula(&[0x17, 200, 1], &mut kw);
        scan_formula(&[0x19, 0x04, 0xFF, 0xFF], &mut kw);
        scan_formula(&[0x42, 1], &mut kw);
        assert!(kw.is_empty());
        assert!(parse_workbook(&[0x85, 0x00, 0xFF, 0xFF, 1])
            .macro_sheets
            .is_empty());
    }

    #[test]
    fn auto_names() {
        assert!(is_auto_name("Auto_Open"));
        assert!(is_auto_name("_xlnm.Auto_Open"));
        assert!(is_auto_name("auTo_oPen21"));
        assert!(!is_auto_name("AutoFilter"));
    }
}
