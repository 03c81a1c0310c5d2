//! `state/snapshot.json`: a paper run's state after an event — positions, cash, equity, working
//! orders, the strategy, and where it was (feed position, events processed, journal lines) —
//! written atomically every `snapshot_every` events and when the run stops. A resumed run
//! rebuilds its state from `state/inputs.jsonl` and checks it against the snapshot.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tradeloom_core::time::write_rfc3339;
use tradeloom_core::{Instrument, UnixNanos};
use tradeloom_engine::EngineState;
use tradeloom_safety::{Durability, write_atomic};

use crate::error::RunError;
use crate::paper::FeedPosition;

/// The file's path in a run folder.
pub const SNAPSHOT_FILE: &str = "state/snapshot.json";

/// The engine's state in the snapshot: what a resumed run must reproduce exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BookState {
    /// Cash (exact decimal).
    pub cash: String,
    /// Equity (exact decimal).
    pub equity: String,
    /// One entry per instrument with a position or a price.
    pub positions: Vec<Value>,
    /// The orders still working.
    pub working_orders: Vec<Value>,
}

impl BookState {
    /// The state of `engine` described for the snapshot.
    pub fn of(state: &EngineState, instruments: &[Instrument]) -> Self {
        let positions = state
            .positions
            .iter()
            .zip(instruments)
            .filter(|((p, mark), _)| !p.is_flat() || mark.is_some())
            .map(|((p, mark), inst)| {
                serde_json::json!({
                    "symbol": inst.symbol.as_str(),
                    "quantity": p.signed_quantity().to_string(),
                    "avg_price": p.avg_price().map(|x| x.to_string()),
                    "realized": p.realized().to_string(),
                    "mark": mark.map(|x| x.to_string()),
                })
            })
            .collect();
        let working_orders = state
            .working
            .iter()
            .map(|o| {
                let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
                if let (Some(map), Some(inst)) =
                    (v.as_object_mut(), instruments.get(o.instrument.index()))
                {
                    map.insert("symbol".to_string(), Value::from(inst.symbol.as_str()));
                }
                v
            })
            .collect();
        Self {
            cash: state.cash.to_string(),
            equity: state.equity.to_string(),
            positions,
            working_orders,
        }
    }
}

/// `state/snapshot.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub run_id: String,
    /// When it was written (RFC 3339 UTC).
    pub written_at: String,
    /// Events processed (the `n` of the last one in `state/inputs.jsonl`).
    pub events: u64,
    /// Lines in `journal.jsonl` after them.
    pub journal_lines: u64,
    /// The last bar's time and the last scan's sequence processed.
    pub last_bar_ts: Option<String>,
    pub last_scan_seq: Option<u64>,
    /// The time of the last event processed (its data's time).
    pub last_event_ts: Option<String>,
    /// The strategy and its parameters, as in the spec.
    pub strategy: Value,
    #[serde(flatten)]
    pub book: BookState,
}

pub(crate) fn rfc3339(ts: UnixNanos) -> String {
    let mut out = Vec::with_capacity(32);
    write_rfc3339(&mut out, ts);
    String::from_utf8_lossy(&out).into_owned()
}

impl Snapshot {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: &str,
        events: u64,
        journal_lines: u64,
        position: FeedPosition,
        state: &EngineState,
        instruments: &[Instrument],
        strategy: Value,
    ) -> Self {
        Self {
            run_id: run_id.to_string(),
            written_at: crate::runner::now_rfc3339(),
            events,
            journal_lines,
            last_bar_ts: position.last_bar_ts.map(rfc3339),
            last_scan_seq: position.last_scan_seq,
            last_event_ts: state.ts.map(rfc3339),
            strategy,
            book: BookState::of(state, instruments),
        }
    }

    /// Writes the snapshot atomically into `run_dir`.
    pub fn write(&self, run_dir: &Path) -> Result<(), RunError> {
        let path = run_dir.join(SNAPSHOT_FILE);
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| RunError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomic(&path, &text, Durability::Renamed).map_err(|e| RunError::io(e.path, e.source))
    }

    /// The snapshot in `run_dir`, if there is one.
    pub fn read(run_dir: &Path) -> Result<Option<Self>, RunError> {
        let path = run_dir.join(SNAPSHOT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RunError::Corrupt {
                    path,
                    message: format!("not a paper run snapshot: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RunError::io(path, e)),
        }
    }
}
