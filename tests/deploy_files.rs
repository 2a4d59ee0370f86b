//! deploy/grafana-dashboard.json and deploy/prometheus-alerts.yml query
//! only metrics the daemon exports (a renamed metric would leave a blank
//! panel or an alert that never fires), and cover what an operator watches.

use std::collections::BTreeSet;
use std::time::Duration;

use malspam_milter::{metrics, Config, Engine, Envelope};

fn read(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// Metric names the daemon's endpoint shows (series names, with the
/// histogram's _bucket/_sum/_count).
fn exported() -> BTreeSet<String> {
    let engine = Engine::new(Config::default()).unwrap();
    let report = engine.scan(
        Envelope::default(),
        b"From: \"taro@legal-holdings.co.jp\" <x@unrelated.example>\r\nSubject: hi\r\n\r\nhello\r\n",
    );
    metrics::observe_report(&report, Duration::from_millis(2));
    metrics::render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// `malspam_milter_*` names used in a query.
fn used(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("malspam_milter_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn the_dashboard_queries_exported_metrics_and_shows_what_matters() {
    let exported = exported();
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana-dashboard.json")).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let mut names = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in used(expr) {
                assert!(
                    exported.contains(&name),
                    "{name} (panel {:?}) is not exported: {exported:?}",
                    panel["title"]
                );
                names.insert(name);
            }
        }
    }
    for needed in [
        "malspam_milter_messages_total",
        "malspam_milter_findings_total",
        "malspam_milter_scan_seconds_bucket",
        "malspam_milter_outbound_accounts_held",
    ] {
        assert!(names.contains(needed), "no panel shows {needed}");
    }
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for topic in ["Verdicts", "Top rules", "Scan time", "held"] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "{topic} in {titles:?}"
        );
    }
}

#[test]
fn the_alert_rules_query_exported_metrics() {
    let exported = exported();
    let rules = read("deploy/prometheus-alerts.yml");
    let exprs: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .collect();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        alerts,
        [
            "MalspamMilterDown",
            "MalspamMilterOutboundAccountHeld",
            "MalspamMilterScanErrors"
        ]
    );
    assert_eq!(exprs.len(), alerts.len());
    for expr in &exprs {
        for name in used(expr) {
            assert!(exported.contains(&name), "{name} is not exported");
        }
    }
    assert!(exprs[0].contains("up{job=\"malspam-milter\"} == 0"));
    assert!(exprs[1].contains("malspam_milter_outbound_accounts_held) > 0"));
    assert!(exprs[2].contains("rule=\"scan.error\""));
}
