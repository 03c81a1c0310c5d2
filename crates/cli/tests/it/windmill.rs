//! The Windmill scripts of `examples/windmill` (reference document 002's trigger → poll → store)
//! run with `python3` against a real `tradeloom serve` on loopback that requires API keys, its
//! models on a real `tradeloom mock-llm`: a 2 models × 3 days job is triggered, polled to
//! completion and stored twice into SQLite, and every model-day is there exactly once with what
//! AI-Trader's clients read.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::service::Service;
use crate::simulate::client;
use crate::{repo, stderr, stdout, tradeloom};

/// The trading dates of `examples/windmill/simulation.yaml` on the shipped universe.
const DATES: [&str; 3] = ["2025-01-02", "2025-01-03", "2025-01-06"];
const MODELS: [&str; 2] = ["momentum-a", "reversion-b"];

/// Where the scripts find the server and keep their files.
struct Scripts {
    env: Vec<(&'static str, String)>,
}

impl Scripts {
    /// `python3 examples/windmill/SCRIPT ARGS` with this environment (and none of the caller's
    /// settings of the same names).
    fn run(&self, script: &str, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("examples/windmill").join(script))
            .args(args)
            .current_dir(repo());
        for name in [
            "API_HOST",
            "API_PORT",
            "TRADELOOM_API_KEY",
            "TRADELOOM_JOB_FILE",
            "TRADELOOM_RESULTS_DB",
        ] {
            cmd.env_remove(name);
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        if let Some(file) = stdin {
            cmd.stdin(std::fs::File::open(file).unwrap());
        }
        cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run python3 (the Windmill example scripts need Python 3.10+ on PATH): {e}"
            )
        })
    }

    /// Runs a script that must succeed and returns the JSON it prints.
    fn json(&self, script: &str, args: &[&str]) -> Value {
        let out = self.run(script, args, None);
        assert!(
            out.status.success(),
            "{script} {args:?} failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {}", stdout(&out)))
    }
}

/// python3 is present and new enough; fails (never skips) with what to install.
fn require_python() {
    let out = Command::new("python3")
        .args(["-c", "import sys; assert sys.version_info >= (3, 10), sys.version"])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is not on PATH ({e}): the Windmill example test runs the scripts of examples/windmill with it; install Python 3.10 or newer")
        });
    assert!(
        out.status.success(),
        "the Windmill example scripts need Python 3.10 or newer: {}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windmill_scripts_trigger_poll_and_store_each_model_day_once() {
    require_python();
    let data = TempDir::new().unwrap();
    let configs = TempDir::new().unwrap();
    let files = TempDir::new().unwrap();
    let mock = Service::mock_llm();

    // The shipped config, its models on this test's mock and its universe where it is.
    let shipped =
        std::fs::read_to_string(repo().join("examples/windmill/simulation.yaml")).unwrap();
    let config = shipped
        .replace("http://127.0.0.1:8089/v1", &format!("{}/v1", mock.url))
        .replace(
            "{path: ../universe}",
            &format!("{{path: {}}}", repo().join("examples/universe").display()),
        );
    assert_ne!(
        config, shipped,
        "simulation.yaml no longer uses the mock on 8089"
    );
    std::fs::write(configs.path().join("simulation.yaml"), config).unwrap();

    // A server that asks for keys, and an operator key for the scripts.
    let out = tradeloom(
        data.path(),
        &[
            "keys", "create", "--name", "windmill", "--role", "operator", "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let api = Service::serve_with(
        data.path(),
        &[
            "--auth",
            "required",
            "--http-allow",
            mock.authority(),
            "--config-dir",
            configs.path().to_str().unwrap(),
        ],
        &[],
    );
    let port = api.url.rsplit(':').next().unwrap().to_string();
    let job_file = files.path().join("current_job_id.txt");
    let database = files.path().join("results.db");
    let mut scripts = Scripts {
        env: vec![
            ("API_HOST", "127.0.0.1".to_string()),
            ("API_PORT", port),
            ("TRADELOOM_JOB_FILE", job_file.display().to_string()),
            ("TRADELOOM_RESULTS_DB", database.display().to_string()),
        ],
    };

    // Without the key: refused, and the message says which variable to set.
    let refused = scripts.run(
        "trigger_simulation.py",
        &["--config-path", "simulation.yaml"],
        None,
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("401") && err.contains("TRADELOOM_API_KEY"),
        "{err}"
    );
    assert!(!job_file.exists(), "no job, no job file");
    scripts.env.push(("TRADELOOM_API_KEY", key.clone()));

    // Nothing triggered yet: the poller has no job.
    let none = scripts.json("poll_simulation_status.py", &[]);
    assert_eq!(none["status"], "no_job", "{none}");

    // Trigger: the job id goes to the job file.
    let triggered = scripts.json(
        "trigger_simulation.py",
        &["--config-path", "simulation.yaml"],
    );
    assert_eq!(triggered["action"], "triggered", "{triggered}");
    assert_eq!(triggered["date_range"], json!(DATES), "{triggered}");
    assert_eq!(triggered["models"], json!(MODELS), "{triggered}");
    let job_id = triggered["job_id"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(&job_file).unwrap(), job_id);

    // Poll until done: every model-day, grouped by date, with positions and daily_pnl.
    let poll = scripts.run(
        "poll_simulation_status.py",
        &["--wait", "--interval", "0.1", "--timeout", "120"],
        None,
    );
    assert!(poll.status.success(), "{}", stderr(&poll));
    let polled: Value = serde_json::from_str(&stdout(&poll)).unwrap();
    assert_eq!(polled["status"], "completed", "{polled}");
    assert_eq!(polled["job_id"], job_id.as_str());
    assert_eq!(polled["date_range"], json!(DATES));
    assert_eq!(polled["last_simulation_date"], DATES[2]);
    assert_eq!(polled["progress"]["completed"], 6, "{polled}");
    let by_date = polled["results"].as_array().unwrap();
    assert_eq!(by_date.len(), 3, "{polled}");
    for (day, date) in by_date.iter().zip(DATES) {
        assert_eq!(day["date"], date);
        let models: Vec<&str> = day["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["model"].as_str().unwrap())
            .collect();
        assert_eq!(models, MODELS, "{day}");
    }
    assert!(!job_file.exists(), "a finished job's file is removed");
    let poll_file = files.path().join("job_results.json");
    std::fs::write(&poll_file, stdout(&poll)).unwrap();

    // Store, then store again (from stdin): the second stores nothing.
    let first = scripts.json(
        "store_simulation_results.py",
        &[poll_file.to_str().unwrap()],
    );
    assert_eq!(
        (&first["stored_count"], &first["already_stored"]),
        (&json!(6), &json!(0)),
        "{first}"
    );
    let again = scripts.run("store_simulation_results.py", &["-"], Some(&poll_file));
    assert!(again.status.success(), "{}", stderr(&again));
    let again: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(
        (&again["stored_count"], &again["already_stored"]),
        (&json!(0), &json!(6)),
        "{again}"
    );

    // Every model-day exactly once, equal to what the API answers.
    let results: Value = client()
        .get(format!("{}/results?job_id={job_id}&detail=full", api.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_stored_once(&database, &job_id, &results).await;

    // The dashboard's summary reads the same file.
    let summary = scripts.json("get_latest_performance.py", &[]);
    let summary = summary.as_array().unwrap();
    assert_eq!(summary.len(), 2, "{summary:?}");
    for row in summary {
        assert_eq!(row["latest_date"], DATES[2], "{row}");
    }

    // Triggering the same config again: every model-day is done, nothing runs.
    let skipped = scripts.json(
        "trigger_simulation.py",
        &["--config-path", "simulation.yaml"],
    );
    assert_eq!(skipped["action"], "skipped", "{skipped}");
    assert_eq!(skipped["last_date"], DATES[2], "{skipped}");
    assert!(!job_file.exists(), "a skipped trigger writes no job file");

    // Bad input: a poll answer without daily_pnl names the place, and nothing is written.
    let mut broken = polled.clone();
    broken["job_id"] = json!("another-job");
    broken["results"][1]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("daily_pnl");
    let broken_file = files.path().join("broken.json");
    std::fs::write(&broken_file, broken.to_string()).unwrap();
    let out = scripts.run(
        "store_simulation_results.py",
        &[broken_file.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("job_results.results[1].results[0]: `daily_pnl` is missing"),
        "{}",
        stderr(&out)
    );
    assert_stored_once(&database, &job_id, &results).await;

    // An unknown job polls as not found.
    let missing = scripts.json("poll_simulation_status.py", &["--job-id", "no-such-job"]);
    assert_eq!(missing["status"], "not_found", "{missing}");
}

/// The SQLite file has the job once with its dates, and each model-day of `results` (the API's
/// `detail=full` answer) once with its positions and PnL — and nothing else.
async fn assert_stored_once(database: &Path, job_id: &str, results: &Value) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", database.display()))
        .await
        .unwrap();
    let jobs: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT job_id, date_range, last_simulation_date FROM simulation_jobs")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].0, job_id);
    assert_eq!(
        serde_json::from_str::<Value>(&jobs[0].1).unwrap(),
        json!(DATES)
    );
    assert_eq!(jobs[0].2.as_deref(), Some(DATES[2]));

    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT model, date, cash, portfolio_value, previous_value, daily_profit, \
         daily_return_pct, positions FROM model_days WHERE job_id = ?1",
    )
    .bind(job_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_days")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(total, 6, "2 models × 3 days, each once");
    let mut stored: BTreeMap<(String, String), Row> = BTreeMap::new();
    for row in rows {
        let key = (row.0.clone(), row.1.clone());
        assert!(stored.insert(key, row).is_none(), "a model-day twice");
    }
    let items = results["results"].as_array().unwrap();
    assert_eq!(items.len(), 6, "{results}");
    for item in items {
        let key = (
            item["model"].as_str().unwrap().to_string(),
            item["date"].as_str().unwrap().to_string(),
        );
        let row = stored
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} not stored"));
        let pnl = &item["daily_pnl"];
        assert_eq!(row.2, item["cash"].as_str().unwrap(), "{item}");
        assert_eq!(row.3, pnl["portfolio_value"].as_str().unwrap(), "{item}");
        assert_eq!(row.4, pnl["previous_value"].as_str().unwrap(), "{item}");
        assert_eq!(row.5, pnl["profit"].as_str().unwrap(), "{item}");
        assert_eq!(row.6.as_deref(), pnl["return_pct"].as_str(), "{item}");
        assert_eq!(
            serde_json::from_str::<Value>(&row.7).unwrap(),
            item["positions"],
            "{item}"
        );
    }
}
