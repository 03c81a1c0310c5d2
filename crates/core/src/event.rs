//! [`Event`]: what the engine reports, one journal line each. Times are event times (bar
//! timestamps), never wall-clock times, so the same inputs give byte-identical journals.

use serde::Serialize;

use crate::fill::Liquidity;
use crate::money::Money;
use crate::order::{OrderId, OrderLinks, OrderSide, OrderType, TimeInForce};
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
    /// The run began.
    RunStarted {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The strategy's name.
        strategy: String,
        /// The fill model (`bar_close`, `next_open`, …).
        fill_model: &'static str,
        /// The instruments of the run, in order.
        instruments: Vec<Symbol>,
        /// Cash at the start.
        initial_cash: Money,
    },
    /// A strategy (or the engine) submitted an order.
    OrderSubmitted {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// The instrument.
        symbol: Symbol,
        /// Buy or sell.
        side: OrderSide,
        /// Market, limit, stop or stop-limit.
        order_type: OrderType,
        /// Quantity ordered.
        quantity: Quantity,
        /// Limit price, for limit kinds.
        #[serde(skip_serializing_if = "Option::is_none")]
        price: Option<Price>,
        /// Trigger price, for stop kinds.
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger_price: Option<Price>,
        /// How long it stays working.
        time_in_force: TimeInForce,
        /// Whether it may only reduce the position.
        reduce_only: bool,
        /// Bracket links and the trail of a trailing stop (absent for a plain order): a leg's
        /// `parent_id` and `oco_id`, an entry's `take_profit_id`/`take_profit` and
        /// `stop_loss_id`/`stop_loss`/`stop_loss_trail`, a trailing stop's `trail`.
        #[serde(flatten)]
        links: Option<Box<OrderLinks>>,
    },
    /// A working order changed: a trailing stop's trigger followed the price (`reason`
    /// `trailing`), or a bracket leg was reduced because the other leg filled (`reason`
    /// `oco`).
    OrderUpdated {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// The order's quantity now.
        quantity: Quantity,
        /// The trigger price now, for stop kinds.
        #[serde(skip_serializing_if = "Option::is_none")]
        trigger_price: Option<Price>,
        /// `trailing` or `oco`.
        reason: &'static str,
    },
    /// The venue accepted an order after the pre-trade checks.
    OrderAccepted {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
    },
    /// An order was rejected (invalid, or refused by pre-trade risk).
    OrderRejected {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// A stable code (`risk.max_position`, `account.insufficient_cash`, …).
        code: &'static str,
        /// Why, for a person.
        reason: String,
    },
    /// A stop or stop-limit order's trigger price traded.
    OrderTriggered {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
    },
    /// An order (partly) filled.
    OrderFilled {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// Run-unique fill number, from 1.
        fill_id: u64,
        /// The instrument.
        symbol: Symbol,
        /// Buy or sell.
        side: OrderSide,
        /// Quantity of this fill.
        quantity: Quantity,
        /// Fill price, slippage included.
        price: Price,
        /// Fee charged on this fill.
        fee: Money,
        /// Maker or taker.
        liquidity: Liquidity,
    },
    /// A working order was cancelled.
    OrderCancelled {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// Why (`user`, `ioc`, `margin_call`, …).
        reason: &'static str,
    },
    /// A `DAY` order expired at the end of its day.
    OrderExpired {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
    },
    /// The net position of an instrument changed.
    PositionChanged {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The instrument.
        symbol: Symbol,
        /// Signed net quantity after the fill.
        quantity: SignedQuantity,
        /// Average entry price of the remaining position; `None` when flat.
        #[serde(skip_serializing_if = "Option::is_none")]
        avg_price: Option<Price>,
        /// Realised PnL of this change.
        realized_pnl: Money,
    },
    /// A risk limit was breached while the run went on (the breach is recorded, orders go on being checked).
    RiskLimitBreached {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The limit (`max_drawdown`, …).
        limit: &'static str,
        /// What happened, for a person.
        detail: String,
    },
    /// The kill switch engaged: trading stops (see `reason`).
    KillSwitchEngaged {
        /// When it happened (event time).
        ts: UnixNanos,
        /// Which kill switch.
        reason: KillReason,
        /// What happened, for a person.
        detail: String,
    },
    /// An engaged kill switch asks for positions to be flattened: the engine submits market
    /// order `order_id` closing the position in `symbol` (net `quantity` before it). It is the
    /// only kind of order accepted while the kill switch is engaged.
    KillSwitchLiquidation {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// The instrument.
        symbol: Symbol,
        /// Net quantity of the position before the order.
        quantity: SignedQuantity,
        /// What happened, for a person.
        detail: String,
    },
    /// The operator's kill switch was released: new orders pass pre-trade risk again (a
    /// `max_drawdown` halt stays).
    KillSwitchReleased {
        /// When it happened (event time).
        ts: UnixNanos,
    },
    /// At the close of a timestamp a margin account's equity was at or below its maintenance
    /// margin (`account.margin.maintenance_pct` of gross exposure): working orders are
    /// cancelled (reason `margin_call`), new orders are refused for the rest of the run (code
    /// `risk.margin_call`) and, when `action` is `liquidate`, every position is closed.
    MarginCall {
        /// When it happened (event time).
        ts: UnixNanos,
        /// Equity at the close.
        equity: Money,
        /// Maintenance margin required at the close.
        maintenance_margin: Money,
        /// Gross exposure at the close.
        gross_exposure: Money,
        /// `liquidate` or `halt` (`account.margin.on_call`).
        action: &'static str,
        /// What happened, for a person.
        detail: String,
    },
    /// A margin call closes the position in `symbol` (net `quantity` before it) with reduce-only
    /// market order `order_id`, which fills at the next bar's open of the instrument.
    MarginLiquidation {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// The instrument.
        symbol: Symbol,
        /// Net quantity of the position before the order.
        quantity: SignedQuantity,
        /// What happened, for a person.
        detail: String,
    },
    /// At fill time a cash account could not take all of order `order_id`: `quantity` was
    /// wanted, only `allowed` (possibly zero) fills, and the rest of the order is cancelled
    /// (reason `insufficient_cash` or `no_shorting`). `code` is `account.insufficient_cash` (the
    /// fill would take cash below zero) or `account.no_shorting` (it would open a short).
    FillLimited {
        /// When it happened (event time).
        ts: UnixNanos,
        /// The order.
        order_id: OrderId,
        /// `account.insufficient_cash` or `account.no_shorting`.
        code: &'static str,
        /// Quantity the fill wanted.
        quantity: Quantity,
        /// Quantity allowed to fill (possibly zero).
        allowed: Quantity,
        /// What happened, for a person.
        detail: String,
    },
    /// The run ended.
    RunFinished {
        /// When it happened (event time).
        ts: UnixNanos,
        /// Bars processed.
        bars: u64,
        /// Orders submitted.
        orders: u64,
        /// Fills.
        fills: u64,
        /// Cash at the end.
        cash: Money,
        /// Equity at the end (cash plus positions at the last close).
        equity: Money,
    },
}

impl Event {
    /// The event time.
    pub fn ts(&self) -> UnixNanos {
        match self {
            Event::RunStarted { ts, .. }
            | Event::OrderSubmitted { ts, .. }
            | Event::OrderUpdated { ts, .. }
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
