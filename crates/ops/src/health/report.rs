//! The five sensors, `rm_meta` and the status, computed from [`Observations`] and `now` only:
//! [`evaluate`] reads no clock and no file, so every threshold is testable exactly.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::config::HealthConfig;

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
    /// M1: the fraction of expected roles whose process is alive.
    pub m1_process: f64,
    /// M2: the worst heartbeat score (age > 60 s → 0, > 30 s → 0.5, else 1).
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

/// Everything the sensors are computed from, gathered by [`super::observe`] (or built by a
/// test).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observations {
    /// One entry per expected role.
    pub heartbeats: BTreeMap<String, HeartbeatSeen>,
    /// One entry per configured feed.
    pub feeds: Vec<FeedSeen>,
    /// `store`, `api`, `queue` — whichever apply.
    pub control_plane: BTreeMap<String, Probe>,
    /// `kill_switch`, `store_enums`, `meta_files`, `reconcile` — whichever ran.
    pub coherence: BTreeMap<String, Probe>,
}

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
}

/// Why each sensor has its value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Details {
    pub processes: BTreeMap<String, RoleDetail>,
    pub feeds: BTreeMap<String, FeedDetail>,
    pub control_plane: BTreeMap<String, Probe>,
    pub coherence: BTreeMap<String, Probe>,
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
    let m1 = if config.roles.is_empty() {
        1.0
    } else {
        alive as f64 / config.roles.len() as f64
    };

    let mut m3: f64 = 1.0;
    for feed in &config.feeds {
        let modified = observations
            .feeds
            .iter()
            .find(|f| f.name == feed.name)
            .map_or_else(|| Err("not observed".to_string()), |f| f.modified.clone());
        let mut detail = FeedDetail {
            state: "dead".into(),
            score: FEED_DEAD,
            path: feed.path.display().to_string(),
            modified_at: None,
            age_seconds: None,
            stale_after_seconds: feed.stale_after.as_secs_f64(),
            dead_after_seconds: feed.dead_after.as_secs_f64(),
            error: None,
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
                    path: PathBuf::from(format!("feeds/{name}.csv")),
                    stale_after: Duration::from_secs(*stale),
                    dead_after: Duration::from_secs(*dead),
                })
                .collect(),
            api: None,
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
}
