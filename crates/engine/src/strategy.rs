//! The [`Strategy`] trait and the [`StrategyContext`] a strategy trades through.

use crate::scan::ScanFields;
use tradeloom_core::{
    Bar, Fill, Instrument, InstrumentId, OrderId, OrderSide, OrderType, Position, Price, Quantity,
    TimeInForce, UnixNanos,
};

/// A trading strategy for one instrument. The engine creates one instance per instrument and
/// calls it in event order; everything it does goes through the context, so it stays
/// deterministic.
pub trait Strategy: Send {
    /// Called once before the first bar.
    fn on_start(&mut self, _ctx: &mut StrategyContext<'_>) {}
    /// Called for every bar of the strategy's instrument, after resting orders were matched
    /// against it.
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar);
    /// Called for every scan row of the strategy's instrument in a paper run fed by scans (see
    /// [`crate::Engine::on_scan`]): `bar` is flat at the row's price, `fields` are the row's
    /// numeric fields. By default the strategy sees only the bar.
    fn on_scan(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar, fields: &ScanFields) {
        let _ = fields;
        self.on_bar(ctx, bar);
    }
    /// Called after each fill of one of the strategy's orders.
    fn on_fill(&mut self, _ctx: &mut StrategyContext<'_>, _fill: &Fill) {}
    /// Called once after the last bar; orders submitted here are cancelled at the end of the run.
    fn on_stop(&mut self, _ctx: &mut StrategyContext<'_>) {}
}

/// What a strategy asks for; the engine assigns the id, checks risk and sends it to the venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    /// Buy or sell.
    pub side: OrderSide,
    /// Market, limit, stop or stop-limit.
    pub order_type: OrderType,
    /// Quantity to trade.
    pub quantity: Quantity,
    /// Limit price, for limit kinds.
    pub price: Option<Price>,
    /// Trigger price, for stop kinds.
    pub trigger_price: Option<Price>,
    /// How long it stays working (default GTC).
    pub time_in_force: TimeInForce,
    /// Whether it may only reduce the position.
    pub reduce_only: bool,
}

impl OrderRequest {
    /// A market order, good till cancelled.
    pub fn market(side: OrderSide, quantity: Quantity) -> Self {
        Self {
            side,
            order_type: OrderType::Market,
            quantity,
            price: None,
            trigger_price: None,
            time_in_force: TimeInForce::Gtc,
            reduce_only: false,
        }
    }

    /// A limit order at `price`.
    pub fn limit(side: OrderSide, quantity: Quantity, price: Price) -> Self {
        Self {
            order_type: OrderType::Limit,
            price: Some(price),
            ..Self::market(side, quantity)
        }
    }

    /// A stop (market) order triggered at `trigger`.
    pub fn stop(side: OrderSide, quantity: Quantity, trigger: Price) -> Self {
        Self {
            order_type: OrderType::Stop,
            trigger_price: Some(trigger),
            ..Self::market(side, quantity)
        }
    }

    /// A stop-limit order: a limit at `price` once `trigger` trades.
    pub fn stop_limit(side: OrderSide, quantity: Quantity, trigger: Price, price: Price) -> Self {
        Self {
            order_type: OrderType::StopLimit,
            trigger_price: Some(trigger),
            price: Some(price),
            ..Self::market(side, quantity)
        }
    }

    /// The same request with another time in force.
    pub fn time_in_force(mut self, tif: TimeInForce) -> Self {
        self.time_in_force = tif;
        self
    }

    /// The same request, reduce-only.
    pub fn reduce_only(mut self) -> Self {
        self.reduce_only = true;
        self
    }
}

/// A request from a strategy, queued until the engine processes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Submit {
        id: OrderId,
        instrument: InstrumentId,
        request: OrderRequest,
    },
    Cancel(OrderId),
    CancelAll(InstrumentId),
}

/// The strategy's view of the world at one event: its instrument, position and the time, and
/// the way to submit and cancel orders.
pub struct StrategyContext<'a> {
    pub(crate) ts: UnixNanos,
    pub(crate) instrument: &'a Instrument,
    pub(crate) position: &'a Position,
    pub(crate) open_orders: usize,
    pub(crate) commands: &'a mut Vec<Command>,
    pub(crate) next_order_id: &'a mut u64,
}

impl StrategyContext<'_> {
    /// Event time.
    pub fn ts(&self) -> UnixNanos {
        self.ts
    }

    /// The instrument of the bar being processed.
    pub fn instrument(&self) -> &Instrument {
        self.instrument
    }

    /// The current netting position (after any fills already applied).
    pub fn position(&self) -> &Position {
        self.position
    }

    /// Signed net quantity, raw at 10^-9.
    pub fn net_raw(&self) -> i64 {
        self.position.net_raw()
    }

    /// Orders of this instrument still working at the venue when the callback started.
    pub fn open_orders(&self) -> usize {
        self.open_orders
    }

    /// Queues an order; returns the id it will carry.
    pub fn submit(&mut self, request: OrderRequest) -> OrderId {
        *self.next_order_id += 1;
        let id = OrderId(*self.next_order_id);
        self.commands.push(Command::Submit {
            id,
            instrument: self.instrument.id,
            request,
        });
        id
    }

    /// Queues a market buy of `quantity`; returns the id it will carry.
    pub fn buy(&mut self, quantity: Quantity) -> OrderId {
        self.submit(OrderRequest::market(OrderSide::Buy, quantity))
    }

    /// Queues a market sell of `quantity`; returns the id it will carry.
    pub fn sell(&mut self, quantity: Quantity) -> OrderId {
        self.submit(OrderRequest::market(OrderSide::Sell, quantity))
    }

    /// Queues a market order that flattens the current position, if any.
    pub fn close_position(&mut self) -> Option<OrderId> {
        let side = self.position.side()?.opposite();
        let quantity = self.position.quantity();
        Some(self.submit(OrderRequest::market(side, quantity)))
    }

    /// Cancels working order `id` (nothing if it is no longer working).
    pub fn cancel(&mut self, id: OrderId) {
        self.commands.push(Command::Cancel(id));
    }

    /// Cancels every working order of this instrument.
    pub fn cancel_all(&mut self) {
        self.commands.push(Command::CancelAll(self.instrument.id));
    }
}
