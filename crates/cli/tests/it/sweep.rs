//! `tradeloom sweep`: one run folder per grid point, the ranked JSON and table, the heat map,
//! resuming (after a kill too), bad grids, walk-forward, and `POST/GET /sweeps` over HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::service::Service;
use crate::{repo, stderr, stdout, tradeloom};

const SPEC: &str = "examples/specs/goog_sma_cross.yaml";
const GRID: &str = "strategy.params.fast=5,10,strategy.params.slow=20..40:10";

/// The parsed last line of stdout of a successful command.
fn last_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}{}",
        stdout(out),
        stderr(out)
    );
    let text = stdout(out);
    serde_json::from_str(text.lines().last().expect("a line")).expect("the last line is JSON")
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn run_folders(data: &Path) -> Vec<String> {
    match std::fs::read_dir(data.join("runs")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn sweep_dir(data: &Path, id: &str) -> PathBuf {
    data.join("sweeps").join(id)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks that `text` is well-formed XML: one root element, every tag closed in order,
/// attributes quoted, entities known; returns the element names in document order.
fn parse_xml(text: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = Vec::new();
    let mut roots = 0;
    let mut rest = text.trim_start();
    if let Some(decl) = rest.strip_prefix("<?xml") {
        let end = decl.find("?>").expect("the XML declaration ends");
        rest = &decl[end + 2..];
    }
    let check_text = |t: &str| {
        assert!(!t.contains('<'), "stray < in {t:?}");
        for (i, _) in t.match_indices('&') {
            let entity = &t[i..t[i..].find(';').map(|e| i + e + 1).expect("entity ends")];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "unknown entity {entity}"
            );
        }
    };
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            assert!(
                stack.is_empty() && rest.trim().is_empty(),
                "text after the root"
            );
            break;
        };
        check_text(&rest[..open]);
        if !stack.is_empty() || rest[..open].trim().is_empty() {
        } else {
            panic!("text outside the root element");
        }
        let after = &rest[open + 1..];
        let close = after.find('>').expect("a tag ends");
        let tag = &after[..close];
        rest = &after[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "closing tag order"
            );
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == ':'),
            "element name {name:?}"
        );
        // Attributes: name="value" pairs.
        let mut attrs = body[name.len()..].trim();
        while !attrs.is_empty() {
            let eq = attrs.find('=').expect("attribute =");
            let value = attrs[eq + 1..].trim_start();
            assert!(value.starts_with('"'), "attribute quoted in {tag:?}");
            let end = value[1..].find('"').expect("attribute value ends") + 1;
            check_text(&value[1..end]);
            attrs = value[end + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        elements.push(name.clone());
        if !self_closing {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1, "one root element");
    elements
}

#[test]
fn a_grid_sweep_runs_each_point_ranks_them_and_resumes_without_rerunning() {
    let data = tempfile::tempdir().unwrap();
    let out = tradeloom(data.path(), &["sweep", SPEC, "--grid", GRID, "--json"]);
    let result = last_json(&out);
    assert_eq!(
        keys(&result),
        ["best", "metric", "runs", "sweep_id"],
        "{result}"
    );
    assert_eq!(result["metric"], "sharpe");
    let runs = result["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        assert_eq!(keys(run), ["metrics", "params", "run_id"]);
        assert_eq!(run["params"].as_object().unwrap().len(), 2);
    }
    let mut folders = run_folders(data.path());
    folders.sort();
    let mut ids: Vec<String> = runs
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(folders, ids, "one run folder per point");
    let points: Vec<(i64, i64)> = runs
        .iter()
        .map(|r| {
            let p = &r["params"];
            (
                p["strategy.params.fast"].as_i64().unwrap(),
                p["strategy.params.slow"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        [(5, 20), (5, 30), (5, 40), (10, 20), (10, 30), (10, 40)]
    );
    // Each folder ran its own point.
    for run in runs {
        let spec = std::fs::read_to_string(
            data.path()
                .join("runs")
                .join(run["run_id"].as_str().unwrap())
                .join("run_spec.yaml"),
        )
        .unwrap();
        let fast = run["params"]["strategy.params.fast"].as_i64().unwrap();
        assert!(spec.contains(&format!("fast: {fast}\n")), "{spec}");
    }
    // The best is the maximum Sharpe ratio over the runs.
    let max = runs
        .iter()
        .map(|r| r["metrics"]["sharpe"].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(result["best"]["metrics"]["sharpe"].as_f64(), Some(max));
    let best = runs
        .iter()
        .find(|r| r["metrics"]["sharpe"].as_f64() == Some(max))
        .unwrap();
    assert_eq!(result["best"]["run_id"], best["run_id"]);
    assert_eq!(result["best"]["params"], best["params"]);

    let id = result["sweep_id"].as_str().unwrap();
    let dir = sweep_dir(data.path(), id);
    let svg = std::fs::read_to_string(dir.join("heatmap.svg")).unwrap();
    let elements = parse_xml(&svg);
    assert_eq!(elements[0], "svg");
    let cells = svg.matches(r#"stroke="white""#).count();
    assert_eq!(cells, 6, "2 × 3 cells");
    assert!(svg.contains("fill=\"#1a9850\""), "the best cell is green");
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    let best_fast = best["params"]["strategy.params.fast"].as_i64().unwrap();
    let best_slow = best["params"]["strategy.params.slow"].as_i64().unwrap();
    assert!(
        table.contains(&format!("| 1 | {best_fast} | {best_slow} | {max:.4} |")),
        "{table}"
    );
    let state = read_json(&dir.join("sweep.json"));
    assert_eq!(state["status"], "completed");

    // Resumed with nothing to do: no run is made and the JSON is the same.
    let out = tradeloom(data.path(), &["sweep", "--resume", &id[..13]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("6 of 6 runs already completed, 0 to run"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("sweep {id}: 0 runs")),
        "{}",
        stdout(&out)
    );
    let again = last_json(&tradeloom(
        data.path(),
        &["sweep", "--resume", id, "--json"],
    ));
    assert_eq!(again, result);
    assert_eq!(run_folders(data.path()).len(), 6);

    // The same spec and grid again: the same table, heat map and run files per point.
    let other = last_json(&tradeloom(
        data.path(),
        &["sweep", SPEC, "--grid", GRID, "--json", "--jobs", "1"],
    ));
    let other_dir = sweep_dir(data.path(), other["sweep_id"].as_str().unwrap());
    for file in ["table.md", "heatmap.svg"] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(other_dir.join(file)).unwrap(),
            "{file}"
        );
    }
    for (a, b) in runs.iter().zip(other["runs"].as_array().unwrap()) {
        assert_eq!(a["params"], b["params"]);
        assert_eq!(a["metrics"], b["metrics"]);
        let folder = |r: &Value| data.path().join("runs").join(r["run_id"].as_str().unwrap());
        for file in [
            "journal.jsonl",
            "metrics.json",
            "orders.csv",
            "fills.csv",
            "trades.csv",
            "equity.parquet",
            "run_spec.yaml",
        ] {
            assert_eq!(
                std::fs::read(folder(a).join(file)).unwrap(),
                std::fs::read(folder(b).join(file)).unwrap(),
                "{file} of {}",
                a["params"]
            );
        }
    }
}

#[test]
fn another_metric_ranks_in_its_own_direction() {
    let data = tempfile::tempdir().unwrap();
    let result = last_json(&tradeloom(
        data.path(),
        &[
            "sweep",
            SPEC,
            "--grid",
            GRID,
            "--json",
            "--metric",
            "max_drawdown_pct",
            "--quiet",
        ],
    ));
    assert_eq!(result["metric"], "max_drawdown_pct");
    let min = result["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metrics"]["max_drawdown_pct"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(
        result["best"]["metrics"]["max_drawdown_pct"].as_f64(),
        Some(min)
    );
}

#[test]
fn bad_grids_exit_non_zero_naming_the_key_and_run_nothing() {
    let data = tempfile::tempdir().unwrap();
    for (grid, expected) in [
        (
            "strategy.params.fastt=5,10",
            "grid key `strategy.params.fastt`: not a field of the run spec",
        ),
        (
            "strategy.params.fast=5..30:0",
            "grid key `strategy.params.fast`: `5..30:0`: the step must be positive",
        ),
        (
            "strategy.params.fast=30..5:5",
            "grid key `strategy.params.fast`: `30..5:5`: the start 30 is above the end 5",
        ),
        (
            "strategy.params.fast=10,30",
            "grid point strategy.params.fast=30: strategy.params.slow: 20 must be greater than fast (30)",
        ),
    ] {
        let out = tradeloom(data.path(), &["sweep", SPEC, "--grid", grid]);
        assert_eq!(out.status.code(), Some(2), "{grid}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{grid}: {}", stderr(&out));
    }
    let out = tradeloom(
        data.path(),
        &["sweep", SPEC, "--grid", GRID, "--metric", "sharp"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown metric `sharp`"),
        "{}",
        stderr(&out)
    );
    assert!(run_folders(data.path()).is_empty());
    assert!(
        !data.path().join("sweeps").exists(),
        "no sweep folder for a refused grid"
    );
    // --skip-invalid leaves the invalid point out.
    let result = last_json(&tradeloom(
        data.path(),
        &[
            "sweep",
            SPEC,
            "--grid",
            "strategy.params.fast=10,30",
            "--skip-invalid",
            "--json",
        ],
    ));
    assert_eq!(result["runs"].as_array().unwrap().len(), 1);
}

#[test]
fn a_killed_sweep_resumes_without_rerunning_finished_points() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let bars = work.path().join("bars.csv");
    let out = tradeloom(
        data.path(),
        &[
            "data",
            "synth",
            "--symbol",
            "GOOG",
            "--bars",
            "200000",
            "--timeframe",
            "1m",
            "--out",
            bars.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let spec = crate::write_spec(
        work.path(),
        "spec.yaml",
        &crate::simple_spec(&bars, "next_open"),
    );
    let grid = "strategy.params.fast=5,10,strategy.params.slow=20..40:10";
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args([
            "sweep",
            spec.to_str().unwrap(),
            "--grid",
            grid,
            "--jobs",
            "1",
            "--quiet",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once two points have completed.
    let deadline = Instant::now() + Duration::from_secs(120);
    let state_file = || -> Option<(PathBuf, Value)> {
        let entry = std::fs::read_dir(data.path().join("sweeps"))
            .ok()?
            .next()?
            .ok()?;
        let text = std::fs::read_to_string(entry.path().join("sweep.json")).ok()?;
        Some((entry.path(), serde_json::from_str(&text).ok()?))
    };
    let completed = |state: &Value| -> BTreeMap<String, String> {
        state["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "completed")
            .map(|p| {
                (
                    p["params"].to_string(),
                    p["run_id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let dir = loop {
        if let Some((dir, state)) = state_file()
            && completed(&state).len() >= 2
        {
            // While its process runs, the sweep is not run a second time.
            let id = dir.file_name().unwrap().to_str().unwrap().to_string();
            let out = tradeloom(data.path(), &["sweep", "--resume", &id]);
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            assert!(
                stderr(&out).contains(&format!(
                    "sweep {id} is being run by process {}",
                    child.id()
                )),
                "{}",
                stderr(&out)
            );
            break Some(dir);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let dir = dir.expect("two points completed within the deadline");
    let state = read_json(&dir.join("sweep.json"));
    assert_eq!(state["status"], "running");
    assert_eq!(state["owner"]["pid"], child.id());
    let before = completed(&state);
    assert!(
        before.len() < 6,
        "killed before the end ({} done)",
        before.len()
    );
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    // Its process died: the API reads the sweep as interrupted.
    {
        let api = Service::serve_with(data.path(), &[], &[]);
        tradeloom_llm::install_crypto_provider();
        let url = format!("{}/sweeps/{}", api.url, &id[..13]);
        let body: Value = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
        assert_eq!(body["status"], "interrupted", "{body}");
        assert_eq!(body["done"].as_u64(), Some(before.len() as u64), "{body}");
        assert_eq!(body["total"], 6);
    }
    let out = tradeloom(data.path(), &["sweep", "--resume", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result = last_json(&tradeloom(
        data.path(),
        &["sweep", "--resume", &id, "--json"],
    ));
    assert!(
        stderr(&out).contains(&format!(
            "{} of 6 runs already completed, {} to run",
            before.len(),
            6 - before.len()
        )),
        "{}",
        stderr(&out)
    );
    let after = completed(&read_json(&dir.join("sweep.json")));
    assert_eq!(after.len(), 6);
    for (params, run_id) in &before {
        assert_eq!(after.get(params), Some(run_id), "{params} was run again");
    }
    assert_eq!(result["runs"].as_array().unwrap().len(), 6);
    // Folders: the six completed runs and at most the one the kill interrupted.
    let folders = run_folders(data.path()).len();
    assert!((6..=7).contains(&folders), "{folders} run folders");
}

#[test]
fn walk_forward_runs_the_best_train_point_on_each_test_window() {
    let data = tempfile::tempdir().unwrap();
    let result = last_json(&tradeloom(
        data.path(),
        &[
            "sweep",
            SPEC,
            "--grid",
            GRID,
            "--walk-forward",
            "train=3y,test=1y",
            "--json",
            "--quiet",
        ],
    ));
    let wf = &result["walk_forward"];
    assert_eq!(wf["train"], "3y");
    let windows = wf["windows"].as_array().unwrap();
    // GOOG daily 2004-08-19 … 2013-03-01: train windows ending 2007-08-19 … 2012-08-19.
    assert_eq!(windows.len(), 6, "{wf}");
    assert_eq!(
        windows[0]["train"],
        json!({"start": "2004-08-19", "end": "2007-08-19"})
    );
    assert_eq!(
        windows[0]["test"],
        json!({"start": "2007-08-19", "end": "2008-08-19"})
    );
    let state =
        read_json(&sweep_dir(data.path(), result["sweep_id"].as_str().unwrap()).join("sweep.json"));
    for (k, window) in windows.iter().enumerate() {
        // The best of the window is the maximum Sharpe ratio of its train runs.
        let train = state["windows"][k]["runs"].as_array().unwrap();
        let max = train
            .iter()
            .filter_map(|r| r["metrics"]["sharpe"].as_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(window["best"]["metrics"]["sharpe"].as_f64(), Some(max));
        let oos = &window["out_of_sample"];
        let run_id = oos["run_id"].as_str().unwrap();
        let folder = data.path().join("runs").join(run_id);
        let spec = std::fs::read_to_string(folder.join("run_spec.yaml")).unwrap();
        let test = &window["test"];
        assert!(
            spec.contains(&format!("start: {}", test["start"].as_str().unwrap())),
            "{spec}"
        );
        let fast = window["best"]["params"]["strategy.params.fast"]
            .as_i64()
            .unwrap();
        assert!(spec.contains(&format!("fast: {fast}\n")), "{spec}");
        // The test run saw only the test window's bars.
        let first = oos["metrics"]["start"].as_str().unwrap().to_string();
        assert!(first.as_str() >= test["start"].as_str().unwrap(), "{first}");
        assert!(oos["metrics"]["bars"].as_u64().unwrap() < 260, "{oos}");
    }
    let combined = &wf["combined"];
    assert_eq!(combined["windows"], 6);
    let growth: f64 = windows
        .iter()
        .map(|w| {
            1.0 + w["out_of_sample"]["metrics"]["total_return_pct"]
                .as_f64()
                .unwrap()
                / 100.0
        })
        .product();
    let total = combined["total_return_pct"].as_f64().unwrap();
    assert!((total - (growth - 1.0) * 100.0).abs() < 1e-5, "{combined}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_over_http() {
    let data = tempfile::tempdir().unwrap();
    let configs = tempfile::tempdir().unwrap();
    let cd = configs.path();
    std::fs::create_dir_all(cd.join("specs")).unwrap();
    std::fs::create_dir_all(cd.join("data")).unwrap();
    std::fs::copy(repo().join(SPEC), cd.join("specs/goog.yaml")).unwrap();
    std::fs::copy(
        repo().join("examples/data/goog_1d.csv"),
        cd.join("data/goog_1d.csv"),
    )
    .unwrap();
    let api = Service::serve_with(data.path(), &["--config-dir", cd.to_str().unwrap()], &[]);
    tradeloom_llm::install_crypto_provider();
    let c = reqwest::Client::new();
    let post = |body: Value| {
        let c = c.clone();
        let url = format!("{}/sweeps", api.url);
        async move {
            let r = c.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let get = |id: String| {
        let c = c.clone();
        let url = format!("{}/sweeps/{id}", api.url);
        async move {
            let r = c.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // A spec file under the config folder.
    let (status, started) = post(json!({"spec": "specs/goog.yaml", "grid": GRID, "jobs": 2})).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], "running");
    assert_eq!(started["total"], 6);
    let id = started["sweep_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let (status, body) = get(id.clone()).await;
        assert_eq!(status, 200, "{body}");
        if body.get("runs").is_some() {
            break body;
        }
        assert_eq!(body["status"], "running", "{body}");
        assert_eq!(body["total"], 6);
        assert!(Instant::now() < deadline, "the sweep did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(keys(&finished), ["best", "metric", "runs", "sweep_id"]);
    assert_eq!(finished["runs"].as_array().unwrap().len(), 6);
    // The same JSON as the CLI's for the same sweep.
    let cli = last_json(&tradeloom(
        data.path(),
        &["sweep", "--resume", &id, "--json"],
    ));
    assert_eq!(cli, finished);

    // YAML text: relative data paths are read from the config folder.
    let text = std::fs::read_to_string(repo().join(SPEC))
        .unwrap()
        .replace("../data/goog_1d.csv", "data/goog_1d.csv");
    let (status, body) = post(json!({"spec": text, "grid": "strategy.params.fast=5,10"})).await;
    assert_eq!(status, 202, "{body}");

    // Errors name the key; paths stay inside the allowed folders.
    let (status, body) =
        post(json!({"spec": "specs/goog.yaml", "grid": "strategy.params.fastt=5"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grid");
    assert_eq!(body["details"]["key"], "strategy.params.fastt");
    let (status, body) =
        post(json!({"spec": "specs/goog.yaml", "grid": "data.0.path=x.csv"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grid"))
    );
    let (status, body) = post(json!({"spec": "/etc/passwd.yaml", "grid": GRID})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_spec")),
        "{body}"
    );
    let outside = text.replace("data/goog_1d.csv", "/etc/hostname");
    let (status, body) = post(json!({"spec": outside, "grid": GRID})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_data_path")),
        "{body}"
    );
    let (status, body) = get("nope".to_string()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("sweep_not_found")),
        "{body}"
    );
}
