//! Account rules end to end: a cash account's run folder never shows a short position or
//! negative cash, under either fill model; a margin account's run stops at a margin call.

use std::path::Path;

use crate::{repo, run_json, write_spec};

/// Parses a decimal column value to integer units of 10^-9 (enough for prices × quantities
/// of these data sets, kept in i128).
fn nanos(text: &str) -> i128 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<9}");
    sign * (int.parse::<i128>().unwrap() * 1_000_000_000 + frac[..9].parse::<i128>().unwrap())
}

fn csv_rows(dir: &Path, file: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

/// Every row of the run's `equity.parquet`.
fn equity_rows(dir: &Path) -> Vec<tradeloom_runs::equity::EquityRow> {
    let file = tradeloom_runs::equity::EquityFile::open(&dir.join("equity.parquet")).unwrap();
    let mut rows = Vec::new();
    file.for_each(|r| rows.push(r)).unwrap();
    rows
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

/// Every fill (running position and cash from `fills.csv`), every `equity.csv` row and every
/// `position_changed` line of the journal: no short position, no negative cash.
fn assert_never_short_nor_overdrawn(dir: &Path, initial_cash: &str, what: &str) {
    let (h, fills) = csv_rows(dir, "fills.csv");
    let (side, quantity, price, fee) = (
        column(&h, "side"),
        column(&h, "quantity"),
        column(&h, "price"),
        column(&h, "fee"),
    );
    // cash in units of 10^-18, the product of two 10^-9 values
    let mut cash = nanos(initial_cash) * 1_000_000_000;
    let mut net = 0i128;
    assert!(!fills.is_empty(), "{what}: no fills");
    for (k, f) in fills.iter().enumerate() {
        let q = nanos(&f[quantity]);
        let notional = q * nanos(&f[price]);
        let fee = nanos(&f[fee]) * 1_000_000_000;
        if f[side].eq_ignore_ascii_case("buy") {
            net += q;
            cash -= notional + fee;
        } else {
            net -= q;
            cash += notional - fee;
        }
        assert!(
            net >= 0,
            "{what}: fills.csv row {} leaves a short position",
            k + 2
        );
        assert!(
            cash >= 0,
            "{what}: fills.csv row {} leaves negative cash",
            k + 2
        );
    }
    for (k, row) in equity_rows(dir).iter().enumerate() {
        assert!(
            row.cash.raw() >= 0,
            "{what}: equity.parquet row {} has cash {}",
            k + 1,
            row.cash
        );
    }
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    for line in journal.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"] == "position_changed" {
            assert!(
                !v["quantity"].as_str().unwrap().starts_with('-'),
                "{what}: {line}"
            );
        }
    }
}

fn journal_codes(dir: &Path, event: &str, key: &str) -> Vec<String> {
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == event)
        .map(|v| v[key].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `sma_cross` (long and short) on GOOG and `mean_reversion` (long and short, 100 000 EUR a
/// trade, hourly) on EUR/USD, with a cash account, under `bar_close` and `next_open`. Before
/// working orders were counted, `next_open` made 46 short trades on GOOG with 100 000 USD (the
/// cross down's close and open both passed), left cash at −1 268.28 with 3 000 USD, and shorted
/// EUR/USD once.
#[test]
fn cash_account_runs_never_short_or_overdraw() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let goog = repo().join("examples/data/goog_1d.csv");
    let eurusd = repo().join("examples/data/eurusd_1h.csv");
    for fill_model in ["bar_close", "next_open"] {
        let goog_body = format!(
            "instruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
             data: [{{symbol: GOOG, path: {}}}]\n\
             strategy: {{name: sma_cross, params: {{fast: 10, slow: 20, quantity: 10}}}}\n",
            goog.display()
        );
        let cases = [
            ("goog", goog_body.clone(), "100000"),
            ("goog-small", goog_body, "3000"),
            (
                "eurusd",
                format!(
                    "instruments: [{{symbol: EURUSD, price_precision: 5, size_precision: 0, lot_size: 1000}}]\n\
                     data: [{{symbol: EURUSD, path: {}}}]\n\
                     strategy: {{name: mean_reversion, params: {{lookback: 48, quantity: 100000}}}}\n",
                    eurusd.display()
                ),
                "116000",
            ),
        ];
        for (name, body, cash) in cases {
            let spec = format!(
                "name: cash-{name}\nmode: backtest\n{body}\
                 execution: {{fill_model: {fill_model}, fee_bps: 0.2}}\n\
                 account: {{initial_cash: {cash}, currency: USD, type: cash}}\n"
            );
            let path = write_spec(dir.path(), &format!("{name}-{fill_model}.yaml"), &spec);
            let (_, run) = run_json(data.path(), &path);
            let what = format!("{name} {fill_model}");
            assert_never_short_nor_overdrawn(&run, cash, &what);
            let rejected = journal_codes(&run, "order_rejected", "code");
            assert!(
                rejected.iter().any(|c| c == "account.no_shorting"),
                "{what}: the strategy's shorts are refused"
            );
        }
    }
}

/// A margin account levered about 6× (`sma_cross` long and short 60 GOOG on 2 000 USD): a
/// short into GOOG's jump of 2005-02-03 took equity to about −1 150 to −1 440, and the run went
/// on trading below zero. Now the journal has the call and the liquidation, no order is
/// accepted after it, equity is above zero before it and flat after it.
#[test]
fn a_margin_account_stops_at_the_margin_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let goog = repo().join("examples/data/goog_1d.csv");
    for fill_model in ["bar_close", "next_open"] {
        let spec = format!(
            "name: levered\nmode: backtest\n\
             instruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
             data: [{{symbol: GOOG, path: {}}}]\n\
             strategy: {{name: sma_cross, params: {{fast: 10, slow: 20, quantity: 60}}}}\n\
             execution: {{fill_model: {fill_model}}}\n\
             account: {{initial_cash: 2000, currency: USD}}\n",
            goog.display()
        );
        let path = write_spec(dir.path(), &format!("levered-{fill_model}.yaml"), &spec);
        let (_, run) = run_json(data.path(), &path);
        let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = journal
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let call = lines
            .iter()
            .position(|v| v["event"] == "margin_call")
            .unwrap_or_else(|| panic!("{fill_model}: no margin_call in the journal"));
        let call_ts = lines[call]["ts"].as_str().unwrap().to_string();
        assert!(
            lines[call + 1..]
                .iter()
                .any(|v| v["event"] == "margin_liquidation")
        );
        // After the call: only the liquidation orders, filled, and nothing else submitted.
        let submitted_after: Vec<_> = lines[call + 1..]
            .iter()
            .filter(|v| v["event"] == "order_submitted")
            .filter(|v| v["reduce_only"] != true)
            .filter(|v| {
                !lines
                    .iter()
                    .any(|r| r["event"] == "order_rejected" && r["order_id"] == v["order_id"])
            })
            .collect();
        assert!(
            submitted_after.is_empty(),
            "{fill_model}: {submitted_after:?}"
        );
        let call_ts = tradeloom_runs::report::parse_written_ts(&call_ts).unwrap();
        let equity = equity_rows(&run);
        let before: Vec<i128> = equity
            .iter()
            .filter(|r| r.ts < call_ts)
            .map(|r| r.equity.raw())
            .collect();
        assert!(before.iter().all(|e| *e > 0), "{fill_model}");
        let after: Vec<i128> = equity
            .iter()
            .filter(|r| r.ts > call_ts)
            .map(|r| r.equity.raw())
            .collect();
        assert!(
            after.len() > 100,
            "{fill_model}: the call is early in the run"
        );
        assert!(
            after.windows(2).all(|w| w[0] == w[1]),
            "{fill_model}: flat after the call"
        );
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metadata.json")).unwrap())
                .unwrap();
        assert_eq!(meta["summary"]["margin_call"], true);
    }
}
