//! Results filters and pagination, exact money, the leaderboard and the runs index.

use chrono::{TimeZone, Utc};
use serde_json::json;
use tradeloom_core::{Currency, Money};
use tradeloom_store::{
    Holding, ModelDayKey, ResultsFilter, RunEntry, StoreError, Trade, TradeAction,
};

use crate::Ctx;
use crate::backend_tests;
use crate::fixtures::{create, date, dec, finish, outcome, usd};

backend_tests!(
    results_filters_and_pagination,
    money_round_trips_exactly,
    leaderboard_per_model,
    runs_index,
    read_version_moves_with_every_commit,
    a_health_check_moves_no_read_version,
);

async fn results_filters_and_pagination(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "results", &["a", "b", "c"], &[2, 3, 6, 7]).await;
    let other = create(s, "other", &["a"], &[2]).await;
    for model in ["a", "b", "c"] {
        for d in [2, 3, 6] {
            finish(s, &ModelDayKey::new(&job.id, model, date(d)), "10000").await;
        }
    }
    finish(s, &ModelDayKey::new(&other.id, "a", date(2)), "9000").await;
    let query = |f: ResultsFilter| async move { s.results(&f).await.expect("results") };

    let all = query(ResultsFilter::default()).await;
    assert_eq!(all.total, 13, "12 model-days of job 1 and 1 of job 2");
    let by_job = query(ResultsFilter {
        job_id: Some(job.id.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_job.total, 12);
    let done = query(ResultsFilter {
        job_id: Some(job.id.clone()),
        completed_only: true,
        ..Default::default()
    })
    .await;
    assert_eq!(done.total, 9);
    let model_a = query(ResultsFilter {
        model: Some("a".into()),
        completed_only: true,
        ..Default::default()
    })
    .await;
    assert_eq!(model_a.total, 4, "model a over both jobs");
    let one = query(ResultsFilter {
        job_id: Some(job.id.clone()),
        model: Some("b".into()),
        date: Some(date(3)),
        ..Default::default()
    })
    .await;
    assert_eq!(one.total, 1);
    let item = &one.items[0];
    assert_eq!(
        (item.model_day.model.as_str(), item.model_day.date),
        ("b", date(3))
    );
    assert_eq!(item.trades, 1, "holds are not trades");
    assert_eq!(item.holdings.len(), 2);
    assert_eq!(item.model_day.portfolio_value, Some(usd("10000")));
    let json = serde_json::to_value(item).expect("serialise");
    assert_eq!(json["portfolio_value"], "10000.00");
    assert_eq!(json["holdings"][1]["price"], "410.123456789");

    // Pages of 5 over the 12 model-days of the job: 5, 5, 2, in (date, model) order, disjoint.
    let mut seen = Vec::new();
    for (offset, expected) in [(0u64, 5usize), (5, 5), (10, 2), (15, 0)] {
        let page = query(ResultsFilter {
            job_id: Some(job.id.clone()),
            limit: 5,
            offset,
            ..Default::default()
        })
        .await;
        assert_eq!(page.total, 12);
        assert_eq!(page.items.len(), expected, "offset {offset}");
        seen.extend(
            page.items
                .iter()
                .map(|r| (r.model_day.date, r.model_day.model.clone())),
        );
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "ordered and without repeats");
    assert_eq!(seen.len(), 12);
}

async fn money_round_trips_exactly(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "money", &["m"], &[2]).await;
    let key = ModelDayKey::new(&job.id, "m", date(2));
    let amounts = [
        "0.1",
        "12345678901.123456789",
        "0.000000000000000001",
        "-0.3",
        "99999999999999999999.999999999999999999",
        "0",
    ];
    let mut result = outcome("12345678901.123456789", 1);
    result.cash = usd("0.1");
    result.trades = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| Trade {
            step: i as u32,
            action: TradeAction::Sell,
            symbol: Some(format!("S{i}")),
            quantity: dec(a.trim_start_matches('-')),
            price: dec(a),
            fee: usd(a),
            cash_after: usd(a),
        })
        .collect();
    result.holdings = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| Holding {
            symbol: format!("S{i}"),
            quantity: dec(a),
            price: dec(a),
            value: usd(a),
        })
        .collect();
    s.claim_model_day(&key, std::time::Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("claimed");
    s.complete_model_day(&key, &result).await.expect("complete");

    let day = s.model_day(&key).await.expect("day");
    assert_eq!(day.cash, Some(usd("0.1")));
    let value = day.portfolio_value.expect("value");
    assert_eq!(value.to_string(), "12345678901.123456789");
    assert_eq!(value.currency(), Currency::USD);
    let trades = s.trades(&key).await.expect("trades");
    let holdings = s.holdings(&key).await.expect("holdings");
    assert_eq!(trades, result.trades);
    assert_eq!(holdings, result.holdings);
    for (h, a) in holdings.iter().zip(amounts) {
        assert_eq!(h.value, usd(a), "{a}");
        assert_eq!(h.price, dec(a), "{a}");
        assert_eq!(h.price.to_string(), dec(a).to_string());
    }
    assert_eq!(
        holdings[1].value.raw(),
        12_345_678_901_123_456_789_000_000_000
    );

    // The database itself holds the exact decimal (TEXT in SQLite, NUMERIC in PostgreSQL).
    let stored = t
        .text("SELECT CAST(value AS TEXT) FROM holdings WHERE symbol = 'S1'")
        .await;
    assert_eq!(
        stored.trim_end_matches('0'),
        "12345678901.123456789",
        "stored as {stored}"
    );
    let stored = t
        .text("SELECT CAST(value AS TEXT) FROM holdings WHERE symbol = 'S3'")
        .await;
    assert_eq!(stored.trim_end_matches('0'), "-0.3", "stored as {stored}");

    // Amounts beyond 10^-18 or the column's range are refused, never rounded silently.
    assert!(Money::parse("0.0000000000000000001", Currency::USD).is_err());
}

async fn leaderboard_per_model(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "board", &["alpha", "beta"], &[2, 3, 6]).await;
    for (d, v) in [(2, "11000"), (3, "9900"), (6, "12000")] {
        finish(s, &ModelDayKey::new(&job.id, "alpha", date(d)), v).await;
    }
    finish(
        s,
        &ModelDayKey::new(&job.id, "beta", date(2)),
        "10000.000000000000000001",
    )
    .await;
    s.fail_model_day(&ModelDayKey::new(&job.id, "beta", date(3)), "timeout")
        .await
        .expect("fail");
    let board = s.leaderboard(&job.id, usd("10000")).await.expect("board");
    assert_eq!(board.len(), 2);
    let alpha = &board[0];
    assert_eq!(alpha.model, "alpha");
    assert_eq!(alpha.completed_days, 3);
    assert_eq!(alpha.trades, 3, "one buy per day; holds are not trades");
    assert_eq!(alpha.tool_errors, 3);
    assert_eq!(alpha.final_value, Some(usd("12000")));
    assert_eq!(
        alpha.daily.iter().map(|d| d.date).collect::<Vec<_>>(),
        [date(2), date(3), date(6)]
    );
    // Exact decimals (issue 12): 12000 / 10000 - 1 and (11000 - 9900) / 11000.
    assert_eq!(alpha.total_return.expect("return").to_string(), "0.2");
    assert_eq!(alpha.max_drawdown.expect("drawdown").to_string(), "0.1");
    assert!(alpha.sharpe.is_some());
    let beta = &board[1];
    assert_eq!((beta.completed_days, beta.failed_days), (1, 1));
    assert_eq!(beta.final_value, Some(usd("10000.000000000000000001")));
    assert_eq!(beta.sharpe, None, "one return is not enough");
    let eur = Money::parse("1", Currency::from_code("EUR").expect("EUR")).expect("amount");
    assert!(matches!(
        s.leaderboard(&job.id, eur).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn runs_index(t: Ctx) {
    let s = &*t.store;
    let at = |h| {
        Utc.with_ymd_and_hms(2025, 3, 1, h, 0, 0)
            .single()
            .expect("valid test time")
    };
    let first = RunEntry {
        run_id: "0195-a".into(),
        name: "sma cross".into(),
        status: "completed".into(),
        run_dir: "runs/0195-a".into(),
        created_at: at(9),
        summary: Some(json!({"sharpe": 1.25, "final_equity": "101234.50"})),
    };
    let second = RunEntry {
        run_id: "0195-b".into(),
        name: "buy and hold".into(),
        status: "running".into(),
        run_dir: "runs/0195-b".into(),
        created_at: at(10),
        summary: None,
    };
    s.insert_run(&first).await.expect("insert");
    s.insert_run(&second).await.expect("insert");
    assert!(matches!(
        s.insert_run(&first).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.run("0195-a").await.expect("get"), first);
    assert_eq!(
        s.list_runs(10, 0).await.expect("list"),
        [second.clone(), first]
    );
    assert_eq!(s.list_runs(1, 0).await.expect("list"), [second]);
    assert!(matches!(
        s.run("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// The health monitor's `SELECT 1` (every 10 s in `serve`) writes nothing, so it leaves the
/// read version where it is: when it moved it, every answer the API kept was dropped at once
/// and the requests in flight all read through SQL together (the start-up stall of the sixth
/// pass in docs/src/benchmarks.md).
async fn a_health_check_moves_no_read_version(t: Ctx) {
    let s = &*t.store;
    // Other tests of this process commit meanwhile (and on PostgreSQL every transaction of
    // the server moves the version), so one unmoved try in many is the evidence: a check
    // that moved the version would move it every time.
    let mut unmoved = 0;
    for _ in 0..40 {
        let v0 = s.read_version().await.expect("version");
        s.health().await.expect("health");
        if s.read_version().await.expect("version") == v0 {
            unmoved += 1;
            if unmoved == 3 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!(
        "a health check moved the read version {} times of 40",
        40 - unmoved
    );
}

/// The read version (what `GET /results` keeps answers under) moves with every write of this
/// process, before the writer's call returns; a results page without
/// trade counts is the same page with `trades` 0.
async fn read_version_moves_with_every_commit(t: Ctx) {
    let s = &*t.store;
    let job = create(s, "version", &["a", "b"], &[2, 3]).await;
    // (That reads move nothing is not checked here: other tests of this process commit
    // meanwhile, and the version counts every commit of the process.)
    let v0 = s.read_version().await.expect("version");
    finish(s, &ModelDayKey::new(&job.id, "a", date(2)), "10100").await;
    let v1 = s.read_version().await.expect("version");
    assert_ne!(v1, v0, "a completed model-day moves the version");
    s.retry_failed_model_days(&job.id).await.expect("retry");
    let v2 = s.read_version().await.expect("version");
    assert_ne!(v2, v1, "a re-trigger's write moves the version");
    let done = ResultsFilter {
        completed_only: true,
        ..ResultsFilter::default()
    };
    let counted = s.results(&done).await.expect("results");
    let uncounted = s.results_page(&done, false).await.expect("results");
    assert_eq!(counted.items.len(), 1);
    assert_eq!(counted.items[0].trades, 1, "one buy, one hold");
    assert_eq!(uncounted.items[0].trades, 0, "not counted");
    let mut same = uncounted.clone();
    same.items[0].trades = 1;
    assert_eq!(same, counted);
}
