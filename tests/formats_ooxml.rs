//! OOXML over real files. Remote-template / external-object samples of
//! ../shared/malware-dev (INDEX.tsv category) must show the external
//! reference oletools found; every OOXML sample opens without a panic and
//! its embedded objects come out; honest OOXML of ../shared/corpus shows no
//! external reference, Equation Editor or OLE Package — except oletools'
//! own external-link test files, built to carry exactly such a link.

use malspam_milter::formats::{ole_objects, ooxml, Budget, IndicatorKind, Passwords};

mod fmt_rtf_samples;
use fmt_rtf_samples::{corpus, samples, summary};

#[test]
fn remote_template_samples_show_their_target() {
    let Some(samples) = samples(|file_type, _| file_type.contains("OOXML")) else {
        return;
    };
    let mut external = 0;
    let mut embedded = 0;
    for s in &samples {
        assert!(ooxml::sniff(&s.data), "{} does not sniff as OOXML", s.path);
        let o = ooxml::open(&s.data, &Budget::generous(), Passwords::default());
        eprintln!("{} [{}]: {}", s.path, s.category, summary(&o));
        embedded += o.embedded.len();
        if s.category != "ooxml-external-template/object" {
            continue;
        }
        external += 1;
        // oletools wrote what it found as "external=<type>:<target>".
        let expected: Vec<String> = s
            .notes
            .split_whitespace()
            .filter_map(|n| n.strip_prefix("external="))
            .map(|n| n.replacen(':', ": ", 1))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: INDEX.tsv names no target",
            s.path
        );
        for e in expected {
            assert!(
                o.indicators
                    .iter()
                    .any(|i| i.kind == IndicatorKind::ExternalReference && i.detail == e),
                "{}: expected {e}, got {}",
                s.path,
                summary(&o)
            );
        }
    }
    assert!(external >= 1, "INDEX.tsv lists no remote-template sample");
    eprintln!(
        "{} OOXML samples, {external} remote-template/object samples all found, {embedded} embedded parts",
        samples.len()
    );
}

#[test]
fn samples_with_embedded_objects_give_them_up() {
    let Some(samples) = samples(|_, category| category == "ooxml-nomacro") else {
        return;
    };
    for s in &samples {
        let o = ooxml::open(&s.data, &Budget::generous(), Passwords::default());
        let mut inner = Vec::new();
        for e in &o.embedded {
            if ole_objects::sniff(&e.data) {
                let i = ole_objects::open(&e.data, &Budget::generous(), Passwords::default());
                // An embedded compound file is an object of some kind.
                assert!(!i.indicators.is_empty(), "{}: {}", s.path, summary(&i));
                inner.push(summary(&i));
            }
        }
        eprintln!("{}: {} / inside: {inner:?}", s.path, summary(&o));
        // oletools counted embedded objects ("embedded-objects=N").
        assert!(s.notes.contains("embedded-objects="), "{}", s.path);
        assert!(!o.embedded.is_empty(), "{}: {}", s.path, summary(&o));
    }
}

#[test]
fn honest_ooxml_shows_nothing_dangerous() {
    let Some(files) = corpus(&["ooxml-clean", "ooxml-macro"]) else {
        return;
    };
    assert!(files.len() > 100, "only {} honest OOXML files", files.len());
    let mut opened = 0;
    for (path, data) in &files {
        if !ooxml::sniff(data) {
            continue;
        }
        opened += 1;
        let o = ooxml::open(data, &Budget::generous(), Passwords::default());
        let dangerous: Vec<_> = o
            .indicators
            .iter()
            .filter(|i| {
                matches!(
                    i.kind,
                    IndicatorKind::ExternalReference
                        | IndicatorKind::EquationEditor
                        | IndicatorKind::OlePackage
                )
            })
            .collect();
        if path.contains("oleobj/external_link/") {
            // oletools' test files for external OLE links: the link must
            // be seen (oletools' own test asserts it), and nothing else.
            assert!(
                !dangerous.is_empty()
                    && dangerous
                        .iter()
                        .all(|i| i.kind == IndicatorKind::ExternalReference
                            && i.detail
                                .starts_with("oleObject: https://raw.githubusercontent.com/")),
                "{path}: {}",
                summary(&o)
            );
            continue;
        }
        assert!(dangerous.is_empty(), "{path}: {}", summary(&o));
    }
    eprintln!("{opened} honest OOXML packages opened, none dangerous");
}
