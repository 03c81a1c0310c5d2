//! The sandbox beside the built-in: the engine over synthetic bars traded by the built-in
//! `sma_cross` and by the same rule in Python (`examples/strategies/sma_cross.py`) in a
//! sandboxed child, batched as a backtest runs it; bars/s of each, and the check that both made
//! the same orders and fills.

use std::sync::Arc;
use std::time::Instant;

use tradeloom_core::{Bar, Currency, Money};
use tradeloom_engine::{Engine, EngineConfig, FillModel, NullSink, Strategy};
use tradeloom_sandbox::{
    DEFAULT_MAX_BATCH, FailureSlot, Limits, Lookahead, SandboxPolicy, ScriptOptions, ScriptSpec,
    ScriptStrategy,
};

use super::{BenchError, instrument, setup, sma_engine};

/// The Python SMA cross the benchmark (and the example spec) runs.
pub const SMA_CROSS_PY: &str = include_str!("../../../../examples/strategies/sma_cross.py");

/// One side of [`sandbox_row`].
#[derive(Clone, Copy, Debug)]
pub struct SandboxPass {
    pub seconds: f64,
    pub orders: u64,
    pub fills: u64,
}

/// Feeds `bars` to `engine` in runner-sized chunks, publishing each to `lookahead` first.
fn drive(
    mut engine: Engine,
    bars: &[Bar],
    lookahead: Option<&Lookahead>,
    failure: Option<&FailureSlot>,
) -> Result<SandboxPass, BenchError> {
    let mut sink = NullSink;
    let started = Instant::now();
    for chunk in bars.chunks(4096) {
        if let Some(l) = lookahead {
            l.publish(chunk);
        }
        for bar in chunk {
            engine.on_bar(bar, &mut sink)?;
        }
        if let Some(e) = failure.and_then(|f| f.take()) {
            return Err(BenchError::Setup(format!("the script failed: {e}")));
        }
    }
    let summary = engine.finish(&mut sink)?;
    Ok(SandboxPass {
        seconds: started.elapsed().as_secs_f64(),
        orders: summary.metrics.orders,
        fills: summary.metrics.fills,
    })
}

/// The sandboxed Python SMA cross `fast`/`slow` over `bars` (`batch`: most bars per round
/// trip; 1 is one per bar).
pub fn sandbox_pass(
    bars: &[Bar],
    fast: u32,
    slow: u32,
    batch: usize,
) -> Result<SandboxPass, BenchError> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::Io {
        action: "creating",
        path: std::env::temp_dir(),
        source: e,
    })?;
    let script = dir.path().join("sma_cross.py");
    std::fs::write(&script, SMA_CROSS_PY).map_err(|e| BenchError::Io {
        action: "writing",
        path: script.clone(),
        source: e,
    })?;
    let inst = instrument()?;
    let limits = Limits {
        call_timeout_ms: Some(60_000),
        cpu_seconds: Some(3600),
        ..Limits::default()
    }
    .effective()
    .map_err(setup)?;
    let lookahead = Arc::new(Lookahead::default());
    let failure = Arc::new(FailureSlot::default());
    let strategy = ScriptStrategy::start(
        &ScriptSpec {
            script: &script,
            display: "sma_cross.py",
            limits,
            protected: &[],
        },
        "SmaCross",
        &serde_json::json!({"fast": fast, "slow": slow, "quantity": 1}),
        &inst,
        ScriptOptions {
            policy: SandboxPolicy::from_env(),
            limits,
            lookahead: Some(lookahead.clone()),
            failure: failure.clone(),
            max_batch: batch,
        },
    )
    .map_err(setup)?;
    let cash = Money::parse("1000000", Currency::USD).map_err(setup)?;
    let mut config = EngineConfig::frictionless(FillModel::NextOpen, cash);
    config.strategy_name = "script".to_string();
    let strategies: Vec<Box<dyn Strategy>> = vec![Box::new(strategy)];
    let engine = Engine::new(config, vec![inst], strategies)?;
    drive(engine, bars, Some(&lookahead), Some(&failure))
}

/// The built-in and the sandboxed SMA cross over the same bars: one JSON row of
/// `tradeloom bench sandbox` (an error when their orders or fills differ).
pub fn sandbox_row(bars: &[Bar], fast: u32, slow: u32) -> Result<serde_json::Value, BenchError> {
    let builtin = drive(
        sma_engine(fast, slow, FillModel::NextOpen, "1000000")?,
        bars,
        None,
        None,
    )?;
    let script = sandbox_pass(bars, fast, slow, DEFAULT_MAX_BATCH)?;
    if (builtin.orders, builtin.fills) != (script.orders, script.fills) {
        return Err(BenchError::Setup(format!(
            "the script made {} orders and {} fills, the built-in {} and {}",
            script.orders, script.fills, builtin.orders, builtin.fills
        )));
    }
    let n = bars.len() as f64;
    Ok(serde_json::json!({
        "bars": bars.len(),
        "orders": builtin.orders,
        "fills": builtin.fills,
        "builtin_seconds": builtin.seconds,
        "builtin_bars_per_second": n / builtin.seconds,
        "sandbox_seconds": script.seconds,
        "sandbox_bars_per_second": n / script.seconds,
        "sandbox_us_per_bar": script.seconds * 1e6 / n,
    }))
}
