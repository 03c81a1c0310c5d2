//! `tradeloom reconcile` on a paper run killed -9 mid-run (its folder left `running`, its last
//! lines possibly cut short), then resumed to its end: it passes both times — live with the
//! stop-time reports skipped, finished with every check, fill ids 1..n without a duplicate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{repo, stderr, stdout, tradeloom, write_spec};

fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let bound = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < bound, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn reconcile(data_dir: &Path, run_id: &str) -> serde_json::Value {
    let out = tradeloom(data_dir, &["reconcile", run_id, "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn skipped(result: &serde_json::Value) -> Vec<String> {
    result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["skipped"] == true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_paper_run_killed_and_resumed_reconciles_live_and_finished() {
    let data = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("examples/specs/goog_sma_cross.yaml")).unwrap();
    let csv = repo().join("examples/data/goog_1d.csv");
    let text = text
        .replace(
            "mode: backtest",
            "mode: paper\nfeed: {type: replay, speed: 30000000}\nsnapshot_every: 100",
        )
        .replace("../data/goog_1d.csv", csv.to_str().unwrap());
    let spec: PathBuf = write_spec(data.path(), "slow.yaml", &text);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["run", spec.to_str().unwrap()])
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runs = data.path().join("runs");
    wait_for("the run folder", || {
        std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some())
    });
    let dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    wait_for("fills and a snapshot", || {
        lines(&dir.join("fills.csv")) > 5 && dir.join("state/snapshot.json").is_file()
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "running");
    let run_id = meta["run_id"].as_str().unwrap().to_string();

    // Killed: the books still reconcile; what a run writes when it stops is skipped.
    let live = reconcile(data.path(), &run_id);
    assert_eq!(live["passed"], true, "{live}");
    let mut names = skipped(&live);
    names.sort();
    assert!(
        [
            "equity_curve",
            "journal.run_finished",
            "metrics",
            "trades_csv.closed"
        ]
        .iter()
        .all(|n| names.iter().any(|s| s == n)),
        "{names:?}"
    );
    let text = stdout(&tradeloom(data.path(), &["reconcile", &run_id]));
    assert!(text.contains("skipped (run still running)"), "{text}");
    assert!(text.contains("PASSED"), "{text}");

    // Resumed to the feed's end: every check, none skipped.
    let out = tradeloom(data.path(), &["run", "--resume", &run_id]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let done = reconcile(data.path(), &run_id);
    assert_eq!(done["passed"], true, "{done}");
    assert!(skipped(&done).is_empty(), "{done}");
    assert!(done.get("notes").is_none(), "{done}");
    let check = |name: &str| {
        done["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {done}"))
            .clone()
    };
    assert_eq!(check("journal.fill_ids")["passed"], true);
    assert_eq!(check("fills_csv.match_journal")["passed"], true);
    assert_eq!(check("metrics.fills")["passed"], true);
    assert_eq!(check("snapshot.cash")["passed"], true);
    assert!(
        check("fills_csv.rows")["expected"].as_u64().unwrap() > 5,
        "{done}"
    );
}
