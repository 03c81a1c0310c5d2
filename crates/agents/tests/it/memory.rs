//! Memory and reflection with mock-llm models on a real SQLite store: lessons stored with each
//! completed day and carried into the next sessions (bounded), decisions only without
//! reflection, a pause and resume that carries memory on from the store, deterministic entries,
//! and a failed reflection that keeps the day.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tradeloom_agents::memory::{MemoryEntry, reflect};
use tradeloom_agents::{
    Simulator, SimulatorOptions, TriggerOutcome, config_from_value, run_to_end,
};
use tradeloom_store::{JobStatus, ModelDayKey, Store, open_store};

use crate::{Market, date, provider, start_mock};

async fn simulator(market: &Market, db: &str) -> Arc<Simulator> {
    let location = market.root().join("db").join(db).display().to_string();
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

fn config(models: Value, end: &str) -> Value {
    json!({
        "models": models,
        "universe": {"path": "universe"},
        "start_date": "2025-01-02",
        "end_date": end,
        "max_steps": 8,
    })
}

/// The session message (step 0, user) of a model-day.
async fn session_message(store: &dyn Store, job_id: &str, model: &str, day: &str) -> String {
    let key = ModelDayKey::new(job_id, model, date(day));
    let logs = store.reasoning_logs(&key).await.unwrap();
    logs.into_iter()
        .find(|m| m.step == 0 && m.role == "user")
        .map(|m| m.content)
        .unwrap_or_else(|| panic!("{key}: no session message"))
}

async fn entries(store: &dyn Store, job_id: &str, model: &str) -> Vec<MemoryEntry> {
    store
        .model_day_memories(job_id, Some(model))
        .await
        .unwrap()
        .into_iter()
        .map(|d| serde_json::from_value(d.memory).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lessons_are_stored_and_carried_into_later_sessions() {
    let market = Market::create();
    let base = start_mock().await;
    let models = json!([
        {"name": "mem", "base_url": base, "model": "momentum", "max_retries": 0,
         "memory": {"lessons": 2}},
        {"name": "plain", "base_url": base, "model": "momentum", "max_retries": 0},
    ]);
    let value = config(models, "2025-01-08");
    let sim = simulator(&market, "a.db").await;
    let resolved = config_from_value(&value, market.root()).unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let store = sim.store();

    let mem = entries(&**store, &job.id, "mem").await;
    let days = [
        "2025-01-02",
        "2025-01-03",
        "2025-01-06",
        "2025-01-07",
        "2025-01-08",
    ];
    let dates: Vec<String> = mem.iter().map(|e| e.date.to_string()).collect();
    assert_eq!(dates, days, "one entry per completed day, in date order");
    for e in &mem {
        let lesson = e.lesson.as_deref().expect("a lesson per day");
        assert!(lesson.starts_with(&format!("On {}", e.date)), "{lesson}");
        assert!(e.reflection_usage.is_some_and(|u| u.total_tokens > 0));
    }
    assert!(
        entries(&**store, &job.id, "plain").await.is_empty(),
        "memory is off by default"
    );

    // The changes add up, exactly, to the last value less the initial cash.
    let usd = tradeloom_core::Currency::from_code("USD").unwrap();
    let money =
        |text: &str| tradeloom_core::Money::parse(text.trim_start_matches('+'), usd).unwrap();
    let total = mem.iter().fold(money("0"), |sum, e| {
        sum.checked_add(money(&e.change)).unwrap()
    });
    assert_eq!(
        total,
        money(&mem[4].portfolio_value)
            .checked_sub(money("10000"))
            .unwrap()
    );

    // Day 1 carries no memory; day 3 carries days 1 and 2; day 5 only days 3 and 4 (lessons: 2).
    let first = session_message(&**store, &job.id, "mem", days[0]).await;
    assert!(!first.contains("Memory ("), "{first}");
    let third = session_message(&**store, &job.id, "mem", days[2]).await;
    assert!(
        third.starts_with("Session date: 2025-01-06\n"),
        "machine-readable lines first: {third}"
    );
    assert!(
        third.contains("Memory (your last 2 sessions, oldest first):\n- 2025-01-02: "),
        "{third}"
    );
    assert!(
        third.contains(&format!("Lesson: {}", mem[1].lesson.as_deref().unwrap())),
        "{third}"
    );
    let fifth = session_message(&**store, &job.id, "mem", days[4]).await;
    assert!(
        fifth.contains("- 2025-01-06: ") && fifth.contains("- 2025-01-07: "),
        "{fifth}"
    );
    assert!(!fifth.contains("- 2025-01-03: "), "{fifth}");
    let plain = session_message(&**store, &job.id, "plain", days[4]).await;
    assert!(!plain.contains("Memory ("), "{plain}");

    // The reflection is in the day's transcript after the session's last step.
    let key = ModelDayKey::new(&job.id, "mem", date(days[1]));
    let day = store.model_day(&key).await.unwrap();
    let logs = store.reasoning_logs(&key).await.unwrap();
    let reflection: Vec<_> = logs
        .iter()
        .filter(|m| m.step == day.steps.unwrap() + 1)
        .collect();
    let roles: Vec<&str> = reflection.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant"]);
    assert!(
        reflection[1]
            .content
            .starts_with("Reflection on session date: 2025-01-03\n")
    );
    assert_eq!(
        Some(reflection[2].content.as_str()),
        mem[1].lesson.as_deref()
    );

    // Memory does not change what the (stateless) mock policy trades.
    for d in days {
        let a = store
            .trades(&ModelDayKey::new(&job.id, "mem", date(d)))
            .await
            .unwrap();
        let b = store
            .trades(&ModelDayKey::new(&job.id, "plain", date(d)))
            .await
            .unwrap();
        let strip = |t: Vec<tradeloom_store::Trade>| -> Vec<_> {
            t.into_iter()
                .map(|t| (t.action, t.symbol, t.quantity, t.price))
                .collect()
        };
        assert_eq!(strip(a), strip(b), "{d}");
    }

    // The model-day file carries the entry too.
    let text = tradeloom_agents::model_day_record(
        &market.root().join("data"),
        &job.id,
        "mem",
        date(days[2]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(text["summary"]["memory"]["lesson"], json!(mem[2].lesson));

    // Deterministic: the same config on another store remembers the same things.
    let again = simulator(&market, "b.db").await;
    let (_, job2) = run_to_end(&again, &resolved).await.unwrap();
    assert_eq!(
        entries(&**again.store(), &job2.id, "mem")
            .await
            .into_iter()
            .map(|mut e| {
                e.reflection_usage = None;
                e
            })
            .collect::<Vec<_>>(),
        mem.into_iter()
            .map(|mut e| {
                e.reflection_usage = None;
                e
            })
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reflection_the_sessions_carry_decisions_only() {
    let market = Market::create();
    let base = start_mock().await;
    let models = json!([{"name": "d", "base_url": base, "model": "momentum", "max_retries": 0,
                         "memory": {"lessons": 5, "reflect": false}}]);
    let sim = simulator(&market, "a.db").await;
    let resolved = config_from_value(&config(models, "2025-01-06"), market.root()).unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let store = sim.store();
    let mem = entries(&**store, &job.id, "d").await;
    assert_eq!(mem.len(), 3);
    assert!(
        mem.iter()
            .all(|e| e.lesson.is_none() && e.reflection_usage.is_none())
    );
    let third = session_message(&**store, &job.id, "d", "2025-01-06").await;
    assert!(
        third.contains("Memory (your last 2 sessions, oldest first):"),
        "{third}"
    );
    assert!(!third.contains("Lesson:"), "{third}");
    // No reflection call: the transcript ends with the session.
    let key = ModelDayKey::new(&job.id, "d", date("2025-01-03"));
    let day = store.model_day(&key).await.unwrap();
    let logs = store.reasoning_logs(&key).await.unwrap();
    assert!(logs.iter().all(|m| m.step <= day.steps.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_and_resumed_job_carries_its_memory_on_from_the_store() {
    let market = Market::create();
    let base = start_mock().await;
    let models = json!([{"name": "s", "base_url": base, "model": "fault-slow-100", "max_retries": 0,
                         "memory": {"lessons": 10}}]);
    let sim = simulator(&market, "a.db").await;
    let resolved = config_from_value(&config(models, "2025-01-10"), market.root()).unwrap();
    let TriggerOutcome::Started { job, .. } = sim.trigger(&resolved).await.unwrap() else {
        panic!("expected a new job");
    };
    let store = Arc::clone(sim.store());
    let mut paused_after = None;
    for _ in 0..800 {
        let report = store.job_report(&job.id).await.unwrap();
        if report.progress.completed >= 2 {
            sim.pause(&job.id, "tester").await.unwrap();
            paused_after = Some(report.progress.completed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(paused_after.is_some(), "two days never completed");
    for _ in 0..400 {
        if sim.running_jobs().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        sim.running_jobs().await.is_empty(),
        "the driver let go of the job"
    );
    // A new simulator (as after a restart) resumes it: its driver reads memory from the store.
    let restarted = simulator(&market, "a.db").await;
    restarted.resume(&job.id, "tester").await.unwrap();
    let mut done = None;
    for _ in 0..1500 {
        let j = store.job(&job.id).await.unwrap();
        if j.status.is_terminal() {
            done = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done.expect("the job finished").status, JobStatus::Completed);
    let mem = entries(&*store, &job.id, "s").await;
    let dates: Vec<String> = mem.iter().map(|e| e.date.to_string()).collect();
    assert_eq!(dates.len(), 7, "{dates:?}");
    // Every day's session carried every earlier day, whichever driver ran it.
    for (i, day) in dates.iter().enumerate() {
        let message = session_message(&*store, &job.id, "s", day).await;
        for earlier in &dates[..i] {
            assert!(
                message.contains(&format!("- {earlier}: ")),
                "{day} lacks {earlier}: {message}"
            );
        }
        if i > 0 {
            assert!(
                message.contains(&format!("Memory (your last {i} sessions")),
                "{message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reflection_says_why_and_gives_no_lesson() {
    let base = start_mock().await;
    let entry = MemoryEntry {
        date: date("2025-01-03"),
        decisions: vec!["buy 10 AAA at 101.20".into()],
        portfolio_value: "9990.10".into(),
        change: "-9.90".into(),
        lesson: None,
        reflection_error: None,
        reflection_usage: None,
    };
    let failing = provider(&base, "fault-http-500");
    let r = reflect(&*failing, "m", &entry, "summary", 4).await;
    let e = r.lesson.unwrap_err();
    assert!(e.starts_with("reflection call failed"), "{e}");
    assert!(r.call.error.is_some());
    assert_eq!(r.messages.len(), 2, "the request is logged, no answer");
    let good = provider(&base, "momentum");
    let r = reflect(&*good, "m", &entry, "summary", 4).await;
    assert_eq!(
        r.lesson.unwrap(),
        "On 2025-01-03 the portfolio lost 9.90 after buy 10 AAA at 101.20: cut losing positions sooner and size new ones smaller."
    );
    assert!(r.messages.iter().all(|m| m.step == 4));
}

#[test]
fn bad_memory_settings_name_the_field() {
    let market = Market::create();
    let models = json!([{"name": "m", "base_url": "http://127.0.0.1:9/v1", "model": "x",
                         "memory": {"lessons": 80}}]);
    let e = config_from_value(&config(models, "2025-01-06"), market.root())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("models[0].memory.lessons") && e.contains("0 to 50"),
        "{e}"
    );
    let models = json!([{"name": "m", "base_url": "http://127.0.0.1:9/v1", "model": "x",
                         "memory": {"lesons": 3}}]);
    let e = config_from_value(&config(models, "2025-01-06"), market.root())
        .unwrap_err()
        .to_string();
    assert!(e.contains("lesons"), "{e}");
}
