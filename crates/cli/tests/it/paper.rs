//! Paper runs (`mode: paper`) through the binary: a replay at `speed: max` fills exactly as the
//! backtest; a run killed -9 and resumed loses and repeats nothing; the kill switch; SIGTERM,
//! `stop_at` and the feed's end stop and seal the folder; spec errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{repo, run_json, stderr, stdout, tradeloom, write_spec};

/// The GOOG example as a paper spec replayed at `speed`, with `extra` lines appended.
fn paper_spec(dir: &Path, name: &str, speed: &str, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/specs/goog_sma_cross.yaml")).unwrap();
    let data = repo().join("examples/data/goog_1d.csv");
    let text = text
        .replace(
            "mode: backtest",
            &format!("mode: paper\nfeed: {{type: replay, speed: {speed}}}"),
        )
        .replace("../data/goog_1d.csv", data.to_str().unwrap());
    write_spec(dir, name, &format!("{text}{extra}"))
}

/// The GOOG example as a backtest (data path absolute).
fn backtest_spec(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/specs/goog_sma_cross.yaml")).unwrap();
    let data = repo().join("examples/data/goog_1d.csv");
    let text = text.replace("../data/goog_1d.csv", data.to_str().unwrap());
    write_spec(dir, "backtest.yaml", &text)
}

/// Starts `tradeloom ARGS --data-dir DIR` without waiting for it.
fn spawn(data_dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `check` every 20 ms until it returns `Some` (a minute at most: then the test fails).
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(x) = check() {
            return x;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The only run folder under the data dir, once it exists.
fn the_run_dir(data_dir: &Path) -> PathBuf {
    wait_for("the run folder", || {
        let dirs: Vec<PathBuf> = std::fs::read_dir(data_dir.join("runs"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("metadata.json").is_file())
            .collect();
        (dirs.len() == 1).then(|| dirs[0].clone())
    })
}

fn metadata(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap()
}

fn journal(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Lines of a CSV file (header excluded) with the `wall_ts` column (the last) removed if the
/// header has one.
fn rows_without_wall(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let wall = header.ends_with(",wall_ts");
    lines
        .map(|l| match wall {
            true => l[..l.rfind(',').unwrap()].to_string(),
            false => l.to_string(),
        })
        .collect()
}

/// Complete lines of the file (0 when it does not exist yet).
fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn finish(child: Child) -> std::process::Output {
    child.wait_with_output().unwrap()
}

fn verify_ok(data_dir: &Path, run_id: &str) {
    let out = tradeloom(data_dir, &["verify", run_id]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_replay_at_max_speed_fills_exactly_as_the_backtest() {
    let data = tempfile::tempdir().unwrap();
    let (bt, bt_dir) = run_json(data.path(), &backtest_spec(data.path()));
    assert_eq!(bt["status"], "completed");
    let spec = paper_spec(data.path(), "paper.yaml", "max", "");
    let (paper, dir) = run_json(data.path(), &spec);
    assert_eq!(paper["status"], "completed");
    assert_eq!(paper["stop_reason"], "feed_end");
    let backtest_fills = rows_without_wall(&bt_dir.join("fills.csv"));
    assert!(backtest_fills.len() > 10, "the strategy trades");
    assert_eq!(rows_without_wall(&dir.join("fills.csv")), backtest_fills);
    assert_eq!(
        rows_without_wall(&dir.join("orders.csv")),
        rows_without_wall(&bt_dir.join("orders.csv"))
    );
    assert_eq!(paper["metrics"], bt["metrics"]);
    let meta = metadata(&dir);
    assert_eq!(meta["mode"], "paper");
    assert_eq!(meta["stop_reason"], "feed_end");
    // Paper files carry the wall clock; the backtest's do not.
    let header = std::fs::read_to_string(dir.join("fills.csv")).unwrap();
    assert!(
        header
            .starts_with("fill_id,order_id,ts,symbol,side,quantity,price,fee,liquidity,wall_ts\n")
    );
    let lines = journal(&dir);
    assert!(lines.iter().all(|l| {
        l["wall_ts"]
            .as_str()
            .is_some_and(|w| w.ends_with('Z') && w.len() == 30)
    }));
    assert!(journal(&bt_dir).iter().all(|l| l.get("wall_ts").is_none()));
    assert_eq!(lines.last().unwrap()["event"], "run_finished");
    for state in [
        "state/inputs.jsonl",
        "state/snapshot.json",
        "state/feed.json",
    ] {
        assert!(
            meta["artifacts"][state]["sha256"].is_string(),
            "{state} hashed"
        );
    }
    let feed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/feed.json")).unwrap())
            .unwrap();
    assert_eq!(feed["kind"], "replay");
    assert_eq!(feed["stopped"], true);
    assert_eq!(feed["events"], 2148);
    let snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/snapshot.json")).unwrap())
            .unwrap();
    assert_eq!(snapshot["events"], 2148);
    assert_eq!(snapshot["strategy"]["name"], "sma_cross");
    // At max speed the bars come in batches: one record each, naming the bars, not their
    // values (a resume reads them back from the data file).
    let records: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("state/inputs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.iter().all(|r| r["kind"] == "replay"), "{records:?}");
    assert!(records.len() < 20, "{} records", records.len());
    let mut next = 0;
    for r in &records {
        assert_eq!(r["from"], next, "the bars in order, none left out");
        next += r["count"].as_u64().unwrap();
    }
    assert_eq!(next, 2148);
    verify_ok(data.path(), meta["run_id"].as_str().unwrap());
}

/// Net position per symbol from fills.csv rows (side is the 5th column, quantity the 6th).
fn net_position(rows: &[String]) -> i64 {
    rows.iter()
        .map(|r| {
            let cols: Vec<&str> = r.split(',').collect();
            let q: i64 = cols[5].parse().unwrap();
            if cols[4] == "BUY" { q } else { -q }
        })
        .sum()
}

/// A decimal with at most two places, in cents.
fn cents(text: &str) -> i128 {
    let (units, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<2}");
    assert!(frac.len() == 2, "{text}");
    let sign = if units.starts_with('-') { -1 } else { 1 };
    units.parse::<i128>().unwrap() * 100 + sign * frac.parse::<i128>().unwrap()
}

/// Cash the fills of fills.csv rows took (buys) less what they brought (sells), fees included,
/// in cents.
fn cash_spent(rows: &[String]) -> i128 {
    rows.iter()
        .map(|r| {
            let cols: Vec<&str> = r.split(',').collect();
            let notional = cols[5].parse::<i128>().unwrap() * cents(cols[6]);
            let fee = cents(cols[7]);
            if cols[4] == "BUY" {
                notional + fee
            } else {
                fee - notional
            }
        })
        .sum()
}

#[test]
fn a_paper_run_killed_and_resumed_loses_and_repeats_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (_, bt_dir) = run_json(data.path(), &backtest_spec(data.path()));
    let expected = rows_without_wall(&bt_dir.join("fills.csv"));
    let runs = tempfile::tempdir().unwrap();
    // About 2,150 daily bars in roughly 8 seconds; snapshots every 100 events.
    let spec = paper_spec(
        data.path(),
        "slow.yaml",
        "30000000",
        "snapshot_every: 100\n",
    );
    let mut child = spawn(runs.path(), &["run", spec.to_str().unwrap(), "--json"]);
    let dir = the_run_dir(runs.path());
    let inputs = dir.join("state/inputs.jsonl");
    wait_for("some inputs processed and a snapshot", || {
        (line_count(&inputs) > 700 && dir.join("state/snapshot.json").is_file()).then_some(())
    });
    child.kill().unwrap();
    let killed = finish(child);
    assert!(!killed.status.success());
    let meta = metadata(&dir);
    assert_eq!(meta["status"], "running", "a killed run is left running");
    let before = rows_without_wall(&dir.join("fills.csv"));
    let run_id = meta["run_id"].as_str().unwrap().to_string();

    // Resumed, and killed again: a resumption is itself recorded and replayed.
    let mut child = spawn(runs.path(), &["run", "--resume", &run_id, "--json"]);
    wait_for("more inputs processed after the resume", || {
        (line_count(&inputs) > 1400).then_some(())
    });
    child.kill().unwrap();
    assert!(!finish(child).status.success());
    let mid = rows_without_wall(&dir.join("fills.csv"));
    assert!(mid.starts_with(&before));

    let out = tradeloom(runs.path(), &["run", "--resume", &run_id, "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "completed");
    assert_eq!(last["stop_reason"], "feed_end");
    let after = rows_without_wall(&dir.join("fills.csv"));
    assert_eq!(
        after, expected,
        "the same fills as without the interruption"
    );
    assert!(
        after.starts_with(&before),
        "the fills before the kill are kept"
    );
    let fill_ids: std::collections::BTreeSet<&str> =
        after.iter().map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(fill_ids.len(), after.len(), "no fill duplicated");
    let lines = journal(&dir);
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=lines.len() as u64).collect::<Vec<_>>(),
        "seq without gaps"
    );
    let resumed: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "run_resumed")
        .collect();
    assert_eq!(resumed.len(), 2);
    assert!(
        resumed[1]["interrupted"]
            .as_str()
            .is_some_and(|r| r.starts_with("interrupted")),
        "{}",
        resumed[1]
    );
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "run_started").count(),
        1,
        "the engine started once"
    );
    // A replay records where its bars are in the data files (one at a time at this speed),
    // never their values.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&inputs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect();
    assert!(!records.iter().any(|v| v["kind"] == "bar"));
    let replayed: Vec<(u64, u64, u64)> = records
        .iter()
        .filter(|v| v["kind"] == "replay")
        .map(|v| {
            let field = |name: &str| v[name].as_u64().unwrap();
            (field("from"), field("count"), field("last_ts"))
        })
        .collect();
    assert_eq!(
        replayed.iter().map(|r| r.1).sum::<u64>(),
        2148,
        "every bar processed once"
    );
    assert!(
        replayed
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].2 < w[1].2)
    );
    // The books balance: the run's final cash is the initial cash less what the fills cost.
    let finished = lines.iter().find(|l| l["event"] == "run_finished").unwrap();
    assert_eq!(
        cents(finished["cash"].as_str().unwrap()),
        10_000_000 - cash_spent(&after),
        "cash from fills.csv"
    );
    verify_ok(runs.path(), &run_id);

    // A completed run cannot be resumed; nor can a backtest.
    let out = tradeloom(runs.path(), &["run", "--resume", &run_id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is completed"), "{}", stderr(&out));
    let bt_id = metadata(&bt_dir)["run_id"].as_str().unwrap().to_string();
    let out = tradeloom(data.path(), &["run", "--resume", &bt_id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("only paper runs can be resumed"),
        "{}",
        stderr(&out)
    );
    let out = tradeloom(
        runs.path(),
        &["run", spec.to_str().unwrap(), "--resume", &run_id],
    );
    assert_eq!(out.status.code(), Some(2), "a spec and --resume together");
}

#[test]
fn sigterm_stops_gracefully_and_the_folder_is_sealed() {
    let data = tempfile::tempdir().unwrap();
    let spec = paper_spec(data.path(), "slow.yaml", "3000000", "");
    let child = spawn(data.path(), &["run", spec.to_str().unwrap(), "--json"]);
    let dir = the_run_dir(data.path());
    wait_for("a few bars", || {
        (line_count(&dir.join("state/inputs.jsonl")) > 20).then_some(())
    });
    // The journal grows while the run runs.
    wait_for("journal lines on disk", || {
        (line_count(&dir.join("journal.jsonl")) > 5).then_some(())
    });
    crate::sigterm(child.id());
    let out = finish(child);
    assert!(
        out.status.success(),
        "exit 0: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let meta = metadata(&dir);
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["stop_reason"], "stopped");
    let lines = journal(&dir);
    let stopped = lines
        .iter()
        .position(|l| l["event"] == "run_stopped")
        .unwrap();
    assert_eq!(lines[stopped]["stop_reason"], "stopped");
    assert_eq!(lines.last().unwrap()["event"], "run_finished");
    verify_ok(data.path(), meta["run_id"].as_str().unwrap());
}

#[test]
fn stop_at_stops_the_run() {
    let data = tempfile::tempdir().unwrap();
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let spec = paper_spec(
        data.path(),
        "stop_at.yaml",
        "1000000",
        &format!(
            "stop_at: {}\n",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    let (json, dir) = run_json(data.path(), &spec);
    assert_eq!(json["status"], "completed");
    assert_eq!(json["stop_reason"], "stop_at");
    let meta = metadata(&dir);
    assert_eq!(meta["stop_reason"], "stop_at");
    let bars = json["metrics"]["bars"].as_u64().unwrap();
    assert!(bars > 0 && bars < 2148, "stopped mid-replay: {bars} bars");
    verify_ok(data.path(), meta["run_id"].as_str().unwrap());
}

/// Engages the kill switch of `run_id` while it runs; returns when the engage returned.
fn engage(data_dir: &Path, run_id: &str, flatten: bool) -> chrono::DateTime<chrono::Utc> {
    let mut args = vec![
        "killswitch",
        "engage",
        "--run",
        run_id,
        "--reason",
        "paper drill",
        "--by",
        "ops",
    ];
    if flatten {
        args.push("--flatten");
    }
    let out = tradeloom(data_dir, &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    chrono::Utc::now()
}

fn kill_switch_during_a_run(flatten: bool) {
    let data = tempfile::tempdir().unwrap();
    let spec = paper_spec(data.path(), "slow.yaml", "30000000", "");
    let child = spawn(data.path(), &["run", spec.to_str().unwrap(), "--json"]);
    let dir = the_run_dir(data.path());
    let run_id = metadata(&dir)["run_id"].as_str().unwrap().to_string();
    wait_for("a few fills", || {
        (line_count(&dir.join("fills.csv")) > 4).then_some(())
    });
    let engaged_at = engage(data.path(), &run_id, flatten);
    let out = finish(child);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let lines = journal(&dir);
    let at = lines
        .iter()
        .position(|l| l["event"] == "kill_switch_engaged")
        .expect("the engagement is journaled");
    let wall = |l: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(l["wall_ts"].as_str().unwrap()).unwrap()
    };
    let liquidations: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["event"] == "kill_switch_liquidation")
        .map(|l| &l["order_id"])
        .collect();
    for l in &lines {
        if l["event"] == "order_accepted" {
            let id = &l["order_id"];
            if liquidations.contains(&id) {
                continue;
            }
            assert!(
                wall(l) <= engaged_at,
                "order {id} accepted after the engage returned"
            );
        }
    }
    assert!(
        lines[at..]
            .iter()
            .filter(|l| l["event"] == "order_rejected")
            .all(|l| l["code"] == "risk.kill_switch")
    );
    let rejected = lines[at..]
        .iter()
        .filter(|l| l["code"] == "risk.kill_switch")
        .count();
    assert!(rejected > 0, "the strategy kept trying and was refused");
    let fills = rows_without_wall(&dir.join("fills.csv"));
    if flatten {
        assert_eq!(liquidations.len(), 1, "one liquidation order");
        assert_eq!(net_position(&fills), 0, "the position is closed");
    } else {
        assert!(liquidations.is_empty());
        assert_ne!(net_position(&fills), 0, "the position is kept");
    }
    verify_ok(data.path(), &run_id);
}

#[test]
fn an_engaged_kill_switch_refuses_every_later_order_of_a_paper_run() {
    kill_switch_during_a_run(false);
}

#[test]
fn an_engaged_kill_switch_with_flatten_closes_the_paper_position() {
    kill_switch_during_a_run(true);
}

#[test]
fn paper_spec_errors_name_the_line_and_field() {
    let data = tempfile::tempdir().unwrap();
    let spec = paper_spec(data.path(), "bad.yaml", "max", "stop_at: soon\n");
    let out = tradeloom(data.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.yaml:13: stop_at: `soon` is not an RFC 3339 time"),
        "{}",
        stderr(&out)
    );
    let spec = paper_spec(data.path(), "age.yaml", "max", "max_data_age: 5 parsecs\n");
    let out = tradeloom(data.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("age.yaml:13: max_data_age: invalid duration `5 parsecs`"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(backtest_spec(data.path())).unwrap();
    let spec = write_spec(
        data.path(),
        "bt.yaml",
        &format!("{text}feed: {{type: replay}}\n"),
    );
    let out = tradeloom(data.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bt.yaml:12: feed: only a paper run has `feed:`"),
        "{}",
        stderr(&out)
    );
    let spec = write_spec(
        data.path(),
        "nofeed.yaml",
        &text.replace("mode: backtest", "mode: paper"),
    );
    let out = tradeloom(data.path(), &["run", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nofeed.yaml:4: feed: a paper run needs a `feed:` section"),
        "{}",
        stderr(&out)
    );
    let out = tradeloom(data.path(), &["run", "--resume", "nosuchrun"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !data.path().join("runs").exists()
            || std::fs::read_dir(data.path().join("runs")).unwrap().count() == 0
    );
}

#[test]
fn orders_on_data_older_than_max_data_age_are_refused() {
    let data = tempfile::tempdir().unwrap();
    // A replay's data age is measured on its clock (the replayed time). At a billion times
    // real time, the microseconds between a bar's delivery and its processing are many
    // seconds of replayed time, far more than 1 ms: every bar is stale.
    let spec = paper_spec(
        data.path(),
        "stale.yaml",
        "1000000000",
        "max_data_age: 1ms\n",
    );
    let (json, dir) = run_json(data.path(), &spec);
    assert_eq!(json["status"], "completed");
    let lines = journal(&dir);
    let rejected: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "order_rejected")
        .collect();
    assert!(!rejected.is_empty(), "the strategy tried to trade");
    for r in &rejected {
        assert_eq!(r["code"], "risk.stale_data");
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("more than max_data_age"),
            "{r}"
        );
    }
    assert!(!lines.iter().any(|l| l["event"] == "order_accepted"));
    // At speed max the replay clock is the last bar's time: never stale.
    let spec = paper_spec(data.path(), "max.yaml", "max", "max_data_age: 1ms\n");
    let (_, dir) = run_json(data.path(), &spec);
    assert!(!journal(&dir).iter().any(|l| l["code"] == "risk.stale_data"));
}

#[test]
fn a_resume_whose_rebuilt_state_differs_from_the_snapshot_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let spec = paper_spec(data.path(), "slow.yaml", "30000000", "snapshot_every: 50\n");
    let mut child = spawn(data.path(), &["run", spec.to_str().unwrap()]);
    let dir = the_run_dir(data.path());
    let snapshot_path = dir.join("state/snapshot.json");
    wait_for("a snapshot", || snapshot_path.is_file().then_some(()));
    child.kill().unwrap();
    assert!(!finish(child).status.success());
    let run_id = metadata(&dir)["run_id"].as_str().unwrap().to_string();
    let mut snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&snapshot_path).unwrap()).unwrap();
    snapshot["cash"] = serde_json::Value::from("1.00");
    std::fs::write(&snapshot_path, snapshot.to_string()).unwrap();
    let journal_before = std::fs::read(dir.join("journal.jsonl")).unwrap();
    let out = tradeloom(data.path(), &["run", "--resume", &run_id]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("differs from state/snapshot.json") && err.contains("cash was \"1.00\""),
        "{err}"
    );
    assert!(
        std::fs::read(dir.join("journal.jsonl"))
            .unwrap()
            .starts_with(
                &journal_before[..journal_before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1)]
            ),
        "the journal's lines are kept"
    );
}

#[test]
fn tradeloom_order_trades_a_paper_run_that_accepts_external_orders() {
    let data = tempfile::tempdir().unwrap();
    // The shipped paper desk (AAA, `strategy: manual`), its data path made absolute.
    let text = std::fs::read_to_string(repo().join("examples/specs/team_paper.yaml")).unwrap();
    let csv = repo().join("examples/universe/AAA.csv");
    let text = text
        .replace("../universe/AAA.csv", csv.to_str().unwrap())
        .replace("speed: 86400", "speed: 432000");
    let spec = write_spec(data.path(), "desk.yaml", &text);
    let child = spawn(data.path(), &["run", spec.to_str().unwrap(), "--quiet"]);
    let dir = the_run_dir(data.path());
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    wait_for("a bar", || {
        (line_count(&dir.join("state/inputs.jsonl")) > 1).then_some(())
    });

    let order = |args: &[&str]| {
        let mut all = vec!["order", id.as_str()];
        all.extend_from_slice(args);
        tradeloom(data.path(), &all)
    };
    let bought = order(&[
        "--symbol",
        "AAA",
        "--side",
        "buy",
        "--quantity",
        "5",
        "--id",
        "first",
        "--json",
    ]);
    assert!(
        bought.status.success(),
        "{}{}",
        stdout(&bought),
        stderr(&bought)
    );
    let reply: serde_json::Value = serde_json::from_str(stdout(&bought).trim()).unwrap();
    assert_eq!(reply["status"], "filled", "{reply}");
    assert_eq!(reply["source"], "cli");
    assert_eq!(reply["fills"][0]["quantity"], "5");
    // The same id again sends nothing: the answer is shown.
    let again = order(&[
        "--symbol",
        "AAA",
        "--side",
        "buy",
        "--quantity",
        "5",
        "--id",
        "first",
    ]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("first"), "{}", stdout(&again));
    // A symbol the run does not trade: refused, exit 1, the field named.
    let wrong = order(&["--symbol", "ZZZ", "--side", "buy", "--quantity", "1"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stdout(&wrong));
    assert!(
        stdout(&wrong).contains("symbol: `ZZZ` is not an instrument"),
        "{}",
        stdout(&wrong)
    );
    // A run that does not exist: exit 2.
    let missing = tradeloom(
        data.path(),
        &[
            "order",
            "nope",
            "--symbol",
            "AAA",
            "--side",
            "buy",
            "--quantity",
            "1",
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("paper run `nope` not found"),
        "{}",
        stderr(&missing)
    );

    crate::sigterm(child.id());
    let out = finish(child);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = journal(&dir);
    let external: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "external_order")
        .collect();
    assert_eq!(external.len(), 1, "the second request was not sent");
    assert_eq!(external[0]["client_order_id"], "first");
    verify_ok(data.path(), &id);
    // A stopped run takes no orders.
    let late = order(&["--symbol", "AAA", "--side", "buy", "--quantity", "1"]);
    assert_eq!(late.status.code(), Some(2));
    assert!(
        stderr(&late).contains("only a running paper run takes orders"),
        "{}",
        stderr(&late)
    );
}

/// The Python `sma_cross` example (`goog_sma_cross_script.yaml`) with absolute paths: `mode` is
/// `backtest` or a paper mode with its feed; `strategy` replaces the example's strategy block
/// when given (its script relative to `project`).
fn script_spec(project: &Path, name: &str, mode: &str, strategy: Option<&str>) -> PathBuf {
    let text =
        std::fs::read_to_string(repo().join("examples/specs/goog_sma_cross_script.yaml")).unwrap();
    let data = repo().join("examples/data/goog_1d.csv");
    let script = repo().join("examples/strategies/sma_cross.py");
    let mut text = text
        .replace("mode: backtest", mode)
        .replace("../data/goog_1d.csv", data.to_str().unwrap())
        .replace("../strategies/sma_cross.py", script.to_str().unwrap());
    if let Some(strategy) = strategy {
        let start = text.find("strategy:\n").unwrap();
        let end = text.find("execution:").unwrap();
        text.replace_range(start..end, &format!("strategy: {strategy}\n"));
    }
    write_spec(project, name, &text)
}

/// The live children of process `pid` whose command is Python (the sandboxed scripts).
fn python_children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            parent == Some(pid) && comm.starts_with("python")
        })
        .collect()
}

/// Whether process `pid` still runs (a zombie nobody reaped has ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

#[test]
fn a_script_strategy_replayed_at_max_speed_fills_exactly_as_its_backtest() {
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let backtest = script_spec(project.path(), "bt.yaml", "mode: backtest", None);
    let (bt, bt_dir) = run_json(data.path(), &backtest);
    assert_eq!(bt["status"], "completed", "{bt}");
    let paper = script_spec(
        project.path(),
        "paper.yaml",
        "mode: paper\nfeed: {type: replay, speed: max}",
        None,
    );
    let (run, dir) = run_json(data.path(), &paper);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["stop_reason"], "feed_end");
    let fills = rows_without_wall(&bt_dir.join("fills.csv"));
    assert!(fills.len() > 10, "the strategy trades");
    assert_eq!(rows_without_wall(&dir.join("fills.csv")), fills);
    assert_eq!(
        rows_without_wall(&dir.join("orders.csv")),
        rows_without_wall(&bt_dir.join("orders.csv"))
    );
    assert_eq!(run["metrics"], bt["metrics"]);
    // And the built-in strategy's fills, which the script reproduces.
    let (_, builtin_dir) = run_json(data.path(), &backtest_spec(data.path()));
    assert_eq!(rows_without_wall(&builtin_dir.join("fills.csv")), fills);
    let meta = metadata(&dir);
    assert_eq!(meta["mode"], "paper");
    assert!(
        journal(&dir)
            .iter()
            .any(|l| l["event"] == "run_started" && l.to_string().contains("script:")),
        "the journal names the script"
    );
    verify_ok(data.path(), meta["run_id"].as_str().unwrap());

    // A paper run has no wall-clock budget for its script's whole life.
    let text = std::fs::read_to_string(&paper).unwrap().replace(
        "call_timeout_ms: 5000}",
        "call_timeout_ms: 5000, run_timeout_seconds: 60}",
    );
    let budget = write_spec(project.path(), "budget.yaml", &text);
    let out = tradeloom(data.path(), &["run", budget.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "budget.yaml:13: strategy.limits.run_timeout_seconds: a paper run's script has no \
             wall-clock budget"
        ),
        "{}",
        stderr(&out)
    );
}

/// The Python `sma_cross` that hangs at its `hang_at`-th bar while the file `flag` exists: a
/// script the watchdog kills once, and that runs through once the file is gone.
const HANGING_PY: &str = r#"
import os


class Hanging(SmaCross):
    def __init__(self, hang_at, flag, **params):
        super().__init__(**params)
        self.hang_at = hang_at
        self.flag = flag
        self.bars = 0

    def on_bar(self, ctx, bar):
        self.bars += 1
        if self.bars == self.hang_at and os.path.exists(self.flag):
            while True:
                pass
        super().on_bar(ctx, bar)
"#;

#[test]
fn a_script_killed_by_its_call_budget_fails_the_paper_run_which_resumes_to_the_same_fills() {
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let sma = std::fs::read_to_string(repo().join("examples/strategies/sma_cross.py")).unwrap();
    std::fs::write(
        project.path().join("hanging.py"),
        format!("{sma}\n{HANGING_PY}"),
    )
    .unwrap();
    let flag = project.path().join("hang");
    std::fs::write(&flag, "").unwrap();
    let strategy = format!(
        "{{script: hanging.py, class: Hanging, params: {{hang_at: 1200, flag: {}, fast: 10, \
         slow: 20, quantity: 10}}, limits: {{call_timeout_ms: 1000}}}}",
        flag.display()
    );
    let (bt, bt_dir) = run_json(
        data.path(),
        &script_spec(project.path(), "bt.yaml", "mode: backtest", None),
    );
    assert_eq!(bt["status"], "completed");
    let expected = rows_without_wall(&bt_dir.join("fills.csv"));
    let paper = script_spec(
        project.path(),
        "paper.yaml",
        "mode: paper\nfeed: {type: replay, speed: max}\nsnapshot_every: 100",
        Some(&strategy),
    );
    let out = tradeloom(data.path(), &["run", paper.to_str().unwrap(), "--json"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let dir = wait_for("the failed run", || {
        std::fs::read_dir(data.path().join("runs"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| metadata(p)["mode"] == "paper")
    });
    let meta = metadata(&dir);
    assert_eq!(meta["status"], "failed");
    let error = meta["error"].as_str().unwrap();
    assert!(error.contains("limits.call_timeout_ms"), "{error}");
    let lines = journal(&dir);
    let failed = lines.last().unwrap();
    assert_eq!(failed["event"], "run_failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("limits.call_timeout_ms")
    );
    let before = rows_without_wall(&dir.join("fills.csv"));
    assert!(before.len() > 5 && before.len() < expected.len());
    assert!(expected.starts_with(&before));

    // The resumed run's fresh script replays the recorded bars from the start, then goes on.
    std::fs::remove_file(&flag).unwrap();
    let run_id = meta["run_id"].as_str().unwrap();
    let out = tradeloom(data.path(), &["run", "--resume", run_id, "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let meta = metadata(&dir);
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["stop_reason"], "feed_end");
    assert_eq!(rows_without_wall(&dir.join("fills.csv")), expected);
    let lines = journal(&dir);
    assert!(!lines.iter().any(|l| l["event"] == "run_failed"));
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "run_resumed").count(),
        1
    );
    verify_ok(data.path(), run_id);
}

#[test]
fn a_script_paper_run_leaves_no_script_process_when_killed_or_stopped() {
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (_, bt_dir) = run_json(
        data.path(),
        &script_spec(project.path(), "bt.yaml", "mode: backtest", None),
    );
    let runs = tempfile::tempdir().unwrap();
    let spec = script_spec(
        project.path(),
        "slow.yaml",
        "mode: paper\nfeed: {type: replay, speed: 30000000}\nsnapshot_every: 100",
        None,
    );
    let mut child = spawn(runs.path(), &["run", spec.to_str().unwrap(), "--json"]);
    let dir = the_run_dir(runs.path());
    let inputs = dir.join("state/inputs.jsonl");
    wait_for("some bars processed", || {
        (line_count(&inputs) > 300).then_some(())
    });
    let scripts = python_children(child.id());
    assert_eq!(scripts.len(), 1, "one sandboxed script for one instrument");
    child.kill().unwrap();
    assert!(!finish(child).status.success());
    // The script sees its input closed and exits.
    wait_for("the script of the killed run to end", || {
        (!alive(scripts[0])).then_some(())
    });
    let run_id = metadata(&dir)["run_id"].as_str().unwrap().to_string();

    let child = spawn(runs.path(), &["run", "--resume", &run_id, "--json"]);
    let scripts = wait_for("the resumed run's script", || {
        let s = python_children(child.id());
        (!s.is_empty()).then_some(s)
    });
    wait_for("more bars processed", || {
        (line_count(&inputs) > 900).then_some(())
    });
    crate::sigterm(child.id());
    let out = finish(child);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        scripts.iter().all(|p| !alive(*p)),
        "the script ended with the run"
    );
    let meta = metadata(&dir);
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["stop_reason"], "stopped");
    let fills = rows_without_wall(&dir.join("fills.csv"));
    let expected = rows_without_wall(&bt_dir.join("fills.csv"));
    assert!(fills.len() > 5, "the run traded");
    assert!(
        expected.starts_with(&fills),
        "the backtest's fills up to the stop"
    );
    verify_ok(runs.path(), &run_id);
}

#[test]
fn a_script_exception_fails_the_paper_run_with_its_traceback() {
    let project = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("raising.py"),
        "from tradeloom.sandbox import Strategy\n\n\nclass Raising(Strategy):\n    \
         def __init__(self):\n        self.bars = 0\n\n    def on_bar(self, ctx, bar):\n        \
         self.bars += 1\n        if self.bars == 40:\n            return 1 / 0\n",
    )
    .unwrap();
    let paper = script_spec(
        project.path(),
        "paper.yaml",
        "mode: paper\nfeed: {type: replay, speed: max}",
        Some("{script: raising.py, class: Raising}"),
    );
    let out = tradeloom(data.path(), &["run", paper.to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let dir = the_run_dir(data.path());
    let meta = metadata(&dir);
    assert_eq!(meta["status"], "failed");
    let error = meta["error"].as_str().unwrap();
    assert!(error.contains("ZeroDivisionError"), "{error}");
    assert!(
        error.contains("raising.py\", line 11"),
        "the traceback: {error}"
    );
    let failed = journal(&dir).pop().unwrap();
    assert_eq!(failed["event"], "run_failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("ZeroDivisionError")
    );
    // The folder is left as every failed paper run's (resumable).
    let feed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/feed.json")).unwrap())
            .unwrap();
    assert_eq!(feed["stopped"], true);
}
