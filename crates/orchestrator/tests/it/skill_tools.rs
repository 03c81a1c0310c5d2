//! Workflow agents that name a registered agent (`agent: quant`) and call registered skills as
//! tools (`skill:momentum`), against mock-llm's `skill_user`: resolved and pinned when the run
//! starts (or when a patch adds the node), the skill run in the sandbox with its input and
//! output checked, its failures handed back to the model as tool errors.

use serde_json::{Value, json};
use tradeloom_orchestrator::{OrchestratorError, PatchOutcome};
use tradeloom_store::{Author, DefinitionKind, NodeStatus, RunStatus};

use crate::harness::{Env, run_sqlite, statuses};

const MOMENTUM_PY: &str = include_str!("../../../../examples/skills/momentum.py");

async fn mock_llm() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
    base
}

fn ops() -> Author {
    Author {
        key_id: Some("k".into()),
        name: "ops".into(),
    }
}

async fn register(env: &Env, llm: &str, output_schema: Value) {
    let skill = json!({"name": "momentum", "description": "Momentum signal of closes",
        "source": MOMENTUM_PY, "function": "main",
        "input_schema": {"type": "object", "properties": {
            "closes": {"type": "array", "items": {"type": "number"}, "minItems": 2},
            "lookback": {"type": "integer", "minimum": 1}},
            "required": ["closes"], "additionalProperties": false},
        "output_schema": output_schema,
        "limits": {"memory_mb": 256, "call_timeout_ms": 5000}});
    env.store
        .create_definition(
            DefinitionKind::Skill,
            "momentum",
            &skill.to_string(),
            &ops(),
        )
        .await
        .unwrap();
    let agent = json!({"name": "quant", "model": {"base_url": llm, "model": "skill_user", "max_retries": 0},
        "system_prompt": "You score momentum.", "tools": ["skill:momentum"]});
    env.store
        .create_definition(DefinitionKind::Agent, "quant", &agent.to_string(), &ops())
        .await
        .unwrap();
}

fn workflow(closes: Value) -> Value {
    let prompt = format!(
        "Score the closes with the skill.\n```json\n{}\n```",
        json!({"closes": closes, "lookback": 5})
    );
    json!({"name": "score", "nodes": [
        {"id": "score", "type": "agent", "config": {"agent": "quant", "prompt": prompt}}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_calls_a_registered_skill_as_a_tool() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        register(
            &env,
            &llm,
            json!({"type": "object", "properties": {"signal": {"enum": ["buy", "sell", "hold", "none"]}},
                   "required": ["signal"]}),
        )
        .await;
        let id = env.define(workflow(json!([100, 101, 102, 103, 104, 110]))).await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let out = env.output(&view, "score").await;
        assert_eq!(out["json"]["tool"], "skill_momentum", "{out}");
        assert_eq!(out["json"]["result"]["output"]["signal"], "buy", "{out}");
        assert_eq!(out["calls"][0]["tool"], "skill_momentum", "{out}");
        assert_eq!(out["tool_errors"], 0, "{out}");

        // The run executed, and recorded, the definition with the agent and skill pinned.
        let hash = view.definition_hash.clone().unwrap();
        let definition: Value =
            serde_json::from_str(&env.store.blob(&hash).await.unwrap().body).unwrap();
        let config = &definition["nodes"][0]["config"];
        assert_eq!(config["resolved_agent"], "quant@1", "{config}");
        assert!(config.get("agent").is_none(), "{config}");
        assert_eq!(config["tools"], json!(["skill:momentum@1"]), "{config}");
        assert_eq!(config["model"]["model"], "skill_user", "{config}");
        assert_eq!(config["system_prompt"], "You score momentum.", "{config}");
        // The workflow's own version still says `agent: quant`.
        let stored = env.store.workflow_version(&id, None).await.unwrap();
        assert_ne!(stored.definition_hash, hash);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skill_failures_go_back_to_the_model_as_tool_errors() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        // An output schema the skill's answer breaks (it has no `score`).
        register(
            &env,
            &llm,
            json!({"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]}),
        )
        .await;
        let id = env.define(workflow(json!([100, 101, 102, 103, 104, 110]))).await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let out = env.output(&view, "score").await;
        let error = out["json"]["result"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("momentum@1") && error.contains("output_schema") && error.contains("score"),
            "{out}"
        );
        assert_eq!(out["tool_errors"], 1, "{out}");

        // Arguments that break the input schema never reach the sandbox.
        let id = env
            .define(json!({"name": "bad-input", "nodes": [
                {"id": "score", "type": "agent", "config": {"agent": "quant",
                 "prompt": "Score.\n```json\n{\"closes\": [1], \"window\": 3}\n```"}}]}))
            .await;
        let run = env.start(&id, json!({})).await;
        let view = env.wait_status(&run, RunStatus::Completed).await;
        let out = env.output(&view, "score").await;
        let error = out["json"]["result"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("at least 2 items") && error.contains("unknown argument `window`"),
            "{out}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_naming_an_unknown_agent_or_skill_does_not_start() {
    run_sqlite(|env| async move {
        let id = env
            .define(json!({"name": "ghost", "nodes": [
                {"id": "a", "type": "agent", "config": {"agent": "nobody@2", "prompt": "hi"}},
                {"id": "b", "type": "agent", "config": {
                    "model": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
                    "prompt": "hi", "tools": ["skill:missing"]}}
            ]}))
            .await;
        let e = env
            .runtime
            .start_run(&id, None, &Default::default())
            .await
            .unwrap_err();
        let OrchestratorError::Unresolved { errors, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("nodes[0].config.agent: `nobody@2`: no agent `nobody`"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("nodes[1].config.tools[0]: `skill:missing`: no skill `missing`"),
            "{errors:?}"
        );
    })
    .await;
}

/// An agent node added by a runtime patch is resolved as at start (the agent and its skills
/// pinned, `resolved_agent` recorded in the run's definition) and runs; one naming an agent
/// that is not registered refuses the patch as a start is refused, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_node_added_by_a_patch_is_resolved_as_at_start() {
    run_sqlite(|env| async move {
        let llm = mock_llm().await;
        register(
            &env,
            &llm,
            json!({"type": "object", "properties": {"signal": {"enum": ["buy", "sell", "hold", "none"]}},
                   "required": ["signal"]}),
        )
        .await;
        let id = env
            .define(json!({"name": "gated-score",
                "limits": {"max_agent_nodes": 2, "max_patch_depth": 2}, "nodes": [
                {"id": "review", "type": "hitl",
                 "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}}]}))
            .await;
        let run = env.start(&id, json!({})).await;
        env.wait_status(&run, RunStatus::Waiting).await;

        let ghost = json!([{"op": "add", "path": "/nodes/-", "value": {"id": "ghost", "type": "agent",
            "config": {"agent": "nobody", "prompt": "hi"}}}]);
        let e = env.runtime.patch(&run, &ghost, "ops").await.unwrap_err();
        let OrchestratorError::Unresolved { errors, .. } = e else {
            panic!("{e:?}")
        };
        assert!(
            errors[0].starts_with("nodes[1].config.agent: `nobody`: no agent `nobody`"),
            "{errors:?}"
        );
        assert_eq!(env.runtime.view(&run).await.unwrap().ir_version, 1);

        let score = workflow(json!([100, 101, 102, 103, 104, 110]));
        let add = json!([{"op": "add", "path": "/nodes/-", "value": score["nodes"][0]}]);
        let outcome = env.runtime.patch(&run, &add, "ops").await.unwrap();
        assert_eq!(outcome, PatchOutcome::Applied { ir_version: 2 });
        let view = env.runtime.view(&run).await.unwrap();
        let hash = view.definition_hash.clone().unwrap();
        let definition: Value =
            serde_json::from_str(&env.store.blob(&hash).await.unwrap().body).unwrap();
        let config = &definition["nodes"][1]["config"];
        assert_eq!(config["resolved_agent"], "quant@1", "{config}");
        assert!(config.get("agent").is_none(), "{config}");
        assert_eq!(config["tools"], json!(["skill:momentum@1"]), "{config}");
        assert_eq!(config["model"]["model"], "skill_user", "{config}");

        // The added node runs with the agent's model and calls its skill.
        let mut done = None;
        for _ in 0..400 {
            let v = env.runtime.view(&run).await.unwrap();
            if statuses(&v).get("score") == Some(&NodeStatus::Completed) {
                done = Some(v);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let view = done.expect("the added agent node completed");
        let out = env.output(&view, "score").await;
        assert_eq!(out["json"]["result"]["output"]["signal"], "buy", "{out}");
    })
    .await;
}
