//! RTF over real files: every RTF exploit sample of ../shared/malware-dev
//! (chosen by INDEX.tsv's category column) must show its exploit object —
//! an Equation Editor object, an OLE Package, or an OLE2Link URL
//! (CVE-2017-0199) — decoded into an embedded compound file; honest RTF
//! from ../shared/corpus must show nothing.

use std::io::Read;
use std::path::{Path, PathBuf};

use malspam_milter::formats::{rtf, Budget, IndicatorKind, Opened, Passwords};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

/// The samples of the given INDEX.tsv categories, read in memory from the
/// AES zip; `None` (after saying why) when the zip is absent outside CI.
fn samples(categories: &[&str]) -> Option<Vec<(String, Vec<u8>)>> {
    let zip_path = shared("malware-dev/samples.zip");
    let index_path = shared("malware-dev/INDEX.tsv");
    if !zip_path.exists() || !index_path.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{} is absent in CI", zip_path.display());
        }
        eprintln!(
            "SKIP: {} absent; malware samples not checked",
            zip_path.display()
        );
        return None;
    }
    let index = std::fs::read_to_string(&index_path).unwrap();
    let mut lines = index.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path_col, cat_col) = (col("path"), col("category"));
    let wanted: Vec<String> = lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| categories.contains(&f[cat_col]))
        .map(|f| f[path_col].to_string())
        .collect();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut out = Vec::new();
    for name in wanted {
        let mut entry = archive
            .by_name_decrypt(&name, b"infected")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push((name, data));
    }
    Some(out)
}

fn has(o: &Opened, kind: IndicatorKind) -> bool {
    o.indicators.iter().any(|i| i.kind == kind)
}

fn summary(o: &Opened) -> String {
    let mut s: Vec<String> = o
        .indicators
        .iter()
        .map(|i| format!("{:?}: {}", i.kind, i.detail))
        .collect();
    s.push(format!("{} embedded", o.embedded.len()));
    s.extend(o.limits.iter().map(|l| format!("limit: {l}")));
    s.join(" | ")
}

#[test]
fn every_rtf_exploit_sample_shows_its_object() {
    let Some(samples) = samples(&["rtf"]) else {
        return;
    };
    assert!(!samples.is_empty(), "INDEX.tsv lists no rtf sample");
    let mut missed = Vec::new();
    let (mut equation, mut package, mut link, mut embedded) = (0, 0, 0, 0);
    for (name, data) in &samples {
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
