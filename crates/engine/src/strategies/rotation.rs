//! `momentum_rotation`: a portfolio strategy that holds the one instrument with the best return
//! over a lookback window, switching when another one leads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, Decimal, Instrument, Money, Quantity};

use super::params::StrategyError;
use crate::config::DecimalSchema;
use crate::strategy::{Strategy, StrategyContext};

/// `momentum_rotation` (portfolio: one instance sees every instrument of the run).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RotationParams {
    /// Bars over which each instrument's return is measured (close now ÷ close `lookback`
    /// bars of that instrument ago).
    pub lookback: u32,
    /// Decide every this many bars of the run's first instrument (default 1: every bar).
    #[serde(default = "one")]
    pub rebalance_every: u32,
    /// Money per position in the account's currency: the quantity bought is the largest
    /// multiple of the instrument's lot size whose notional at the last close stays within it.
    #[schemars(with = "DecimalSchema")]
    pub notional: Decimal,
}

fn one() -> u32 {
    1
}

/// The last `lookback + 1` closes of one instrument, raw.
struct Closes {
    ring: Box<[i64]>,
    next: usize,
    seen: usize,
}

impl Closes {
    fn push(&mut self, raw: i64) {
        self.ring[self.next] = raw;
        self.next = (self.next + 1) % self.ring.len();
        self.seen += 1;
    }

    /// (close now, close `lookback` bars ago) once both exist.
    fn ends(&self) -> Option<(i64, i64)> {
        let n = self.ring.len();
        if self.seen < n {
            return None;
        }
        let last = self.ring[(self.next + n - 1) % n];
        // `next` is the oldest once the ring is full.
        Some((last, self.ring[self.next]))
    }
}

/// The `momentum_rotation` strategy. Returns are compared exactly (cross-multiplied integers);
/// ties go to the instrument listed first. When the leader changes, the held position is
/// closed and the leader bought with market orders (a non-positive best return holds nothing).
pub struct Rotation {
    closes: Vec<Closes>,
    every: u32,
    first_bars: u32,
    notional: Decimal,
}

impl Rotation {
    /// Checks the parameters (`lookback` ≥ 1, `rebalance_every` ≥ 1, `notional` > 0, at least
    /// two instruments).
    pub fn new(params: &RotationParams, instruments: &[Instrument]) -> Result<Self, StrategyError> {
        if params.lookback == 0 {
            return Err(StrategyError::new("lookback", "must be at least 1"));
        }
        if params.rebalance_every == 0 {
            return Err(StrategyError::new("rebalance_every", "must be at least 1"));
        }
        if params.notional.is_negative() || params.notional.is_zero() {
            return Err(StrategyError::new("notional", "must be positive"));
        }
        if instruments.len() < 2 {
            return Err(StrategyError::new(
                "instruments",
                format!(
                    "momentum_rotation rotates between instruments; the run has {}",
                    instruments.len()
                ),
            ));
        }
        let window = params.lookback as usize + 1;
        Ok(Self {
            closes: instruments
                .iter()
                .map(|_| Closes {
                    ring: vec![0; window].into_boxed_slice(),
                    next: 0,
                    seen: 0,
                })
                .collect(),
            every: params.rebalance_every,
            first_bars: 0,
            notional: params.notional,
        })
    }

    /// The instrument with the best positive return, if every instrument has a full window.
    fn leader(&self) -> Option<usize> {
        let mut best: Option<(usize, i64, i64)> = None;
        for (i, c) in self.closes.iter().enumerate() {
            let (now, then) = c.ends()?;
            // now/then > best_now/best_then  ⇔  now·best_then > best_now·then (all positive).
            let better = best.is_none_or(|(_, bn, bt)| {
                i128::from(now) * i128::from(bt) > i128::from(bn) * i128::from(then)
            });
            if better {
                best = Some((i, now, then));
            }
        }
        best.filter(|&(_, now, then)| now > then).map(|(i, _, _)| i)
    }
}

/// The largest multiple of the lot size whose notional at `price_raw` is within `budget`.
fn quantity_for(budget: Money, price_raw: i64, inst: &Instrument) -> Option<Quantity> {
    if price_raw <= 0 {
        return None;
    }
    // Money is raw at 10^-18 and prices at 10^-9, so the quotient is a quantity raw at 10^-9.
    let raw = budget.raw() / i128::from(price_raw);
    let lot = i128::from(inst.lot_size.raw().max(1));
    let raw = i64::try_from(raw / lot * lot).ok()?;
    let q = inst.quantity(raw);
    (!q.is_zero() && q >= inst.min_quantity).then_some(q)
}

impl Strategy for Rotation {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        let i = bar.instrument.index();
        self.closes[i].push(bar.close.raw());
        if i != 0 {
            return;
        }
        self.first_bars += 1;
        if !self.first_bars.is_multiple_of(self.every) {
            return;
        }
        let leader = self.leader();
        let n = self.closes.len();
        let is_held = |ctx: &StrategyContext<'_>, k: usize| {
            ctx.position_of(ctx.instruments()[k].id)
                .is_some_and(|p| !p.is_flat())
        };
        let held = (0..n).filter(|&k| is_held(ctx, k)).count();
        let holds_leader = leader.is_some_and(|k| is_held(ctx, k));
        if (held == 1 && holds_leader) || (held == 0 && leader.is_none()) {
            return;
        }
        for k in 0..n {
            if is_held(ctx, k) {
                let id = ctx.instruments()[k].id;
                ctx.close_position_of(id);
            }
        }
        let Some(k) = leader else { return };
        let inst = &ctx.instruments()[k];
        let budget = self.notional.to_money(inst.currency);
        let Some(price) = ctx.last_price(inst.id) else {
            return;
        };
        if let Some(q) = quantity_for(budget, price.raw(), inst) {
            let id = inst.id;
            ctx.submit(crate::strategy::OrderRequest::buy(q).on(id));
        }
    }
}
