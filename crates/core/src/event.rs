//! [`Event`]: what the engine reports, one journal line each. Times are event times (bar
//! timestamps), never wall-clock times, so the same inputs give byte-identical journals.

use serde::Serialize;

use crate::fill::Liquidity;
use crate::money::Money;
use crate::order::{OrderId, OrderSide, OrderType, TimeInForce};
use crate::price::Price;
use crate::quantity::{Quantity, SignedQuantity};
use crate::symbol::Symbol;
use crate::time::UnixNanos;

/// Why trading was stopped for the rest of a run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// Equity fell from its peak by more than `risk.max_drawdown_pct`.
    MaxDrawdown,
    /// An operator's kill switch (global, the run's or the job's) is engaged.
    Operator,
}

/// One journal event.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        ts: UnixNanos,
        strategy: String,
        fill_model: &'static str,
        instruments: Vec<Symbol>,
        initial_cash: Money,
    },
    OrderSubmitted {
        ts: UnixNanos,
        order_id: OrderId,
        symbol: Symbol,
        side: OrderSide,
        order_type: OrderType,
        quantity: Quantity,
        #[serde(skip_serializing_if = "Option::is_none")]
        price: Option<Price>,
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger_price: Option<Price>,
        time_in_force: TimeInForce,
        reduce_only: bool,
    },
    OrderAccepted {
        ts: UnixNanos,
        order_id: OrderId,
    },
    OrderRejected {
        ts: UnixNanos,
        order_id: OrderId,
        /// A stable code (`risk.max_position`, `account.insufficient_cash`, …).
        code: &'static str,
        reason: String,
    },
    OrderTriggered {
        ts: UnixNanos,
        order_id: OrderId,
    },
    OrderFilled {
        ts: UnixNanos,
        order_id: OrderId,
        fill_id: u64,
        symbol: Symbol,
        side: OrderSide,
        quantity: Quantity,
        price: Price,
        fee: Money,
        liquidity: Liquidity,
    },
    OrderCancelled {
        ts: UnixNanos,
        order_id: OrderId,
        reason: &'static str,
    },
    OrderExpired {
        ts: UnixNanos,
        order_id: OrderId,
    },
    PositionChanged {
        ts: UnixNanos,
        symbol: Symbol,
        /// Signed net quantity after the fill.
        quantity: SignedQuantity,
        #[serde(skip_serializing_if = "Option::is_none")]
        avg_price: Option<Price>,
        /// Realised PnL of this change.
        realized_pnl: Money,
    },
    RiskLimitBreached {
        ts: UnixNanos,
        limit: &'static str,
        detail: String,
    },
    KillSwitchEngaged {
        ts: UnixNanos,
        reason: KillReason,
        detail: String,
    },
    /// An engaged kill switch asks for positions to be flattened: the engine submits market
    /// order `order_id` closing the position in `symbol` (net `quantity` before it). It is the
    /// only kind of order accepted while the kill switch is engaged.
    KillSwitchLiquidation {
        ts: UnixNanos,
        order_id: OrderId,
        symbol: Symbol,
        quantity: SignedQuantity,
        detail: String,
    },
    /// The operator's kill switch was released: new orders pass pre-trade risk again (a
    /// `max_drawdown` halt stays).
    KillSwitchReleased {
        ts: UnixNanos,
    },
    /// At the close of a timestamp a margin account's equity was at or below its maintenance
    /// margin (`account.margin.maintenance_pct` of gross exposure): working orders are
    /// cancelled (reason `margin_call`), new orders are refused for the rest of the run (code
    /// `risk.margin_call`) and, when `action` is `liquidate`, every position is closed.
    MarginCall {
        ts: UnixNanos,
        equity: Money,
        maintenance_margin: Money,
        gross_exposure: Money,
        /// `liquidate` or `halt` (`account.margin.on_call`).
        action: &'static str,
        detail: String,
    },
    /// A margin call closes the position in `symbol` (net `quantity` before it) with reduce-only
    /// market order `order_id`, which fills at the next bar's open of the instrument.
    MarginLiquidation {
        ts: UnixNanos,
        order_id: OrderId,
        symbol: Symbol,
        quantity: SignedQuantity,
        detail: String,
    },
    /// At fill time a cash account could not take all of order `order_id`: `quantity` was
    /// wanted, only `allowed` (possibly zero) fills, and the rest of the order is cancelled
    /// (reason `insufficient_cash` or `no_shorting`). `code` is `account.insufficient_cash` (the
    /// fill would take cash below zero) or `account.no_shorting` (it would open a short).
    FillLimited {
        ts: UnixNanos,
        order_id: OrderId,
        code: &'static str,
        quantity: Quantity,
        allowed: Quantity,
        detail: String,
    },
    RunFinished {
        ts: UnixNanos,
        bars: u64,
        orders: u64,
        fills: u64,
        cash: Money,
        equity: Money,
    },
}

impl Event {
    /// The event time.
    pub fn ts(&self) -> UnixNanos {
        match self {
            Event::RunStarted { ts, .. }
            | Event::OrderSubmitted { ts, .. }
            | Event::OrderAccepted { ts, .. }
            | Event::OrderRejected { ts, .. }
            | Event::OrderTriggered { ts, .. }
            | Event::OrderFilled { ts, .. }
            | Event::OrderCancelled { ts, .. }
            | Event::OrderExpired { ts, .. }
            | Event::PositionChanged { ts, .. }
            | Event::RiskLimitBreached { ts, .. }
            | Event::KillSwitchEngaged { ts, .. }
            | Event::KillSwitchLiquidation { ts, .. }
            | Event::KillSwitchReleased { ts }
            | Event::MarginCall { ts, .. }
            | Event::MarginLiquidation { ts, .. }
            | Event::FillLimited { ts, .. }
            | Event::RunFinished { ts, .. } => *ts,
        }
    }
}
