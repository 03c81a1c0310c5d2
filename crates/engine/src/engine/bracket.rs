//! Contingent orders: bracket legs activated by their entry's fill and linked one-cancels-other,
//! and trailing stops whose trigger follows the price. Only runs that use them pay for any of
//! this: the engine looks here only when an order carries links.

use tradeloom_core::{
    Bar, Event, Instrument, Order, OrderId, OrderLinks, OrderSide, OrderType, Price, Quantity,
    UnixNanos,
};

use super::{Action, Engine, EngineError, PendingBracket, PendingStop};
use crate::sink::Sink;
use crate::strategy::OrderRequest;
use crate::venue::Outcome;

impl Engine {
    /// Registers the legs of a bracket entry about to be submitted.
    pub(super) fn register_bracket(&mut self, entry: OrderId, links: &OrderLinks) {
        let stop = match (links.stop_loss, links.stop_loss_trail) {
            (Some(p), _) => Some(PendingStop::Stop(p)),
            (None, Some(t)) => Some(PendingStop::Trailing(t)),
            (None, None) => None,
        };
        self.pending.push(PendingBracket {
            entry,
            take_profit: links.take_profit_id.zip(links.take_profit),
            stop_loss: links.stop_loss_id.zip(stop),
        });
    }

    /// Forgets the legs of entry `entry` (it ended without a fill).
    pub(super) fn drop_pending(&mut self, entry: OrderId) {
        self.pending.retain(|p| p.entry != entry);
    }

    /// Cancels a leg that is not active yet (its entry still works): it will not be submitted.
    pub(super) fn drop_pending_leg(&mut self, leg: OrderId) {
        for p in &mut self.pending {
            if p.take_profit.is_some_and(|(id, _)| id == leg) {
                p.take_profit = None;
            }
            if p.stop_loss.is_some_and(|(id, _)| id == leg) {
                p.stop_loss = None;
            }
        }
    }

    /// Why the legs of a bracket `entry` cannot work, naming the field; `None` when they can.
    pub(super) fn bracket_problem(
        &self,
        entry: &Order,
        inst: &Instrument,
        links: &OrderLinks,
    ) -> Option<String> {
        let tick = inst.tick_size.raw();
        let off_grid = |p: Price| tick > 0 && p.raw() % tick != 0;
        for (field, price) in [
            ("take_profit", links.take_profit),
            ("stop_loss", links.stop_loss),
        ] {
            let Some(p) = price else { continue };
            if !p.is_positive() {
                return Some(format!("bracket {field} must be positive, got {p}"));
            }
            if !p.fits_precision(inst.price_precision) || off_grid(p) {
                return Some(format!(
                    "bracket {field} {p} is not a multiple of the tick size {} of {}",
                    inst.tick_size, inst.symbol
                ));
            }
        }
        if let Some(problem) = links.stop_loss_trail.and_then(|t| t.problem()) {
            return Some(format!("bracket stop_loss: {problem}"));
        }
        let (reference, what) = match (entry.price, entry.trigger_price) {
            (Some(p), _) => (Some(p), "limit price"),
            (None, Some(t)) => (Some(t), "trigger price"),
            (None, None) => (self.marks[inst.id.index()], "last price"),
        };
        let long = entry.side == OrderSide::Buy;
        let (above, below) = if long {
            ("above", "below")
        } else {
            ("below", "above")
        };
        let beyond = |p: Price, r: Price| if long { p > r } else { p < r };
        if let Some(r) = reference {
            if let Some(tp) = links.take_profit
                && !beyond(tp, r)
            {
                return Some(format!(
                    "bracket take_profit {tp} must be {above} the entry's {what} {r} for a {} entry",
                    entry.side.as_str()
                ));
            }
            if let Some(sl) = links.stop_loss
                && !beyond(r, sl)
            {
                return Some(format!(
                    "bracket stop_loss {sl} must be {below} the entry's {what} {r} for a {} entry",
                    entry.side.as_str()
                ));
            }
        }
        if let (Some(tp), Some(sl)) = (links.take_profit, links.stop_loss)
            && !beyond(tp, sl)
        {
            return Some(format!(
                "bracket take_profit {tp} must be {above} stop_loss {sl} for a {} entry",
                entry.side.as_str()
            ));
        }
        None
    }

    /// Submits the legs of bracket entry `entry` (instrument `i`, side `side`) that filled
    /// `quantity` at `price`: reduce-only, GTC, each the other's OCO partner. `same_bar`: the
    /// entry was a market order filled at the bar's open, so the legs are matched against the
    /// rest of that bar too.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn activate_bracket<S: Sink>(
        &mut self,
        bracket: PendingBracket,
        i: usize,
        side: OrderSide,
        quantity: Quantity,
        price: Price,
        ts: UnixNanos,
        same_bar: bool,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let exit = side.opposite();
        let tp_id = bracket.take_profit.map(|(id, _)| id);
        let sl_id = bracket.stop_loss.map(|(id, _)| id);
        if let Some((id, limit)) = bracket.take_profit {
            let request = OrderRequest::limit(exit, quantity, limit).reduce_only();
            let links = OrderLinks {
                parent_id: Some(bracket.entry),
                oco_id: sl_id,
                ..OrderLinks::default()
            };
            self.submit(id, i, request, links.boxed(), ts, None, sink, false)?;
        }
        if let Some((id, stop)) = bracket.stop_loss {
            let (request, trail) = match stop {
                PendingStop::Stop(trigger) => (OrderRequest::stop(exit, quantity, trigger), None),
                PendingStop::Trailing(trail) => {
                    // A trailing leg trails from the entry's fill price.
                    let mut r = OrderRequest::trailing_stop(exit, quantity, trail);
                    r.trigger_price = Some(price);
                    (r, Some(trail))
                }
            };
            let links = OrderLinks {
                parent_id: Some(bracket.entry),
                oco_id: tp_id,
                trail,
                ..OrderLinks::default()
            };
            self.submit(
                id,
                i,
                request.reduce_only(),
                links.boxed(),
                ts,
                None,
                sink,
                false,
            )?;
        }
        if same_bar {
            for id in [tp_id, sl_id].into_iter().flatten() {
                if self.working.iter().any(|w| w.order.id == id) {
                    self.same_bar.push(id);
                }
            }
        }
        Ok(())
    }

    /// The other leg of a filled bracket leg loses the quantity that filled; once nothing
    /// remains it is cancelled (reason `oco`).
    pub(super) fn reduce_oco<S: Sink>(
        &mut self,
        sibling: OrderId,
        filled: Quantity,
        ts: UnixNanos,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let Some(idx) = self.working.iter().position(|w| w.order.id == sibling) else {
            return Ok(());
        };
        if self.working[idx].order.remaining() <= filled {
            return self.cancel_where(ts, "oco", sink, |o| o.id == sibling);
        }
        let order = &mut self.working[idx].order;
        order.reduce_quantity(filled)?;
        sink.on_event(&Event::OrderUpdated {
            ts,
            order_id: sibling,
            quantity: order.quantity,
            trigger_price: order.trigger_price,
            reason: "oco",
        });
        Ok(())
    }

    /// A trailing stop's trigger and best price when it is submitted: it trails from its
    /// request's `trigger_price` if given (a bracket leg: the entry's fill price), else from the
    /// instrument's last price. An error says why it cannot work.
    pub(super) fn trailing_start(
        &self,
        i: usize,
        request: &OrderRequest,
        links: &OrderLinks,
    ) -> Result<(Price, i64), String> {
        let Some(trail) = links.trail.or(request.trail) else {
            return Err("a trailing stop needs trail.offset or trail.bps".to_string());
        };
        if let Some(problem) = trail.problem() {
            return Err(problem);
        }
        let inst = &self.instruments[i];
        let Some(from) = request.trigger_price.or(self.marks[i]) else {
            return Err(format!(
                "a trailing stop trails from the last price, and {} has none yet (no bar)",
                inst.symbol
            ));
        };
        let from = from.with_precision(inst.price_precision);
        Ok((
            trail.trigger(request.side, from, inst.tick_size),
            from.raw(),
        ))
    }

    /// After a bar the trailing stop at `idx` did not reach: its best price takes in the bar's
    /// extreme and its trigger follows (only toward the market), journaled as `trailing`.
    pub(super) fn trail<S: Sink>(
        &mut self,
        idx: usize,
        bar: &Bar,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let inst = &self.instruments[bar.instrument.index()];
        let (precision, tick) = (inst.price_precision, inst.tick_size);
        let w = &mut self.working[idx];
        let Some(trail) = w.order.links().trail else {
            return Ok(());
        };
        let side = w.order.side;
        w.best = match side {
            OrderSide::Sell => w.best.max(bar.high.raw()),
            OrderSide::Buy => w.best.min(bar.low.raw()),
        };
        let trigger = trail.trigger(side, Price::from_raw(w.best, precision), tick);
        let moved = w.order.trigger_price.is_none_or(|old| match side {
            OrderSide::Sell => trigger.raw() > old.raw(),
            OrderSide::Buy => trigger.raw() < old.raw(),
        });
        if moved {
            w.order.set_trigger(trigger)?;
            sink.on_event(&Event::OrderUpdated {
                ts: bar.ts,
                order_id: w.order.id,
                quantity: w.order.quantity,
                trigger_price: Some(trigger),
                reason: "trailing",
            });
        }
        Ok(())
    }

    /// When both legs of a bracket would fill on the same bar, keeps one: the leg the bar's
    /// open already reached fills there; otherwise the stop-loss (the adverse assumption: the
    /// bar's range contains both and its path within cannot be known).
    pub(super) fn resolve_oco_conflicts(&mut self, open: Price) {
        for a in 0..self.actions.len() {
            let (id_a, Action::Outcome(Outcome::Fill { price: price_a, .. })) = self.actions[a]
            else {
                continue;
            };
            let Some(wa) = self.working.iter().find(|w| w.order.id == id_a) else {
                continue;
            };
            let Some(sibling) = wa.order.links().oco_id else {
                continue;
            };
            let a_is_stop = wa.order.order_type != OrderType::Limit;
            let Some(b) = self.actions.iter().position(|(id, action)| {
                *id == sibling && matches!(action, Action::Outcome(Outcome::Fill { .. }))
            }) else {
                continue;
            };
            let Action::Outcome(Outcome::Fill { price: price_b, .. }) = self.actions[b].1 else {
                continue;
            };
            let a_wins = if price_a == open {
                true
            } else if price_b == open {
                false
            } else {
                a_is_stop
            };
            let loser = if a_wins { b } else { a };
            self.actions[loser].1 = Action::Outcome(Outcome::Rest);
        }
    }
}
