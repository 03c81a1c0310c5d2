//! Hooks of paper runs: the kill switch polled while the feed is quiet, orders refused on data
//! older than the run allows, orders from outside the strategies (a workflow's `order` node),
//! and the engine's state for a run's snapshot.

use tradeloom_core::{InstrumentId, Money, Order, OrderId, Position, Price, UnixNanos};

use super::{Engine, EngineError};
use crate::sink::Sink;
use crate::strategy::OrderRequest;

/// The engine's state between two events, for a paper run's `state/snapshot.json`.
#[derive(Clone, Debug)]
pub struct EngineState {
    /// The time of the last event processed (`None` before the first).
    pub ts: Option<UnixNanos>,
    /// Cash now.
    pub cash: Money,
    /// Cash plus every position marked at its instrument's last price.
    pub equity: Money,
    /// Every instrument's position with its last price, in instrument order.
    pub positions: Vec<(Position, Option<Price>)>,
    /// Orders still working, in submission order.
    pub working: Vec<Order>,
    /// Bars (and scan rows) processed.
    pub bars: u64,
    /// Orders submitted.
    pub orders: u64,
    /// Fills.
    pub fills: u64,
    /// Orders rejected.
    pub rejected: u64,
}

impl Engine {
    /// Asks the kill switch gate between events (a paper run's feed is quiet): an engagement
    /// is journaled at the last event's time and cancels every working order, as it would on
    /// the next bar. Does nothing before the first event.
    pub fn poll_kill_switch<S: Sink>(&mut self, sink: &mut S) -> Result<(), EngineError> {
        match self.current_ts {
            Some(ts) => self.poll_gate(ts, sink, false),
            None => Ok(()),
        }
    }

    /// The id the next order will have (the strategies' or [`Engine::submit_external`]'s).
    pub fn next_order_id(&self) -> OrderId {
        OrderId(self.next_order_id + 1)
    }

    /// Submits an order that no strategy placed (an operator's, a workflow `order` node's) at
    /// the time of the last event: numbered after the strategies' orders so far, asked of the
    /// kill switch and pre-trade risk exactly like theirs (a refusal is an `order_rejected`
    /// event, not an error), then working until a later bar fills it under the run's fill
    /// model. Returns the order's id.
    ///
    /// Errors when no event was processed yet (there is no time or price to order at) or
    /// `instrument` is not one of the run's.
    pub fn submit_external<S: Sink>(
        &mut self,
        instrument: InstrumentId,
        request: OrderRequest,
        sink: &mut S,
    ) -> Result<OrderId, EngineError> {
        let Some(ts) = self.current_ts else {
            return Err(EngineError::Config(
                "no bar was processed yet: there is no price to order at".to_string(),
            ));
        };
        if instrument.index() >= self.instruments.len() {
            return Err(EngineError::UnknownInstrument(instrument.0));
        }
        self.next_order_id += 1;
        let id = OrderId(self.next_order_id);
        self.submit(id, instrument.index(), request, None, ts, None, sink, false)?;
        Ok(id)
    }

    /// While `Some(why)`, every new order except a kill switch's or a margin call's
    /// liquidation is rejected with code `risk.stale_data` (a paper run's `max_data_age`).
    pub fn set_stale_data(&mut self, why: Option<String>) {
        self.stale_data = why;
    }

    /// The time of the last event processed (`None` before the first).
    pub fn last_ts(&self) -> Option<UnixNanos> {
        self.current_ts
    }

    /// The state now.
    pub fn state(&self) -> Result<EngineState, EngineError> {
        Ok(EngineState {
            ts: self.current_ts,
            cash: self.account.cash(),
            equity: self.equity()?,
            positions: self
                .positions
                .iter()
                .cloned()
                .zip(self.marks.iter().copied())
                .collect(),
            working: self.working.iter().map(|w| w.order.clone()).collect(),
            bars: self.bars,
            orders: self.orders,
            fills: self.fills,
            rejected: self.rejected,
        })
    }
}
