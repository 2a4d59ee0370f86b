//! Shortcut opener over real files: every LNK sample of
//! `../shared/malware-dev` yields a command line that runs a command
//! interpreter, which is what a reviewer must see.

mod containers_common;

use containers_common::samples;
use malspam_milter::formats::{lnk, Budget, IndicatorKind, Passwords};

/// The programs malspam shortcuts start (issue 13's list).
const INTERPRETERS: &[&str] = &[
    "cmd",
    "powershell",
    "mshta",
    "wscript",
    "cscript",
    "rundll32",
    "regsvr32",
    "msiexec",
    "curl",
    "bitsadmin",
];

#[test]
fn every_lnk_sample_names_its_interpreter() {
    let Some(samples) = samples(&["lnk"], "every_lnk_sample_names_its_interpreter") else {
        return;
    };
    assert!(!samples.is_empty(), "no LNK sample in INDEX.tsv");
    let mut with_interpreter = 0;
    for s in &samples {
        assert!(lnk::sniff(&s.data), "{}: not sniffed as a shortcut", s.path);
        let o = lnk::open(&s.data, &Budget::generous(), Passwords::default());
        eprintln!(
            "{}: {:?} limits {:?} embedded {}",
            s.path,
            o.indicators,
            o.limits,
            o.embedded.len()
        );
        let cmd: Vec<_> = o
            .indicators
            .iter()
            .filter(|i| i.kind == IndicatorKind::ShortcutCommand)
            .collect();
        assert_eq!(cmd.len(), 1, "{}: {:?}", s.path, o.indicators);
        let lower = cmd[0].detail.to_lowercase();
        if INTERPRETERS.iter().any(|p| lower.contains(p)) {
            with_interpreter += 1;
        }
    }
    eprintln!(
        "LNK: {} samples, {with_interpreter} run an interpreter",
        samples.len()
    );
    assert_eq!(with_interpreter, samples.len());
}
