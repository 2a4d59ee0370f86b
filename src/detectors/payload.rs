//! `payload`: what came after macros. When Office blocked internet macros
//! (2022), Emotet, Qakbot and IcedID moved to RTF exploits, OLE packages,
//! remote templates, shortcuts, OneNote and disk images, HTML smuggling,
//! documents encrypted with Excel's default password, and files padded past
//! scanners' size limits. The parsers of [`crate::formats`] read these by
//! content wherever they sit (the view opens them into the attachment
//! tree); this detector turns what they observed into findings. Files that
//! run on a double-click, found inside any of them, are
//! `attachment.dangerous_type`'s.

use crate::detector::{Detector, DetectorError, Hit, RuleInfo, ScanContext};
use crate::detectors::links;
use crate::formats::IndicatorKind;
use crate::view::{Attachment, MessageView};

pub const NAME: &str = "payload";

pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "equation_editor",
        description: "An Equation Editor object (Equation.3, CLSID 0002CE02-...) in an RTF or Office file: the CVE-2017-11882 / CVE-2018-0802 exploit documents; no honest document needs it since 2018",
        default_score: 10.0,
    },
    RuleInfo {
        name: "equation_object",
        description: "An Equation Editor object without the shape of an exploit (in an Office file, its font name in bounds): old honest documents have them; the component was removed from Office in 2018",
        default_score: 3.0,
    },
    RuleInfo {
        name: "exploit_object",
        description: "An object known from exploit documents: a linked OLE object (OLE2Link) that updates itself from outside when the document opens (CVE-2017-0199), or a Shockwave Flash ActiveX control (CVE-2018-4878 and kin)",
        default_score: 10.0,
    },
    RuleInfo {
        name: "ole_package",
        description: "An OLE Package object whose packaged file is not a plain PDF or text: a file inside a document that runs or opens when the reader double-clicks its icon; the packaged file is scanned too (a program or script there is attachment.dangerous_type)",
        default_score: 5.0,
    },
    RuleInfo {
        name: "auto_update",
        description: "An embedded or linked object set to update itself when the document opens (RTF \\objupdate, UpdateMode=\"Always\"): it runs without a click",
        default_score: 4.0,
    },
    RuleInfo {
        name: "activex",
        description: "An ActiveX control in a document",
        default_score: 2.0,
    },
    RuleInfo {
        name: "remote_template",
        description: "A document that loads a template, object, frame or sub-document from outside (TargetMode=External) at an address off the sender's own domain: template injection fetches the macro or exploit when the document opens",
        default_score: 10.0,
    },
    RuleInfo {
        name: "shortcut_command",
        description: "A Windows shortcut (.lnk) that starts a command interpreter or downloader (cmd, powershell, mshta, wscript, rundll32, ...) with arguments",
        default_score: 10.0,
    },
    RuleInfo {
        name: "html_smuggling",
        description: "An HTML, SVG or HTA file whose script builds a file in the browser (atob, Blob, msSaveOrOpenBlob, createObjectURL, <a download>, data: URLs): the payload never crosses the gateway as an attachment",
        default_score: 10.0,
    },
    RuleInfo {
        name: "script_execution",
        description: "HTML or HTA script that runs programs through ActiveX / Windows Script Host (WScript.Shell, Shell.Application, .Run): an HTML application (mshta), whatever its name",
        default_score: 10.0,
    },
    RuleInfo {
        name: "pdf_launch",
        description: "A PDF action that starts a program when the document opens or a link is clicked (/Launch)",
        default_score: 10.0,
    },
    RuleInfo {
        name: "pdf_auto_script",
        description: "A PDF that runs JavaScript when it opens (/OpenAction or /AA)",
        default_score: 5.0,
    },
    RuleInfo {
        name: "pdf_lure_link",
        description: "A PDF whose link points at a bare IP address or at the download of a macro document, archive, disk image or program: the lure of malspam PDFs, which carry no exploit",
        default_score: 6.0,
    },
    RuleInfo {
        name: "padded",
        description: "A document or executable declared hundreds of MB that compresses to almost nothing: padded so that scanners with size limits skip it (Emotet 2023)",
        default_score: 10.0,
    },
    RuleInfo {
        name: "default_password",
        description: "An Office document encrypted with Excel's built-in default password (VelvetSweatshop): it opens without a prompt and hides its content from scanners; it was decrypted and scanned",
        default_score: 4.0,
    },
    RuleInfo {
        name: "malformed",
        description: "Structure only an evasion produces: an RTF header broken on purpose, an object hidden in junk, a shortcut whose arguments are padded out of sight",
        default_score: 3.0,
    },
];

/// Findings per rule at most; the last one says how many more.
const MAX_PER_RULE: usize = 3;

/// Rules that note something honest documents also have: one finding per
/// message, so that ten ActiveX controls do not add up to a verdict.
const WEAK_RULES: &[&str] = &["equation_object", "activex", "auto_update", "malformed"];

/// Relationship types that fetch content when the document opens.
const FETCHING_RELATIONSHIPS: &[&str] = &[
    "attachedtemplate",
    "oleobject",
    "frame",
    "subdocument",
    "package",
];

/// Programs a shortcut should not start with arguments from a mail.
const INTERPRETERS: &[&str] = &[
    "cmd",
    "powershell",
    "pwsh",
    "mshta",
    "wscript",
    "cscript",
    "rundll32",
    "regsvr32",
    "msiexec",
    "curl",
    "bitsadmin",
    "certutil",
    "forfiles",
    "conhost",
    "wmic",
    "schtasks",
    "msbuild",
    "installutil",
    "regasm",
    "odbcconf",
    "hh",
    "explorer",
    "bash",
    "wsl",
];

pub struct Payload;

impl Detector for Payload {
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
        let sender_domain = message
            .from
            .as_ref()
            .and_then(|m| m.domain())
            .map(|d| crate::domains::registrable(&d));
        let mut found: Vec<(&'static str, String)> = Vec::new();
        for node in &message.attachments {
            for ind in &node.indicators {
                let Some((rule, evidence)) = judge(node, ind, sender_domain.as_deref()) else {
                    continue;
                };
                let rule = match rule {
                    "equation_editor" if !exploit_shaped(message, node) => "equation_object",
                    "ole_package" if packages_only_harmless(message, node) => continue,
                    other => other,
                };
                found.push((rule, evidence));
            }
        }
        for rule in RULES.iter().map(|r| r.name) {
            let of_rule: Vec<&String> = found
                .iter()
                .filter(|(r, _)| *r == rule)
                .map(|(_, e)| e)
                .collect();
            // Weak notes count once per message, however many objects.
            let max = if WEAK_RULES.contains(&rule) {
                1
            } else {
                MAX_PER_RULE
            };
            for evidence in of_rule.iter().take(max) {
                hits.push(Hit::new(rule, (*evidence).clone()));
            }
            if of_rule.len() > max {
                if let Some(last) = hits.last_mut() {
                    last.evidence
                        .push_str(&format!("; and {} more", of_rule.len() - max));
                }
            }
        }
        Ok(())
    }
}

/// The rule and evidence for one indicator on one node, if it is one.
fn judge(
    node: &Attachment,
    ind: &crate::formats::Indicator,
    sender_domain: Option<&str>,
) -> Option<(&'static str, String)> {
    let path = &node.path;
    let detail = one_line(&ind.detail);
    Some(match ind.kind {
        IndicatorKind::EquationEditor => ("equation_editor", format!("{path}: {detail}")),
        IndicatorKind::OlePackage => ("ole_package", format!("{path}: packaged file {detail}")),
        IndicatorKind::AutoUpdate if detail.to_ascii_lowercase().contains("ole2link") => (
            "exploit_object",
            format!(
                "{path}: a linked object updating itself on open: {}",
                defang(&detail)
            ),
        ),
        IndicatorKind::AutoUpdate => ("auto_update", format!("{path}: {detail}")),
        IndicatorKind::ActiveX if detail.to_ascii_uppercase().contains(FLASH_CLSID) => (
            "exploit_object",
            format!("{path}: Shockwave Flash ActiveX control ({detail})"),
        ),
        IndicatorKind::ActiveX => ("activex", format!("{path}: {detail}")),
        IndicatorKind::LaunchAction => ("pdf_launch", format!("{path}: launches {detail}")),
        IndicatorKind::AutoScript => ("pdf_auto_script", format!("{path}: {detail}")),
        IndicatorKind::Link => {
            let why = lure_link(&ind.detail)?;
            (
                "pdf_lure_link",
                format!("{path}: links to {} ({why})", links::defang(&detail)),
            )
        }
        IndicatorKind::ExternalReference => {
            let (kind, target) = detail.split_once(": ").unwrap_or(("", &detail));
            let kind_lower = kind.to_ascii_lowercase();
            if !FETCHING_RELATIONSHIPS
                .iter()
                .any(|k| kind_lower.ends_with(k))
            {
                return None;
            }
            if sender_domain.is_some_and(|d| target_is_senders(target, d)) {
                return None;
            }
            (
                "remote_template",
                format!("{path}: {kind} loaded from {}", links::defang(target)),
            )
        }
        IndicatorKind::ShortcutCommand => {
            if !starts_interpreter(&ind.detail) {
                return None;
            }
            (
                "shortcut_command",
                format!("{path}: runs {}", defang(&detail)),
            )
        }
        IndicatorKind::HtmlSmuggling => ("html_smuggling", format!("{path}: {}", defang(&detail))),
        IndicatorKind::ScriptExecution => {
            ("script_execution", format!("{path}: {}", defang(&detail)))
        }
        IndicatorKind::Padded => ("padded", format!("{path}: {detail}")),
        IndicatorKind::DefaultPassword => ("default_password", format!("{path}: {detail}")),
        IndicatorKind::Malformed => ("malformed", format!("{path}: {detail}")),
        // Reported by other rules: office_macro.encrypted_document for the
        // encryption itself, nothing for ordinary embedded objects.
        IndicatorKind::EncryptedDocument | IndicatorKind::OleObject => return None,
    })
}

/// An Equation Editor object with the shape of CVE-2017-11882/-0802: in an
/// RTF (where exploit kits put them), or beside a structure only an
/// exploit writes (a font name past its 40-byte field).
fn exploit_shaped(view: &MessageView, node: &Attachment) -> bool {
    let mut at = Some(node);
    while let Some(n) = at {
        if n.file_type == crate::view::FileType::Rtf {
            return true;
        }
        at = n.parent.and_then(|p| view.attachments.get(p));
    }
    node.indicators
        .iter()
        .any(|i| i.kind == IndicatorKind::Malformed)
}

/// Whether every file packaged in this node's OLE Packages is one an
/// honest document packages: a document or archive (judged by the rules
/// for documents and archives), text without script, or a name Windows
/// opens in a viewer (.txt, .pdf). Pictures are not let through: a
/// packaged picture is how stego loaders travel, and an honest document
/// shows a picture inline, not as a packaged file.
fn packages_only_harmless(view: &MessageView, node: &Attachment) -> bool {
    use crate::view::{FileType, Origin};
    let mut packaged = view
        .children(node.id)
        .filter(|c| matches!(c.origin, Origin::Embedded(how) if how.contains("Package")))
        .peekable();
    if packaged.peek().is_none() {
        return false;
    }
    packaged.all(|c| {
        let runs = matches!(c.file_type, FileType::Pe | FileType::Lnk | FileType::Elf);
        let by_name = matches!(
            c.extension().as_deref(),
            Some("txt" | "csv" | "log" | "md" | "pdf")
        );
        let by_content = match c.file_type {
            FileType::Ole2 | FileType::Ooxml | FileType::OpenDocument | FileType::Zip => true,
            FileType::Pdf => true,
            FileType::Text => {
                crate::formats::script::sniff(&c.data).is_none()
                    && memchr::memmem::find(&c.data.to_ascii_lowercase(), b"<script").is_none()
            }
            _ => false,
        };
        !runs && (by_name || by_content)
    })
}

/// The Shockwave Flash ActiveX control.
const FLASH_CLSID: &str = "D27CDB6E-AE6D-11CF-96B8-444553540000";

/// Why a document's link looks like a lure, if it does: a bare IP address
/// as host, or a file that runs or carries macros at the end of the path.
fn lure_link(url: &str) -> Option<&'static str> {
    let host = host_of(url)?;
    let bare = host.trim_matches(['[', ']']);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Some("a bare IP address");
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit('/').next()?.rsplit_once('.')?.1.to_string();
    const RISKY: &[&str] = &[
        "doc", "docm", "xls", "xlsm", "xlsb", "dotm", "xlam", "ppt", "pptm", "zip", "rar", "7z",
        "iso", "img", "vhd", "one", "exe", "scr", "msi", "js", "jse", "vbs", "vbe", "wsf", "hta",
        "lnk", "bat", "cmd", "ps1",
    ];
    RISKY
        .contains(&ext.as_str())
        .then_some("the download of a file that runs or carries macros")
}

/// Whether a shortcut's command starts a program that runs other code,
/// with arguments.
fn starts_interpreter(command: &str) -> bool {
    let lower = command.to_ascii_lowercase();
    let (target, args) = split_command(&lower);
    let program = target
        .rsplit(['\\', '/'])
        .next()
        .unwrap_or(target)
        .trim_end_matches(".exe")
        .trim_end_matches(".com");
    let named = INTERPRETERS.contains(&program);
    // Arguments that name an interpreter count too ("explorer.exe" with
    // "cmd /c ..." smuggled in the arguments).
    let in_args = INTERPRETERS.iter().any(|i| {
        args.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == *i && !matches!(*i, "hh" | "explorer" | "bash" | "wsl"))
    });
    (named && !args.trim().is_empty()) || in_args
}

/// (target, arguments) of `"<target> <arguments> (in <dir>)"`, the shape
/// formats::lnk reports; a quoted target may hold spaces.
fn split_command(command: &str) -> (&str, &str) {
    let c = command.trim();
    if let Some(rest) = c.strip_prefix('"') {
        if let Some((target, args)) = rest.split_once('"') {
            return (target, args);
        }
    }
    c.split_once(' ').unwrap_or((c, ""))
}

/// A remote target on the sender's own domain (their SharePoint, their
/// file server) is how honest templates work.
fn target_is_senders(target: &str, sender_domain: &str) -> bool {
    let Some(host) = host_of(target) else {
        return false;
    };
    let reg = crate::domains::registrable(&host);
    if reg == sender_domain {
        return true;
    }
    // Tenant SharePoint: contoso.sharepoint.com, contoso-my.sharepoint.com
    // for mail from contoso.co.jp.
    let label = sender_domain.split('.').next().unwrap_or("");
    reg == "sharepoint.com"
        && !label.is_empty()
        && host
            .split('.')
            .next()
            .is_some_and(|t| t == label || t == format!("{label}-my"))
}

/// The host of an http(s)/file/UNC/mhtml target, lower-cased.
fn host_of(target: &str) -> Option<String> {
    let t = target.trim().to_ascii_lowercase();
    let t = t.strip_prefix("mhtml:").unwrap_or(&t);
    let rest = match t.find("://") {
        Some(i) => &t[i + 3..],
        None => t.strip_prefix("\\\\")?,
    };
    let host: String = rest
        .chars()
        .take_while(|c| !matches!(c, '/' | '\\' | ':' | '?' | '#' | '@'))
        .collect();
    (!host.is_empty()).then_some(host)
}

/// Free text from a file (a command line, a script's calls) with every
/// URL scheme and dot made unclickable; a lone URL goes through
/// [`links::defang`], which keeps its path readable.
fn defang(text: &str) -> String {
    text.replace("http://", "hxxp://")
        .replace("https://", "hxxps://")
        .replace("HTTP://", "hxxp://")
        .replace("HTTPS://", "hxxps://")
        .replace('.', "[.]")
}

/// Parser detail on one line (evidence is sanitised again by the core).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_with_arguments() {
        assert!(starts_interpreter(
            "C:\\Windows\\System32\\cmd.exe /c start invoice.exe"
        ));
        assert!(starts_interpreter(
            "\"C:\\Program Files\\x\\powershell.exe\" -w hidden -enc AAAA"
        ));
        assert!(starts_interpreter("C:\\Windows\\explorer.exe cmd /c calc"));
        assert!(!starts_interpreter("C:\\Windows\\System32\\cmd.exe"));
        assert!(!starts_interpreter("C:\\Users\\a\\Documents\\report.pdf"));
    }

    #[test]
    fn templates_on_the_senders_domain_are_theirs() {
        assert!(target_is_senders(
            "https://intranet.example.co.jp/t.dotx",
            "example.co.jp"
        ));
        assert!(target_is_senders(
            "https://example-my.sharepoint.com/personal/t.dotx",
            "example.co.jp"
        ));
        assert!(!target_is_senders(
            "https://evil.example/t.dotm",
            "example.co.jp"
        ));
        assert!(!target_is_senders(
            "\\\\203.0.113.9\\share\\t.dotm",
            "example.co.jp"
        ));
        assert_eq!(defang("https://a.example/x"), "hxxps://a[.]example/x");
    }
}
