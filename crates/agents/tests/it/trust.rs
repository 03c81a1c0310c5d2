//! Issue 12: simulation results that must not mislead — days refused by the kill switch, tool
//! errors of failed days, replies cut off by `max_tokens`, and models that never call a tool.
//! A real SQLite store, a real kill switch folder, models on a real mock-llm.

use std::sync::Arc;

use serde_json::{Value, json};
use tradeloom_agents::{
    Simulator, SimulatorOptions, TriggerOutcome, config_from_value, run_to_end,
};
use tradeloom_core::{Currency, Money};
use tradeloom_safety::{KillSwitch, Scope};
use tradeloom_store::{JobStatus, ResultsFilter, open_store};

use crate::{Market, start_mock};

async fn simulator(market: &Market) -> Arc<Simulator> {
    let location = market.root().join("db").join("t.db").display().to_string();
    Simulator::new(
        open_store(&location).await.unwrap(),
        SimulatorOptions {
            data_dir: market.root().join("data"),
            max_concurrent_jobs: 1,
            base_dir: market.root().to_path_buf(),
            outbound: crate::loopback(),
        },
    )
}

fn config(base: &str, models: &[(&str, &str)], end: &str) -> Value {
    let models: Vec<_> = models
        .iter()
        .map(|(name, policy)| json!({"name": name, "base_url": base, "model": policy, "max_retries": 0}))
        .collect();
    json!({
        "models": models,
        "universe": {"path": "universe"},
        "start_date": "2025-01-02",
        "end_date": end,
        "max_steps": 8,
        "max_tool_errors": 2,
    })
}

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::USD).unwrap()
}

fn summary(market: &Market, job_id: &str, model: &str, date: &str) -> Value {
    let day = tradeloom_agents::model_day_record(
        &market.root().join("data"),
        job_id,
        model,
        date.parse().unwrap(),
    )
    .unwrap()
    .unwrap();
    day["summary"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_refused_by_the_kill_switch_are_not_completed_and_run_after_release() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let kill_switch = KillSwitch::open(&market.root().join("data")).unwrap();
    kill_switch
        .engage(&Scope::Global, "maintenance", "ops", false)
        .unwrap();
    let resolved = config_from_value(
        &config(
            &base,
            &[("mom", "momentum"), ("bh", "buy_and_hold")],
            "2025-01-03",
        ),
        market.root(),
    )
    .unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_ne!(job.status, JobStatus::Completed, "{job:?}");
    let report = sim.store().job_report(&job.id).await.unwrap();
    assert_eq!(report.model_days.len(), 4);
    for day in &report.model_days {
        assert_eq!(day.status.as_str(), "refused", "{day:?}");
        let error = day.error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("risk.kill_switch") && error.contains("maintenance"),
            "{error}"
        );
        assert_eq!(day.portfolio_value, None, "a refused day has no results");
    }
    let progress = serde_json::to_value(report.progress).unwrap();
    assert_eq!(progress["refused"], 4, "{progress}");
    assert_eq!(progress["completed"], 0, "{progress}");
    let refused = summary(&market, &job.id, "mom", "2025-01-02");
    assert_eq!(refused["status"], "refused", "{refused}");

    // Still engaged: a re-trigger refuses again; nothing is `current`.
    let (again, job2) = run_to_end(&sim, &resolved).await.unwrap();
    assert!(!matches!(again, TriggerOutcome::Current(_)), "{again:?}");
    assert_eq!(job2.id, job.id);
    assert_ne!(job2.status, JobStatus::Completed);

    // Released: the same config runs the refused days, and only then is it current.
    kill_switch.release(&Scope::Global, "done", "ops").unwrap();
    let (after, job3) = run_to_end(&sim, &resolved).await.unwrap();
    assert!(
        matches!(after, TriggerOutcome::Started { resumed: true, .. }),
        "{after:?}"
    );
    assert_eq!(job3.id, job.id);
    assert_eq!(job3.status, JobStatus::Completed, "{job3:?}");
    let page = sim
        .store()
        .results(&ResultsFilter {
            job_id: Some(job.id.clone()),
            completed_only: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    // buy_and_hold buys on its first day once orders pass.
    assert!(page.items.iter().any(|i| i.trades > 0));
    let (last, _) = run_to_end(&sim, &resolved).await.unwrap();
    assert!(matches!(last, TriggerOutcome::Current(_)), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_engaged_mid_job_refuses_the_rest_which_runs_after_release() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    // Each LLM call takes 400 ms, so the engagement below lands while day two runs.
    let resolved = config_from_value(
        &config(&base, &[("slow", "fault-slow-400")], "2025-01-06"),
        market.root(),
    )
    .unwrap();
    // The job's own kill switch, engaged as soon as the first day is done.
    let mut events = sim.subscribe();
    let data = market.root().join("data");
    let watcher = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let tradeloom_agents::SimEvent::ModelDayFinished { job_id, .. } = event {
                KillSwitch::open(&data)
                    .unwrap()
                    .engage(&Scope::Job(job_id), "risk limit", "ops", false)
                    .unwrap();
                return;
            }
        }
    });
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    watcher.await.unwrap();
    let report = sim.store().job_report(&job.id).await.unwrap();
    let statuses: Vec<&str> = report
        .model_days
        .iter()
        .map(|d| d.status.as_str())
        .collect();
    assert_eq!(statuses, ["completed", "refused", "refused"], "{report:?}");
    assert_eq!(job.status, JobStatus::Partial);
    for day in &report.model_days[1..] {
        let error = day.error.as_deref().unwrap_or_default();
        assert!(error.starts_with("risk.kill_switch"), "{error}");
    }
    KillSwitch::open(&market.root().join("data"))
        .unwrap()
        .release(&Scope::Job(job.id.clone()), "ok", "ops")
        .unwrap();
    let (again, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert!(
        matches!(again, TriggerOutcome::Started { resumed: true, .. }),
        "{again:?}"
    );
    assert_eq!(job.status, JobStatus::Completed);
    let report = sim.store().job_report(&job.id).await.unwrap();
    assert_eq!(
        report.model_days[0].attempts, 1,
        "the completed day is kept"
    );
    assert!(
        report
            .model_days
            .iter()
            .all(|d| d.status.as_str() == "completed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_errors_of_failed_days_count_on_the_leaderboard() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let resolved = config_from_value(
        &config(
            &base,
            &[("bad", "fault-bad-args"), ("bh", "buy_and_hold")],
            "2025-01-03",
        ),
        market.root(),
    )
    .unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Partial);
    let board = sim
        .store()
        .leaderboard(&job.id, usd("10000"))
        .await
        .unwrap();
    let bad = board.iter().find(|e| e.model == "bad").unwrap();
    assert_eq!(bad.failed_days, 2);
    // max_tool_errors 2: the third error fails each day.
    assert_eq!(bad.tool_errors, 6, "{bad:?}");
    let bad = serde_json::to_value(bad).unwrap();
    assert_eq!(bad["tool_calls"], 6, "{bad}");
    let failed = summary(&market, &job.id, "bad", "2025-01-02");
    assert_eq!(
        (failed["tool_errors"].clone(), failed["tool_calls"].clone()),
        (json!(3), json!(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderboard_returns_are_exact_decimals() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let resolved = config_from_value(
        &config(
            &base,
            &[("bh", "buy_and_hold"), ("mom", "momentum")],
            "2025-01-08",
        ),
        market.root(),
    )
    .unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    let initial = usd("10000");
    let board = sim.store().leaderboard(&job.id, initial).await.unwrap();
    for entry in &board {
        let value = serde_json::to_value(entry).unwrap();
        let final_value = entry.final_value.unwrap();
        // (final − initial) ÷ initial, exactly: initial is 10000, so at most 22 decimals —
        // within the 10 decimal places kept only when the value has at most 6.
        let text = value["total_return"].as_str().unwrap_or_else(|| {
            panic!("total_return is a decimal string: {value}");
        });
        let exact = tradeloom_core::Decimal::parse(text).unwrap();
        let diff = final_value.checked_sub(initial).unwrap();
        let expected = tradeloom_core::fixed::format_raw(diff.raw() / 10_000, 18, 0);
        let rounded = tradeloom_core::fixed::round_raw(diff.raw() / 10_000, 18, 10);
        assert_eq!(
            exact.to_string(),
            tradeloom_core::fixed::format_raw(rounded, 18, 0),
            "{} vs exact {expected}",
            entry.model
        );
        assert!(value["max_drawdown"].is_string(), "{value}");
        let _ = value["sharpe"].as_f64();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_off_by_max_tokens_fails_the_day() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let resolved = config_from_value(
        &config(&base, &[("cut", "fault-truncated")], "2025-01-02"),
        market.root(),
    )
    .unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let report = sim.store().job_report(&job.id).await.unwrap();
    let day = &report.model_days[0];
    assert_eq!(day.status.as_str(), "failed");
    let error = day.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("llm.truncated") && error.contains("max_tokens"),
        "{error}"
    );
    let s = summary(&market, &job.id, "cut", "2025-01-02");
    assert_eq!(s["status"], "failed", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_are_counted_per_day_and_a_model_without_any_is_flagged() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let resolved = config_from_value(
        &config(
            &base,
            &[("idle", "no-tools"), ("bh", "buy_and_hold")],
            "2025-01-03",
        ),
        market.root(),
    )
    .unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let report = sim.store().job_report(&job.id).await.unwrap();
    for day in &report.model_days {
        let v = serde_json::to_value(day).unwrap();
        let calls = v["tool_calls"].as_u64().unwrap_or_else(|| panic!("{v}"));
        match day.model.as_str() {
            "idle" => assert_eq!(calls, 0),
            _ => assert!(calls > 0, "{v}"),
        }
        let s = summary(&market, &job.id, &day.model, &day.date.to_string());
        assert_eq!(s["tool_calls"], calls, "{s}");
    }
    let board = sim
        .store()
        .leaderboard(&job.id, usd("10000"))
        .await
        .unwrap();
    let calls = |m: &str| {
        serde_json::to_value(board.iter().find(|e| e.model == m).unwrap()).unwrap()["tool_calls"]
            .clone()
    };
    assert_eq!(calls("idle"), 0);
    assert!(calls("bh").as_u64().unwrap() > 0);
    let warnings = tradeloom_agents::job_warnings(sim.store().as_ref(), &job)
        .await
        .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`idle`") && warnings[0].contains("no tool"),
        "{warnings:?}"
    );
}
