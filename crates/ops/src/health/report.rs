//! The five sensors, `rm_meta` and the status, computed from [`Observations`] and `now` only:
//! [`evaluate`] reads no clock and no file, so every threshold is testable exactly.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tradeloom_queue::cluster::ProcessEntry;

use super::config::{FeedConfig, FeedSource, HealthConfig};

/// A heartbeat older than this (strictly) scores 0.5 (the reference's M2).
pub const HEARTBEAT_SLOW_SECS: f64 = 30.0;
/// A heartbeat older than this (strictly) scores 0.
pub const HEARTBEAT_DEAD_SECS: f64 = 60.0;

/// M3 score of a fresh feed.
pub const FEED_FRESH: f64 = 1.0;
/// M3 score of a stale feed: one stale feed alone makes the status DEGRADED.
pub const FEED_STALE: f64 = 0.7;
/// M3 score of a dead feed: one dead feed alone makes the status DEAD.
pub const FEED_DEAD: f64 = 0.0;

/// The overall status from `rm_meta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Green,
    Degraded,
    Critical,
    Dead,
}

impl Status {
    /// `> 0.8` GREEN, `> 0.5` DEGRADED, `> 0.2` CRITICAL, else DEAD.
    pub fn of(rm_meta: f64) -> Status {
        if rm_meta > 0.8 {
            Status::Green
        } else if rm_meta > 0.5 {
            Status::Degraded
        } else if rm_meta > 0.2 {
            Status::Critical
        } else {
            Status::Dead
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Green => "GREEN",
            Status::Degraded => "DEGRADED",
            Status::Critical => "CRITICAL",
            Status::Dead => "DEAD",
        }
    }

    /// Every status, best first.
    pub const ALL: [Status; 4] = [
        Status::Green,
        Status::Degraded,
        Status::Critical,
        Status::Dead,
    ];
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The five sensors, each in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensors {
    /// M1: `(alive roles + filled process slots) / (expected roles + expected slots)`: a role of
    /// `roles:` is alive when its heartbeat file's process runs; a role of `processes:` expecting
    /// `n` has `min(running registered processes with the role, n)` of its `n` slots filled.
    pub m1_process: f64,
    /// M2: the worst heartbeat score (age > 60 s → 0, > 30 s → 0.5, else 1) of the heartbeat
    /// files and of the registry entries of the processes `processes:` expects.
    pub m2_heartbeat: f64,
    /// M3: the worst feed score (fresh 1, stale 0.7, dead 0).
    pub m3_data_freshness: f64,
    /// M4: the fraction of control-plane checks (store, API, queue) that passed.
    pub m4_control_plane: f64,
    /// M5: 1 when every coherence check passed, else 0.
    pub m5_coherence: f64,
}

impl Sensors {
    /// `(name, value)` in order, for tables and metrics.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("m1_process", self.m1_process),
            ("m2_heartbeat", self.m2_heartbeat),
            ("m3_data_freshness", self.m3_data_freshness),
            ("m4_control_plane", self.m4_control_plane),
            ("m5_coherence", self.m5_coherence),
        ]
    }

    /// `rm_meta`: the product of the five.
    pub fn rm_meta(&self) -> f64 {
        self.m1_process
            * self.m2_heartbeat
            * self.m3_data_freshness
            * self.m4_control_plane
            * self.m5_coherence
    }
}

/// One check run: `ok`, or the reason it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Probe {
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
        }
    }

    pub fn from_result<E: std::fmt::Display>(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Self::ok(),
            Err(e) => Self::failed(e.to_string()),
        }
    }
}

/// What was read of one role's heartbeat file.
#[derive(Clone, Debug, PartialEq)]
pub enum HeartbeatSeen {
    /// No file.
    Missing,
    /// The file exists but is not a heartbeat.
    Unreadable(String),
    /// `pid` wrote it at `at`; `alive` is whether that process exists on this host.
    Beat {
        pid: u32,
        at: DateTime<Utc>,
        alive: bool,
    },
}

/// What was read of one feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedSeen {
    pub name: String,
    /// The newest modification time, or why there is none.
    pub modified: Result<DateTime<Utc>, String>,
}

/// What was read of one paper run's `state/feed.json` (a `run:` feed).
#[derive(Clone, Debug, PartialEq)]
pub struct RunFeedSeen {
    /// The config entry's name.
    pub feed: String,
    /// The run's full id.
    pub run_id: String,
    /// The file, relative to the data dir (for reports).
    pub path: String,
    /// The file's content, or why there is none.
    pub state: Result<RunFeedState, String>,
}

/// The fields of `state/feed.json` the monitor uses (times already parsed), and when the run
/// started (the age of a feed that has delivered nothing yet counts from there).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFeedState {
    /// `replay`, `scan_dir`, `websocket`.
    pub kind: Option<String>,
    /// When the run last rewrote the file (at least once a second while it runs).
    pub updated_at: Option<DateTime<Utc>>,
    /// When the feed last delivered an event (wall clock).
    pub last_event_at: Option<DateTime<Utc>>,
    /// The run's `created_at`.
    pub started_at: Option<DateTime<Utc>>,
    pub connected: Option<bool>,
    pub events: u64,
    pub malformed: u64,
    /// The run itself judges its data stale (`max_data_age`).
    pub stale: bool,
    /// The run has stopped.
    pub stopped: bool,
}

/// Everything the sensors are computed from, gathered by [`super::observe`] (or built by a
/// test).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observations {
    /// One entry per expected role.
    pub heartbeats: BTreeMap<String, HeartbeatSeen>,
    /// One entry per configured `path:` feed.
    pub feeds: Vec<FeedSeen>,
    /// One entry per paper run of a `run:` feed (`paper:*` gives one per running paper run).
    pub run_feeds: Vec<RunFeedSeen>,
    /// `store`, `api`, `queue` — whichever apply.
    pub control_plane: BTreeMap<String, Probe>,
    /// `kill_switch`, `store_enums`, `meta_files`, `reconcile` — whichever ran.
    pub coherence: BTreeMap<String, Probe>,
    /// The cluster's process registry as listed, or why it could not be; `None`: the check had
    /// no registry to list.
    pub registry: Option<Result<Vec<ProcessEntry>, String>>,
}

/// The state of a registry entry whose process takes work (the other is `draining`).
pub const PROCESS_RUNNING: &str = "running";

/// Why `processes:` could not be checked when the check was given no registry.
pub const NO_REGISTRY: &str = "no process registry to list: `processes:` in health.yaml needs the cluster's Redis (`tradeloom health --redis-url URL [--redis-prefix P]`, or TRADELOOM_REDIS_URL)";

/// One role in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleDetail {
    /// The heartbeat's process exists on this host.
    pub alive: bool,
    /// The M2 score of this role.
    pub heartbeat: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// When the heartbeat was written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One feed in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedDetail {
    /// `fresh`, `stale` or `dead`.
    pub state: String,
    /// The M3 score of this feed.
    pub score: f64,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<f64>,
    pub stale_after_seconds: f64,
    pub dead_after_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A `run:` feed's paper run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// A `run:` feed's kind (`replay`, `scan_dir`, `websocket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A `run:` feed's source is connected (a WebSocket), as the run last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// A `run:` feed's events and malformed messages so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<u64>,
    /// When the run last rewrote `state/feed.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// One process of the cluster's registry in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterProcessDetail {
    /// `api`, `coordinator`, `worker`.
    pub roles: Vec<String>,
    pub host: String,
    pub pid: u32,
    /// The worker's node-type pools (empty without the `worker` role).
    pub pools: Vec<String>,
    /// Tasks it holds a lease on.
    pub in_flight: usize,
    /// `running`, or `draining` (stopping: it fills no slot).
    pub state: String,
    /// When it last wrote its entry (RFC 3339, its own clock).
    pub heartbeat_at: String,
    pub age_seconds: f64,
    /// The M2 score of its entry's age.
    pub heartbeat: f64,
    /// It has a role of `processes:`: its heartbeat counts in M2 and, while `running`, it fills
    /// a slot of each such role in M1. Otherwise it is shown only.
    pub expected: bool,
    /// The API address, for a process with the `api` role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
}

/// One role of `processes:` in a report: `min(running, expected)` of its `expected` slots are
/// filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRoleDetail {
    pub expected: u32,
    /// Registered processes with the role whose state is `running`.
    pub running: u32,
}

/// Why each sensor has its value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Details {
    /// The roles of `roles:` (heartbeat files).
    pub processes: BTreeMap<String, RoleDetail>,
    pub feeds: BTreeMap<String, FeedDetail>,
    pub control_plane: BTreeMap<String, Probe>,
    pub coherence: BTreeMap<String, Probe>,
    /// Every process of the cluster's registry, by id (empty without a registry).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster: BTreeMap<String, ClusterProcessDetail>,
    /// The roles of `processes:` with their slots.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_roles: BTreeMap<String, ClusterRoleDetail>,
    /// Why the registry could not be listed (with `processes:`, the `registry` probe of
    /// `control_plane` fails with it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_error: Option<String>,
}

/// One health check: the object `tradeloom health --json`, `GET /health/meta` and
/// `meta_health.json` carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub rm_meta: f64,
    pub status: Status,
    pub sensors: Sensors,
    /// RFC 3339 UTC.
    pub checked_at: String,
    pub details: Details,
}

impl HealthReport {
    /// The failed coherence checks, `name: error` each.
    pub fn coherence_failures(&self) -> Vec<String> {
        self.details
            .coherence
            .iter()
            .filter(|(_, p)| !p.ok)
            .map(|(name, p)| format!("{name}: {}", p.error.as_deref().unwrap_or("failed")))
            .collect()
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seconds from `then` to `now`; a time in the future counts as age zero.
fn age_seconds(now: DateTime<Utc>, then: DateTime<Utc>) -> f64 {
    let ms = (now - then).num_milliseconds().max(0);
    ms as f64 / 1000.0
}

/// The M2 score of a heartbeat `age` seconds old.
pub fn heartbeat_score(age: f64) -> f64 {
    if age > HEARTBEAT_DEAD_SECS {
        0.0
    } else if age > HEARTBEAT_SLOW_SECS {
        0.5
    } else {
        1.0
    }
}

/// The state and M3 score of a feed `age` old under its thresholds.
pub fn feed_state(
    age: std::time::Duration,
    stale_after: std::time::Duration,
    dead_after: std::time::Duration,
) -> (&'static str, f64) {
    if age > dead_after {
        ("dead", FEED_DEAD)
    } else if age > stale_after {
        ("stale", FEED_STALE)
    } else {
        ("fresh", FEED_FRESH)
    }
}

/// The detail of one paper run's feed: the worst of the data's age (since its last event, or
/// since the run started when none came yet), the age of the run's own update of the file (a
/// killed process stops updating it), the run's own verdict (`stale`) and a disconnected
/// source (at least stale). A stopped run's feed is dead: it no longer delivers.
fn run_feed_detail(feed: &FeedConfig, seen: &RunFeedSeen, now: DateTime<Utc>) -> FeedDetail {
    let mut detail = FeedDetail {
        state: "dead".into(),
        score: FEED_DEAD,
        path: seen.path.clone(),
        modified_at: None,
        age_seconds: None,
        stale_after_seconds: feed.stale_after.as_secs_f64(),
        dead_after_seconds: feed.dead_after.as_secs_f64(),
        error: None,
        run_id: Some(seen.run_id.clone()),
        kind: None,
        connected: None,
        events: None,
        malformed: None,
        updated_at: None,
    };
    let state = match &seen.state {
        Ok(state) => state,
        Err(e) => {
            detail.error = Some(e.clone());
            return detail;
        }
    };
    detail.kind = state.kind.clone();
    detail.connected = state.connected;
    detail.events = Some(state.events);
    detail.malformed = Some(state.malformed);
    detail.updated_at = state.updated_at.map(rfc3339);
    detail.modified_at = state.last_event_at.map(rfc3339);
    let age_of = |t: DateTime<Utc>| {
        std::time::Duration::from_millis((now - t).num_milliseconds().max(0).unsigned_abs())
    };
    if state.stopped {
        detail.error = Some("the run has stopped; its feed delivers nothing more".into());
        return detail;
    }
    let Some(since) = state.last_event_at.or(state.started_at) else {
        detail.error = Some("no event yet and no start time".into());
        return detail;
    };
    let age = age_of(since);
    detail.age_seconds = Some(age.as_secs_f64());
    let (mut name, mut score) = feed_state(age, feed.stale_after, feed.dead_after);
    let mut why = Vec::new();
    if score < FEED_FRESH {
        why.push(match state.last_event_at {
            Some(_) => format!("no event for {:.1} s", age.as_secs_f64()),
            None => format!(
                "no event since the run started {:.1} s ago",
                age.as_secs_f64()
            ),
        });
    }
    match state.updated_at {
        Some(updated) => {
            let silent = age_of(updated);
            let (n, s) = feed_state(silent, feed.stale_after, feed.dead_after);
            if s < score {
                (name, score) = (n, s);
            }
            if s < FEED_FRESH {
                why.push(format!(
                    "the run's process has not updated state/feed.json for {:.1} s (stopped or killed?)",
                    silent.as_secs_f64()
                ));
            }
        }
        None => why.push("state/feed.json has no updated_at".into()),
    }
    if state.stale && score > FEED_STALE {
        (name, score) = ("stale", FEED_STALE);
        why.push("the run reports its data stale (older than max_data_age)".into());
    }
    // A disconnected source that keeps retrying reports status events, not data: not fresh.
    if state.connected == Some(false) {
        if score > FEED_STALE {
            (name, score) = ("stale", FEED_STALE);
        }
        why.push("disconnected".into());
    }
    detail.state = name.into();
    detail.score = score;
    if !why.is_empty() {
        detail.error = Some(why.join("; "));
    }
    detail
}

/// The process slots of `processes:` and the worst heartbeat of the processes it expects.
struct Slots {
    expected: u64,
    filled: u64,
    worst_heartbeat: f64,
}

/// Fills `details.cluster`, `cluster_roles` and `registry_error` from the registry's listing.
/// A registry that could not be listed (or none) lists nobody: every slot is missing.
fn cluster_details(
    config: &HealthConfig,
    registry: Option<&Result<Vec<ProcessEntry>, String>>,
    now: DateTime<Utc>,
    details: &mut Details,
) -> Slots {
    let listed: &[ProcessEntry] = match registry {
        Some(Ok(entries)) => entries,
        Some(Err(e)) => {
            details.registry_error = Some(e.clone());
            &[]
        }
        None => {
            if !config.processes.is_empty() {
                details.registry_error = Some(NO_REGISTRY.to_string());
            }
            &[]
        }
    };
    let mut worst_heartbeat: f64 = 1.0;
    for entry in listed {
        let age = age_seconds(now, entry.heartbeat_at);
        let heartbeat = heartbeat_score(age);
        let expected = entry.roles.iter().any(|r| config.processes.contains_key(r));
        if expected {
            worst_heartbeat = worst_heartbeat.min(heartbeat);
        }
        details.cluster.insert(
            entry.id.clone(),
            ClusterProcessDetail {
                roles: entry.roles.clone(),
                host: entry.host.clone(),
                pid: entry.pid,
                pools: entry.pools.clone(),
                in_flight: entry.in_flight,
                state: entry.state.clone(),
                heartbeat_at: rfc3339(entry.heartbeat_at),
                age_seconds: age,
                heartbeat,
                expected,
                addr: entry.addr.clone(),
            },
        );
    }
    let (mut expected, mut filled) = (0u64, 0u64);
    for (role, &want) in &config.processes {
        let running = listed
            .iter()
            .filter(|e| e.state == PROCESS_RUNNING && e.roles.iter().any(|r| r == role))
            .count();
        let running = u32::try_from(running).unwrap_or(u32::MAX);
        expected += u64::from(want);
        filled += u64::from(running.min(want));
        details.cluster_roles.insert(
            role.clone(),
            ClusterRoleDetail {
                expected: want,
                running,
            },
        );
    }
    Slots {
        expected,
        filled,
        worst_heartbeat,
    }
}

fn fraction_ok(probes: &BTreeMap<String, Probe>) -> f64 {
    if probes.is_empty() {
        return 1.0;
    }
    probes.values().filter(|p| p.ok).count() as f64 / probes.len() as f64
}

/// The report of `observations` at `now` under `config`. Pure: same inputs, same report.
pub fn evaluate(
    config: &HealthConfig,
    observations: &Observations,
    now: DateTime<Utc>,
) -> HealthReport {
    let mut details = Details::default();
    let mut alive = 0usize;
    let mut m2: f64 = 1.0;
    for role in &config.roles {
        let seen = observations
            .heartbeats
            .get(role)
            .cloned()
            .unwrap_or(HeartbeatSeen::Missing);
        let detail = match seen {
            HeartbeatSeen::Missing => RoleDetail {
                alive: false,
                heartbeat: 0.0,
                pid: None,
                heartbeat_at: None,
                age_seconds: None,
                error: Some("no heartbeat file".into()),
            },
            HeartbeatSeen::Unreadable(e) => RoleDetail {
                alive: false,
                heartbeat: 0.0,
                pid: None,
                heartbeat_at: None,
                age_seconds: None,
                error: Some(e),
            },
            HeartbeatSeen::Beat {
                pid,
                at,
                alive: is_alive,
            } => {
                let age = age_seconds(now, at);
                RoleDetail {
                    alive: is_alive,
                    heartbeat: heartbeat_score(age),
                    pid: Some(pid),
                    heartbeat_at: Some(rfc3339(at)),
                    age_seconds: Some(age),
                    error: (!is_alive).then(|| format!("process {pid} is not running")),
                }
            }
        };
        if detail.alive {
            alive += 1;
        }
        m2 = m2.min(detail.heartbeat);
        details.processes.insert(role.clone(), detail);
    }
    let slots = cluster_details(config, observations.registry.as_ref(), now, &mut details);
    m2 = m2.min(slots.worst_heartbeat);
    let expected = config.roles.len() as u64 + slots.expected;
    let m1 = if expected == 0 {
        1.0
    } else {
        (alive as u64 + slots.filled) as f64 / expected as f64
    };

    let mut m3: f64 = 1.0;
    for feed in &config.feeds {
        let path = match &feed.source {
            FeedSource::Path(path) => path,
            FeedSource::Run(_) | FeedSource::PaperRuns => {
                let runs = observations
                    .run_feeds
                    .iter()
                    .filter(|r| r.feed == feed.name);
                for seen in runs {
                    let key = match &feed.source {
                        FeedSource::PaperRuns => format!("{}:{}", feed.name, seen.run_id),
                        _ => feed.name.clone(),
                    };
                    let detail = run_feed_detail(feed, seen, now);
                    m3 = m3.min(detail.score);
                    details.feeds.insert(key, detail);
                }
                continue;
            }
        };
        let modified = observations
            .feeds
            .iter()
            .find(|f| f.name == feed.name)
            .map_or_else(|| Err("not observed".to_string()), |f| f.modified.clone());
        let mut detail = FeedDetail {
            state: "dead".into(),
            score: FEED_DEAD,
            path: path.display().to_string(),
            modified_at: None,
            age_seconds: None,
            stale_after_seconds: feed.stale_after.as_secs_f64(),
            dead_after_seconds: feed.dead_after.as_secs_f64(),
            error: None,
            run_id: None,
            kind: None,
            connected: None,
            events: None,
            malformed: None,
            updated_at: None,
        };
        match modified {
            Ok(at) => {
                let age_ms = (now - at).num_milliseconds().max(0);
                let age = std::time::Duration::from_millis(age_ms.unsigned_abs());
                let (state, score) = feed_state(age, feed.stale_after, feed.dead_after);
                detail.state = state.into();
                detail.score = score;
                detail.modified_at = Some(rfc3339(at));
                detail.age_seconds = Some(age.as_secs_f64());
            }
            Err(e) => detail.error = Some(e),
        }
        m3 = m3.min(detail.score);
        details.feeds.insert(feed.name.clone(), detail);
    }

    details.control_plane = observations.control_plane.clone();
    if !config.processes.is_empty() {
        let probe = match &details.registry_error {
            None => Probe::ok(),
            Some(e) => Probe::failed(e.clone()),
        };
        details.control_plane.insert("registry".to_string(), probe);
    }
    details.coherence = observations.coherence.clone();
    let m4 = fraction_ok(&details.control_plane);
    let m5 = if details.coherence.values().all(|p| p.ok) {
        1.0
    } else {
        0.0
    };
    let sensors = Sensors {
        m1_process: m1,
        m2_heartbeat: m2,
        m3_data_freshness: m3,
        m4_control_plane: m4,
        m5_coherence: m5,
    };
    let rm_meta = sensors.rm_meta();
    HealthReport {
        rm_meta,
        status: Status::of(rm_meta),
        sensors,
        checked_at: rfc3339(now),
        details,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::health::config::FeedConfig;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 25, 10, 0, 0).unwrap()
    }

    fn secs(s: f64) -> chrono::Duration {
        chrono::Duration::milliseconds((s * 1000.0).round() as i64)
    }

    fn config(roles: &[&str], feeds: &[(&str, u64, u64)]) -> HealthConfig {
        HealthConfig {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            feeds: feeds
                .iter()
                .map(|(name, stale, dead)| FeedConfig {
                    name: name.to_string(),
                    source: crate::health::FeedSource::Path(PathBuf::from(format!(
                        "feeds/{name}.csv"
                    ))),
                    stale_after: Duration::from_secs(*stale),
                    dead_after: Duration::from_secs(*dead),
                })
                .collect(),
            api: None,
            processes: BTreeMap::new(),
        }
    }

    fn healthy_control() -> BTreeMap<String, Probe> {
        BTreeMap::from([("store".to_string(), Probe::ok())])
    }

    fn beat(age: f64, alive: bool) -> HeartbeatSeen {
        HeartbeatSeen::Beat {
            pid: 42,
            at: t0() - secs(age),
            alive,
        }
    }

    #[test]
    fn status_boundaries() {
        let cases = [
            (1.0, Status::Green),
            (0.81, Status::Green),
            (0.8, Status::Degraded),
            (0.7, Status::Degraded),
            (0.51, Status::Degraded),
            (0.5, Status::Critical),
            (0.35, Status::Critical),
            (0.21, Status::Critical),
            (0.2, Status::Dead),
            (0.0, Status::Dead),
        ];
        for (rm, status) in cases {
            assert_eq!(Status::of(rm), status, "rm_meta {rm}");
        }
        assert_eq!(
            serde_json::to_string(&Status::Degraded).unwrap(),
            "\"DEGRADED\""
        );
    }

    #[test]
    fn heartbeat_boundaries() {
        let cases = [
            (0.0, 1.0),
            (29.999, 1.0),
            (30.0, 1.0),
            (30.001, 0.5),
            (59.999, 0.5),
            (60.0, 0.5),
            (60.001, 0.0),
            (3600.0, 0.0),
        ];
        let c = config(&["api"], &[]);
        for (age, score) in cases {
            assert_eq!(heartbeat_score(age), score, "age {age}");
            let obs = Observations {
                heartbeats: BTreeMap::from([("api".to_string(), beat(age, true))]),
                control_plane: healthy_control(),
                ..Observations::default()
            };
            let r = evaluate(&c, &obs, t0());
            assert_eq!(r.sensors.m2_heartbeat, score, "age {age}");
            assert_eq!(r.details.processes["api"].age_seconds, Some(age));
        }
        // M2 is the worst role.
        let obs = Observations {
            heartbeats: BTreeMap::from([
                ("api".to_string(), beat(1.0, true)),
                ("workers".to_string(), beat(45.0, true)),
            ]),
            control_plane: healthy_control(),
            ..Observations::default()
        };
        let r = evaluate(&config(&["api", "workers"], &[]), &obs, t0());
        assert_eq!(r.sensors.m2_heartbeat, 0.5);
        assert_eq!(r.status, Status::Critical);
    }

    #[test]
    fn feed_boundaries() {
        let c = config(&[], &[("prices", 30, 120)]);
        let cases = [
            (0.0, "fresh", 1.0, Status::Green),
            (30.0, "fresh", 1.0, Status::Green),
            (30.001, "stale", 0.7, Status::Degraded),
            (120.0, "stale", 0.7, Status::Degraded),
            (120.001, "dead", 0.0, Status::Dead),
        ];
        for (age, state, score, status) in cases {
            let obs = Observations {
                feeds: vec![FeedSeen {
                    name: "prices".into(),
                    modified: Ok(t0() - secs(age)),
                }],
                control_plane: healthy_control(),
                ..Observations::default()
            };
            let r = evaluate(&c, &obs, t0());
            let f = &r.details.feeds["prices"];
            assert_eq!((f.state.as_str(), f.score), (state, score), "age {age}");
            assert_eq!(r.sensors.m3_data_freshness, score);
            assert_eq!(r.status, status, "age {age}");
        }
        // A modification time in the future (clock skew) is fresh, not negative.
        let obs = Observations {
            feeds: vec![FeedSeen {
                name: "prices".into(),
                modified: Ok(t0() + secs(5.0)),
            }],
            control_plane: healthy_control(),
            ..Observations::default()
        };
        assert_eq!(
            evaluate(&c, &obs, t0()).details.feeds["prices"].state,
            "fresh"
        );
        // A missing feed is dead, with the reason.
        let obs = Observations {
            feeds: vec![FeedSeen {
                name: "prices".into(),
                modified: Err("no such file".into()),
            }],
            control_plane: healthy_control(),
            ..Observations::default()
        };
        let r = evaluate(&c, &obs, t0());
        assert_eq!(r.sensors.m3_data_freshness, 0.0);
        assert_eq!(
            r.details.feeds["prices"].error.as_deref(),
            Some("no such file")
        );
    }

    #[test]
    fn a_stalling_feed_walks_green_degraded_dead_green() {
        // stale after 1 s, dead after 2 s; the file stops being written at t0 and is written
        // again at t0 + 5 s.
        let c = config(&["api"], &[("prices", 1, 2)]);
        let obs_at = |modified: DateTime<Utc>, now: DateTime<Utc>| Observations {
            heartbeats: BTreeMap::from([(
                "api".to_string(),
                HeartbeatSeen::Beat {
                    pid: 7,
                    at: now,
                    alive: true,
                },
            )]),
            feeds: vec![FeedSeen {
                name: "prices".into(),
                modified: Ok(modified),
            }],
            control_plane: healthy_control(),
            coherence: BTreeMap::from([("kill_switch".to_string(), Probe::ok())]),
            run_feeds: Vec::new(),
            registry: None,
        };
        let walk: Vec<Status> = [
            (t0(), t0()),
            (t0(), t0() + secs(0.5)),
            (t0(), t0() + secs(1.5)),
            (t0(), t0() + secs(3.0)),
            (t0() + secs(5.0), t0() + secs(5.0)),
        ]
        .into_iter()
        .map(|(modified, now)| evaluate(&c, &obs_at(modified, now), now).status)
        .collect();
        assert_eq!(
            walk,
            [
                Status::Green,
                Status::Green,
                Status::Degraded,
                Status::Dead,
                Status::Green
            ]
        );
    }

    #[test]
    fn process_and_control_plane_fractions_and_coherence() {
        let c = config(&["api", "coordinator", "workers", "scheduler", "x"], &[]);
        let obs = Observations {
            heartbeats: BTreeMap::from([
                ("api".to_string(), beat(1.0, true)),
                ("coordinator".to_string(), beat(1.0, true)),
                ("workers".to_string(), beat(1.0, true)),
                ("scheduler".to_string(), beat(1.0, true)),
                ("x".to_string(), beat(1.0, false)),
            ]),
            control_plane: BTreeMap::from([
                ("store".to_string(), Probe::ok()),
                ("api".to_string(), Probe::failed("connection refused")),
            ]),
            ..Observations::default()
        };
        let r = evaluate(&c, &obs, t0());
        assert_eq!(r.sensors.m1_process, 0.8);
        assert_eq!(r.sensors.m4_control_plane, 0.5);
        assert_eq!(r.rm_meta, 0.4);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(
            r.details.processes["x"].error.as_deref(),
            Some("process 42 is not running")
        );
        // A missing heartbeat: the role is neither alive nor beating.
        let r = evaluate(&config(&["api"], &[]), &Observations::default(), t0());
        assert_eq!((r.sensors.m1_process, r.sensors.m2_heartbeat), (0.0, 0.0));
        // One failed coherence check zeroes M5.
        let obs = Observations {
            control_plane: healthy_control(),
            coherence: BTreeMap::from([
                ("kill_switch".to_string(), Probe::ok()),
                ("store_enums".to_string(), Probe::failed("jobs: `weird`")),
            ]),
            ..Observations::default()
        };
        let r = evaluate(&HealthConfig::default(), &obs, t0());
        assert_eq!(r.sensors.m5_coherence, 0.0);
        assert_eq!(r.status, Status::Dead);
        assert_eq!(r.coherence_failures(), ["store_enums: jobs: `weird`"]);
    }

    #[test]
    fn report_json_shape_round_trips() {
        let r = evaluate(
            &config(&["api"], &[("prices", 30, 120)]),
            &Observations {
                heartbeats: BTreeMap::from([("api".to_string(), beat(2.0, true))]),
                feeds: vec![FeedSeen {
                    name: "prices".into(),
                    modified: Ok(t0()),
                }],
                control_plane: healthy_control(),
                coherence: BTreeMap::new(),
                run_feeds: Vec::new(),
                registry: None,
            },
            t0(),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "GREEN");
        assert_eq!(v["rm_meta"], 1.0);
        assert_eq!(v["checked_at"], "2026-03-25T10:00:00.000Z");
        for s in [
            "m1_process",
            "m2_heartbeat",
            "m3_data_freshness",
            "m4_control_plane",
            "m5_coherence",
        ] {
            assert_eq!(v["sensors"][s], 1.0, "{s}");
        }
        assert_eq!(v["details"]["feeds"]["prices"]["state"], "fresh");
        let back: HealthReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    /// A registry entry of process `id` whose last heartbeat is `age` s old.
    pub(crate) fn registered(id: &str, roles: &[&str], age: f64, state: &str) -> ProcessEntry {
        ProcessEntry {
            id: id.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            pools: if roles.contains(&"worker") {
                vec!["http".into(), "transform".into()]
            } else {
                Vec::new()
            },
            concurrency: 2,
            host: "node-a".into(),
            pid: 4000 + id.len() as u32,
            addr: None,
            started_at: t0() - secs(600.0),
            heartbeat_at: t0() - secs(age),
            in_flight: 1,
            state: state.into(),
            version: "0.1.0".into(),
        }
    }

    /// `roles: [api]` (its heartbeat fresh) and `processes: {coordinator: 1, worker: 3}`.
    fn cluster_config() -> HealthConfig {
        HealthConfig {
            processes: BTreeMap::from([("coordinator".to_string(), 1), ("worker".to_string(), 3)]),
            ..config(&["api"], &[])
        }
    }

    fn cluster_obs(registry: Option<Result<Vec<ProcessEntry>, String>>) -> Observations {
        Observations {
            heartbeats: BTreeMap::from([("api".to_string(), beat(1.0, true))]),
            control_plane: healthy_control(),
            registry,
            ..Observations::default()
        }
    }

    fn full_cluster() -> Vec<ProcessEntry> {
        vec![
            registered("c1", &["coordinator"], 1.0, "running"),
            registered("w1", &["worker"], 1.0, "running"),
            registered("w2", &["worker"], 2.0, "running"),
            registered("w3", &["worker"], 0.5, "running"),
        ]
    }

    #[test]
    fn registered_processes_fill_the_slots_of_m1() {
        let c = cluster_config();
        // All present: 1 role alive + 1 coordinator + 3 workers of 1 + 1 + 3.
        let r = evaluate(&c, &cluster_obs(Some(Ok(full_cluster()))), t0());
        assert_eq!(r.sensors.m1_process, 1.0);
        assert_eq!(r.sensors.m2_heartbeat, 1.0);
        assert_eq!(r.status, Status::Green);
        assert_eq!(r.details.control_plane["registry"], Probe::ok());
        assert_eq!(
            r.details.cluster_roles["worker"],
            ClusterRoleDetail {
                expected: 3,
                running: 3
            }
        );
        let w2 = &r.details.cluster["w2"];
        assert_eq!(w2.roles, ["worker"]);
        assert_eq!(w2.pools, ["http", "transform"]);
        assert_eq!((w2.host.as_str(), w2.pid), ("node-a", 4002));
        assert_eq!((w2.in_flight, w2.state.as_str()), (1, "running"));
        assert_eq!(w2.heartbeat_at, "2026-03-25T09:59:58.000Z");
        assert_eq!(
            (w2.age_seconds, w2.heartbeat, w2.expected),
            (2.0, 1.0, true)
        );
        assert_eq!(r.details.registry_error, None);

        // One of three workers missing: (1 + 1 + 2) / (1 + 1 + 3).
        let mut two_workers = full_cluster();
        two_workers.retain(|e| e.id != "w3");
        let r = evaluate(&c, &cluster_obs(Some(Ok(two_workers.clone()))), t0());
        assert_eq!(r.sensors.m1_process, 0.8);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.details.cluster_roles["worker"].running, 2);
        assert!(!r.details.cluster.contains_key("w3"));

        // A draining worker is listed but fills no slot; a fourth running one fills no extra.
        let mut draining = two_workers.clone();
        draining.push(registered("w3", &["worker"], 0.5, "draining"));
        let r = evaluate(&c, &cluster_obs(Some(Ok(draining))), t0());
        assert_eq!(r.sensors.m1_process, 0.8);
        assert_eq!(r.details.cluster["w3"].state, "draining");
        let mut four = full_cluster();
        four.push(registered("w4", &["worker"], 0.5, "running"));
        let r = evaluate(&c, &cluster_obs(Some(Ok(four))), t0());
        assert_eq!(r.sensors.m1_process, 1.0);
        assert_eq!(r.details.cluster_roles["worker"].running, 4);

        // A process of every role (`serve`) fills a slot of each; the api heartbeat file is dead.
        let serve = vec![registered(
            "s1",
            &["api", "coordinator", "worker"],
            1.0,
            "running",
        )];
        let mut obs = cluster_obs(Some(Ok(serve)));
        obs.heartbeats.insert("api".to_string(), beat(1.0, false));
        let r = evaluate(&c, &obs, t0());
        // (0 + 1 + 1) / (1 + 1 + 3)
        assert_eq!(r.sensors.m1_process, 0.4);
        assert_eq!(r.status, Status::Critical);
    }

    #[test]
    fn a_stale_registry_heartbeat_lowers_m2() {
        let c = cluster_config();
        for (age, score, status) in [
            (30.0, 1.0, Status::Green),
            (45.0, 0.5, Status::Critical),
            (61.0, 0.0, Status::Dead),
        ] {
            let mut entries = full_cluster();
            entries[2] = registered("w2", &["worker"], age, "running");
            let r = evaluate(&c, &cluster_obs(Some(Ok(entries))), t0());
            assert_eq!(r.sensors.m2_heartbeat, score, "age {age}");
            assert_eq!(r.details.cluster["w2"].heartbeat, score);
            assert_eq!(r.details.cluster["w2"].age_seconds, age);
            // A stale process still holds its slot: the registry lists it.
            assert_eq!(r.sensors.m1_process, 1.0);
            assert_eq!(r.status, status, "age {age}");
        }
        // A process of a role nobody expects is shown, its heartbeat counted nowhere.
        let mut entries = full_cluster();
        entries.push(registered("a1", &["api"], 500.0, "running"));
        let r = evaluate(&c, &cluster_obs(Some(Ok(entries))), t0());
        assert_eq!(r.sensors.m2_heartbeat, 1.0);
        let a1 = &r.details.cluster["a1"];
        assert_eq!((a1.heartbeat, a1.expected), (0.0, false));
    }

    #[test]
    fn an_unlistable_registry_leaves_the_slots_empty_and_fails_the_registry_probe() {
        let c = cluster_config();
        let error = "listing the process registry (redis): connection refused";
        let r = evaluate(&c, &cluster_obs(Some(Err(error.into()))), t0());
        // (1 + 0) / (1 + 4)
        assert_eq!(r.sensors.m1_process, 0.2);
        assert_eq!(r.details.control_plane["registry"], Probe::failed(error));
        assert_eq!(r.sensors.m4_control_plane, 0.5);
        assert_eq!(r.details.registry_error.as_deref(), Some(error));
        assert_eq!(r.details.cluster_roles["worker"].running, 0);
        assert!(r.details.cluster.is_empty());
        assert_eq!(r.status, Status::Dead);
        // No registry at all (`tradeloom health` without --redis-url): the same, saying so.
        let r = evaluate(&c, &cluster_obs(None), t0());
        assert_eq!(r.sensors.m1_process, 0.2);
        assert_eq!(
            r.details.control_plane["registry"],
            Probe::failed(NO_REGISTRY)
        );
    }

    #[test]
    fn without_processes_the_registry_is_only_shown() {
        let c = config(&["api"], &[]);
        let entries = vec![
            registered("w1", &["worker"], 1.0, "running"),
            registered("w2", &["worker"], 90.0, "draining"),
        ];
        let r = evaluate(&c, &cluster_obs(Some(Ok(entries))), t0());
        assert_eq!(
            (r.sensors.m1_process, r.sensors.m2_heartbeat, r.status),
            (1.0, 1.0, Status::Green)
        );
        assert!(!r.details.control_plane.contains_key("registry"));
        assert!(r.details.cluster_roles.is_empty());
        assert_eq!(r.details.cluster.len(), 2);
        assert!(!r.details.cluster["w2"].expected);
        // The report round-trips with its cluster details.
        let back: HealthReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        // Unreachable: said, but no sensor moves.
        let r = evaluate(&c, &cluster_obs(Some(Err("down".into()))), t0());
        assert_eq!(r.rm_meta, 1.0);
        assert_eq!(r.details.registry_error.as_deref(), Some("down"));
        assert!(!r.details.control_plane.contains_key("registry"));
        // No registry and no `processes:`: nothing about the cluster in the report.
        let v = serde_json::to_value(evaluate(&c, &cluster_obs(None), t0())).unwrap();
        for key in ["cluster", "cluster_roles", "registry_error"] {
            assert!(v["details"].get(key).is_none(), "{key}: {v}");
        }
    }

    fn run_config(source: crate::health::FeedSource, name: &str) -> HealthConfig {
        HealthConfig {
            feeds: vec![FeedConfig {
                name: name.into(),
                source,
                stale_after: Duration::from_secs(30),
                dead_after: Duration::from_secs(120),
            }],
            ..HealthConfig::default()
        }
    }

    fn run_seen(feed: &str, run_id: &str, state: Result<RunFeedState, String>) -> RunFeedSeen {
        RunFeedSeen {
            feed: feed.into(),
            run_id: run_id.into(),
            path: format!("runs/{run_id}/state/feed.json"),
            state,
        }
    }

    /// A live paper run whose last event is `event_age` s old and whose process rewrote
    /// feed.json `update_age` s ago.
    fn live(event_age: f64, update_age: f64) -> RunFeedState {
        RunFeedState {
            kind: Some("websocket".into()),
            updated_at: Some(t0() - secs(update_age)),
            last_event_at: Some(t0() - secs(event_age)),
            started_at: Some(t0() - secs(3600.0)),
            connected: Some(true),
            events: 12,
            malformed: 1,
            stale: false,
            stopped: false,
        }
    }

    #[test]
    fn a_silent_paper_run_feed_lowers_m3() {
        use crate::health::FeedSource;
        let c = run_config(FeedSource::Run("r1".into()), "run:r1");
        let eval = |state: RunFeedState| {
            let obs = Observations {
                run_feeds: vec![run_seen("run:r1", "r1", Ok(state))],
                control_plane: healthy_control(),
                ..Observations::default()
            };
            evaluate(&c, &obs, t0())
        };
        // Fresh: an event 1 s ago, the file rewritten just now.
        let r = eval(live(1.0, 0.5));
        assert_eq!(r.sensors.m3_data_freshness, FEED_FRESH);
        let d = &r.details.feeds["run:r1"];
        assert_eq!(
            (d.state.as_str(), d.run_id.as_deref(), d.events, d.malformed),
            ("fresh", Some("r1"), Some(12), Some(1))
        );
        assert_eq!(d.error, None);
        // The feed went silent (the run still updates the file): stale, then dead.
        let r = eval(live(31.0, 0.5));
        assert_eq!(r.sensors.m3_data_freshness, FEED_STALE);
        assert_eq!(r.status, Status::Degraded);
        let d = &r.details.feeds["run:r1"];
        assert_eq!(d.state, "stale");
        assert_eq!(d.age_seconds, Some(31.0));
        assert_eq!(d.error.as_deref(), Some("no event for 31.0 s"));
        assert_eq!(eval(live(121.0, 0.5)).sensors.m3_data_freshness, FEED_DEAD);
        // The run's process stopped rewriting the file (killed -9): its feed is dead too.
        let r = eval(live(1.0, 200.0));
        assert_eq!(r.details.feeds["run:r1"].state, "dead");
        assert!(
            r.details.feeds["run:r1"]
                .error
                .as_deref()
                .unwrap()
                .contains("has not updated state/feed.json for 200.0 s"),
            "{:?}",
            r.details.feeds["run:r1"]
        );
        // The run's own stale verdict, and a disconnected source, are shown.
        let mut state = live(1.0, 0.5);
        state.stale = true;
        state.connected = Some(false);
        let r = eval(state);
        assert_eq!(r.details.feeds["run:r1"].state, "stale");
        assert_eq!(
            r.details.feeds["run:r1"].error.as_deref(),
            Some("the run reports its data stale (older than max_data_age); disconnected")
        );
        // Disconnected alone: stale, whatever the last event's age.
        let mut state = live(1.0, 0.5);
        state.connected = Some(false);
        let r = eval(state);
        assert_eq!(r.details.feeds["run:r1"].state, "stale");
        assert_eq!(
            r.details.feeds["run:r1"].error.as_deref(),
            Some("disconnected")
        );
        // No event yet: the age counts from the run's start.
        let mut state = live(0.0, 0.5);
        state.last_event_at = None;
        state.started_at = Some(t0() - secs(45.0));
        let r = eval(state);
        assert_eq!(r.details.feeds["run:r1"].state, "stale");
        // A stopped run delivers nothing more.
        let mut state = live(1.0, 0.5);
        state.stopped = true;
        assert_eq!(eval(state).details.feeds["run:r1"].state, "dead");
        // No feed.json: dead with the reason.
        let obs = Observations {
            run_feeds: vec![run_seen("run:r1", "r1", Err("no such file".into()))],
            ..Observations::default()
        };
        let r = evaluate(&c, &obs, t0());
        assert_eq!(
            r.details.feeds["run:r1"].error.as_deref(),
            Some("no such file")
        );
        assert_eq!(r.sensors.m3_data_freshness, FEED_DEAD);
        let text = serde_json::to_string(&r).unwrap();
        let back: HealthReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn every_running_paper_run_is_a_feed_of_its_own() {
        use crate::health::FeedSource;
        let c = run_config(FeedSource::PaperRuns, "paper");
        let obs = Observations {
            run_feeds: vec![
                run_seen("paper", "aaa", Ok(live(1.0, 0.2))),
                run_seen("paper", "bbb", Ok(live(40.0, 0.2))),
                run_seen("other", "ccc", Ok(live(500.0, 0.2))),
            ],
            control_plane: healthy_control(),
            ..Observations::default()
        };
        let r = evaluate(&c, &obs, t0());
        let names: Vec<&String> = r.details.feeds.keys().collect();
        assert_eq!(names, ["paper:aaa", "paper:bbb"]);
        assert_eq!(r.sensors.m3_data_freshness, FEED_STALE);
        assert_eq!(r.details.feeds["paper:bbb"].state, "stale");
        // None running: nothing to watch, M3 stays 1.
        let r = evaluate(&c, &Observations::default(), t0());
        assert!(r.details.feeds.is_empty());
        assert_eq!(r.sensors.m3_data_freshness, 1.0);
    }
}
