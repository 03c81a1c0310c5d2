//! `tradeloom flow validate` on the example workflow and on broken definitions.

use tempfile::TempDir;

use crate::{repo, stderr, stdout, tradeloom};

#[test]
fn the_example_workflow_compiles() {
    let data = TempDir::new().unwrap();
    let file = repo().join("examples/workflows/review-and-trade.yaml");
    let out = tradeloom(data.path(), &["flow", "validate", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("workflow `review-and-trade` compiles: 7 nodes"),
        "{text}"
    );
    let json = tradeloom(
        data.path(),
        &["flow", "validate", file.to_str().unwrap(), "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["ir_hash"].as_str().unwrap().len(), 64);
    let order: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let pos = |id: &str| order.iter().position(|n| *n == id).unwrap();
    assert!(
        pos("a") < pos("b")
            && pos("b") < pos("review")
            && pos("review") < pos("go")
            && pos("go") < pos("notify"),
        "{order:?}"
    );
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let data = TempDir::new().unwrap();
    let file = data.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nnodes:\n  - {id: a, type: transform, needs: [c]}\n  - {id: b, type: transform, needs: [a, ghost]}\n  - {id: c, type: transform, needs: [b]}\n",
    )
    .unwrap();
    let out = tradeloom(data.path(), &["flow", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.yaml:4") && err.contains("ghost"), "{err}");
    assert!(err.contains("cycle"), "{err}");
    let json = tradeloom(
        data.path(),
        &["flow", "validate", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(json.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["errors"].as_array().unwrap().len() >= 2, "{v}");
}

#[test]
fn a_bad_notify_block_is_reported_with_its_field() {
    let data = TempDir::new().unwrap();
    let file = data.path().join("chat.yaml");
    std::fs::write(
        &file,
        "name: chat\nnodes:\n  - id: review\n    type: hitl\n    config:\n      prompt: ok?\n      expires_after: 1h\n      default: reject\n      approvers: [bob]\n      notify:\n        webhook: {url: \"https://api.telegram.org/bot123:TOKEN/sendMessage\", format: telegram}\n        approver: carol\n        link_expires_after: 2h\n",
    )
    .unwrap();
    let out = tradeloom(data.path(), &["flow", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        "chat.yaml:11:",
        "nodes[0].config.notify.webhook.chat_id: node `review`: format `telegram` needs the chat",
        "nodes[0].config.notify.approver: node `review`: `carol` is not one of the node's approvers (bob)",
        "nodes[0].config.notify.link_expires_after: node `review`: 2h (7200000 ms) is longer than the approval's expires_after",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("TOKEN"), "the webhook URL is echoed: {err}");
}

#[test]
fn every_example_workflow_compiles_without_warnings() {
    let data = TempDir::new().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("examples/workflows"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
        })
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "daily-simulation.yaml",
        "review-and-trade.yaml",
        "trading-team.yaml",
    ] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
    for file in &files {
        let out = tradeloom(
            data.path(),
            &["flow", "validate", file.to_str().unwrap(), "--json"],
        );
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{}: {text}{}",
            file.display(),
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["valid"], true, "{}: {text}", file.display());
        assert_eq!(
            v["warnings"],
            serde_json::json!([]),
            "{}: {text}",
            file.display()
        );
    }
}

#[test]
fn durations_retries_and_agent_tools_are_bounded() {
    let data = TempDir::new().unwrap();
    let file = data.path().join("unbounded.yaml");
    std::fs::write(
        &file,
        "name: unbounded
nodes:
  - {id: pause, type: wait, config: {duration_ms: 18446744073709551615}}
  - id: call
    type: http
    needs: [pause]
    config: {method: GET, url: \"https://example.com\"}
    retries: {max_attempts: 1000000, backoff_ms: 0}
  - id: think
    type: agent
    needs: [pause]
    config: {model: {base_url: \"http://127.0.0.1:8089/v1\", model: m}, prompt: go, tools: [calc, shell]}
",
    )
    .unwrap();
    let out = tradeloom(data.path(), &["flow", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    for needle in [
        ":3:",
        "nodes[0].config.duration_ms: node `pause`: 18446744073709551615 ms is more than the maximum of 31622400000 ms (366 days)",
        "nodes[1].retries.max_attempts: node `call`: 1000000 attempts is more than the maximum of 20",
        "nodes[1].retries.backoff_ms: node `call`: 0 ms is less than the minimum of 100 ms",
        "nodes[2].config.tools[1]: node `think`: unknown tool `shell`; workflow agents have: calc, get_bars, get_portfolio, get_price, patch_workflow, search_news, and registered skills as `skill:NAME`",
        "4 problem(s)",
    ] {
        assert!(err.contains(needle), "`{needle}` not in\n{err}");
    }
}
