//! Structured logs: `--log-format json` gives one JSON object per stderr line with the span
//! fields (run_id, trace_id, node, …) flattened in; `text` gives human lines; a bad value is a
//! clap error. Over `tradeloom run`, and `tradeloom serve` driving a workflow run over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{repo, stderr, stdout, tradeloom};

/// Every non-empty line of `text` as a JSON object; panics naming the first line that is not.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"));
            assert!(v.is_object(), "not an object: {l}");
            for key in ["timestamp", "level", "target", "message"] {
                assert!(v.get(key).is_some(), "no `{key}` in {l}");
            }
            v
        })
        .collect()
}

/// The trace id of a tradeloom id (a UUID): its hex digits.
fn trace_of(id: &str) -> String {
    id.replace('-', "")
}

fn spec() -> String {
    repo()
        .join("examples/specs/goog_sma_cross.yaml")
        .display()
        .to_string()
}

#[test]
fn run_logs_json_lines_carrying_the_run_id_and_trace_id() {
    let data = TempDir::new().unwrap();
    let out = tradeloom(
        data.path(),
        &[
            "run",
            &spec(),
            "--json",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // stdout is still the command's own output.
    let result: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let run_id = result["run_id"].as_str().unwrap();
    let lines = json_lines(&stderr(&out));
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains(&"run started"), "{messages:?}");
    assert!(messages.contains(&"run completed"), "{messages:?}");
    let in_run: Vec<&Value> = lines
        .iter()
        .filter(|l| l["spans"].as_str().is_some_and(|s| s.contains("run")))
        .collect();
    assert!(in_run.len() >= 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["run_id"], run_id, "{line}");
        assert_eq!(line["trace_id"], trace_of(run_id), "{line}");
    }
    let completed = lines
        .iter()
        .find(|l| l["message"] == "run completed")
        .unwrap();
    assert_eq!(completed["bars"], result["metrics"]["bars"]);
    assert_eq!(completed["level"], "INFO");
}

#[test]
fn text_format_is_for_humans_and_bad_values_are_refused() {
    let data = TempDir::new().unwrap();
    let out = tradeloom(
        data.path(),
        &[
            "run",
            &spec(),
            "--log-format",
            "text",
            "--log-level",
            "info",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{err}");
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "a JSON line in text mode: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO") && l.contains("run{run_id=") && l.contains("run started")),
        "{err}"
    );

    // The environment variable selects the format too.
    let out = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["run", &spec(), "--log-level", "info", "--data-dir"])
        .arg(data.path())
        .env("TRADELOOM_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(json_lines(&stderr(&out)).len() >= 2);

    // One-shot commands log warnings only by default: a clean run writes nothing to stderr.
    let out = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["run", &spec(), "--data-dir"])
        .arg(data.path())
        .env_remove("RUST_LOG")
        .env_remove("TRADELOOM_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    let out = tradeloom(data.path(), &["run", &spec(), "--log-format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("invalid value 'xml' for '--log-format")
            && err.contains("[possible values: json, text]"),
        "{err}"
    );
    let out = tradeloom(data.path(), &["run", &spec(), "--log-level", "info,x=loud"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--log-level") && err.contains("expected a level"),
        "{err}"
    );
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_a_workflow_run_under_its_run_id_and_trace_id() {
    let data = TempDir::new().unwrap();
    let log_path = data.path().join("serve.stderr");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--rate-limit-per-key",
            "0",
            "--rate-limit-runs-light",
            "0",
            "--log-format",
            "json",
            "--log-level",
            "info,tradeloom_server=debug",
            "--data-dir",
        ])
        .arg(data.path())
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let start = first.find("http://").expect("the listening line");
    let url = first[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    tradeloom_llm::install_crypto_provider();
    let client = reqwest::Client::new();
    let definition = json!({
        "name": "logged",
        "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            {"id": "b", "type": "transform", "needs": ["a"], "config": {"output": {"y": "{{ a.x }}"}}}
        ]
    });
    let (status, headers, created) =
        send(client.post(format!("{url}/workflows")).json(&definition)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // Without trace headers the server derives one from the request id it assigned.
    let request_id = headers["x-request-id"].to_str().unwrap();
    let trace = headers["x-trace-id"].to_str().unwrap();
    assert_eq!(trace, trace_of(request_id));
    let workflow = created["id"].as_str().unwrap();

    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, headers, started) = send(
        client
            .post(format!("{url}/workflows/{workflow}/runs"))
            .header(
                "traceparent",
                format!("00-{caller_trace}-00f067aa0ba902b7-01"),
            )
            .json(&json!({"inputs": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(headers["x-trace-id"], caller_trace);
    let run_id = started["run_id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, view) = send(client.get(format!("{url}/workflow-runs/{run_id}"))).await;
        if view["status"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline && view["status"] != "failed",
            "{view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last node's log line may follow the run's completion by a moment.
    let wanted = |text: &str| {
        text.contains("workflow run is now completed")
            && text.matches("\"node completed\"").count() >= 2
    };
    while !wanted(&std::fs::read_to_string(&log_path).unwrap()) {
        assert!(Instant::now() < deadline, "the run's lines never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    let lines = json_lines(&std::fs::read_to_string(&log_path).unwrap());
    let of_run: Vec<&Value> = lines.iter().filter(|l| l["run_id"] == run_id).collect();
    let run_trace = trace_of(&run_id);
    for line in &of_run {
        assert_eq!(line["trace_id"], run_trace, "{line}");
    }
    let message_of = |m: &str| of_run.iter().filter(|l| l["message"] == m).count();
    assert_eq!(message_of("workflow run created"), 1, "{of_run:#?}");
    assert_eq!(
        message_of("workflow run is now completed"),
        1,
        "{of_run:#?}"
    );
    let mut nodes: Vec<&str> = of_run
        .iter()
        .filter(|l| l["message"] == "node completed")
        .inspect(|l| assert!(l["attempt"].is_u64(), "{l}"))
        .map(|l| l["node"].as_str().unwrap())
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["a", "b"], "{of_run:#?}");
    // Every node line is inside the node's span, and every signal line in a signal span.
    for line in &of_run {
        let spans = line["spans"].as_str().unwrap_or_default();
        assert!(
            spans.contains("node") || spans.contains("signal") || spans.contains("request"),
            "{line}"
        );
    }
    // The request that started the run logged under the caller's trace id.
    let request_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"] == "request completed"
                && l["path"] == format!("/workflows/{workflow}/runs")
        })
        .collect();
    assert_eq!(request_lines.len(), 1, "{lines:#?}");
    assert_eq!(request_lines[0]["trace_id"], caller_trace);
    assert_eq!(request_lines[0]["status"], 201);
    assert_eq!(request_lines[0]["method"], "POST");
}
