//! The example end to end: `sma_bracket` run from `spec.yaml` on the repository's GOOG data
//! through the library entry point writes a run folder that verifies, whose round trips are
//! backtesting.py's (`tests/golden/goog_1d_bracket_limit`).

#![allow(clippy::unwrap_used)] // a test fails loudly where it meets an unexpected error

use std::path::Path;

use tradeloom_runs::{
    ExecuteError, RunOptions, RunStatus, UserStrategies, run_with_strategies, verify_run,
};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/spec.yaml");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/golden/goog_1d_bracket_limit/backtesting_py_trades.csv"
);

fn options(dir: &Path) -> RunOptions<'static> {
    RunOptions {
        data_dir: dir.to_path_buf(),
        ..RunOptions::default()
    }
}

#[test]
fn the_example_writes_a_run_folder_that_verifies_and_matches_the_golden_trades() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_with_strategies(
        Path::new(SPEC),
        &tradeloom_example_rust_strategy::strategies(),
        options(dir.path()),
    )
    .unwrap();
    assert_eq!(outcome.status, RunStatus::Completed);
    assert_eq!(outcome.metadata.strategy, "sma_bracket");
    let report = verify_run(&outcome.run_dir).unwrap();
    assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
    assert_eq!(outcome.metrics.final_equity.to_string(), "104723.30");
    // trades.csv: closed round trips (the last one is still open at the end).
    let trades = std::fs::read_to_string(outcome.run_dir.join("trades.csv")).unwrap();
    let closed = trades
        .lines()
        .skip(1)
        .filter(|l| l.ends_with(",closed"))
        .count();
    let golden = std::fs::read_to_string(GOLDEN).unwrap().lines().count() - 1;
    assert_eq!(closed, golden);
    // The legs are linked to their entry in orders.csv.
    let orders = std::fs::read_to_string(outcome.run_dir.join("orders.csv")).unwrap();
    assert!(
        orders
            .lines()
            .next()
            .unwrap()
            .ends_with(",parent_id,oco_id")
    );
    // Every round trip had two legs (one filled, the other cancelled by it), and so does the
    // trade still open at the end (both legs cancelled then).
    let legs = orders
        .lines()
        .skip(1)
        .filter(|l| {
            l.split(',')
                .nth(15)
                .is_some_and(|parent| parent.starts_with("O-"))
        })
        .count();
    assert_eq!(legs, 2 * (golden + 1));
    let spec = std::fs::read_to_string(outcome.run_dir.join("run_spec.yaml")).unwrap();
    assert!(spec.contains("name: sma_bracket"), "{spec}");
}

#[test]
fn without_the_factory_the_name_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_with_strategies(Path::new(SPEC), &UserStrategies::new(), options(dir.path()))
        .unwrap_err();
    assert!(matches!(err, ExecuteError::Rejected(_)));
    let message = err.to_string();
    assert!(
        message.contains("spec.yaml:10: strategy.name: unknown variant `sma_bracket`, expected one of `buy_and_hold`"),
        "{message}"
    );
    // Bad parameters are the factory's errors, naming the field.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(SPEC)
        .unwrap()
        .replace(
            "../data/goog_1d.csv",
            &format!("{}/../data/goog_1d.csv", env!("CARGO_MANIFEST_DIR")),
        )
        .replace("stop_pct: 5", "stop_pct: 1");
    std::fs::write(&bad, text).unwrap();
    let err = run_with_strategies(
        &bad,
        &tradeloom_example_rust_strategy::strategies(),
        options(dir.path()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("strategy.params.stop_pct: 1 must be greater than entry_pct (1) (strategy `sma_bracket`)"),
        "{err}"
    );
    let text = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("stop_pct: 1", "stop_pct: 5, colour: 3");
    std::fs::write(&bad, text).unwrap();
    let err = run_with_strategies(
        &bad,
        &tradeloom_example_rust_strategy::strategies(),
        options(dir.path()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("strategy.params: unknown field `colour`"),
        "{err}"
    );
}
