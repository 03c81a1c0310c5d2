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

use tradeloom_core::{Event, Fill, Symbol};
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
        }
    }
}

/// The counters of a run in progress at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSnapshot {
    pub run_id: String,
    pub bars: u64,
    pub orders: u64,
    pub fills: u64,
    pub rejected_orders: u64,
    pub rejections: BTreeMap<String, u64>,
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

/// A [`Sink`] that counts order events into a [`LiveRun`] and passes everything on.
pub struct CountingSink<'a, S> {
    inner: &'a mut S,
    live: &'a LiveRun,
}

impl<'a, S: Sink> CountingSink<'a, S> {
    pub fn new(inner: &'a mut S, live: &'a LiveRun) -> Self {
        Self { inner, live }
    }
}

impl<S: Sink> Sink for CountingSink<'_, S> {
    fn on_event(&mut self, event: &Event) {
        self.live.observe(event);
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
        assert_eq!(sink.events.len(), 4, "every event is passed on");
        let snap = snapshot()
            .into_iter()
            .find(|s| s.run_id == "live-test-1")
            .unwrap();
        assert_eq!(
            (snap.bars, snap.orders, snap.fills, snap.rejected_orders),
            (4106, 0, 0, 3)
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
}
