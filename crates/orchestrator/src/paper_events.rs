//! Paper runs of [`EngineRuns`] and their events in the store's event log: a
//! [`PaperObserver`] that turns the run's journal events into `order` and `fill` events, its
//! equity points into `equity` events (at most one per [`EQUITY_EVERY`] per run, plus the last
//! one), and its end into `run_finished`; a writer task appends them in batches (one
//! transaction each) under the run's id (`engine_run_id`) and wakes `/ws`.
//!
//! Payloads: `order` — the journal event as written (`event`: `order_submitted`,
//! `order_accepted`, `order_rejected`, `order_cancelled`, …) plus `wall_ts`; `fill` — the
//! `order_filled` journal event plus `wall_ts`; `equity` — `{ts, cash, equity, gross_exposure,
//! drawdown_pct, wall_ts}`; `run_finished` — `{status, error}`. Money is a decimal string.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tradeloom_core::UnixNanos;
use tradeloom_runs::paper::{PaperObserver, PaperOptions, StopSignal};
use tradeloom_runs::spec::ResolvedSpec;
use tradeloom_runs::{ExecuteError, RunOutcome, SpecSource};
use tradeloom_store::Store;

use crate::engine_runs::EngineRuns;

/// The least time between two `equity` events of one run.
pub const EQUITY_EVERY: Duration = Duration::from_millis(250);

/// One event for the writer: `(kind, payload)`.
type Pending = (String, Value);

/// The observer of one paper run (see the module doc).
struct StoreObserver<'a> {
    on_start: &'a mut (dyn FnMut(&str, &Path) + Send),
    run_id: Option<String>,
    /// To the writer task; `None` without a store.
    events: Option<mpsc::UnboundedSender<(String, Pending)>>,
    last_equity: Option<Instant>,
    /// The newest equity point not sent yet (throttled).
    held_equity: Option<Value>,
}

fn wall_text(wall: UnixNanos) -> String {
    wall.to_string()
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl StoreObserver<'_> {
    fn send(&self, kind: &str, payload: Value) {
        if let (Some(tx), Some(run_id)) = (&self.events, &self.run_id) {
            // A closed writer only loses events of the stream, never the run's own records.
            let _ = tx.send((run_id.clone(), (kind.to_string(), payload)));
        }
    }

    /// Sends the held equity point if the throttle allows (or `force`).
    fn release_equity(&mut self, force: bool) {
        let due = self
            .last_equity
            .is_none_or(|at| at.elapsed() >= EQUITY_EVERY);
        if (force || due)
            && let Some(point) = self.held_equity.take()
        {
            self.send("equity", point);
            self.last_equity = Some(Instant::now());
        }
    }
}

impl PaperObserver for StoreObserver<'_> {
    fn on_start(&mut self, run_id: &str, run_dir: &Path) {
        self.run_id = Some(run_id.to_string());
        (self.on_start)(run_id, run_dir);
    }

    fn on_event(&mut self, event: &tradeloom_core::Event, wall: UnixNanos) {
        let Ok(Value::Object(mut payload)) = serde_json::to_value(event) else {
            return;
        };
        let name = payload
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = if name == "order_filled" {
            "fill"
        } else if name.starts_with("order_") {
            "order"
        } else {
            self.release_equity(false);
            return;
        };
        payload.insert("wall_ts".into(), Value::String(wall_text(wall)));
        self.send(kind, Value::Object(payload));
        self.release_equity(false);
    }

    fn on_equity(&mut self, point: &tradeloom_runs::EquityPoint) {
        self.held_equity = Some(json!({
            "ts": point.ts.to_string(),
            "cash": point.cash.to_string(),
            "equity": point.equity.to_string(),
            "gross_exposure": point.gross_exposure.to_string(),
            "drawdown_pct": point.drawdown_pct,
            "wall_ts": now_text(),
        }));
        self.release_equity(false);
    }

    fn on_stop(&mut self, outcome: &Result<RunOutcome, String>) {
        self.release_equity(true);
        let (status, error) = match outcome {
            Ok(o) => (o.status.as_str().to_string(), None),
            Err(e) => ("failed".to_string(), Some(e.clone())),
        };
        self.send("run_finished", json!({"status": status, "error": error}));
    }
}

/// Appends what observers send, in batches, and wakes `notify` after each.
async fn write_events(
    store: Arc<dyn Store>,
    notify: Arc<Notify>,
    mut rx: mpsc::UnboundedReceiver<(String, Pending)>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 500
            && let Ok(next) = rx.try_recv()
        {
            batch.push(next);
        }
        // One transaction per run in the batch, in order.
        let mut i = 0;
        while i < batch.len() {
            let run_id = batch[i].0.clone();
            let mut events = Vec::new();
            while i < batch.len() && batch[i].0 == run_id {
                events.push(batch[i].1.clone());
                i += 1;
            }
            if let Err(e) = store.append_engine_run_events(&run_id, &events).await {
                tracing::warn!(run_id = %run_id, error = %e, events = events.len(), "cannot append paper run events");
            }
        }
        notify.notify_waiters();
    }
}

impl EngineRuns {
    /// Runs paper spec `spec` in this (blocking) thread until it stops; events go to the
    /// store through a writer task on `runtime`.
    pub(crate) fn run_paper(
        &self,
        spec: ResolvedSpec,
        parent_runs: Vec<String>,
        stop: StopSignal,
        runtime: &tokio::runtime::Handle,
        on_start: &mut (dyn FnMut(&str, &Path) + Send),
    ) -> Result<RunOutcome, ExecuteError> {
        let feed = tradeloom_live::open_feed(
            &spec,
            &tradeloom_live::FeedOptions {
                data_dir: self.data_dir().to_path_buf(),
                policy: self.policy().clone(),
            },
        )
        .map_err(ExecuteError::Rejected)?;
        let (events, writer) = match self.store() {
            Some(store) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let writer = runtime.spawn(write_events(store, self.notify(), rx));
                (Some(tx), Some(writer))
            }
            None => (None, None),
        };
        let mut observer = StoreObserver {
            on_start,
            run_id: None,
            events,
            last_equity: None,
            held_equity: None,
        };
        let outcome = tradeloom_runs::paper::run_paper(
            SpecSource::Loaded(Box::new(spec)),
            feed,
            PaperOptions {
                parent_runs,
                observer: Some(&mut observer),
                ..PaperOptions::new(self.data_dir(), stop)
            },
        );
        drop(observer);
        // Every event is in the store before the run counts as ended.
        if let Some(writer) = writer {
            let (done_tx, done_rx) = oneshot::channel();
            runtime.spawn(async move {
                let _ = writer.await;
                let _ = done_tx.send(());
            });
            let _ = done_rx.blocking_recv();
        }
        outcome
    }
}
