//! [`FeatureMap`]: the latest value per key of a named map, a sequence number strictly
//! increasing per map, and a way to wait for the next update — how the scan bridge hands scans
//! to traders (reference document 004's `DOLPHIN_FEATURES` map) and how a trader publishes its
//! PnL and state back.
//!
//! A **publish** replaces every value of the map at once (a whole scan: one value per symbol);
//! a **set** changes one key and keeps the others (a trader's `pnl:2026-12-06`, `state`). Either
//! makes a new [`MapSnapshot`] with the next sequence number. Subscribers wait with
//! [`FeatureMap::wait_next`]: it returns the oldest retained snapshot newer than the one they
//! have, so a subscriber that keeps up sees every update in order, and one that falls more than
//! the map's history behind skips to the oldest retained snapshot (the sequence numbers show
//! the gap).
//!
//! [`InMemoryFeatureMap`](crate::InMemoryFeatureMap) is the in-process implementation; with a
//! mirror folder it also writes the latest snapshot atomically to `<folder>/<name>.json` (the
//! shape of [`MapSnapshot::to_json`]) from a thread of its own, at most
//! [`MIRROR_DELAY`](crate::MIRROR_DELAY) after an update and at once on
//! [`FeatureMap::flush`] and drop, so that other processes (`tradeloom map show NAME --json`)
//! can read it; it resumes its sequence from that file. With the `redis` feature,
//! `RedisFeatureMap` keeps a map in Redis for processes on several hosts; both pass the same
//! [`feature_map_conformance`](crate::feature_map_conformance) suite.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// The longest map name.
pub const MAX_MAP_NAME_LEN: usize = 128;

/// Checks a map name: 1 to 128 characters of `[A-Za-z0-9_.-]`, not starting with `.` (it names
/// a file under the data dir).
pub fn validate_map_name(name: &str) -> Result<(), FeatureMapError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_MAP_NAME_LEN {
        Some("it is longer than 128 characters")
    } else if name.starts_with('.') {
        Some("it starts with `.`")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("only letters, digits, `_`, `.` and `-` are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(FeatureMapError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The values of a map: `(key, value)` pairs with unique keys, in the order they were published
/// (a scan's row order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MapValues(Vec<(String, Value)>);

impl MapValues {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Values from pairs; a key given twice is an error naming it.
    pub fn from_pairs(pairs: Vec<(String, Value)>) -> Result<Self, FeatureMapError> {
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        for (key, _) in &pairs {
            if !seen.insert(key.as_str()) {
                return Err(FeatureMapError::DuplicateKey { key: key.clone() });
            }
        }
        Ok(Self(pairs))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` (in place if present, else appended).
    pub fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// `(key, value)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().cloned().collect::<Map<String, Value>>())
    }
}

/// One state of a map: its values after update `seq`.
#[derive(Clone, Debug, PartialEq)]
pub struct MapSnapshot {
    /// The map's name.
    pub name: String,
    /// The update's sequence number: 1 for the first, strictly increasing per map.
    pub seq: u64,
    /// The time the publisher gave the update (a scan file's modification time).
    pub updated_at: DateTime<Utc>,
    /// Who or what published it (a scan file's name, `trader`).
    pub source: String,
    /// Every value of the map after the update.
    pub values: MapValues,
    /// When the publisher first observed the data, in this process only (the start of the
    /// scan→order latency); `None` for snapshots read from elsewhere.
    pub observed: Option<Instant>,
}

impl MapSnapshot {
    /// `{"name","seq","updated_at","source","values"}` — the shape of `<name>.json` and of
    /// `tradeloom map show NAME --json`. `updated_at` is RFC 3339 UTC with nanoseconds.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "seq": self.seq,
            "updated_at": self.updated_at.to_rfc3339_opts(SecondsFormat::Nanos, true),
            "source": self.source,
            "values": self.values.to_json(),
        })
    }

    /// Parses the shape [`MapSnapshot::to_json`] writes; errors name the field.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let obj = value.as_object().ok_or("expected a JSON object")?;
        let field = |name: &str| obj.get(name).ok_or(format!("`{name}` is missing"));
        let name = field("name")?
            .as_str()
            .ok_or("`name`: expected a string")?
            .to_string();
        let seq = field("seq")?
            .as_u64()
            .ok_or("`seq`: expected a non-negative integer")?;
        let updated_at = field("updated_at")?
            .as_str()
            .ok_or("`updated_at`: expected an RFC 3339 time")?;
        let updated_at = DateTime::parse_from_rfc3339(updated_at)
            .map_err(|e| format!("`updated_at`: `{updated_at}`: {e}"))?
            .with_timezone(&Utc);
        let source = field("source")?
            .as_str()
            .ok_or("`source`: expected a string")?
            .to_string();
        let values = field("values")?
            .as_object()
            .ok_or("`values`: expected an object")?;
        Ok(Self {
            name,
            seq,
            updated_at,
            source,
            values: MapValues(values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            observed: None,
        })
    }
}

/// A new state for a whole map ([`FeatureMap::publish`]).
#[derive(Clone, Debug)]
pub struct MapUpdate {
    /// The update's own time (a scan file's modification time).
    pub updated_at: DateTime<Utc>,
    /// Who or what publishes it.
    pub source: String,
    /// Every value; the previous ones are dropped.
    pub values: MapValues,
    /// When the data was first observed in this process, if it was.
    pub observed: Option<Instant>,
}

/// Errors of [`FeatureMap`] operations; each names the map, key or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureMapError {
    /// A map name that cannot be a file name under the data dir.
    #[error("invalid map name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A publish named the same key twice.
    #[error("key `{key}` appears twice in one update")]
    DuplicateKey { key: String },
    /// The mirror file could not be written or read.
    #[error("feature map file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// The back end of a networked map (Redis) failed or answered something unreadable; the
    /// message names the map.
    #[error("feature map `{name}` on {backend}: {detail}")]
    Backend {
        name: String,
        backend: &'static str,
        detail: String,
    },
}

/// A named map of the latest value per key with a sequence number and update notification.
/// Implementations are shared between threads (`Arc<dyn FeatureMap>`).
pub trait FeatureMap: Send + Sync {
    /// The map's name.
    fn name(&self) -> &str;

    /// Replaces every value with `update.values`; returns the new snapshot (sequence one higher).
    fn publish(&self, update: MapUpdate) -> Result<Arc<MapSnapshot>, FeatureMapError>;

    /// Sets one key and keeps the others; returns the new snapshot (sequence one higher).
    fn set(
        &self,
        key: &str,
        value: Value,
        source: &str,
        updated_at: DateTime<Utc>,
    ) -> Result<Arc<MapSnapshot>, FeatureMapError>;

    /// The latest snapshot, `None` before the first update.
    fn latest(&self) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError>;

    /// Waits at most `timeout` for a snapshot with a sequence above `after` and returns the
    /// oldest such snapshot the map still retains (the next one, unless the caller fell behind
    /// the map's history); `None` on timeout. Returns at once if one exists already.
    fn wait_next(
        &self,
        after: u64,
        timeout: Duration,
    ) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError>;

    /// Makes the next update's sequence at least `seq + 1` (never lowers it). For a publisher
    /// that keeps its own record of the sequences it published (the bridge's cursor), when the
    /// map's kept copy may lag behind that record (a mirror file written after the update).
    fn continue_after(&self, seq: u64) -> Result<(), FeatureMapError>;

    /// Writes what the map keeps beyond the process (a mirror file) up to the latest update,
    /// now; a no-op for maps that write every update at once or keep nothing.
    fn flush(&self) -> Result<(), FeatureMapError> {
        Ok(())
    }
}

/// A cursor over a map's updates: each [`Subscription::next`] returns the next snapshot after
/// the last one it returned.
pub struct Subscription {
    map: Arc<dyn FeatureMap>,
    after: u64,
    skipped: u64,
}

impl Subscription {
    /// Updates after sequence `after` (0: from the first one the map retains).
    pub fn new(map: Arc<dyn FeatureMap>, after: u64) -> Self {
        Self {
            map,
            after,
            skipped: 0,
        }
    }

    /// The next snapshot, waiting at most `timeout`; `None` on timeout.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError> {
        let got = self.map.wait_next(self.after, timeout)?;
        if let Some(snap) = &got {
            if self.after > 0 {
                self.skipped += snap.seq.saturating_sub(self.after + 1);
            }
            self.after = snap.seq;
        }
        Ok(got)
    }

    /// The sequence of the last snapshot returned (or the starting point).
    pub fn position(&self) -> u64 {
        self.after
    }

    /// Updates this subscription never saw because it fell behind the map's history.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("map", &self.map.name())
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

/// Where map `name`'s mirror file is under `folder` (`<data_dir>/maps`).
pub fn map_file(folder: &Path, name: &str) -> PathBuf {
    folder.join(format!("{name}.json"))
}

/// Reads map `name`'s mirror file under `folder`: `Ok(None)` if there is none.
pub fn read_map_file(folder: &Path, name: &str) -> Result<Option<MapSnapshot>, FeatureMapError> {
    validate_map_name(name)?;
    let path = map_file(folder, name);
    let fail = |message: String| FeatureMapError::File {
        path: path.clone(),
        message,
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}")))?;
    MapSnapshot::from_json(&value).map(Some).map_err(fail)
}

/// Writes `bytes` to `path` through a temporary file and a rename: a reader never sees half of
/// it, nor does a process that crashed mid-write leave half of it. (The queue crate depends on
/// nothing of ours, so this is not `tradeloom_safety::write_atomic`; with `sync` it is as
/// durable.)
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["scans", "DOLPHIN_FEATURES", "scans.trader", "a-1"] {
            assert!(validate_map_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            let err = validate_map_name(bad).unwrap_err();
            assert!(err.to_string().contains("invalid map name"), "{err}");
        }
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        let snap = MapSnapshot {
            name: "scans".into(),
            seq: 7,
            updated_at: DateTime::parse_from_rfc3339("2026-12-06T10:00:00.123456789Z")
                .unwrap()
                .with_timezone(&Utc),
            source: "scan-7.csv".into(),
            values: MapValues::from_pairs(vec![(
                "BTCUSDT".into(),
                serde_json::json!({"price": 1.5}),
            )])
            .unwrap(),
            observed: None,
        };
        let json = snap.to_json();
        assert_eq!(json["updated_at"], "2026-12-06T10:00:00.123456789Z");
        assert_eq!(MapSnapshot::from_json(&json).unwrap(), snap);
        let err = MapSnapshot::from_json(&serde_json::json!({"name": "x"})).unwrap_err();
        assert_eq!(err, "`seq` is missing");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = MapValues::from_pairs(vec![("A".into(), Value::Null), ("A".into(), Value::Null)])
            .unwrap_err();
        assert_eq!(err.to_string(), "key `A` appears twice in one update");
    }
}
