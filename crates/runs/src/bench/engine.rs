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
