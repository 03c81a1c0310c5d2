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

/// A risk manager of `model` whose `fallback` refuses the trade, tried `attempts` times.
async fn risk_with_fallback(env: &Env, llm: &str, model: &str, attempts: u32) -> String {
    env.define(json!({"name": format!("fallback-{model}"), "nodes": [
        {"id": "trade", "type": "transform", "config": {"output": {"action": "buy", "quantity": 500}}},
        {"id": "risk", "type": "agent", "needs": ["trade"],
         "config": {"model": {"base_url": llm, "model": model, "max_retries": 0},
                    "prompt": "You are the risk manager. Answer with a JSON object: approved, max_quantity and reason.",
                    "tools": ["calc"], "max_steps": 2,
                    "fallback": {"approved": false, "reason": "no usable answer for {{ trade.action }}"}},
         "inputs": {"trade": "{{ trade }}", "limit": "100"},
         "retries": {"max_attempts": attempts, "backoff_ms": 100}},
        {"id": "vetoed", "type": "transform", "needs": ["risk"], "when": "risk.json.approved != true",
         "config": {"output": {"reason": "{{ risk.json.reason }}", "fell_back": "{{ risk.fallback }}"}}},
        {"id": "go", "type": "transform", "needs": ["risk"], "when": "risk.json.approved == true"},
    ]}))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fallback_stands_in_once_the_attempts_give_no_json() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let id = risk_with_fallback(&env, &llm, "prose", 2).await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let risk = env.output(&view, "risk").await;
        assert_eq!(risk["fallback"], true, "{risk}");
        assert_eq!(
            risk["json"],
            json!({"approved": false, "reason": "no usable answer for buy"})
        );
        let reason = risk["fallback_reason"].as_str().unwrap();
        assert!(
            reason.starts_with("agent answer has no JSON object: I have looked"),
            "{reason}"
        );
        assert_eq!(risk["attempt"], 2, "both attempts were made first: {risk}");
        let node = view.nodes.iter().find(|n| n.id == "risk").unwrap();
        assert_eq!((node.status, node.attempts), (NodeStatus::Completed, 2));
        assert_eq!(
            node.error.as_deref(),
            Some(format!("completed with its fallback: {reason}").as_str())
        );
        let s = statuses(&view);
        assert_eq!(
            (s["vetoed"], s["go"]),
            (NodeStatus::Completed, NodeStatus::Skipped)
        );
        let vetoed = env.output(&view, "vetoed").await;
        assert_eq!(
            vetoed,
            json!({"reason": "no usable answer for buy", "fell_back": true})
        );
        // The journal says why: one retry, then a completion marked as the fallback.
        let events = env.events(&run).await;
        let of_risk: Vec<_> = events
            .iter()
            .filter(|e| e.node_id.as_deref() == Some("risk"))
            .collect();
        assert_eq!(
            of_risk.iter().filter(|e| e.kind == "node_retrying").count(),
            1
        );
        let completed = of_risk.iter().find(|e| e.kind == "node_completed").unwrap();
        assert_eq!(
            completed.payload["fallback"], true,
            "{:?}",
            completed.payload
        );
        assert_eq!(completed.payload["fallback_reason"], reason);
        assert!(of_risk.iter().all(|e| e.kind != "node_failed"));
    })
    .await;
}

/// `max_steps` spent on bad tool calls is not an answer either: the fallback at once (that
/// failure is not retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fallback_stands_in_when_max_steps_pass_without_an_answer() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let id = risk_with_fallback(&env, &llm, "fault-unknown-tool", 3).await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let risk = env.output(&view, "risk").await;
        assert_eq!(risk["fallback"], true, "{risk}");
        assert_eq!(risk["attempt"], 1, "not retried: {risk}");
        assert!(
            risk["fallback_reason"]
                .as_str()
                .unwrap()
                .starts_with("the agent did not finish within max_steps (2)"),
            "{risk}"
        );
    })
    .await;
}

/// An endpoint that cannot be reached is not a bad answer: the node fails after its attempts,
/// fallback or not, and so does the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_error_never_takes_the_fallback() {
    run_sqlite(|env| async move {
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            format!("http://{}/v1", listener.local_addr().unwrap())
        };
        let id = risk_with_fallback(&env, &closed, "prose", 2).await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Failed).await;
        let risk = view.nodes.iter().find(|n| n.id == "risk").unwrap();
        assert_eq!((risk.status, risk.attempts), (NodeStatus::Failed, 2));
        let error = risk.error.as_deref().unwrap();
        assert!(error.contains("cannot reach"), "{error}");
        assert!(risk.output.is_none());
        assert_eq!(statuses(&view)["vetoed"], NodeStatus::Skipped);
    })
    .await;
}

/// The shipped trading team with a model that never answers JSON: every agent falls back, the
/// risk manager refuses, and the run ends `completed` through `vetoed` with the reasons recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_trading_team_completes_on_its_fallbacks_with_a_prose_model() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let text = include_str!("../../../../examples/workflows/trading-team.yaml")
            .replace("http://127.0.0.1:8089/v1", &llm)
            .replace("model: analyst", "model: prose")
            .replace("model: trader", "model: prose")
            .replace("model: risk_manager", "model: prose")
            // Three attempts each as shipped, with shorter pauses between them.
            .replace("backoff_ms: 500", "backoff_ms: 100")
            .replace(
                "universe: examples/universe",
                &format!(
                    "universe: {}/../../examples/universe",
                    env!("CARGO_MANIFEST_DIR")
                ),
            );
        let definition = tradeloom_flow::parse_definition(&text, "trading-team.yaml").unwrap();
        let id = env.define(definition.to_json_value()).await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let agents = [
            "fundamental",
            "technical",
            "news",
            "bull_1",
            "bear_1",
            "bull_2",
            "bear_2",
            "trader",
            "risk",
        ];
        for node in agents {
            let out = env.output(&view, node).await;
            assert_eq!(out["fallback"], true, "{node}: {out}");
            assert_eq!(out["attempt"], 3, "{node}: {out}");
            assert!(
                out["fallback_reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("agent answer has no JSON object")),
                "{node}: {out}"
            );
        }
        assert_eq!(env.output(&view, "trader").await["json"]["action"], "hold");
        let s = statuses(&view);
        assert_eq!(
            (s["vetoed"], s["review"], s["order"]),
            (
                NodeStatus::Completed,
                NodeStatus::Skipped,
                NodeStatus::Skipped
            ),
            "{s:?}"
        );
        let vetoed = env.output(&view, "vetoed").await;
        assert_eq!(vetoed["reason"], "risk manager: no usable answer");
        let fell_back = env
            .events(&run)
            .await
            .iter()
            .filter(|e| e.kind == "node_completed" && e.payload["fallback"] == true)
            .count();
        assert_eq!(fell_back, agents.len());
    })
    .await;
}

/// An answer whose JSON does not meet the node's `output_schema` (a field missing, a value of
/// the wrong type) is no more usable than prose: retried, then the fallback; one that meets it
/// is the node's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_that_breaks_the_output_schema_takes_the_fallback() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        let define = |name: &str, required: Value| {
            let env = &env;
            let llm = llm.clone();
            let name = name.to_string();
            async move {
                env.define(json!({"name": name, "nodes": [
                    {"id": "trade", "type": "transform", "config": {"output": {"action": "buy", "quantity": 500}}},
                    {"id": "risk", "type": "agent", "needs": ["trade"],
                     "config": {"model": {"base_url": llm, "model": "risk_manager", "max_retries": 0},
                                "prompt": "You are the risk manager. Approve the trade only if its quantity is within the limit. Answer with a JSON object: approved, max_quantity and reason.",
                                "output_schema": {"type": "object", "required": required,
                                    "properties": {"approved": {"type": "boolean"}, "reason": {"type": "string"}}},
                                "fallback": {"approved": false, "reason": "no usable verdict"}},
                     "inputs": {"trade": "{{ trade }}", "limit": "100"},
                     "retries": {"max_attempts": 2, "backoff_ms": 100}},
                    {"id": "vetoed", "type": "transform", "needs": ["risk"], "when": "risk.json.approved != true",
                     "config": {"output": {"reason": "{{ risk.json.reason }}"}}},
                ]}))
                .await
            }
        };
        // The mock's risk manager answers approved, max_quantity and reason: a schema asking
        // for a `verdict` it never writes is broken by every answer.
        let broken = define("schema-broken", json!(["approved", "verdict"])).await;
        let run = env.start(&broken, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let risk = env.output(&view, "risk").await;
        assert_eq!(risk["fallback"], true, "{risk}");
        assert_eq!(risk["attempt"], 2, "{risk}");
        let reason = risk["fallback_reason"].as_str().unwrap();
        assert!(
            reason.starts_with("agent answer does not match output_schema:")
                && reason.contains("verdict"),
            "{reason}"
        );
        assert_eq!(env.output(&view, "vetoed").await["reason"], "no usable verdict");
        // A schema the answers meet: the model's own verdict.
        let met = define("schema-met", json!(["approved", "reason"])).await;
        let run = env.start(&met, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let risk = env.output(&view, "risk").await;
        assert!(risk.get("fallback").is_none(), "{risk}");
        assert_eq!(risk["json"]["approved"], false, "{risk}");
        assert_eq!(risk["json"]["max_quantity"], 100, "{risk}");
    })
    .await;
}
