//! `POST /runs` with a script strategy: it runs sandboxed in the server and trades like the
//! built-in; the script must lie inside the server's folders; a hostile script fails its run
//! without showing the server's paths.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode as Status;
use serde_json::{Value, json};

use crate::harness::{Server, serve};

const GOOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/data/goog_1d.csv"
);
const SMA_CROSS_PY: &str = include_str!("../../../../examples/strategies/sma_cross.py");

fn spec(strategy: &str) -> String {
    format!(
        "name: script-api\nmode: backtest\ninstruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: GOOG, path: bars/goog.csv}}]\n\
         strategy: {strategy}\n\
         execution: {{fill_model: next_open, fee_bps: 0, slippage_bps: 0}}\n\
         account: {{initial_cash: 100000, currency: USD}}\n"
    )
}

/// The bars and two scripts in the data dir: the SMA cross and one that reads the store.
fn seed(data_dir: &Path) {
    std::fs::create_dir_all(data_dir.join("bars")).unwrap();
    std::fs::copy(GOOG, data_dir.join("bars/goog.csv")).unwrap();
    std::fs::create_dir_all(data_dir.join("strategies")).unwrap();
    std::fs::write(data_dir.join("strategies/sma.py"), SMA_CROSS_PY).unwrap();
    std::fs::write(
        data_dir.join("strategies/thief.py"),
        "import os\nfrom tradeloom import Strategy\n\n\
         class Thief(Strategy):\n    def __init__(self, target):\n        self.target = target\n\n\
         \x20   def on_bar(self, ctx, bar):\n        open(self.target, 'rb').read()\n",
    )
    .unwrap();
}

async fn post(s: &Server, body: Value) -> (Status, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/runs", s.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn finished(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v: Value = reqwest::get(format!("{}/runs/{id}", s.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] != "running" && v["active"] == false {
            return v;
        }
        assert!(Instant::now() < deadline, "run {id} did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_script_strategy_runs_sandboxed_like_the_built_in() {
    let s = serve(|s| s).await;
    seed(&s.data_dir());
    let (status, v) = post(
        &s,
        json!({"spec": spec("{script: strategies/sma.py, class: SmaCross, params: {fast: 10, slow: 20, quantity: 10}}")}),
    )
    .await;
    assert_eq!(status, Status::ACCEPTED, "{v}");
    let run = finished(&s, v["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["metrics"]["final_equity"], "112583.70",
        "the built-in's golden result"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_outside_the_server_folders_is_refused() {
    let s = serve(|s| s).await;
    seed(&s.data_dir());
    let outside = tempfile::tempdir().unwrap();
    let elsewhere = outside.path().join("x.py");
    std::fs::write(&elsewhere, "").unwrap();
    for (given, reason) in [
        ("../x.py", "may not contain `..`"),
        (
            elsewhere.to_str().unwrap(),
            "is outside the folders the server reads",
        ),
        ("strategies/missing.py", "does not exist"),
    ] {
        let (status, v) = post(
            &s,
            json!({"spec": spec(&format!("{{script: '{given}', class: X}}"))}),
        )
        .await;
        assert_eq!(status, Status::BAD_REQUEST, "{given}: {v}");
        assert_eq!(v["error"], "invalid_script_path", "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains(reason), "{given}: {message}");
        assert!(
            !message.contains(&s.data_dir().display().to_string()),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_reading_the_store_fails_its_run_without_showing_server_paths() {
    let s = serve(|s| s).await;
    seed(&s.data_dir());
    let db = s.data_dir().join("tradeloom.db");
    if !db.exists() {
        std::fs::write(&db, "SQLite format 3\0").unwrap();
    }
    let (status, v) = post(
        &s,
        json!({"spec": spec(&format!(
            "{{script: strategies/thief.py, class: Thief, params: {{target: '{}'}}}}",
            db.display()
        ))}),
    )
    .await;
    assert_eq!(status, Status::ACCEPTED, "{v}");
    let run = finished(&s, v["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("tried to access a file the sandbox does not allow"),
        "{error}"
    );
    let data_dir = s.data_dir().canonicalize().unwrap().display().to_string();
    assert!(!error.contains(&format!("{data_dir}/")), "{error}");
}
