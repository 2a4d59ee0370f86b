//! The reviewers' quarantine: the messages the milter held in Postfix's hold
//! queue, each summarised from its X-Malspam-* headers (verdict, score,
//! findings), shown with its structure, released or deleted.
//!
//! Everything printed comes from mail a stranger wrote: [`clean`] escapes
//! control and bidi characters so nothing can drive the reviewer's terminal,
//! and no attachment content is ever printed.

pub mod postfix;
pub mod release;

use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::headers;
use postfix::QueueEntry;

/// `[quarantine]`: where the Postfix whose hold queue we review lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuarantineConfig {
    /// Postfix's config_directory; every Postfix command gets `-c` with it.
    pub postfix_config_dir: String,
    /// The Postfix tools.
    pub postqueue: String,
    pub postcat: String,
    pub postsuper: String,
    pub postconf: String,
    pub postkick: String,
    /// A command prefix (no shell) for postcat, postsuper and postkick when
    /// not running as root, e.g. ["/usr/bin/sudo", "-n"] for the `web`
    /// process (see README for the sudoers lines). Empty: run them directly.
    pub privileged: Vec<String>,
    /// Findings shown per message by `quarantine list` (highest score first).
    pub list_findings: usize,
    /// A message held this fraction of `maximal_queue_lifetime` (or
    /// `bounce_queue_lifetime`) or longer is released with `postsuper -r`,
    /// so that it does not bounce as expired.
    pub requeue_after_fraction: f64,
    /// `host:port` of a milter-free smtpd (see README): when set, release
    /// re-injects the message there with the verdict headers replaced by
    /// `X-Malspam-Released`, then deletes the held copy. Empty: release in
    /// place (the message keeps its verdict headers).
    pub reinject: String,
    /// Seconds to wait for the re-injection smtpd at each step.
    pub reinject_timeout_secs: u64,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            postfix_config_dir: "/etc/postfix".into(),
            postqueue: "/usr/sbin/postqueue".into(),
            postcat: "/usr/sbin/postcat".into(),
            postsuper: "/usr/sbin/postsuper".into(),
            postconf: "/usr/sbin/postconf".into(),
            postkick: "/usr/sbin/postkick".into(),
            privileged: Vec::new(),
            list_findings: 3,
            requeue_after_fraction: 0.5,
            reinject: String::new(),
            reinject_timeout_secs: 30,
        }
    }
}

impl QuarantineConfig {
    /// Invalid values, as (key path, message), for `config check`.
    pub fn problems(&self) -> Vec<([&'static str; 2], String)> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.requeue_after_fraction) {
            out.push((
                ["quarantine", "requeue_after_fraction"],
                "must be between 0.0 and 1.0".to_string(),
            ));
        }
        let r = self.reinject.trim();
        if !r.is_empty() && r.parse::<std::net::SocketAddr>().is_err() {
            out.push((
                ["quarantine", "reinject"],
                format!("expected host:port as IP:port, e.g. \"127.0.0.1:10026\", got {r:?}"),
            ));
        }
        out
    }
}

/// What our headers in a held message say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub verdict: String,
    pub score: String,
    /// `detector.rule (+score): evidence`, one per finding, in header order.
    pub findings: Vec<String>,
}

/// One held message, for `list` and `show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldMessage {
    pub queue_id: String,
    pub arrival_time: u64,
    pub message_size: u64,
    pub sender: String,
    pub recipients: Vec<String>,
    /// Decoded (RFC 2047).
    pub subject: String,
    pub from: String,
    pub verdict: Option<Verdict>,
    /// The milter's verdict was `quarantine`: we held it. Otherwise a
    /// header_checks rule, an admin or another filter did.
    pub held_by_malspam_milter: bool,
}

impl HeldMessage {
    /// Combine the queue entry with the message's header block (postcat -h).
    pub fn new(entry: &QueueEntry, header_block: &[u8]) -> HeldMessage {
        let fields = header_fields(header_block);
        let verdict =
            headers::parse_verdict_headers(fields.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                .map(|(verdict, score, findings)| Verdict {
                    verdict,
                    score,
                    findings,
                });
        // mail-parser decodes RFC 2047 words and address lists for us; the
        // block ends at the first empty line, so give it one.
        let mut block = header_block.to_vec();
        block.extend_from_slice(b"\n\n");
        let parsed = mail_parser::MessageParser::default().parse_headers(&block);
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .unwrap_or_default()
            .to_string();
        let from = parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .map(|a| match (a.name(), a.address()) {
                (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                (None, Some(ad)) => ad.to_string(),
                (Some(n), None) => n.to_string(),
                (None, None) => String::new(),
            })
            .unwrap_or_default();
        let held_by_malspam_milter = verdict
            .as_ref()
            .is_some_and(|v| v.verdict.eq_ignore_ascii_case("quarantine"));
        HeldMessage {
            queue_id: entry.queue_id.clone(),
            arrival_time: entry.arrival_time,
            message_size: entry.message_size,
            sender: entry.sender.clone(),
            recipients: entry.recipients.iter().map(|r| r.address.clone()).collect(),
            subject,
            from,
            verdict,
            held_by_malspam_milter,
        }
    }

    /// The `list` entry: a line with id, age, envelope; then subject,
    /// verdict, score and the `top` highest-scored findings.
    pub fn list_text(&self, now: u64, top: usize) -> String {
        let mut out = format!(
            "{}  {:>6}  {} -> {}\n    Subject: {}\n",
            self.queue_id,
            age(now.saturating_sub(self.arrival_time)),
            clean(&self.sender),
            clean(&self.recipients.join(", ")),
            clean(&self.subject)
        );
        match &self.verdict {
            Some(v) => {
                out.push_str(&format!(
                    "    {}, score {}",
                    clean(&v.verdict),
                    clean(&v.score)
                ));
                if !self.held_by_malspam_milter {
                    out.push_str(" (not held by malspam-milter)");
                }
                out.push('\n');
                for f in top_findings(&v.findings, top) {
                    out.push_str(&format!("      {}\n", clean(&shorten(f, 150))));
                }
                if v.findings.len() > top {
                    out.push_str(&format!("      (+{} more)\n", v.findings.len() - top));
                }
            }
            None => out.push_str("    not held by malspam-milter (no X-Malspam-Verdict)\n"),
        }
        out
    }

    /// The `show` header: envelope, verdict and every finding in full.
    pub fn show_text(&self, now: u64) -> String {
        let mut out = format!(
            "Queue id:   {}\nArrived:    {} ago ({} bytes)\nSender:     {}\nRecipients: {}\nFrom:       {}\nSubject:    {}\n",
            self.queue_id,
            age(now.saturating_sub(self.arrival_time)),
            self.message_size,
            clean(&self.sender),
            clean(&self.recipients.join(", ")),
            clean(&self.from),
            clean(&self.subject)
        );
        match &self.verdict {
            Some(v) => {
                out.push_str(&format!(
                    "Verdict:    {}, score {}{}\nFindings:\n",
                    clean(&v.verdict),
                    clean(&v.score),
                    if self.held_by_malspam_milter {
                        ""
                    } else {
                        " (not held by malspam-milter)"
                    }
                ));
                if v.findings.is_empty() {
                    out.push_str("  (none)\n");
                }
                for f in &v.findings {
                    out.push_str(&format!("  {}\n", clean(f)));
                }
            }
            None => out.push_str("Verdict:    not held by malspam-milter (no X-Malspam-Verdict)\n"),
        }
        out
    }
}

/// The message's structure as the scanner sees it (text parts, attachment
/// tree with detected types and sizes), from the whole queued message
/// (postcat -bh). Never attachment content; every line cleaned.
pub fn structure(message: &[u8], limits: &Limits) -> String {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(limits.scan_timeout_secs);
    let view =
        crate::view::MessageView::build(crate::Envelope::default(), message, limits, deadline);
    view.describe().lines().map(|l| clean(l) + "\n").collect()
}

/// A header block as (name, value) with folding kept as `\n` + the
/// continuation line, the form [`headers::unfold_findings`] reads.
pub fn header_fields(block: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(block);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break; // end of the header block
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push('\n');
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim_start().to_string()));
        }
    }
    out
}

/// The `n` findings with the highest scores, in header order among equals.
fn top_findings(findings: &[String], n: usize) -> Vec<&String> {
    let mut ranked: Vec<(usize, f64)> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| (i, finding_score(f)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked.sort_by_key(|r| r.0);
    ranked.iter().map(|(i, _)| &findings[*i]).collect()
}

/// The score in `detector.rule (+6): ...`; 0 when absent.
fn finding_score(line: &str) -> f64 {
    line.split_once(" (")
        .and_then(|(_, rest)| rest.split_once("):"))
        .and_then(|(n, _)| n.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// How long ago, briefly: 45s, 12m, 3h05m, 2d03h.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn shorten(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

/// Text from a message made safe for a terminal: control characters
/// (C0, DEL, C1: escape sequences, carriage returns, newlines) and the
/// bidi controls that reorder what a reviewer reads are shown as `\u{..}`.
pub use crate::sanitize::escape_controls as clean;

#[cfg(test)]
mod tests {
    use super::postfix::parse_postqueue_json;
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/postfix");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn entries() -> Vec<QueueEntry> {
        parse_postqueue_json(&String::from_utf8(fixture("postqueue-j.jsonl")).unwrap()).unwrap()
    }

    #[test]
    fn summary_from_recorded_postcat_headers() {
        let held = HeldMessage::new(&entries()[0], &fixture("postcat-h.txt"));
        assert_eq!(held.subject, "[SUSPICIOUS] RE: 請求書の送付について");
        assert_eq!(
            held.from,
            "山田 太郎 taro.yamada@legal-holdings.co.jp <info@kansai-unrelated.example>"
        );
        assert!(held.held_by_malspam_milter);
        let v = held.verdict.as_ref().unwrap();
        assert_eq!((v.verdict.as_str(), v.score.as_str()), ("quarantine", "25"));
        let rules: Vec<&str> = v
            .findings
            .iter()
            .map(|f| f.split_once(' ').unwrap().0)
            .collect();
        assert_eq!(
            rules,
            [
                "display_name.embedded_address",
                "encrypted_archive.password_in_body",
                "thread_hijack.fake_reply",
                "thread_hijack.quoted_header_mismatch",
                "thread_hijack.revived_thread"
            ]
        );
        // Folded lines joined back into one finding.
        assert!(v.findings[1].contains("after \"パスワード\" (8*****); 1 of 1 encrypted"));

        let text = held.list_text(1795308472 + 3 * 3600 + 5 * 60, 3);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "687579D8095   3h05m  info@kansai-unrelated.example -> yuki@customer.example"
        );
        assert_eq!(
            lines[1],
            "    Subject: [SUSPICIOUS] RE: 請求書の送付について"
        );
        assert_eq!(lines[2], "    quarantine, score 25");
        // Top three by score: the two +6 findings and the +6 mismatch, in order.
        assert!(lines[3].starts_with("      display_name.embedded_address (+6)"));
        assert!(lines[4].starts_with("      encrypted_archive.password_in_body (+6)"));
        assert!(lines[5].starts_with("      thread_hijack.quoted_header_mismatch (+6)"));
        assert_eq!(lines[6], "      (+2 more)");
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn mail_held_by_someone_else() {
        // Held by a header_checks HOLD rule; our verdict was accept.
        let held = HeldMessage::new(&entries()[1], &fixture("postcat-q-other.txt"));
        assert!(!held.held_by_malspam_milter);
        assert_eq!(held.subject, "日本語 test");
        assert_eq!(held.recipients, ["z@w.example", "o@w.example"]);
        let text = held.list_text(1795308480, 3);
        assert!(
            text.contains("    accept, score 0 (not held by malspam-milter)\n"),
            "{text}"
        );
        // No header of ours at all.
        let bare = HeldMessage::new(&entries()[2], b"Subject: hi\nFrom: <>\n");
        assert_eq!(bare.verdict, None);
        assert!(bare
            .list_text(1795308480, 3)
            .ends_with("    not held by malspam-milter (no X-Malspam-Verdict)\n"));
    }

    #[test]
    fn show_lists_every_finding_and_the_structure_without_content() {
        let held = HeldMessage::new(&entries()[0], &fixture("postcat-h.txt"));
        let text = held.show_text(1795308472 + 30);
        assert!(
            text.contains("Arrived:    30s ago (14671 bytes)\n"),
            "{text}"
        );
        assert_eq!(text.matches("\n  thread_hijack.").count(), 3, "{text}");
        assert!(text.contains("revived_thread (+4): the newest quoted message"));

        let tree = structure(&fixture("postcat-bh.txt"), &Limits::default());
        assert!(tree.contains("請求書_1121.zip [zip,"), "{tree}");
        assert!(
            tree.contains("請求書_1121.zip/請求書_1121.doc [ole2,"),
            "{tree}"
        );
        assert!(tree.contains("decrypted"), "{tree}");
        // Not a line of the base64 attachment, nor the decrypted document.
        assert!(!tree.contains("AAQAAAAAUEsFBg"), "{tree}");
        assert!(!tree.contains("PK"), "{tree}");
        assert!(tree.len() < 2000, "a summary, not content: {tree}");
    }

    #[test]
    fn encoded_findings_are_decoded_for_the_reviewer() {
        let lines = vec![
            "encrypted_archive.password_in_body (+6): 請求書.zip: パスワード abc123".to_string(),
            format!("links.long (+1): {}", "x".repeat(300)),
        ];
        let value = headers::fold_findings(&lines);
        assert!(value.is_ascii(), "{value}");
        let block = format!(
            "Subject: =?UTF-8?B?6KuL5rGC5pu4?=\nX-Malspam-Verdict: quarantine\n\
             X-Malspam-Score: 7\nX-Malspam-Findings: {value}\n"
        );
        let held = HeldMessage::new(&entries()[0], block.as_bytes());
        assert_eq!(held.subject, "請求書");
        assert_eq!(held.verdict.as_ref().unwrap().findings, lines);
        let shown = held.show_text(held.arrival_time);
        assert!(
            shown.contains(
                "  encrypted_archive.password_in_body (+6): 請求書.zip: パスワード abc123\n"
            ),
            "{shown}"
        );
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("x\r\ny\u{9b}"), "x\\u{d}\\u{a}y\\u{9b}");
        assert_eq!(clean("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(clean("請求書 [SUSPICIOUS]"), "請求書 [SUSPICIOUS]");
        // A hostile subject in a header block stays one harmless line.
        let held = HeldMessage::new(
            &entries()[2],
            b"Subject: =?utf-8?q?hi=1B]0;owned=07?=\nX-Malspam-Verdict: quarantine\n",
        );
        let text = held.list_text(1795308480, 3);
        assert!(
            text.contains("Subject: hi\\u{1b}]0;owned\\u{7}\n"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn release_settings_are_checked() {
        let text = "[quarantine]\nrequeue_after_fraction = 1.5\nreinject = \"localhost\"\n";
        let errors = crate::Config::parse(text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("t.toml:2: quarantine.requeue_after_fraction: must be between"),
            "{errors}"
        );
        assert!(
            errors.contains("t.toml:3: quarantine.reinject: expected"),
            "{errors}"
        );
        let ok = "[quarantine]\nrequeue_after_fraction = 0.0\nreinject = \"127.0.0.1:10026\"\n";
        assert!(crate::Config::parse(ok, "t.toml").is_ok());
    }

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(3 * 3600 + 60), "3h01m");
        assert_eq!(age(2 * 86400 + 4 * 3600), "2d04h");
    }
}
