//! The engine alone over replayed bars, and with every check a run adds: the live run counters
//! of `/metrics` and the data dir's kill switch as the gate.

use std::path::Path;
use std::time::Instant;

use tradeloom_core::Bar;
use tradeloom_data::SynthSpec;
use tradeloom_engine::{FillModel, NullSink};

use super::peer::self_cpu_seconds;
use super::{BenchError, replay_span, shifted, sma_engine};
use crate::kill_switch::RunGate;
use crate::live::{CountingSink, LiveRun};
use tradeloom_safety::KillSwitch;

/// The fast moving average of the engine workload.
pub const FAST: u32 = 20;
/// The slow moving average of the engine workload.
pub const SLOW: u32 = 50;
/// Bars generated in memory once and replayed (shifted in time) for larger sizes.
pub const BASE_BARS: u64 = 1_000_000;
/// Bars per chunk when counting live (the runner's reader hands the engine chunks this big).
const LIVE_CHUNK: usize = 4096;

/// The synthetic bars of the engine workload (`SYN`, 1 minute, seed 7).
pub fn synth_spec(bars: u64) -> SynthSpec {
    SynthSpec {
        symbol: "SYN".to_string(),
        bars,
        timeframe: "1m".parse().unwrap_or_default(),
        seed: 7,
        ..SynthSpec::default()
    }
}

/// What one [`engine_pass`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// Wall seconds of the pass.
    pub seconds: f64,
    /// CPU seconds of this process during the pass (the engine runs on the calling thread).
    pub cpu_seconds: f64,
    pub orders: u64,
    pub fills: u64,
}

/// One pass of the engine over `n` bars (`base` replayed with shifted timestamps), with the
/// live run counters when `live` is given (checked against the engine's own counts) and the
/// kill switch of the data dir `gate` as the gate when given (as `tradeloom run` sets it up).
pub fn engine_pass(
    base: &[Bar],
    n: u64,
    live: Option<&LiveRun>,
    gate: Option<&Path>,
) -> Result<Pass, BenchError> {
    let mut engine = sma_engine(FAST, SLOW, FillModel::NextOpen, "1000000")?;
    if let Some(dir) = gate {
        engine.set_kill_switch_gate(Box::new(RunGate::new(
            KillSwitch::open(dir)?,
            "bench-engine".to_string(),
        )));
    }
    let mut sink = NullSink;
    let span = replay_span(base)?;
    let cpu = self_cpu_seconds();
    let started = Instant::now();
    let mut left = n;
    let mut round: i64 = 0;
    while left > 0 {
        let take = left.min(base.len() as u64) as usize;
        for chunk in base[..take].chunks(LIVE_CHUNK) {
            match live {
                Some(live) => {
                    let mut counting = CountingSink::new(&mut sink, live);
                    for bar in chunk {
                        engine.on_bar(&shifted(bar, round, span), &mut counting)?;
                    }
                    counting.add_bars(chunk.len() as u64);
                }
                None => {
                    for bar in chunk {
                        engine.on_bar(&shifted(bar, round, span), &mut sink)?;
                    }
                }
            }
        }
        left = left.saturating_sub(base.len() as u64);
        round += 1;
    }
    let summary = engine.finish(&mut sink)?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = self_cpu_seconds() - cpu;
    if let Some(live) = live {
        let counted = live.snapshot();
        if counted.bars != n || counted.fills != summary.metrics.fills {
            return Err(BenchError::LiveCounters {
                bars: counted.bars,
                fills: counted.fills,
                expected_bars: n,
                expected_fills: summary.metrics.fills,
            });
        }
    }
    Ok(Pass {
        seconds,
        cpu_seconds,
        orders: summary.metrics.orders,
        fills: summary.metrics.fills,
    })
}

/// The run spec of the end-to-end measurement: `sma_cross` [`FAST`]/[`SLOW`] over `data`,
/// written to `dir/bench_<name>.yaml`.
pub fn write_bench_spec(
    dir: &std::path::Path,
    data: &std::path::Path,
    name: &str,
) -> Result<std::path::PathBuf, BenchError> {
    let spec = format!(
        "name: bench-{name}\nmode: backtest\ninstruments: [{{symbol: SYN, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: SYN, path: {}}}]\n\
         strategy: {{name: sma_cross, params: {{fast: {FAST}, slow: {SLOW}, quantity: 1}}}}\n\
         execution: {{fill_model: next_open}}\naccount: {{initial_cash: 1000000, currency: USD}}\n",
        data.display()
    );
    let path = dir.join(format!("bench_{name}.yaml"));
    std::fs::write(&path, spec).map_err(|source| BenchError::Io {
        action: "writing",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Passes per variant in [`engine_row`].
pub const ENGINE_PASSES: usize = 5;

/// The engine over the first `n` bars of `base` (replayed when `n` is larger), alone and with
/// every check of a run on (the live counters and the kill switch of the data dir `gate_dir`
/// as the gate), [`ENGINE_PASSES`] passes each, alternating; the medians as one JSON row of
/// `tradeloom bench engine`.
pub fn engine_row(base: &[Bar], n: u64, gate_dir: &Path) -> Result<serde_json::Value, BenchError> {
    let (mut alone, mut checked) = (Vec::new(), Vec::new());
    for _ in 0..ENGINE_PASSES {
        alone.push(engine_pass(base, n, None, None)?);
        let live = LiveRun::detached("bench");
        checked.push(engine_pass(base, n, Some(&live), Some(gate_dir))?);
    }
    let median =
        |passes: &[Pass], f: fn(&Pass) -> f64| super::median(passes.iter().map(f).collect());
    let secs = median(&alone, |p| p.seconds);
    let cpu = median(&alone, |p| p.cpu_seconds);
    let checked_secs = median(&checked, |p| p.seconds);
    let checked_cpu = median(&checked, |p| p.cpu_seconds);
    let orders = alone.last().map_or(0, |p| p.orders);
    let per_bar_ns = |s: f64| s * 1e9 / n as f64;
    Ok(serde_json::json!({
        "bars": n,
        "passes": ENGINE_PASSES,
        "engine_seconds": secs,
        "engine_bars_per_second": n as f64 / secs,
        "engine_ns_per_bar": per_bar_ns(secs),
        "engine_cpu_ns_per_bar": per_bar_ns(cpu),
        "engine_orders": orders,
        "engine_fills": alone.last().map_or(0, |p| p.fills),
        "checked_seconds": checked_secs,
        "checked_bars_per_second": n as f64 / checked_secs,
        "checked_ns_per_bar": per_bar_ns(checked_secs),
        "checked_cpu_ns_per_bar": per_bar_ns(checked_cpu),
        "checks_overhead_pct": (checked_secs / secs - 1.0) * 100.0,
        "checks_cpu_overhead_pct": (checked_cpu / cpu - 1.0) * 100.0,
        "checks_ns_per_order": if orders == 0 {
            f64::NAN
        } else {
            (checked_secs - secs) * 1e9 / orders as f64
        },
    }))
}

/// The rows of `tradeloom bench engine` (see [`engine_row`]) as a titled table.
pub fn engine_table(results: &[serde_json::Value]) -> String {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r["bars"].to_string(),
                format!("{:.1} M", f(&r["engine_bars_per_second"]) / 1e6),
                format!("{:.1}", f(&r["engine_ns_per_bar"])),
                format!("{:.1}", f(&r["engine_cpu_ns_per_bar"])),
                format!("{:.1} M", f(&r["checked_bars_per_second"]) / 1e6),
                format!("{:.1}", f(&r["checked_ns_per_bar"])),
                format!("{:.1}", f(&r["checked_cpu_ns_per_bar"])),
                format!("{:+.1} %", f(&r["checks_overhead_pct"])),
                format!("{:+.1} %", f(&r["checks_cpu_overhead_pct"])),
                format!("{:.0}", f(&r["checks_ns_per_order"])),
                r["engine_fills"].to_string(),
            ]
        })
        .collect();
    let mut out = format!(
        "sma_cross (fast {FAST}, slow {SLOW}) on synthetic 1-minute bars; medians of {ENGINE_PASSES} passes; engine = alone; all checks = with the kill switch gate and the live /metrics run counters, as `tradeloom run` sets them up; CPU = this process's CPU time per bar; overhead per order = the extra wall time over the orders placed\n"
    );
    out.push_str(&tradeloom_core::table::render(
        &[
            "BARS",
            "ENGINE BARS/S",
            "NS/BAR",
            "CPU NS/BAR",
            "ALL CHECKS BARS/S",
            "NS/BAR",
            "CPU NS/BAR",
            "OVERHEAD",
            "CPU OVERHEAD",
            "NS/ORDER",
            "FILLS",
        ],
        &rows,
    ));
    out
}

/// `bench/peers/vectorbt_warm.py`: vectorbt's warm compute of the same work (our harness).
pub const VECTORBT_WARM_PY: &str = include_str!("../../../../bench/peers/vectorbt_warm.py");

/// Bars of the warm-process comparison with vectorbt.
pub const WARM_SIZES: [u64; 2] = [200_000, 1_000_000];

/// Runs the vectorbt warm harness (written into `work`) with the peers' Python over the bar
/// files `csvs`, `repeat` timed calls each; one JSON object per file, in order. `Err` says why
/// there is no figure ("not installed (…)" when the venv or vectorbt is missing).
pub fn vectorbt_warm(
    work: &Path,
    csvs: &[std::path::PathBuf],
    repeat: usize,
) -> Result<Vec<serde_json::Value>, String> {
    let python = super::peer::peer_python()?;
    let script = super::peer::write_script(work, "vectorbt_warm.py", VECTORBT_WARM_PY)
        .map_err(|e| format!("writing the harness into {}: {e}", work.display()))?;
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args(csvs)
        .arg("--repeat")
        .arg(repeat.max(1).to_string())
        .output()
        .map_err(|e| format!("not installed ({}: {e})", python.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let last = stderr.lines().last().unwrap_or("").trim();
        return Err(if last.starts_with("ModuleNotFoundError") {
            format!("not installed ({last}; run bench/peers/setup)")
        } else {
            format!("failed ({}): {last}", output.status)
        });
    }
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    if rows.len() != csvs.len() {
        return Err(format!(
            "failed: {} result lines for {} files",
            rows.len(),
            csvs.len()
        ));
    }
    Ok(rows)
}

/// One row of the warm-process comparison: the engine with every check on (from an
/// [`engine_row`] over the same bars) beside vectorbt's figures for them, or why it has none.
pub fn warm_row(
    engine: &serde_json::Value,
    peer: Result<&serde_json::Value, &str>,
) -> serde_json::Value {
    let ours_ms = engine["checked_seconds"].as_f64().unwrap_or(f64::NAN) * 1e3;
    let n = engine["bars"].as_f64().unwrap_or(f64::NAN);
    let ours_cpu_ms = engine["checked_cpu_ns_per_bar"]
        .as_f64()
        .unwrap_or(f64::NAN)
        * n
        / 1e6;
    let mut row = serde_json::json!({
        "bars": engine["bars"],
        "engine_checked_ms": ours_ms,
        "engine_checked_cpu_ms": ours_cpu_ms,
        "engine_orders": engine["engine_orders"],
    });
    match peer {
        Ok(p) => {
            let theirs = p["from_signals_ms"].as_f64().unwrap_or(f64::NAN);
            row["vectorbt"] = p.clone();
            row["vectorbt_over_engine"] = serde_json::json!(theirs / ours_ms);
            // CPU time does not grow with the machine's load as wall time does.
            let theirs_cpu = p["from_signals_cpu_ms"].as_f64().unwrap_or(f64::NAN);
            row["vectorbt_over_engine_cpu"] = serde_json::json!(theirs_cpu / ours_cpu_ms);
            row["engine_checked_cpu_ns_per_bar"] = serde_json::json!(ours_cpu_ms * 1e6 / n);
            row["vectorbt_cpu_ns_per_bar"] = serde_json::json!(theirs_cpu * 1e6 / n);
        }
        Err(why) => row["vectorbt_error"] = serde_json::json!(why),
    }
    row
}

/// The warm-process comparison as a titled table.
pub fn warm_table(rows: &[serde_json::Value]) -> String {
    let ms = |v: &serde_json::Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.1}"));
    let rendered: Vec<Vec<String>> = rows
        .iter()
        .map(
            |r| match r.get("vectorbt_error").and_then(serde_json::Value::as_str) {
                Some(why) => vec![
                    r["bars"].to_string(),
                    ms(&r["engine_checked_ms"]),
                    ms(&r["engine_checked_cpu_ms"]),
                    why.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
                None => vec![
                    r["bars"].to_string(),
                    ms(&r["engine_checked_ms"]),
                    ms(&r["engine_checked_cpu_ms"]),
                    ms(&r["vectorbt"]["from_signals_ms"]),
                    ms(&r["vectorbt"]["from_signals_cpu_ms"]),
                    ms(&r["vectorbt"]["signals_and_portfolio_ms"]),
                    r["vectorbt_over_engine"]
                        .as_f64()
                        .map_or("–".to_string(), |x| format!("{x:.1}×")),
                    format!(
                        "{} / {}",
                        ms(&r["engine_checked_cpu_ns_per_bar"]),
                        ms(&r["vectorbt_cpu_ns_per_bar"])
                    ),
                    r["vectorbt_over_engine_cpu"]
                        .as_f64()
                        .map_or("–".to_string(), |x| format!("{x:.1}×")),
                    format!("{} / {}", r["engine_orders"], r["vectorbt"]["orders"]),
                ],
            },
        )
        .collect();
    let mut out = format!(
        "warm process: the engine with every check on vs vectorbt `Portfolio.from_signals` (numba compiled beforehand, numpy inputs, sma {FAST}/{SLOW} cross signals ready; median of its timed calls), same synthetic bars, ms\n"
    );
    out.push_str(&tradeloom_core::table::render(
        &[
            "BARS",
            "ENGINE MS",
            "CPU MS",
            "VECTORBT MS",
            "CPU MS",
            "WITH SIGNALS MS",
            "VECTORBT / ENGINE",
            "CPU NS/BAR (ENGINE / VBT)",
            "CPU RATIO",
            "ORDERS (ENGINE / VBT)",
        ],
        &rendered,
    ));
    out
}
