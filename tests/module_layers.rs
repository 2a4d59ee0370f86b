//! The layers of the house, checked on the source: no module imports one
//! above it. The scan flows view → detectors → policy → engine (`scan`);
//! the store sits beside, importing no detector, no policy, no engine;
//! `effects` (what a scan proposes to write) sits between the store and
//! the detectors.
//! A cycle among these would mean a newcomer cannot read one without the
//! others; this test fails on the first edge that makes one.
//!
//! Edges are the `crate::<module>` paths in each module's files, test code
//! (`#[cfg(test)]` blocks and `tests.rs` files) left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules of the scan core, lowest first. `password` and `subject` are
/// parts of the view (`crate::password` re-exports `view::password`).
const CORE: &[&str] = &["view", "store", "effects", "detectors", "policy", "scan"];

fn module_of(name: &str) -> &str {
    match name {
        "password" => "view",
        "detector" => "detectors",
        other => other,
    }
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            let from = module_of(&top).to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let to = module_of(&name).to_string();
                if to != from {
                    out.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    out
}

#[test]
fn no_core_module_imports_one_above_it() {
    let edges = edges();
    let rank = |m: &str| CORE.iter().position(|c| *c == m);
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        let Some(rf) = rank(from) else { continue };
        for to in tos {
            let Some(rt) = rank(to) else { continue };
            // The store sits beside detectors and policy: it may read the
            // view, nothing above.
            let allowed = match from.as_str() {
                "store" => to == "view",
                _ => rt < rf && !(to == "store" && from == "view"),
            };
            if !allowed {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:?}");
}

#[test]
fn the_check_sees_real_edges() {
    // Guard against a parser that finds nothing: the engine uses them all.
    let edges = edges();
    let scan = edges.get("scan").expect("scan imports");
    for m in ["view", "store", "detectors", "policy"] {
        assert!(scan.contains(m), "scan -> {m} not seen: {scan:?}");
    }
}
