//! Agent nodes against mock-llm: answers as small instruct models write them (JSON in a fence
//! between sentences, or no JSON at all), and the model options a definition sets reaching the
//! request.

use serde_json::{Value, json};
use tradeloom_store::{NodeStatus, RunStatus};

use crate::harness::{Env, run_sqlite, statuses};

/// Serves mock-llm on a loopback port; returns its `/v1` base URL.
async fn mock_llm() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
    base
}

/// A proposed trade, a risk manager of `model` and the two branches on its verdict.
async fn risk_workflow(env: &Env, llm: &str, model: &str) -> String {
    env.define(json!({"name": format!("risk-{model}"), "nodes": [
        {"id": "trade", "type": "transform", "config": {"output": {"action": "buy", "quantity": 500}}},
        {"id": "risk", "type": "agent", "needs": ["trade"],
         "config": {"model": {"base_url": llm, "model": model},
                    "prompt": "You are the risk manager. Approve the trade only if its quantity is within the limit. Answer with a JSON object: approved, max_quantity and reason."},
         "inputs": {"trade": "{{ trade }}", "limit": "100"}},
        {"id": "vetoed", "type": "transform", "needs": ["risk"], "when": "risk.json.approved != true",
         "config": {"output": {"reason": "{{ risk.json.reason }}"}}},
        {"id": "go", "type": "transform", "needs": ["risk"], "when": "risk.json.approved == true"},
    ]}))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_json_answer_is_read() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let id = risk_workflow(&env, &llm, "fenced-risk_manager").await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let risk = env.output(&view, "risk").await;
        assert!(
            risk["content"].as_str().unwrap().contains("```json"),
            "{risk}"
        );
        assert_eq!(risk["json"]["approved"], false, "{risk}");
        assert_eq!(risk["json"]["max_quantity"], 100, "{risk}");
        let s = statuses(&view);
        assert_eq!(
            (s["vetoed"], s["go"]),
            (NodeStatus::Completed, NodeStatus::Skipped)
        );
        let vetoed = env.output(&view, "vetoed").await;
        assert_eq!(vetoed["reason"], risk["json"]["reason"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_without_json_fails_the_agent_node() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let id = risk_workflow(&env, &llm, "prose-risk_manager").await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Failed).await;
        let risk = view.nodes.iter().find(|n| n.id == "risk").unwrap();
        assert_eq!(risk.status, NodeStatus::Failed);
        let error = risk.error.as_deref().unwrap();
        assert!(
            error.starts_with("agent answer has no JSON object: I have looked"),
            "{error}"
        );
        assert!(
            view.error.as_deref().unwrap().contains("`risk` failed"),
            "{:?}",
            view.error
        );
        // Not a later template error in a dependent node.
        assert_eq!(statuses(&view)["vetoed"], NodeStatus::Skipped);

        // A task that does not ask for JSON may answer in prose.
        let id = env
            .define(json!({"name": "prose-ok", "nodes": [
                {"id": "note", "type": "agent",
                 "config": {"model": {"base_url": llm, "model": "prose-analyst"},
                            "prompt": "Say something about the market."}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        assert_eq!(env.output(&view, "note").await["json"], Value::Null);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_trading_team_example_reads_fenced_answers() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let text = include_str!("../../../../examples/workflows/trading-team.yaml")
            .replace("http://127.0.0.1:8089/v1", &llm)
            .replace("model: analyst", "model: fenced-analyst")
            .replace("model: trader", "model: fenced-trader")
            .replace("model: risk_manager", "model: fenced-risk_manager")
            // The harness's runtime resolves relative paths in its temporary folder.
            .replace(
                "universe: examples/universe",
                &format!(
                    "universe: {}/../../examples/universe",
                    env!("CARGO_MANIFEST_DIR")
                ),
            );
        let definition = tradeloom_flow::parse_definition(&text, "trading-team.yaml").unwrap();
        let id = env.define(definition.to_json_value()).await;
        // A limit of 0 refuses any trade: the risk manager vetoes it and no human is asked.
        let run = env.start(&id, json!({"limit": 0})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let risk = env.output(&view, "risk").await;
        assert_eq!(risk["json"]["approved"], false, "{risk}");
        let s = statuses(&view);
        assert_eq!(
            (s["vetoed"], s["review"]),
            (NodeStatus::Completed, NodeStatus::Skipped),
            "{s:?}"
        );
        let vetoed = env.output(&view, "vetoed").await;
        assert_eq!(vetoed["reason"], risk["json"]["reason"]);
        assert!(vetoed["proposed"].is_object(), "{vetoed}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_options_reach_the_request() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let id = env
            .define(json!({"name": "options", "nodes": [
                {"id": "echo", "type": "agent",
                 "config": {"model": {"base_url": llm, "model": "echo-params",
                                      "temperature": 0.25, "max_tokens": 77,
                                      "timeout_ms": 5000, "max_retries": 1},
                            "prompt": "Which parameters did you get? Answer in JSON."}},
                {"id": "slow", "type": "agent", "needs": ["echo"],
                 "config": {"model": {"base_url": llm, "model": "fault-slow-5000",
                                      "timeout_ms": 200, "max_retries": 0},
                            "prompt": "Take your time."}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Failed).await;
        let echo = env.output(&view, "echo").await;
        assert_eq!(
            echo["json"],
            json!({"model": "echo-params", "temperature": 0.25, "max_tokens": 77})
        );
        // The request timeout applies, with no retry: one attempt, failed after 200 ms.
        let slow = view.nodes.iter().find(|n| n.id == "slow").unwrap();
        let error = slow.error.as_deref().unwrap();
        assert!(error.contains("timed out after 200 ms"), "{error}");
        assert!(!error.contains("gave up after"), "{error}");
    })
    .await;
}

/// A small model writing its `calc` call in the text (Qwen's `<tool_call>` tags) gets it run,
/// counted apart; `tool_choice` reaches the request of a node that offers tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tool_calls_in_the_text_run_and_tool_choice_is_sent() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let id = env
            .define(json!({"name": "small-models", "nodes": [
                {"id": "calc", "type": "agent",
                 "config": {"model": {"base_url": llm, "model": "content-tagged-calculator"},
                            "tools": ["calc"],
                            "prompt": "Work it out.\ncalc: (2 + 3) * 4"}},
                {"id": "echo", "type": "agent",
                 "config": {"model": {"base_url": llm, "model": "echo-params",
                                      "tool_choice": "required"},
                            "tools": ["calc"],
                            "prompt": "Which parameters did you get? Answer in JSON."}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let calc = env.output(&view, "calc").await;
        assert_eq!(calc["json"]["value"], "20", "{calc}");
        assert_eq!(calc["content_tool_calls"], 1, "{calc}");
        assert_eq!(calc["tool_calls"], 1, "{calc}");
        let echo = env.output(&view, "echo").await;
        assert_eq!(echo["json"]["tool_choice"], "required", "{echo}");
        assert!(echo.get("content_tool_calls").is_none(), "{echo}");
    })
    .await;
}
