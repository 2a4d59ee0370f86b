//! The HTML, server-rendered with maud: every value taken from a message
//! is escaped by the template engine, control and bidi characters are
//! shown as `\u{..}`, nothing from a message becomes a link, and there is
//! no script on any page.

use maud::{html, Markup, DOCTYPE};

use super::explain;
use super::index::Item;
use super::{Action, Filters, Lang, Login};
use crate::quarantine::{age, clean};
use crate::view::MessageView;

pub const CSS: &str = include_str!("style.css");

/// One line from a message made inert for display: control and bidi
/// characters escaped.
fn line(s: &str) -> String {
    clean(s)
}

/// Multi-line text from a message: line breaks and tabs kept, every other
/// control and bidi character escaped; cut at `max` characters.
fn text_block(s: &str, max: usize) -> (String, bool) {
    let mut out = String::new();
    let mut cut = false;
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            cut = true;
            break;
        }
        if c == '\n' || c == '\t' {
            out.push(c);
        } else {
            out.push_str(&clean(c.encode_utf8(&mut [0; 4])));
        }
    }
    (out, cut)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `2026-12-02 10:05 UTC`.
fn utc(unix: u64) -> String {
    crate::calendar::utc_minute(unix)
}

fn layout(lang: Lang, title: &str, login: Option<&Login>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " — malspam-milter" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    a.brand href="/messages" { "malspam-milter" }
                    span.sub { (lang.pick("quarantine review", "隔離メールの確認")) }
                    @if let Some(l) = login {
                        span.who {
                            (l.user.name) " · " (role_name(lang, l))
                            @if !l.user.domains.is_empty() { " · " (l.user.domains.join(", ")) }
                        }
                        @if l.session.is_some() {
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(l.csrf);
                                button.link type="submit" { (lang.pick("Log out", "ログアウト")) }
                            }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

fn role_name(lang: Lang, l: &Login) -> &'static str {
    match l.user.role {
        super::Role::Viewer => lang.pick("viewer", "閲覧者"),
        super::Role::Reviewer => lang.pick("reviewer", "確認担当"),
    }
}

pub fn login(lang: Lang, csrf: &str, message: Option<&str>) -> Markup {
    layout(
        lang,
        lang.pick("Log in", "ログイン"),
        None,
        html! {
            section.login {
                h1 { (lang.pick("Log in", "ログイン")) }
                @if let Some(m) = message { p.error role="alert" { (m) } }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { (lang.pick("User", "ユーザー名")) input type="text" name="user" autocomplete="username" required; }
                    label { (lang.pick("Password", "パスワード")) input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { (lang.pick("Log in", "ログイン")) }
                }
            }
        },
    )
}

pub fn error(
    lang: Lang,
    login: Option<&Login>,
    status: axum::http::StatusCode,
    message: &str,
) -> Markup {
    layout(
        lang,
        status.canonical_reason().unwrap_or("Error"),
        login,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.error role="alert" { (message) }
            p { a href="/messages" { (lang.pick("Back to the list", "一覧に戻る")) } }
        },
    )
}

pub struct ListPage<'a> {
    pub lang: Lang,
    pub login: &'a Login,
    pub items: &'a [&'a Item],
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub filters: &'a Filters,
    pub rules: &'a [String],
    pub now: u64,
    pub loaded: bool,
    pub error: Option<&'a str>,
    pub top: usize,
}

fn verdict_name(lang: Lang, v: &str) -> String {
    match v {
        "quarantine" => lang.pick("quarantine", "隔離").into(),
        "tag" => lang.pick("tag", "警告").into(),
        "reject" => lang.pick("reject", "拒否").into(),
        "accept" => lang.pick("accept", "許可").into(),
        "" => lang
            .pick("not held by malspam-milter", "malspam-milter 以外で保留")
            .into(),
        other => line(other),
    }
}

/// Recipients the user may see, and how many others there are.
fn recipients(login: &Login, item: &Item) -> (Vec<String>, usize) {
    let shown: Vec<String> = item
        .held
        .recipients
        .iter()
        .filter(|r| login.user.sees(r))
        .map(|r| line(r))
        .collect();
    let hidden = item.held.recipients.len() - shown.len();
    (shown, hidden)
}

fn page_link(f: &Filters, page: usize) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("verdict", &f.verdict),
        ("rule", &f.rule),
        ("domain", &f.domain),
        ("age", &f.age),
        ("q", &f.q),
    ] {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.append_pair("page", &page.to_string());
    format!("/messages?{}", q.finish())
}

pub fn list(p: &ListPage) -> Markup {
    let lang = p.lang;
    let f = p.filters;
    let reviewer = p.login.user.role == super::Role::Reviewer;
    let notice = match f.done.as_str() {
        "release" | "release_allowlist" => Some(lang.pick(
            "Released: delivered now.",
            "解放しました（すぐに配送されます）。",
        )),
        "delete" => Some(lang.pick("Deleted.", "削除しました。")),
        _ => None,
    };
    layout(
        lang,
        lang.pick("Held messages", "保留中のメッセージ"),
        Some(p.login),
        html! {
            h1 { (lang.pick("Held messages", "保留中のメッセージ")) " " span.count { "(" (p.total) ")" } }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            @if let Some(e) = p.error { p.error role="alert" { (lang.pick("Cannot read the hold queue: ", "保留キューを読めません: ")) (line(e)) } }
            @if !p.loaded { p.notice { (lang.pick("Reading the hold queue…", "保留キューを読み込み中…")) } }
            form.filters method="get" action="/messages" {
                label { (lang.pick("Verdict", "判定"))
                    select name="verdict" {
                        option value="" { (lang.pick("any", "すべて")) }
                        @for v in ["quarantine", "tag", "accept"] {
                            option value=(v) selected[f.verdict == v] { (verdict_name(lang, v)) }
                        }
                    }
                }
                label { (lang.pick("Rule", "ルール"))
                    select name="rule" {
                        option value="" { (lang.pick("any", "すべて")) }
                        @for r in p.rules {
                            option value=(r) selected[&f.rule == r] { (line(r)) }
                        }
                    }
                }
                label { (lang.pick("Sender domain", "送信元ドメイン")) input type="text" name="domain" value=(f.domain) size="16"; }
                label { (lang.pick("Age", "経過時間"))
                    select name="age" {
                        @for (v, en, ja) in [("", "any", "すべて"), ("1h", "last hour", "1時間以内"), ("1d", "last day", "1日以内"), ("7d", "last week", "1週間以内"), ("old", "older than a week", "1週間より前")] {
                            option value=(v) selected[f.age == v] { (lang.pick(en, ja)) }
                        }
                    }
                }
                label { (lang.pick("Message-ID or queue id", "Message-ID またはキューID")) input type="search" name="q" value=(f.q) size="24"; }
                button type="submit" { (lang.pick("Filter", "絞り込み")) }
            }
            form method="post" action="/bulk" {
                input type="hidden" name="csrf" value=(p.login.csrf);
                table.list {
                    thead { tr {
                        @if reviewer { th { span.sr { (lang.pick("Select", "選択")) } } }
                        th { (lang.pick("Time", "受信")) }
                        th { (lang.pick("Sender → recipients", "送信者 → 宛先")) }
                        th { (lang.pick("Subject", "件名")) }
                        th.nowrap { (lang.pick("Verdict", "判定")) }
                        th.num { (lang.pick("Score", "スコア")) }
                        th { (lang.pick("Why", "理由")) }
                    } }
                    tbody {
                        @for item in p.items {
                            @let (rcpts, hidden) = recipients(p.login, item);
                            tr.held {
                                @if reviewer { td { input type="checkbox" name="id" value=(item.held.queue_id) aria-label=(item.held.queue_id); } }
                                td.time { (age(p.now.saturating_sub(item.held.arrival_time))) br; small { (utc(item.held.arrival_time)) } }
                                td.env { (line(&item.held.sender)) " → " (rcpts.join(", "))
                                    @if hidden > 0 { " " small { (format!("(+{hidden})")) } } }
                                td.subject { a href=(format!("/messages/{}", item.held.queue_id)) {
                                    @let s = line(&item.held.subject);
                                    @if s.is_empty() { em { (lang.pick("(no subject)", "（件名なし）")) } } @else { (shorten(&s, 200)) }
                                } br; small.qid { (item.held.queue_id) } }
                                td.nowrap { span class=(format!("verdict v-{}", if item.verdict().is_empty() { "none" } else { "set" })) { (verdict_name(lang, item.verdict())) } }
                                td.num { (item.held.verdict.as_ref().map(|v| line(&v.score)).unwrap_or_default()) }
                                td.why { ul {
                                    @for fd in item.top_findings(p.top) {
                                        li { span.rule title=(explain::rule_description(fd).unwrap_or("")) { (line(&fd.name())) } " " (shorten(&line(&fd.evidence), 110)) }
                                    }
                                    @if item.findings.len() > p.top { li.more { (format!("+{}", item.findings.len() - p.top)) } }
                                } }
                            }
                        }
                    }
                }
                @if p.items.is_empty() { p.empty { (lang.pick("No held messages match.", "該当する保留メッセージはありません。")) } }
                @if reviewer && !p.items.is_empty() {
                    div.bulk {
                        (lang.pick("Selected: ", "選択したものを: "))
                        button type="submit" name="action" value="release" { (lang.pick("Release…", "解放…")) }
                        button.danger type="submit" name="action" value="delete" { (lang.pick("Delete…", "削除…")) }
                    }
                }
            }
            nav.pages {
                @if p.page > 1 { a href=(page_link(f, p.page - 1)) rel="prev" { "← " (lang.pick("newer", "新しい")) } }
                span { (p.page) " / " (p.pages) }
                @if p.page < p.pages { a href=(page_link(f, p.page + 1)) rel="next" { (lang.pick("older", "古い")) " →" } }
            }
        },
    )
}

/// Evidence with macro keyword grades (A)/(W)/(X) marked.
fn evidence(e: &str) -> Markup {
    let e = line(e);
    let mut parts: Vec<(String, Option<char>)> = Vec::new();
    let mut rest = e.as_str();
    while let Some(i) = rest.find(['(']) {
        let tail = &rest[i..];
        let grade = ['A', 'W', 'X']
            .into_iter()
            .find(|g| tail.starts_with(&format!("({g})")));
        match grade {
            Some(g) => {
                parts.push((rest[..i].to_string(), None));
                parts.push((String::new(), Some(g)));
                rest = &rest[i + 3..];
            }
            None => {
                parts.push((rest[..=i].to_string(), None));
                rest = &rest[i + 1..];
            }
        }
    }
    parts.push((rest.to_string(), None));
    html! {
        @for (text, grade) in parts {
            @match grade {
                Some(g) => span class=(format!("kw kw-{}", g.to_ascii_lowercase())) title=(grade_title(g)) { (g) },
                None => (text),
            }
        }
    }
}

fn grade_title(g: char) -> &'static str {
    match g {
        'A' => "auto-exec: runs when the document opens",
        'W' => "write: writes files",
        _ => "execute: runs programs",
    }
}

pub struct MessagePage<'a> {
    pub lang: Lang,
    pub login: &'a Login,
    pub item: &'a Item,
    pub view: Option<&'a MessageView>,
    pub too_big: bool,
    pub now: u64,
    pub max_text_chars: usize,
    pub can_act: bool,
}

/// `hxxps://evil[.]example/x` — never clickable (the links detector's).
pub use crate::detectors::links::defang;

fn urls(view: &MessageView) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in &view.texts {
        for source in [Some(t.text.as_str()), t.html.as_deref()]
            .into_iter()
            .flatten()
        {
            for url in crate::view::urls::in_text(source) {
                let d = defang(&shorten(url, 2000));
                if !out.contains(&d) {
                    out.push(d);
                }
                if out.len() >= 100 {
                    return out;
                }
            }
        }
    }
    out
}

pub fn message(p: &MessagePage) -> Markup {
    let lang = p.lang;
    let item = p.item;
    let h = &item.held;
    let reviewer = p.login.user.role == super::Role::Reviewer;
    let (rcpts, hidden) = recipients(p.login, item);
    let subject = line(&h.subject);
    layout(
        lang,
        &shorten(&subject, 80),
        Some(p.login),
        html! {
            p { a href="/messages" { "← " (lang.pick("Held messages", "保留中のメッセージ")) } }
            h1.subject { @if subject.is_empty() { em { (lang.pick("(no subject)", "（件名なし）")) } } @else { (subject) } }
            dl.meta {
                dt { (lang.pick("From", "差出人")) } dd { (line(&h.from)) }
                dt { (lang.pick("Envelope sender", "エンベロープ送信者")) } dd { (line(&h.sender)) }
                dt { (lang.pick("Recipients", "宛先")) } dd { (rcpts.join(", ")) @if hidden > 0 { " " small { (format!("(+{hidden} {})", lang.pick("outside your domains", "権限外"))) } } }
                dt { (lang.pick("Held", "保留")) } dd { (age(p.now.saturating_sub(h.arrival_time))) " (" (utc(h.arrival_time)) "), " (h.message_size) " bytes" }
                dt { (lang.pick("Queue id", "キューID")) } dd.qid { (h.queue_id) }
                @if !item.message_id.is_empty() { dt { "Message-ID" } dd { (line(&item.message_id)) } }
                dt { (lang.pick("Verdict", "判定")) } dd { (verdict_name(lang, item.verdict())) @if let Some(v) = &h.verdict { ", " (lang.pick("score ", "スコア ")) (line(&v.score)) } }
            }
            @if p.can_act {
                div.actions {
                    a.button href=(format!("/messages/{}/confirm?action=release", h.queue_id)) { (lang.pick("Release (deliver now)…", "解放（今すぐ配送）…")) }
                    @if p.login.user.all_domains() {
                        a.button href=(format!("/messages/{}/confirm?action=release_allowlist", h.queue_id)) { (lang.pick("Release and allowlist this sender…", "解放して送信者を許可リストに追加…")) }
                    }
                    a.button.danger href=(format!("/messages/{}/confirm?action=delete", h.queue_id)) { (lang.pick("Delete…", "削除…")) }
                }
            }
            section.explain {
                h2 { (lang.pick("What this means", "これはどういうことか")) }
                @let ex = explain::explanations(item, lang);
                @if ex.is_empty() { p { (lang.pick("This message was not held by malspam-milter: no findings of ours.", "このメッセージは malspam-milter 以外で保留されました（検出結果はありません）。")) } }
                ul {
                    @for (detector, sentence) in &ex {
                        li data-detector=(detector) { (line(sentence)) }
                    }
                }
            }
            section.findings {
                h2 { (lang.pick("Findings", "検出結果")) " (" (item.findings.len()) ")" }
                table {
                    thead { tr { th { (lang.pick("Rule", "ルール")) } th.num { "+" } th { (lang.pick("Evidence", "根拠")) } } }
                    tbody {
                        @for f in &item.findings {
                            tr {
                                td { span.rule { (line(&f.name())) }
                                    @if let Some(d) = explain::rule_description(f) { br; small.desc { (d) } } }
                                td.num { (f.score) }
                                td.evidence { (evidence(&f.evidence)) }
                            }
                        }
                    }
                }
                p.legend { span.kw.kw-a { "A" } " " (lang.pick("runs when opened", "開くと自動実行")) " · " span.kw.kw-w { "W" } " " (lang.pick("writes files", "ファイル書き込み")) " · " span.kw.kw-x { "X" } " " (lang.pick("runs programs", "プログラム実行")) }
            }
            @if p.too_big {
                p.notice { (lang.pick("Too large to open here; the findings above are from the milter.", "大きすぎるためここでは開けません。上の検出結果はミルターによるものです。")) }
            }
            @if let Some(view) = p.view {
                section.tree {
                    h2 { (lang.pick("Attachments", "添付ファイル")) " (" (view.attachments.len()) ")" }
                    @if view.attachments.is_empty() { p { (lang.pick("None.", "ありません。")) } }
                    ul.tree {
                        @for a in &view.attachments {
                            li style=(format!("margin-left:{}em", a.depth.min(12) * 2)) {
                                span.path { (line(&a.path)) } " "
                                span.type { "[" (line(&a.file_type.to_string())) ", " (a.data.len()) " bytes"
                                    @if let Some(d) = &a.declared_type { ", " (lang.pick("declared ", "申告 ")) (line(d)) }
                                    @if a.decrypted { ", " strong { (lang.pick("decrypted", "復号済み")) } }
                                    "]" }
                                @if let Some(info) = &a.archive {
                                    ul {
                                        li { (info.entry_count) (lang.pick(" entries", " 項目")) }
                                        @for e in &info.encrypted {
                                            li.enc { (lang.pick("encrypted ", "暗号化 ")) (line(&e.name)) " (" (e.method.as_str()) ", " (match e.state {
                                                crate::view::EntryState::Locked => lang.pick("locked", "未解除"),
                                                crate::view::EntryState::Decrypted => lang.pick("opened with the password", "パスワードで解除"),
                                                crate::view::EntryState::FlagOnly => lang.pick("flag only, data plain", "フラグのみ（平文）"),
                                            }) ")" }
                                        }
                                        @for pw in &info.passwords {
                                            li { (lang.pick("password ", "パスワード ")) code { (crate::password::mask(&pw.password)) } " " (lang.pick("from ", "出所: ")) (line(&pw.found.to_string())) }
                                        }
                                        @if let Some(err) = &info.error { li.error { (line(err)) } }
                                    }
                                }
                            }
                        }
                    }
                    @let found = urls(view);
                    @if !found.is_empty() {
                        h3 { (lang.pick("Links (defanged, not clickable)", "リンク（無害化、クリック不可）")) }
                        ul.urls { @for u in &found { li { code { (line(u)) } } } }
                    }
                }
                section.headers {
                    h2 { (lang.pick("Headers", "ヘッダー")) }
                    table.headers {
                        tbody {
                            @for (name, value) in view.headers.iter().take(500) {
                                @let own = name.to_ascii_lowercase().starts_with("x-malspam-");
                                tr class=(if own { "own" } else { "" }) {
                                    th { (line(name)) }
                                    td { (shorten(&line(&super::index::decode_words(value)), 4000)) }
                                }
                            }
                        }
                    }
                }
                @if reviewer {
                    section.texts {
                        h2 { (lang.pick("Text (plain text only; links and images never load)", "本文（テキストのみ。リンクや画像は読み込みません）")) }
                        @for t in &view.texts {
                            @let (body, cut) = text_block(&t.text, p.max_text_chars);
                            h3 { (line(&t.location)) @if t.html.is_some() { " " small { (lang.pick("(HTML shown as text)", "（HTML をテキストで表示）")) } } }
                            pre.text { (body) }
                            @if cut { p.notice { (lang.pick("(cut)", "（以下省略）")) } }
                        }
                    }
                } @else {
                    p.notice { (lang.pick("Reviewers can read the text of the message.", "本文は確認担当のみ閲覧できます。")) }
                }
            }
        },
    )
}

pub fn confirm(lang: Lang, login: &Login, items: &[&Item], action: Action, now: u64) -> Markup {
    let (title, question, button) = match action {
        Action::Release => (
            lang.pick("Release", "解放"),
            lang.pick("Deliver these messages to their recipients now?", "これらのメッセージを今すぐ宛先に配送しますか？"),
            lang.pick("Yes, release", "はい、解放します"),
        ),
        Action::Delete => (
            lang.pick("Delete", "削除"),
            lang.pick("Delete these messages for good? This cannot be undone.", "これらのメッセージを完全に削除しますか？元に戻せません。"),
            lang.pick("Yes, delete", "はい、削除します"),
        ),
        Action::ReleaseAllowlist => (
            lang.pick("Release and allowlist", "解放して許可リストに追加"),
            lang.pick("Deliver this message now, and let all future mail from its sender pass unscanned?", "このメッセージを今すぐ配送し、この送信者からの今後のメールを検査せずに通しますか？"),
            lang.pick("Yes, release and allowlist", "はい、解放して追加します"),
        ),
    };
    let target = if items.len() == 1 {
        format!("/messages/{}/action", items[0].held.queue_id)
    } else {
        "/bulk/action".to_string()
    };
    layout(
        lang,
        title,
        Some(login),
        html! {
            h1 { (title) }
            p.question { (question) }
            ul.confirm {
                @for i in items {
                    li { span.qid { (i.held.queue_id) } " · " (age(now.saturating_sub(i.held.arrival_time))) " · " (line(&i.held.sender)) " · " strong { (shorten(&line(&i.held.subject), 120)) }
                        @if action == Action::ReleaseAllowlist { br; (lang.pick("Sender to allowlist: ", "許可リストに追加する送信者: ")) code { (line(&i.held.sender)) } } }
                }
            }
            form method="post" action=(target) {
                input type="hidden" name="csrf" value=(login.csrf);
                input type="hidden" name="action" value=(action.as_str());
                @for i in items { input type="hidden" name="id" value=(i.held.queue_id); }
                button class=(if action == Action::Delete { "danger" } else { "" }) type="submit" { (button) }
                " "
                a href="/messages" { (lang.pick("Cancel", "キャンセル")) }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_defanged() {
        assert_eq!(
            defang("https://evil.example/a.doc?x=1"),
            "hxxps://evil[.]example/a.doc?x=1"
        );
        assert_eq!(defang("HTTP://a.b"), "hxxp://a[.]b");
    }

    #[test]
    fn text_keeps_lines_escapes_controls() {
        let (t, cut) = text_block("a\u{202e}b\nc\u{1b}d", 100);
        assert_eq!(t, "a\\u{202e}b\nc\\u{1b}d");
        // The one bidi set (sanitize) includes U+061C ARABIC LETTER MARK.
        assert_eq!(line("a\u{61c}b"), "a\\u{61c}b");
        assert_eq!(text_block("a\u{61c}b", 100).0, "a\\u{61c}b");
        assert!(!cut);
        let (t, cut) = text_block("abcdef", 3);
        assert_eq!((t.as_str(), cut), ("abc", true));
    }
}
