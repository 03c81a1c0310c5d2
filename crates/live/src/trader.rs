//! The event-driven trader (reference document 004): a paper run of a `scan_dir` spec that
//! reacts to each scan the bridge publishes and publishes its own per-day PnL and state back
//! into a feature map, `<map>.trader` (reference document 004's `DOLPHIN_PNL_BLUE[date]` and
//! `DOLPHIN_STATE_BLUE["latest"]`).
//!
//! The trader map's keys:
//! - `state`: `{"run_id", "status", "positions": {SYMBOL: {"quantity", "avg_price"}}, "cash",
//!   "equity", "last_scan_seq", "last_scan_source", "scans", "orders", "fills", "updated_at"}`
//!   (money and quantities as exact decimal strings), after every scan and at the stop;
//! - `pnl:YYYY-MM-DD` (UTC days of the scans' times): `{"date", "start_equity", "equity",
//!   "pnl"}`, the equity change of that day, published with the state when it changed.
//!
//! Both are published after the scan's order, never on the way to it (an equity point comes
//! while a scan is processed, before the strategy decides); the map's file follows within
//! [`MIRROR_DELAY`](tradeloom_queue::MIRROR_DELAY) and at once at the stop.
//!
//! [`TraderObserver`] is the [`PaperObserver`] that does this and records the scan→order
//! latency into the run's live counters (`tradeloom_scan_to_order_seconds` on `/metrics`).

pub mod bench;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tradeloom_core::{Event, Money, UnixNanos};
use tradeloom_engine::EquityPoint;
use tradeloom_queue::FeatureMap;
use tradeloom_runs::RunOutcome;
use tradeloom_runs::live::LiveRun;
use tradeloom_runs::paper::{PaperObserver, Scan};

/// The trader map of scan map `map`: `<map>.trader`.
pub fn trader_map_name(map: &str) -> String {
    format!("{map}.trader")
}

/// What a [`TraderObserver`] saw; shared with whoever runs it (the bench reads the latencies
/// and waits on the condition variable for each scan to be processed).
pub type SharedRecord = Arc<(std::sync::Mutex<TraderRecord>, std::sync::Condvar)>;

/// What a [`TraderObserver`] saw.
#[derive(Debug, Default)]
pub struct TraderRecord {
    /// Scans processed.
    pub scans: u64,
    /// `(scan source, observed, first accepted order)` of every scan that led to an order.
    pub latencies: Vec<(String, Instant, Instant)>,
}

/// Publishes a paper run's state and per-day PnL into a feature map and records scan→order
/// latencies.
pub struct TraderObserver {
    map: Arc<dyn FeatureMap>,
    live: Option<Arc<LiveRun>>,
    run_id: String,
    positions: BTreeMap<String, (String, Option<String>)>,
    cash: Option<Money>,
    equity: Option<Money>,
    /// The day of the last equity point and the equity it started with.
    day: Option<(String, Money)>,
    last_scan: Option<(u64, String)>,
    scans: u64,
    orders: u64,
    fills: u64,
    last_ts: UnixNanos,
    /// The equity of the last point.
    prev_equity: Option<Money>,
    /// The day whose PnL changed since it was last published (published after the scan's
    /// order, not on the way to it).
    pnl_due: bool,
    record: Option<SharedRecord>,
    publish_errors: u64,
}

impl std::fmt::Debug for TraderObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraderObserver")
            .field("map", &self.map.name())
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

fn rfc3339(ts: UnixNanos) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ts.0).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn day_of(ts: UnixNanos) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ts.0)
        .format("%Y-%m-%d")
        .to_string()
}

impl TraderObserver {
    /// An observer publishing into `map` (the trader map).
    pub fn new(map: Arc<dyn FeatureMap>) -> Self {
        Self {
            map,
            live: None,
            run_id: String::new(),
            positions: BTreeMap::new(),
            cash: None,
            equity: None,
            day: None,
            last_scan: None,
            scans: 0,
            orders: 0,
            fills: 0,
            last_ts: UnixNanos(0),
            prev_equity: None,
            pnl_due: false,
            record: None,
            publish_errors: 0,
        }
    }

    /// The equity the run starts with (the account's initial cash): the first day's PnL is
    /// measured from it (without it, from the first equity point).
    pub fn starting_equity(mut self, equity: Money) -> Self {
        self.prev_equity = Some(equity);
        self
    }

    /// Also keeps every scan→order latency in `record`.
    pub fn recording(mut self, record: SharedRecord) -> Self {
        self.record = Some(record);
        self
    }

    fn set(&mut self, key: &str, value: Value) {
        let now = Utc::now();
        if let Err(e) = self.map.set(key, value, "trader", now) {
            // The run goes on: the map is a view of it, the run folder is the record.
            self.publish_errors += 1;
            if self.publish_errors == 1 {
                tracing::warn!(map = %self.map.name(), "cannot publish the trader's {key}: {e}");
            }
        }
    }

    /// Publishes `pnl:<day>` of the current day if it changed since it was last published.
    fn publish_pnl(&mut self) {
        if !std::mem::take(&mut self.pnl_due) {
            return;
        }
        let (Some((day, start)), Some(equity)) = (self.day.clone(), self.prev_equity) else {
            return;
        };
        let pnl = equity.checked_sub(start).ok();
        self.set(
            &format!("pnl:{day}"),
            json!({
                "date": day,
                "start_equity": start.to_string(),
                "equity": equity.to_string(),
                "pnl": pnl.map(|p| p.to_string()),
            }),
        );
    }

    fn publish_state(&mut self, status: &str) {
        self.publish_pnl();
        let positions: serde_json::Map<String, Value> = self
            .positions
            .iter()
            .map(|(symbol, (quantity, avg))| {
                (
                    symbol.clone(),
                    json!({"quantity": quantity, "avg_price": avg}),
                )
            })
            .collect();
        let state = json!({
            "run_id": self.run_id,
            "status": status,
            "positions": positions,
            "cash": self.cash.map(|m| m.to_string()),
            "equity": self.equity.map(|m| m.to_string()),
            "last_scan_seq": self.last_scan.as_ref().map(|s| s.0),
            "last_scan_source": self.last_scan.as_ref().map(|s| s.1.clone()),
            "scans": self.scans,
            "orders": self.orders,
            "fills": self.fills,
            "updated_at": rfc3339(self.last_ts),
        });
        self.set("state", state);
    }
}

impl PaperObserver for TraderObserver {
    fn on_start(&mut self, run_id: &str, _run_dir: &Path) {
        self.run_id = run_id.to_string();
        self.live = tradeloom_runs::live::find(run_id);
        self.publish_state("running");
    }

    fn on_event(&mut self, event: &Event, _wall: UnixNanos) {
        match event {
            Event::OrderSubmitted { .. } => self.orders += 1,
            Event::OrderFilled { .. } => self.fills += 1,
            Event::PositionChanged {
                symbol,
                quantity,
                avg_price,
                ..
            } => {
                self.positions.insert(
                    symbol.as_str().to_string(),
                    (quantity.to_string(), avg_price.map(|p| p.to_string())),
                );
            }
            _ => {}
        }
    }

    /// Notes the point; its day's PnL is published with the next state (an equity point comes
    /// while a scan is processed, before its order: publishing waits until after it).
    fn on_equity(&mut self, point: &EquityPoint) {
        self.cash = Some(point.cash);
        self.equity = Some(point.equity);
        self.last_ts = point.ts;
        let day = day_of(point.ts);
        let start = match &self.day {
            Some((d, start)) if *d == day => *start,
            // A new day starts from the equity the last one ended with (the first from its
            // first point).
            _ => {
                // The day that ends gets its last figure first.
                self.publish_pnl();
                self.prev_equity.unwrap_or(point.equity)
            }
        };
        self.day = Some((day, start));
        self.prev_equity = Some(point.equity);
        self.pnl_due = true;
    }

    fn on_scan(&mut self, scan: &Scan, first_accept: Option<Instant>) {
        self.scans += 1;
        self.last_scan = Some((scan.seq, scan.source.clone()));
        self.last_ts = scan.ts;
        if let Some(accepted) = first_accept {
            let latency = accepted.saturating_duration_since(scan.observed);
            if let Some(live) = &self.live {
                live.observe_scan_to_order(latency);
            }
        }
        if let Some(record) = &self.record {
            let (lock, changed) = &**record;
            let mut r = lock.lock().unwrap_or_else(|e| e.into_inner());
            r.scans += 1;
            if let Some(accepted) = first_accept {
                r.latencies
                    .push((scan.source.clone(), scan.observed, accepted));
            }
            drop(r);
            changed.notify_all();
        }
        self.publish_state("running");
    }

    fn on_stop(&mut self, outcome: &Result<RunOutcome, String>) {
        let status = if outcome.is_ok() { "stopped" } else { "failed" };
        self.publish_state(status);
        // Other processes see the final state as soon as the run has stopped.
        if let Err(e) = self.map.flush() {
            tracing::warn!(map = %self.map.name(), "cannot write the trader map's file: {e}");
        }
    }
}
