//! `tradeloom drill`: every drill runs against processes of the real binary and passes, each
//! writing its report; `drill list` names them; an unknown name is a usage error.

use serde_json::Value;

use crate::{stderr, stdout, tradeloom};

const NAMES: &[&str] = &[
    "kill_switch",
    "data_stall",
    "worker_crash",
    "llm_outage",
    "store_unavailable",
    "disk_full",
];

#[test]
fn every_drill_passes_and_writes_its_report() {
    let data = tempfile::tempdir().unwrap();
    let out = tradeloom(data.path(), &["drill", "run", "--all"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "drill run --all failed:\n{text}\n{}",
        stderr(&out)
    );
    for name in NAMES {
        let path = data.path().join("drills").join(format!("{name}.json"));
        let report: Value = serde_json::from_slice(
            &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap();
        assert_eq!(report["name"], *name);
        assert_eq!(report["passed"], true, "{report:#}");
        assert!(report["error"].is_null(), "{report:#}");
        let steps = report["steps"].as_array().unwrap();
        assert!(steps.len() >= 3, "{name}: {steps:?}");
        for step in steps {
            assert_eq!(step["passed"], true, "{name}: {step}");
            for field in ["name", "expected", "observed"] {
                assert!(step[field].is_string(), "{name}: {step}");
            }
        }
        for field in ["started_at", "finished_at"] {
            assert!(report[field].is_string(), "{name}: {report}");
        }
        assert!(report["duration_ms"].is_u64());
        assert!(text.contains(name), "the table lists {name}: {text}");
    }
}

#[test]
fn list_names_every_drill_and_an_unknown_name_is_a_usage_error() {
    let data = tempfile::tempdir().unwrap();
    let out = tradeloom(data.path(), &["drill", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, NAMES);

    let out = tradeloom(data.path(), &["drill", "run", "no_such_drill"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown drill `no_such_drill`"), "{err}");
    for name in NAMES {
        assert!(err.contains(name), "the error lists {name}: {err}");
    }
    assert!(
        !data.path().join("drills/no_such_drill.json").exists(),
        "no report for a drill that does not exist"
    );

    let out = tradeloom(data.path(), &["drill", "run"]);
    assert_eq!(out.status.code(), Some(2), "a name or --all is required");
}
