//! `sma_cross` and `ema_cross`: trade the crossovers of a fast and a slow moving average.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, Decimal, Instrument, Quantity};

use crate::config::DecimalSchema;
use crate::indicator::{Cross, CrossDetector, Ema, Sma};
use crate::strategy::{Strategy, StrategyContext};

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
    fn check(&self, instrument: &Instrument) -> Result<Quantity, String> {
        if self.fast == 0 {
            return Err("fast: must be at least 1".to_string());
        }
        if self.slow <= self.fast {
            return Err(format!(
                "slow: {} must be greater than fast ({})",
                self.slow, self.fast
            ));
        }
        super::order_quantity(self.quantity, instrument)
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
    pub fn new(params: &CrossParams, instrument: &Instrument) -> Result<Self, String> {
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
    pub fn new(params: &CrossParams, instrument: &Instrument) -> Result<Self, String> {
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
