//! `tradeloom trader SPEC` as a process: scans in → orders and fills in the run folder, the
//! trader's state and per-day PnL in `<map>.trader`, both maps through `map show --json`, and a
//! graceful stop on SIGTERM.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{stderr, stdout, tradeloom};

fn write_scan(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

fn map_json(data: &Path, name: &str) -> Option<serde_json::Value> {
    let out = tradeloom(data, &["map", "show", name, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_str(stdout(&out).trim()).unwrap())
}

/// Waits until the trader's state says it processed scan `seq`.
fn wait_for_scan(data: &Path, map: &str, seq: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(m) = map_json(data, map)
            && m["values"]["state"]["last_scan_seq"] == seq
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "the trader never processed scan {seq}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn trader_trades_scans_and_publishes_its_state_and_pnl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scans = dir.path().join("scans");
    std::fs::create_dir_all(&scans).unwrap();
    let spec = dir.path().join("trader.yaml");
    std::fs::write(
        &spec,
        "name: scan-trader\nmode: paper\nvenue: sim\n\
         instruments: [{symbol: AAA, price_precision: 2, size_precision: 0}]\n\
         feed: {type: scan_dir, path: scans, map: scans}\n\
         strategy: {name: signal, params: {quantity: 10, enter: {field: score, above: 0.8}, exit: {field: score, below: 0.2}}}\n\
         execution: {fill_model: bar_close, fee_bps: 0, slippage_bps: 0}\n\
         account: {initial_cash: 100000, currency: USD}\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(["trader", spec.to_str().unwrap(), "--json", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The trader starts with state `running` and no scan.
    let deadline = Instant::now() + Duration::from_secs(60);
    while map_json(&data, "scans.trader").is_none() {
        assert!(
            Instant::now() < deadline,
            "the trader never published its state"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    write_scan(
        &scans,
        "scan-1.csv",
        "symbol,price,score\nAAA,100.00,0.9\nZZZ,1,0.9\n",
    );
    wait_for_scan(&data, "scans.trader", 1);
    write_scan(&scans, "scan-2.csv", "symbol,price,score\nAAA,110.50,0.1\n");
    let trader = wait_for_scan(&data, "scans.trader", 2);

    let status = Command::new("kill")
        .args(["-15", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        exit.success(),
        "SIGTERM is a graceful stop: {exit}\n{out}\n{err}"
    );
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let run_dir = Path::new(last["run_dir"].as_str().unwrap()).to_path_buf();

    // Orders and fills in the run folder: bought 10 at 100.00, sold 10 at 110.50.
    let fills = std::fs::read_to_string(run_dir.join("fills.csv")).unwrap();
    let rows: Vec<&str> = fills.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{fills}");
    assert!(
        rows[0].contains("100.00") && rows[1].contains("110.50"),
        "{fills}"
    );
    let orders = std::fs::read_to_string(run_dir.join("orders.csv")).unwrap();
    assert_eq!(orders.lines().skip(1).count(), 2, "{orders}");

    // The trader map while it ran: its state after scan 2.
    let state = &trader["values"]["state"];
    assert_eq!(state["run_id"], last["run_id"]);
    assert_eq!(state["last_scan_source"], "scan-2.csv");
    assert_eq!(state["orders"], 2);
    assert_eq!(state["fills"], 2);
    assert_eq!(state["positions"]["AAA"]["quantity"], "0");
    // After the stop: the last equity point is in, the day's PnL is +105.00 (exact decimals)
    // and the state says stopped.
    let after = map_json(&data, "scans.trader").unwrap();
    assert_eq!(after["values"]["state"]["status"], "stopped");
    let pnl: Vec<&serde_json::Value> = after["values"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("pnl:"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(pnl.len(), 1, "one day of scans: {after}");
    assert_eq!(pnl[0]["start_equity"], "100000.00");
    assert_eq!(pnl[0]["pnl"], "105.00");

    // The scan map as `map show --json` prints it.
    let scans_map = map_json(&data, "scans").unwrap();
    let keys: Vec<&String> = scans_map.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "seq", "source", "updated_at", "values"]);
    assert_eq!(scans_map["seq"], 2);
    assert_eq!(scans_map["source"], "scan-2.csv");
    assert_eq!(
        scans_map["values"],
        serde_json::json!({"AAA": {"symbol": "AAA", "price": 110.5, "score": 0.1}})
    );
}

#[test]
fn trader_refuses_a_spec_without_a_scan_dir_feed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = super::repo().join("examples/specs/goog_sma_cross.yaml");
    let out = tradeloom(dir.path(), &["trader", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("needs `feed: {type: scan_dir"),
        "{}",
        stderr(&out)
    );
}
