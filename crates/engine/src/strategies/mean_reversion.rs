//! `mean_reversion`: fade moves of the close away from its rolling mean, measured in standard
//! deviations (z-score).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, Decimal, Instrument, Quantity};

use super::params::{StrategyError, order_quantity};
use crate::config::DecimalSchema;
use crate::indicator::RollingStats;
use crate::strategy::{Strategy, StrategyContext};

fn default_entry_z() -> f64 {
    2.0
}

fn default_exit_z() -> f64 {
    0.5
}

/// `mean_reversion`: trade the z-score of the close against its rolling mean.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MeanReversionParams {
    /// Bars in the rolling window (at least 2).
    pub lookback: u32,
    /// Enter when |z| reaches this (default 2.0): long below −entry_z, short above +entry_z.
    #[serde(default = "default_entry_z")]
    pub entry_z: f64,
    /// Exit when |z| falls to this (default 0.5).
    #[serde(default = "default_exit_z")]
    pub exit_z: f64,
    /// Units per position.
    #[schemars(with = "DecimalSchema")]
    pub quantity: Decimal,
    /// Never go short.
    #[serde(default)]
    pub long_only: bool,
}

/// The `mean_reversion` strategy.
pub struct MeanReversion {
    stats: RollingStats,
    entry_z: f64,
    exit_z: f64,
    quantity: Quantity,
    long_only: bool,
}

impl MeanReversion {
    /// Checks the window, the thresholds and the quantity against the instrument.
    pub fn new(
        params: &MeanReversionParams,
        instrument: &Instrument,
    ) -> Result<Self, StrategyError> {
        if params.lookback < 2 {
            return Err(StrategyError::new(
                "lookback",
                format!("{} must be at least 2", params.lookback),
            ));
        }
        if !(params.entry_z.is_finite() && params.entry_z > 0.0) {
            return Err(StrategyError::new(
                "entry_z",
                format!("{} must be positive", params.entry_z),
            ));
        }
        if !(params.exit_z.is_finite() && params.exit_z >= 0.0 && params.exit_z < params.entry_z) {
            return Err(StrategyError::new(
                "exit_z",
                format!(
                    "{} must be at least 0 and below entry_z ({})",
                    params.exit_z, params.entry_z
                ),
            ));
        }
        Ok(Self {
            stats: RollingStats::new(params.lookback as usize),
            entry_z: params.entry_z,
            exit_z: params.exit_z,
            quantity: order_quantity(params.quantity, instrument)?,
            long_only: params.long_only,
        })
    }
}

impl Strategy for MeanReversion {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        self.stats.update(bar.close.raw());
        if !self.stats.is_ready() {
            return;
        }
        let std = self.stats.std();
        if std <= 0.0 {
            return;
        }
        let z = (bar.close.as_f64() - self.stats.mean()) / std;
        let net = ctx.net_raw();
        if z <= -self.entry_z && net <= 0 {
            if net < 0 {
                ctx.close_position();
            }
            ctx.buy(self.quantity);
        } else if z >= self.entry_z && net >= 0 {
            if net > 0 {
                ctx.close_position();
            }
            if !self.long_only {
                ctx.sell(self.quantity);
            }
        } else if z.abs() <= self.exit_z && net != 0 {
            ctx.close_position();
        }
    }
}
