//! Claiming and completing model-days: atomic writes, no duplicates on retry, concurrency.

use std::sync::Arc;
use std::time::Duration;

use tradeloom_core::{Currency, Money};
use tradeloom_store::{ClaimedCompletion, EventFilter, ModelDayKey, ModelDayStatus, StoreError};

use crate::Ctx;
use crate::backend_tests;
use crate::fixtures::{create, date, outcome, usd};

backend_tests!(
    claim_and_complete_atomically,
    failed_completion_writes_nothing,
    concurrent_completions_of_one_job,
    a_claimed_day_completes_in_one_batch,
    a_date_is_claimed_and_completed_at_once,
    memories_are_kept_with_their_days,
    a_batched_completion_stores_the_rows_a_single_one_does,
    a_batch_with_a_bad_day_rolls_back_as_a_unit,
);

const LEASE: Duration = Duration::from_secs(600);

async fn claim_and_complete_atomically(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "atomic", &["m1"], &[2]).await;
    let key = ModelDayKey::new(&job.id, "m1", date(2));
    let result = outcome("10017.5617283945", 5);

    // Completing before claiming is refused.
    assert!(matches!(
        s.complete_model_day(&key, &result).await,
        Err(StoreError::Conflict(_))
    ));
    s.claim_model_day(&key, LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let day = s.complete_model_day(&key, &result).await.expect("complete");
    assert_eq!(day.status, ModelDayStatus::Completed);
    assert_eq!(day.steps, Some(3));
    assert_eq!(day.tool_errors, Some(1));
    assert_eq!(day.cash, Some(usd("2500.5")));
    assert_eq!(day.portfolio_value, Some(usd("10017.5617283945")));
    assert!(day.duration_ms.is_some_and(|d| d >= 0));
    assert!(day.finished_at >= day.started_at);

    // Everything reads back in order and exactly.
    assert_eq!(s.trades(&key).await.expect("trades"), result.trades);
    assert_eq!(s.holdings(&key).await.expect("holdings"), result.holdings);
    assert_eq!(
        s.reasoning_logs(&key).await.expect("logs"),
        result.reasoning
    );
    assert_eq!(s.tool_usage(&key).await.expect("tools"), result.tool_calls);

    // A retried completion neither duplicates nor replaces anything.
    let counts = (
        t.count("positions").await,
        t.count("holdings").await,
        t.count("reasoning_logs").await,
        t.count("tool_usage").await,
    );
    assert_eq!(counts, (2, 2, 5, 2));
    let again = s.complete_model_day(&key, &outcome("1", 9)).await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(m)) if m.contains("already completed")),
        "{again:?}"
    );
    assert!(
        s.claim_model_day(&key, Duration::ZERO)
            .await
            .expect("claim")
            .is_none()
    );
    assert_eq!(
        (
            t.count("positions").await,
            t.count("holdings").await,
            t.count("reasoning_logs").await,
            t.count("tool_usage").await,
        ),
        counts
    );
    assert_eq!(
        s.model_day(&key).await.expect("day").portfolio_value,
        Some(usd("10017.5617283945"))
    );
}

async fn failed_completion_writes_nothing(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "rollback", &["m1"], &[2]).await;
    let key = ModelDayKey::new(&job.id, "m1", date(2));
    s.claim_model_day(&key, LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    // The last holding is in the wrong currency: trades and the first holding were already
    // inserted in the transaction when this is found.
    let mut spaced = outcome("10000", 3);
    spaced.holdings[0].symbol = "AA A".into();
    let err = s.complete_model_day(&key, &spaced).await;
    assert!(
        matches!(&err, Err(StoreError::Invalid(m)) if m.contains("symbol `AA A`")),
        "{err:?}"
    );
    let mut bad = outcome("10000", 3);
    let eur = Currency::from_code("EUR").expect("EUR");
    bad.holdings[1].value = Money::parse("1", eur).expect("amount");
    let err = s.complete_model_day(&key, &bad).await;
    assert!(
        matches!(&err, Err(StoreError::Invalid(m)) if m.contains("EUR")),
        "{err:?}"
    );
    for table in ["positions", "holdings", "reasoning_logs", "tool_usage"] {
        assert_eq!(
            t.count(table).await,
            0,
            "{table} after a rolled-back completion"
        );
    }
    let day = s.model_day(&key).await.expect("day");
    assert_eq!(day.status, ModelDayStatus::Running);
    assert_eq!(day.portfolio_value, None);

    // The worker retries with a good outcome.
    s.complete_model_day(&key, &outcome("10000", 3))
        .await
        .expect("complete");
    assert_eq!(t.count("reasoning_logs").await, 3);
}

async fn concurrent_completions_of_one_job(t: Ctx) {
    let models: Vec<String> = (0..8).map(|i| format!("model-{i}")).collect();
    let refs: Vec<&str> = models.iter().map(String::as_str).collect();
    let job = create(&*t.store, "parallel", &refs, &[2, 3]).await;
    let mut tasks = Vec::new();
    for model in &models {
        let store = Arc::clone(&t.store);
        let key = ModelDayKey::new(&job.id, model, date(2));
        tasks.push(tokio::spawn(async move {
            store
                .claim_model_day(&key, LEASE)
                .await?
                .ok_or_else(|| StoreError::Conflict(format!("{key} not claimable")))?;
            store
                .complete_model_day(&key, &outcome("10000.01", 40))
                .await
        }));
    }
    // Competing claims for the same model-day: exactly one wins.
    let mut claims = Vec::new();
    for _ in 0..6 {
        let store = Arc::clone(&t.store);
        let key = ModelDayKey::new(&job.id, "model-0", date(3));
        claims.push(tokio::spawn(async move {
            store.claim_model_day(&key, LEASE).await
        }));
    }
    for task in tasks {
        let day = task.await.expect("join").expect("complete concurrently");
        assert_eq!(day.status, ModelDayStatus::Completed);
    }
    let mut winners = 0;
    for claim in claims {
        if claim.await.expect("join").expect("claim").is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "one claim of a model-day wins");
    let report = t.store.job_report(&job.id).await.expect("report");
    assert_eq!(report.progress.completed, 8);
    assert_eq!(report.progress.running, 1);
    assert_eq!(t.count("reasoning_logs").await, 8 * 40);
    assert_eq!(t.count("positions").await, 8 * 2);
}

/// `complete_claimed_model_day`: the day, its rows and its event in one batch, and only under
/// the claim that ran it.
async fn a_claimed_day_completes_in_one_batch(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "batch", &["m1", "m2"], &[2]).await;
    let key = ModelDayKey::new(&job.id, "m1", date(2));
    let result = outcome("10017.5617283945", 5);
    let event = serde_json::json!({"model": "m1", "n": 1});
    let claim = s
        .claim_model_day(&key, LEASE)
        .await
        .expect("claim")
        .expect("claimed");

    // Amounts in another currency than the job's: refused, nothing written.
    let eur = Currency::from_code("EUR").expect("EUR");
    let mut in_eur = outcome("1", 3);
    in_eur.cash = Money::parse("2500.5", eur).expect("amount");
    in_eur.portfolio_value = Money::parse("1", eur).expect("amount");
    in_eur.trades.clear();
    in_eur.holdings.clear();
    let err = s
        .complete_claimed_model_day(&claim, &in_eur, "model_day_completed", &event)
        .await;
    assert!(
        matches!(&err, Err(StoreError::Invalid(m)) if m.contains("EUR")),
        "{err:?}"
    );
    assert_eq!(t.count("reasoning_logs").await, 0);
    let events = t.count("workflow_events").await;

    // Claimed again since (a takeover of a stale claim): this claim may not complete it.
    let newer = s
        .claim_model_day(&key, Duration::ZERO)
        .await
        .expect("claim")
        .expect("taken over");
    assert_eq!(newer.attempts, 2);
    let err = s
        .complete_claimed_model_day(&claim, &result, "model_day_completed", &event)
        .await;
    assert!(
        matches!(&err, Err(StoreError::Conflict(m)) if m.contains("claimed again")),
        "{err:?}"
    );
    for table in ["positions", "holdings", "reasoning_logs", "tool_usage"] {
        assert_eq!(
            t.count(table).await,
            0,
            "{table} after a refused completion"
        );
    }
    assert_eq!(t.count("workflow_events").await, events);

    // The newer claim completes it: the same rows as `complete_model_day` writes, and the event.
    s.complete_claimed_model_day(&newer, &result, "model_day_completed", &event)
        .await
        .expect("complete");
    let day = s.model_day(&key).await.expect("day");
    assert_eq!(day.status, ModelDayStatus::Completed);
    assert_eq!(day.attempts, 2);
    assert_eq!(day.steps, Some(3));
    assert_eq!(day.tool_errors, Some(1));
    assert_eq!(day.cash, Some(usd("2500.5")));
    assert_eq!(day.portfolio_value, Some(usd("10017.5617283945")));
    assert!(day.duration_ms.is_some_and(|d| d >= 0));
    assert_eq!(s.trades(&key).await.expect("trades"), result.trades);
    assert_eq!(s.holdings(&key).await.expect("holdings"), result.holdings);
    assert_eq!(
        s.reasoning_logs(&key).await.expect("logs"),
        result.reasoning
    );
    assert_eq!(s.tool_usage(&key).await.expect("tools"), result.tool_calls);
    assert_eq!(t.count("workflow_events").await, events + 1);

    // Completed: a second completion is refused and changes nothing.
    let again = s
        .complete_claimed_model_day(&newer, &outcome("1", 9), "model_day_completed", &event)
        .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(m)) if m.contains("already completed")),
        "{again:?}"
    );
    assert_eq!(t.count("reasoning_logs").await, 5);
    assert_eq!(t.count("workflow_events").await, events + 1);

    // A day without trades, holdings or messages completes too (only its row and event).
    let other = ModelDayKey::new(&job.id, "m2", date(2));
    let first = s
        .claim_model_day(&other, LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let empty = tradeloom_store::ModelDayOutcome {
        trades: Vec::new(),
        holdings: Vec::new(),
        reasoning: Vec::new(),
        tool_calls: Vec::new(),
        ..outcome("2500.5", 1)
    };
    s.complete_claimed_model_day(&first, &empty, "model_day_completed", &event)
        .await
        .expect("complete an empty day");
    let day = s.model_day(&other).await.expect("day");
    assert_eq!(day.status, ModelDayStatus::Completed);
    assert_eq!((day.tool_calls, day.tool_errors), (Some(0), Some(0)));
    assert_eq!(t.count("workflow_events").await, events + 2);
    assert_eq!(t.count("reasoning_logs").await, 5);
}

/// `claim_model_days` claims a date's days in one statement; `complete_claimed_model_days`
/// completes them in one transaction, or, when one of them cannot complete, each on its own
/// with its own answer.
async fn a_date_is_claimed_and_completed_at_once(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "date-batch", &["m1", "m2", "m3"], &[2, 3]).await;
    let models: Vec<String> = ["m1", "m2", "m3", "nope"].map(String::from).to_vec();
    let key = |m: &str, d: u32| ModelDayKey::new(&job.id, m, date(d));
    // m3's day is already running elsewhere (freshly): not claimed; nor is a missing model.
    s.claim_model_day(&key("m3", 2), LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let mut claims = s
        .claim_model_days(&job.id, date(2), &models, LEASE)
        .await
        .expect("claim a date");
    claims.sort_by(|a, b| a.model.cmp(&b.model));
    let claimed: Vec<(&str, u32)> = claims
        .iter()
        .map(|c| (c.model.as_str(), c.attempts))
        .collect();
    assert_eq!(claimed, [("m1", 1), ("m2", 1)]);
    assert!(claims.iter().all(|c| c.status == ModelDayStatus::Running));
    assert!(
        claims
            .iter()
            .all(|c| c.date == date(2) && c.started_at.is_some())
    );
    // Claimed already: a second claim of the date gets nothing.
    let again = s
        .claim_model_days(&job.id, date(2), &models, LEASE)
        .await
        .expect("claim again");
    assert!(again.is_empty(), "{again:?}");

    // Both complete in one transaction, each with its rows and its event.
    let (r1, r2) = (outcome("100", 4), outcome("200", 6));
    let (e1, e2) = (
        serde_json::json!({"model": "m1"}),
        serde_json::json!({"model": "m2"}),
    );
    let events = t.count("workflow_events").await;
    let finished_at = chrono::Utc::now();
    let days = [
        ClaimedCompletion {
            claim: &claims[0],
            outcome: &r1,
            kind: "model_day_completed",
            payload: &e1,
            finished_at,
        },
        ClaimedCompletion {
            claim: &claims[1],
            outcome: &r2,
            kind: "model_day_completed",
            payload: &e2,
            finished_at,
        },
    ];
    let answers = s.complete_claimed_model_days(&days).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    for (m, r) in [("m1", &r1), ("m2", &r2)] {
        let day = s.model_day(&key(m, 2)).await.expect("day");
        assert_eq!(day.status, ModelDayStatus::Completed, "{m}");
        assert_eq!(day.portfolio_value, Some(r.portfolio_value));
        assert!(day.duration_ms.is_some_and(|d| d >= 0));
        assert_eq!(
            s.reasoning_logs(&key(m, 2)).await.expect("logs"),
            r.reasoning
        );
        assert_eq!(s.trades(&key(m, 2)).await.expect("trades"), r.trades);
        assert_eq!(s.holdings(&key(m, 2)).await.expect("holdings"), r.holdings);
        assert_eq!(s.tool_usage(&key(m, 2)).await.expect("tools"), r.tool_calls);
    }
    assert_eq!(t.count("reasoning_logs").await, 10);
    assert_eq!(t.count("workflow_events").await, events + 2);

    // The next date: m2's day is taken over by another worker after the claim, so its
    // completion is refused; the batch falls back to one by one and m1's day still completes.
    let mut claims = s
        .claim_model_days(&job.id, date(3), &models, LEASE)
        .await
        .expect("claim date 3");
    claims.sort_by(|a, b| a.model.cmp(&b.model));
    assert_eq!(claims.len(), 3);
    s.claim_model_day(&key("m2", 3), Duration::ZERO)
        .await
        .expect("claim")
        .expect("taken over");
    let r3 = outcome("300", 2);
    let days: Vec<ClaimedCompletion<'_>> = claims
        .iter()
        .take(2)
        .map(|claim| ClaimedCompletion {
            claim,
            outcome: &r3,
            kind: "model_day_completed",
            payload: &e1,
            finished_at,
        })
        .collect();
    let answers = s.complete_claimed_model_days(&days).await;
    assert!(answers[0].is_ok(), "{answers:?}");
    assert!(
        matches!(&answers[1], Err(StoreError::Conflict(m)) if m.contains("claimed again")),
        "{answers:?}"
    );
    assert_eq!(
        s.model_day(&key("m1", 3)).await.expect("day").status,
        ModelDayStatus::Completed
    );
    let m2 = s.model_day(&key("m2", 3)).await.expect("day");
    assert_eq!((m2.status, m2.attempts), (ModelDayStatus::Running, 2));
    assert!(
        s.reasoning_logs(&key("m2", 3))
            .await
            .expect("logs")
            .is_empty()
    );
    assert_eq!(t.count("reasoning_logs").await, 12);
    assert_eq!(t.count("workflow_events").await, events + 3);

    // m3's day and the takeover's (a second attempt) complete together; their events are
    // appended in the order of the days, not of the models.
    let (e3, e4) = (
        serde_json::json!({"model": "m3"}),
        serde_json::json!({"model": "m2", "attempt": 2}),
    );
    let days = [
        ClaimedCompletion {
            claim: &claims[2],
            outcome: &r1,
            kind: "model_day_completed",
            payload: &e3,
            finished_at,
        },
        ClaimedCompletion {
            claim: &m2,
            outcome: &r2,
            kind: "model_day_completed",
            payload: &e4,
            finished_at,
        },
    ];
    let answers = s.complete_claimed_model_days(&days).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    for (m, r) in [("m3", &r1), ("m2", &r2)] {
        let day = s.model_day(&key(m, 3)).await.expect("day");
        assert_eq!(day.status, ModelDayStatus::Completed, "{m}");
        assert_eq!(day.portfolio_value, Some(r.portfolio_value));
        assert_eq!(
            s.reasoning_logs(&key(m, 3)).await.expect("logs"),
            r.reasoning
        );
    }
    let logged = s
        .events(EventFilter::Job(&job.id), 0, 1000)
        .await
        .expect("events");
    let last: Vec<&serde_json::Value> = logged
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(|e| &e.payload)
        .collect();
    assert_eq!(last, [&e3, &e4]);
    assert_eq!(t.count("workflow_events").await, events + 5);
}

/// A day's memory entry is stored with it by every completion path (one day, a claimed batch)
/// and read back by model and date; days without one, and unfinished days, are not listed.
async fn memories_are_kept_with_their_days(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "memory", &["a", "b"], &[2, 3]).await;
    let key = |m: &str, d: u32| ModelDayKey::new(&job.id, m, date(d));
    let entry = |d: u32| serde_json::json!({"date": format!("2025-01-0{d}"), "lesson": format!("lesson {d}"), "decisions": ["buy 1 AAA at 10.5"]});
    // One day completed on its own.
    s.claim_model_day(&key("a", 2), LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let mut with_memory = outcome("101", 2);
    with_memory.memory = Some(entry(2));
    s.complete_model_day(&key("a", 2), &with_memory)
        .await
        .expect("complete");
    // b's day without memory.
    s.claim_model_day(&key("b", 2), LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    s.complete_model_day(&key("b", 2), &outcome("99", 2))
        .await
        .expect("complete");
    // Date 3 claimed and completed as a batch; b's day 3 stays running.
    let claims = s
        .claim_model_days(&job.id, date(3), &["a".to_string()], LEASE)
        .await
        .expect("claim a date");
    s.claim_model_day(&key("b", 3), LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    let mut third = outcome("102", 2);
    third.memory = Some(entry(3));
    let payload = serde_json::json!({});
    let days = [ClaimedCompletion {
        claim: &claims[0],
        outcome: &third,
        kind: "model_day_completed",
        payload: &payload,
        finished_at: chrono::Utc::now(),
    }];
    let answers = s.complete_claimed_model_days(&days).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let all = s.model_day_memories(&job.id, None).await.expect("memories");
    let listed: Vec<(&str, u32)> = all
        .iter()
        .map(|m| (m.model.as_str(), chrono::Datelike::day(&m.date)))
        .collect();
    assert_eq!(listed, [("a", 2), ("a", 3)]);
    assert_eq!(all[0].memory, entry(2));
    assert_eq!(all[1].memory, entry(3));
    let only_b = s
        .model_day_memories(&job.id, Some("b"))
        .await
        .expect("memories");
    assert!(only_b.is_empty());
    let only_a = s
        .model_day_memories(&job.id, Some("a"))
        .await
        .expect("memories");
    assert_eq!(only_a.len(), 2);
    assert!(
        s.model_day_memories("no-such-job", None)
            .await
            .expect("memories")
            .is_empty()
    );
}

/// Every column of `table`'s rows of `model`, as text (NULL as `None`), in `seq` order.
async fn rows_of(t: &Ctx, table: &str, columns: &str, model: &str) -> Vec<Vec<Option<String>>> {
    // `job_details` has one row per model and date here, and no seq.
    let order = if table == "job_details" {
        "date"
    } else {
        "seq"
    };
    use sqlx::Row;
    let n = columns.split(',').count();
    let select: Vec<String> = columns
        .split(',')
        .map(|c| format!("CAST({} AS TEXT)", c.trim()))
        .collect();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM {table} WHERE model = $1 ORDER BY {order}",
        select.join(", ")
    ));
    match &t.raw {
        crate::Raw::Sqlite(p) => sqlx::query(sql)
            .bind(model)
            .fetch_all(p)
            .await
            .expect("rows")
            .iter()
            .map(|r| (0..n).map(|i| r.get::<Option<String>, _>(i)).collect())
            .collect(),
        crate::Raw::Postgres(p) => sqlx::query(sql)
            .bind(model)
            .fetch_all(p)
            .await
            .expect("rows")
            .iter()
            .map(|r| (0..n).map(|i| r.get::<Option<String>, _>(i)).collect())
            .collect(),
    }
}

/// An outcome with the values a completion must carry exactly: sub-microsecond times, quotes,
/// backslashes, newlines and non-ASCII text, a JSON `null` result (not SQL NULL), no tool calls
/// on a message, a tool error, many decimals, a memory entry.
fn awkward_outcome() -> tradeloom_store::ModelDayOutcome {
    use chrono::TimeZone;
    let mut o = outcome("10017.561728394500000001", 6);
    let at = chrono::Utc
        .timestamp_opt(1_735_828_200, 123_456_789)
        .single()
        .expect("time");
    o.reasoning[1].content = "quote \" backslash \\ newline \n tab \t é 🚀 {\"json\": [1]}".into();
    o.reasoning[2].created_at = at;
    o.reasoning[3].tool_calls = Some(serde_json::json!([{"x": 1.5, "s": "é\"\n", "n": null}]));
    o.tool_calls[0].result = Some(serde_json::Value::Null);
    o.tool_calls[0].created_at = at;
    o.tool_calls[1].args = serde_json::json!({"q": "it's", "deep": {"a": [true, false, 1e3]}});
    o.trades[0].price = tradeloom_core::Decimal::parse("0.000000000000000001").expect("price");
    o.memory = Some(serde_json::json!({"lesson": "ünïcode \"quoted\""}));
    o
}

/// The completion of a claimed batch (rows passed as one JSON parameter per table) stores the
/// same rows, column for column, as `complete_model_day` (rows bound one value at a time).
async fn a_batched_completion_stores_the_rows_a_single_one_does(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "same-rows", &["one", "two", "three"], &[2]).await;
    let o = awkward_outcome();
    let key = |m: &str| ModelDayKey::new(&job.id, m, date(2));
    s.claim_model_day(&key("one"), LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    s.complete_model_day(&key("one"), &o)
        .await
        .expect("complete");
    let mut claims = s
        .claim_model_days(&job.id, date(2), &["two".into(), "three".into()], LEASE)
        .await
        .expect("claim a date");
    claims.sort_by(|a, b| b.model.cmp(&a.model));
    let payload = serde_json::json!({"e": "é"});
    let days: Vec<ClaimedCompletion<'_>> = claims
        .iter()
        .map(|claim| ClaimedCompletion {
            claim,
            outcome: &o,
            kind: "model_day_completed",
            payload: &payload,
            finished_at: chrono::Utc::now(),
        })
        .collect();
    let answers = s.complete_claimed_model_days(&days).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let tables = [
        (
            "positions",
            "seq, step, action, symbol, quantity, price, fee, cash_after",
        ),
        ("holdings", "seq, symbol, quantity, price, value"),
        (
            "reasoning_logs",
            "seq, step, role, content, tool_calls, created_at",
        ),
        (
            "tool_usage",
            "seq, step, tool_name, args, result, latency_ms, error, created_at",
        ),
    ];
    for (table, columns) in tables {
        let single = rows_of(&t, table, columns, "one").await;
        assert!(!single.is_empty(), "{table}");
        for batched in ["two", "three"] {
            assert_eq!(
                rows_of(&t, table, columns, batched).await,
                single,
                "{table} of {batched}"
            );
        }
    }
    // The day's own columns too (its times differ).
    let own = "cash, portfolio_value, steps, tool_calls, tool_errors, memory, status";
    let single = rows_of(&t, "job_details", own, "one").await;
    assert_eq!(single.len(), 1);
    assert_eq!(rows_of(&t, "job_details", own, "two").await, single);
    assert_eq!(rows_of(&t, "job_details", own, "three").await, single);
    // Read back through the store: the outcome exactly (PostgreSQL keeps times to the
    // microsecond, SQLite as given).
    let micros = |at: chrono::DateTime<chrono::Utc>| match &t.raw {
        crate::Raw::Postgres(_) => chrono::SubsecRound::trunc_subsecs(at, 6),
        crate::Raw::Sqlite(_) => at,
    };
    let tools = s.tool_usage(&key("two")).await.expect("tools");
    assert_eq!(tools[0].result, Some(serde_json::Value::Null));
    assert_eq!(tools[0].created_at, micros(o.tool_calls[0].created_at));
    assert_eq!(tools[1].args, o.tool_calls[1].args);
    let logs = s.reasoning_logs(&key("three")).await.expect("logs");
    assert_eq!(logs[1].content, o.reasoning[1].content);
    assert_eq!(logs[3].tool_calls, o.reasoning[3].tool_calls);
    assert_eq!(s.trades(&key("two")).await.expect("trades"), o.trades);
    assert_eq!(
        s.holdings(&key("three")).await.expect("holdings"),
        o.holdings
    );
}

/// A date's batch whose second day breaks a constraint when its rows are inserted (two holdings
/// of one symbol) keeps nothing of the first day from the batch: the batch rolls back as a
/// unit, then each day completes on its own — the first with its rows, the second refused.
async fn a_batch_with_a_bad_day_rolls_back_as_a_unit(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "unit", &["good", "bad"], &[2]).await;
    let claims = {
        let mut c = s
            .claim_model_days(&job.id, date(2), &["good".into(), "bad".into()], LEASE)
            .await
            .expect("claim a date");
        c.sort_by(|a, b| b.model.cmp(&a.model));
        c
    };
    let good = outcome("100", 3);
    let mut bad = outcome("100", 3);
    bad.holdings[1].symbol = bad.holdings[0].symbol.clone();
    let payload = serde_json::json!({});
    let days: Vec<ClaimedCompletion<'_>> = claims
        .iter()
        .zip([&good, &bad])
        .map(|(claim, outcome)| ClaimedCompletion {
            claim,
            outcome,
            kind: "model_day_completed",
            payload: &payload,
            finished_at: chrono::Utc::now(),
        })
        .collect();
    assert_eq!(days[0].claim.model, "good");
    let events = t.count("workflow_events").await;
    let answers = s.complete_claimed_model_days(&days).await;
    assert!(answers[0].is_ok(), "{answers:?}");
    assert!(answers[1].is_err(), "{answers:?}");
    let key = |m: &str| ModelDayKey::new(&job.id, m, date(2));
    assert_eq!(
        s.model_day(&key("good")).await.expect("day").status,
        ModelDayStatus::Completed
    );
    let bad_day = s.model_day(&key("bad")).await.expect("day");
    assert_eq!(bad_day.status, ModelDayStatus::Running);
    // Only the good day's rows and event: nothing of the bad day, nothing twice.
    assert_eq!(t.count("holdings").await, 2);
    assert_eq!(t.count("positions").await, 2);
    assert_eq!(t.count("reasoning_logs").await, 3);
    assert_eq!(t.count("tool_usage").await, 2);
    assert_eq!(t.count("workflow_events").await, events + 1);
    assert!(s.holdings(&key("bad")).await.expect("holdings").is_empty());
}
