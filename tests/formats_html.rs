//! HTML opener over real files: the HTA/HTML samples of
//! `../shared/malware-dev` yield script execution or smuggling; every HTML
//! part of the honest mail in `../shared/corpus` yields nothing.

mod containers_common;

use containers_common::{corpus_files, present, samples, shared};
use mail_parser::{MessageParser, MimeHeaders};
use malspam_milter::formats::{html, Budget, IndicatorKind, Passwords};

#[test]
fn every_html_sample_runs_or_smuggles() {
    let Some(samples) = samples(&["html"], "every_html_sample_runs_or_smuggles") else {
        return;
    };
    assert!(!samples.is_empty(), "no HTML sample in INDEX.tsv");
    let mut flagged = 0;
    for s in &samples {
        assert!(html::sniff(&s.data), "{}: not sniffed as HTML", s.path);
        let o = html::open(&s.data, &Budget::generous(), Passwords::default());
        eprintln!(
            "{}: {:?}, {} embedded, limits {:?}",
            s.path,
            o.indicators,
            o.embedded.len(),
            o.limits
        );
        if o.indicators.iter().any(|i| {
            matches!(
                i.kind,
                IndicatorKind::ScriptExecution | IndicatorKind::HtmlSmuggling
            )
        }) {
            flagged += 1;
        }
    }
    eprintln!("HTML/HTA: {} samples, {flagged} flagged", samples.len());
    assert_eq!(flagged, samples.len());
}

/// Every text/html part (body or attachment) of every message under the
/// honest mail folders of the corpus.
#[test]
fn honest_html_mail_gives_no_indicator() {
    let root = shared("corpus");
    if !present(&root, "honest_html_mail_gives_no_indicator") {
        return;
    }
    let mut parts = 0;
    let mut sniffed = 0;
    let mut noisy = Vec::new();
    for dir in [
        "rspamd-messages",
        "spamassassin-tdata",
        "mail-parser",
        "mikel-mail",
        "linux-man-list",
    ] {
        for path in corpus_files(dir) {
            let Ok(raw) = std::fs::read(&path) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "json") {
                continue;
            }
            // mail-parser 0.11 panics on a few of its own malformed cases;
            // those messages have no HTML to test anyway.
            let parsed = std::panic::catch_unwind(|| {
                MessageParser::default().parse(&raw).map(|m| {
                    m.parts
                        .iter()
                        .filter(|part| {
                            part.content_type().is_some_and(|ct| {
                                ct.ctype().eq_ignore_ascii_case("text")
                                    && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("html"))
                            })
                        })
                        .map(|part| part.contents().to_vec())
                        .collect::<Vec<_>>()
                })
            });
            let Ok(Some(html_parts)) = parsed else {
                continue;
            };
            for body in &html_parts {
                parts += 1;
                if html::sniff(body) {
                    sniffed += 1;
                }
                let o = html::open(body, &Budget::generous(), Passwords::default());
                if !o.indicators.is_empty() || !o.embedded.is_empty() {
                    noisy.push(format!("{}: {:?}", path.display(), o.indicators));
                }
            }
        }
    }
    eprintln!(
        "honest HTML parts: {parts} ({sniffed} sniffed as HTML), {} with an indicator",
        noisy.len()
    );
    assert!(parts > 50, "too few HTML parts found ({parts})");
    assert!(noisy.is_empty(), "{noisy:#?}");
}
