//! The close of a timestamp: equity marked at the last closes and recorded, the drawdown
//! limit checked (a breach engages the kill switch) and, for a margin account, the maintenance
//! margin (a breach is a margin call).

use tradeloom_core::fixed::mul_div;
use tradeloom_core::{AccountKind, ArithmeticError, Event, KillReason, Money, UnixNanos};

use super::{Engine, EngineError};
use crate::analysis::EquityPoint;
use crate::config::MarginCallAction;
use crate::sink::Sink;

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
        let drawdown_pct = self.analyzer.on_equity(ts, equity, exposed);
        sink.on_equity(&EquityPoint {
            ts,
            cash: self.account.cash(),
            equity,
            drawdown_pct,
            gross_exposure: Money::from_raw(gross, equity.currency()),
        });
        if let (Some(pct), false) = (self.config.risk.max_drawdown_pct_raw, self.halted) {
            self.peak_equity = self.peak_equity.max(equity.raw());
            let allowed = mul_div(self.peak_equity, i128::from(pct), 100 * 1_000_000_000)
                .ok_or(ArithmeticError("drawdown limit"))?;
            if self.peak_equity - equity.raw() > allowed {
                let peak = Money::from_raw(self.peak_equity, equity.currency());
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
            let maintenance = mul_div(gross, i128::from(pct), 100 * 1_000_000_000)
                .ok_or(ArithmeticError("maintenance margin"))?;
            if equity.raw() <= maintenance {
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
