//! Orders from strategies: commands applied, each new order checked by pre-trade risk and
//! accepted (and, under `bar_close`, filled at once when marketable).

use tradeloom_core::{
    AccountKind, Bar, Event, Liquidity, Money, Order, OrderId, OrderLinks, OrderSide, OrderType,
    UnixNanos,
};

use super::{Engine, EngineError, Working};
use crate::fill_model::FillModel;
use crate::risk::{self, RiskView};
use crate::sink::{OrderRecord, Sink};
use crate::strategy::{Command, OrderRequest};
use crate::venue;

impl Engine {
    /// Applies the commands a strategy queued during a callback.
    pub(super) fn process_commands<S: Sink>(
        &mut self,
        ts: UnixNanos,
        bar: Option<&Bar>,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        while !self.commands.is_empty() {
            let mut batch = std::mem::take(&mut self.commands);
            for command in batch.drain(..) {
                match command {
                    Command::Submit {
                        id,
                        instrument,
                        request,
                        links,
                    } => {
                        let i = instrument.index();
                        if i >= self.instruments.len() {
                            self.orders += 1;
                            self.rejected += 1;
                            sink.on_event(&Event::OrderRejected {
                                ts,
                                order_id: id,
                                code: "order.invalid",
                                reason: format!(
                                    "order {id}: instrument: the run has no instrument with id {} ({} instruments, ids 0 to {})",
                                    instrument.0,
                                    self.instruments.len(),
                                    self.instruments.len() - 1
                                ),
                            });
                            continue;
                        }
                        let mut links = links;
                        if let Some(trail) = request.trail {
                            let l = links.get_or_insert_default();
                            l.trail = l.trail.or(Some(trail));
                        }
                        if let Some(l) = links.as_deref()
                            && (l.take_profit_id.is_some() || l.stop_loss_id.is_some())
                        {
                            self.register_bracket(id, l);
                        }
                        self.submit(id, i, request, links, ts, bar, sink, false)?;
                    }
                    Command::Cancel(id) => {
                        if !self.pending.is_empty() {
                            self.drop_pending_leg(id);
                        }
                        self.cancel_where(ts, "cancelled", sink, |o| o.id == id)?;
                    }
                    Command::CancelAll(instrument) => {
                        self.cancel_where(ts, "cancelled", sink, |o| o.instrument == instrument)?;
                    }
                    Command::Fail(reason) => return Err(EngineError::Strategy(reason)),
                }
            }
            if self.commands.is_empty() {
                // Keep the buffer's capacity: no allocation per bar once warm.
                self.commands = batch;
            }
        }
        Ok(())
    }

    // The hot path's arguments stay plain values; a struct would only rename them.

    #[allow(clippy::too_many_arguments)]
    pub(super) fn submit<S: Sink>(
        &mut self,
        id: OrderId,
        i: usize,
        mut request: OrderRequest,
        mut links: Option<Box<OrderLinks>>,
        ts: UnixNanos,
        bar: Option<&Bar>,
        sink: &mut S,
        liquidation: bool,
    ) -> Result<(), EngineError> {
        self.orders += 1;
        if !liquidation {
            // The last look before this order can be accepted reads the kill switch itself,
            // not the per-bar cache.
            self.poll_gate(ts, sink, true)?;
        }
        // A trailing stop's trigger starts from a price; a problem is an invalid order.
        let mut best = 0;
        let mut trail_problem = None;
        if request.order_type == OrderType::TrailingStop {
            match self.trailing_start(i, &request, links.as_deref().unwrap_or(&OrderLinks::NONE)) {
                Ok((trigger, from)) => {
                    request.trigger_price = Some(trigger);
                    if let Some(trail) = request.trail {
                        let l = links.get_or_insert_default();
                        l.trail = l.trail.or(Some(trail));
                    }
                    best = from;
                }
                Err(problem) => trail_problem = Some(problem),
            }
        }
        let inst = &self.instruments[i];
        let created = match trail_problem {
            Some(problem) => Err(tradeloom_core::OrderError::Invalid(problem, id)),
            None => Order::new(
                id,
                inst.id,
                request.side,
                request.order_type,
                request.quantity,
                request.price,
                request.trigger_price,
                request.time_in_force,
                request.reduce_only,
                ts,
            ),
        };
        let mut order = match created {
            Ok(order) => order,
            Err(e) => {
                self.drop_pending(id);
                self.rejected += 1;
                sink.on_event(&Event::OrderRejected {
                    ts,
                    order_id: id,
                    code: "order.invalid",
                    reason: e.to_string(),
                });
                return Ok(());
            }
        };
        sink.on_event(&Event::OrderSubmitted {
            ts,
            order_id: id,
            symbol: inst.symbol,
            side: order.side,
            order_type: order.order_type,
            quantity: order.quantity,
            price: order.price,
            trigger_price: order.trigger_price,
            time_in_force: order.time_in_force,
            reduce_only: order.reduce_only,
            links: links.clone().filter(|l| !l.is_empty()),
        });
        order.links = links.filter(|l| !l.is_empty());
        order.submit()?;
        let bracket =
            order.links().take_profit_id.is_some() || order.links().stop_loss_id.is_some();
        if let Some(problem) = bracket
            .then(|| self.bracket_problem(&order, inst, order.links()))
            .flatten()
        {
            order.reject()?;
            // The field, not `drop_pending`: `inst` still borrows the instruments.
            self.pending.retain(|p| p.entry != id);
            self.rejected += 1;
            let reason = format!("order {id}: {problem}");
            sink.on_event(&Event::OrderRejected {
                ts,
                order_id: id,
                code: "order.invalid",
                reason: reason.clone(),
            });
            sink.on_order_closed(&OrderRecord {
                order: &order,
                symbol: inst.symbol,
                avg_price: None,
                closed_ts: ts,
                reason: Some(&reason),
            });
            return Ok(());
        }
        // A cash account checks what its position and cash will be once the orders already
        // working fill, not only what they are now.
        let (working_sells_raw, reserved) = if self.config.account_kind == AccountKind::Cash {
            self.working_commitments(i, order.links().oco_id)?
        } else {
            (0, 0)
        };
        let view = RiskView {
            limits: &self.config.risk,
            account_kind: self.config.account_kind,
            cash: self.account.cash(),
            fee: self.config.fee,
            positions: &self.positions,
            marks: &self.marks,
            // Liquidation orders are what an engaged kill switch asks for.
            halted: self.halted && !liquidation,
            kill_switch: if liquidation {
                None
            } else {
                self.gate_halt.as_deref()
            },
            margin_call: if liquidation {
                None
            } else {
                self.margin_call.as_deref()
            },
            // The kill switch's and a margin call's liquidations are safety actions: they go
            // through on old data too.
            stale_data: if liquidation {
                None
            } else {
                self.stale_data.as_deref()
            },
            working_sells_raw,
            reserved_cash: Money::from_raw(reserved, self.account.currency()),
        };
        if let Err(rejection) = risk::check(&order, inst, &view) {
            order.reject()?;
            // The field, not `drop_pending`: `inst` still borrows the instruments.
            self.pending.retain(|p| p.entry != id);
            self.rejected += 1;
            let reason = rejection.to_string();
            sink.on_event(&Event::OrderRejected {
                ts,
                order_id: id,
                code: rejection.code(),
                reason: reason.clone(),
            });
            sink.on_order_closed(&OrderRecord {
                order: &order,
                symbol: inst.symbol,
                avg_price: None,
                closed_ts: ts,
                reason: Some(&reason),
            });
            return Ok(());
        }
        order.accept()?;
        sink.on_event(&Event::OrderAccepted { ts, order_id: id });
        let immediate = match (self.config.fill_model, bar) {
            (FillModel::BarClose, Some(bar)) if bar.instrument.index() == i => {
                venue::marketable_at(&order, bar.close)
            }
            _ => None,
        };
        self.working.push(Working {
            order,
            submitted_ts: ts,
            filled_notional: 0,
            liquidation,
            best,
        });
        if let Some((price, triggered)) = immediate {
            let idx = self.working.len() - 1;
            if triggered {
                self.working[idx].order.trigger()?;
                sink.on_event(&Event::OrderTriggered { ts, order_id: id });
            }
            self.fill(idx, price, Liquidity::Taker, ts, false, sink)?;
        }
        Ok(())
    }

    /// What working orders commit a cash account to: the raw quantity of working sells of
    /// instrument `i` (they will reduce its position), and the cash that working buys of every
    /// instrument will spend (notional at their limit or trigger price, or the last close for a
    /// market order, plus the taker fee). Sell proceeds are not counted until they fill. The two
    /// legs of a bracket count once (one cancels the other), and `except` (the OCO partner of
    /// the order being checked) not at all.
    pub(super) fn working_commitments(
        &self,
        i: usize,
        except: Option<OrderId>,
    ) -> Result<(i64, i128), EngineError> {
        let mut sells: i64 = 0;
        let mut reserved: i128 = 0;
        let currency = self.account.currency();
        for w in &self.working {
            let order = &w.order;
            if Some(order.id) == except
                || order.links().oco_id.is_some_and(|partner| {
                    partner < order.id && self.working.iter().any(|w| w.order.id == partner)
                })
            {
                continue;
            }
            let k = order.instrument.index();
            let remaining = order.remaining();
            match order.side {
                OrderSide::Sell if k == i => sells = sells.saturating_add(remaining.raw()),
                OrderSide::Sell => {}
                OrderSide::Buy => {
                    let reference = order.price.or(order.trigger_price).or(self.marks[k]);
                    if let Some(p) = reference {
                        let notional = Money::notional(p, remaining, currency)?;
                        let fee =
                            risk::fee_rate(&self.instruments[k], Liquidity::Taker, self.config.fee)
                                .of_money(notional);
                        reserved = reserved
                            .saturating_add(notional.raw())
                            .saturating_add(fee.raw());
                    }
                }
            }
        }
        Ok((sells, reserved))
    }
}
