//! The runs API through the typed calls: a backtest started from spec text completes in the
//! server (through the workflow runtime's registry of engine runs), reads back as a list, an
//! equity curve and pages of fills; refusals are typed errors with the API's codes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tradeloom_client::{EngineRunFilter, RunTable};
use tradeloom_server::AuthMode;

use crate::harness::serve;

const GOOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/data/goog_1d.csv"
);

fn spec(data_path: &str) -> String {
    format!(
        "name: client-goog\nmode: backtest\n\
         instruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: GOOG, path: {data_path}}}]\n\
         strategy: {{name: sma_cross, params: {{fast: 10, slow: 20, quantity: 10}}}}\n\
         execution: {{fill_model: next_open}}\n\
         account: {{initial_cash: 100000, currency: USD}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_started_by_the_client_reads_back() {
    let server = serve(AuthMode::Off).await;
    std::fs::create_dir_all(server.data_dir()).unwrap();
    std::fs::copy(GOOG, server.data_dir().join("goog.csv")).unwrap();
    let client = server.client(None);

    let started = client.start_engine_run(&spec("goog.csv")).await.unwrap();
    assert_eq!(
        (started.mode.as_str(), started.status.as_str()),
        ("backtest", "running")
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = client.engine_run(&started.run_id).await.unwrap();
        if run["status"] != "running" && run["active"] == false {
            break run;
        }
        assert!(Instant::now() < deadline, "{run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["status"], "completed", "{run}");

    let list = client
        .list_engine_runs(&EngineRunFilter {
            mode: Some("backtest".into()),
            name: Some("CLIENT".into()),
            ..EngineRunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(list.total, 1);
    assert_eq!(list.runs[0].final_equity.as_deref(), Some("112583.70"));

    let curve = client
        .engine_run_equity(&started.run_id, Some(8))
        .await
        .unwrap();
    assert!(curve.downsampled && curve.points.len() <= 8, "{curve:?}");
    assert_eq!(curve.points.last().unwrap().equity, "112583.70");

    let fills = client
        .engine_run_rows(&started.run_id, RunTable::Fills, Some(5), None)
        .await
        .unwrap();
    assert_eq!(fills.rows.len(), 5);
    assert_eq!(fills.next_offset, Some(5));
    assert_eq!(fills.total, run["metrics"]["fills"].as_u64().unwrap());

    let e = client.stop_engine_run(&started.run_id).await.unwrap_err();
    let api = e.api().unwrap();
    assert_eq!(
        (api.status, api.code.as_str()),
        (StatusCode::CONFLICT, "run_finished")
    );
    let e = client
        .start_engine_run(&spec("../goog.csv"))
        .await
        .unwrap_err();
    let api = e.api().unwrap();
    assert_eq!(
        (api.status, api.code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_data_path")
    );
    assert_eq!(api.body["details"]["field"], "spec.data[0].path");
}
