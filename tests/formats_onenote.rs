//! OneNote opener over real files: every OneNote sample of
//! `../shared/malware-dev` yields its embedded payload (a file that is not
//! a picture), named where the section names it.

mod containers_common;

use containers_common::samples;
use malspam_milter::formats::{onenote, Budget, Passwords};

/// A picture or PDF by its first bytes: what a OneNote page shows, never
/// the payload.
fn is_picture(d: &[u8]) -> bool {
    d.starts_with(b"\x89PNG")
        || d.starts_with(b"GIF8")
        || d.starts_with(b"\xFF\xD8\xFF")
        || d.starts_with(b"BM")
        || d.starts_with(b"%PDF")
        || d.starts_with(b"\x01\x00\x00\x00") // EMF
        || d.starts_with(b"\xD7\xCD\xC6\x9A") // WMF
}

#[test]
fn every_onenote_sample_yields_its_payload() {
    let Some(samples) = samples(&["onenote"], "every_onenote_sample_yields_its_payload") else {
        return;
    };
    assert!(!samples.is_empty(), "no OneNote sample in INDEX.tsv");
    let (mut sniffed, mut with_payload, mut named) = (0, 0, 0);
    let mut misses = Vec::new();
    for s in &samples {
        if onenote::sniff(&s.data) {
            sniffed += 1;
        }
        let o = onenote::open(&s.data, &Budget::generous(), Passwords::default());
        let payloads: Vec<_> = o.embedded.iter().filter(|e| !is_picture(&e.data)).collect();
        for e in &payloads {
            eprintln!("{}: {:?}, {} bytes", s.path, e.name, e.data.len());
        }
        if payloads.is_empty() {
            misses.push(s.path.clone());
        } else {
            with_payload += 1;
        }
        if payloads.iter().any(|e| {
            e.name
                .as_deref()
                .is_some_and(|n| !n.starts_with("embedded."))
        }) {
            named += 1;
        }
        assert!(o.indicators.is_empty(), "{}: {:?}", s.path, o.indicators);
    }
    eprintln!(
        "OneNote: {} samples, {sniffed} sniffed, {with_payload} with a non-picture payload, {named} with its name",
        samples.len()
    );
    assert!(misses.is_empty(), "no payload found in {misses:?}");
    // Every payload is named as the user saw it (`Open.cmd`, `Open.Bat`).
    assert_eq!(named, samples.len());
    // One sample is published without its first byte; sniff still knows it.
    assert_eq!(sniffed, samples.len());
}
