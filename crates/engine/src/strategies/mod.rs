//! Built-in strategies and the `strategy:` section of a run spec that selects one.

mod buy_and_hold;
mod cross;
mod manual;
mod mean_reversion;
mod params;
mod rotation;
mod signal;

pub use buy_and_hold::{BuyAndHold, BuyAndHoldParams};
pub use cross::{CrossParams, EmaCross, SmaCross};
pub use manual::Manual;
pub use mean_reversion::{MeanReversion, MeanReversionParams};
pub use params::StrategyError;
pub use rotation::{Rotation, RotationParams};
pub use signal::{Signal, SignalParams, SignalRule, SignalSide};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::Instrument;

use crate::engine::Strategies;
use crate::strategy::Strategy;

/// `strategy: {name: ..., params: {...}}` in a run spec. Unknown names and unknown parameters
/// are errors.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(
    tag = "name",
    content = "params",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum StrategyConfig {
    /// Buys `quantity` on the first bar and holds it to the end.
    BuyAndHold(BuyAndHoldParams),
    /// Simple-moving-average crossover: on a cross up close any short and go long `quantity`; on
    /// a cross down close any long and go short `quantity` (or stay flat with `long_only`).
    SmaCross(CrossParams),
    /// The same rules on exponential moving averages.
    EmaCross(CrossParams),
    /// Z-score mean reversion on a rolling window of closes.
    MeanReversion(MeanReversionParams),
    /// Rules over scan fields (paper runs fed by a scan directory): enter on a cross of one
    /// field's threshold, exit on another rule; does nothing with plain bars.
    Signal(SignalParams),
    /// Portfolio: hold the instrument with the best return over `lookback` bars, `notional`
    /// worth of it, re-deciding every `rebalance_every` bars of the first instrument.
    MomentumRotation(RotationParams),
    /// Places no orders of its own: the account is traded from outside (a paper run with
    /// `external_orders: true`, traded by a workflow's `order` node).
    Manual,
}

impl StrategyConfig {
    /// The strategy's name as written in run specs (`sma_cross`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StrategyConfig::BuyAndHold(_) => "buy_and_hold",
            StrategyConfig::SmaCross(_) => "sma_cross",
            StrategyConfig::EmaCross(_) => "ema_cross",
            StrategyConfig::MeanReversion(_) => "mean_reversion",
            StrategyConfig::Signal(_) => "signal",
            StrategyConfig::MomentumRotation(_) => "momentum_rotation",
            StrategyConfig::Manual => "manual",
        }
    }

    /// The names of the built-in strategies, as written in run specs.
    pub const NAMES: [&'static str; 7] = [
        "buy_and_hold",
        "sma_cross",
        "ema_cross",
        "mean_reversion",
        "signal",
        "momentum_rotation",
        "manual",
    ];

    /// Whether one instance trades every instrument of the run (see [`Strategies`]).
    pub fn is_portfolio(&self) -> bool {
        matches!(self, StrategyConfig::MomentumRotation(_))
    }

    /// Checks the parameters against an instrument (quantity precision, periods).
    pub fn validate(&self, instrument: &Instrument) -> Result<(), StrategyError> {
        self.build(std::slice::from_ref(instrument)).map(|_| ())
    }

    /// The strategies of a run on `instruments`: one instance per instrument, or one portfolio
    /// instance; errors name the parameter.
    pub fn build(&self, instruments: &[Instrument]) -> Result<Strategies, StrategyError> {
        if let StrategyConfig::MomentumRotation(p) = self {
            return Ok(Strategies::Portfolio(Box::new(Rotation::new(
                p,
                instruments,
            )?)));
        }
        instruments
            .iter()
            .map(|inst| build_strategy(self, inst))
            .collect::<Result<Vec<_>, _>>()
            .map(Strategies::PerInstrument)
    }
}

/// Builds the strategy instance for one instrument; errors name the parameter. A portfolio
/// strategy built this way sees that one instrument only (use [`StrategyConfig::build`]).
pub fn build_strategy(
    config: &StrategyConfig,
    instrument: &Instrument,
) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(match config {
        StrategyConfig::BuyAndHold(p) => Box::new(BuyAndHold::new(p, instrument)?),
        StrategyConfig::SmaCross(p) => Box::new(SmaCross::new(p, instrument)?),
        StrategyConfig::EmaCross(p) => Box::new(EmaCross::new(p, instrument)?),
        StrategyConfig::MeanReversion(p) => Box::new(MeanReversion::new(p, instrument)?),
        StrategyConfig::Signal(p) => Box::new(Signal::new(p, instrument)?),
        StrategyConfig::MomentumRotation(p) => {
            Box::new(Rotation::new(p, std::slice::from_ref(instrument))?)
        }
        StrategyConfig::Manual => Box::new(Manual),
    })
}
