//! End-to-end tests of the `tradeloom` binary, one test binary.
#![allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error

mod access;
mod accounts;
mod ai_trader;
mod bad_input;
mod bridge;
mod cluster;
mod commands;
mod connectivity;
mod deploy;
mod docs;
mod drills;
mod effects;
mod flow;
mod flow_client;
mod golden;
mod health;
mod job_control;
mod killswitch;
mod layering;
mod lifecycle;
mod local_llm;
mod logs;
mod memory;
mod metrics;
mod outbound;
mod paper;
mod paper_reconcile;
mod reconcile;
mod registry;
mod run;
mod runtime_processes;
mod script;
mod service;
mod simulate;
mod ssrf;
mod sweep;
mod trader;
mod universe;
mod websocket_feed;
mod windmill;
mod workflow_examples;
mod workflow_kill;
mod workflows;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The golden reference results kept in the repository (`tests/golden/`).
pub fn golden_dir() -> PathBuf {
    repo().join("tests/golden")
}

/// Runs `tradeloom ARGS` with `--data-dir DIR`.
pub fn tradeloom(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .current_dir(repo())
        // The default model endpoint and key of the environment stay out of tests that do not
        // set them.
        .env_remove("OPENAI_API_BASE")
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("tradeloom runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Sends SIGTERM to process `pid` (`kill -TERM`), which must exist.
pub fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}");
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a spec with `--json` and returns the parsed last line and the run folder.
pub fn run_json(data_dir: &Path, spec: &Path) -> (serde_json::Value, PathBuf) {
    let out = tradeloom(data_dir, &["run", spec.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "run failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let last = text.lines().last().expect("a line of output");
    let value: serde_json::Value = serde_json::from_str(last).expect("the last line is JSON");
    let dir = PathBuf::from(value["run_dir"].as_str().expect("run_dir"));
    (value, dir)
}

/// Writes a spec into `dir` whose data path points at `data`.
pub fn write_spec(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// A one-instrument spec over `data` with the given fill model.
pub fn simple_spec(data: &Path, fill_model: &str) -> String {
    format!(
        "name: t\nmode: backtest\ninstruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: GOOG, path: {}}}]\n\
         strategy: {{name: sma_cross, params: {{fast: 10, slow: 20, quantity: 10}}}}\n\
         execution: {{fill_model: {fill_model}}}\naccount: {{initial_cash: 100000, currency: USD}}\n",
        data.display()
    )
}
