//! `tradeloom killswitch`: engaged, it stops every order of `tradeloom run`; released, orders
//! flow again; its state and status survive across processes.

use crate::{repo, run_json, stderr, stdout, tradeloom};

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_engaged_global_kill_switch_refuses_every_order_of_a_run_until_released() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");

    let out = tradeloom(
        data.path(),
        &[
            "killswitch",
            "engage",
            "--reason",
            "exchange outage drill",
            "--by",
            "ops",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let (json, dir) = run_json(data.path(), &spec);
    assert_eq!(json["status"], "completed");
    let fills = std::fs::read_to_string(dir.join("fills.csv")).unwrap();
    assert_eq!(fills.lines().count(), 1, "only the header: {fills}");
    let journal = lines(&dir.join("journal.jsonl"));
    let engaged: Vec<_> = journal
        .iter()
        .filter(|l| l["event"] == "kill_switch_engaged")
        .collect();
    assert_eq!(engaged.len(), 1);
    assert_eq!(engaged[0]["reason"], "operator");
    let submitted = journal
        .iter()
        .filter(|l| l["event"] == "order_submitted")
        .count();
    let refused: Vec<_> = journal
        .iter()
        .filter(|l| l["event"] == "order_rejected")
        .collect();
    assert!(submitted > 0, "the strategy tried to trade");
    assert_eq!(refused.len(), submitted, "every order refused");
    for r in &refused {
        assert_eq!(r["code"], "risk.kill_switch");
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.contains("global kill switch engaged by ops")
                && reason.contains("exchange outage drill"),
            "{reason}"
        );
    }
    assert!(!journal.iter().any(|l| l["event"] == "order_filled"));

    let out = tradeloom(
        data.path(),
        &[
            "killswitch",
            "release",
            "--reason",
            "drill over",
            "--by",
            "ops",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (_, dir) = run_json(data.path(), &spec);
    let fills = std::fs::read_to_string(dir.join("fills.csv")).unwrap();
    assert!(fills.lines().count() > 1, "orders fill again after release");
    let journal = lines(&dir.join("journal.jsonl"));
    assert!(!journal.iter().any(|l| l["code"] == "risk.kill_switch"));

    let events = lines(&data.path().join("killswitch/global.events.jsonl"));
    let actions: Vec<_> = events.iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, ["engage", "release"]);
}

#[test]
fn status_json_has_the_contract_shape_for_every_scope() {
    let data = tempfile::tempdir().unwrap();
    let status = |data: &std::path::Path| -> serde_json::Value {
        let out = tradeloom(data, &["killswitch", "status", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(stdout(&out).trim()).unwrap()
    };
    let empty = status(data.path());
    assert_eq!(empty["global"]["engaged"], false);
    assert_eq!(empty["runs"], serde_json::json!({}));
    assert_eq!(empty["jobs"], serde_json::json!({}));

    for args in [
        &[
            "killswitch",
            "engage",
            "--reason",
            "bad fills",
            "--run",
            "r-1",
            "--flatten",
        ][..],
        &[
            "killswitch",
            "engage",
            "--reason",
            "llm loop",
            "--job",
            "j-1",
        ][..],
        &["killswitch", "engage", "--reason", "all stop"][..],
    ] {
        let out = tradeloom(data.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let s = status(data.path());
    assert_eq!(s["global"]["engaged"], true);
    assert_eq!(s["global"]["reason"], "all stop");
    assert_eq!(s["runs"]["r-1"]["engaged"], true);
    assert_eq!(s["runs"]["r-1"]["flatten"], true);
    assert_eq!(s["runs"]["r-1"]["scope"], "run:r-1");
    assert_eq!(s["jobs"]["j-1"]["reason"], "llm loop");

    let out = tradeloom(
        data.path(),
        &["killswitch", "release", "--run", "r-1", "--reason", "ok"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status(data.path())["runs"]["r-1"]["engaged"], false);
}

#[test]
fn bad_kill_switch_input_is_a_clear_usage_error() {
    let data = tempfile::tempdir().unwrap();
    let out = tradeloom(data.path(), &["killswitch", "engage"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--reason"), "{}", stderr(&out));

    let out = tradeloom(
        data.path(),
        &[
            "killswitch",
            "engage",
            "--reason",
            "x",
            "--run",
            "a",
            "--job",
            "b",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "--run and --job exclude each other"
    );

    let out = tradeloom(
        data.path(),
        &["killswitch", "engage", "--reason", "x", "--run", "../etc"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid kill switch scope"),
        "{}",
        stderr(&out)
    );

    std::fs::create_dir_all(data.path().join("killswitch")).unwrap();
    std::fs::write(data.path().join("killswitch/global.state.json"), "{").unwrap();
    let out = tradeloom(data.path(), &["killswitch", "status", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("global.state.json") && stderr(&out).contains("ENGAGED"),
        "{}",
        stderr(&out)
    );
}
