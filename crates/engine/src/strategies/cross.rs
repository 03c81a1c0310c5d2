//! `sma_cross` and `ema_cross`: trade the crossovers of a fast and a slow moving average.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, Decimal, Instrument, Quantity};

use super::params::{StrategyError, order_quantity};
use crate::config::DecimalSchema;
use crate::indicator::{Cross, CrossDetector, Ema, Sma};
use crate::strategy::{Strategy, StrategyContext};

/// `sma_cross` and `ema_cross`: long on a cross up of the fast average over the slow one, short (or flat) on a cross down.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrossParams {
    /// Period of the fast average, in bars.
    pub fast: u32,
    /// Period of the slow average, in bars; greater than `fast`.
    pub slow: u32,
    /// Units per position.
    #[schemars(with = "DecimalSchema")]
    pub quantity: Decimal,
    /// Never go short: a cross down only closes a long.
    #[serde(default)]
    pub long_only: bool,
}

impl CrossParams {
    fn check(&self, instrument: &Instrument) -> Result<Quantity, StrategyError> {
        if self.fast == 0 {
            return Err(StrategyError::new("fast", "must be at least 1"));
        }
        if self.slow <= self.fast {
            return Err(StrategyError::new(
                "slow",
                format!("{} must be greater than fast ({})", self.slow, self.fast),
            ));
        }
        order_quantity(self.quantity, instrument)
    }
}

/// The trading rule shared by both crosses.
struct CrossRule {
    quantity: Quantity,
    long_only: bool,
    detector: CrossDetector,
}

impl CrossRule {
    #[inline]
    fn on_sign(&mut self, ctx: &mut StrategyContext<'_>, sign: i32) {
        match self.detector.update(sign) {
            Some(Cross::Up) => {
                if ctx.net_raw() < 0 {
                    ctx.close_position();
                }
                if ctx.net_raw() <= 0 {
                    ctx.buy(self.quantity);
                }
            }
            Some(Cross::Down) => {
                if ctx.net_raw() > 0 {
                    ctx.close_position();
                }
                if ctx.net_raw() >= 0 && !self.long_only {
                    ctx.sell(self.quantity);
                }
            }
            None => {}
        }
    }
}

/// SMA crossover; averages are compared exactly (integer sums).
pub struct SmaCross {
    fast: Sma,
    slow: Sma,
    rule: CrossRule,
}

impl SmaCross {
    /// Checks the periods and the quantity against the instrument.
    pub fn new(params: &CrossParams, instrument: &Instrument) -> Result<Self, StrategyError> {
        Ok(Self {
            fast: Sma::new(params.fast as usize),
            slow: Sma::new(params.slow as usize),
            rule: CrossRule {
                quantity: params.check(instrument)?,
                long_only: params.long_only,
                detector: CrossDetector::default(),
            },
        })
    }
}

impl Strategy for SmaCross {
    #[inline]
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        self.fast.update(bar.close.raw());
        self.slow.update(bar.close.raw());
        if self.slow.is_ready() {
            let sign = self.fast.compare(&self.slow);
            self.rule.on_sign(ctx, sign);
        }
    }
}

/// EMA crossover.
pub struct EmaCross {
    fast: Ema,
    slow: Ema,
    rule: CrossRule,
}

impl EmaCross {
    /// Checks the periods and the quantity against the instrument.
    pub fn new(params: &CrossParams, instrument: &Instrument) -> Result<Self, StrategyError> {
        Ok(Self {
            fast: Ema::new(params.fast as usize),
            slow: Ema::new(params.slow as usize),
            rule: CrossRule {
                quantity: params.check(instrument)?,
                long_only: params.long_only,
                detector: CrossDetector::default(),
            },
        })
    }
}

impl Strategy for EmaCross {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        self.fast.update(bar.close.raw());
        self.slow.update(bar.close.raw());
        if self.slow.is_ready() {
            let (f, s) = (self.fast.value(), self.slow.value());
            let sign = (f > s) as i32 - (f < s) as i32;
            self.rule.on_sign(ctx, sign);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use super::*;
    use crate::strategy::Command;
    use tradeloom_core::{Currency, InstrumentId, OrderSide, Position, Price, Symbol, UnixNanos};

    /// Feeds closes to `sma_cross` (fast 2, slow 3, quantity 1) from flat and returns, per bar,
    /// the sides of the orders it submitted.
    fn orders_per_bar(closes: &[&str]) -> Vec<Vec<OrderSide>> {
        let inst = Instrument::new(
            InstrumentId(0),
            Symbol::new("TEST").unwrap(),
            "sim",
            2,
            0,
            Currency::USD,
        )
        .unwrap();
        let params = CrossParams {
            fast: 2,
            slow: 3,
            quantity: Decimal::from_int(1),
            long_only: false,
        };
        let mut strategy = SmaCross::new(&params, &inst).unwrap();
        let position = Position::flat(inst.id, Currency::USD, 2, 0);
        let mut next_order_id = 0;
        closes
            .iter()
            .map(|close| {
                let p = Price::parse(close, 2).unwrap();
                let bar = Bar::flat(inst.id, UnixNanos(0), p);
                let mut commands = Vec::new();
                let mut ctx = StrategyContext::for_test(
                    bar.ts,
                    &inst,
                    &position,
                    &mut commands,
                    &mut next_order_id,
                );
                strategy.on_bar(&mut ctx, &bar);
                commands
                    .iter()
                    .filter_map(|c| match c {
                        Command::Submit { request, .. } => Some(request.side),
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }

    /// The README's worked example ("Crossover ties"): on the 4th close the averages are both
    /// exactly 1.39 (a float engine computes (1.37 + 1.41) / 2 = 1.3900000000000001 and sees a
    /// cross up there). The sign of fast − slow goes −1 (bar 3) → 0 (bar 4) → +1 (bar 5): not a
    /// cross, so no order on any of those bars; a later strict change of sign trades.
    #[test]
    fn an_exact_tie_between_opposite_signs_is_not_a_cross() {
        let bars = orders_per_bar(&["1.71", "1.39", "1.37", "1.41", "1.50", "1.20", "1.90"]);
        let none: Vec<OrderSide> = Vec::new();
        assert_eq!(bars[2], none, "bar 3: fast 1.38 < slow 1.49 (−1)");
        assert_eq!(bars[3], none, "bar 4: fast = slow = 1.39 exactly (0)");
        assert_eq!(
            bars[4], none,
            "bar 5: fast 1.455 > slow 1.4266… (+1), after a 0"
        );
        // bar 6: fast (1.50 + 1.20) / 2 = 1.35 < slow 4.11 / 3 = 1.37: +1 → −1, a cross down
        assert_eq!(bars[5], [OrderSide::Sell]);
        // bar 7: fast 1.55 > slow 4.60 / 3 = 1.5333…: −1 → +1, a cross up
        assert_eq!(bars[6], [OrderSide::Buy]);
    }
}
