//! The office_macro analysis over every labelled Office file of the shared
//! corpus (../shared/corpus/labels.tsv): every file labelled VBA or XLM must
//! be found with the right kind, no clean file may be, every encrypted one
//! is seen as encrypted, and every file is handled without a panic.
//! Skips loudly when the corpus is absent (a user's checkout has none).

use std::path::Path;
use std::time::Instant;

use malspam_milter::config::Limits;
use malspam_milter::detectors::office_macro::{
    analyze_document, keywords::Class, DocumentReport, OfficeMacroConfig,
};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Vba,
    Xlm,
    /// VBA with auto-exec and write/execute keywords.
    Suspicious,
    /// VBA with auto-exec only.
    AutoexecBenign,
    Clean,
    Encrypted,
    /// No expectation beyond "no panic".
    Any,
}

/// Files whose tool-made label ("clean", by oletools 0.60.2) we checked and
/// disagree with: the macros are there, so we must find them.
const LABEL_WRONG_HAS_MACROS: &[(&str, Expect, &str)] = &[
    (
        "apache-poi/spreadsheet/60405.xls",
        Expect::Xlm,
        "BOUNDSHEET 'Macro1' of type macro sheet and a built-in Auto_Open name",
    ),
    (
        "apache-poi/slideshow/bug55030.ppt",
        Expect::Vba,
        "zlib-compressed ExOleObjStg in 'PowerPoint Document' holding VBA/dir with Module1",
    ),
];

/// Known gaps, listed so they cannot grow silently: labelled with macros,
/// not found.
const KNOWN_MISSES: &[(&str, &str)] = &[(
    "apache-poi/diagram/SimpleMacro.vsd",
    "Apache POI's own test for this file is @Disabled(\"Found 0 macros\") and olevba finds none: \
     Visio 2003 keeps the project inside the VisioDocument stream, which nobody here parses",
)];

fn expectation(category: &str) -> Option<Expect> {
    Some(match category {
        "ole-macro" | "ooxml-macro" | "vba-project-bin" => Expect::Vba,
        "ole-macro-suspicious" | "ooxml-macro-suspicious" => Expect::Suspicious,
        "ole-macro-autoexec-benign" => Expect::AutoexecBenign,
        "xlm-macro" => Expect::Xlm,
        "ole-clean" | "ooxml-clean" | "odf-clean" => Expect::Clean,
        "office-encrypted" => Expect::Encrypted,
        "other-doc" | "vba-signature-bin" => Expect::Any,
        _ => return None,
    })
}

fn check(expect: Expect, r: &DocumentReport) -> Result<(), String> {
    let vba_ok = !r.vba.is_empty();
    let ok = match expect {
        Expect::Vba => vba_ok,
        Expect::Xlm => !r.xlm.is_empty(),
        Expect::Suspicious => vba_ok && r.is_suspicious(),
        Expect::AutoexecBenign => vba_ok && r.has_class(Class::AutoExec) && !r.is_suspicious(),
        Expect::Clean => !r.has_macros(),
        Expect::Encrypted => !r.encryption.is_empty(),
        Expect::Any => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {expect:?}: vba={:?} xlm={:?} enc={:?} errors={:?}",
            r.vba, r.xlm, r.encryption, r.errors
        ))
    }
}

#[test]
fn labelled_office_files() {
    let labels = Path::new(CORPUS).join("labels.tsv");
    let Ok(text) = std::fs::read_to_string(&labels) else {
        eprintln!(
            "SKIPPED office_macro corpus walk: {} not found (the shared corpus is not in this checkout)",
            labels.display()
        );
        return;
    };
    let settings = OfficeMacroConfig::default();
    let limits = Limits::default();
    let mut checked = 0usize;
    let mut failures = Vec::new();
    let mut with_errors = Vec::new();
    let mut benign_suspicious = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let started = Instant::now();
    for line in text.lines().skip(1) {
        let mut cols = line.split('\t');
        let (Some(path), Some(category)) = (cols.next(), cols.next()) else {
            continue;
        };
        let Some(expect) = expectation(category) else {
            continue;
        };
        let data = std::fs::read(Path::new(CORPUS).join(path))
            .unwrap_or_else(|e| panic!("{path}: listed in labels.tsv but unreadable: {e}"));
        let report = analyze_document(&data, &settings, &limits);
        checked += 1;
        let expect = match LABEL_WRONG_HAS_MACROS.iter().find(|(p, _, _)| *p == path) {
            Some((_, e, _)) => *e,
            None => expect,
        };
        if KNOWN_MISSES.iter().any(|(p, _)| *p == path) {
            assert!(
                !report.has_macros(),
                "{path} is listed as a known miss but is now found: remove it from KNOWN_MISSES"
            );
            continue;
        }
        *counts.entry(category.to_string()).or_default() += 1;
        if let Err(why) = check(expect, &report) {
            failures.push(format!("{path} ({category}): {why}"));
        }
        if !report.errors.is_empty() {
            with_errors.push(format!("{path}: {:?}", report.errors));
        }
        if expect == Expect::Vba && report.is_suspicious() {
            let words: Vec<String> = report
                .vba
                .iter()
                .flat_map(|v| {
                    v.keywords
                        .iter()
                        .map(|m| format!("{} ({})", m.shown, m.class.letter()))
                })
                .collect();
            benign_suspicious.push(format!("{path}: {}", words.join(", ")));
        }
    }
    let elapsed = started.elapsed();
    eprintln!("office_macro corpus: {checked} files in {elapsed:?}: {counts:?}");
    eprintln!(
        "files with parse errors (reported as scan.error): {}",
        with_errors.len()
    );
    for e in &with_errors {
        eprintln!("  {e}");
    }
    eprintln!(
        "VBA-labelled files graded suspicious (mraptor-style A + W/X): {}",
        benign_suspicious.len()
    );
    for p in &benign_suspicious {
        eprintln!("  {p}");
    }
    assert!(
        failures.is_empty(),
        "{} misses / false positives:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // labels.tsv has 605 rows in the categories above; a shrinking corpus
    // or a broken label parser must not pass silently.
    assert_eq!(checked, 605, "{counts:?}");
}

/// SpamAssassin's olevbmacro test mails (t/olevbmacro.t), through the engine.
#[test]
fn spamassassin_olevbmacro_mails() {
    use malspam_milter::{Config, Engine, Envelope, Verdict};
    let dir = Path::new(CORPUS).join("spamassassin-olevbmacro");
    if !dir.exists() {
        eprintln!(
            "SKIPPED SpamAssassin olevbmacro mails: {} not found",
            dir.display()
        );
        return;
    }
    let engine = Engine::new(Config::default()).unwrap();
    let cases: &[(&str, &[&str], Verdict)] = &[
        ("macro.eml", &["office_macro.present"], Verdict::Tag),
        (
            "malicemacro.eml",
            &["office_macro.present", "office_macro.autoexec"],
            Verdict::Tag,
        ),
        (
            "renamedmacro.eml",
            &["office_macro.present", "office_macro.renamed"],
            Verdict::Quarantine,
        ),
        // "Doc password is password": the document is opened with the
        // password from the body and found clean: the password beside an
        // encrypted document tags it, nothing more.
        ("encrypted.eml", &[], Verdict::Tag),
        ("nomacro.eml", &[], Verdict::Accept),
        ("goodcsv.eml", &[], Verdict::Accept),
        ("target_uri.eml", &[], Verdict::Accept),
    ];
    for (file, rules, verdict) in cases {
        let raw = std::fs::read(dir.join(file)).unwrap();
        let report = engine.scan(Envelope::default(), &raw);
        let found: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.detector == "office_macro" || f.detector == "scan")
            .map(|f| f.full_rule())
            .collect();
        assert_eq!(found, *rules, "{file}: {:?}", report.findings);
        assert_eq!(report.verdict, *verdict, "{file}");
    }
}
