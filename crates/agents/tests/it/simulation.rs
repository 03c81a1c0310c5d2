//! Simulation jobs on a real SQLite store with mock-llm models: the whole job, carry-over of
//! books between days, partial jobs, idempotent re-triggers, resume after an interruption.

use std::sync::Arc;

use serde_json::json;
use tradeloom_agents::{
    SimEvent, Simulator, SimulatorOptions, TriggerOutcome, config_from_value, run_to_end,
};
use tradeloom_core::{Currency, Money};
use tradeloom_store::{
    EventFilter, JobStatus, ModelDayKey, ModelDayStatus, ResultsFilter, open_store,
};

use crate::{Market, date, start_mock};

async fn simulator(market: &Market) -> Arc<Simulator> {
    simulator_at(
        market,
        &market.root().join("db").join("t.db").display().to_string(),
    )
    .await
}

async fn simulator_at(market: &Market, location: &str) -> Arc<Simulator> {
    let store = open_store(location).await.unwrap();
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

fn config(base: &str, models: &[(&str, &str)], end: &str) -> serde_json::Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_models_five_days_complete_and_add_up() {
    let market = Market::create();
    let sim = simulator(&market).await;
    three_models_five_days(&market, sim).await;
}

/// The same job on PostgreSQL when `TRADELOOM_TEST_POSTGRES_URL` is set (in a scratch database);
/// with the variable set and the server unreachable, the test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_models_five_days_on_postgres() {
    let Some(scratch) = scratch_postgres().await else {
        return;
    };
    let market = Market::create();
    let sim = simulator_at(&market, scratch.url()).await;
    in_scratch(scratch, async move {
        three_models_five_days(&market, sim).await
    })
    .await;
}

/// A scratch database on `TRADELOOM_TEST_POSTGRES_URL`'s server, or `None` (with a note) when
/// the variable is not set; with it set and the server unusable, the test fails.
async fn scratch_postgres() -> Option<tradeloom_store::ScratchDatabase> {
    let Ok(base) = std::env::var("TRADELOOM_TEST_POSTGRES_URL") else {
        eprintln!("note: TRADELOOM_TEST_POSTGRES_URL is not set; skipping the PostgreSQL variant");
        return None;
    };
    let scratch = tradeloom_store::ScratchDatabase::create(&base, "tl_agents")
        .await
        .unwrap_or_else(|e| panic!("TRADELOOM_TEST_POSTGRES_URL={base} is set but unusable: {e}"));
    Some(scratch)
}

/// Runs `test`, then drops the scratch database whether it passed or panicked (the panic
/// goes on after).
async fn in_scratch(
    scratch: tradeloom_store::ScratchDatabase,
    test: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let outcome = tokio::spawn(test).await;
    scratch.drop_database().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Commits slower than sessions (PostgreSQL): a second connection holds `reasoning_logs` in
/// SHARE mode, so the first date's completion waits on its lock while the next dates' sessions
/// run (claims and sessions do not write that table). The dates that end meanwhile wait and
/// are committed together by the next commit: with six dates, the first commits alone, the
/// next four together (then the driver waits: at most four dates wait), the last alone. Each
/// day completes once, in date order, and is announced only once durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_ending_during_a_slow_commit_commit_together_on_postgres() {
    let Some(scratch) = scratch_postgres().await else {
        return;
    };
    let market = Market::create();
    let sim = simulator_at(&market, scratch.url()).await;
    let url = scratch.url().to_string();
    in_scratch(scratch, async move {
        commits_during_a_held_lock(&market, sim, &url).await
    })
    .await;
}

async fn commits_during_a_held_lock(market: &Market, sim: Arc<Simulator>, url: &str) {
    use sqlx::Connection;
    let count = |text: &'static str| sqlx::query_scalar::<_, i64>(text);
    let base = start_mock().await;
    let mut events = sim.subscribe();
    let models = ["a", "b", "c"];
    let value = config(
        &base,
        &[
            ("a", "momentum"),
            ("b", "mean_reversion"),
            ("c", "buy_and_hold"),
        ],
        "2025-01-09",
    );
    let dates: Vec<chrono::NaiveDate> = [
        "2025-01-02",
        "2025-01-03",
        "2025-01-06",
        "2025-01-07",
        "2025-01-08",
        "2025-01-09",
    ]
    .into_iter()
    .map(date)
    .collect();
    let resolved = config_from_value(&value, market.root()).unwrap();

    let mut holder = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE reasoning_logs IN SHARE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let job = {
        let sim = Arc::clone(&sim);
        tokio::spawn(async move { run_to_end(&sim, &resolved).await })
    };
    // Every day claimed (the last date is claimed once the fifth date's sessions have ended)
    // while the first date's completion waits for the lock.
    let total = (models.len() * dates.len()) as i64;
    let mut polls = 0;
    loop {
        let waiting = count(
            "SELECT count(*) FROM pg_locks WHERE NOT granted \
             AND relation = 'reasoning_logs'::regclass",
        )
        .fetch_one(&mut holder)
        .await
        .unwrap();
        let running = count("SELECT count(*) FROM job_details WHERE status = 'running'")
            .fetch_one(&mut holder)
            .await
            .unwrap();
        if waiting > 0 && running == total {
            break;
        }
        assert!(!job.is_finished(), "the job ended while the lock was held");
        polls += 1;
        assert!(
            polls < 6000,
            "the job never reached its sixth date ({running} days running)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Nothing is durable yet, so nothing is announced.
    let completed = count("SELECT count(*) FROM job_details WHERE status = 'completed'")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert_eq!(completed, 0);
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, SimEvent::ModelDayFinished { .. }),
            "announced before its commit: {e:?}"
        );
    }
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let (_, job) = job.await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);

    // Announced once each, in date order per model.
    let mut announced: Vec<(String, chrono::NaiveDate)> = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let SimEvent::ModelDayFinished {
            model,
            date,
            status,
            ..
        } = e
        {
            assert_eq!(status, "completed", "{model} {date}");
            announced.push((model, date));
        }
    }
    assert_eq!(announced.len(), models.len() * dates.len(), "{announced:?}");
    for model in models {
        let days: Vec<_> = announced
            .iter()
            .filter(|(m, _)| m == model)
            .map(|(_, d)| *d)
            .collect();
        assert_eq!(days, dates, "{model}");
    }
    job_events_tell_the_job(sim.store().as_ref(), &job.id, announced.len()).await;

    // The transaction that completed each day (its row's xmin) also appended its event; the
    // dates' transactions are, in order: the first date, the next four, the last.
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let days: Vec<(String, chrono::NaiveDate, i64)> = sqlx::query_as(
        "SELECT model, date, xmin::text::bigint FROM job_details \
         WHERE job_id = $1 ORDER BY date, model",
    )
    .bind(&job.id)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let logged: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT payload->>'model', payload->>'date', xmin::text::bigint FROM workflow_events \
         WHERE job_id = $1 AND kind = 'model_day_completed'",
    )
    .bind(&job.id)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(logged.len(), days.len());
    for (model, day, tx) in &days {
        let event = logged
            .iter()
            .find(|(m, d, _)| m == model && *d == day.to_string())
            .unwrap_or_else(|| panic!("no event of {model} {day}"));
        assert_eq!(
            event.2, *tx,
            "{model} {day}: event and day in one transaction"
        );
    }
    let tx_of = |d: chrono::NaiveDate| {
        let txs: std::collections::BTreeSet<i64> = days
            .iter()
            .filter(|(_, day, _)| *day == d)
            .map(|(_, _, tx)| *tx)
            .collect();
        assert_eq!(txs.len(), 1, "{d}: a date's days in one transaction");
        txs.into_iter().next().unwrap()
    };
    let txs: Vec<i64> = dates.iter().map(|d| tx_of(*d)).collect();
    assert!(txs[0] < txs[1] && txs[4] < txs[5], "{txs:?}");
    assert!(txs[1..5].iter().all(|tx| *tx == txs[1]), "{txs:?}");
}

async fn three_models_five_days(market: &Market, sim: Arc<Simulator>) {
    let base = start_mock().await;
    let mut events = sim.subscribe();
    let value = config(
        &base,
        &[
            ("mom", "momentum"),
            ("rev", "mean_reversion"),
            ("bh", "buy_and_hold"),
        ],
        "2025-01-08",
    );
    let resolved = config_from_value(&value, market.root()).unwrap();
    let (outcome, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert!(matches!(
        outcome,
        TriggerOutcome::Started { resumed: false, .. }
    ));
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let store = sim.store();
    let report = store.job_report(&job.id).await.unwrap();
    assert_eq!(
        report.progress.total_model_days, 15,
        "3 models × 5 trading days"
    );
    assert_eq!(report.progress.completed, 15);
    let mut finished = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, SimEvent::ModelDayFinished { .. }) {
            finished += 1;
        }
    }
    assert_eq!(finished, 15);
    job_events_tell_the_job(store.as_ref(), &job.id, 15).await;

    // Each day: value = cash + Σ holdings, exactly; holdings carry over between days.
    let page = store
        .results(&ResultsFilter {
            job_id: Some(job.id.clone()),
            completed_only: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 15);
    for item in &page.items {
        let day = &item.model_day;
        let mut total = day.cash.unwrap();
        for h in &item.holdings {
            total = total.checked_add(h.value).unwrap();
        }
        assert_eq!(
            Some(total),
            day.portfolio_value,
            "{} {}",
            day.model,
            day.date
        );
    }
    // buy_and_hold buys on day one and never trades again: same holdings every day.
    let bh: Vec<_> = page
        .items
        .iter()
        .filter(|i| i.model_day.model == "bh")
        .collect();
    assert_eq!(bh.len(), 5);
    assert!(!bh[0].holdings.is_empty());
    for later in &bh[1..] {
        let q = |i: &&tradeloom_store::ModelDayResult| {
            i.holdings
                .iter()
                .map(|h| (h.symbol.clone(), h.quantity))
                .collect::<Vec<_>>()
        };
        assert_eq!(q(&bh[0]), q(later));
        assert_eq!(later.model_day.cash, bh[0].model_day.cash);
        assert_eq!(later.trades, 0);
    }
    // The run folder has the bootstrap and each model-day's files.
    let dir = market.root().join("data").join("runs").join(&job.id);
    let bootstrap = std::fs::read_to_string(dir.join("BOOTSTRAP.md")).unwrap();
    assert!(
        bootstrap.starts_with("---\nkind: simulation_job\n"),
        "{bootstrap}"
    );
    assert!(bootstrap.contains(&format!("job_id: {}", job.id)));
    let data = market.root().join("data");
    let days = tradeloom_agents::model_day_records(&data, &job.id, "mom").unwrap();
    let day = &days[&"2025-01-03".parse::<chrono::NaiveDate>().unwrap()];
    assert_eq!(day["summary"]["status"], "completed", "{day}");
    assert_eq!(day["summary"]["date"], "2025-01-03");
    // The transcript opens with the system prompt and the session message; every LLM call and
    // tool call of the day is there too.
    let transcript = day["transcript"].as_array().unwrap();
    assert_eq!(transcript[0]["role"], "system");
    assert_eq!(transcript[1]["role"], "user");
    let steps = day["summary"]["steps"].as_u64().unwrap();
    assert_eq!(day["llm_calls"].as_array().unwrap().len() as u64, steps);
    assert_eq!(
        day["tool_calls"].as_array().unwrap().len() as u64,
        day["summary"]["tool_calls"].as_u64().unwrap()
    );
    // One line per model-day, in date order, in one file per model; no file per day.
    let text = std::fs::read_to_string(dir.join("agents").join("mom.jsonl")).unwrap();
    let dates: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["summary"]["date"].to_string()
        })
        .collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted);
    assert_eq!(dates.len(), days.len());
    let mut names: Vec<String> = std::fs::read_dir(dir.join("agents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.iter().all(|n| n.ends_with(".jsonl")), "{names:?}");

    // Same config again: nothing to do.
    let (again, same) = run_to_end(&sim, &resolved).await.unwrap();
    assert!(matches!(again, TriggerOutcome::Current(_)), "{again:?}");
    assert_eq!(same.id, job.id);
    assert_eq!(
        store
            .results(&ResultsFilter {
                job_id: Some(job.id.clone()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .total,
        15
    );

    let leaderboard = store
        .leaderboard(&job.id, Money::parse("10000", Currency::USD).unwrap())
        .await
        .unwrap();
    assert_eq!(leaderboard.len(), 3);
    assert!(
        leaderboard
            .iter()
            .all(|e| e.completed_days == 5 && e.final_value.is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_model_makes_the_job_partial_and_others_are_unaffected() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let value = config(
        &base,
        &[("good", "buy_and_hold"), ("bad", "fault-http-500")],
        "2025-01-06",
    );
    let resolved = config_from_value(&value, market.root()).unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Partial);
    let report = sim.store().job_report(&job.id).await.unwrap();
    for day in &report.model_days {
        match day.model.as_str() {
            "good" => assert_eq!(day.status, ModelDayStatus::Completed),
            _ => {
                assert_eq!(day.status, ModelDayStatus::Failed);
                let error = day.error.as_deref().unwrap_or_default();
                assert!(error.contains("HTTP 500"), "{error}");
            }
        }
    }
    // Re-triggering retries only the failed model-days (which fail again); completed ones stay.
    let good = ModelDayKey::new(&job.id, "good", date("2025-01-02"));
    let before = sim.store().model_day(&good).await.unwrap();
    let (again, job2) = run_to_end(&sim, &resolved).await.unwrap();
    assert!(
        matches!(again, TriggerOutcome::Started { resumed: true, .. }),
        "{again:?}"
    );
    assert_eq!(job2.id, job.id);
    assert_eq!(job2.status, JobStatus::Partial);
    assert_eq!(
        sim.store().model_day(&good).await.unwrap(),
        before,
        "completed days are not re-run"
    );
    let bad = sim
        .store()
        .model_day(&ModelDayKey::new(&job.id, "bad", date("2025-01-02")))
        .await
        .unwrap();
    assert_eq!(bad.attempts, 2);
    // Each run of the job logged its failed days with the error, between start and finish.
    let events = sim
        .store()
        .events(EventFilter::Job(&job.id), 0, 1000)
        .await
        .unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "model_day_failed")
        .collect();
    assert_eq!(failed.len(), 3 * 2, "3 days of `bad`, run twice");
    assert!(failed.iter().all(|e| e.payload["model"] == "bad"
        && e.payload["error"].as_str().unwrap().contains("HTTP 500")));
    let last = events.last().unwrap();
    assert_eq!(
        (
            last.kind.as_str(),
            &last.payload["status"],
            &last.payload["failed"]
        ),
        ("job_finished", &json!("partial"), &json!(3))
    );
}

/// The job's events in the store's event log: `job_started`, one `model_day_completed` per day
/// (dates in order, the exact portfolio value of the stored day), then `job_finished`.
async fn job_events_tell_the_job(store: &dyn tradeloom_store::Store, job_id: &str, days: usize) {
    let events = store
        .events(EventFilter::Job(job_id), 0, 1000)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.len(), days + 2, "{kinds:?}");
    assert_eq!(kinds[0], "job_started");
    assert_eq!(events[0].payload["total_model_days"], days);
    assert!(
        kinds[1..=days].iter().all(|k| *k == "model_day_completed"),
        "{kinds:?}"
    );
    assert_eq!(kinds[days + 1], "job_finished");
    assert_eq!(events[days + 1].payload["status"], "completed");
    assert_eq!(events[days + 1].payload["completed"], days);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let dates: Vec<&str> = events[1..=days]
        .iter()
        .map(|e| e.payload["date"].as_str().unwrap())
        .collect();
    assert!(
        dates.windows(2).all(|w| w[0] <= w[1]),
        "dates in order: {dates:?}"
    );
    for e in &events[1..=days] {
        let key = ModelDayKey::new(
            job_id,
            e.payload["model"].as_str().unwrap(),
            date(e.payload["date"].as_str().unwrap()),
        );
        let day = store.model_day(&key).await.unwrap();
        assert_eq!(
            e.payload["portfolio_value"],
            day.portfolio_value.unwrap().to_string(),
            "{key:?}"
        );
        assert_eq!(e.payload["currency"], "USD");
        assert!(e.payload["trades"].is_u64());
        assert!(e.job_id.as_deref() == Some(job_id) && e.run_id.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_job_resumes_without_duplicates() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let value = config(&base, &[("a", "momentum"), ("b", "random-3")], "2025-01-07");
    let resolved = config_from_value(&value, market.root()).unwrap();
    // Create the job and run one model-day by hand, leave another `running` as a killed worker would.
    let TriggerOutcome::Started { job, .. } = sim.prepare(&resolved).await.unwrap() else {
        panic!("expected a new job");
    };
    let store = sim.store();
    let k = ModelDayKey::new(&job.id, "a", date("2025-01-02"));
    store.mark_job_running(&job.id).await.unwrap();
    store
        .claim_model_day(&k, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    // The rest of that date claimed at once, as a worker does before running a date; its
    // completions (one transaction for the date) never committed.
    let rest = store
        .claim_model_days(
            &job.id,
            date("2025-01-02"),
            &["a".to_string(), "b".to_string()],
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let rest: Vec<&str> = rest.iter().map(|d| d.model.as_str()).collect();
    assert_eq!(rest, ["b"], "a's day is running already");
    // "Crash": the process is gone; a new simulator on the same store resumes the job.
    let resumed = sim.resume_interrupted().await.unwrap();
    assert_eq!(resumed, vec![job.id.clone()]);
    let mut waited = 0;
    let finished = loop {
        let j = store.job(&job.id).await.unwrap();
        if j.status.is_terminal() {
            break j;
        }
        waited += 1;
        assert!(waited < 600, "the resumed job did not finish");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(finished.status, JobStatus::Completed);
    let report = store.job_report(&job.id).await.unwrap();
    assert_eq!(report.progress.completed, 8, "2 models × 4 days");
    for k in [&k, &ModelDayKey::new(&job.id, "b", date("2025-01-02"))] {
        assert_eq!(
            store.model_day(k).await.unwrap().attempts,
            2,
            "the interrupted day {k} ran again"
        );
    }
    // Trades of each day exist once: re-counting through the store matches the day's trade count.
    let page = store
        .results(&ResultsFilter {
            job_id: Some(job.id.clone()),
            limit: 100,
            completed_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for item in page.items {
        let trades = store.trades(&item.model_day.key()).await.unwrap();
        assert_eq!(trades.len() as u32, item.trades);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_while_busy_answer_current_running_or_busy() {
    let market = Market::create();
    let base = start_mock().await;
    let sim = simulator(&market).await;
    let done = config_from_value(
        &config(&base, &[("a", "buy_and_hold")], "2025-01-03"),
        market.root(),
    )
    .unwrap();
    let (_, finished) = run_to_end(&sim, &done).await.unwrap();
    assert_eq!(finished.status, JobStatus::Completed);

    let slow = config_from_value(
        &config(&base, &[("s", "fault-slow-300")], "2025-01-08"),
        market.root(),
    )
    .unwrap();
    let TriggerOutcome::Started { job: running, .. } = sim.trigger(&slow).await.unwrap() else {
        panic!("the slow job should start");
    };
    // The same running config: reported, not duplicated.
    assert!(
        matches!(sim.trigger(&slow).await.unwrap(), TriggerOutcome::AlreadyRunning(j) if j.id == running.id)
    );
    // A completed config: `current`, even while the worker is busy.
    assert!(
        matches!(sim.trigger(&done).await.unwrap(), TriggerOutcome::Current(j) if j.id == finished.id)
    );
    // A new config beyond MAX_CONCURRENT_JOBS = 1: refused, naming the running job.
    let other = config_from_value(
        &config(&base, &[("o", "momentum")], "2025-01-06"),
        market.root(),
    )
    .unwrap();
    match sim.trigger(&other).await {
        Err(tradeloom_agents::AgentError::Busy {
            running_job_id,
            limit,
        }) => {
            assert_eq!((running_job_id, limit), (running.id.clone(), 1));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
}

/// A job is refused before it is created when a model names a key variable that is not on the
/// allow-list or an endpoint the SSRF guard refuses; errors name the field and the variable,
/// never its value. A job already stored (e.g. under a wider policy before a restart) fails its
/// model-days with the same reasons and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_needing_more_than_the_outbound_policy_allows_are_refused() {
    let market = Market::create();
    let sim = simulator(&market).await;
    let base = start_mock().await;
    // PATH is set in every environment: a variable of the server that must not leave it.
    let secret = std::env::var("PATH").unwrap();
    let with = |base_url: &str, key: Option<&str>| {
        let mut value = config(base_url, &[("a", "momentum")], "2025-01-03");
        if let Some(key) = key {
            value["models"][0]["api_key_env"] = json!(key);
        }
        config_from_value(&value, market.root()).unwrap()
    };
    for (config, field, reason) in [
        (
            with(&base, Some("PATH")),
            "config: models[0].api_key_env",
            "`PATH` is not on this server's allow-list",
        ),
        (
            with("http://169.254.169.254/v1", None),
            "config: models[0].base_url",
            "169.254.169.254 is blocked",
        ),
        (
            with("http://127.0.0.1:9/latest/meta-data", None),
            "config: models[0].base_url",
            "is blocked (under `/latest/meta-data`)",
        ),
    ] {
        let e = sim.prepare(&config).await.unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(field) && text.contains(reason), "{text}");
        assert!(!text.contains(&secret), "{text}");
    }
    assert!(sim.store().list_jobs(10, 0).await.unwrap().is_empty());

    // A strict simulator runs a job stored by a permissive one: every model-day fails with
    // the guard's reason.
    let stored = with(&base, None);
    let TriggerOutcome::Started { job, .. } = sim.prepare(&stored).await.unwrap() else {
        panic!("a new job")
    };
    let strict = Simulator::new(
        sim.store().clone(),
        SimulatorOptions {
            outbound: tradeloom_net::Outbound::strict(),
            ..sim.options().clone()
        },
    );
    let job = strict.run_job(&job.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    let report = sim.store().job_report(&job.id).await.unwrap();
    for day in &report.model_days {
        let error = day.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("refused by the SSRF guard") && error.contains("loopback"),
            "{error}"
        );
    }
}
