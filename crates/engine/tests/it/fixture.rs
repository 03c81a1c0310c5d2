//! What the lifecycle, risk and invariant tests share: instruments, hand-made bars, a scripted
//! strategy and a run that collects everything the engine reports.

use std::collections::BTreeMap;

use tradeloom_core::{
    AccountKind, Bar, Currency, Decimal, Event, Fill, Instrument, InstrumentId, Money, OrderId,
    Price, Quantity, Symbol, UnixNanos,
};
use tradeloom_engine::sink::VecSink;
use tradeloom_engine::{
    Engine, EngineConfig, EngineError, ExecutionConfig, FillModel, OrderRequest, RiskConfig,
    Strategy, StrategyContext, Summary,
};

pub const HOUR: i64 = 3_600 * 1_000_000_000;
pub const DAY: i64 = 24 * HOUR;

/// 2024-01-01T00:00:00Z, a Monday.
pub fn t0() -> i64 {
    UnixNanos::from_date(2024, 1, 1).unwrap().0
}

/// Midnight of day `d` after [`t0`] plus `h` hours.
pub fn at(d: i64, h: i64) -> UnixNanos {
    UnixNanos(t0() + d * DAY + h * HOUR)
}

pub fn usd(s: &str) -> Money {
    Money::parse(s, Currency::USD).unwrap()
}

pub fn px(s: &str) -> Price {
    Price::parse(s, 2).unwrap()
}

pub fn qty(n: u32) -> Quantity {
    Quantity::from_int(n, 0)
}

pub fn dec(s: &str) -> Decimal {
    Decimal::parse(s).unwrap()
}

/// A USD instrument with cent prices and whole units, no fees of its own.
pub fn instrument(id: u32, symbol: &str) -> Instrument {
    Instrument::new(
        InstrumentId(id),
        Symbol::new(symbol).unwrap(),
        "sim",
        2,
        0,
        Currency::USD,
    )
    .unwrap()
}

pub fn bar(instrument: u32, ts: UnixNanos, o: &str, h: &str, l: &str, c: &str) -> Bar {
    let bar = Bar {
        instrument: InstrumentId(instrument),
        ts,
        open: px(o),
        high: px(h),
        low: px(l),
        close: px(c),
        volume: qty(1),
    };
    bar.validate().unwrap();
    bar
}

/// Daily bars of instrument 0 from `(o, h, l, c)` rows.
pub fn daily(rows: &[(&str, &str, &str, &str)]) -> Vec<Bar> {
    rows.iter()
        .enumerate()
        .map(|(k, &(o, h, l, c))| bar(0, at(k as i64, 0), o, h, l, c))
        .collect()
}

/// What a script does on a bar.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Submit(OrderRequest),
    Bracket(tradeloom_engine::Bracket),
    Cancel(OrderId),
}

/// A strategy that performs given steps on given bars (counted from 0 over its own bars) and
/// optionally on stop.
#[derive(Clone, Debug, Default)]
pub struct Script {
    steps: Vec<(usize, Step)>,
    on_stop: Vec<OrderRequest>,
    seen: usize,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn submit(mut self, bar: usize, request: OrderRequest) -> Self {
        self.steps.push((bar, Step::Submit(request)));
        self
    }

    pub fn bracket(mut self, bar: usize, bracket: tradeloom_engine::Bracket) -> Self {
        self.steps.push((bar, Step::Bracket(bracket)));
        self
    }

    pub fn cancel(mut self, bar: usize, id: u64) -> Self {
        self.steps.push((bar, Step::Cancel(OrderId(id))));
        self
    }

    pub fn submit_on_stop(mut self, request: OrderRequest) -> Self {
        self.on_stop.push(request);
        self
    }
}

impl Strategy for Script {
    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, _bar: &Bar) {
        for &(k, step) in &self.steps {
            if k == self.seen {
                match step {
                    Step::Submit(request) => {
                        ctx.submit(request);
                    }
                    Step::Bracket(bracket) => {
                        ctx.bracket(bracket);
                    }
                    Step::Cancel(id) => ctx.cancel(id),
                }
            }
        }
        self.seen += 1;
    }

    fn on_stop(&mut self, ctx: &mut StrategyContext<'_>) {
        for &request in &self.on_stop {
            ctx.submit(request);
        }
    }
}

/// A margin account with 100 000 USD, no fees, no slippage, no limits.
pub fn frictionless(fill_model: FillModel) -> EngineConfig {
    EngineConfig::frictionless(fill_model, usd("100000"))
}

/// A config resolved from spec sections, as the CLI does.
pub fn resolved(
    execution: ExecutionConfig,
    risk: RiskConfig,
    kind: AccountKind,
    cash: &str,
) -> EngineConfig {
    EngineConfig::resolve(&execution, &risk, kind, usd(cash)).unwrap()
}

pub fn execution(fill_model: FillModel) -> ExecutionConfig {
    ExecutionConfig {
        fill_model,
        ..ExecutionConfig::default()
    }
}

pub struct Run {
    pub sink: VecSink,
    pub summary: Summary,
}

pub fn try_run(
    config: EngineConfig,
    instruments: Vec<Instrument>,
    strategies: Vec<Box<dyn Strategy>>,
    bars: &[Bar],
) -> Result<Run, EngineError> {
    let mut engine = Engine::new(config, instruments, strategies)?;
    let mut sink = VecSink::default();
    for bar in bars {
        engine.on_bar(bar, &mut sink)?;
    }
    let summary = engine.finish(&mut sink)?;
    Ok(Run { sink, summary })
}

/// One instrument (`TEST`, id 0) traded by one script.
pub fn run(config: EngineConfig, bars: &[Bar], script: Script) -> Run {
    run_on(config, instrument(0, "TEST"), bars, script)
}

pub fn run_on(config: EngineConfig, instrument: Instrument, bars: &[Bar], script: Script) -> Run {
    try_run(config, vec![instrument], vec![Box::new(script)], bars).unwrap()
}

impl Run {
    pub fn fills(&self) -> &[Fill] {
        &self.sink.fills
    }

    /// `(order id, quantity, price, fee)` of every fill, as text.
    pub fn fill_rows(&self) -> Vec<(u64, String, String, String)> {
        self.sink
            .fills
            .iter()
            .map(|f| {
                (
                    f.order_id.0,
                    f.quantity.to_string(),
                    f.price.to_string(),
                    f.fee.to_string(),
                )
            })
            .collect()
    }

    /// Every event about order `id`, in order.
    pub fn order_events(&self, id: u64) -> Vec<&Event> {
        self.sink
            .events
            .iter()
            .filter(|e| order_id(e) == Some(OrderId(id)))
            .collect()
    }

    /// The names of the events about order `id`, e.g. `["order_submitted", "order_accepted"]`.
    pub fn lifecycle(&self, id: u64) -> Vec<&'static str> {
        self.order_events(id).into_iter().map(event_name).collect()
    }

    /// `(code, reason)` of the rejection of order `id`.
    pub fn rejection(&self, id: u64) -> (&'static str, String) {
        self.order_events(id)
            .into_iter()
            .find_map(|e| match e {
                Event::OrderRejected { code, reason, .. } => Some((*code, reason.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("order {id} was not rejected: {:?}", self.lifecycle(id)))
    }

    /// `(ts, reason)` of the cancellation of order `id`.
    pub fn cancellation(&self, id: u64) -> (UnixNanos, &'static str) {
        self.order_events(id)
            .into_iter()
            .find_map(|e| match e {
                Event::OrderCancelled { ts, reason, .. } => Some((*ts, *reason)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("order {id} was not cancelled: {:?}", self.lifecycle(id)))
    }

    /// Event counts by name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.sink.events {
            *counts.entry(event_name(e)).or_default() += 1;
        }
        counts
    }
}

pub fn order_id(event: &Event) -> Option<OrderId> {
    match event {
        Event::OrderSubmitted { order_id, .. }
        | Event::OrderAccepted { order_id, .. }
        | Event::OrderRejected { order_id, .. }
        | Event::OrderTriggered { order_id, .. }
        | Event::OrderFilled { order_id, .. }
        | Event::OrderCancelled { order_id, .. }
        | Event::OrderExpired { order_id, .. }
        | Event::OrderUpdated { order_id, .. }
        | Event::FillLimited { order_id, .. } => Some(*order_id),
        _ => None,
    }
}

/// The journal name of an event (its serde tag).
pub fn event_name(event: &Event) -> &'static str {
    match event {
        Event::RunStarted { .. } => "run_started",
        Event::OrderSubmitted { .. } => "order_submitted",
        Event::OrderAccepted { .. } => "order_accepted",
        Event::OrderRejected { .. } => "order_rejected",
        Event::OrderTriggered { .. } => "order_triggered",
        Event::OrderFilled { .. } => "order_filled",
        Event::OrderCancelled { .. } => "order_cancelled",
        Event::OrderExpired { .. } => "order_expired",
        Event::OrderUpdated { .. } => "order_updated",
        Event::PositionChanged { .. } => "position_changed",
        Event::RiskLimitBreached { .. } => "risk_limit_breached",
        Event::KillSwitchEngaged { .. } => "kill_switch_engaged",
        Event::KillSwitchLiquidation { .. } => "kill_switch_liquidation",
        Event::KillSwitchReleased { .. } => "kill_switch_released",
        Event::MarginCall { .. } => "margin_call",
        Event::MarginLiquidation { .. } => "margin_liquidation",
        Event::FillLimited { .. } => "fill_limited",
        Event::RunFinished { .. } => "run_finished",
    }
}
