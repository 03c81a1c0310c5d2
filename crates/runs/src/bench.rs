//! Workloads of `tradeloom bench engine` and `tradeloom bench killswitch`: the engine over
//! synthetic 1-minute bars traded by `sma_cross`, timed without and with what a run adds (the
//! live counters of `/metrics`, the kill switch gate), and the race between `engage` and a
//! running engine; and of `tradeloom bench run`: whole `tradeloom run` processes beside the
//! peers' (module [`run`]). They measure and report; deciding what is good is the caller's.

mod engine;
mod kill_switch;
pub mod peer;
pub mod run;
mod sandbox;

use tradeloom_core::{Bar, Currency, Decimal, Instrument, InstrumentId, Money, Symbol, UnixNanos};
use tradeloom_data::{SynthSpec, synth_bars};
use tradeloom_engine::strategies::CrossParams;
use tradeloom_engine::{
    Engine, EngineConfig, EngineError, FillModel, StrategyConfig, build_strategy,
};

pub use engine::{
    BASE_BARS, ENGINE_PASSES, FAST, Pass, SLOW, VECTORBT_WARM_PY, WARM_SIZES, engine_pass,
    engine_row, engine_table, synth_spec, vectorbt_warm, warm_row, warm_table, write_bench_spec,
};
pub use kill_switch::{KillSwitchBench, Race, gate_pass, kill_switch_bench, race};
pub use sandbox::{SMA_CROSS_PY, SandboxPass, sandbox_pass, sandbox_row};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The instrument, the account or the strategy of the workload was refused.
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    KillSwitch(#[from] tradeloom_safety::KillSwitchError),
    #[error("no bars")]
    NoBars,
    #[error(
        "live counters disagree with the engine: {bars} bars, {fills} fills counted; {expected_bars} bars, {expected_fills} fills run"
    )]
    LiveCounters {
        bars: u64,
        fills: u64,
        expected_bars: u64,
        expected_fills: u64,
    },
    #[error("the engine thread panicked")]
    Panicked,
    /// A work file or folder of the workload could not be written (`action`: `writing`,
    /// `creating`).
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

fn setup<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// The one instrument of the workloads: `SYN`, 2 price decimals, whole units, USD.
fn instrument() -> Result<Instrument, BenchError> {
    let symbol = Symbol::new("SYN").map_err(setup)?;
    Instrument::new(InstrumentId(0), symbol, "sim", 2, 0, Currency::USD).map_err(setup)
}

/// A frictionless engine trading `sma_cross` `fast`/`slow` one unit at a time.
fn sma_engine(fast: u32, slow: u32, fill: FillModel, cash: &str) -> Result<Engine, BenchError> {
    let inst = instrument()?;
    let cash = Money::parse(cash, Currency::USD).map_err(setup)?;
    let mut config = EngineConfig::frictionless(fill, cash);
    config.strategy_name = "sma_cross".to_string();
    let strategy = StrategyConfig::SmaCross(CrossParams {
        fast,
        slow,
        quantity: Decimal::from_int(1),
        long_only: false,
    });
    let strategies = vec![build_strategy(&strategy, &inst).map_err(setup)?];
    Ok(Engine::new(config, vec![inst], strategies)?)
}

/// `n` synthetic 1-minute bars of `SYN` for `seed`.
pub fn bars(n: u64, seed: u64) -> Vec<Bar> {
    synth_bars(&SynthSpec {
        seed,
        ..synth_spec(n)
    })
    .collect()
}

/// Nanoseconds from the first bar of `base` to one interval after its last: the shift that
/// replays it once more after itself.
fn replay_span(base: &[Bar]) -> Result<i64, BenchError> {
    match (base.first(), base.last()) {
        (Some(a), Some(b)) => Ok(b.ts.0 - a.ts.0 + 60_000_000_000),
        _ => Err(BenchError::NoBars),
    }
}

/// `bar` of replay `round` (shifted `round × span`).
fn shifted(bar: &Bar, round: i64, span: i64) -> Bar {
    let mut bar = *bar;
    bar.ts = UnixNanos(bar.ts.0 + round * span);
    bar
}

/// The median of `xs` (the upper one of an even count); NaN when empty.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}
