//! Every bad input gets a one-line error naming the file and place, a non-zero exit, and never
//! a run folder marked completed.

use std::path::Path;

use crate::{repo, simple_spec, stderr, stdout, tradeloom, write_spec};

fn runs_in(data_dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("runs")) else {
        return Vec::new();
    };
    entries
        .map(|e| {
            let p = e.unwrap().path().join("metadata.json");
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        })
        .collect()
}

/// Runs a spec that must be rejected before anything is written.
fn rejected(body: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "spec.yaml", body);
    let out = tradeloom(dir.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains(expect), "expected `{expect}` in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        runs_in(dir.path()).is_empty(),
        "no run folder for a rejected spec"
    );
}

fn goog() -> std::path::PathBuf {
    repo().join("examples/data/goog_1d.csv")
}

#[test]
fn missing_spec_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = tradeloom(dir.path(), &["run", "no/such/spec.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no/such/spec.yaml: cannot read the spec"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_data_file() {
    let body = simple_spec(Path::new("/nonexistent/goog.csv"), "next_open");
    rejected(&body, "/nonexistent/goog.csv");
}

#[test]
fn unknown_yaml_field_has_line_and_column() {
    let body = simple_spec(&goog(), "next_open") + "colour: blue\n";
    rejected(&body, "spec.yaml:8:1: unknown field `colour`");
}

#[test]
fn unknown_strategy_and_parameter() {
    let body = simple_spec(&goog(), "next_open").replace("sma_cross", "golden_goose");
    rejected(&body, "unknown variant `golden_goose`, expected one of");
    let body = simple_spec(&goog(), "next_open").replace("fast: 10", "fastest: 10");
    rejected(&body, "unknown field `fastest`");
    let body = simple_spec(&goog(), "next_open").replace("next_open", "close");
    rejected(&body, "expected `bar_close` or `next_open`");
}

#[test]
fn negative_cash_and_bad_precision() {
    let body =
        simple_spec(&goog(), "next_open").replace("initial_cash: 100000", "initial_cash: -100");
    rejected(
        &body,
        "spec.yaml:7: account.initial_cash: -100 must be positive",
    );
    let body =
        simple_spec(&goog(), "next_open").replace("price_precision: 2", "price_precision: 42");
    rejected(&body, "price_precision 42 is above the maximum 9");
}

/// Data errors found while streaming: the run folder exists, marked failed with the error.
fn failed_run(csv: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bars.csv");
    std::fs::write(&data, csv).unwrap();
    let spec = write_spec(dir.path(), "spec.yaml", &simple_spec(&data, "next_open"));
    let out = tradeloom(dir.path(), &["run", spec.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(expect), "expected `{expect}` in: {err}");
    for meta in runs_in(dir.path()) {
        assert_eq!(meta["status"], "failed", "{meta}");
        assert!(meta["error"].as_str().unwrap().contains(expect), "{meta}");
    }
}

fn bars(n: usize) -> String {
    let mut s = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..n {
        let p = 100 + (i % 7);
        s.push_str(&format!(
            "2024-01-{:02},{p},{},{},{p},1000\n",
            i + 1,
            p + 1,
            p - 1
        ));
    }
    s
}

#[test]
fn malformed_row_names_file_and_line() {
    let mut csv = bars(25);
    csv.push_str("2024-01-26,101,oops,99,100,1000\n");
    failed_run(&csv, "bars.csv:27");
}

#[test]
fn non_monotonic_timestamps_name_the_line() {
    let mut csv = bars(25);
    csv.push_str("2024-01-03,101,102,99,100,1000\n");
    failed_run(&csv, "bars.csv:27");
}

#[test]
fn too_precise_prices_are_a_precision_error() {
    let mut csv = bars(3);
    csv.push_str("2024-01-04,101.123,102,99,100,1000\n");
    failed_run(&csv, "bars.csv:5");
}

#[test]
fn validate_reports_the_same_errors_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let good = repo().join("examples/specs/goog_sma_cross.yaml");
    let out = tradeloom(dir.path(), &["spec", "validate", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spec = write_spec(
        dir.path(),
        "s.yaml",
        &(simple_spec(&goog(), "next_open") + "oops: 1\n"),
    );
    let out = tradeloom(dir.path(), &["spec", "validate", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("s.yaml:8:1: unknown field `oops`"),
        "{}",
        stderr(&out)
    );
}
