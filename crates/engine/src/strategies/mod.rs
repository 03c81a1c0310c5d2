//! Built-in strategies and the `strategy:` section of a run spec that selects one.

mod buy_and_hold;
mod cross;
mod mean_reversion;
mod params;
mod signal;

pub use buy_and_hold::{BuyAndHold, BuyAndHoldParams};
pub use cross::{CrossParams, EmaCross, SmaCross};
pub use mean_reversion::{MeanReversion, MeanReversionParams};
pub use params::StrategyError;
pub use signal::{Signal, SignalParams, SignalRule, SignalSide};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::Instrument;

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
        }
    }

    /// Checks the parameters against an instrument (quantity precision, periods).
    pub fn validate(&self, instrument: &Instrument) -> Result<(), StrategyError> {
        build_strategy(self, instrument).map(|_| ())
    }
}

/// Builds the strategy instance for one instrument; errors name the parameter.
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
    })
}
