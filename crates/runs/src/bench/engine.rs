//! The engine alone over replayed bars, with or without the live run counters.

use std::time::Instant;

use tradeloom_core::Bar;
use tradeloom_data::SynthSpec;
use tradeloom_engine::{FillModel, NullSink};

use super::{BenchError, replay_span, shifted, sma_engine};
use crate::live::{CountingSink, LiveRun};

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

/// One pass of the engine over `n` bars (`base` replayed with shifted timestamps), with the
/// live run counters when `live` is given (checked against the engine's own counts). Returns
/// (seconds, fills).
pub fn engine_pass(base: &[Bar], n: u64, live: Option<&LiveRun>) -> Result<(f64, u64), BenchError> {
    let mut engine = sma_engine(FAST, SLOW, FillModel::NextOpen, "1000000")?;
    let mut sink = NullSink;
    let span = replay_span(base)?;
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
                    live.add_bars(chunk.len() as u64);
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
    Ok((started.elapsed().as_secs_f64(), summary.metrics.fills))
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

/// The engine alone over the first `n` bars of `base`: three passes without and three with
/// the live counters, alternating; the medians as one JSON row of `tradeloom bench engine`.
pub fn engine_row(base: &[Bar], n: u64) -> Result<serde_json::Value, BenchError> {
    let mut times = Vec::new();
    let mut counted_times = Vec::new();
    let mut fills = 0;
    for _ in 0..3 {
        let (t, f) = engine_pass(base, n, None)?;
        times.push(t);
        fills = f;
        let live = LiveRun::detached("bench");
        counted_times.push(engine_pass(base, n, Some(&live))?.0);
    }
    let secs = super::median(times);
    let counted_secs = super::median(counted_times);
    Ok(serde_json::json!({
        "bars": n,
        "engine_seconds": secs,
        "engine_bars_per_second": n as f64 / secs,
        "engine_ns_per_bar": secs * 1e9 / n as f64,
        "engine_fills": fills,
        "engine_live_counters_bars_per_second": n as f64 / counted_secs,
        "live_counters_overhead_pct": (counted_secs / secs - 1.0) * 100.0,
    }))
}

/// The rows of `tradeloom bench engine` (see [`engine_row`], with the `run_*` figures when
/// measured) as a titled table.
pub fn engine_table(results: &[serde_json::Value]) -> String {
    let mb = |v: &serde_json::Value| {
        v.as_u64()
            .map_or("–".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6))
    };
    let secs =
        |v: &serde_json::Value| v.as_f64().map_or("–".to_string(), |s| format!("{s:.3} s"));
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r["bars"].to_string(),
                format!("{:.1} M", f(&r["engine_bars_per_second"]) / 1e6),
                format!("{:.1}", f(&r["engine_ns_per_bar"])),
                format!(
                    "{:.1} M",
                    f(&r["engine_live_counters_bars_per_second"]) / 1e6
                ),
                format!("{:+.1} %", f(&r["live_counters_overhead_pct"])),
                secs(&r["run_csv_seconds"]),
                mb(&r["run_csv_peak_rss_bytes"]),
                secs(&r["run_parquet_seconds"]),
                mb(&r["run_parquet_peak_rss_bytes"]),
                r["engine_fills"].to_string(),
            ]
        })
        .collect();
    let mut out = format!(
        "sma_cross (fast {FAST}, slow {SLOW}) on synthetic 1-minute bars; engine = median of 3 passes; with counters = the live /metrics run counters on; run = `tradeloom run` wall time incl. process start and all artifacts\n"
    );
    out.push_str(&tradeloom_core::table::render(
        &[
            "BARS",
            "ENGINE BARS/S",
            "NS/BAR",
            "WITH COUNTERS",
            "OVERHEAD",
            "RUN CSV",
            "RSS CSV",
            "RUN PARQUET",
            "RSS PARQUET",
            "FILLS",
        ],
        &rows,
    ));
    out
}
