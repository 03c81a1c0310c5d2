//! Working orders against a bar: expiry, triggers and fills (cash accounts limited to what cash
//! and position allow), and orders leaving the book.

use tradeloom_core::{
    AccountKind, ArithmeticError, Bar, Event, Fill, Liquidity, Money, Order, OrderId, OrderSide,
    OrderStatus, OrderType, Price, Quantity, TimeInForce, UnixNanos,
};

use super::{Action, Engine, EngineError};
use crate::fill_model::intrabar_path;
use crate::risk;
use crate::sink::{OrderRecord, Sink};
use crate::venue::{self, Outcome};

impl Engine {
    /// Matches the working orders of the bar's instrument against it (then the bracket legs
    /// an entry filled at this bar's open activated, against the same bar).
    pub(super) fn match_working<S: Sink>(
        &mut self,
        bar: &Bar,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let path = intrabar_path(bar);
        self.actions.clear();
        let mut contingent = false;
        for w in &self.working {
            if w.order.instrument != bar.instrument || w.submitted_ts >= bar.ts {
                continue;
            }
            contingent |= w.order.links().oco_id.is_some();
            Self::plan(&w.order, bar, &path, &mut self.actions);
        }
        if contingent {
            self.resolve_oco_conflicts(bar.open);
        }
        self.apply_actions(bar, sink)?;
        while !self.same_bar.is_empty() {
            let ids = std::mem::take(&mut self.same_bar);
            self.actions.clear();
            for w in self.working.iter().filter(|w| ids.contains(&w.order.id)) {
                Self::plan(&w.order, bar, &path, &mut self.actions);
            }
            self.resolve_oco_conflicts(bar.open);
            self.apply_actions(bar, sink)?;
        }
        Ok(())
    }

    /// What `bar` does to working `order`, appended to `actions`.
    #[inline]
    fn plan(order: &Order, bar: &Bar, path: &[Price; 4], actions: &mut Vec<(OrderId, Action)>) {
        if order.time_in_force == TimeInForce::Day
            && bar.ts.day_index() > order.created_ts.day_index()
        {
            actions.push((order.id, Action::Expire));
            return;
        }
        let outcome = venue::match_order(order, bar, path);
        if outcome == Outcome::Rest && order.order_type == OrderType::TrailingStop {
            actions.push((order.id, Action::Trail));
        } else {
            actions.push((order.id, Action::Outcome(outcome)));
        }
        if order.time_in_force == TimeInForce::Ioc && !matches!(outcome, Outcome::Fill { .. }) {
            actions.push((order.id, Action::CancelIoc));
        }
    }

    /// Applies the actions planned for `bar`, in order (an order already gone is skipped).
    fn apply_actions<S: Sink>(&mut self, bar: &Bar, sink: &mut S) -> Result<(), EngineError> {
        let mut k = 0;
        while k < self.actions.len() {
            let (id, action) = self.actions[k];
            k += 1;
            let Some(idx) = self.working.iter().position(|w| w.order.id == id) else {
                continue;
            };
            match action {
                Action::Expire => {
                    self.working[idx].order.expire()?;
                    sink.on_event(&Event::OrderExpired {
                        ts: bar.ts,
                        order_id: id,
                    });
                    self.close_order(idx, bar.ts, Some("expired"), sink);
                }
                Action::CancelIoc => {
                    self.cancel_where(bar.ts, "ioc_unfilled", sink, |o| o.id == id)?;
                }
                Action::Trail => self.trail(idx, bar, sink)?,
                Action::Outcome(Outcome::Rest) => {}
                Action::Outcome(Outcome::Triggered) => {
                    self.working[idx].order.trigger()?;
                    sink.on_event(&Event::OrderTriggered {
                        ts: bar.ts,
                        order_id: id,
                    });
                }
                Action::Outcome(Outcome::Fill {
                    price,
                    liquidity,
                    triggered,
                }) => {
                    if triggered {
                        self.working[idx].order.trigger()?;
                        sink.on_event(&Event::OrderTriggered {
                            ts: bar.ts,
                            order_id: id,
                        });
                    }
                    // A market order filled at the open: everything else in the bar comes
                    // after it.
                    let at_open = self.working[idx].order.order_type == OrderType::Market;
                    self.fill(idx, price, liquidity, bar.ts, at_open, sink)?;
                }
            }
        }
        Ok(())
    }

    /// Fills the working order at `idx` (all of what remains, or for a reduce-only order what
    /// still reduces the position). `at_open`: a market order filled at a bar's open (a
    /// bracket entry's legs then also match the rest of that bar).
    pub(super) fn fill<S: Sink>(
        &mut self,
        idx: usize,
        price: Price,
        liquidity: Liquidity,
        ts: UnixNanos,
        at_open: bool,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let order = &self.working[idx].order;
        let i = order.instrument.index();
        let inst = &self.instruments[i];
        let side = order.side;
        let mut quantity = order.remaining();
        if order.reduce_only {
            let net = self.positions[i].net_raw();
            let reducible = if net != 0 && net.signum() != side.sign() {
                net.abs()
            } else {
                0
            };
            if reducible == 0 {
                let id = order.id;
                return self.cancel_where(ts, "reduce_only", sink, |o| o.id == id);
            }
            quantity = quantity.min(inst.quantity(reducible));
        }
        let price = match order.order_type {
            OrderType::Market | OrderType::Stop | OrderType::TrailingStop
                if liquidity == Liquidity::Taker =>
            {
                venue::slip(price, side, self.config.slippage, inst.tick_size)
            }
            _ => price,
        }
        .with_precision(inst.price_precision);
        // A cash account never shorts and never takes cash below zero, whatever the price moved
        // since the order passed its pre-trade check: the fill is cut to what is allowed and
        // the rest of the order cancelled, both journaled.
        let mut cancel_rest = None;
        if self.config.account_kind == AccountKind::Cash
            && let Some((code, reason, allowed, detail)) =
                self.cash_limit(i, side, quantity, price)?
        {
            let id = self.working[idx].order.id;
            sink.on_event(&Event::FillLimited {
                ts,
                order_id: id,
                code,
                quantity,
                allowed,
                detail,
            });
            if allowed.is_zero() {
                return self.cancel_where(ts, reason, sink, |o| o.id == id);
            }
            quantity = allowed;
            cancel_rest = Some(reason);
        }
        let inst = &self.instruments[i];
        let currency = self.account.currency();
        let notional = Money::notional(price, quantity, currency)?;
        let fee = risk::fee_rate(inst, liquidity, self.config.fee).of_money(notional);
        let symbol = inst.symbol;
        let (price_precision, size_precision) = (inst.price_precision, inst.size_precision);
        let w = &mut self.working[idx];
        w.order.fill(quantity)?;
        w.filled_notional += notional.raw();
        self.next_fill_id += 1;
        self.fills += 1;
        let fill = Fill {
            id: self.next_fill_id,
            order_id: w.order.id,
            instrument: w.order.instrument,
            side,
            quantity,
            price,
            fee,
            liquidity,
            ts,
        };
        self.account.apply_fill(side, notional, fee)?;
        let change = self.positions[i].apply(side, quantity, price, ts)?;
        self.analyzer.turnover = self
            .analyzer
            .turnover
            .checked_add(notional.raw().abs())
            .ok_or(ArithmeticError("turnover"))?;
        sink.on_event(&Event::OrderFilled {
            ts,
            order_id: fill.order_id,
            fill_id: fill.id,
            symbol,
            side,
            quantity,
            price,
            fee,
            liquidity,
        });
        sink.on_fill(&fill, symbol);
        let position = &self.positions[i];
        sink.on_event(&Event::PositionChanged {
            ts,
            symbol,
            quantity: position.signed_quantity(),
            avg_price: position.avg_price(),
            realized_pnl: change.realized,
        });
        if let Some(trade) = self.trackers[i].on_fill(
            &fill,
            &change,
            self.bar_counts[i],
            &mut self.next_trade_id,
            symbol,
            price_precision,
            size_precision,
            currency,
        )? {
            self.analyzer.on_trade(&trade);
            sink.on_trade(&trade);
        }
        let oco = self.working[idx].order.links().oco_id;
        let status = self.working[idx].order.status();
        if status == OrderStatus::Filled {
            self.close_order(idx, ts, None, sink);
        } else if let Some(reason) = cancel_rest {
            let id = self.working[idx].order.id;
            self.cancel_where(ts, reason, sink, |o| o.id == id)?;
        } else if self.working[idx].order.reduce_only {
            // The rest of a clamped reduce-only order would increase the position.
            let id = self.working[idx].order.id;
            self.cancel_where(ts, "reduce_only", sink, |o| o.id == id)?;
        }
        if let Some(sibling) = oco {
            self.reduce_oco(sibling, quantity, ts, sink)?;
        }
        if !self.pending.is_empty()
            && let Some(k) = self.pending.iter().position(|p| p.entry == fill.order_id)
        {
            let bracket = self.pending.remove(k);
            self.activate_bracket(bracket, i, side, quantity, price, ts, at_open, sink)?;
        }
        self.with_strategy(i, ts, |strategy, ctx| strategy.on_fill(ctx, &fill));
        Ok(())
    }

    /// How much of a cash account's fill of `quantity` on `side` at `price` can go through
    /// without shorting or taking cash below zero: `None` when all of it can, else the code,
    /// the cancel reason, the quantity allowed (whole lots, at least the minimum, or zero) and
    /// a detail naming the values.
    pub(super) fn cash_limit(
        &self,
        i: usize,
        side: OrderSide,
        quantity: Quantity,
        price: Price,
    ) -> Result<Option<(&'static str, &'static str, Quantity, String)>, EngineError> {
        let inst = &self.instruments[i];
        let currency = self.account.currency();
        match side {
            OrderSide::Sell => {
                let long = self.positions[i].net_raw().max(0);
                if quantity.raw() <= long {
                    return Ok(None);
                }
                let allowed = inst.quantity(long);
                let detail = format!(
                    "sell {quantity} would take the position {} below zero; a cash account cannot short, {allowed} fills",
                    self.positions[i].signed_quantity_string()
                );
                Ok(Some((
                    "account.no_shorting",
                    "no_shorting",
                    allowed,
                    detail,
                )))
            }
            OrderSide::Buy => {
                let rate = risk::fee_rate(inst, Liquidity::Taker, self.config.fee);
                let cash = self.account.cash().raw();
                let cost = |q: i64| -> Result<(i128, Money, Money), EngineError> {
                    let notional = Money::notional(price, inst.quantity(q), currency)?;
                    let fee = rate.of_money(notional);
                    Ok((notional.raw().saturating_add(fee.raw()), notional, fee))
                };
                let (needed, notional, fee) = cost(quantity.raw())?;
                if needed <= cash {
                    return Ok(None);
                }
                // The largest whole number of lots that cash pays for, by bisection (cost grows
                // with the quantity): at most ~64 steps, and only on this rare path.
                let lot = inst.lot_size.raw().max(1);
                let (mut lo, mut hi) = (0i64, quantity.raw() / lot);
                while lo < hi {
                    let mid = lo + (hi - lo + 1) / 2;
                    if cost(mid * lot)?.0 <= cash {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                let mut allowed = inst.quantity(lo * lot);
                if allowed < inst.min_quantity {
                    allowed = Quantity::ZERO;
                }
                let detail = format!(
                    "buy {quantity} at {price} needs {} (notional {notional} + fee {fee}) but cash is {}; {allowed} fills",
                    Money::from_raw(needed, currency),
                    self.account.cash()
                );
                Ok(Some((
                    "account.insufficient_cash",
                    "insufficient_cash",
                    allowed,
                    detail,
                )))
            }
        }
    }

    /// Removes a terminal order from the book and reports it.
    pub(super) fn close_order<S: Sink>(
        &mut self,
        idx: usize,
        ts: UnixNanos,
        reason: Option<&str>,
        sink: &mut S,
    ) {
        let w = self.working.remove(idx);
        let filled = w.order.filled().raw();
        if filled == 0 && !self.pending.is_empty() {
            self.drop_pending(w.order.id);
        }
        let inst = &self.instruments[w.order.instrument.index()];
        let avg_price = (filled > 0).then(|| {
            let q = i128::from(filled);
            let raw = (w.filled_notional + q / 2) / q;
            Price::from_raw(i64::try_from(raw).unwrap_or(i64::MAX), inst.price_precision)
        });
        sink.on_order_closed(&OrderRecord {
            order: &w.order,
            symbol: inst.symbol,
            avg_price,
            closed_ts: ts,
            reason,
        });
    }

    /// Cancels every working order that matches `which`.
    pub(super) fn cancel_where<S: Sink>(
        &mut self,
        ts: UnixNanos,
        reason: &'static str,
        sink: &mut S,
        which: impl Fn(&Order) -> bool,
    ) -> Result<(), EngineError> {
        let mut idx = 0;
        while idx < self.working.len() {
            if which(&self.working[idx].order) {
                let id = self.working[idx].order.id;
                self.working[idx].order.cancel()?;
                sink.on_event(&Event::OrderCancelled {
                    ts,
                    order_id: id,
                    reason,
                });
                self.close_order(idx, ts, Some(reason), sink);
            } else {
                idx += 1;
            }
        }
        Ok(())
    }
}
