//! [`ScriptStrategy`]: a [`Strategy`] whose decisions come from a sandboxed Python class.
//!
//! Each instance owns one child process. Bars go to the child in batches when that cannot
//! change the outcome: while the strategy has no working orders, nothing but its own requests
//! can change what its context shows, so the child runs `on_bar` over the upcoming bars of its
//! instrument (from the [`Lookahead`] the runner fills) until one produces requests, and answers
//! "consumed k bars, these requests at bar k". The engine then calls `on_bar` for those bars as
//! usual and the requests are handed over at bar k, exactly as if each bar had made a round
//! trip. If something the child could not foresee happens inside a batch (an engine-initiated
//! fill such as a kill-switch or margin-call liquidation, a context that differs), the child is
//! rewound to the last bar the engine really reached (from a pickle snapshot taken before the
//! batch) and the event is delivered in order; a strategy that cannot be pickled is run one bar
//! per round trip.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tradeloom_core::{
    Bar, Fill, Instrument, OrderId, OrderSide, OrderType, Price, Quantity, TimeInForce,
};
use tradeloom_engine::{OrderRequest, Strategy, StrategyContext};

use crate::EffectiveLimits;
use crate::error::SandboxError;
use crate::interpreter::SandboxPolicy;
use crate::process::{Reply, ScriptProcess, ScriptSpec};

/// Bars in the first batch; batches then adapt to how many bars a strategy goes without
/// trading.
const FIRST_BATCH: usize = 64;
/// Smallest adapted batch.
const MIN_BATCH: usize = 16;
/// Largest batch ([`ScriptOptions::max_batch`] default).
pub const DEFAULT_MAX_BATCH: usize = 2048;

/// The bars the engine is about to process, published by the runner before it feeds them, so
/// script strategies can send batches ahead. Only a backtest has one.
#[derive(Debug, Default)]
pub struct Lookahead {
    chunk: Mutex<(u64, Vec<Bar>)>,
}

impl Lookahead {
    /// Replaces the upcoming bars with `bars` (the next chunk the engine will process, in
    /// order).
    pub fn publish(&self, bars: &[Bar]) {
        if let Ok(mut c) = self.chunk.lock() {
            c.0 += 1;
            c.1.clear();
            c.1.extend_from_slice(bars);
        }
    }
}

/// Where script strategies record the failure that must stop the run; the runner checks
/// [`FailureSlot::is_set`] after every bar.
#[derive(Debug, Default)]
pub struct FailureSlot {
    failed: AtomicBool,
    error: Mutex<Option<SandboxError>>,
}

impl FailureSlot {
    /// Whether a script failed.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The first failure, if any.
    pub fn take(&self) -> Option<SandboxError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    fn set(&self, e: SandboxError) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// What a script strategy needs besides its instrument.
#[derive(Clone, Debug)]
pub struct ScriptOptions {
    pub policy: SandboxPolicy,
    pub limits: EffectiveLimits,
    /// Upcoming bars (backtests); `None`: one bar per round trip.
    pub lookahead: Option<Arc<Lookahead>>,
    pub failure: Arc<FailureSlot>,
    /// Largest batch of bars (1 disables batching).
    pub max_batch: usize,
}

/// Bars already answered by the child, waiting for the engine to reach them.
struct Pending {
    bars: Vec<Bar>,
    /// The next bar the engine should call `on_bar` with.
    next: usize,
    /// Bars the child consumed; its requests belong to bar `consumed - 1`.
    consumed: usize,
    commands: Vec<serde_json::Value>,
    position: i64,
}

/// A strategy run by a sandboxed Python class; see the module documentation.
pub struct ScriptStrategy {
    process: ScriptProcess,
    options: ScriptOptions,
    price_precision: u8,
    size_precision: u8,
    batching: bool,
    /// The class has its own `on_fill`; without one, fills make no round trip (the next message
    /// carries the new position and order ids, and a fill inside a batch is seen there).
    wants_fills: bool,
    next_batch: usize,
    pending: Option<Pending>,
    /// The child's order numbers and the engine's ids, both ways.
    by_ref: HashMap<u64, OrderId>,
    by_id: HashMap<OrderId, u64>,
    /// `[ref, id]` pairs the child has not been told yet.
    assigned: Vec<(u64, u64)>,
    /// Where this instrument's last bar sat in the lookahead: (generation, index).
    cursor: (u64, usize),
    message: String,
    batch: Vec<Bar>,
    /// The bars the child was sent but has not run yet (its last batch's tail): a batch that
    /// starts with them sends only their number (`keep`) and the bars after them.
    held: Vec<Bar>,
}

impl ScriptStrategy {
    /// Starts the child, loads `script` and instantiates `class(**params)` for `instrument`.
    pub fn start(
        spec: &ScriptSpec<'_>,
        class: &str,
        params: &serde_json::Value,
        instrument: &Instrument,
        options: ScriptOptions,
    ) -> Result<Self, SandboxError> {
        let mut process = ScriptProcess::spawn(&options.policy, spec)?;
        let init = serde_json::json!({
            "type": "init",
            "kind": "strategy",
            "script": spec.script,
            "display": spec.display,
            "class": class,
            "params": params,
            "batching": options.max_batch > 1,
            "instrument": {
                "symbol": instrument.symbol.as_str(),
                "price_precision": instrument.price_precision,
                "size_precision": instrument.size_precision,
            },
        });
        let (batching, wants_fills) = match process.request(init.to_string().as_bytes())? {
            Reply::Ready { batching, fills } => (batching, fills),
            other => {
                return Err(SandboxError::Protocol(format!(
                    "expected ready, got {other:?}"
                )));
            }
        };
        Ok(Self {
            process,
            price_precision: instrument.price_precision,
            size_precision: instrument.size_precision,
            batching: batching && options.max_batch > 1 && options.lookahead.is_some(),
            wants_fills,
            next_batch: FIRST_BATCH.min(options.max_batch.max(1)),
            options,
            pending: None,
            by_ref: HashMap::new(),
            by_id: HashMap::new(),
            assigned: Vec::new(),
            cursor: (0, 0),
            message: String::with_capacity(1 << 16),
            batch: Vec::new(),
            held: Vec::new(),
        })
    }

    /// What confinement the child got.
    pub fn report(&self) -> &crate::process::SandboxReport {
        &self.process.report
    }

    fn failed(&self) -> bool {
        self.options.failure.is_set()
    }

    fn fail(&mut self, e: SandboxError) {
        self.pending = None;
        self.options.failure.set(e);
    }

    /// `"type":"…","ts":…,"position":…,"open_orders":…[,"assigned":[…]]` opening a message.
    fn begin(&mut self, kind: &str, ctx: &StrategyContext<'_>) {
        let m = &mut self.message;
        m.clear();
        let _ = write!(
            m,
            "{{\"type\":\"{kind}\",\"ts\":{},\"position\":{},\"open_orders\":{}",
            ctx.ts().0,
            ctx.net_raw(),
            working(ctx)
        );
        if !self.assigned.is_empty() {
            m.push_str(",\"assigned\":[");
            for (i, (r, id)) in self.assigned.iter().enumerate() {
                if i > 0 {
                    m.push(',');
                }
                let _ = write!(m, "[{r},{id}]");
            }
            m.push(']');
            self.assigned.clear();
        }
    }

    /// Sends the message built in `self.message` and applies the requests of a `done` reply.
    fn exchange(&mut self) -> Option<(usize, Vec<serde_json::Value>)> {
        self.message.push('}');
        match self.process.request(self.message.as_bytes()) {
            Ok(Reply::Done {
                consumed,
                commands,
                batching,
            }) => {
                if batching == Some(false) {
                    self.batching = false;
                }
                Some((consumed.unwrap_or(1), commands))
            }
            Ok(other) => {
                self.fail(SandboxError::Protocol(format!(
                    "expected done, got {other:?}"
                )));
                None
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn simple_call(&mut self, kind: &str, ctx: &mut StrategyContext<'_>) {
        if self.failed() {
            return;
        }
        self.settle_pending();
        self.begin(kind, ctx);
        if let Some((_, commands)) = self.exchange() {
            self.apply(ctx, &commands);
        }
    }

    /// A batch in flight meets an event it did not foresee: rewinds the child to the bars the
    /// engine really processed.
    fn settle_pending(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        self.held.clear();
        self.message.clear();
        let _ = write!(self.message, "{{\"type\":\"rewind\",\"keep\":{}", p.next);
        self.exchange();
    }

    /// The upcoming bars of this instrument starting with `bar`, up to the batch size.
    fn collect_batch(&mut self, bar: &Bar) {
        self.batch.clear();
        self.batch.push(*bar);
        let Some(lookahead) = &self.options.lookahead else {
            return;
        };
        let Ok(chunk) = lookahead.chunk.lock() else {
            return;
        };
        let (generation, bars) = (&chunk.0, &chunk.1);
        let from = if self.cursor.0 == *generation {
            self.cursor.1
        } else {
            0
        };
        let Some(at) = bars[from.min(bars.len())..]
            .iter()
            .position(|b| b == bar)
            .map(|i| i + from)
        else {
            return;
        };
        self.cursor = (*generation, at);
        let limit = self.next_batch;
        for b in &bars[at + 1..] {
            if self.batch.len() >= limit {
                break;
            }
            if b.instrument == bar.instrument {
                self.batch.push(*b);
            }
        }
    }

    /// Carries out the child's requests through the context; a bad one fails the run.
    fn apply(&mut self, ctx: &mut StrategyContext<'_>, commands: &[serde_json::Value]) {
        for (i, command) in commands.iter().enumerate() {
            if let Err(message) = self.apply_one(ctx, command) {
                self.fail(SandboxError::Request(format!(
                    "the script's request #{} at ts {} is invalid: {message} (request: {command})",
                    i + 1,
                    ctx.ts().0
                )));
                return;
            }
        }
    }

    fn apply_one(
        &mut self,
        ctx: &mut StrategyContext<'_>,
        command: &serde_json::Value,
    ) -> Result<(), String> {
        let field = |name: &str| command.get(name).and_then(|v| v.as_str());
        match field("op") {
            Some("submit") => {
                let side = match field("side") {
                    Some("buy") => OrderSide::Buy,
                    Some("sell") => OrderSide::Sell,
                    other => return Err(format!("side {other:?}: expected buy or sell")),
                };
                let order_type = match field("type") {
                    Some("market") => OrderType::Market,
                    Some("limit") => OrderType::Limit,
                    Some("stop") => OrderType::Stop,
                    Some("stop_limit") => OrderType::StopLimit,
                    other => {
                        return Err(format!(
                            "type {other:?}: expected market, limit, stop or stop_limit"
                        ));
                    }
                };
                let quantity_text = field("quantity").ok_or("quantity is missing")?;
                let quantity = Quantity::parse(quantity_text, self.size_precision)
                    .map_err(|e| format!("quantity `{quantity_text}`: {e}"))?;
                if quantity.raw() == 0 {
                    return Err("quantity must be positive".to_string());
                }
                let price = |name: &str| -> Result<Option<Price>, String> {
                    match field(name) {
                        None => Ok(None),
                        Some(t) => Price::parse(t, self.price_precision)
                            .map(Some)
                            .map_err(|e| format!("{name} `{t}`: {e}")),
                    }
                };
                let time_in_force = match field("tif").unwrap_or("gtc") {
                    "gtc" => TimeInForce::Gtc,
                    "ioc" => TimeInForce::Ioc,
                    "day" => TimeInForce::Day,
                    other => return Err(format!("tif `{other}`: expected gtc, ioc or day")),
                };
                let request = OrderRequest {
                    side,
                    order_type,
                    quantity,
                    price: price("price")?,
                    trigger_price: price("trigger_price")?,
                    time_in_force,
                    reduce_only: command
                        .get("reduce_only")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                    trail: None,
                    instrument: None,
                };
                let id = ctx.submit(request);
                if let Some(r) = command.get("ref").and_then(|v| v.as_u64()) {
                    self.by_ref.insert(r, id);
                    self.by_id.insert(id, r);
                    self.assigned.push((r, id.0));
                }
            }
            Some("close_position") => {
                ctx.close_position();
            }
            Some("cancel") => {
                let id = if let Some(r) = command.get("ref").and_then(|v| v.as_u64()) {
                    *self
                        .by_ref
                        .get(&r)
                        .ok_or_else(|| format!("no order with ref {r}"))?
                } else if let Some(id) = command.get("order_id").and_then(|v| v.as_u64()) {
                    OrderId(id)
                } else {
                    return Err("cancel needs `ref` or `order_id`".to_string());
                };
                ctx.cancel(id);
            }
            Some("cancel_all") => ctx.cancel_all(),
            other => {
                return Err(format!(
                    "op {other:?}: expected submit, close_position, cancel or cancel_all"
                ));
            }
        }
        Ok(())
    }
}

/// Orders of the strategy's instrument working at the venue when the callback started.
fn working(ctx: &StrategyContext<'_>) -> usize {
    ctx.open_orders_of(ctx.instrument().id).count()
}

impl Strategy for ScriptStrategy {
    fn on_start(&mut self, ctx: &mut StrategyContext<'_>) {
        self.simple_call("start", ctx);
    }

    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        if self.failed() {
            return;
        }
        if let Some(p) = &mut self.pending {
            if p.bars.get(p.next) == Some(bar) && working(ctx) == 0 && ctx.net_raw() == p.position {
                p.next += 1;
                if p.next == p.consumed {
                    let commands = std::mem::take(&mut p.commands);
                    self.pending = None;
                    self.apply(ctx, &commands);
                }
                return;
            }
            self.settle_pending();
            if self.failed() {
                return;
            }
        }
        if self.batching && working(ctx) == 0 {
            self.collect_batch(bar);
        } else {
            self.batch.clear();
            self.batch.push(*bar);
        }
        let keep = self
            .held
            .iter()
            .zip(&self.batch)
            .take_while(|(a, b)| a == b)
            .count();
        self.begin("bars", ctx);
        if keep > 0 {
            let _ = write!(self.message, ",\"keep\":{keep}");
        }
        // Flat: six integers per bar (a flat array parses about twice as fast in Python).
        self.message.push_str(",\"bars\":[");
        for (i, b) in self.batch[keep..].iter().enumerate() {
            if i > 0 {
                self.message.push(',');
            }
            let _ = write!(
                self.message,
                "{},{},{},{},{},{}",
                b.ts.0,
                b.open.raw(),
                b.high.raw(),
                b.low.raw(),
                b.close.raw(),
                b.volume.raw()
            );
        }
        self.message.push(']');
        let sent = self.batch.len();
        let Some((consumed, commands)) = self.exchange() else {
            return;
        };
        if consumed == 0 || consumed > sent {
            self.fail(SandboxError::Protocol(format!(
                "the runner consumed {consumed} of {sent} bars"
            )));
            return;
        }
        self.held.clear();
        self.held.extend_from_slice(&self.batch[consumed..]);
        if sent > 1 {
            self.next_batch = if consumed == sent {
                (sent * 2).min(self.options.max_batch)
            } else {
                (consumed * 2).clamp(MIN_BATCH, self.options.max_batch)
            };
        }
        if consumed == 1 {
            self.apply(ctx, &commands);
        } else {
            self.pending = Some(Pending {
                bars: self.batch[..consumed].to_vec(),
                next: 1,
                consumed,
                commands,
                position: ctx.net_raw(),
            });
        }
    }

    fn on_fill(&mut self, ctx: &mut StrategyContext<'_>, fill: &Fill) {
        if self.failed() || !self.wants_fills {
            return;
        }
        self.settle_pending();
        self.begin("fill", ctx);
        let reference = self.by_id.get(&fill.order_id).copied();
        let _ = write!(
            self.message,
            ",\"fill\":{{\"order_id\":{},\"side\":\"{}\",\"quantity\":{},\"price\":{},\"fee\":\"{}\"",
            fill.order_id.0,
            match fill.side {
                OrderSide::Buy => "buy",
                OrderSide::Sell => "sell",
            },
            fill.quantity.raw(),
            fill.price.raw(),
            fill.fee
        );
        if let Some(r) = reference {
            let _ = write!(self.message, ",\"ref\":{r}");
        }
        self.message.push('}');
        if let Some((_, commands)) = self.exchange() {
            self.apply(ctx, &commands);
        }
    }

    fn on_stop(&mut self, ctx: &mut StrategyContext<'_>) {
        self.simple_call("stop", ctx);
    }
}
