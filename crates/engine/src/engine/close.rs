//! The close of a timestamp: equity marked at the last closes and recorded, the drawdown
//! limit checked (a breach engages the kill switch) and, for a margin account, the maintenance
//! margin (a breach is a margin call).

use tradeloom_core::fixed::mul_div;
use tradeloom_core::{AccountKind, ArithmeticError, Event, KillReason, Money, UnixNanos};

use super::{Engine, EngineError};
use crate::analysis::EquityPoint;
use crate::config::MarginCallAction;
use crate::sink::Sink;

/// What the maintenance margin's arithmetic errors name.
const MAINTENANCE: &str = "maintenance margin";

/// Percent raw at 10^-9: `pct` of `base` is `base × pct ÷ PCT_SCALE`.
const PCT_SCALE: i128 = 100 * 1_000_000_000;

/// `pct` percent (raw at 10^-9) of `base`, truncated toward zero.
fn pct_of(base: i128, pct: i64) -> Option<i128> {
    mul_div(base, i128::from(pct), PCT_SCALE)
}

/// Whether `a × b` surely fits an `i128`: their magnitudes need at most 127 bits together.
/// Two bit counts instead of a checked 128-bit multiplication (a call into the compiler's
/// runtime, costlier than the product).
#[inline]
fn product_fits(a: i128, b: i128) -> bool {
    a.unsigned_abs().leading_zeros() + b.unsigned_abs().leading_zeros() >= 129
}

/// Whether `x ≤ pct_of(base, pct)`, checked once per timestamp. For `base ≥ 0` and `pct ≥ 0`
/// the limit is `⌊base·pct ÷ PCT_SCALE⌋`, and an integer is at most the floor of a number
/// exactly when it is at most the number: `x·PCT_SCALE ≤ base·pct`. Two multiplications
/// instead of the three 128-bit divisions of [`mul_div`] (which cost more than the rest of a
/// bar); the same answer, and where a product overflows the division decides (and fails where
/// it fails, naming `what`).
#[inline]
fn at_most_pct_of(
    x: i128,
    base: i128,
    pct: i64,
    what: &'static str,
) -> Result<bool, ArithmeticError> {
    let pct = i128::from(pct);
    if base >= 0 && pct >= 0 {
        if product_fits(x, PCT_SCALE) && product_fits(base, pct) {
            return Ok(x * PCT_SCALE <= base * pct);
        }
        if let (Some(lhs), Some(rhs)) = (x.checked_mul(PCT_SCALE), base.checked_mul(pct)) {
            return Ok(lhs <= rhs);
        }
    }
    let limit = mul_div(base, pct, PCT_SCALE).ok_or(ArithmeticError(what))?;
    Ok(x <= limit)
}

impl Engine {
    /// Closes timestamp `ts` once every bar of it has been processed.
    pub(super) fn close_timestamp<S: Sink>(
        &mut self,
        ts: UnixNanos,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        // Equity and gross exposure in one pass: one market value per open position.
        let mut equity = self.account.cash();
        let mut gross: i128 = 0;
        let mut exposed = false;
        for (pos, mark) in self.positions.iter().zip(&self.marks) {
            if let (false, Some(mark)) = (pos.is_flat(), mark) {
                exposed = true;
                let value = pos.market_value(*mark)?;
                equity = equity.checked_add(value)?;
                gross = gross
                    .checked_add(value.raw().abs())
                    .ok_or(ArithmeticError("gross exposure"))?;
            }
        }
        self.analyzer.on_equity(ts, equity, exposed);
        // The point's drawdown (a division) is computed here and nowhere else on this path, so
        // a sink that drops points (the engine benchmarks) does not pay for it.
        sink.on_equity(&EquityPoint {
            ts,
            cash: self.account.cash(),
            equity,
            drawdown_pct: self.analyzer.drawdown_pct(equity),
            gross_exposure: Money::from_raw(gross, equity.currency()),
        });
        if let (Some(pct), false) = (self.config.risk.max_drawdown_pct_raw, self.halted) {
            self.peak_equity = self.peak_equity.max(equity.raw());
            let fall = self.peak_equity - equity.raw();
            if !at_most_pct_of(fall, self.peak_equity, pct, "drawdown limit")? {
                let peak = Money::from_raw(self.peak_equity, equity.currency());
                let drawdown_pct = self.analyzer.drawdown_pct(equity);
                let detail = format!(
                    "equity {equity} is {drawdown_pct:.2}% below its peak {peak}, above max_drawdown_pct {}",
                    tradeloom_core::fixed::format_raw(i128::from(pct), 9, 0)
                );
                sink.on_event(&Event::RiskLimitBreached {
                    ts,
                    limit: "max_drawdown_pct",
                    detail: detail.clone(),
                });
                if let Some(gate) = self.gate.as_mut() {
                    gate.on_engine_halt(&detail);
                    // The gate reports this very engagement (now durable, its text with a
                    // wall-clock time) on its next poll: it is this event, not another, so it
                    // is neither journaled again nor let into the journal's text.
                    self.gate_halt.get_or_insert_with(|| detail.clone());
                }
                sink.on_event(&Event::KillSwitchEngaged {
                    ts,
                    reason: KillReason::MaxDrawdown,
                    detail,
                });
                self.halted = true;
                self.cancel_where(ts, "kill_switch", sink, |_| true)?;
            }
        }
        if self.config.account_kind == AccountKind::Margin && self.margin_call.is_none() {
            let pct = self.config.margin.maintenance_pct_raw;
            if at_most_pct_of(equity.raw(), gross, pct, MAINTENANCE)? {
                let maintenance = pct_of(gross, pct).ok_or(ArithmeticError(MAINTENANCE))?;
                self.call_margin(ts, equity, maintenance, gross, sink)?;
            }
        }
        Ok(())
    }

    /// A margin call at the close of `ts`: journals it, cancels every working order, stops
    /// trading for the rest of the run and, unless the rule only halts, closes every position
    /// with reduce-only market orders. They are submitted now, without a bar, so under either
    /// fill model they fill at the next bar's open of their instrument: the loss beyond the
    /// threshold is at most one bar's gap.
    pub(super) fn call_margin<S: Sink>(
        &mut self,
        ts: UnixNanos,
        equity: Money,
        maintenance: i128,
        gross: i128,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let currency = equity.currency();
        let rule = self.config.margin;
        let maintenance = Money::from_raw(maintenance, currency).rounded();
        let gross = Money::from_raw(gross, currency);
        let detail = format!(
            "equity {equity} is at or below the maintenance margin {maintenance} ({}% of gross exposure {gross})",
            tradeloom_core::fixed::format_raw(i128::from(rule.maintenance_pct_raw), 9, 0)
        );
        sink.on_event(&Event::MarginCall {
            ts,
            equity,
            maintenance_margin: maintenance,
            gross_exposure: gross,
            action: rule.on_call.as_str(),
            detail: detail.clone(),
        });
        self.margin_call = Some(detail);
        self.cancel_where(ts, "margin_call", sink, |_| true)?;
        if rule.on_call == MarginCallAction::Liquidate {
            for i in 0..self.instruments.len() {
                if !self.positions[i].is_flat() {
                    self.submit_liquidation(i, ts, None, sink, true)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn by_division(x: i128, base: i128, pct: i64) -> Option<bool> {
        pct_of(base, pct).map(|limit| x <= limit)
    }

    #[test]
    fn at_the_limit_and_one_past_it() {
        // 25 % of 1_000_000_001 is 250_000_000.25, truncated to 250_000_000.
        let pct = 25_000_000_000;
        assert!(at_most_pct_of(250_000_000, 1_000_000_001, pct, "t").unwrap());
        assert!(!at_most_pct_of(250_000_001, 1_000_000_001, pct, "t").unwrap());
        assert!(at_most_pct_of(-5, 0, 0, "t").unwrap());
        assert!(!at_most_pct_of(1, 0, pct, "t").unwrap());
        // Overflowing products fall back to the division, and fail where it fails.
        assert_eq!(
            at_most_pct_of(i128::MAX, i128::MAX / 2, pct, "t").ok(),
            by_division(i128::MAX, i128::MAX / 2, pct)
        );
        assert!(at_most_pct_of(0, i128::MAX, i64::MAX, "t").is_err());
    }

    proptest! {
        #[test]
        fn product_fits_only_where_the_checked_product_does(a in any::<i128>(), b in any::<i128>(), sa in 0u32..128, sb in 0u32..128) {
            // Operands of every size, not only near the full width.
            let (a, b) = (a >> sa, b >> sb);
            if product_fits(a, b) {
                prop_assert!(a.checked_mul(b).is_some());
            }
        }

        #[test]
        fn agrees_with_the_division(
            x in any::<i128>(),
            base in any::<i128>(),
            pct in any::<i64>(),
            near in -3i128..3,
            small in any::<bool>(),
        ) {
            // Half the cases near the limit, where an off-by-one would show.
            let (x, base) = if small {
                let base = base >> 64;
                (pct_of(base, pct).map_or(x, |l| l.saturating_add(near)), base)
            } else {
                (x, base)
            };
            prop_assert_eq!(at_most_pct_of(x, base, pct, "t").ok(), by_division(x, base, pct));
        }
    }
}
