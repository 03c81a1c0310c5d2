//! The whole pipeline (CSV loader → engine → run folder) against the peer-engine references in
//! `tests/golden/goog_1d_sma_cross`.

use crate::{golden_dir, repo, run_json};

fn read_csv(path: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn cents(text: &str) -> i64 {
    (text.parse::<f64>().unwrap() * 100.0).round() as i64
}

#[test]
fn bar_close_run_reproduces_nautilus() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross_bar_close.yaml");
    let (json, dir) = run_json(data.path(), &spec);
    assert_eq!(json["status"], "completed");
    assert_eq!(json["metrics"]["final_equity"], "112377.30");
    let ours = read_csv(&dir.join("fills.csv"));
    let golden = read_csv(&golden_dir().join("goog_1d_sma_cross/nautilus_bar_close_fills.csv"));
    assert_eq!(ours.len(), golden.len());
    for (o, g) in ours.iter().zip(&golden) {
        // fills.csv: fill_id,order_id,ts,symbol,side,quantity,price,fee,liquidity
        assert_eq!(&o[2][..10], &g[0][..10], "{o:?} vs {g:?}");
        assert_eq!(o[4], g[1]);
        assert_eq!(o[5], g[2]);
        assert_eq!(cents(&o[6]), cents(&g[3]), "{o:?} vs {g:?}");
    }
}

#[test]
fn next_open_run_reproduces_backtesting_py() {
    let data = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (json, dir) = run_json(data.path(), &spec);
    assert_eq!(json["metrics"]["final_equity"], "112583.70");
    assert_eq!(json["metrics"]["trades"], 93);
    let trades = read_csv(&dir.join("trades.csv"));
    let golden =
        read_csv(&golden_dir().join("goog_1d_sma_cross/backtesting_py_next_open_trades.csv"));
    let closed: Vec<_> = trades.iter().filter(|t| t[12] == "closed").collect();
    assert_eq!(closed.len(), golden.len());
    for (t, g) in closed.iter().zip(&golden) {
        // trades.csv: trade_id,symbol,side,quantity,entry_ts,entry_price,exit_ts,exit_price,gross_pnl,fees,net_pnl,bars,status
        let size = if t[2] == "LONG" { "10" } else { "-10" };
        assert_eq!(size, g[0]);
        assert_eq!(&t[4][..10], g[6]);
        assert_eq!(&t[6][..10], g[7]);
        assert_eq!(cents(&t[5]), cents(&g[3]));
        assert_eq!(cents(&t[7]), cents(&g[4]));
        assert_eq!(cents(&t[10]), cents(&g[5]), "{t:?} vs {g:?}");
    }
    let open: Vec<_> = trades.iter().filter(|t| t[12] == "open").collect();
    let golden_open =
        read_csv(&golden_dir().join("goog_1d_sma_cross/backtesting_py_next_open_open_trades.csv"));
    assert_eq!(open.len(), 1);
    assert_eq!(&open[0][4][..10], golden_open[0][3]);
    assert_eq!(cents(&open[0][5]), cents(&golden_open[0][2]));
}
