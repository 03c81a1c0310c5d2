//! The `scan_dir` feed of paper runs: `feed: {type: scan_dir, path, symbol_field, price_field,
//! map}`.
//!
//! The feed runs the [bridge](crate::bridge) **in this process, on the paper run's own
//! thread**: while the run waits for its next event, the feed waits on the directory's events
//! ([`Bridge::step`]), so a scan file renamed into `path` (relative to the spec file) wakes the
//! run's thread itself — no thread in between — which reads it, publishes it into the feature
//! map `map` (default: the spec's name; mirrored to `<data_dir>/maps/<map>.json` like
//! `tradeloom bridge` does), takes it from the map and hands it to the engine. The bridge is
//! asked for one scan at a time, only when the feed has taken every update of the map, so the
//! feed never falls behind the map's history. (Following a map that a separate `tradeloom
//! bridge` process publishes would need a cross-process notification, which the file mirror is
//! not; a Redis map is the way for that.) Two processes must not bridge the same map at once.
//!
//! Each map update becomes one [`FeedEvent::Scan`]: the rows of the spec's instruments, in the
//! scan's order, each with a flat bar at `price_field` (rounded to the instrument's price
//! precision) and every other numeric column as a [`ScanFields`] field (`price_field` too).
//! Rows of symbols the spec does not trade are ignored and counted; a row whose price is
//! missing, not a number or not positive is a [`FeedEvent::Malformed`] and the rest of the
//! scan goes on.
//!
//! A fresh run starts after the map's latest scan (older scans are not traded); a resumed run
//! starts after the last scan it processed, so the map's latest scan is processed if the run
//! died before it.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tradeloom_core::{Bar, InstrumentId, Price, UnixNanos};
use tradeloom_engine::ScanFields;
use tradeloom_queue::{FeatureMap, MapSnapshot};
use tradeloom_runs::RunError;
use tradeloom_runs::paper::{
    Feed, FeedError, FeedEvent, FeedPoll, FeedPosition, Scan, ScanDirFeedSpec, ScanRow,
};
use tradeloom_runs::spec::ResolvedSpec;

use crate::FeedOptions;
use crate::bridge::{Bridge, BridgeError, BridgeOptions, BridgeStats, open_map};

/// Counters of a scan_dir feed.
#[derive(Debug, Default)]
pub struct ScanDirStats {
    /// Scans delivered.
    pub scans: AtomicU64,
    /// Rows of symbols the spec does not trade.
    pub unknown_symbols: AtomicU64,
    /// Rows with a bad price.
    pub malformed_rows: AtomicU64,
    /// Map updates never seen because the feed fell behind the map's history.
    pub skipped: AtomicU64,
}

/// The `scan_dir` feed: a bridge stepped on the run's thread and a subscription to its map.
pub struct ScanDirFeed {
    map: Arc<dyn FeatureMap>,
    after: u64,
    instruments: HashMap<String, (InstrumentId, u8)>,
    symbol_field: String,
    price_field: String,
    pending: VecDeque<FeedEvent>,
    bridge: Bridge,
    bridge_stats: Arc<BridgeStats>,
    stats: Arc<ScanDirStats>,
}

impl std::fmt::Debug for ScanDirFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanDirFeed")
            .field("map", &self.map.name())
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

fn spec_error(spec: &ResolvedSpec, message: String) -> RunError {
    RunError::Spec {
        place: spec.path.display().to_string(),
        message,
    }
}

/// The map a scan_dir feed publishes into: `feed.map`, else the spec's name.
pub fn map_name(spec: &ResolvedSpec, feed: &ScanDirFeedSpec) -> String {
    feed.map.clone().unwrap_or_else(|| spec.spec.name.clone())
}

/// The watched directory: `feed.path` relative to the spec file's folder.
pub fn watch_dir(spec: &ResolvedSpec, feed: &ScanDirFeedSpec) -> std::path::PathBuf {
    let path = Path::new(&feed.path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match spec.path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

impl ScanDirFeed {
    /// Opens the map, starts the bridge on `feed.path` and subscribes after the map's latest
    /// scan. Errors name the spec field at fault.
    pub fn open(
        spec: &ResolvedSpec,
        feed: &ScanDirFeedSpec,
        options: &FeedOptions,
    ) -> Result<Self, RunError> {
        let name = map_name(spec, feed);
        let field = if feed.map.is_some() {
            "feed.map"
        } else {
            "name (the default feed.map)"
        };
        tradeloom_queue::feature_map::validate_map_name(&name)
            .map_err(|e| spec_error(spec, format!("{field}: {e}")))?;
        for (what, value) in [
            ("feed.symbol_field", &feed.symbol_field),
            ("feed.price_field", &feed.price_field),
        ] {
            if value.trim().is_empty() {
                return Err(spec_error(spec, format!("{what}: must not be empty")));
            }
        }
        let map = open_map(&options.data_dir, &name)
            .map_err(|e| spec_error(spec, format!("{field}: {e}")))?;
        let mut bridge_options =
            BridgeOptions::new(watch_dir(spec, feed), &name, &options.data_dir);
        bridge_options.key = feed.symbol_field.clone();
        let bridge = Bridge::with_map(bridge_options, map.clone()).map_err(|e| match e {
            BridgeError::Watch { path, message } => {
                spec_error(spec, format!("feed.path: {}: {message}", path.display()))
            }
            other => spec_error(spec, other.to_string()),
        })?;
        let after = map
            .latest()
            .map_err(|e| spec_error(spec, format!("{field}: {e}")))?
            .map_or(0, |s| s.seq);
        let bridge_stats = bridge.stats();
        Ok(Self {
            map,
            after,
            instruments: spec
                .instruments
                .iter()
                .map(|i| (i.symbol.as_str().to_string(), (i.id, i.price_precision)))
                .collect(),
            symbol_field: feed.symbol_field.clone(),
            price_field: feed.price_field.clone(),
            pending: VecDeque::new(),
            bridge,
            bridge_stats,
            stats: Arc::new(ScanDirStats::default()),
        })
    }

    /// The feature map the scans come through.
    pub fn map(&self) -> Arc<dyn FeatureMap> {
        self.map.clone()
    }

    /// The feed's counters.
    pub fn stats(&self) -> Arc<ScanDirStats> {
        self.stats.clone()
    }

    /// The in-process bridge's counters.
    pub fn bridge_stats(&self) -> Arc<BridgeStats> {
        self.bridge_stats.clone()
    }

    /// Turns one map update into a scan (and a malformed event per bad row).
    fn convert(&mut self, snap: &MapSnapshot) {
        let ts = UnixNanos(snap.updated_at.timestamp_nanos_opt().unwrap_or(i64::MAX));
        // Field names: every numeric column of the scan, in order of first appearance.
        let mut names: Vec<String> = Vec::new();
        for (_, row) in snap.values.iter() {
            if let Value::Object(row) = row {
                for (name, value) in row {
                    if name != &self.symbol_field
                        && number(value).is_some()
                        && !names.iter().any(|n| n == name)
                    {
                        names.push(name.clone());
                    }
                }
            }
        }
        let names: Arc<[String]> = names.into();
        let mut rows = Vec::new();
        for (symbol, row) in snap.values.iter() {
            let Some(&(instrument, precision)) = self.instruments.get(symbol) else {
                self.stats.unknown_symbols.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    scan = snap.seq,
                    symbol,
                    "row of a symbol the spec does not trade"
                );
                continue;
            };
            let Value::Object(row) = row else {
                continue;
            };
            let price = match price(row.get(&self.price_field), precision) {
                Ok(price) => price,
                Err(message) => {
                    self.stats.malformed_rows.fetch_add(1, Ordering::Relaxed);
                    self.pending.push_back(FeedEvent::Malformed {
                        reason: format!(
                            "scan {} ({}): {symbol}: `{}` {message}",
                            snap.seq, snap.source, self.price_field
                        ),
                    });
                    continue;
                }
            };
            let values = names.iter().map(|n| row.get(n).and_then(number)).collect();
            rows.push(ScanRow {
                bar: Bar::flat(instrument, ts, price),
                fields: ScanFields::new(names.clone(), values),
            });
        }
        self.stats.scans.fetch_add(1, Ordering::Relaxed);
        self.pending.push_front(FeedEvent::Scan(Scan {
            seq: snap.seq,
            ts,
            source: snap.source.clone(),
            observed: snap.observed.unwrap_or_else(std::time::Instant::now),
            rows,
        }));
    }
}

fn feed_error(message: String) -> FeedError {
    FeedError {
        feed: "scan_dir",
        message,
    }
}

/// A JSON number, or text that parses as a finite number.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A positive price at `precision` decimals from a row's cell (rounded half away from zero
/// from the cell's decimal text).
fn price(cell: Option<&Value>, precision: u8) -> Result<Price, String> {
    let text = match cell {
        None | Some(Value::Null) => return Err("is missing".to_string()),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => return Err(format!("must be a number, got {other}")),
    };
    let value: f64 = text
        .parse()
        .map_err(|_| format!("must be a number, got `{text}`"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("must be a positive number, got `{text}`"));
    }
    let parsed = tradeloom_core::fixed::parse_decimal_i128(
        text.as_bytes(),
        tradeloom_core::fixed::FIXED_PRECISION,
    );
    let raw = match parsed {
        Ok(p) => p.raw,
        // Exponents or more than 9 decimals: through the float, rounded at 9 decimals.
        Err(_) => (value * 1e9).round() as i128,
    };
    let rounded =
        tradeloom_core::fixed::round_raw(raw, tradeloom_core::fixed::FIXED_PRECISION, precision);
    let raw = i64::try_from(rounded).map_err(|_| format!("`{text}` is out of range"))?;
    if raw <= 0 {
        return Err(format!("`{text}` rounds to zero at {precision} decimals"));
    }
    Ok(Price::from_raw(raw, precision))
}

impl Feed for ScanDirFeed {
    fn kind(&self) -> &'static str {
        "scan_dir"
    }

    fn poll(&mut self, wait: Duration) -> Result<FeedPoll, FeedError> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(FeedPoll::Event(event));
        }
        let until = Instant::now() + wait;
        loop {
            // What the map holds after the last update taken (published by the bridge below,
            // or by another publisher of this process).
            let got = self
                .map
                .wait_next(self.after, Duration::ZERO)
                .map_err(|e| feed_error(e.to_string()))?;
            if let Some(snap) = got {
                if snap.seq > self.after + 1 && self.after > 0 {
                    self.stats
                        .skipped
                        .fetch_add(snap.seq - self.after - 1, Ordering::Relaxed);
                }
                self.after = snap.seq;
                self.convert(&snap);
                return Ok(self
                    .pending
                    .pop_front()
                    .map_or(FeedPoll::Idle, FeedPoll::Event));
            }
            if Instant::now() >= until {
                return Ok(FeedPoll::Idle);
            }
            // One file at a time: the map never holds more than the feed has taken plus one.
            self.bridge
                .step(until, 1)
                .map_err(|e| feed_error(e.to_string()))?;
        }
    }

    fn resume_after(&mut self, position: FeedPosition) {
        if let Some(seq) = position.last_scan_seq {
            self.after = seq;
        }
    }
}

impl Drop for ScanDirFeed {
    fn drop(&mut self) {
        // The map's file shows the last scan once the run stops.
        if let Err(e) = self.bridge.flush() {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prices_round_to_the_precision_and_bad_ones_say_why() {
        let p = |v: Value| price(Some(&v), 2);
        assert_eq!(
            p(serde_json::json!(97000.505)).unwrap().raw(),
            97_000_510_000_000
        );
        assert_eq!(p(serde_json::json!("1.234")).unwrap().raw(), 1_230_000_000);
        assert_eq!(p(serde_json::json!(12)).unwrap().raw(), 12_000_000_000);
        assert_eq!(
            p(serde_json::json!(1e-3)).unwrap_err(),
            "`0.001` rounds to zero at 2 decimals"
        );
        assert_eq!(
            p(serde_json::json!("abc")).unwrap_err(),
            "must be a number, got `abc`"
        );
        assert_eq!(
            p(serde_json::json!(-1.0)).unwrap_err(),
            "must be a positive number, got `-1.0`"
        );
        assert_eq!(price(None, 2).unwrap_err(), "is missing");
        assert_eq!(
            p(serde_json::json!(true)).unwrap_err(),
            "must be a number, got true"
        );
    }
}
