//! Counters of the runs in progress in this process — bars, orders, fills and rejections as the
//! engine reports them — so that `/metrics` shows a run while it runs, not only once its
//! `metrics.json` exists.
//!
//! The runner [registers](register) each run and reports through a [`CountingSink`] wrapped
//! around its run folder writer; the guard it holds removes the run when it ends. Counting is
//! one relaxed atomic add per order event and one per chunk of bars, so the engine's hot loop
//! stays as it was (`tradeloom bench engine` prints the difference).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tradeloom_core::{Bar, Event, Fill, Symbol};
use tradeloom_engine::sink::OrderRecord;
use tradeloom_engine::{EquityPoint, Sink, Trade};

/// The counters of one run in progress.
#[derive(Debug, Default)]
pub struct LiveRun {
    run_id: String,
    bars: AtomicU64,
    orders: AtomicU64,
    fills: AtomicU64,
    rejected_orders: AtomicU64,
    /// Rejections by code; touched only when an order is rejected.
    rejections: Mutex<Vec<(&'static str, u64)>>,
    /// Scan → first accepted order latencies of a paper run fed by scans.
    scan_to_order: LatencyHistogram,
}

/// Upper bounds in seconds of `tradeloom_scan_to_order_seconds`: 25 µs to 1 s (the budget of
/// reference document 004 is 10 ms, the aim in-process under 1 ms).
pub const SCAN_TO_ORDER_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// A latency histogram over [`SCAN_TO_ORDER_BUCKETS`]: one relaxed atomic add per bucket, sum
/// and count, so recording never blocks the run.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// `counts[i]`: observations in bucket `i` (not cumulative); the last is above every bound.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: (0..=SCAN_TO_ORDER_BUCKETS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn observe(&self, latency: std::time::Duration) {
        let secs = latency.as_secs_f64();
        let i = SCAN_TO_ORDER_BUCKETS.partition_point(|b| *b < secs);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram now.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut running = 0;
        LatencySnapshot {
            cumulative: SCAN_TO_ORDER_BUCKETS
                .iter()
                .zip(&self.counts)
                .map(|(b, c)| {
                    running += c.load(Ordering::Relaxed);
                    (*b, running)
                })
                .collect(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// A latency histogram at one moment, as Prometheus renders it.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySnapshot {
    /// `(le, observations ≤ le)` per finite bound; `+Inf` is `count`.
    pub cumulative: Vec<(f64, u64)>,
    /// Sum of the observations in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

impl LiveRun {
    /// Counters not listed anywhere (benchmarks, tests).
    pub fn detached(run_id: &str) -> Self {
        Self {
            run_id: run_id.to_string(),
            ..Self::default()
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Adds `n` processed bars.
    pub fn add_bars(&self, n: u64) {
        self.bars.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the time from a scan's observation to its first accepted order.
    pub fn observe_scan_to_order(&self, latency: std::time::Duration) {
        self.scan_to_order.observe(latency);
    }

    /// Counts one engine event (orders submitted, fills, rejections by code).
    pub fn observe(&self, event: &Event) {
        match event {
            Event::OrderSubmitted { .. } => {
                self.orders.fetch_add(1, Ordering::Relaxed);
            }
            Event::OrderFilled { .. } => {
                self.fills.fetch_add(1, Ordering::Relaxed);
            }
            Event::OrderRejected { code, .. } => {
                self.rejected_orders.fetch_add(1, Ordering::Relaxed);
                let mut by_code = lock(&self.rejections);
                match by_code.iter_mut().find(|(c, _)| c == code) {
                    Some((_, n)) => *n += 1,
                    None => by_code.push((code, 1)),
                }
            }
            _ => {}
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            run_id: self.run_id.clone(),
            bars: self.bars.load(Ordering::Relaxed),
            orders: self.orders.load(Ordering::Relaxed),
            fills: self.fills.load(Ordering::Relaxed),
            rejected_orders: self.rejected_orders.load(Ordering::Relaxed),
            rejections: lock(&self.rejections)
                .iter()
                .map(|(code, n)| ((*code).to_string(), *n))
                .collect(),
            scan_to_order: Some(self.scan_to_order.snapshot()).filter(|h| h.count > 0),
        }
    }
}

/// The counters of a run in progress at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSnapshot {
    pub run_id: String,
    pub bars: u64,
    pub orders: u64,
    pub fills: u64,
    pub rejected_orders: u64,
    pub rejections: BTreeMap<String, u64>,
    /// Scan → first accepted order latencies, once a scan led to an order.
    pub scan_to_order: Option<LatencySnapshot>,
}

/// The runs in progress in this process.
static RUNNING: Mutex<Vec<Arc<LiveRun>>> = Mutex::new(Vec::new());

/// A poisoned lock only means a panic mid-update of plain counters; they stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lists a run as in progress until the guard is dropped.
pub fn register(run_id: &str) -> LiveGuard {
    let run = Arc::new(LiveRun::detached(run_id));
    lock(&RUNNING).push(run.clone());
    LiveGuard(run)
}

/// The counters of every run in progress in this process, in the order they started.
pub fn snapshot() -> Vec<LiveSnapshot> {
    lock(&RUNNING).iter().map(|r| r.snapshot()).collect()
}

/// The counters of run `run_id` if it is in progress in this process (an observer of a paper
/// run records its latencies there).
pub fn find(run_id: &str) -> Option<Arc<LiveRun>> {
    lock(&RUNNING).iter().find(|r| r.run_id == run_id).cloned()
}

/// Keeps a run listed by [`snapshot`]; dropping it removes the run.
#[derive(Debug)]
pub struct LiveGuard(Arc<LiveRun>);

impl LiveGuard {
    pub fn counters(&self) -> &LiveRun {
        &self.0
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        lock(&RUNNING).retain(|r| !Arc::ptr_eq(r, &self.0));
    }
}

/// A [`Sink`] that counts order events into a [`LiveRun`] and passes everything on. Orders
/// and fills are counted in plain fields and added to the shared counters with each chunk's
/// bars ([`CountingSink::add_bars`]) and when the sink is dropped: no atomic operation per
/// event. Rejections (rare, counted by code) go to the shared counters at once.
pub struct CountingSink<'a, S> {
    inner: &'a mut S,
    live: &'a LiveRun,
    /// Orders submitted since the last flush.
    orders: u64,
    /// Fills since the last flush.
    fills: u64,
}

impl<'a, S: Sink> CountingSink<'a, S> {
    pub fn new(inner: &'a mut S, live: &'a LiveRun) -> Self {
        Self {
            inner,
            live,
            orders: 0,
            fills: 0,
        }
    }
}

impl<S> CountingSink<'_, S> {
    /// Adds `n` processed bars, and the orders and fills counted since the last call, to the
    /// run's counters.
    pub fn add_bars(&mut self, n: u64) {
        self.flush();
        self.live.add_bars(n);
    }

    /// Adds the orders and fills counted so far to the run's counters.
    pub fn flush(&mut self) {
        if self.orders != 0 {
            self.live.orders.fetch_add(self.orders, Ordering::Relaxed);
            self.orders = 0;
        }
        if self.fills != 0 {
            self.live.fills.fetch_add(self.fills, Ordering::Relaxed);
            self.fills = 0;
        }
    }
}

impl<S> Drop for CountingSink<'_, S> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<S: Sink> Sink for CountingSink<'_, S> {
    #[inline]
    fn on_bar(&mut self, bar: &Bar) {
        self.inner.on_bar(bar);
    }
    #[inline]
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::OrderSubmitted { .. } => self.orders += 1,
            Event::OrderFilled { .. } => self.fills += 1,
            Event::OrderRejected { .. } => self.live.observe(event),
            _ => {}
        }
        self.inner.on_event(event);
    }
    fn on_fill(&mut self, fill: &Fill, symbol: Symbol) {
        self.inner.on_fill(fill, symbol);
    }
    fn on_order_closed(&mut self, record: &OrderRecord<'_>) {
        self.inner.on_order_closed(record);
    }
    fn on_trade(&mut self, trade: &Trade) {
        self.inner.on_trade(trade);
    }
    fn on_equity(&mut self, point: &EquityPoint) {
        self.inner.on_equity(point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeloom_core::{OrderId, UnixNanos};

    #[test]
    fn counts_order_events_and_unlists_on_drop() {
        let guard = register("live-test-1");
        let live = guard.counters();
        live.add_bars(4096);
        live.add_bars(10);
        let mut sink = tradeloom_engine::sink::VecSink::default();
        let mut counting = CountingSink::new(&mut sink, live);
        for code in ["risk.kill_switch", "risk.max_position", "risk.kill_switch"] {
            counting.on_event(&Event::OrderRejected {
                ts: UnixNanos(1),
                order_id: OrderId(1),
                code,
                reason: "no".into(),
            });
        }
        counting.on_event(&Event::OrderAccepted {
            ts: UnixNanos(1),
            order_id: OrderId(2),
        });
        counting.on_event(&Event::OrderSubmitted {
            ts: UnixNanos(1),
            order_id: OrderId(2),
            symbol: tradeloom_core::Symbol::new("T").unwrap(),
            side: tradeloom_core::OrderSide::Buy,
            order_type: tradeloom_core::OrderType::Market,
            quantity: tradeloom_core::Quantity::from_int(1, 0),
            price: None,
            trigger_price: None,
            time_in_force: tradeloom_core::TimeInForce::Gtc,
            reduce_only: false,
            links: None,
        });
        assert_eq!(
            live.snapshot().orders,
            0,
            "orders are added with the next chunk's bars"
        );
        counting.add_bars(1);
        assert_eq!((live.snapshot().orders, live.snapshot().bars), (1, 4107));
        counting.on_event(&Event::OrderSubmitted {
            ts: UnixNanos(2),
            order_id: OrderId(3),
            symbol: tradeloom_core::Symbol::new("T").unwrap(),
            side: tradeloom_core::OrderSide::Sell,
            order_type: tradeloom_core::OrderType::Market,
            quantity: tradeloom_core::Quantity::from_int(1, 0),
            price: None,
            trigger_price: None,
            time_in_force: tradeloom_core::TimeInForce::Gtc,
            reduce_only: false,
            links: None,
        });
        drop(counting);
        assert_eq!(sink.events.len(), 6, "every event is passed on");
        let snap = snapshot()
            .into_iter()
            .find(|s| s.run_id == "live-test-1")
            .unwrap();
        assert_eq!(
            (snap.bars, snap.orders, snap.fills, snap.rejected_orders),
            (4107, 2, 0, 3),
            "the sink's drop adds what it counted"
        );
        assert_eq!(
            snap.rejections,
            BTreeMap::from([
                ("risk.kill_switch".to_string(), 2),
                ("risk.max_position".to_string(), 1)
            ])
        );
        drop(guard);
        assert!(snapshot().iter().all(|s| s.run_id != "live-test-1"));
    }

    #[test]
    fn scan_to_order_latencies_fall_into_cumulative_buckets() {
        use std::time::Duration;
        let guard = register("live-test-latency");
        assert_eq!(guard.counters().snapshot().scan_to_order, None);
        let run = find("live-test-latency").unwrap();
        for micros in [10, 30, 700, 2_000_000] {
            run.observe_scan_to_order(Duration::from_micros(micros));
        }
        let h = guard.counters().snapshot().scan_to_order.unwrap();
        assert_eq!(h.count, 4);
        assert!((h.sum_seconds - 2.00074).abs() < 1e-9, "{}", h.sum_seconds);
        let le = |bound: f64| h.cumulative.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(
            (le(0.000_025), le(0.000_05), le(0.001), le(1.0)),
            (1, 2, 3, 3)
        );
        drop(guard);
        assert!(find("live-test-latency").is_none());
    }
}
