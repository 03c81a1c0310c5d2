//! [`Engine`]: the event loop. Feed it bars in time order with [`Engine::on_bar`], then call
//! [`Engine::finish`]. For each bar:
//!
//! 1. when the timestamp advances, the previous one is closed: equity is marked at the closes,
//!    recorded, and the drawdown limit is checked (a breach engages the kill switch);
//! 2. working orders of the bar's instrument are matched against it (expiry, fills, triggers);
//! 3. the bar's strategy (the instrument's, or the one portfolio strategy) sees the bar and
//!    submits or cancels orders;
//! 4. each new order passes pre-trade risk, is accepted, and under `bar_close` fills at the close
//!    if it is marketable; fills update the account, the position and the trade record, and the
//!    strategy is told of each fill.

use tradeloom_core::{
    Account, ArithmeticError, Bar, Event, Instrument, Money, Order, OrderError, OrderId, Position,
    Price, Trail, UnixNanos,
};

use crate::analysis::{Analyzer, Metrics};
use crate::config::EngineConfig;
use crate::gate::{GateEpoch, KillSwitchGate};
use crate::scan::ScanFields;
use crate::sink::Sink;
use crate::strategy::{Command, Strategy, StrategyContext};
use crate::trade::TradeTracker;
use crate::venue::Outcome;

mod bracket;
mod close;
mod kill_switch;
mod matching;
mod paper;
mod submission;

pub use paper::EngineState;

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
    /// The strategy ended the run ([`crate::StrategyContext::fail`]): the reason is its own
    /// (a Python strategy's carries the traceback).
    #[error("{0}")]
    Strategy(String),
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

/// An order working at the venue.
#[derive(Clone, Debug)]
pub(crate) struct Working {
    pub(crate) order: Order,
    submitted_ts: UnixNanos,
    filled_notional: i128,
    /// Submitted by the engine to flatten a position for an engaged kill switch or a margin
    /// call.
    liquidation: bool,
    /// A trailing stop's best price so far (highest for a sell, lowest for a buy), raw.
    best: i64,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Outcome(Outcome),
    Expire,
    CancelIoc,
    /// A trailing stop the bar did not reach: its trigger follows the bar's extreme.
    Trail,
}

/// The legs of a bracket whose entry has not filled yet.
#[derive(Clone, Copy, Debug)]
struct PendingBracket {
    entry: OrderId,
    take_profit: Option<(OrderId, Price)>,
    stop_loss: Option<(OrderId, PendingStop)>,
}

#[derive(Clone, Copy, Debug)]
enum PendingStop {
    Stop(Price),
    Trailing(Trail),
}

/// The strategies of a run: one per instrument, or one for the whole portfolio.
pub enum Strategies {
    /// Instance `i` sees the bars of instrument `i` only (one per instrument).
    PerInstrument(Vec<Box<dyn Strategy>>),
    /// One instance sees the bars of every instrument and may trade any of them.
    Portfolio(Box<dyn Strategy>),
}

/// The deterministic event loop; see the module documentation.
pub struct Engine {
    config: EngineConfig,
    instruments: Vec<Instrument>,
    strategies: Vec<Box<dyn Strategy>>,
    /// One strategy sees every instrument (see [`Strategies::Portfolio`]).
    portfolio: bool,
    positions: Vec<Position>,
    marks: Vec<Option<Price>>,
    bar_counts: Vec<u64>,
    trackers: Vec<TradeTracker>,
    account: Account,
    analyzer: Analyzer,
    working: Vec<Working>,
    commands: Vec<Command>,
    actions: Vec<(OrderId, Action)>,
    /// Brackets whose entry works and has not filled.
    pending: Vec<PendingBracket>,
    /// Bracket legs activated by an entry filled at a bar's open, still to be matched against
    /// that bar.
    same_bar: Vec<OrderId>,
    next_order_id: u64,
    next_fill_id: u64,
    next_trade_id: u64,
    current_ts: Option<UnixNanos>,
    halted: bool,
    gate: Option<Box<dyn KillSwitchGate>>,
    /// The gate's epoch (see [`KillSwitchGate::epoch`]) as of its last answer.
    gate_epoch: Option<GateEpoch>,
    /// The epoch counter's value loaded right before the gate's last answer.
    gate_seen: u64,
    /// Bars that may still go without asking the gate while its epoch counter stays put.
    gate_skips: u32,
    /// What the gate last said stops orders (`None`: orders may pass).
    gate_halt: Option<String>,
    /// Why a margin call stopped trading, once one has.
    margin_call: Option<String>,
    /// Why the data is too old to trade on (a paper run's `max_data_age`), while it is.
    stale_data: Option<String>,
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
        Self::with_strategies(config, instruments, Strategies::PerInstrument(strategies))
    }

    /// An engine for `instruments` (index i has id i) with one strategy seeing them all.
    pub fn portfolio(
        config: EngineConfig,
        instruments: Vec<Instrument>,
        strategy: Box<dyn Strategy>,
    ) -> Result<Self, EngineError> {
        Self::with_strategies(config, instruments, Strategies::Portfolio(strategy))
    }

    /// An engine for `instruments` (index i has id i) with `strategies` in either mode.
    pub fn with_strategies(
        config: EngineConfig,
        instruments: Vec<Instrument>,
        strategies: Strategies,
    ) -> Result<Self, EngineError> {
        if instruments.is_empty() {
            return Err(EngineError::Config("no instruments".to_string()));
        }
        let (strategies, portfolio) = match strategies {
            Strategies::PerInstrument(s) => (s, false),
            Strategies::Portfolio(s) => (vec![s], true),
        };
        if !portfolio && instruments.len() != strategies.len() {
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
            portfolio,
            working: Vec::with_capacity(16),
            commands: Vec::with_capacity(16),
            actions: Vec::with_capacity(16),
            pending: Vec::new(),
            same_bar: Vec::new(),
            next_order_id: 0,
            next_fill_id: 0,
            next_trade_id: 0,
            current_ts: None,
            halted: false,
            gate: None,
            gate_epoch: None,
            gate_seen: 0,
            gate_skips: 0,
            gate_halt: None,
            margin_call: None,
            stale_data: None,
            bars: 0,
            orders: 0,
            fills: 0,
            rejected: 0,
        })
    }

    /// Lets `gate` stop new orders; it is asked once per bar. See [`KillSwitchGate`].
    pub fn set_kill_switch_gate(&mut self, gate: Box<dyn KillSwitchGate>) {
        self.gate_epoch = gate.epoch();
        self.gate_skips = 0;
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
        self.on_event(bar, None, sink)
    }

    /// Processes one scan row: exactly like [`Engine::on_bar`] with `bar` (flat at the row's
    /// price), except that the strategy is called through [`Strategy::on_scan`] with the row's
    /// fields.
    pub fn on_scan<S: Sink>(
        &mut self,
        bar: &Bar,
        fields: &ScanFields,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        self.on_event(bar, Some(fields), sink)
    }

    #[inline]
    fn on_event<S: Sink>(
        &mut self,
        bar: &Bar,
        fields: Option<&ScanFields>,
        sink: &mut S,
    ) -> Result<(), EngineError> {
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
        sink.on_bar(bar);
        if !self.working.is_empty() {
            self.match_working(bar, sink)?;
        }
        self.marks[i] = Some(bar.close);
        if self.gate_halt.is_some() {
            self.flatten_if_asked(i, bar, sink)?;
        }
        match fields {
            None => self.with_strategy(i, bar.ts, |strategy, ctx| strategy.on_bar(ctx, bar)),
            Some(fields) => self.with_strategy(i, bar.ts, |strategy, ctx| {
                strategy.on_scan(ctx, bar, fields)
            }),
        }
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

    /// Calls the strategy of instrument `i` (the portfolio strategy, in portfolio mode) with
    /// its context at `ts`, the event being on instrument `i`.
    #[inline]
    fn with_strategy(
        &mut self,
        i: usize,
        ts: UnixNanos,
        call: impl FnOnce(&mut dyn Strategy, &mut StrategyContext<'_>),
    ) {
        let s = if self.portfolio { 0 } else { i };
        let mut ctx = StrategyContext {
            ts,
            current: i,
            instruments: &self.instruments,
            positions: &self.positions,
            marks: &self.marks,
            account: &self.account,
            working: &self.working,
            commands: &mut self.commands,
            next_order_id: &mut self.next_order_id,
        };
        call(self.strategies[s].as_mut(), &mut ctx);
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
}
