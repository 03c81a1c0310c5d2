//! The [`Strategy`] trait and the [`StrategyContext`] a strategy trades through: the contract
//! every way of writing a strategy uses (built-ins, users' Rust crates, the Python package and
//! sandboxed scripts are thin layers over it).
//!
//! A strategy is called in event order with a context that shows the world at that event
//! (time, instruments, positions, cash, equity, working orders) and queues orders and
//! cancellations; the engine applies them when the callback returns, in the order queued.
//! Everything goes through the context, so a strategy stays deterministic.
//!
//! ```
//! use tradeloom_core::{Bar, Price, Quantity};
//! use tradeloom_engine::{Bracket, OrderRequest, StopLoss, Strategy, StrategyContext};
//!
//! /// Buys 10 with a limit one tick under each close while flat, with a take-profit 2 % above
//! /// and a stop-loss 1 % below the limit.
//! struct Dip;
//!
//! impl Strategy for Dip {
//!     fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
//!         if !ctx.position().is_flat() || ctx.open_orders().next().is_some() {
//!             return;
//!         }
//!         let tick = ctx.instrument().tick_size.raw();
//!         let precision = bar.close.precision();
//!         let limit = Price::from_raw(bar.close.raw() - tick, precision);
//!         let pct = |n: i64| Price::from_raw(limit.raw() / 100 * n / tick * tick, precision);
//!         let quantity = Quantity::from_int(10, ctx.instrument().size_precision);
//!         ctx.bracket(Bracket {
//!             entry: OrderRequest::buy(quantity).with_limit(limit),
//!             take_profit: Some(pct(102)),
//!             stop_loss: Some(StopLoss::Stop(pct(99))),
//!         });
//!     }
//! }
//! ```

use crate::engine::Working;
use crate::scan::ScanFields;
use tradeloom_core::{
    Account, Bar, Fill, Instrument, InstrumentId, Money, Order, OrderId, OrderLinks, OrderSide,
    OrderType, Position, Price, Quantity, Symbol, TimeInForce, Trail, UnixNanos,
};

/// A trading strategy. The engine calls it in event order; everything it does goes through the
/// [`StrategyContext`], so it stays deterministic.
///
/// A strategy runs in one of two modes, chosen by whoever builds the engine (see
/// [`crate::Strategies`]):
///
/// * **per instrument** — one instance per instrument of the run, each seeing only the bars of
///   its instrument (the built-in `sma_cross` and friends);
/// * **portfolio** — one instance for the whole run, seeing the bars of every instrument in
///   event order (bars of one timestamp in instrument order) and trading any of them; the
///   bar's instrument is `bar.instrument` (and [`StrategyContext::instrument`]).
pub trait Strategy: Send {
    /// Called once before the first bar (in portfolio mode the context's instrument is the
    /// run's first).
    fn on_start(&mut self, _ctx: &mut StrategyContext<'_>) {}
    /// Called for every bar the strategy sees, after working orders were matched against it.
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar);
    /// Called for every scan row of the strategy's instrument in a paper run fed by scans (see
    /// [`crate::Engine::on_scan`]): `bar` is flat at the row's price, `fields` are the row's
    /// numeric fields. By default the strategy sees only the bar.
    fn on_scan(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar, fields: &ScanFields) {
        let _ = fields;
        self.on_bar(ctx, bar);
    }
    /// Called after each fill of one of the strategy's orders (bracket legs included); the
    /// context's instrument is the fill's.
    fn on_fill(&mut self, _ctx: &mut StrategyContext<'_>, _fill: &Fill) {}
    /// Called once after the last bar; orders submitted here are cancelled at the end of the run.
    fn on_stop(&mut self, _ctx: &mut StrategyContext<'_>) {}
}

/// What a strategy asks for; the engine assigns the id, checks it and risk, and sends it to the
/// venue. Build one with [`OrderRequest::buy`]/[`OrderRequest::sell`] (market) and refine it
/// with [`OrderRequest::with_limit`], [`OrderRequest::with_stop`], …:
///
/// ```
/// # use tradeloom_core::{Price, Quantity, TimeInForce, InstrumentId};
/// # use tradeloom_engine::OrderRequest;
/// let q = Quantity::from_int(5, 0);
/// let p = Price::parse("101.50", 2).unwrap();
/// // A sell stop-limit on instrument 1, good for the day, reduce-only.
/// let r = OrderRequest::sell(q)
///     .with_stop(Price::parse("102", 2).unwrap())
///     .with_limit(p)
///     .tif(TimeInForce::Day)
///     .reduce_only()
///     .on(InstrumentId(1));
/// assert_eq!(r.order_type, tradeloom_core::OrderType::StopLimit);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    /// Buy or sell.
    pub side: OrderSide,
    /// Market, limit, stop, stop-limit or trailing stop.
    pub order_type: OrderType,
    /// Quantity to trade, at the instrument's size precision.
    pub quantity: Quantity,
    /// Limit price, for limit kinds.
    pub price: Option<Price>,
    /// Trigger price, for stop and stop-limit orders (a trailing stop's is computed).
    pub trigger_price: Option<Price>,
    /// How long it stays working (default GTC).
    pub time_in_force: TimeInForce,
    /// Whether it may only reduce the position.
    pub reduce_only: bool,
    /// The trail of a trailing stop.
    pub trail: Option<Trail>,
    /// The instrument; `None` is the instrument of the event being processed.
    pub instrument: Option<InstrumentId>,
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
            trail: None,
            instrument: None,
        }
    }

    /// A market buy of `quantity` (refine it with [`OrderRequest::with_limit`], …).
    pub fn buy(quantity: Quantity) -> Self {
        Self::market(OrderSide::Buy, quantity)
    }

    /// A market sell of `quantity`.
    pub fn sell(quantity: Quantity) -> Self {
        Self::market(OrderSide::Sell, quantity)
    }

    /// A limit order at `price`.
    pub fn limit(side: OrderSide, quantity: Quantity, price: Price) -> Self {
        Self::market(side, quantity).with_limit(price)
    }

    /// A stop (market) order triggered at `trigger`.
    pub fn stop(side: OrderSide, quantity: Quantity, trigger: Price) -> Self {
        Self::market(side, quantity).with_stop(trigger)
    }

    /// A stop-limit order: a limit at `price` once `trigger` trades.
    pub fn stop_limit(side: OrderSide, quantity: Quantity, trigger: Price, price: Price) -> Self {
        Self::market(side, quantity)
            .with_stop(trigger)
            .with_limit(price)
    }

    /// A trailing stop: its trigger starts `trail` away from the instrument's last price (a
    /// bracket's stop-loss: from the entry's fill price) and follows the best price bar by bar.
    pub fn trailing_stop(side: OrderSide, quantity: Quantity, trail: Trail) -> Self {
        Self {
            order_type: OrderType::TrailingStop,
            trail: Some(trail),
            ..Self::market(side, quantity)
        }
    }

    /// The order with optional limit and stop prices, as the keyword arguments of the Python
    /// API give them: neither is a market order, a limit a limit order, a stop a stop order,
    /// both a stop-limit.
    pub fn with_prices(mut self, limit: Option<Price>, stop: Option<Price>) -> Self {
        if let Some(p) = limit {
            self = self.with_limit(p);
        }
        if let Some(t) = stop {
            self = self.with_stop(t);
        }
        self
    }

    /// The same order with limit price `price` (a market order becomes a limit, a stop a
    /// stop-limit).
    pub fn with_limit(mut self, price: Price) -> Self {
        self.price = Some(price);
        self.order_type = match self.order_type {
            OrderType::Stop | OrderType::StopLimit => OrderType::StopLimit,
            _ => OrderType::Limit,
        };
        self
    }

    /// The same order with trigger price `trigger` (a market order becomes a stop, a limit a
    /// stop-limit).
    pub fn with_stop(mut self, trigger: Price) -> Self {
        self.trigger_price = Some(trigger);
        self.order_type = match self.order_type {
            OrderType::Limit | OrderType::StopLimit => OrderType::StopLimit,
            _ => OrderType::Stop,
        };
        self
    }

    /// The same request with another time in force.
    pub fn tif(mut self, tif: TimeInForce) -> Self {
        self.time_in_force = tif;
        self
    }

    /// The same request with another time in force (an alias of [`OrderRequest::tif`]).
    pub fn time_in_force(self, tif: TimeInForce) -> Self {
        self.tif(tif)
    }

    /// The same request, reduce-only.
    pub fn reduce_only(mut self) -> Self {
        self.reduce_only = true;
        self
    }

    /// The same request on instrument `instrument` (portfolio strategies).
    pub fn on(mut self, instrument: InstrumentId) -> Self {
        self.instrument = Some(instrument);
        self
    }
}

/// The stop-loss leg of a [`Bracket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopLoss {
    /// A stop (market) order at this trigger.
    Stop(Price),
    /// A trailing stop whose trigger starts from the entry's fill price.
    Trailing(Trail),
}

/// An entry with contingent exits. When the entry fills, the engine submits for the filled
/// quantity a reduce-only take-profit limit and a reduce-only stop-loss on the opposite side,
/// both GTC and linked as one-cancels-other: a fill of one reduces the other by the same
/// quantity and cancels it once nothing remains. An entry that ends without a fill takes its
/// legs with it. Prices are checked when the bracket is submitted: for a long (buy) entry
/// `stop_loss < reference < take_profit`, mirrored for a short, where the reference is the
/// entry's limit (or trigger) price, or the last price for a market entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bracket {
    /// The entry: a market, limit, stop or stop-limit order.
    pub entry: OrderRequest,
    /// The take-profit limit price.
    pub take_profit: Option<Price>,
    /// The stop-loss.
    pub stop_loss: Option<StopLoss>,
}

/// The ids a [`Bracket`]'s orders will carry (the legs' only once the entry fills).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BracketIds {
    /// The entry.
    pub entry: OrderId,
    /// The take-profit leg, if asked for.
    pub take_profit: Option<OrderId>,
    /// The stop-loss leg, if asked for.
    pub stop_loss: Option<OrderId>,
}

/// A request from a strategy, queued until the engine processes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Submit {
        id: OrderId,
        instrument: InstrumentId,
        request: OrderRequest,
        /// A bracket entry's legs (boxed: rare, and large next to a plain order).
        links: Option<Box<OrderLinks>>,
    },
    Cancel(OrderId),
    CancelAll(InstrumentId),
    /// Ends the run as failed (see [`StrategyContext::fail`]).
    Fail(String),
}

/// Something that names an instrument of the run: its [`InstrumentId`], its [`Symbol`], its
/// symbol as text, or the [`Instrument`] itself.
pub trait InstrumentKey {
    /// The instrument's index among `instruments`, if it is one of them.
    fn index_in(&self, instruments: &[Instrument]) -> Option<usize>;
}

impl InstrumentKey for InstrumentId {
    fn index_in(&self, instruments: &[Instrument]) -> Option<usize> {
        (self.index() < instruments.len()).then_some(self.index())
    }
}

impl InstrumentKey for &str {
    fn index_in(&self, instruments: &[Instrument]) -> Option<usize> {
        instruments.iter().position(|i| i.symbol.as_str() == *self)
    }
}

impl InstrumentKey for Symbol {
    fn index_in(&self, instruments: &[Instrument]) -> Option<usize> {
        instruments.iter().position(|i| i.symbol == *self)
    }
}

impl InstrumentKey for &Instrument {
    fn index_in(&self, instruments: &[Instrument]) -> Option<usize> {
        self.id.index_in(instruments)
    }
}

/// The strategy's view of the world at one event, and the way to act on it. Prices,
/// quantities and money are fixed-point; nothing here allocates.
///
/// "The instrument" below is the instrument of the event being processed (the bar's, the
/// fill's). Orders queued during a callback are applied when it returns, in order; until then
/// they are not among [`StrategyContext::open_orders`] and have not changed any position.
pub struct StrategyContext<'a> {
    pub(crate) ts: UnixNanos,
    pub(crate) current: usize,
    pub(crate) instruments: &'a [Instrument],
    pub(crate) positions: &'a [Position],
    pub(crate) marks: &'a [Option<Price>],
    pub(crate) account: &'a Account,
    pub(crate) working: &'a [Working],
    pub(crate) commands: &'a mut Vec<Command>,
    pub(crate) next_order_id: &'a mut u64,
}

impl<'a> StrategyContext<'a> {
    /// A context for driving a strategy outside an engine (unit tests of a strategy): the
    /// world is `instruments` with `positions` (one per instrument, same order), their last
    /// prices `marks` and `account`, no working orders; the event is on `instruments[current]`
    /// at `ts`. What the strategy queues lands in `commands` (see [`QueuedOrders`]).
    #[allow(clippy::too_many_arguments)]
    pub fn detached(
        ts: UnixNanos,
        current: InstrumentId,
        instruments: &'a [Instrument],
        positions: &'a [Position],
        marks: &'a [Option<Price>],
        account: &'a Account,
        commands: &'a mut QueuedOrders,
    ) -> Self {
        Self {
            ts,
            current: current.index(),
            instruments,
            positions,
            marks,
            account,
            working: &[],
            commands: &mut commands.commands,
            next_order_id: &mut commands.next_id,
        }
    }

    /// A context on one instrument with `position`, no last price, 100,000 USD of cash and no
    /// working orders, queueing into `commands` (the built-ins' unit tests).
    #[cfg(test)]
    pub(crate) fn for_test(
        ts: UnixNanos,
        instrument: &'a Instrument,
        position: &'a Position,
        commands: &'a mut Vec<Command>,
        next_order_id: &'a mut u64,
    ) -> Self {
        let cash = Money::parse("100000", tradeloom_core::Currency::USD)
            .unwrap_or(Money::zero(tradeloom_core::Currency::USD));
        let account: &'static Account = Box::leak(Box::new(Account::new(
            tradeloom_core::AccountKind::Margin,
            cash,
        )));
        Self {
            ts,
            current: 0,
            instruments: std::slice::from_ref(instrument),
            positions: std::slice::from_ref(position),
            marks: &[None],
            account,
            working: &[],
            commands,
            next_order_id,
        }
    }

    /// Event time.
    pub fn ts(&self) -> UnixNanos {
        self.ts
    }

    /// The instrument of the event being processed.
    pub fn instrument(&self) -> &Instrument {
        &self.instruments[self.current]
    }

    /// Every instrument of the run, in index order (instrument `i` has id `i`).
    pub fn instruments(&self) -> &[Instrument] {
        self.instruments
    }

    /// The instrument `key` names (an id or a symbol), if it is one of the run's.
    pub fn lookup(&self, key: impl InstrumentKey) -> Option<&Instrument> {
        key.index_in(self.instruments).map(|i| &self.instruments[i])
    }

    /// The netting position of the instrument (after any fills already applied).
    pub fn position(&self) -> &Position {
        &self.positions[self.current]
    }

    /// The position of the instrument `key` names, if it is one of the run's.
    pub fn position_of(&self, key: impl InstrumentKey) -> Option<&Position> {
        key.index_in(self.instruments).map(|i| &self.positions[i])
    }

    /// Signed net quantity of the instrument's position, raw at 10^-9.
    pub fn net_raw(&self) -> i64 {
        self.positions[self.current].net_raw()
    }

    /// The last price (close of the last bar) of the instrument `key` names; `None` before its
    /// first bar or for an unknown instrument.
    pub fn last_price(&self, key: impl InstrumentKey) -> Option<Price> {
        key.index_in(self.instruments).and_then(|i| self.marks[i])
    }

    /// Cash now (fees and realised PnL included).
    pub fn cash(&self) -> Money {
        self.account.cash()
    }

    /// Cash plus every open position marked at its instrument's last price, as the engine marks
    /// equity at each timestamp's close (a sum that overflowed would saturate; it cannot within
    /// the quantities and prices the engine accepts).
    pub fn equity(&self) -> Money {
        let mut raw = self.account.cash().raw();
        for (pos, mark) in self.positions.iter().zip(self.marks) {
            if let (Some(mark), false) = (mark, pos.is_flat()) {
                let value = pos.market_value(*mark).map_or(0, |m| m.raw());
                raw = raw.saturating_add(value);
            }
        }
        Money::from_raw(raw, self.account.currency())
    }

    /// The orders working at the venue when the callback started, every instrument, in
    /// submission order: id, instrument, side, type, quantity, filled, prices, time in force
    /// and links are fields of [`Order`].
    pub fn open_orders(&self) -> impl Iterator<Item = &Order> + '_ {
        self.working.iter().map(|w| &w.order)
    }

    /// The working orders of the instrument `key` names.
    pub fn open_orders_of(&self, key: impl InstrumentKey) -> impl Iterator<Item = &Order> + '_ {
        let id = key
            .index_in(self.instruments)
            .map(|i| self.instruments[i].id);
        self.open_orders().filter(move |o| Some(o.instrument) == id)
    }

    /// The id the next order queued in this callback will carry (orders are numbered in the
    /// order they are queued: a bracket takes the entry's, then its take-profit's, then its
    /// stop-loss's). A layer that queues orders on a strategy's behalf (the Python package)
    /// hands ids out before replaying the orders here.
    pub fn next_order_id(&self) -> OrderId {
        OrderId(*self.next_order_id + 1)
    }

    /// Ends the run as failed with `reason`: the engine stops when it applies this callback's
    /// queue (what was queued before is applied, nothing after) and returns
    /// [`crate::EngineError::Strategy`]; a run folder is marked failed, its journal's
    /// `run_failed` event carrying the reason. The strategy may still be called for the rest
    /// of the event being processed (`on_bar` after a failing `on_fill` of the same bar).
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.commands.push(Command::Fail(reason.into()));
    }

    fn reserve_id(&mut self) -> OrderId {
        *self.next_order_id += 1;
        OrderId(*self.next_order_id)
    }

    /// Queues an order (on its `instrument`, else this one); returns the id it will carry.
    /// An order the engine cannot accept is rejected with a reason in the journal.
    pub fn submit(&mut self, request: OrderRequest) -> OrderId {
        let id = self.reserve_id();
        let instrument = request
            .instrument
            .unwrap_or(self.instruments[self.current].id);
        self.commands.push(Command::Submit {
            id,
            instrument,
            request,
            links: None,
        });
        id
    }

    /// Queues a market buy of `quantity` of the instrument; returns the id it will carry.
    pub fn buy(&mut self, quantity: Quantity) -> OrderId {
        self.submit(OrderRequest::buy(quantity))
    }

    /// Queues a market sell of `quantity` of the instrument; returns the id it will carry.
    pub fn sell(&mut self, quantity: Quantity) -> OrderId {
        self.submit(OrderRequest::sell(quantity))
    }

    /// Queues a bracket (see [`Bracket`]); returns the ids its orders will carry.
    pub fn bracket(&mut self, bracket: Bracket) -> BracketIds {
        let entry = self.reserve_id();
        let take_profit = bracket.take_profit.map(|_| self.reserve_id());
        let stop_loss = bracket.stop_loss.map(|_| self.reserve_id());
        let (stop_loss_price, stop_loss_trail) = match bracket.stop_loss {
            Some(StopLoss::Stop(p)) => (Some(p), None),
            Some(StopLoss::Trailing(t)) => (None, Some(t)),
            None => (None, None),
        };
        let request = bracket.entry;
        let instrument = request
            .instrument
            .unwrap_or(self.instruments[self.current].id);
        self.commands.push(Command::Submit {
            id: entry,
            instrument,
            request,
            links: Some(Box::new(OrderLinks {
                trail: request.trail,
                take_profit_id: take_profit,
                take_profit: bracket.take_profit,
                stop_loss_id: stop_loss,
                stop_loss: stop_loss_price,
                stop_loss_trail,
                ..OrderLinks::default()
            })),
        });
        BracketIds {
            entry,
            take_profit,
            stop_loss,
        }
    }

    /// Queues a market order that flattens the instrument's position, if any.
    pub fn close_position(&mut self) -> Option<OrderId> {
        let id = self.instruments[self.current].id;
        self.close_position_of(id)
    }

    /// Queues a market order that flattens the position of the instrument `key` names, if
    /// there is one.
    pub fn close_position_of(&mut self, key: impl InstrumentKey) -> Option<OrderId> {
        let i = key.index_in(self.instruments)?;
        let position = &self.positions[i];
        let side = position.side()?.opposite();
        let request = OrderRequest::market(side, position.quantity()).on(self.instruments[i].id);
        Some(self.submit(request))
    }

    /// Cancels order `id`: a working order, or a bracket leg not yet activated (nothing if it
    /// is no longer working).
    pub fn cancel(&mut self, id: OrderId) {
        self.commands.push(Command::Cancel(id));
    }

    /// Cancels every working order of the instrument.
    pub fn cancel_all(&mut self) {
        self.commands
            .push(Command::CancelAll(self.instruments[self.current].id));
    }

    /// Cancels every working order of the instrument `key` names.
    pub fn cancel_all_of(&mut self, key: impl InstrumentKey) {
        if let Some(i) = key.index_in(self.instruments) {
            self.commands
                .push(Command::CancelAll(self.instruments[i].id));
        }
    }
}

/// What a strategy driven by [`StrategyContext::detached`] queued.
#[derive(Debug, Default)]
pub struct QueuedOrders {
    commands: Vec<Command>,
    next_id: u64,
}

impl QueuedOrders {
    /// The orders queued so far (id, instrument, request), in order; cancellations are left
    /// out.
    pub fn submitted(&self) -> impl Iterator<Item = (OrderId, InstrumentId, &OrderRequest)> {
        self.commands.iter().filter_map(|c| match c {
            Command::Submit {
                id,
                instrument,
                request,
                ..
            } => Some((*id, *instrument, request)),
            _ => None,
        })
    }

    /// The ids whose cancellation was asked for (`cancel`), in order.
    pub fn cancelled(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.commands.iter().filter_map(|c| match c {
            Command::Cancel(id) => Some(*id),
            _ => None,
        })
    }

    /// Forgets what was queued (ids keep counting).
    pub fn clear(&mut self) {
        self.commands.clear();
    }
}
