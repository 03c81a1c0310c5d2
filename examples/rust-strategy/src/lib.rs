//! `sma_bracket`: an example strategy of a user's own crate, written against tradeloom's
//! public strategy API ([`tradeloom_engine::Strategy`] and its context) and run by
//! `src/main.rs` through [`tradeloom_runs::run_with_strategies`].
//!
//! While flat, it cancels what still works and, when the close is above (below) the SMA of the
//! last `period` closes, places a limit buy (sell) `entry_pct` % under (over) the close with a
//! take-profit `target_pct` % and a stop-loss `stop_pct` % away from the close, in whole ticks
//! rounded away from the entry (the rule of the golden case `goog_1d_bracket_limit`).

use serde::Deserialize;
use tradeloom_core::{Bar, Instrument, Price, Quantity};
use tradeloom_engine::indicator::Sma;
use tradeloom_engine::{Bracket, OrderRequest, StopLoss, Strategy, StrategyContext};

/// `strategy.params` of `sma_bracket`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// SMA period, in bars.
    pub period: u32,
    /// Units per entry.
    pub quantity: u32,
    /// How far from the close the limit entry rests, in whole percent.
    pub entry_pct: i64,
    /// How far from the close the stop-loss is, in whole percent.
    pub stop_pct: i64,
    /// How far from the close the take-profit is, in whole percent.
    pub target_pct: i64,
}

/// The strategy; see the crate documentation.
pub struct SmaBracket {
    sma: Sma,
    quantity: Quantity,
    tick: i64,
    precision: u8,
    entry_pct: i64,
    stop_pct: i64,
    target_pct: i64,
}

impl SmaBracket {
    /// Checks the parameters against the instrument; errors name the parameter.
    pub fn new(p: &Params, instrument: &Instrument) -> Result<Self, String> {
        if p.period == 0 {
            return Err("strategy.params.period: must be at least 1".to_string());
        }
        if p.quantity == 0 {
            return Err("strategy.params.quantity: must be positive".to_string());
        }
        for (name, pct) in [
            ("entry_pct", p.entry_pct),
            ("stop_pct", p.stop_pct),
            ("target_pct", p.target_pct),
        ] {
            if !(0..100).contains(&pct) {
                return Err(format!(
                    "strategy.params.{name}: {pct} must be between 0 and 99"
                ));
            }
        }
        if p.stop_pct <= p.entry_pct {
            return Err(format!(
                "strategy.params.stop_pct: {} must be greater than entry_pct ({})",
                p.stop_pct, p.entry_pct
            ));
        }
        Ok(Self {
            sma: Sma::new(p.period as usize),
            quantity: Quantity::from_int(p.quantity, instrument.size_precision),
            tick: instrument.tick_size.raw().max(1),
            precision: instrument.price_precision,
            entry_pct: p.entry_pct,
            stop_pct: p.stop_pct,
            target_pct: p.target_pct,
        })
    }

    /// `close × (100 + pct) / 100` in whole ticks, rounded down (`up == false`) or up.
    fn at(&self, close_ticks: i64, pct: i64, up: bool) -> Price {
        let n = close_ticks * (100 + pct);
        let ticks = if up {
            -(-n).div_euclid(100)
        } else {
            n.div_euclid(100)
        };
        Price::from_raw(ticks * self.tick, self.precision)
    }
}

impl Strategy for SmaBracket {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        self.sma.update(bar.close.raw());
        if !ctx.position().is_flat() {
            return;
        }
        // Cancel yesterday's unfilled entry (at most one works while flat).
        let unfilled = ctx.open_orders().next().map(|o| o.id);
        if let Some(id) = unfilled {
            ctx.cancel(id);
        }
        if !self.sma.is_ready() {
            return;
        }
        // close vs mean, exactly: close × period against the integer sum.
        let close = i128::from(bar.close.raw());
        let scaled = close * self.sma.period() as i128;
        let c = bar.close.raw() / self.tick;
        let bracket = if scaled > self.sma.sum() {
            Bracket {
                entry: OrderRequest::buy(self.quantity).with_limit(self.at(
                    c,
                    -self.entry_pct,
                    false,
                )),
                take_profit: Some(self.at(c, self.target_pct, false)),
                stop_loss: Some(StopLoss::Stop(self.at(c, -self.stop_pct, false))),
            }
        } else if scaled < self.sma.sum() {
            Bracket {
                entry: OrderRequest::sell(self.quantity).with_limit(self.at(
                    c,
                    self.entry_pct,
                    true,
                )),
                take_profit: Some(self.at(c, -self.target_pct, true)),
                stop_loss: Some(StopLoss::Stop(self.at(c, self.stop_pct, true))),
            }
        } else {
            return;
        };
        ctx.bracket(bracket);
    }
}

/// The strategies this crate adds, for [`tradeloom_runs::run_with_strategies`].
pub fn strategies() -> tradeloom_runs::UserStrategies {
    tradeloom_runs::UserStrategies::new().per_instrument("sma_bracket", SmaBracket::new)
}
