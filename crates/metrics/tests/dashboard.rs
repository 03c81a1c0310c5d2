//! The Grafana dashboard only queries metrics tradeloom exports (`names::ALL`).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use tradeloom_metrics::names::series_names;

/// Every identifier of a PromQL expression that names a tradeloom series.
fn tradeloom_series(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("tradeloom_") {
        let preceded = rest[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !preceded {
            found.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn every_dashboard_query_uses_exported_metrics() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/grafana/tradeloom.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let exported = series_names();
    let mut exprs = Vec::new();
    // Grafana dashboard JSON: panels[].targets[].expr (no nested rows here).
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"expr\": \"") {
        let tail = &rest[i + 9..];
        let end = tail.find('"').unwrap();
        exprs.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    assert!(
        exprs.len() >= 8,
        "{} queries found in {}",
        exprs.len(),
        path.display()
    );
    for expr in &exprs {
        let used = tradeloom_series(expr);
        assert!(!used.is_empty(), "query `{expr}` uses no tradeloom metric");
        for name in used {
            assert!(
                exported.contains(&name),
                "query `{expr}` uses `{name}`, which tradeloom does not export"
            );
        }
    }
    assert_eq!(
        tradeloom_series("rate(tradeloom_x_total[5m]) / my_tradeloom_y"),
        vec!["tradeloom_x_total"]
    );
}
