//! RTF over real files: every RTF exploit sample of ../shared/malware-dev
//! (chosen by INDEX.tsv's category column) must show its exploit object —
//! an Equation Editor object, an OLE Package, or an OLE2Link URL
//! (CVE-2017-0199) — decoded into an embedded compound file; honest RTF
//! from ../shared/corpus must show nothing.

use malspam_milter::formats::{rtf, Budget, IndicatorKind, Opened, Passwords};

mod fmt_rtf_samples;
use fmt_rtf_samples::{samples, shared, summary};

fn has(o: &Opened, kind: IndicatorKind) -> bool {
    o.indicators.iter().any(|i| i.kind == kind)
}

#[test]
fn every_rtf_exploit_sample_shows_its_object() {
    let Some(samples) = samples(|_, category| category == "rtf") else {
        return;
    };
    assert!(!samples.is_empty(), "INDEX.tsv lists no rtf sample");
    let mut missed = Vec::new();
    let (mut equation, mut package, mut link, mut embedded) = (0, 0, 0, 0);
    for sample in &samples {
        let (name, data) = (&sample.path, &sample.data);
        assert!(rtf::sniff(data), "{name} does not sniff as RTF");
        let o = rtf::open(data, &Budget::generous(), Passwords::default());
        eprintln!("{name}: {}", summary(&o));
        equation += usize::from(has(&o, IndicatorKind::EquationEditor));
        package += usize::from(has(&o, IndicatorKind::OlePackage));
        link += usize::from(has(&o, IndicatorKind::ExternalReference));
        // The exploit object comes out as a compound file to scan again.
        let cfb = o
            .embedded
            .iter()
            .any(|e| e.data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]));
        embedded += usize::from(cfb);
        let exploit = has(&o, IndicatorKind::EquationEditor)
            || has(&o, IndicatorKind::OlePackage)
            || has(&o, IndicatorKind::ExternalReference);
        if !exploit || !cfb {
            missed.push(name.clone());
        }
    }
    eprintln!(
        "{} RTF samples: {equation} Equation Editor, {package} OLE Package, {link} OLE2Link URL, {embedded} with an embedded compound file",
        samples.len()
    );
    assert!(missed.is_empty(), "no exploit object found in {missed:?}");
}

#[test]
fn honest_rtf_shows_nothing_dangerous() {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let spec = shared("corpus/oletools/msodde/RTF-Spec-1.7.rtf");
    if spec.exists() {
        files.push(("RTF-Spec-1.7.rtf".into(), std::fs::read(&spec).unwrap()));
    }
    // A Word RTF attachment in SpamAssassin's ham.
    let mail = shared("corpus/spamassassin-tdata/nice/004");
    if mail.exists() {
        let raw = std::fs::read(&mail).unwrap();
        let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
        for part in message.attachments() {
            let body = part.contents();
            if rtf::sniff(body) {
                files.push(("nice/004 attachment".into(), body.to_vec()));
            }
        }
    }
    if files.is_empty() {
        if std::env::var_os("CI").is_some() {
            panic!("../shared/corpus is absent in CI");
        }
        eprintln!("SKIP: ../shared/corpus absent; honest RTF not checked");
        return;
    }
    for (name, data) in &files {
        assert!(rtf::sniff(data), "{name}");
        let o = rtf::open(data, &Budget::generous(), Passwords::default());
        eprintln!("{name}: {}", summary(&o));
        assert!(o.indicators.is_empty(), "{name}: {}", summary(&o));
    }
    assert!(files.len() >= 2, "both honest RTF files were found");
}
