//! Embedded objects in OLE compound files, over real files: the compound
//! files that RTF exploit samples of ../shared/malware-dev carry must show
//! their exploit (Equation Editor, OLE Package, OLE2Link URL); every OLE
//! sample opens without a panic; honest .doc/.xls/.ppt of
//! ../shared/corpus show no external link, no exploit-shaped Equation
//! Editor object and no OLE Package of a file that runs on double-click.
//! Honest documents do carry such objects: old equations (Equation.3, as
//! in POI's 60460.xls) and packaged pictures; what they hold decides.

use std::collections::BTreeMap;

use malspam_milter::formats::{ole_objects, rtf, Budget, IndicatorKind, Passwords};

mod fmt_rtf_samples;
use fmt_rtf_samples::{corpus, samples, summary};

const DANGEROUS: [IndicatorKind; 3] = [
    IndicatorKind::EquationEditor,
    IndicatorKind::OlePackage,
    IndicatorKind::ExternalReference,
];

#[test]
fn compound_files_from_rtf_exploits_show_the_exploit() {
    let Some(samples) = samples(|_, category| category == "rtf") else {
        return;
    };
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for s in &samples {
        let outer = rtf::open(&s.data, &Budget::generous(), Passwords::default());
        let mut found = false;
        for e in outer
            .embedded
            .iter()
            .filter(|e| ole_objects::sniff(&e.data))
        {
            let o = ole_objects::open(&e.data, &Budget::generous(), Passwords::default());
            eprintln!("{}: {}", s.path, summary(&o));
            for i in &o.indicators {
                *per_kind.entry(format!("{:?}", i.kind)).or_default() += 1;
            }
            found |= o.indicators.iter().any(|i| DANGEROUS.contains(&i.kind));
        }
        assert!(found, "{}: no exploit in its compound files", s.path);
    }
    eprintln!(
        "{} RTF samples' compound files: {per_kind:?}",
        samples.len()
    );
}

#[test]
fn every_ole_sample_opens() {
    let Some(samples) =
        samples(|file_type, _| file_type.contains("OLE/CFB") || file_type.starts_with("ole "))
    else {
        return;
    };
    assert!(!samples.is_empty());
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for s in &samples {
        assert!(ole_objects::sniff(&s.data), "{}", s.path);
        let o = ole_objects::open(&s.data, &Budget::generous(), Passwords::default());
        if !o.is_empty() {
            eprintln!("{} [{}]: {}", s.path, s.category, summary(&o));
        }
        for i in &o.indicators {
            *per_kind.entry(format!("{:?}", i.kind)).or_default() += 1;
        }
    }
    eprintln!("{} OLE samples: {per_kind:?}", samples.len());
}

/// The packaged file's name (the detail's first word) has an extension of
/// a file Windows runs on double-click.
fn runs_on_double_click(detail: &str) -> bool {
    const RUNS: &[&str] = &[
        "lnk", "hta", "js", "jse", "vbs", "vbe", "wsf", "wsh", "bat", "cmd", "ps1", "scr", "exe",
        "dll", "cpl", "msi", "msix", "appx", "chm", "xll", "iqy", "slk", "url", "sct", "pif",
        "com",
    ];
    let name = detail.split(" (").next().unwrap_or(detail);
    let name = name.split(" from ").next().unwrap_or(name);
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| RUNS.contains(&ext.trim().to_ascii_lowercase().as_str()))
}

#[test]
fn honest_ole_files_show_nothing_dangerous() {
    let Some(files) = corpus(&["ole-clean", "ole-macro", "xlm-macro"]) else {
        return;
    };
    let mut opened = 0;
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (path, data) in &files {
        if !ole_objects::sniff(data) {
            continue;
        }
        opened += 1;
        let o = ole_objects::open(data, &Budget::generous(), Passwords::default());
        for i in &o.indicators {
            *per_kind.entry(format!("{:?}", i.kind)).or_default() += 1;
        }
        if !o.indicators.is_empty() {
            eprintln!("{path}: {}", summary(&o));
        }
        let dangerous = o.indicators.iter().any(|i| match i.kind {
            IndicatorKind::OlePackage => runs_on_double_click(&i.detail),
            // An equation is a fact; an overflowing one is the exploit.
            IndicatorKind::EquationEditor => false,
            IndicatorKind::Malformed => true,
            kind => DANGEROUS.contains(&kind),
        });
        if dangerous && path.starts_with("oletools/oleobj/") {
            // oletools' test files for oleobj, built to package a .lnk or
            // a link to calc.exe: the package is reported by its file.
            assert!(
                o.indicators
                    .iter()
                    .any(|i| i.kind == IndicatorKind::OlePackage && runs_on_double_click(&i.detail)),
                "{path}: {}",
                summary(&o)
            );
            continue;
        }
        assert!(!dangerous, "{path}: {}", summary(&o));
    }
    assert!(opened > 100, "only {opened} honest OLE files");
    eprintln!("{opened} honest OLE files: {per_kind:?}");
}
