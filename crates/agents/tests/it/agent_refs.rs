//! Simulation models that name a registered agent (`agent: analyst@1`, or `agent: analyst` for
//! the latest): the agent's model block is resolved when the job is created and pinned in the
//! job's config, so a later version of the agent makes a new job and never changes this one.

use std::sync::Arc;

use serde_json::{Value, json};
use tradeloom_agents::{
    AgentError, Simulator, SimulatorOptions, TriggerOutcome, config_from_value, run_to_end,
};
use tradeloom_store::{Author, DefinitionKind, JobStatus, open_store};

use crate::{Market, start_mock};

async fn simulator(market: &Market) -> Arc<Simulator> {
    let store = open_store(&market.root().join("t.db").display().to_string())
        .await
        .unwrap();
    Simulator::new(
        store,
        SimulatorOptions {
            data_dir: market.root().join("data"),
            max_concurrent_jobs: 1,
            base_dir: market.root().to_path_buf(),
            outbound: crate::loopback(),
        },
    )
}

fn config(models: Value) -> Value {
    json!({
        "models": models,
        "universe": {"path": "universe"},
        "start_date": "2025-01-02",
        "end_date": "2025-01-03",
        "max_steps": 8,
    })
}

fn agent(base: &str, policy: &str) -> String {
    json!({"name": "analyst", "model": {"base_url": base, "model": policy, "max_retries": 0}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_naming_a_registered_agent_runs_with_its_pinned_version() {
    let market = Market::create();
    let sim = simulator(&market).await;
    let base = start_mock().await;
    let by = Author {
        key_id: Some("k1".into()),
        name: "ops".into(),
    };
    let store = sim.store();
    store
        .create_definition(
            DefinitionKind::Agent,
            "analyst",
            &agent(&base, "momentum"),
            &by,
        )
        .await
        .unwrap();
    store
        .update_definition(
            DefinitionKind::Agent,
            "analyst",
            &agent(&base, "buy_and_hold"),
            &by,
        )
        .await
        .unwrap();

    let pinned = config_from_value(
        &config(json!([{"name": "a", "agent": "analyst@1", "tool_choice": "required"}])),
        market.root(),
    )
    .unwrap();
    let (outcome, job) = run_to_end(&sim, &pinned).await.unwrap();
    assert!(matches!(outcome, TriggerOutcome::Started { .. }));
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let model = &job.config["models"][0];
    assert_eq!(model["resolved_agent"], "analyst@1", "{model}");
    assert_eq!(
        model["model"], "momentum",
        "version 1's model, not the latest"
    );
    assert_eq!(model["base_url"], base.as_str());
    assert_eq!(
        model["tool_choice"], "required",
        "given beside `agent`, kept"
    );
    assert!(model.get("agent").is_none(), "{model}");
    let report = store.job_report(&job.id).await.unwrap();
    assert_eq!(report.progress.completed, 2, "1 model × 2 days");

    // `agent: analyst` is the latest (2) now: another job. Asked again, the same job.
    let latest = config_from_value(
        &config(json!([{"name": "a", "agent": "analyst", "tool_choice": "required"}])),
        market.root(),
    )
    .unwrap();
    let (_, job2) = run_to_end(&sim, &latest).await.unwrap();
    assert_ne!(job2.id, job.id);
    assert_eq!(job2.config["models"][0]["resolved_agent"], "analyst@2");
    assert_eq!(job2.config["models"][0]["model"], "buy_and_hold");
    let (again, job3) = run_to_end(&sim, &latest).await.unwrap();
    assert!(matches!(again, TriggerOutcome::Current(_)), "{again:?}");
    assert_eq!(job3.id, job2.id);
    // The stored config reads back (the driver re-reads it): `resolved_agent` with the fields.
    config_from_value(&job2.config, market.root()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_agents_and_mixed_fields_are_errors_naming_them() {
    let market = Market::create();
    let sim = simulator(&market).await;
    let base = start_mock().await;
    let by = Author {
        key_id: None,
        name: "anonymous".into(),
    };
    sim.store()
        .create_definition(
            DefinitionKind::Agent,
            "analyst",
            &agent(&base, "momentum"),
            &by,
        )
        .await
        .unwrap();
    for (reference, wanted) in [
        ("nobody", "no agent `nobody`"),
        (
            "analyst@7",
            "no version 7 of agent `analyst` (its latest is 1)",
        ),
    ] {
        let c = config_from_value(
            &config(json!([{"name": "a", "agent": reference}])),
            market.root(),
        )
        .unwrap();
        let e = run_to_end(&sim, &c).await.unwrap_err();
        assert!(matches!(e, AgentError::Config { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("models[0].agent") && text.contains(wanted),
            "{text}"
        );
    }
    assert!(
        sim.store().all_jobs().await.unwrap().is_empty(),
        "no job was made"
    );
    let e = config_from_value(
        &config(json!([{"name": "a", "agent": "analyst", "model": "m"}])),
        market.root(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("models[0].model") && e.contains("not both"),
        "{e}"
    );
    let e = config_from_value(
        &config(json!([{"name": "a", "agent": "Analyst@x"}])),
        market.root(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("models[0].agent"), "{e}");
}

/// A registered agent's `memory` settings become the model's (unless it gives its own): the
/// job's config pins them and the model reflects and remembers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_memory_settings_apply_to_the_model() {
    let market = Market::create();
    let sim = simulator(&market).await;
    let base = start_mock().await;
    let by = Author {
        key_id: Some("k1".into()),
        name: "ops".into(),
    };
    let store = sim.store();
    let body = json!({"name": "reflective",
                      "model": {"base_url": base, "model": "momentum", "max_retries": 0},
                      "memory": {"lessons": 2}});
    store
        .create_definition(DefinitionKind::Agent, "reflective", &body.to_string(), &by)
        .await
        .unwrap();
    let resolved = config_from_value(
        &config(json!([{"name": "r", "agent": "reflective"},
                       {"name": "own", "agent": "reflective", "memory": {"lessons": 1, "reflect": false}}])),
        market.root(),
    )
    .unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(
        job.config["models"][0]["memory"],
        json!({"lessons": 2, "max_tokens": 600, "reflect": true})
    );
    assert_eq!(
        job.config["models"][1]["memory"]["reflect"], false,
        "the model's own wins"
    );
    let r = store.model_day_memories(&job.id, Some("r")).await.unwrap();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|d| d.memory["lesson"].is_string()));
    let own = store
        .model_day_memories(&job.id, Some("own"))
        .await
        .unwrap();
    assert!(own.iter().all(|d| d.memory.get("lesson").is_none()));
}

/// What `echo-request` was sent on the first day of model `model` of job `job_id`: its system
/// message and the names of the tools offered.
async fn echoed(store: &dyn tradeloom_store::Store, job_id: &str, model: &str) -> Value {
    let day = chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
    let key = tradeloom_store::ModelDayKey::new(job_id, model, day);
    let logs = store.reasoning_logs(&key).await.unwrap();
    let answer = logs
        .iter()
        .find(|m| m.role == "assistant")
        .unwrap_or_else(|| panic!("{key}: no answer in {logs:?}"));
    serde_json::from_str(&answer.content).unwrap()
}

/// A registered agent's system prompt follows the simulation's, and its tools (with `buy` and
/// `sell`, which every session has) are the session's whole tool set; an agent without tools
/// leaves the simulation's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_system_prompt_and_tools_shape_the_session() {
    let market = Market::create();
    let sim = simulator(&market).await;
    let base = start_mock().await;
    let by = Author {
        key_id: Some("k1".into()),
        name: "ops".into(),
    };
    let store = sim.store();
    let cautious = json!({"name": "cautious",
                          "model": {"base_url": base, "model": "echo-request", "max_retries": 0},
                          "system_prompt": "You are a cautious analyst. Never buy more than 5 shares.",
                          "tools": ["get_bars", "calc"]});
    store
        .create_definition(
            DefinitionKind::Agent,
            "cautious",
            &cautious.to_string(),
            &by,
        )
        .await
        .unwrap();
    let plain = json!({"name": "plain",
                       "model": {"base_url": base, "model": "echo-request", "max_retries": 0}});
    store
        .create_definition(DefinitionKind::Agent, "plain", &plain.to_string(), &by)
        .await
        .unwrap();
    let resolved = config_from_value(
        &config(json!([{"name": "c", "agent": "cautious"}, {"name": "p", "agent": "plain"}])),
        market.root(),
    )
    .unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    // Pinned with the job: a new version of the agent is a new job.
    let c = &job.config["models"][0];
    assert_eq!(c["resolved_agent"], "cautious@1", "{c}");
    assert_eq!(
        c["system_prompt"],
        "You are a cautious analyst. Never buy more than 5 shares."
    );
    assert_eq!(c["tools"], json!(["get_bars", "calc"]));
    let p = &job.config["models"][1];
    assert!(
        p.get("tools").is_none() && p.get("system_prompt").is_none(),
        "{p}"
    );

    let sent = echoed(&**store, &job.id, "c").await;
    let system = sent["system"].as_str().unwrap();
    assert!(
        system.starts_with("You are a disciplined portfolio manager")
            && system.ends_with("\n\nYou are a cautious analyst. Never buy more than 5 shares."),
        "{system}"
    );
    assert!(system.contains("- get_bars: "), "{system}");
    assert!(
        !system.contains("- get_price: "),
        "only offered tools: {system}"
    );
    assert_eq!(sent["tools"], json!(["buy", "sell", "calc", "get_bars"]));

    let sent = echoed(&**store, &job.id, "p").await;
    assert_eq!(sent["system"], tradeloom_agents::SYSTEM_PROMPT);
    assert_eq!(
        sent["tools"],
        json!(tradeloom_agents::TOOL_NAMES),
        "the simulation's own tools"
    );
}

/// A tool a simulation does not have refuses the job, naming the agent and the tool; no job is
/// made. So does a model's own `tools` list, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_listing_a_tool_simulations_lack_is_refused() {
    let market = Market::create();
    let sim = simulator(&market).await;
    let base = start_mock().await;
    let by = Author {
        key_id: None,
        name: "anonymous".into(),
    };
    for (name, tool, wanted) in [
        (
            "planner",
            "patch_workflow",
            "simulations have no tool `patch_workflow`",
        ),
        (
            "skilled",
            "skill:momentum",
            "registered skills are tools of workflow agent nodes only; simulations cannot call \
             them (use the agent in a workflow `agent` node, or register a version of it without \
             the skill)",
        ),
    ] {
        let body = json!({"name": name,
                          "model": {"base_url": base, "model": "momentum"},
                          "tools": ["calc", tool]});
        sim.store()
            .create_definition(DefinitionKind::Agent, name, &body.to_string(), &by)
            .await
            .unwrap();
        let c = config_from_value(
            &config(json!([{"name": "a", "agent": name}])),
            market.root(),
        )
        .unwrap();
        let e = run_to_end(&sim, &c).await.unwrap_err();
        let AgentError::AgentTool {
            agent,
            tool: named,
            place,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(
            (agent.as_str(), named.as_str()),
            (format!("{name}@1").as_str(), tool)
        );
        assert_eq!(place, "config: models[0].agent");
        let text = e.to_string();
        assert!(
            text.contains(&format!("agent `{name}@1` lists tool `{tool}`"))
                && text.contains(wanted),
            "{text}"
        );
    }
    assert!(
        sim.store().all_jobs().await.unwrap().is_empty(),
        "no job was made"
    );

    for (model, wanted) in [
        (
            json!({"name": "a", "base_url": base, "model": "momentum", "tools": ["calc", "teleport"]}),
            "models[0].tools[1]: simulations have no tool `teleport`",
        ),
        (
            json!({"name": "a", "base_url": base, "model": "momentum", "tools": ["calc", "calc"]}),
            "models[0].tools[1]: `calc` is listed twice",
        ),
        (
            json!({"name": "a", "agent": "planner", "tools": ["calc"]}),
            "models[0].tools: `tools` comes from agent `planner`",
        ),
    ] {
        let e = config_from_value(&config(json!([model])), market.root())
            .unwrap_err()
            .to_string();
        assert!(e.contains(wanted), "{e}");
    }
}
