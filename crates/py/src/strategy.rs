//! Strategies written in Python, run in process: [`PythonStrategy`] is an engine
//! [`Strategy`] that calls the methods of a `tradeloom.Strategy` object.
//!
//! The engine's [`StrategyContext`] lives only for one callback, so Python never holds it.
//! Before each call the strategy's [`Context`] is given a copy of what the callback may read
//! (time, positions, cash, equity, working orders, last prices) and the id the next order will
//! carry; what Python asks for is checked at once (a bad price raises in the user's own line)
//! and queued; when the call returns the queue is replayed on the engine's context in order,
//! where every order gets the id Python was told. An exception ends the run as failed with the
//! Python traceback ([`StrategyContext::fail`]).
//!
//! The engine calls strategies on the thread that called `execute`, which holds the
//! interpreter's lock for the whole run, so each callback re-enters Python without a lock
//! hand-off.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use tradeloom_core::{
    Bar, Bps, Fill, Instrument, InstrumentId, Money, Order, OrderId, OrderSide, OrderType,
    TimeInForce, Trail, UnixNanos,
};
use tradeloom_engine::{Bracket, OrderRequest, StopLoss, Strategy, StrategyContext};

use crate::values::{float, price, quantity};

/// One bar, as `on_bar` receives it: prices as floats (`open` … `volume`) and exactly as
/// integers at 10^-9 (`open_raw` … `volume_raw`). Read-only from Python; the engine refills
/// the object of the previous bar when nothing else holds it (no allocation per bar).
///
/// Frozen, its values in relaxed atomics (plain loads and stores): reading a field takes no
/// borrow flag, whose compare-and-swap would cost more than the read. It is refilled only
/// while the engine holds the one reference, so no reader can see a bar half-written.
#[pyclass(module = "tradeloom", name = "Bar", frozen)]
pub(crate) struct PyBar {
    /// The run's symbols, indexed by `instrument`.
    symbols: Arc<[Py<PyString>]>,
    instrument: AtomicUsize,
    ts: AtomicI64,
    open_raw: AtomicI64,
    high_raw: AtomicI64,
    low_raw: AtomicI64,
    close_raw: AtomicI64,
    volume_raw: AtomicI64,
}

impl PyBar {
    fn new(symbols: Arc<[Py<PyString>]>, bar: &Bar) -> Self {
        let this = Self {
            symbols,
            instrument: AtomicUsize::new(0),
            ts: AtomicI64::new(0),
            open_raw: AtomicI64::new(0),
            high_raw: AtomicI64::new(0),
            low_raw: AtomicI64::new(0),
            close_raw: AtomicI64::new(0),
            volume_raw: AtomicI64::new(0),
        };
        this.refill(bar);
        this
    }

    /// Makes this object the given bar (only while nothing but the engine holds it).
    fn refill(&self, bar: &Bar) {
        self.instrument
            .store(bar.instrument.index(), Ordering::Relaxed);
        for (field, value) in [
            (&self.ts, bar.ts.0),
            (&self.open_raw, bar.open.raw()),
            (&self.high_raw, bar.high.raw()),
            (&self.low_raw, bar.low.raw()),
            (&self.close_raw, bar.close.raw()),
            (&self.volume_raw, bar.volume.raw()),
        ] {
            field.store(value, Ordering::Relaxed);
        }
    }
}

#[pymethods]
impl PyBar {
    #[getter]
    fn symbol(&self, py: Python<'_>) -> Py<PyString> {
        self.symbols[self.instrument.load(Ordering::Relaxed)].clone_ref(py)
    }
    /// Open time, UTC nanoseconds.
    #[getter]
    fn ts(&self) -> i64 {
        self.ts.load(Ordering::Relaxed)
    }
    #[getter]
    fn open_raw(&self) -> i64 {
        self.open_raw.load(Ordering::Relaxed)
    }
    #[getter]
    fn high_raw(&self) -> i64 {
        self.high_raw.load(Ordering::Relaxed)
    }
    #[getter]
    fn low_raw(&self) -> i64 {
        self.low_raw.load(Ordering::Relaxed)
    }
    #[getter]
    fn close_raw(&self) -> i64 {
        self.close_raw.load(Ordering::Relaxed)
    }
    #[getter]
    fn volume_raw(&self) -> i64 {
        self.volume_raw.load(Ordering::Relaxed)
    }
    #[getter]
    fn open(&self) -> f64 {
        float(self.open_raw())
    }
    #[getter]
    fn high(&self) -> f64 {
        float(self.high_raw())
    }
    #[getter]
    fn low(&self) -> f64 {
        float(self.low_raw())
    }
    #[getter]
    fn close(&self) -> f64 {
        float(self.close_raw())
    }
    #[getter]
    fn volume(&self) -> f64 {
        float(self.volume_raw())
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Bar({} ts={} open={} high={} low={} close={} volume={})",
            self.symbol(py).bind(py),
            UnixNanos(self.ts()),
            self.open(),
            self.high(),
            self.low(),
            self.close(),
            self.volume()
        )
    }
}

/// A fill of one of the strategy's orders, as `on_fill` receives it.
#[pyclass(module = "tradeloom", name = "Fill", frozen)]
pub(crate) struct PyFill {
    #[pyo3(get)]
    id: u64,
    #[pyo3(get)]
    order_id: u64,
    #[pyo3(get)]
    symbol: Py<PyString>,
    /// `"buy"` or `"sell"`.
    #[pyo3(get)]
    side: &'static str,
    #[pyo3(get)]
    quantity: f64,
    #[pyo3(get)]
    price: f64,
    /// The fee, exact, as decimal text.
    #[pyo3(get)]
    fee: String,
    #[pyo3(get)]
    ts: i64,
}

#[pymethods]
impl PyFill {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Fill(order_id={}, {} {} {} @ {}, fee={})",
            self.order_id,
            self.symbol.bind(py),
            self.side,
            self.quantity,
            self.price,
            self.fee
        )
    }
}

/// A working order, as `ctx.open_orders()` lists it.
#[pyclass(module = "tradeloom", name = "Order", frozen)]
pub(crate) struct PyOrder {
    #[pyo3(get)]
    id: u64,
    #[pyo3(get)]
    symbol: Py<PyString>,
    #[pyo3(get)]
    side: &'static str,
    /// `"market"`, `"limit"`, `"stop"`, `"stop_limit"` or `"trailing_stop"`.
    #[pyo3(get)]
    r#type: &'static str,
    #[pyo3(get)]
    quantity: f64,
    #[pyo3(get)]
    filled: f64,
    #[pyo3(get)]
    limit: Option<f64>,
    #[pyo3(get)]
    stop: Option<f64>,
    #[pyo3(get)]
    tif: &'static str,
    #[pyo3(get)]
    reduce_only: bool,
}

#[pymethods]
impl PyOrder {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Order(id={}, {} {} {} {}, filled={}, limit={:?}, stop={:?}, tif={})",
            self.id,
            self.symbol.bind(py),
            self.side,
            self.r#type,
            self.quantity,
            self.filled,
            self.limit,
            self.stop,
            self.tif
        )
    }
}

/// Money (raw at 10^-18) as the float nearest its value to 10^-9: 100000 is 100000.0, not
/// 99999.99999999999.
fn money_float(m: Money) -> f64 {
    let nanos = m.raw() / 1_000_000_000;
    nanos as f64 / 1e9
}

fn side_str(side: OrderSide) -> &'static str {
    match side {
        OrderSide::Buy => "buy",
        OrderSide::Sell => "sell",
    }
}

fn type_str(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "market",
        OrderType::Limit => "limit",
        OrderType::Stop => "stop",
        OrderType::StopLimit => "stop_limit",
        OrderType::TrailingStop => "trailing_stop",
    }
}

fn tif_str(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "gtc",
        TimeInForce::Ioc => "ioc",
        TimeInForce::Day => "day",
    }
}

fn parse_tif(text: &str, method: &str) -> PyResult<TimeInForce> {
    match text.to_ascii_lowercase().as_str() {
        "gtc" => Ok(TimeInForce::Gtc),
        "ioc" => Ok(TimeInForce::Ioc),
        "day" => Ok(TimeInForce::Day),
        _ => Err(PyValueError::new_err(format!(
            "{method}: tif `{text}`: expected gtc, ioc or day"
        ))),
    }
}

fn parse_side(text: &str, method: &str) -> PyResult<OrderSide> {
    match text.to_ascii_lowercase().as_str() {
        "buy" => Ok(OrderSide::Buy),
        "sell" => Ok(OrderSide::Sell),
        _ => Err(PyValueError::new_err(format!(
            "{method}: side `{text}`: expected buy or sell"
        ))),
    }
}

/// What a callback queued, replayed on the engine's context when it returns.
enum Queued {
    Submit(OrderRequest),
    Bracket(Bracket),
    Cancel(OrderId),
    CancelAll(InstrumentId),
    Close(InstrumentId),
}

/// The strategy's view of the run at one callback and the way to trade (`ctx` in Python).
///
/// Read: `ts`, `symbol` (the event's instrument), `symbols`, `cash`, `equity`,
/// `position(symbol=None)`, `last_price(symbol=None)`, `open_orders(symbol=None)`. Act: `buy`,
/// `sell`, `bracket`, `trailing_stop`, `close_position`, `cancel`, `cancel_all`. Orders are
/// carried out after the callback returns, in the order asked: positions do not change during
/// a callback. A context is usable only during the callback it was passed to.
#[pyclass(module = "tradeloom", name = "Context")]
pub(crate) struct Context {
    instruments: Vec<Instrument>,
    symbols: Vec<Py<PyString>>,
    active: bool,
    ts: i64,
    current: usize,
    nets: Vec<i64>,
    marks: Vec<Option<i64>>,
    cash: Money,
    equity: Money,
    open: Vec<Order>,
    next_id: u64,
    queued: Vec<Queued>,
}

impl Context {
    fn new(py: Python<'_>, instruments: &[Instrument]) -> Self {
        Self {
            instruments: instruments.to_vec(),
            symbols: instruments
                .iter()
                .map(|i| PyString::intern(py, i.symbol.as_str()).unbind())
                .collect(),
            active: false,
            ts: 0,
            current: 0,
            nets: Vec::with_capacity(instruments.len()),
            marks: Vec::with_capacity(instruments.len()),
            cash: Money::zero(tradeloom_core::Currency::USD),
            equity: Money::zero(tradeloom_core::Currency::USD),
            open: Vec::new(),
            next_id: 1,
            queued: Vec::new(),
        }
    }

    /// Takes the view of `ctx` for the callback about to run.
    fn begin(&mut self, ctx: &StrategyContext<'_>) {
        self.active = true;
        self.ts = ctx.ts().0;
        self.current = ctx.instrument().id.index();
        self.nets.clear();
        self.marks.clear();
        for inst in &self.instruments {
            self.nets
                .push(ctx.position_of(inst.id).map_or(0, |p| p.net_raw()));
            self.marks.push(ctx.last_price(inst.id).map(|p| p.raw()));
        }
        self.cash = ctx.cash();
        self.equity = ctx.equity();
        self.open.clear();
        self.open.extend(ctx.open_orders().cloned());
        self.next_id = ctx.next_order_id().0;
        self.queued.clear();
    }

    /// Ends the callback: what it queued.
    fn end(&mut self) -> Vec<Queued> {
        self.active = false;
        std::mem::take(&mut self.queued)
    }

    fn check_active(&self, method: &str) -> PyResult<()> {
        if self.active {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(format!(
                "ctx.{method}: the context is usable only during the callback it was passed to"
            )))
        }
    }

    /// The index of `symbol` (the event's instrument when `None`).
    fn index(&self, symbol: Option<&str>, method: &str) -> PyResult<usize> {
        match symbol {
            None => Ok(self.current),
            Some(s) => self
                .instruments
                .iter()
                .position(|i| i.symbol.as_str() == s)
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        self.instruments.iter().map(|i| i.symbol.as_str()).collect();
                    PyValueError::new_err(format!(
                        "{method}: symbol `{s}` is not an instrument of this run ({})",
                        known.join(", ")
                    ))
                }),
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn order(
        &mut self,
        method: &str,
        side: OrderSide,
        qty: &Bound<'_, PyAny>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        tif: &str,
        reduce_only: bool,
        symbol: Option<&str>,
    ) -> PyResult<OrderRequest> {
        self.check_active(method)?;
        let i = self.index(symbol, method)?;
        let inst = &self.instruments[i];
        let q = quantity(qty, inst.size_precision, &format!("{method}: quantity"))?;
        let limit = limit
            .map(|p| price(p, inst.price_precision, &format!("{method}: limit")))
            .transpose()?;
        let stop = stop
            .map(|p| price(p, inst.price_precision, &format!("{method}: stop")))
            .transpose()?;
        let mut request = OrderRequest::market(side, q)
            .with_prices(limit, stop)
            .tif(parse_tif(tif, method)?)
            .on(inst.id);
        if reduce_only {
            request = request.reduce_only();
        }
        Ok(request)
    }

    fn submit(&mut self, request: OrderRequest) -> u64 {
        self.queued.push(Queued::Submit(request));
        self.take_id()
    }
}

#[pymethods]
impl Context {
    /// Event time, UTC nanoseconds.
    #[getter]
    fn ts(&self) -> PyResult<i64> {
        self.check_active("ts")?;
        Ok(self.ts)
    }

    /// The symbol of the event's instrument.
    #[getter]
    fn symbol(&self, py: Python<'_>) -> PyResult<Py<PyString>> {
        self.check_active("symbol")?;
        Ok(self.symbols[self.current].clone_ref(py))
    }

    /// Every symbol of the run.
    #[getter]
    fn symbols<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.symbols.iter().map(|s| s.clone_ref(py)))
    }

    /// Cash now (fees and realised PnL included), as a float; `cash_exact` is the decimal text.
    #[getter]
    fn cash(&self) -> PyResult<f64> {
        self.check_active("cash")?;
        Ok(money_float(self.cash))
    }

    #[getter]
    fn cash_exact(&self) -> PyResult<String> {
        self.check_active("cash_exact")?;
        Ok(self.cash.to_string())
    }

    /// Cash plus open positions at their last prices.
    #[getter]
    fn equity(&self) -> PyResult<f64> {
        self.check_active("equity")?;
        Ok(money_float(self.equity))
    }

    #[getter]
    fn equity_exact(&self) -> PyResult<String> {
        self.check_active("equity_exact")?;
        Ok(self.equity.to_string())
    }

    /// Signed net quantity of `symbol`'s position (the event's instrument by default).
    #[pyo3(signature = (symbol=None))]
    fn position(&self, symbol: Option<&str>) -> PyResult<f64> {
        self.check_active("position")?;
        Ok(float(self.nets[self.index(symbol, "position")?]))
    }

    /// The last close of `symbol`, or `None` before its first bar.
    #[pyo3(signature = (symbol=None))]
    fn last_price(&self, symbol: Option<&str>) -> PyResult<Option<f64>> {
        self.check_active("last_price")?;
        Ok(self.marks[self.index(symbol, "last_price")?].map(float))
    }

    /// The orders working when the callback started (of `symbol` only, if given), in
    /// submission order.
    #[pyo3(signature = (symbol=None))]
    fn open_orders<'py>(
        &self,
        py: Python<'py>,
        symbol: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_active("open_orders")?;
        let only = symbol
            .map(|s| self.index(Some(s), "open_orders"))
            .transpose()?;
        let list = PyList::empty(py);
        for o in &self.open {
            let i = o.instrument.index();
            if only.is_some_and(|k| k != i) {
                continue;
            }
            let filled = o.quantity.raw() - o.remaining().raw();
            list.append(PyOrder {
                id: o.id.0,
                symbol: self.symbols[i].clone_ref(py),
                side: side_str(o.side),
                r#type: type_str(o.order_type),
                quantity: float(o.quantity.raw()),
                filled: float(filled),
                limit: o.price.map(|p| float(p.raw())),
                stop: o.trigger_price.map(|p| float(p.raw())),
                tif: tif_str(o.time_in_force),
                reduce_only: o.reduce_only,
            })?;
        }
        Ok(list)
    }

    /// Queues a buy: market without prices, limit with `limit`, stop with `stop`, stop-limit
    /// with both. Returns the order id it will carry.
    #[pyo3(signature = (quantity, limit=None, stop=None, tif="gtc", reduce_only=false, symbol=None))]
    #[allow(clippy::too_many_arguments)]
    fn buy(
        &mut self,
        quantity: &Bound<'_, PyAny>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        tif: &str,
        reduce_only: bool,
        symbol: Option<&str>,
    ) -> PyResult<u64> {
        let r = self.order(
            "buy",
            OrderSide::Buy,
            quantity,
            limit,
            stop,
            tif,
            reduce_only,
            symbol,
        )?;
        Ok(self.submit(r))
    }

    /// Queues a sell (see `buy`).
    #[pyo3(signature = (quantity, limit=None, stop=None, tif="gtc", reduce_only=false, symbol=None))]
    #[allow(clippy::too_many_arguments)]
    fn sell(
        &mut self,
        quantity: &Bound<'_, PyAny>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        tif: &str,
        reduce_only: bool,
        symbol: Option<&str>,
    ) -> PyResult<u64> {
        let r = self.order(
            "sell",
            OrderSide::Sell,
            quantity,
            limit,
            stop,
            tif,
            reduce_only,
            symbol,
        )?;
        Ok(self.submit(r))
    }

    /// Queues a trailing stop on `side` whose trigger follows the best price by `offset`
    /// (a price distance) and/or `bps`. Returns its id.
    #[pyo3(signature = (side, quantity, offset=None, bps=None, tif="gtc", reduce_only=false, symbol=None))]
    #[allow(clippy::too_many_arguments)]
    fn trailing_stop(
        &mut self,
        side: &str,
        quantity: &Bound<'_, PyAny>,
        offset: Option<&Bound<'_, PyAny>>,
        bps: Option<&Bound<'_, PyAny>>,
        tif: &str,
        reduce_only: bool,
        symbol: Option<&str>,
    ) -> PyResult<u64> {
        let method = "trailing_stop";
        let side = parse_side(side, method)?;
        let base = self.order(method, side, quantity, None, None, tif, reduce_only, symbol)?;
        let trail = self.trail(offset, bps, method, base)?;
        let mut request =
            OrderRequest::trailing_stop(side, base.quantity, trail).tif(base.time_in_force);
        request.instrument = base.instrument;
        request.reduce_only = base.reduce_only;
        Ok(self.submit(request))
    }

    /// Queues a bracket: an entry (market, or with `limit`/`stop`) and, once it fills, a
    /// take-profit limit at `take_profit` and a stop-loss at `stop_loss` (or trailing by
    /// `trail`/`trail_bps`) as one-cancels-other. Returns `(entry, take_profit, stop_loss)` ids
    /// (`None` for a leg not asked for).
    #[pyo3(signature = (side, quantity, limit=None, stop=None, take_profit=None, stop_loss=None, trail=None, trail_bps=None, tif="gtc", symbol=None))]
    #[allow(clippy::too_many_arguments)]
    fn bracket(
        &mut self,
        side: &str,
        quantity: &Bound<'_, PyAny>,
        limit: Option<&Bound<'_, PyAny>>,
        stop: Option<&Bound<'_, PyAny>>,
        take_profit: Option<&Bound<'_, PyAny>>,
        stop_loss: Option<&Bound<'_, PyAny>>,
        trail: Option<&Bound<'_, PyAny>>,
        trail_bps: Option<&Bound<'_, PyAny>>,
        tif: &str,
        symbol: Option<&str>,
    ) -> PyResult<(u64, Option<u64>, Option<u64>)> {
        let method = "bracket";
        let side = parse_side(side, method)?;
        let entry = self.order(method, side, quantity, limit, stop, tif, false, symbol)?;
        let precision = self.instruments[self.index(symbol, method)?].price_precision;
        let take_profit = take_profit
            .map(|p| price(p, precision, "bracket: take_profit"))
            .transpose()?;
        let stop_loss = match (stop_loss, trail.is_some() || trail_bps.is_some()) {
            (Some(_), true) => {
                return Err(PyValueError::new_err(
                    "bracket: give stop_loss or trail/trail_bps, not both",
                ));
            }
            (Some(p), false) => Some(StopLoss::Stop(price(p, precision, "bracket: stop_loss")?)),
            (None, true) => Some(StopLoss::Trailing(
                self.trail(trail, trail_bps, method, entry)?,
            )),
            (None, false) => None,
        };
        let ids = (
            self.take_id(),
            take_profit.map(|_| self.take_id()),
            stop_loss.map(|_| self.take_id()),
        );
        self.queued.push(Queued::Bracket(Bracket {
            entry,
            take_profit,
            stop_loss,
        }));
        Ok(ids)
    }

    /// Queues a market order flattening `symbol`'s position; its id, or `None` when flat.
    #[pyo3(signature = (symbol=None))]
    fn close_position(&mut self, symbol: Option<&str>) -> PyResult<Option<u64>> {
        self.check_active("close_position")?;
        let i = self.index(symbol, "close_position")?;
        // Positions do not move during a callback: the engine's `close_position_of`, replayed,
        // finds the position seen here and queues the order under the id taken now.
        if self.nets[i] == 0 {
            return Ok(None);
        }
        self.queued.push(Queued::Close(self.instruments[i].id));
        Ok(Some(self.take_id()))
    }

    /// Cancels order `order_id` (nothing if it no longer works).
    fn cancel(&mut self, order_id: u64) -> PyResult<()> {
        self.check_active("cancel")?;
        self.queued.push(Queued::Cancel(OrderId(order_id)));
        Ok(())
    }

    /// Cancels every working order of `symbol` (the event's instrument by default).
    #[pyo3(signature = (symbol=None))]
    fn cancel_all(&mut self, symbol: Option<&str>) -> PyResult<()> {
        self.check_active("cancel_all")?;
        let i = self.index(symbol, "cancel_all")?;
        self.queued.push(Queued::CancelAll(self.instruments[i].id));
        Ok(())
    }

    fn __repr__(&self) -> String {
        if !self.active {
            return "Context(outside a callback)".to_string();
        }
        format!(
            "Context(ts={}, symbol={}, cash={}, equity={})",
            UnixNanos(self.ts),
            self.instruments[self.current].symbol,
            self.cash,
            self.equity
        )
    }
}

impl Context {
    fn trail(
        &self,
        offset: Option<&Bound<'_, PyAny>>,
        bps: Option<&Bound<'_, PyAny>>,
        method: &str,
        base: OrderRequest,
    ) -> PyResult<Trail> {
        let i = base.instrument.map_or(self.current, |id| id.index());
        let precision = self.instruments[i].price_precision;
        let offset = offset
            .map(|p| price(p, precision, &format!("{method}: offset")))
            .transpose()?;
        let bps = bps
            .map(|b| {
                let text = b.str()?.to_string();
                Bps::parse(&text)
                    .map_err(|e| PyValueError::new_err(format!("{method}: bps `{text}`: {e}")))
            })
            .transpose()?;
        if offset.is_none() && bps.is_none() {
            return Err(PyValueError::new_err(format!(
                "{method}: give the trail as an offset, bps or both"
            )));
        }
        Ok(Trail { offset, bps })
    }
}

/// The `on_*` methods a strategy overrides (bound to it), or `None` for those it leaves to
/// `tradeloom.Strategy`'s no-ops.
pub(crate) struct Hooks {
    pub on_start: Option<Py<PyAny>>,
    pub on_bar: Option<Py<PyAny>>,
    pub on_fill: Option<Py<PyAny>>,
    pub on_stop: Option<Py<PyAny>>,
}

impl Hooks {
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Self {
        let copy = |h: &Option<Py<PyAny>>| h.as_ref().map(|h| h.clone_ref(py));
        Self {
            on_start: copy(&self.on_start),
            on_bar: copy(&self.on_bar),
            on_fill: copy(&self.on_fill),
            on_stop: copy(&self.on_stop),
        }
    }
}

/// A `tradeloom.Strategy` object driven by the engine (portfolio mode: one object sees every
/// instrument's bars).
pub(crate) struct PythonStrategy {
    name: String,
    hooks: Hooks,
    context: Py<Context>,
    symbols: Arc<[Py<PyString>]>,
    format_exception: Py<PyAny>,
    failed: bool,
    /// The last bar passed to `on_bar`, refilled for the next one when only this holds it.
    bar: Option<Py<PyBar>>,
}

impl PythonStrategy {
    pub(crate) fn new(
        py: Python<'_>,
        name: String,
        hooks: Hooks,
        instruments: &[Instrument],
    ) -> PyResult<Self> {
        let context = Context::new(py, instruments);
        let symbols = context.symbols.iter().map(|s| s.clone_ref(py)).collect();
        Ok(Self {
            name,
            hooks,
            context: Py::new(py, context)?,
            symbols,
            format_exception: py
                .import("traceback")?
                .getattr("format_exception")?
                .unbind(),
            failed: false,
            bar: None,
        })
    }

    /// Calls `hook(ctx, *args)` with the view of `ctx`, then replays what it queued.
    fn call(
        &mut self,
        py: Python<'_>,
        ctx: &mut StrategyContext<'_>,
        which: &'static str,
        args: impl FnOnce(Python<'_>) -> PyResult<Option<Py<PyAny>>>,
    ) {
        let hook = match which {
            "on_start" => &self.hooks.on_start,
            "on_bar" => &self.hooks.on_bar,
            "on_fill" => &self.hooks.on_fill,
            _ => &self.hooks.on_stop,
        };
        let Some(hook) = hook else { return };
        self.context.borrow_mut(py).begin(ctx);
        let context = self.context.clone_ref(py).into_any();
        let result = args(py).and_then(|arg| match arg {
            Some(arg) => hook.call1(py, (context, arg)),
            None => hook.call1(py, (context,)),
        });
        let queued = self.context.borrow_mut(py).end();
        match result {
            Ok(_) => self.replay(ctx, queued),
            Err(e) => {
                self.failed = true;
                let message = self.describe(py, &e, which, ctx.ts());
                ctx.fail(message);
            }
        }
    }

    /// Queues on the engine's context what Python asked for; each order gets the id Python was
    /// told.
    fn replay(&mut self, ctx: &mut StrategyContext<'_>, queued: Vec<Queued>) {
        for q in queued {
            match q {
                Queued::Submit(request) => {
                    ctx.submit(request);
                }
                Queued::Bracket(bracket) => {
                    ctx.bracket(bracket);
                }
                Queued::Cancel(id) => ctx.cancel(id),
                Queued::CancelAll(id) => ctx.cancel_all_of(id),
                Queued::Close(id) => {
                    ctx.close_position_of(id);
                }
            }
        }
    }

    /// "strategy `python:x.Y` raised in on_bar at <ts>:" and the Python traceback.
    fn describe(&self, py: Python<'_>, e: &PyErr, which: &str, ts: UnixNanos) -> String {
        let formatted = self
            .format_exception
            .call1(
                py,
                (
                    e.get_type(py),
                    e.value(py),
                    e.traceback(py)
                        .map_or_else(|| py.None(), |t| t.into_any().unbind()),
                ),
            )
            .and_then(|lines| lines.extract::<Vec<String>>(py))
            .map(|lines| lines.concat())
            .unwrap_or_else(|_| e.to_string());
        format!(
            "strategy `{}` raised in {which} at {ts}:\n{}",
            self.name,
            formatted.trim_end()
        )
    }
}

impl Strategy for PythonStrategy {
    fn on_start(&mut self, ctx: &mut StrategyContext<'_>) {
        if self.failed {
            return;
        }
        Python::attach(|py| self.call(py, ctx, "on_start", |_| Ok(None)));
    }

    fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, bar: &Bar) {
        if self.failed || self.hooks.on_bar.is_none() {
            return;
        }
        Python::attach(|py| {
            // The previous bar's object, if the strategy kept no reference to it.
            let refilled = self
                .bar
                .as_ref()
                .filter(|b| b.get_refcnt(py) == 1)
                .map(|b| {
                    b.get().refill(bar);
                    b.clone_ref(py)
                });
            let object = match refilled {
                Some(b) => Ok(b),
                None => Py::new(py, PyBar::new(self.symbols.clone(), bar)),
            };
            let object = match object {
                Ok(object) => object,
                Err(e) => {
                    self.failed = true;
                    let message = self.describe(py, &e, "on_bar", ctx.ts());
                    ctx.fail(message);
                    return;
                }
            };
            self.bar = Some(object.clone_ref(py));
            self.call(py, ctx, "on_bar", |_| Ok(Some(object.into_any())));
        });
    }

    fn on_fill(&mut self, ctx: &mut StrategyContext<'_>, fill: &Fill) {
        if self.failed || self.hooks.on_fill.is_none() {
            return;
        }
        let symbol = fill.instrument.index();
        Python::attach(|py| {
            let symbol = self.symbols[symbol].clone_ref(py);
            self.call(py, ctx, "on_fill", |py| {
                let fill = PyFill {
                    id: fill.id,
                    order_id: fill.order_id.0,
                    symbol,
                    side: side_str(fill.side),
                    quantity: float(fill.quantity.raw()),
                    price: float(fill.price.raw()),
                    fee: fill.fee.to_string(),
                    ts: fill.ts.0,
                };
                Ok(Some(Py::new(py, fill)?.into_any()))
            })
        });
    }

    fn on_stop(&mut self, ctx: &mut StrategyContext<'_>) {
        if self.failed {
            return;
        }
        Python::attach(|py| self.call(py, ctx, "on_stop", |_| Ok(None)));
    }
}

/// The bound `on_*` methods `names` of `object`.
pub(crate) fn hooks(object: &Bound<'_, PyAny>, names: &Bound<'_, PyTuple>) -> PyResult<Hooks> {
    let mut hooks = Hooks {
        on_start: None,
        on_bar: None,
        on_fill: None,
        on_stop: None,
    };
    for name in names.iter() {
        let name: String = name.extract()?;
        let method = Some(object.getattr(name.as_str())?.unbind());
        match name.as_str() {
            "on_start" => hooks.on_start = method,
            "on_bar" => hooks.on_bar = method,
            "on_fill" => hooks.on_fill = method,
            "on_stop" => hooks.on_stop = method,
            other => {
                return Err(PyValueError::new_err(format!(
                    "strategy: `{other}` is not a callback (on_start, on_bar, on_fill, on_stop)"
                )));
            }
        }
    }
    Ok(hooks)
}
