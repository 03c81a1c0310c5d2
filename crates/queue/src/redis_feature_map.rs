//! [`RedisFeatureMap`]: the [`FeatureMap`] in Redis, so that a scan bridge and traders in other
//! processes (or hosts) share one map. Built with the `redis` feature.
//!
//! # Keys
//!
//! Map `name`'s keys start with `<prefix>map:{<name>}:` (a Redis Cluster hash tag: one slot):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `seq` | string | the sequence of the latest update |
//! | `history` | stream, capped (`MAXLEN ~` the history length) | one entry per update, its id `<seq>-0`; fields `updated_at` (RFC 3339, ns), `source`, then `v:<key>` → value (JSON text) in the map's key order |
//! | `ops` | sorted set | ids of the last 1,000 updates applied, so an update retried after a lost reply is applied once |
//!
//! An update is an optimistic transaction: `WATCH seq`, read the latest entry (a `set` keeps its
//! other keys), then `MULTI` / `SET seq n+1` / `XADD history n+1-0 …` / `EXEC`, again if another
//! publisher came first. Every snapshot is one stream entry, so readers never see half of one.
//! [`FeatureMap::wait_next`] is `XREAD BLOCK` after the caller's sequence: entry ids are the
//! sequences, so the oldest retained snapshot newer than it comes back at once if there is one.
//!
//! # Threads and connections
//!
//! The trait is synchronous (the bridge and traders call it from plain threads), so this uses
//! the blocking client: a small pool of connections, one per concurrent caller, so a subscriber
//! blocked in `XREAD BLOCK` holds only its own. A connection that fails is dropped and the call
//! retried on a new one with back-off for [`RETRY_FOR`]; updates carry an id, so a retry after a
//! lost reply does not publish twice.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use redis::{Client, Connection, RedisError, Value};
use serde_json::Value as Json;

use crate::feature_map::{
    FeatureMap, FeatureMapError, MapSnapshot, MapUpdate, MapValues, validate_map_name,
};

/// Snapshots kept for subscribers that are behind (at least; `MAXLEN ~` trims in whole nodes).
pub const DEFAULT_REDIS_HISTORY: usize = 256;

/// How long a call keeps retrying while Redis is unreachable.
pub const RETRY_FOR: Duration = Duration::from_secs(10);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reply timeout of an ordinary command (a blocking read adds its own block time).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept.
const IDLE: usize = 8;
/// Update ids remembered for retries.
const OPS_KEPT: usize = 1000;
/// Field name prefix of a value in a history entry.
const VALUE: &str = "v:";

/// A [`FeatureMap`] in Redis; see the [module documentation](self).
pub struct RedisFeatureMap {
    name: String,
    client: Client,
    seq_key: String,
    history_key: String,
    ops_key: String,
    history: usize,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for RedisFeatureMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFeatureMap")
            .field("name", &self.name)
            .field("history_key", &self.history_key)
            .finish_non_exhaustive()
    }
}

/// What one attempt of a call does with a connection.
type Step<'a, T> = &'a mut dyn FnMut(&mut Connection) -> Result<T, RedisError>;

impl RedisFeatureMap {
    /// Opens map `name` in the Redis at `url` under the keys starting with `prefix`: a map
    /// published before (by any process) goes on from its latest snapshot. Fails if Redis
    /// cannot be reached.
    pub fn open(url: &str, prefix: &str, name: &str) -> Result<Self, FeatureMapError> {
        validate_map_name(name)?;
        let client = Client::open(url).map_err(|e| FeatureMapError::Backend {
            name: name.to_string(),
            backend: "redis",
            detail: format!("invalid Redis URL: {e}"),
        })?;
        let base = format!("{prefix}map:{{{name}}}:");
        let map = Self {
            name: name.to_string(),
            client,
            seq_key: format!("{base}seq"),
            history_key: format!("{base}history"),
            ops_key: format!("{base}ops"),
            history: DEFAULT_REDIS_HISTORY,
            idle: Mutex::new(Vec::new()),
        };
        // Fail now, not at the first update, when Redis is not there.
        let conn = map.connect().map_err(|e| map.backend(e))?;
        map.give_back(conn);
        Ok(map)
    }

    /// The same map keeping at least `history` snapshots (at least 1).
    pub fn with_history(mut self, history: usize) -> Self {
        self.history = history.max(1);
        self
    }

    fn connect(&self) -> Result<Connection, RedisError> {
        let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }

    fn backend(&self, e: impl std::fmt::Display) -> FeatureMapError {
        FeatureMapError::Backend {
            name: self.name.clone(),
            backend: "redis",
            detail: e.to_string(),
        }
    }

    /// Runs `step` on a connection of the pool (its reply timeout `block` longer than usual),
    /// on a new one with back-off while the connection fails.
    fn with_conn<T>(&self, block: Duration, step: Step<'_, T>) -> Result<T, FeatureMapError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(25);
        loop {
            let taken = lock(&self.idle).pop();
            let attempt = match taken {
                Some(conn) => Ok(conn),
                None => self.connect(),
            }
            .and_then(|mut conn| {
                conn.set_read_timeout(Some(REPLY_TIMEOUT + block))?;
                let result = step(&mut conn);
                if result.is_ok() {
                    self.give_back(conn);
                }
                result
            });
            match attempt {
                Ok(value) => return Ok(value),
                Err(e) if transient(&e) && started.elapsed() + backoff < RETRY_FOR => {
                    tracing::warn!(map = %self.name, error = %e, "redis feature map: connection lost; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(self.backend(e)),
            }
        }
    }

    /// Appends one snapshot: `values(previous values)` under the next sequence. Returns it.
    fn update(
        &self,
        updated_at: DateTime<Utc>,
        source: &str,
        values: &dyn Fn(Option<MapValues>) -> MapValues,
    ) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        let op = uuid::Uuid::now_v7().simple().to_string();
        let stamp = updated_at.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut step = |conn: &mut Connection| -> Result<Value, RedisError> {
            loop {
                redis::cmd("WATCH").arg(&self.seq_key).exec(conn)?;
                let applied: Option<u64> = redis::cmd("ZSCORE")
                    .arg(&self.ops_key)
                    .arg(&op)
                    .query(conn)?;
                if let Some(seq) = applied {
                    // A retry of an update whose reply was lost: it is there already.
                    redis::cmd("UNWATCH").exec(conn)?;
                    return redis::cmd("XRANGE")
                        .arg(&self.history_key)
                        .arg(format!("{seq}-0"))
                        .arg(format!("{seq}-0"))
                        .query(conn);
                }
                let seq: Option<u64> = redis::cmd("GET").arg(&self.seq_key).query(conn)?;
                let latest: Value = redis::cmd("XREVRANGE")
                    .arg(&self.history_key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query(conn)?;
                let latest = first_entry(&latest, &self.name).map_err(redis_error)?;
                // The history's top decides if the `seq` key was lost.
                let next = seq.unwrap_or(0).max(latest.as_ref().map_or(0, |s| s.seq)) + 1;
                let values = values(latest.map(|s| s.values));
                let mut xadd = redis::cmd("XADD");
                xadd.arg(&self.history_key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.history)
                    .arg(format!("{next}-0"))
                    .arg("updated_at")
                    .arg(&stamp)
                    .arg("source")
                    .arg(source);
                for (key, value) in values.iter() {
                    xadd.arg(format!("{VALUE}{key}")).arg(value.to_string());
                }
                let mut txn = redis::pipe();
                txn.atomic()
                    .cmd("SET")
                    .arg(&self.seq_key)
                    .arg(next)
                    .ignore()
                    .add_command(xadd)
                    .ignore()
                    .cmd("ZADD")
                    .arg(&self.ops_key)
                    .arg(next)
                    .arg(&op)
                    .ignore()
                    .cmd("ZREMRANGEBYRANK")
                    .arg(&self.ops_key)
                    .arg(0)
                    .arg(-(OPS_KEPT as i64) - 1)
                    .ignore();
                // `None`: another update changed `seq` after the WATCH; read again.
                if txn.query::<Option<()>>(conn)?.is_some() {
                    return redis::cmd("XRANGE")
                        .arg(&self.history_key)
                        .arg(format!("{next}-0"))
                        .arg(format!("{next}-0"))
                        .query(conn);
                }
            }
        };
        let written = self.with_conn(Duration::ZERO, &mut step)?;
        let snap = first_entry(&written, &self.name)
            .map_err(|e| self.backend(e))?
            .ok_or_else(|| self.backend("the update's history entry is gone (trimmed at once?)"))?;
        Ok(Arc::new(snap))
    }

    /// The oldest retained snapshot after `after`, waiting up to `block` (zero: only looks).
    fn read_after(
        &self,
        after: u64,
        block: Duration,
    ) -> Result<Option<MapSnapshot>, FeatureMapError> {
        let mut step = |conn: &mut Connection| -> Result<Value, RedisError> {
            let mut xread = redis::cmd("XREAD");
            if !block.is_zero() {
                // Whole ms, at least 1: `BLOCK 0` would wait forever.
                xread
                    .arg("BLOCK")
                    .arg(block.as_millis().clamp(1, u64::MAX as u128) as u64);
            }
            xread
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(&self.history_key)
                .arg(format!("{after}-0"))
                .query(conn)
        };
        let reply = self.with_conn(block, &mut step)?;
        // XREAD: nil, or [[stream, [entry]]] (RESP2); a map in RESP3.
        let entries = match &reply {
            Value::Nil => return Ok(None),
            Value::Array(streams) => streams.first().and_then(|s| match s {
                Value::Array(pair) => pair.get(1),
                _ => None,
            }),
            Value::Map(streams) => streams.first().map(|(_, entries)| entries),
            _ => None,
        }
        .ok_or_else(|| self.backend(format!("XREAD answered {reply:?}")))?;
        first_entry(entries, &self.name).map_err(|e| self.backend(e))
    }
}

impl FeatureMap for RedisFeatureMap {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish(&self, update: MapUpdate) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        let values = update.values.clone();
        let snap = self.update(update.updated_at, &update.source, &|_| values.clone())?;
        let mut snap = Arc::unwrap_or_clone(snap);
        snap.observed = update.observed;
        Ok(Arc::new(snap))
    }

    fn set(
        &self,
        key: &str,
        value: Json,
        source: &str,
        updated_at: DateTime<Utc>,
    ) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        self.update(updated_at, source, &|previous| {
            let mut values = previous.unwrap_or_default();
            values.set(key, value.clone());
            values
        })
    }

    fn continue_after(&self, seq: u64) -> Result<(), FeatureMapError> {
        // The sequence key only ever rises: one script, so a concurrent update cannot be lost
        // between reading and writing it (an update WATCHes the key and retries).
        let mut step = |conn: &mut Connection| -> Result<(), RedisError> {
            redis::cmd("EVAL")
                .arg(
                    "local c = tonumber(redis.call('GET', KEYS[1]) or '0') \
                     if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end \
                     return 1",
                )
                .arg(1)
                .arg(&self.seq_key)
                .arg(seq)
                .exec(conn)
        };
        self.with_conn(Duration::ZERO, &mut step)
    }

    fn latest(&self) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError> {
        let mut step = |conn: &mut Connection| -> Result<Value, RedisError> {
            redis::cmd("XREVRANGE")
                .arg(&self.history_key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(conn)
        };
        let reply = self.with_conn(Duration::ZERO, &mut step)?;
        let snap = first_entry(&reply, &self.name).map_err(|e| self.backend(e))?;
        Ok(snap.map(Arc::new))
    }

    fn wait_next(
        &self,
        after: u64,
        timeout: Duration,
    ) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if let Some(snap) = self.read_after(after, left)? {
                return Ok(Some(Arc::new(snap)));
            }
            // Redis may end a block a little early; wait out the rest.
            if left.is_zero() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }
}

/// The first entry of an `XRANGE`-shaped reply (`[[id, [field, value, …]], …]`) as a snapshot.
fn first_entry(reply: &Value, name: &str) -> Result<Option<MapSnapshot>, String> {
    let Value::Array(entries) = reply else {
        return match reply {
            Value::Nil => Ok(None),
            other => Err(format!("expected a list of stream entries, got {other:?}")),
        };
    };
    let Some(entry) = entries.first() else {
        return Ok(None);
    };
    let (id, fields): (String, Vec<String>) =
        redis::from_redis_value_ref(entry).map_err(|e| format!("a history entry: {e}"))?;
    entry_snapshot(name, &id, &fields).map(Some)
}

/// A history entry (`<seq>-0` and its fields) as the snapshot it records.
fn entry_snapshot(name: &str, id: &str, fields: &[String]) -> Result<MapSnapshot, String> {
    let seq = id
        .split_once('-')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| format!("history entry id `{id}` is not `<seq>-0`"))?;
    let mut updated_at = None;
    let mut source = None;
    let mut values = Vec::new();
    for pair in fields.chunks_exact(2) {
        let (field, text) = (pair[0].as_str(), pair[1].as_str());
        if let Some(key) = field.strip_prefix(VALUE) {
            let value = serde_json::from_str(text)
                .map_err(|e| format!("entry {id}: value of `{key}` is not JSON: {e}"))?;
            values.push((key.to_string(), value));
        } else if field == "updated_at" {
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|e| format!("entry {id}: `updated_at` `{text}`: {e}"))?;
            updated_at = Some(at.with_timezone(&Utc));
        } else if field == "source" {
            source = Some(text.to_string());
        }
    }
    Ok(MapSnapshot {
        name: name.to_string(),
        seq,
        updated_at: updated_at.ok_or_else(|| format!("entry {id} has no `updated_at`"))?,
        source: source.ok_or_else(|| format!("entry {id} has no `source`"))?,
        values: MapValues::from_pairs(values).map_err(|e| format!("entry {id}: {e}"))?,
        observed: None,
    })
}

fn redis_error(detail: String) -> RedisError {
    RedisError::from((redis::ErrorKind::Parse, "unreadable history entry", detail))
}

fn transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn history_entries_read_back_in_key_order() {
        let fields: Vec<String> = [
            "updated_at",
            "2026-12-06T10:00:00.000000001Z",
            "source",
            "scan-7.csv",
            "v:ZZZ",
            "{\"price\":1.5}",
            "v:AAA",
            "2",
        ]
        .map(String::from)
        .to_vec();
        let snap = entry_snapshot("scans", "7-0", &fields).unwrap();
        assert_eq!((snap.seq, snap.source.as_str()), (7, "scan-7.csv"));
        let keys: Vec<&str> = snap.values.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["ZZZ", "AAA"], "publish order is kept");
        assert_eq!(snap.values.get("AAA"), Some(&serde_json::json!(2)));
        assert_eq!(snap.updated_at.timestamp_subsec_nanos(), 1);
        let err = entry_snapshot("scans", "x", &fields).unwrap_err();
        assert!(err.contains("`x` is not `<seq>-0`"), "{err}");
        let err = entry_snapshot("scans", "7-0", &fields[2..]).unwrap_err();
        assert!(err.contains("no `updated_at`"), "{err}");
    }
}
