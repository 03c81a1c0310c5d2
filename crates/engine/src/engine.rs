//! [`Engine`]: the event loop. Feed it bars in time order with [`Engine::on_bar`], then call
//! [`Engine::finish`]. For each bar:
//!
//! 1. when the timestamp advances, the previous one is closed: equity is marked at the closes,
//!    recorded, and the drawdown limit is checked (a breach engages the kill switch);
//! 2. working orders of the bar's instrument are matched against it (expiry, fills, triggers);
//! 3. the bar's strategy sees the bar and submits or cancels orders;
//! 4. each new order passes pre-trade risk, is accepted, and under `bar_close` fills at the close
//!    if it is marketable; fills update the account, the position and the trade record, and the
//!    strategy is told of each fill.

use tradeloom_core::fixed::mul_div;
use tradeloom_core::{
    Account, AccountKind, ArithmeticError, Bar, Event, Fill, Instrument, KillReason, Liquidity,
    Money, Order, OrderError, OrderId, OrderSide, OrderStatus, OrderType, Position, Price,
    Quantity, TimeInForce, UnixNanos,
};

use crate::analysis::{Analyzer, EquityPoint, Metrics};
use crate::config::{EngineConfig, MarginCallAction};
use crate::fill_model::{FillModel, intrabar_path};
use crate::gate::KillSwitchGate;
use crate::risk::{self, RiskView};
use crate::sink::{OrderRecord, Sink};
use crate::strategy::{Command, OrderRequest, Strategy, StrategyContext};
use crate::trade::TradeTracker;
use crate::venue::{self, Outcome};

/// A failure that stops the run. Bad orders are not errors (they are rejected and journaled);
/// these are broken inputs or broken invariants.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("bars out of order: {got} comes after {previous}")]
    /// A bar's timestamp is before the previous one.
    OutOfOrder {
        /// The previous bar's timestamp.
        previous: UnixNanos,
        /// The offending bar's timestamp.
        got: UnixNanos,
    },
    /// A bar names an instrument index the engine was not given.
    #[error("bar for unknown instrument index {0}")]
    UnknownInstrument(u32),
    /// The configuration is unusable.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// Arithmetic overflowed.
    #[error(transparent)]
    Arithmetic(#[from] ArithmeticError),
    /// An order broke its life cycle (an engine bug).
    #[error(transparent)]
    Order(#[from] OrderError),
}

/// The final state of a run.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The figures of `metrics.json`.
    pub metrics: Metrics,
    /// Cash at the end.
    pub cash: Money,
    /// Equity at the end.
    pub equity: Money,
    /// Every instrument's position at the end, in instrument order.
    pub positions: Vec<Position>,
    /// Whether the kill switch stopped trading.
    pub halted: bool,
    /// Whether a margin call stopped trading (see [`crate::config::MarginConfig`]).
    pub margin_call: bool,
}

#[derive(Clone, Debug)]
struct Working {
    order: Order,
    submitted_ts: UnixNanos,
    filled_notional: i128,
    /// Submitted by the engine to flatten a position for an engaged kill switch or a margin
    /// call.
    liquidation: bool,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Outcome(Outcome),
    Expire,
    CancelIoc,
}

/// The deterministic event loop; see the module documentation.
pub struct Engine {
    config: EngineConfig,
    instruments: Vec<Instrument>,
    strategies: Vec<Box<dyn Strategy>>,
    positions: Vec<Position>,
    marks: Vec<Option<Price>>,
    bar_counts: Vec<u64>,
    trackers: Vec<TradeTracker>,
    account: Account,
    analyzer: Analyzer,
    working: Vec<Working>,
    commands: Vec<Command>,
    actions: Vec<(OrderId, Action)>,
    next_order_id: u64,
    next_fill_id: u64,
    next_trade_id: u64,
    current_ts: Option<UnixNanos>,
    halted: bool,
    gate: Option<Box<dyn KillSwitchGate>>,
    /// What the gate last said stops orders (`None`: orders may pass).
    gate_halt: Option<String>,
    /// Why a margin call stopped trading, once one has.
    margin_call: Option<String>,
    peak_equity: i128,
    bars: u64,
    orders: u64,
    fills: u64,
    rejected: u64,
}

impl Engine {
    /// An engine for `instruments` (index i has id i) with one strategy per instrument.
    pub fn new(
        config: EngineConfig,
        instruments: Vec<Instrument>,
        strategies: Vec<Box<dyn Strategy>>,
    ) -> Result<Self, EngineError> {
        if instruments.is_empty() {
            return Err(EngineError::Config("no instruments".to_string()));
        }
        if instruments.len() != strategies.len() {
            return Err(EngineError::Config(format!(
                "{} instruments but {} strategies",
                instruments.len(),
                strategies.len()
            )));
        }
        let currency = config.initial_cash.currency();
        for (i, inst) in instruments.iter().enumerate() {
            if inst.id.index() != i {
                return Err(EngineError::Config(format!(
                    "instrument {} has id {} at index {i}",
                    inst.symbol, inst.id.0
                )));
            }
            if inst.currency != currency {
                return Err(EngineError::Config(format!(
                    "instrument {} is quoted in {} but the account is in {currency}",
                    inst.symbol, inst.currency
                )));
            }
        }
        let n = instruments.len();
        Ok(Self {
            positions: instruments
                .iter()
                .map(|i| Position::flat(i.id, currency, i.price_precision, i.size_precision))
                .collect(),
            marks: vec![None; n],
            bar_counts: vec![0; n],
            trackers: (0..n).map(|_| TradeTracker::new()).collect(),
            account: Account::new(config.account_kind, config.initial_cash),
            analyzer: Analyzer::new(config.initial_cash),
            peak_equity: config.initial_cash.raw(),
            config,
            instruments,
            strategies,
            working: Vec::with_capacity(16),
            commands: Vec::with_capacity(16),
            actions: Vec::with_capacity(16),
            next_order_id: 0,
            next_fill_id: 0,
            next_trade_id: 0,
            current_ts: None,
            halted: false,
            gate: None,
            gate_halt: None,
            margin_call: None,
            bars: 0,
            orders: 0,
            fills: 0,
            rejected: 0,
        })
    }

    /// Lets `gate` stop new orders; it is asked once per bar. See [`KillSwitchGate`].
    pub fn set_kill_switch_gate(&mut self, gate: Box<dyn KillSwitchGate>) {
        self.gate = Some(gate);
    }

    /// The instruments, in index order.
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// Bars processed so far.
    pub fn bars(&self) -> u64 {
        self.bars
    }

    /// Processes one bar. Bars must come in non-decreasing time order.
    #[inline]
    pub fn on_bar<S: Sink>(&mut self, bar: &Bar, sink: &mut S) -> Result<(), EngineError> {
        let i = bar.instrument.index();
        if i >= self.instruments.len() {
            return Err(EngineError::UnknownInstrument(bar.instrument.0));
        }
        match self.current_ts {
            None => self.start(bar.ts, sink)?,
            Some(ts) if bar.ts < ts => {
                return Err(EngineError::OutOfOrder {
                    previous: ts,
                    got: bar.ts,
                });
            }
            Some(ts) if bar.ts > ts => {
                self.close_timestamp(ts, sink)?;
                self.poll_gate(bar.ts, sink, false)?;
            }
            Some(_) => self.poll_gate(bar.ts, sink, false)?,
        }
        self.current_ts = Some(bar.ts);
        self.bars += 1;
        self.bar_counts[i] += 1;
        if !self.working.is_empty() {
            self.match_working(bar, sink)?;
        }
        self.marks[i] = Some(bar.close);
        if self.gate_halt.is_some() {
            self.flatten_if_asked(i, bar, sink)?;
        }
        self.with_strategy(i, bar.ts, |strategy, ctx| strategy.on_bar(ctx, bar));
        if !self.commands.is_empty() {
            self.process_commands(bar.ts, Some(bar), sink)?;
        }
        Ok(())
    }

    /// Ends the run: closes the last timestamp, lets strategies stop, cancels what still works,
    /// reports open trades and returns the final state and metrics.
    pub fn finish<S: Sink>(mut self, sink: &mut S) -> Result<Summary, EngineError> {
        if let Some(ts) = self.current_ts {
            self.close_timestamp(ts, sink)?;
            self.poll_gate(ts, sink, false)?;
            for i in 0..self.strategies.len() {
                self.with_strategy(i, ts, |strategy, ctx| strategy.on_stop(ctx));
            }
            self.process_commands(ts, None, sink)?;
            self.cancel_where(ts, "run_end", sink, |_| true)?;
            for (i, inst) in self.instruments.iter().enumerate() {
                if let Some(mark) = self.marks[i] {
                    let unrealized = self.positions[i].unrealized(mark)?;
                    if let Some(trade) = self.trackers[i].open_trade(
                        inst.id,
                        inst.symbol,
                        unrealized,
                        self.bar_counts[i],
                        inst.price_precision,
                        inst.size_precision,
                    ) {
                        sink.on_trade(&trade);
                    }
                }
            }
        }
        let equity = self.equity()?;
        if let Some(ts) = self.current_ts {
            sink.on_event(&Event::RunFinished {
                ts,
                bars: self.bars,
                orders: self.orders,
                fills: self.fills,
                cash: self.account.cash(),
                equity,
            });
        }
        let metrics = self.analyzer.finish(
            equity,
            self.account.fees(),
            self.bars,
            self.orders,
            self.fills,
            self.rejected,
        );
        Ok(Summary {
            metrics,
            cash: self.account.cash(),
            equity,
            positions: self.positions,
            halted: self.halted,
            margin_call: self.margin_call.is_some(),
        })
    }

    /// Calls strategy `i` with its context at `ts`.
    #[inline]
    fn with_strategy(
        &mut self,
        i: usize,
        ts: UnixNanos,
        call: impl FnOnce(&mut dyn Strategy, &mut StrategyContext<'_>),
    ) {
        let open_orders = self.open_orders(i);
        let mut ctx = StrategyContext {
            ts,
            instrument: &self.instruments[i],
            position: &self.positions[i],
            open_orders,
            commands: &mut self.commands,
            next_order_id: &mut self.next_order_id,
        };
        call(self.strategies[i].as_mut(), &mut ctx);
    }

    fn open_orders(&self, instrument: usize) -> usize {
        self.working
            .iter()
            .filter(|w| w.order.instrument.index() == instrument)
            .count()
    }

    fn start<S: Sink>(&mut self, ts: UnixNanos, sink: &mut S) -> Result<(), EngineError> {
        sink.on_event(&Event::RunStarted {
            ts,
            strategy: self.config.strategy_name.clone(),
            fill_model: self.config.fill_model.as_str(),
            instruments: self.instruments.iter().map(|i| i.symbol).collect(),
            initial_cash: self.config.initial_cash,
        });
        self.poll_gate(ts, sink, false)?;
        for i in 0..self.strategies.len() {
            self.with_strategy(i, ts, |strategy, ctx| strategy.on_start(ctx));
        }
        self.process_commands(ts, None, sink)
    }

    /// Cash plus every position marked at its instrument's last close.
    fn equity(&self) -> Result<Money, EngineError> {
        let mut equity = self.account.cash();
        for (pos, mark) in self.positions.iter().zip(&self.marks) {
            if let (Some(mark), false) = (mark, pos.is_flat()) {
                equity = equity.checked_add(pos.market_value(*mark)?)?;
            }
        }
        Ok(equity)
    }

    fn close_timestamp<S: Sink>(&mut self, ts: UnixNanos, sink: &mut S) -> Result<(), EngineError> {
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
    fn call_margin<S: Sink>(
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

    /// Asks the gate whether orders may pass (`fresh`: from the source of truth, before an
    /// order is accepted; otherwise its cheap per-bar answer). On engagement: a
    /// `kill_switch_engaged` event and every working order cancelled; on release: a
    /// `kill_switch_released` event.
    fn poll_gate<S: Sink>(
        &mut self,
        ts: UnixNanos,
        sink: &mut S,
        fresh: bool,
    ) -> Result<(), EngineError> {
        let Some(gate) = self.gate.as_mut() else {
            return Ok(());
        };
        let answer = if fresh {
            gate.engaged_now()
        } else {
            gate.engaged()
        };
        match (answer, &mut self.gate_halt) {
            (Some(now), Some(before)) => {
                if now != before.as_str() {
                    // Another engagement (say the global one after the run's): keep the
                    // newest reason for the rejections.
                    now.clone_into(before);
                }
            }
            (Some(now), halt @ None) => {
                let detail = now.to_string();
                *halt = Some(detail.clone());
                sink.on_event(&Event::KillSwitchEngaged {
                    ts,
                    reason: KillReason::Operator,
                    detail,
                });
                self.cancel_where(ts, "kill_switch", sink, |_| true)?;
            }
            (None, halt @ Some(_)) => {
                *halt = None;
                sink.on_event(&Event::KillSwitchReleased { ts });
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// While an engaged kill switch asks for flattening: closes the position in instrument `i`
    /// with a reduce-only market order (one at a time), journaled as `kill_switch_liquidation`.
    fn flatten_if_asked<S: Sink>(
        &mut self,
        i: usize,
        bar: &Bar,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let asks = self.gate.as_ref().is_some_and(|g| g.flatten());
        let net = self.positions[i].net_raw();
        if !asks
            || net == 0
            || self
                .working
                .iter()
                .any(|w| w.liquidation && w.order.instrument.index() == i)
        {
            return Ok(());
        }
        self.submit_liquidation(i, bar.ts, Some(bar), sink, false)
    }

    /// Submits a reduce-only market order closing the position in instrument `i`, journaled as
    /// `margin_liquidation` (for a margin call) or `kill_switch_liquidation`.
    fn submit_liquidation<S: Sink>(
        &mut self,
        i: usize,
        ts: UnixNanos,
        bar: Option<&Bar>,
        sink: &mut S,
        margin: bool,
    ) -> Result<(), EngineError> {
        let net = self.positions[i].net_raw();
        let inst = &self.instruments[i];
        let side = if net > 0 {
            OrderSide::Sell
        } else {
            OrderSide::Buy
        };
        let mut request = OrderRequest::market(side, inst.quantity(net.abs()));
        request.reduce_only = true;
        self.next_order_id += 1;
        let id = OrderId(self.next_order_id);
        let (symbol, quantity) = (inst.symbol, self.positions[i].signed_quantity());
        if margin {
            sink.on_event(&Event::MarginLiquidation {
                ts,
                order_id: id,
                symbol,
                quantity,
                detail: self.margin_call.clone().unwrap_or_default(),
            });
        } else {
            sink.on_event(&Event::KillSwitchLiquidation {
                ts,
                order_id: id,
                symbol,
                quantity,
                detail: self.gate_halt.clone().unwrap_or_default(),
            });
        }
        self.submit(id, i, request, ts, bar, sink, true)
    }

    fn process_commands<S: Sink>(
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
                    } => self.submit(id, instrument.index(), request, ts, bar, sink, false)?,
                    Command::Cancel(id) => {
                        self.cancel_where(ts, "cancelled", sink, |o| o.id == id)?;
                    }
                    Command::CancelAll(instrument) => {
                        self.cancel_where(ts, "cancelled", sink, |o| o.instrument == instrument)?;
                    }
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
    fn submit<S: Sink>(
        &mut self,
        id: OrderId,
        i: usize,
        request: OrderRequest,
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
        let inst = &self.instruments[i];
        let mut order = match Order::new(
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
        ) {
            Ok(order) => order,
            Err(e) => {
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
        });
        order.submit()?;
        // A cash account checks what its position and cash will be once the orders already
        // working fill, not only what they are now.
        let (working_sells_raw, reserved) = if self.config.account_kind == AccountKind::Cash {
            self.working_commitments(i)?
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
            working_sells_raw,
            reserved_cash: Money::from_raw(reserved, self.account.currency()),
        };
        if let Err(rejection) = risk::check(&order, inst, &view) {
            order.reject()?;
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
        });
        if let Some((price, triggered)) = immediate {
            let idx = self.working.len() - 1;
            if triggered {
                self.working[idx].order.trigger()?;
                sink.on_event(&Event::OrderTriggered { ts, order_id: id });
            }
            self.fill(idx, price, Liquidity::Taker, ts, sink)?;
        }
        Ok(())
    }

    /// What working orders commit a cash account to: the raw quantity of working sells of
    /// instrument `i` (they will reduce its position), and the cash that working buys of every
    /// instrument will spend (notional at their limit or trigger price, or the last close for a
    /// market order, plus the taker fee). Sell proceeds are not counted until they fill.
    fn working_commitments(&self, i: usize) -> Result<(i64, i128), EngineError> {
        let mut sells: i64 = 0;
        let mut reserved: i128 = 0;
        let currency = self.account.currency();
        for w in &self.working {
            let order = &w.order;
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

    /// How much of a cash account's fill of `quantity` on `side` at `price` can go through
    /// without shorting or taking cash below zero: `None` when all of it can, else the code,
    /// the cancel reason, the quantity allowed (whole lots, at least the minimum, or zero) and
    /// a detail naming the values.
    fn cash_limit(
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

    fn match_working<S: Sink>(&mut self, bar: &Bar, sink: &mut S) -> Result<(), EngineError> {
        let path = intrabar_path(bar);
        self.actions.clear();
        for w in &self.working {
            if w.order.instrument != bar.instrument || w.submitted_ts >= bar.ts {
                continue;
            }
            let order = &w.order;
            if order.time_in_force == TimeInForce::Day
                && bar.ts.day_index() > order.created_ts.day_index()
            {
                self.actions.push((order.id, Action::Expire));
                continue;
            }
            let outcome = venue::match_order(order, bar, &path);
            self.actions.push((order.id, Action::Outcome(outcome)));
            if order.time_in_force == TimeInForce::Ioc && !matches!(outcome, Outcome::Fill { .. }) {
                self.actions.push((order.id, Action::CancelIoc));
            }
        }
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
                    self.fill(idx, price, liquidity, bar.ts, sink)?;
                }
            }
        }
        Ok(())
    }

    /// Fills the working order at `idx` (all of what remains, or for a reduce-only order what
    /// still reduces the position).
    fn fill<S: Sink>(
        &mut self,
        idx: usize,
        price: Price,
        liquidity: Liquidity,
        ts: UnixNanos,
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
            OrderType::Market | OrderType::Stop if liquidity == Liquidity::Taker => {
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
        self.with_strategy(i, ts, |strategy, ctx| strategy.on_fill(ctx, &fill));
        Ok(())
    }

    /// Removes a terminal order from the book and reports it.
    fn close_order<S: Sink>(
        &mut self,
        idx: usize,
        ts: UnixNanos,
        reason: Option<&str>,
        sink: &mut S,
    ) {
        let w = self.working.remove(idx);
        let inst = &self.instruments[w.order.instrument.index()];
        let filled = w.order.filled().raw();
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
    fn cancel_where<S: Sink>(
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
