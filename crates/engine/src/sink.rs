//! [`Sink`]: where the engine reports. The run folder writer implements it; so do tests and
//! benchmarks. Called synchronously, in event order.

use tradeloom_core::{Bar, Event, Fill, Order, Price, Symbol, UnixNanos};

use crate::analysis::EquityPoint;
use crate::trade::Trade;

/// An order that reached a terminal state, for `orders.csv`.
#[derive(Clone, Debug)]
pub struct OrderRecord<'a> {
    /// The order in its terminal state.
    pub order: &'a Order,
    /// Its instrument.
    pub symbol: Symbol,
    /// Average fill price, if anything filled.
    pub avg_price: Option<Price>,
    /// When it reached the terminal state.
    pub closed_ts: UnixNanos,
    /// Why it was rejected, cancelled or expired.
    pub reason: Option<&'a str>,
}

/// Receives everything the engine reports. Every method has an empty default.
pub trait Sink {
    /// A bar the engine accepted (in time order), before anything it triggers is reported.
    #[inline]
    fn on_bar(&mut self, _bar: &Bar) {}
    /// A journal event.
    fn on_event(&mut self, _event: &Event) {}
    /// An execution.
    fn on_fill(&mut self, _fill: &Fill, _symbol: Symbol) {}
    /// An order reached a terminal state.
    fn on_order_closed(&mut self, _record: &OrderRecord<'_>) {}
    /// A round trip closed (or, at the end of the run, is still open).
    fn on_trade(&mut self, _trade: &Trade) {}
    /// Equity after the last bar of each timestamp.
    fn on_equity(&mut self, _point: &EquityPoint) {}
}

/// Discards everything (benchmarks of the engine alone).
#[derive(Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {}

/// Collects events in memory (tests).
#[derive(Debug, Default)]
pub struct VecSink {
    /// Journal events.
    pub events: Vec<Event>,
    /// Fills.
    pub fills: Vec<Fill>,
    /// Round trips.
    pub trades: Vec<Trade>,
    /// Equity points.
    pub equity: Vec<EquityPoint>,
    /// How many orders reached a terminal state.
    pub orders_closed: usize,
}

impl Sink for VecSink {
    fn on_event(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
    fn on_fill(&mut self, fill: &Fill, _symbol: Symbol) {
        self.fills.push(*fill);
    }
    fn on_order_closed(&mut self, _record: &OrderRecord<'_>) {
        self.orders_closed += 1;
    }
    fn on_trade(&mut self, trade: &Trade) {
        self.trades.push(trade.clone());
    }
    fn on_equity(&mut self, point: &EquityPoint) {
        self.equity.push(*point);
    }
}
