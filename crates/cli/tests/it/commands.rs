//! The smaller commands: spec schema, data synth and inspect.

use crate::{repo, stderr, stdout, tradeloom};

#[test]
fn spec_schema_is_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = tradeloom(dir.path(), &["spec", "schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(schema["title"], "RunSpec");
    assert!(schema["properties"]["strategy"].is_object());
}

#[test]
fn synth_is_deterministic_and_inspectable() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    for out in [&a, &b] {
        let o = tradeloom(
            dir.path(),
            &[
                "data",
                "synth",
                "--symbol",
                "SYN",
                "--bars",
                "500",
                "--timeframe",
                "1m",
                "--seed",
                "9",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let out = tradeloom(
        dir.path(),
        &["data", "inspect", a.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["rows"], 500);
}

#[test]
fn inspect_the_shipped_data() {
    let dir = tempfile::tempdir().unwrap();
    let goog = repo().join("examples/data/goog_1d.csv");
    let out = tradeloom(dir.path(), &["data", "inspect", goog.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("2148"), "{text}");
    assert!(text.contains("2004-08-19"), "{text}");
}
