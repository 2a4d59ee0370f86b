//! "What this means": one plain sentence per detector that fired, for a
//! reviewer who is not a mail expert, in English and Japanese.

use super::index::{Finding, Item};
use super::Lang;

/// One sentence per detector among the message's findings, in order of
/// first appearance.
pub fn explanations(item: &Item, lang: Lang) -> Vec<(String, String)> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for f in &item.findings {
        if seen.contains(&f.detector.as_str()) {
            continue;
        }
        seen.push(&f.detector);
        out.push((f.detector.clone(), explain(&f.detector, item, lang)));
    }
    out
}

fn explain(detector: &str, item: &Item, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let from = sender_address(item);
    match detector {
        "thread_hijack" => thread_hijack(item, &from, ja),
        "display_name" => {
            if ja {
                format!("差出人には知っている人や会社の名前が表示されていますが、実際の送信元は別のアドレス（{from}）です。名前ではなくアドレスを確かめてください。")
            } else {
                format!("The sender shows the name of someone you know, but the mail really comes from a different address ({from}). Trust the address, not the name.")
            }
        }
        "office_macro" => if ja {
            "添付の Office 文書にマクロ（プログラム）が入っています。開くと自動で動き（A）、ファイルを書き込み（W）、プログラムを実行する（X）マクロは、Emotet がパソコンに感染する手口です。「編集を有効にする」「コンテンツの有効化」を押さないでください。"
        } else {
            "An attached Office document contains macros (small programs). Macros that start when the file opens (A), write files (W) and run programs (X) are how Emotet infects a PC: never click \"Enable editing\" or \"Enable content\"."
        }
        .to_string(),
        "encrypted_archive" => if ja {
            "添付はパスワード付きの圧縮ファイルで、そのパスワードが同じメールに書かれています。ウイルス対策ソフトに中身を見せないための手口です（正規の送信者はパスワードを別のメールで送ります）。"
        } else {
            "The attachment is a password-protected archive and the password is written in the same mail. That hides the content from virus scanners; honest senders send the password separately."
        }
        .to_string(),
        "links" => if ja {
            "本文のリンクが文書や圧縮ファイルをダウンロードさせるか、表示と異なるサイトへ誘導します。"
        } else {
            "A link in the message downloads a document or archive, or shows one site while leading to another."
        }
        .to_string(),
        "attachment" => if ja {
            "添付ファイルの種類（ショートカット、ディスクイメージ、スクリプトなど）はマルウェアの配布によく使われます。"
        } else {
            "The attachment is of a kind used to deliver malware (a shortcut, a disk image, a script, ...)."
        }
        .to_string(),
        "outbound" => if ja {
            "自組織のアカウントから異常な量または内容のメールが送られています。アカウントが乗っ取られている可能性があります。"
        } else {
            "This mail left one of your own accounts at an unusual rate or with suspicious content: the account may be compromised."
        }
        .to_string(),
        "scan" => if ja {
            "このメールは（上限やエラーのため）最後まで検査できませんでした。人が確認してください。"
        } else {
            "This message could not be fully checked (a limit or an error): a person should look at it."
        }
        .to_string(),
        _ => if ja {
            "このルールが一致しました。上の根拠を確認してください。"
        } else {
            "This rule matched; see the evidence above."
        }
        .to_string(),
    }
}

fn sender_address(item: &Item) -> String {
    let from = &item.held.from;
    match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => from[a + 1..b].to_string(),
        _ if !from.is_empty() => from.clone(),
        _ => item.held.sender.clone(),
    }
}

/// "This message is a reply into a conversation you had with 鈴木 一郎 in
/// March 2026, but it was sent from an address that never took part in
/// that conversation." Names and dates come from the findings' evidence.
fn thread_hijack(item: &Item, from: &str, ja: bool) -> String {
    let partner = item
        .findings
        .iter()
        .filter(|f| f.detector == "thread_hijack")
        .find_map(|f| quoted_partner(&f.evidence));
    let when = item
        .findings
        .iter()
        .filter(|f| f.detector == "thread_hijack")
        .find_map(|f| quoted_date(&f.evidence));
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    if ja {
        let with = partner.map(|p| format!("{p} との")).unwrap_or_default();
        let at = when
            .map(|(y, m)| format!("{y}年{m}月の"))
            .unwrap_or_default();
        format!("このメールは {with}{at}やり取りへの返信の形をしていますが、送信元のアドレス（{from}）はそのやり取りに一度も登場していません。盗まれた過去のメールを使ったなりすましの手口です。")
    } else {
        let with = partner.map(|p| format!(" with {p}")).unwrap_or_default();
        let at = when
            .map(|(y, m)| format!(" in {} {y}", MONTHS[(m - 1) as usize]))
            .unwrap_or_default();
        format!("This message is a reply into a conversation you had{with}{at}, but it was sent from an address ({from}) that never took part in that conversation: stolen mail reused as bait.")
    }
}

/// `a quoted header block from "鈴木 一郎" <ichiro@...>` → `鈴木 一郎`.
fn quoted_partner(evidence: &str) -> Option<String> {
    let rest = evidence.split("quoted header block from ").nth(1)?;
    let rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('"') {
        let name = r.split('"').next()?;
        return (!name.trim().is_empty()).then(|| name.trim().to_string());
    }
    let addr = rest.trim_start_matches('<').split(['>', ')', ' ']).next()?;
    (!addr.is_empty()).then(|| addr.to_string())
}

/// `the newest quoted message is from 2026-03-03` → (2026, 3).
fn quoted_date(evidence: &str) -> Option<(u32, u32)> {
    let rest = evidence.split("quoted message is from ").nth(1)?;
    let y: u32 = rest.get(0..4)?.parse().ok()?;
    let m: u32 = rest.get(5..7)?.parse().ok()?;
    (rest.as_bytes().get(4) == Some(&b'-') && (1..=12).contains(&m)).then_some((y, m))
}

/// The rule's description from the rules catalogue.
pub fn rule_description(f: &Finding) -> Option<&'static str> {
    crate::detectors::catalog()
        .into_iter()
        .find(|(d, _)| *d == f.detector)
        .and_then(|(_, rules)| rules.iter().find(|r| r.name == f.rule))
        .map(|r| r.description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_hijack_names_the_partner_and_month() {
        assert_eq!(
            quoted_partner("subject \"RE: x\" quotes earlier mail (a quoted header block from \"鈴木 一郎\" <ichiro@partner.example.jp>) but"),
            Some("鈴木 一郎".into())
        );
        assert_eq!(
            quoted_date("the newest quoted message is from 2026-03-03 (262 days earlier)"),
            Some((2026, 3))
        );
        assert_eq!(
            quoted_date("the newest quoted message is from 2026-13-03"),
            None
        );
        assert_eq!(quoted_partner("nothing"), None);
    }
}
