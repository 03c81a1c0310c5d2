//! Reconciliation: a clean run and a clean job pass; each injected corruption (a journal fill, a
//! fills.csv row, metrics.json, a stored holding or trade row) is caught by the check meant to
//! catch it; a malformed journal line is an error naming file and line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tradeloom_agents::{Simulator, SimulatorOptions, config_from_value, run_to_end};
use tradeloom_ops::reconcile::{
    ReconcileError, Reconciliation, reconcile_job, reconcile_run, reconcile_run_with_store,
};
use tradeloom_store::{JobStatus, ResultsFilter, RunEntry, Store, open_store};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs GOOG daily sma_cross with a 10 bps fee (so fees are not zero) into `data_dir`.
pub(crate) fn run_folder(data_dir: &Path) -> PathBuf {
    let data = repo()
        .join("examples/data/goog_1d.csv")
        .canonicalize()
        .unwrap();
    let spec = data_dir.join("spec.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: rec\nmode: backtest\ninstruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
             data: [{{symbol: GOOG, path: {}}}]\n\
             strategy: {{name: sma_cross, params: {{fast: 10, slow: 20, quantity: 10}}}}\n\
             execution: {{fill_model: next_open, fee_bps: 10}}\naccount: {{initial_cash: 100000, currency: USD}}\n",
            data.display()
        ),
    )
    .unwrap();
    let outcome = tradeloom_runs::execute(
        &spec,
        tradeloom_runs::RunOptions {
            data_dir: data_dir.to_path_buf(),
            ..tradeloom_runs::RunOptions::default()
        },
    )
    .unwrap();
    assert!(outcome.metrics.fills > 4, "the run trades");
    outcome.run_dir
}

fn failed_names(r: &Reconciliation) -> Vec<String> {
    r.failed().map(|c| c.name.clone()).collect()
}

fn assert_failed(r: &Reconciliation, name: &str) {
    let c = r
        .check(name)
        .unwrap_or_else(|| panic!("no check {name} in {:?}", r.checks));
    assert!(!c.passed, "{name} passed: {c:?}");
    assert!(!r.passed);
}

/// Rewrites the `nth` (0-based) journal line with event `event` through `edit`.
fn edit_journal(dir: &Path, event: &str, nth: usize, edit: impl Fn(&mut serde_json::Value)) {
    let path = dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut seen = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["event"] == event {
                seen += 1;
                if seen == nth + 1 {
                    edit(&mut v);
                    return serde_json::to_string(&v).unwrap();
                }
            }
            l.to_string()
        })
        .collect();
    assert!(seen > nth, "fewer than {} `{event}` lines", nth + 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_clean_run_reconciles_and_writes_its_result() {
    let data = tempfile::tempdir().unwrap();
    let dir = run_folder(data.path());
    let r = reconcile_run(&dir).unwrap();
    assert!(r.passed, "failed: {:?}", r.failed().collect::<Vec<_>>());
    for name in [
        "journal.cash",
        "journal.position.GOOG.quantity",
        "journal.position.GOOG.realized_pnl",
        "journal.position_events",
        "equity_curve.cash",
        "equity_curve.final_equity",
        "equity_curve.gross_exposure",
        "fills_csv.rows",
        "fills_csv.match_journal",
        "orders_csv.filled_quantity",
        "trades_csv.closed",
        "metrics.fees",
        "metrics.final_equity",
        "metrics.net_pnl",
        "metrics.total_return_pct",
        "metrics.trades",
        "metrics.orders",
        "metadata.final_equity",
    ] {
        assert!(r.check(name).is_some(), "check {name} missing");
    }
    let fees = r.check("metrics.fees").unwrap();
    assert_ne!(fees.expected, "0.00", "the run paid fees");
    assert_eq!(fees.difference, "0.00");
    let path = r.write(&dir).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["run_id"], dir.file_name().unwrap().to_str().unwrap());
    assert!(v["checked_at"].as_str().unwrap().ends_with('Z'));
    for c in v["checks"].as_array().unwrap() {
        for key in ["name", "passed", "expected", "observed", "difference"] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
}

#[test]
fn a_changed_fill_quantity_in_the_journal_is_caught() {
    let data = tempfile::tempdir().unwrap();
    let dir = run_folder(data.path());
    edit_journal(&dir, "order_filled", 2, |v| v["quantity"] = json!("11"));
    let r = reconcile_run(&dir).unwrap();
    let failed = failed_names(&r);
    assert_failed(&r, "journal.cash");
    assert_failed(&r, "journal.position_events");
    assert_failed(&r, "fills_csv.match_journal");
    assert_failed(&r, "metrics.turnover");
    let cash = r.check("journal.cash").unwrap();
    assert_ne!(cash.difference, "0.00", "{cash:?}");
    assert!(
        !failed.contains(&"metrics.final_equity".to_string()),
        "reported figures agree among themselves: {failed:?}"
    );
}

#[test]
fn a_changed_fill_price_in_the_journal_is_caught() {
    let data = tempfile::tempdir().unwrap();
    let dir = run_folder(data.path());
    edit_journal(&dir, "order_filled", 1, |v| {
        let p: f64 = v["price"].as_str().unwrap().parse().unwrap();
        v["price"] = json!(format!("{:.2}", p + 1.0));
    });
    let r = reconcile_run(&dir).unwrap();
    assert_failed(&r, "journal.cash");
    assert_failed(&r, "fills_csv.match_journal");
    let m = r.check("fills_csv.match_journal").unwrap();
    assert!(
        m.expected.as_str().unwrap().starts_with("journal.jsonl:"),
        "{m:?}"
    );
    assert!(
        m.observed.as_str().unwrap().starts_with("fills.csv:3:"),
        "{m:?}"
    );
}

#[test]
fn a_changed_row_of_fills_csv_is_caught_by_the_row_check_only() {
    let data = tempfile::tempdir().unwrap();
    let dir = run_folder(data.path());
    let path = dir.join("fills.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut f: Vec<String> = lines[4].split(',').map(str::to_string).collect();
    f[5] = "12".to_string(); // quantity
    lines[4] = f.join(",");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let r = reconcile_run(&dir).unwrap();
    assert_eq!(failed_names(&r), ["fills_csv.match_journal"]);
    let m = r.check("fills_csv.match_journal").unwrap();
    assert!(
        m.observed.as_str().unwrap().starts_with("fills.csv:5:"),
        "{m:?}"
    );
}

#[test]
fn changed_fees_and_final_equity_in_metrics_json_are_caught() {
    let data = tempfile::tempdir().unwrap();
    let dir = run_folder(data.path());
    let path = dir.join("metrics.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["fees"] = json!("0.01");
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let r = reconcile_run(&dir).unwrap();
    assert_eq!(failed_names(&r), ["metrics.fees"]);

    let equity = m["final_equity"].as_str().unwrap().to_string();
    let fees = reconcile_run(&run_folder(data.path())).unwrap();
    let true_fees = fees.check("metrics.fees").unwrap().expected.clone();
    m["fees"] = true_fees;
    m["final_equity"] = json!(format!("{equity}1"));
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let r = reconcile_run(&dir).unwrap();
    assert_failed(&r, "metrics.final_equity");
    let c = r.check("metrics.final_equity").unwrap();
    assert_eq!(c.expected, json!(equity));
    assert_ne!(c.difference, "0.00");
}

#[test]
fn a_malformed_journal_line_is_an_error_with_file_and_line() {
    let data = tempfile::tempdir().unwrap();
    let dir = run_folder(data.path());
    let path = dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[6] = "{\"seq\":7,\"event\":\"order_filled\",";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = reconcile_run(&dir).unwrap_err();
    assert!(
        matches!(e, ReconcileError::Corrupt { line: Some(7), .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("journal.jsonl:7:"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_run_is_compared_with_the_store() {
    let data = tempfile::tempdir().unwrap();
    let dir = run_folder(data.path());
    let store = open_store(&data.path().join("t.db").display().to_string())
        .await
        .unwrap();
    let r = reconcile_run_with_store(&dir, store.as_ref())
        .await
        .unwrap();
    assert!(
        r.check("store.status").is_none(),
        "not indexed: no store checks"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    let mut summary = metrics.clone();
    summary["final_equity"] = json!("1.00");
    store
        .insert_run(&RunEntry {
            run_id: dir.file_name().unwrap().to_str().unwrap().to_string(),
            name: "rec".into(),
            status: "completed".into(),
            run_dir: dir.display().to_string(),
            created_at: chrono::Utc::now(),
            summary: Some(summary),
        })
        .await
        .unwrap();
    let r = reconcile_run_with_store(&dir, store.as_ref())
        .await
        .unwrap();
    assert_eq!(failed_names(&r), ["store.final_equity"]);
    assert!(r.check("store.status").unwrap().passed);
    assert!(r.check("store.fees").unwrap().passed);
}

// ---- simulation jobs -----------------------------------------------------------------------

/// A 4-symbol, 8-day universe under `root/universe`.
fn universe(root: &Path) {
    use tradeloom_data::news::{synth_news, write_news};
    use tradeloom_data::universe::{UniverseSpec, synth_universe, write_universe};
    let spec = UniverseSpec {
        symbols: 4,
        days: 8,
        seed: 11,
        start: "2025-01-02".parse().unwrap(),
    };
    let u = synth_universe(&spec).unwrap();
    let dir = root.join("universe");
    write_universe(&u, &dir).unwrap();
    write_news(&dir.join("news.jsonl"), &synth_news(&u, 11)).unwrap();
}

/// Runs a two-model job on mock-llm against the store at `location`; returns its id.
async fn job(root: &Path, location: &str) -> (Arc<dyn Store>, String) {
    universe(root);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
    let store = open_store(location).await.unwrap();
    let sim = Simulator::new(
        Arc::clone(&store),
        SimulatorOptions {
            data_dir: root.join("data"),
            max_concurrent_jobs: 1,
            base_dir: root.to_path_buf(),
            // The mock listens on loopback, as `serve --http-allow 127.0.0.1` allows.
            outbound: tradeloom_net::Outbound::new(
                tradeloom_net::SsrfPolicy {
                    allow_hosts: vec!["127.0.0.1".into()],
                    ..tradeloom_net::SsrfPolicy::default()
                },
                tradeloom_net::SecretEnv::default(),
            )
            .unwrap(),
        },
    );
    let models: Vec<_> = [("bh", "buy_and_hold"), ("mom", "momentum")]
        .iter()
        .map(|(n, p)| json!({"name": n, "base_url": base, "model": p, "max_retries": 0}))
        .collect();
    let config = json!({
        "models": models, "universe": {"path": "universe"},
        "start_date": "2025-01-02", "end_date": "2025-01-09",
        "max_steps": 8, "max_tool_errors": 2, "fee_bps": 5,
    });
    let resolved = config_from_value(&config, root).unwrap();
    let (_, job) = run_to_end(&sim, &resolved).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    (store, job.id)
}

/// The first completed model-day (by date, model) with a holding and a trade.
async fn traded_day(store: &dyn Store, job_id: &str) -> (String, chrono::NaiveDate, String) {
    let page = store
        .results(&ResultsFilter {
            job_id: Some(job_id.to_string()),
            completed_only: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let item = page
        .items
        .iter()
        .find(|i| !i.holdings.is_empty() && i.trades > 0)
        .expect("a model-day that traded and holds something");
    (
        item.model_day.model.clone(),
        item.model_day.date,
        item.holdings[0].symbol.clone(),
    )
}

enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn exec(
        &self,
        sql_sqlite: &'static str,
        sql_pg: &'static str,
        job: &str,
        model: &str,
        date: chrono::NaiveDate,
        symbol: &str,
    ) {
        let n = match self {
            Db::Sqlite(p) => sqlx::query(sql_sqlite)
                .bind(job)
                .bind(model)
                .bind(date)
                .bind(symbol)
                .execute(p)
                .await
                .unwrap()
                .rows_affected(),
            Db::Postgres(p) => sqlx::query(sql_pg)
                .bind(job)
                .bind(model)
                .bind(date)
                .bind(symbol)
                .execute(p)
                .await
                .unwrap()
                .rows_affected(),
        };
        assert_eq!(n, 1, "one row corrupted");
    }
}

async fn corrupted_rows_are_caught(store: Arc<dyn Store>, job_id: String, db: Db) {
    let clean = reconcile_job(store.as_ref(), &job_id).await.unwrap();
    assert!(
        clean.passed,
        "failed: {:?}",
        clean.failed().collect::<Vec<_>>()
    );
    assert!(clean.checks.len() > 20, "{} checks", clean.checks.len());
    assert!(clean.check("leaderboard.bh.final_value").unwrap().passed);
    let (model, date, symbol) = traded_day(store.as_ref(), &job_id).await;
    let prefix = format!("{model}.{date}");

    // A holding row's quantity.
    db.exec(
        "UPDATE holdings SET quantity = CAST(quantity AS INTEGER) + 1 WHERE job_id = ?1 AND model = ?2 AND date = ?3 AND symbol = ?4",
        "UPDATE holdings SET quantity = quantity + 1 WHERE job_id = $1 AND model = $2 AND date = $3 AND symbol = $4",
        &job_id, &model, date, &symbol,
    )
    .await;
    let r = reconcile_job(store.as_ref(), &job_id).await.unwrap();
    assert_failed(&r, &format!("{prefix}.holdings"));
    assert!(
        failed_names(&r).iter().all(|n| n.starts_with(&prefix)),
        "only that model-day: {:?}",
        failed_names(&r)
    );
    db.exec(
        "UPDATE holdings SET quantity = CAST(quantity AS INTEGER) - 1 WHERE job_id = ?1 AND model = ?2 AND date = ?3 AND symbol = ?4",
        "UPDATE holdings SET quantity = quantity - 1 WHERE job_id = $1 AND model = $2 AND date = $3 AND symbol = $4",
        &job_id, &model, date, &symbol,
    )
    .await;
    assert!(
        reconcile_job(store.as_ref(), &job_id).await.unwrap().passed,
        "restored"
    );

    // A trade row's cash_after (the day's first trade row), leaving every total alone.
    db.exec(
        "UPDATE positions SET cash_after = '1.00' WHERE job_id = ?1 AND model = ?2 AND date = ?3 AND seq = (SELECT MIN(seq) FROM positions WHERE job_id = ?1 AND model = ?2 AND date = ?3 AND action <> 'hold') AND ?4 IS NOT NULL",
        "UPDATE positions SET cash_after = 1.00 WHERE job_id = $1 AND model = $2 AND date = $3 AND seq = (SELECT MIN(seq) FROM positions WHERE job_id = $1 AND model = $2 AND date = $3 AND action <> 'hold') AND $4::text IS NOT NULL",
        &job_id, &model, date, &symbol,
    )
    .await;
    let r = reconcile_job(store.as_ref(), &job_id).await.unwrap();
    assert_failed(&r, &format!("{prefix}.trades"));
    assert_failed(&r, &format!("{prefix}.tool_calls"));
    assert!(
        r.check(&format!("{prefix}.cash")).unwrap().passed,
        "the day's cash is intact"
    );

    // A model-day's stored cash.
    db.exec(
        "UPDATE job_details SET cash = '0.01' WHERE job_id = ?1 AND model = ?2 AND date = ?3 AND ?4 IS NOT NULL",
        "UPDATE job_details SET cash = 0.01 WHERE job_id = $1 AND model = $2 AND date = $3 AND $4::text IS NOT NULL",
        &job_id, &model, date, &symbol,
    )
    .await;
    let r = reconcile_job(store.as_ref(), &job_id).await.unwrap();
    assert_failed(&r, &format!("{prefix}.cash"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_stored_row_of_a_job_is_caught_on_sqlite() {
    let root = tempfile::tempdir().unwrap();
    let db_path = root.path().join("t.db");
    let (store, job_id) = job(root.path(), &db_path.display().to_string()).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    corrupted_rows_are_caught(store, job_id, Db::Sqlite(pool)).await;
}

/// The same on PostgreSQL when `TRADELOOM_TEST_POSTGRES_URL` is set (a scratch database); set
/// and unreachable, the test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_stored_row_of_a_job_is_caught_on_postgres() {
    let Ok(base) = std::env::var("TRADELOOM_TEST_POSTGRES_URL") else {
        eprintln!("note: TRADELOOM_TEST_POSTGRES_URL is not set; skipping the PostgreSQL variant");
        return;
    };
    let scratch = tradeloom_store::ScratchDatabase::create(&base, "tl_reconcile")
        .await
        .unwrap_or_else(|e| panic!("TRADELOOM_TEST_POSTGRES_URL={base} is set but unusable: {e}"));
    let root = tempfile::tempdir().unwrap();
    let url = scratch.url().to_string();
    let outcome = tokio::spawn(async move {
        let (store, job_id) = job(root.path(), &url).await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        corrupted_rows_are_caught(store, job_id, Db::Postgres(pool)).await;
    })
    .await;
    scratch.drop_database().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
