//! `tradeloom flow submit|status|patch|cancel|runs`, `approve`, `reject` and `approvals`
//! against a real `tradeloom serve` on a loopback port.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tempfile::TempDir;

use crate::service::Service;
use crate::{stderr, stdout, tradeloom};

/// transform → wait 100 ms → transform.
const LINE: &str = "name: line\nnodes:\n  - {id: a, type: transform, config: {output: {x: 1}}}\n  - {id: b, type: wait, needs: [a], config: {duration_ms: 100}}\n  - {id: c, type: transform, needs: [b], config: {output: {y: '{{ a.x }}'}}}\n";

/// A transform, a human approval, and one branch per decision.
const REVIEW: &str = "name: review\ninputs:\n  qty: {default: 1}\nnodes:\n  - {id: a, type: transform, config: {output: {x: 1}}}\n  - {id: review, type: hitl, needs: [a], config: {prompt: 'Trade {{ inputs.qty }}?', expires_after: 1h, default: reject}}\n  - {id: go, type: transform, needs: [review], when: 'review.decision == \"approve\"', config: {output: {ok: true}}}\n  - {id: stop, type: transform, needs: [review], when: 'review.decision == \"reject\"', config: {output: {ok: false}}}\n";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// `tradeloom ARGS --api URL`.
fn cli(data: &Path, api: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--api", api]);
    tradeloom(data, &all)
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// The run id from `run ID started` in `flow submit` output.
fn run_id(out: &Output) -> String {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("run ") && l.contains(" started"))
        .unwrap_or_else(|| panic!("no `run ID started` line in {text}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

/// The approval id from the `tradeloom approve ID` command the CLI prints.
fn approval_id(out: &Output) -> String {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("tradeloom approve "))
        .unwrap_or_else(|| panic!("no approve command in {text}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

fn node<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {view}"))
}

/// `flow status RUN --watch --json`: the exit code and the final run.
fn watch(data: &Path, api: &str, run: &str) -> (Option<i32>, Value) {
    let out = cli(
        data,
        api,
        &[
            "flow",
            "status",
            run,
            "--watch",
            "--timeout",
            "30",
            "--json",
        ],
    );
    let view: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", both(&out)));
    (out.status.code(), view)
}

/// Submits REVIEW with `--wait`: it stops at the approval (exit 3).
fn submit_review(data: &Path, api: &str) -> (String, String) {
    let file = write(data, "review.yaml", REVIEW);
    let out = cli(
        data,
        api,
        &[
            "flow",
            "submit",
            file.to_str().unwrap(),
            "--input",
            "qty=3",
            "--wait",
            "--timeout",
            "30",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("Trade 3?"), "{text}");
    assert!(text.contains("node review: waiting for approval"), "{text}");
    (run_id(&out), approval_id(&out))
}

#[test]
fn submit_wait_follows_a_run_to_completion() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let file = write(data.path(), "line.yaml", LINE);
    let out = cli(
        data.path(),
        &api.url,
        &[
            "flow",
            "submit",
            file.to_str().unwrap(),
            "--wait",
            "--timeout",
            "30",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("workflow `line` created"), "{text}");
    // Each transition as it happened, in order, then the node table.
    let pos = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in {text}"))
    };
    assert!(pos("node a: completed") < pos("node b: queued (wait"));
    assert!(pos("node b: completed") < pos("node c: running"));
    assert!(pos("node c: completed") < pos("run: completed"));
    for row in [
        "a       transform  completed",
        "b       wait       completed",
        "c       transform  completed",
    ] {
        let row: Vec<&str> = row.split_whitespace().collect();
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().take(3).eq(row.iter().copied())),
            "no row {row:?} in {text}"
        );
    }
    let run = run_id(&out);
    assert!(
        text.trim_end().ends_with(&format!("run {run} completed")),
        "{text}"
    );

    // The same definition again: the workflow exists (409), so it is found by name, unchanged.
    let again = cli(
        data.path(),
        &api.url,
        &["flow", "submit", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", both(&again));
    let v: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(
        (v["workflow"].as_str(), &v["workflow_version"]),
        (Some("unchanged"), &Value::from(1))
    );
    // A changed definition becomes version 2.
    let changed = write(data.path(), "line2.yaml", &LINE.replace("x: 1", "x: 2"));
    let out = cli(
        data.path(),
        &api.url,
        &["flow", "submit", changed.to_str().unwrap()],
    );
    assert!(
        stdout(&out).contains("workflow `line` updated") && stdout(&out).contains("version 2"),
        "{}",
        both(&out)
    );

    let runs = cli(data.path(), &api.url, &["flow", "runs", "--json"]);
    let runs: Value = serde_json::from_str(&stdout(&runs)).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 3, "{runs}");
    let done = cli(
        data.path(),
        &api.url,
        &["flow", "runs", "--status", "completed"],
    );
    assert!(stdout(&done).contains(&run), "{}", both(&done));
    let bad = cli(data.path(), &api.url, &["flow", "runs", "--status", "done"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("unknown RunStatus `done`"),
        "{}",
        both(&bad)
    );
}

#[test]
fn approve_resumes_the_approve_branch() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let (run, approval) = submit_review(data.path(), &api.url);

    let listed = cli(data.path(), &api.url, &["approvals"]);
    assert!(
        stdout(&listed).contains(&approval) && stdout(&listed).contains("Trade 3?"),
        "{}",
        both(&listed)
    );
    let out = cli(
        data.path(),
        &api.url,
        &["approve", &approval, "--comment", "fine", "--by", "alice"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(stdout(&out).contains("approved by alice"), "{}", both(&out));

    let (code, view) = watch(data.path(), &api.url, &run);
    assert_eq!(code, Some(0), "{view}");
    assert_eq!(view["status"], "completed");
    assert_eq!(node(&view, "go")["status"], "completed");
    assert_eq!(node(&view, "stop")["status"], "skipped");
    assert_eq!(view["approvals"][0]["decided_by"], "alice");

    // Deciding twice is a conflict the server explains.
    let again = cli(data.path(), &api.url, &["reject", &approval]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already approved") && stderr(&again).contains("409"),
        "{}",
        both(&again)
    );
    let none = cli(data.path(), &api.url, &["approvals", "--json"]);
    let none: Value = serde_json::from_str(&stdout(&none)).unwrap();
    assert_eq!(none["approvals"].as_array().unwrap().len(), 0, "{none}");
}

#[test]
fn reject_resumes_the_reject_branch() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let (run, approval) = submit_review(data.path(), &api.url);
    let out = cli(
        data.path(),
        &api.url,
        &["reject", &approval, "--comment", "no"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(stdout(&out).contains("rejected"), "{}", both(&out));
    let status = cli(data.path(), &api.url, &["flow", "status", &run, "--watch"]);
    assert_eq!(status.status.code(), Some(0), "{}", both(&status));
    let text = stdout(&status);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row {id} in {text}"))
            .to_string()
    };
    assert!(row("stop").contains("completed"), "{text}");
    assert!(row("go").contains("skipped"), "{text}");
    assert!(text.contains(&format!("run {run} completed")), "{text}");
}

#[test]
fn patches_are_applied_or_rejected_with_every_reason() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let (run, approval) = submit_review(data.path(), &api.url);

    // Add a node after `go` while the run waits for the approval.
    let add = write(
        data.path(),
        "add.json",
        r#"[{"op": "add", "path": "/nodes/-", "value": {"id": "after", "type": "transform", "needs": ["go"], "config": {"output": {"done": "{{ go.ok }}"}}}}]"#,
    );
    let out = cli(
        data.path(),
        &api.url,
        &["flow", "patch", &run, add.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(stdout(&out).contains("IR version 2"), "{}", both(&out));

    // Changing a completed node and needing an unknown one (YAML this time): both reasons.
    let bad = write(
        data.path(),
        "bad.yaml",
        "- {op: replace, path: /nodes/0/config/output/x, value: 2}\n- {op: add, path: /nodes/-, value: {id: z, type: transform, needs: [ghost]}}\n",
    );
    let out = cli(
        data.path(),
        &api.url,
        &["flow", "patch", &run, bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(err.contains("rejected (2 reason(s))"), "{err}");
    assert!(err.contains("node `a` has completed"), "{err}");
    assert!(err.contains("ghost"), "{err}");
    // Not an array: refused locally.
    let out = cli(
        data.path(),
        &api.url,
        &[
            "flow",
            "patch",
            &run,
            write(data.path(), "obj.json", "{\"op\": \"add\"}")
                .to_str()
                .unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains("array of RFC 6902 operations"),
        "{}",
        both(&out)
    );

    let out = cli(data.path(), &api.url, &["approve", &approval]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let (code, view) = watch(data.path(), &api.url, &run);
    assert_eq!(code, Some(0), "{view}");
    assert_eq!(view["ir_version"], 2);
    assert_eq!(node(&view, "after")["status"], "completed");
    assert_eq!(view["patches"].as_array().unwrap().len(), 1, "{view}");
}

#[test]
fn cancel_stops_a_waiting_run() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let (run, _) = submit_review(data.path(), &api.url);
    let out = cli(
        data.path(),
        &api.url,
        &["flow", "cancel", &run, "--reason", "changed my mind"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        stdout(&out).contains(&format!("run {run} cancelled")),
        "{}",
        both(&out)
    );
    let (code, view) = watch(data.path(), &api.url, &run);
    assert_eq!(code, Some(1), "{view}");
    assert_eq!(view["status"], "cancelled");
    assert_eq!(view["approvals"][0]["status"], "cancelled");
    let again = cli(data.path(), &api.url, &["flow", "cancel", &run]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already cancelled"),
        "{}",
        both(&again)
    );
    let missing = cli(data.path(), &api.url, &["flow", "status", "no-such-run"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no workflow run `no-such-run`"),
        "{}",
        both(&missing)
    );
}

#[test]
fn waiting_past_the_timeout_exits_4() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let file = write(
        data.path(),
        "slow.yaml",
        "name: slow\nnodes:\n  - {id: w, type: wait, config: {duration_ms: 60000}}\n",
    );
    let out = cli(
        data.path(),
        &api.url,
        &[
            "flow",
            "submit",
            file.to_str().unwrap(),
            "--wait",
            "--timeout",
            "0.5",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", both(&out));
    assert!(
        stdout(&out).contains("timed out while the run is running"),
        "{}",
        both(&out)
    );
}

#[test]
fn bad_inputs_get_the_servers_reasons() {
    let data = TempDir::new().unwrap();
    let api = Service::serve(data.path(), "1");
    let file = write(
        data.path(),
        "needs-input.yaml",
        "name: needs-input\ninputs:\n  symbol: {}\nnodes:\n  - {id: a, type: transform, config: {output: {s: '{{ inputs.symbol }}'}}}\n",
    );
    let out = cli(
        data.path(),
        &api.url,
        &["flow", "submit", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let err = stderr(&out);
    assert!(err.contains("422") && err.contains("symbol"), "{err}");
    assert!(err.contains("\n  - "), "each reason on its own line: {err}");
    let out = cli(
        data.path(),
        &api.url,
        &[
            "flow",
            "submit",
            file.to_str().unwrap(),
            "--inputs-json",
            "{\"symbol\": \"AAA\"}",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["inputs"]["symbol"], "AAA", "{v}");
}

/// A loopback URL nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_bad_definition_is_reported_before_any_request() {
    let data = TempDir::new().unwrap();
    let file = write(
        data.path(),
        "bad.yaml",
        "name: bad\nnodes:\n  - {id: a, type: transform, needs: [c]}\n  - {id: b, type: transform, needs: [a, ghost]}\n  - {id: c, type: transform, needs: [b]}\n",
    );
    // Nothing listens at the URL: had the CLI sent a request, it would report that instead.
    let out = cli(
        data.path(),
        &closed_port_url(),
        &["flow", "submit", file.to_str().unwrap(), "--wait"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(err.contains("bad.yaml:4") && err.contains("ghost"), "{err}");
    assert!(err.contains("cycle"), "{err}");
    assert!(err.contains("nothing was submitted"), "{err}");
    assert!(!err.contains("cannot reach"), "{err}");
    let out = cli(
        data.path(),
        &closed_port_url(),
        &[
            "flow",
            "submit",
            write(data.path(), "ok.yaml", LINE).to_str().unwrap(),
            "--input",
            "oops",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("NAME=VALUE"), "{}", both(&out));
}

#[test]
fn a_server_that_is_down_gets_a_clear_message() {
    let data = TempDir::new().unwrap();
    let url = closed_port_url();
    for args in [
        vec!["flow", "runs"],
        vec!["flow", "status", "r1"],
        vec!["approve", "ap1"],
        vec!["approvals"],
    ] {
        let out = cli(data.path(), &url, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", both(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot reach the tradeloom API at {url}"))
                && err.contains("tradeloom serve")
                && err.contains("--api"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_api_key_is_sent_and_never_printed() {
    let data = TempDir::new().unwrap();
    let out = tradeloom(
        data.path(),
        &[
            "keys", "create", "--name", "ops", "--role", "operator", "--json",
        ],
    );
    assert!(out.status.success(), "{}", both(&out));
    let key: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let api = Service::serve_with(data.path(), &["--auth", "required"], &[]);
    let file = write(data.path(), "review.yaml", REVIEW);

    let out = cli(data.path(), &api.url, &["flow", "runs"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(stderr(&out).contains("401"), "{}", both(&out));
    let wrong = format!("{key}x");
    let out = cli(
        data.path(),
        &api.url,
        &["flow", "runs", "--api-key", &wrong],
    );
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(!both(&out).contains(&key), "{}", both(&out));

    let out = cli(
        data.path(),
        &api.url,
        &[
            "flow",
            "submit",
            file.to_str().unwrap(),
            "--wait",
            "--api-key",
            &key,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(!both(&out).contains(&key), "{}", both(&out));
    let approval = approval_id(&out);
    // From the environment; the decider defaults to the key's name.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["approve", &approval, "--api", &api.url, "--json"])
        .env("TRADELOOM_API_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let decided: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(decided["decided_by"], "ops", "{decided}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["approve", "--help"])
        .env("TRADELOOM_API_KEY", &key)
        .output()
        .unwrap();
    assert!(stdout(&help).contains("--api-key"), "{}", both(&help));
    assert!(!both(&help).contains(&key), "{}", both(&help));
}
