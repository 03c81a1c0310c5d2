//! The workloads of `tradeloom bench live`: scan→order latency through the whole in-process
//! chain (a producer writing scan files, the bridge, the feature map, a paper run of the signal
//! strategy), and bars/s of a paper run at `speed: max` beside the same backtest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tradeloom_runs::paper::{PaperOptions, StopSignal, run_paper};
use tradeloom_runs::spec::load_spec;
use tradeloom_runs::{RunOptions, SpecSource, execute};

use super::{TraderObserver, TraderRecord};
use crate::{FeedOptions, open_feed};

/// Scan→order latency figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyFigures {
    /// Scans written.
    pub scans: u64,
    /// Scans that led to an accepted order (each of them, with this workload).
    pub orders: u64,
    /// From the instant before the rename to the order accepted, µs.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// The same from the bridge's first sight of the file (what the histogram records), µs.
    pub observed_p50_us: f64,
    pub observed_p99_us: f64,
    /// CPU time of this process (producer, bridge, trader) per scan, µs.
    pub cpu_us_per_scan: f64,
}

/// Throughput of a paper run at `speed: max` beside the same backtest.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ThroughputFigures {
    pub bars: u64,
    pub backtest_bars_per_s: f64,
    pub paper_bars_per_s: f64,
    /// paper / backtest.
    pub ratio: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

const LATENCY_SPEC: &str = "name: bench-live
mode: paper
venue: sim
instruments: [{symbol: AAA, price_precision: 2, size_precision: 0}]
data: []
feed: {type: scan_dir, path: scans, map: bench-live}
strategy: {name: signal, params: {quantity: 1, enter: {field: score, above: 0.5}, exit: {field: score, below: 0.5}}}
execution: {fill_model: bar_close, fee_bps: 0, slippage_bps: 0}
account: {initial_cash: 10000000, currency: USD}
";

/// Writes `scans` scans (temp file + rename, noting the instant before each rename) into a
/// directory a paper run of the signal strategy follows; each scan flips the signal, so each
/// leads to an order. One scan at a time: the next is written once the run processed the last.
pub fn scan_latency(work: &Path, scans: u64) -> Result<LatencyFigures, String> {
    let data_dir = work.join("data");
    let scan_dir = work.join("scans");
    std::fs::create_dir_all(&scan_dir).map_err(|e| format!("{}: {e}", scan_dir.display()))?;
    let spec_path = work.join("bench-live.yaml");
    std::fs::write(&spec_path, LATENCY_SPEC)
        .map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let spec = load_spec(&spec_path).map_err(|e| e.to_string())?;
    let feed = open_feed(
        &spec,
        &FeedOptions {
            data_dir: data_dir.clone(),
            ..FeedOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let trader_map = crate::bridge::open_map(&data_dir, &super::trader_map_name("bench-live"))
        .map_err(|e| e.to_string())?;
    let record = Arc::new((Mutex::new(TraderRecord::default()), Condvar::new()));
    let stop = StopSignal::new();
    let initial_cash = spec.engine.initial_cash;
    let run = {
        let stop = stop.clone();
        let record = record.clone();
        let data_dir = data_dir.clone();
        std::thread::spawn(move || {
            let mut observer = TraderObserver::new(trader_map)
                .starting_equity(initial_cash)
                .recording(record);
            run_paper(
                SpecSource::Loaded(Box::new(spec)),
                feed,
                PaperOptions {
                    observer: Some(&mut observer),
                    ..PaperOptions::new(data_dir, stop)
                },
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
    };
    let cpu = tradeloom_runs::bench::peer::self_cpu_seconds();
    let mut renamed: HashMap<String, Instant> = HashMap::with_capacity(scans as usize);
    let mut failure = None;
    for i in 1..=scans {
        let name = format!("scan-{i:08}.csv");
        let tmp = scan_dir.join(format!(".{name}.tmp"));
        let score = if i % 2 == 1 { "0.9" } else { "0.1" };
        let text = format!(
            "symbol,price,score\nAAA,{}.{:02},{score}\n",
            100 + i % 7,
            i % 100
        );
        if let Err(e) = std::fs::write(&tmp, text) {
            failure = Some(format!("{}: {e}", tmp.display()));
            break;
        }
        let before = Instant::now();
        if let Err(e) = std::fs::rename(&tmp, scan_dir.join(&name)) {
            failure = Some(format!("{name}: {e}"));
            break;
        }
        renamed.insert(name, before);
        let (lock, changed) = &*record;
        let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.scans < i {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || run.is_finished() {
                failure = Some(format!("scan {i} was not processed within 10 s"));
                break;
            }
            r = changed
                .wait_timeout(r, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if failure.is_some() {
            break;
        }
    }
    let cpu = tradeloom_runs::bench::peer::self_cpu_seconds() - cpu;
    stop.stop();
    let result = run
        .join()
        .map_err(|_| "the paper run panicked".to_string())?;
    result?;
    if let Some(f) = failure {
        return Err(f);
    }
    let r = record.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut from_rename: Vec<f64> = Vec::with_capacity(r.latencies.len());
    let mut from_observed: Vec<f64> = Vec::with_capacity(r.latencies.len());
    for (source, observed, accepted) in &r.latencies {
        if let Some(before) = renamed.get(source) {
            from_rename.push(accepted.saturating_duration_since(*before).as_secs_f64() * 1e6);
        }
        from_observed.push(accepted.saturating_duration_since(*observed).as_secs_f64() * 1e6);
    }
    from_rename.sort_by(f64::total_cmp);
    from_observed.sort_by(f64::total_cmp);
    Ok(LatencyFigures {
        scans,
        orders: from_rename.len() as u64,
        p50_us: quantile(&from_rename, 0.5),
        p99_us: quantile(&from_rename, 0.99),
        p999_us: quantile(&from_rename, 0.999),
        max_us: from_rename.last().copied().unwrap_or(f64::NAN),
        observed_p50_us: quantile(&from_observed, 0.5),
        observed_p99_us: quantile(&from_observed, 0.99),
        cpu_us_per_scan: cpu * 1e6 / scans.max(1) as f64,
    })
}

/// The same synthetic bars through `tradeloom_runs::execute` (a backtest) and a paper run with
/// `feed: {type: replay, speed: max}`: bars/s of each (the best of `repeat` passes).
pub fn paper_vs_backtest(
    work: &Path,
    bars: u64,
    repeat: usize,
) -> Result<ThroughputFigures, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let data = work.join(format!("syn_{bars}.csv"));
    if !data.is_file() {
        tradeloom_data::write_synth(&tradeloom_runs::bench::synth_spec(bars), &data)
            .map_err(|e| e.to_string())?;
    }
    let spec = |mode: &str, feed: &str| -> Result<PathBuf, String> {
        let path = work.join(format!("throughput-{mode}.yaml"));
        std::fs::write(
            &path,
            format!(
                "name: bench-{mode}\nmode: {mode}\nvenue: sim\n\
                 instruments: [{{symbol: SYN, price_precision: 2, size_precision: 0}}]\n\
                 data: [{{symbol: SYN, path: {}}}]\n{feed}\
                 strategy: {{name: sma_cross, params: {{fast: 10, slow: 30, quantity: 1}}}}\n\
                 execution: {{fill_model: next_open, fee_bps: 1, slippage_bps: 0}}\n\
                 account: {{initial_cash: 1000000, currency: USD}}\n",
                data.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        Ok(path)
    };
    let backtest = spec("backtest", "")?;
    let paper = spec("paper", "feed: {type: replay, speed: max}\n")?;
    let data_dir = work.join("throughput-data");
    let mut best_backtest = f64::INFINITY;
    let mut best_paper = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        execute(
            backtest.as_path(),
            RunOptions {
                data_dir: data_dir.clone(),
                progress: None,
                parent_runs: Vec::new(),
                connectivity: None,
                on_start: None,
                tables: false,
            },
        )
        .map_err(|e| e.to_string())?;
        best_backtest = best_backtest.min(start.elapsed().as_secs_f64());

        let resolved = load_spec(&paper).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let feed = open_feed(
            &resolved,
            &FeedOptions {
                data_dir: data_dir.clone(),
                ..FeedOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
        run_paper(
            SpecSource::Loaded(Box::new(resolved)),
            feed,
            PaperOptions::new(data_dir.clone(), StopSignal::new()),
        )
        .map_err(|e| e.to_string())?;
        best_paper = best_paper.min(start.elapsed().as_secs_f64());
    }
    let backtest_bars_per_s = bars as f64 / best_backtest;
    let paper_bars_per_s = bars as f64 / best_paper;
    Ok(ThroughputFigures {
        bars,
        backtest_bars_per_s,
        paper_bars_per_s,
        ratio: paper_bars_per_s / backtest_bars_per_s,
    })
}
