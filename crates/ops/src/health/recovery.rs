//! Recovery actions after a check: requeue tasks held under expired leases, restart worker
//! loops that finished, engage the global kill switch when data coherence fails. Each action is
//! journaled to `<data_dir>/health/actions.jsonl` (`{"at", "action", "reason", "outcome"}`) and
//! rate-limited from that journal — so the limit holds across processes and restarts: at most
//! [`RateLimit::max`] of a kind per [`RateLimit::window`], then one `suppressed` entry and no
//! more of that kind until the window has room again. Never a restart loop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::HealthError;
use super::files::append_line;
use super::paths::health_dir;
use super::report::{HealthReport, rfc3339};

/// `action` of engaging the global kill switch.
pub const ENGAGE_KILL_SWITCH: &str = "engage_kill_switch";
/// `action` of respawning finished worker loops.
pub const RESTART_WORKER_POOL: &str = "restart_worker_pool";
/// `action` of requeueing tasks held under expired leases.
pub const REQUEUE_STUCK_TASKS: &str = "requeue_stuck_tasks";
/// `outcome` of an action the rate limit refused.
pub const SUPPRESSED: &str = "suppressed";

/// `<data_dir>/health/actions.jsonl`.
pub fn actions_path(data_dir: &Path) -> PathBuf {
    health_dir(data_dir).join("actions.jsonl")
}

/// One line of `actions.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// RFC 3339 UTC.
    pub at: String,
    pub action: String,
    pub reason: String,
    /// What happened (`engaged`, `respawned 2 loops`, `failed: ...`), or `suppressed`.
    pub outcome: String,
}

/// At most `max` actions of a kind per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub max: usize,
    pub window: Duration,
}

impl Default for RateLimit {
    /// 3 per 10 minutes.
    fn default() -> Self {
        Self {
            max: 3,
            window: Duration::from_secs(600),
        }
    }
}

/// Whether an action may run now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permit {
    Go,
    /// Over the limit; `journaled` is true the first time (a `suppressed` line was written).
    Suppressed {
        journaled: bool,
    },
}

/// A future of [`Supervisor::requeue_expired`].
pub type RequeueFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<(String, usize)>, String>> + Send + 'a>,
>;

/// The worker loops of the process the monitor runs in (`tradeloom serve`'s workflow runtime).
pub trait Supervisor: Send + Sync {
    /// Per group of loops (a worker pool, `coordinator`, `timers`): how many of its loops have
    /// finished (crashed or returned) and how many it has.
    fn finished_loops(&self) -> Vec<LoopGroup>;
    /// Starts a fresh loop for each finished one of `group`; returns how many.
    fn respawn_finished(&self, group: &str) -> usize;
    /// Makes tasks held under expired leases deliverable again; `(pool, count)` per pool with
    /// any.
    fn requeue_expired(&self) -> RequeueFuture<'_>;
}

/// The loops of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopGroup {
    pub name: String,
    pub finished: usize,
    pub total: usize,
}

/// The actions journal and its rate limit for one data dir.
#[derive(Clone, Debug)]
pub struct Recovery {
    data_dir: PathBuf,
    limit: RateLimit,
}

impl Recovery {
    pub fn new(data_dir: &Path, limit: RateLimit) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            limit,
        }
    }

    /// Every journaled action, oldest first (lines that do not parse are skipped).
    pub fn journal(&self) -> Vec<ActionRecord> {
        std::fs::read_to_string(actions_path(&self.data_dir))
            .map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn append(&self, record: &ActionRecord) -> Result<(), HealthError> {
        let path = actions_path(&self.data_dir);
        let line = serde_json::to_string(record).map_err(|e| HealthError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        append_line(&path, &line)
    }

    /// May `action` run at `now`? Over the limit, journals `suppressed` once (with `reason`)
    /// until an action of that kind runs again.
    pub fn permit(
        &self,
        action: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Permit, HealthError> {
        let journal = self.journal();
        let window = chrono::Duration::from_std(self.limit.window)
            .unwrap_or_else(|_| chrono::Duration::days(365));
        let since = now - window;
        let of_kind: Vec<&ActionRecord> = journal.iter().filter(|r| r.action == action).collect();
        let recent = of_kind
            .iter()
            .filter(|r| r.outcome != SUPPRESSED)
            .filter(|r| {
                DateTime::parse_from_rfc3339(&r.at).is_ok_and(|at| at.with_timezone(&Utc) > since)
            })
            .count();
        if recent < self.limit.max {
            return Ok(Permit::Go);
        }
        let already = of_kind.last().is_some_and(|r| r.outcome == SUPPRESSED);
        if !already {
            self.append(&ActionRecord {
                at: rfc3339(now),
                action: action.to_string(),
                reason: format!(
                    "{reason} (limit: {} per {} s reached; no more until the window has room)",
                    self.limit.max,
                    self.limit.window.as_secs()
                ),
                outcome: SUPPRESSED.to_string(),
            })?;
        }
        Ok(Permit::Suppressed {
            journaled: !already,
        })
    }

    /// Runs `act` if the rate limit allows it and journals what it did.
    fn attempt(
        &self,
        action: &str,
        reason: String,
        now: DateTime<Utc>,
        act: impl FnOnce() -> String,
    ) -> Result<Option<ActionRecord>, HealthError> {
        match self.permit(action, &reason, now)? {
            Permit::Suppressed { .. } => Ok(None),
            Permit::Go => {
                let record = ActionRecord {
                    at: rfc3339(now),
                    action: action.to_string(),
                    reason,
                    outcome: act(),
                };
                self.append(&record)?;
                tracing::warn!(action = %record.action, reason = %record.reason, outcome = %record.outcome, "health recovery action");
                Ok(Some(record))
            }
        }
    }

    /// Engages the global kill switch when `report`'s data coherence failed and it is not
    /// engaged already. Returns the journaled action, if one ran.
    pub fn engage_kill_switch_if_incoherent(
        &self,
        report: &HealthReport,
        now: DateTime<Utc>,
    ) -> Result<Option<ActionRecord>, HealthError> {
        let failures = report.coherence_failures();
        if failures.is_empty() {
            return Ok(None);
        }
        let switch =
            tradeloom_safety::KillSwitch::open(&self.data_dir).map_err(|e| HealthError::Io {
                path: tradeloom_core::DataDir::new(&self.data_dir).kill_switch(),
                message: e.to_string(),
            })?;
        // An unreadable state file already counts as engaged (fail-safe): nothing to do.
        if switch.is_engaged(None, None).is_some() {
            return Ok(None);
        }
        let reason = format!("health: data coherence failed: {}", failures.join("; "));
        self.attempt(ENGAGE_KILL_SWITCH, reason.clone(), now, || {
            match switch.engage(
                &tradeloom_safety::Scope::Global,
                &reason,
                "health-monitor",
                false,
            ) {
                Ok(_) => "engaged".to_string(),
                Err(e) => format!("failed: {e}"),
            }
        })
    }

    /// Requeues expired leases and restarts finished worker loops of `supervisor`.
    pub async fn supervise(
        &self,
        supervisor: &dyn Supervisor,
        now: DateTime<Utc>,
    ) -> Result<Vec<ActionRecord>, HealthError> {
        let mut done = Vec::new();
        // Requeueing needs no permit to look: it only acts where leases ran out. Looking is the
        // act, though, so the limit is asked first.
        if let Permit::Go = self.permit_quiet(REQUEUE_STUCK_TASKS, now) {
            match supervisor.requeue_expired().await {
                Ok(pools) if !pools.is_empty() => {
                    let total: usize = pools.iter().map(|(_, n)| n).sum();
                    let reason = pools
                        .iter()
                        .map(|(p, n)| format!("pool `{p}`: {n} tasks under expired leases"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let record = ActionRecord {
                        at: rfc3339(now),
                        action: REQUEUE_STUCK_TASKS.to_string(),
                        reason,
                        outcome: format!("requeued {total} tasks"),
                    };
                    self.append(&record)?;
                    done.push(record);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "health: cannot look for expired leases"),
            }
        }
        for group in supervisor.finished_loops() {
            if group.finished == 0 {
                continue;
            }
            let reason = format!(
                "`{}`: {} of {} loops finished",
                group.name, group.finished, group.total
            );
            if let Some(r) = self.attempt(RESTART_WORKER_POOL, reason, now, || {
                let n = supervisor.respawn_finished(&group.name);
                format!("respawned {n} loops")
            })? {
                done.push(r);
            }
        }
        Ok(done)
    }

    /// Like [`Recovery::permit`] for an action whose need is only known after acting:
    /// suppression is journaled by the next action that is refused, not here.
    fn permit_quiet(&self, action: &str, now: DateTime<Utc>) -> Permit {
        let window = chrono::Duration::from_std(self.limit.window)
            .unwrap_or_else(|_| chrono::Duration::days(365));
        let since = now - window;
        let recent = self
            .journal()
            .iter()
            .filter(|r| r.action == action && r.outcome != SUPPRESSED)
            .filter(|r| {
                DateTime::parse_from_rfc3339(&r.at).is_ok_and(|at| at.with_timezone(&Utc) > since)
            })
            .count();
        if recent < self.limit.max {
            Permit::Go
        } else {
            Permit::Suppressed { journaled: false }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use chrono::TimeZone;

    use super::*;
    use crate::health::config::HealthConfig;
    use crate::health::report::{Observations, Probe, evaluate};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 25, 10, 0, 0).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }

    fn incoherent(now: DateTime<Utc>) -> HealthReport {
        evaluate(
            &HealthConfig::default(),
            &Observations {
                control_plane: BTreeMap::from([("store".to_string(), Probe::ok())]),
                coherence: BTreeMap::from([(
                    "store_enums".to_string(),
                    Probe::failed("jobs: 1 rows with status `exploded`"),
                )]),
                ..Observations::default()
            },
            now,
        )
    }

    #[test]
    fn rate_limit_three_per_window_then_one_suppressed() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recovery::new(dir.path(), RateLimit::default());
        let mut permits = Vec::new();
        for i in 0..6 {
            let p = r
                .permit(RESTART_WORKER_POOL, "pool `http` dead", at(i * 60))
                .unwrap();
            if p == Permit::Go {
                r.append(&ActionRecord {
                    at: rfc3339(at(i * 60)),
                    action: RESTART_WORKER_POOL.into(),
                    reason: "pool `http` dead".into(),
                    outcome: "respawned 1 loops".into(),
                })
                .unwrap();
            }
            permits.push(p);
        }
        assert_eq!(
            permits,
            [
                Permit::Go,
                Permit::Go,
                Permit::Go,
                Permit::Suppressed { journaled: true },
                Permit::Suppressed { journaled: false },
                Permit::Suppressed { journaled: false },
            ]
        );
        // Another kind has its own budget.
        assert_eq!(
            r.permit(ENGAGE_KILL_SWITCH, "x", at(300)).unwrap(),
            Permit::Go
        );
        // Ten minutes after the first action the window has room again.
        assert_eq!(
            r.permit(RESTART_WORKER_POOL, "again", at(600)).unwrap(),
            Permit::Go
        );
        let outcomes: Vec<String> = r.journal().into_iter().map(|a| a.outcome).collect();
        assert_eq!(
            outcomes,
            [
                "respawned 1 loops",
                "respawned 1 loops",
                "respawned 1 loops",
                SUPPRESSED
            ]
        );
    }

    #[test]
    fn incoherent_data_engages_the_global_kill_switch_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recovery::new(dir.path(), RateLimit::default());
        // Coherent: nothing happens.
        let fine = evaluate(&HealthConfig::default(), &Observations::default(), t0());
        assert_eq!(
            r.engage_kill_switch_if_incoherent(&fine, t0()).unwrap(),
            None
        );

        let report = incoherent(t0());
        let action = r
            .engage_kill_switch_if_incoherent(&report, t0())
            .unwrap()
            .expect("the kill switch is engaged");
        assert_eq!(action.action, ENGAGE_KILL_SWITCH);
        assert_eq!(action.outcome, "engaged");
        assert_eq!(
            action.reason,
            "health: data coherence failed: store_enums: jobs: 1 rows with status `exploded`"
        );
        let switch = tradeloom_safety::KillSwitch::open(dir.path()).unwrap();
        let state = switch.status().unwrap().global;
        assert!(state.engaged);
        assert_eq!(state.reason.as_deref(), Some(action.reason.as_str()));
        assert_eq!(state.by.as_deref(), Some("health-monitor"));
        // Already engaged: no second action, nothing journaled.
        assert_eq!(
            r.engage_kill_switch_if_incoherent(&incoherent(at(10)), at(10))
                .unwrap(),
            None
        );
        assert_eq!(r.journal().len(), 1);
        let line = std::fs::read_to_string(actions_path(dir.path())).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        for key in ["at", "action", "reason", "outcome"] {
            assert!(v.get(key).is_some(), "{key} in {line}");
        }
    }

    #[test]
    fn an_operator_releasing_repeatedly_meets_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recovery::new(dir.path(), RateLimit::default());
        let switch = tradeloom_safety::KillSwitch::open(dir.path()).unwrap();
        let mut outcomes = Vec::new();
        for i in 0..5 {
            let action = r
                .engage_kill_switch_if_incoherent(&incoherent(at(i)), at(i))
                .unwrap();
            outcomes.push(action.map(|a| a.outcome));
            switch
                .release(&tradeloom_safety::Scope::Global, "looked at it", "alice")
                .unwrap();
        }
        assert_eq!(
            outcomes,
            [
                Some("engaged".to_string()),
                Some("engaged".to_string()),
                Some("engaged".to_string()),
                None,
                None
            ]
        );
        let kinds: Vec<String> = r.journal().into_iter().map(|a| a.outcome).collect();
        assert_eq!(kinds, ["engaged", "engaged", "engaged", SUPPRESSED]);
    }

    /// Loops that stay dead: every respawn "fails" the same way a crashing loop would.
    struct CrashingPool {
        respawns: Mutex<usize>,
        expired: Mutex<Vec<(String, usize)>>,
    }

    impl Supervisor for CrashingPool {
        fn finished_loops(&self) -> Vec<LoopGroup> {
            vec![
                LoopGroup {
                    name: "http".into(),
                    finished: 2,
                    total: 8,
                },
                LoopGroup {
                    name: "agent".into(),
                    finished: 0,
                    total: 8,
                },
            ]
        }
        fn respawn_finished(&self, _group: &str) -> usize {
            *self.respawns.lock().unwrap() += 1;
            2
        }
        fn requeue_expired(&self) -> RequeueFuture<'_> {
            let expired = std::mem::take(&mut *self.expired.lock().unwrap());
            Box::pin(async move { Ok(expired) })
        }
    }

    #[tokio::test]
    async fn a_pool_that_keeps_dying_is_not_restarted_in_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recovery::new(dir.path(), RateLimit::default());
        let pool = CrashingPool {
            respawns: Mutex::new(0),
            expired: Mutex::new(vec![("http".into(), 3)]),
        };
        for i in 0..20 {
            r.supervise(&pool, at(i * 10)).await.unwrap();
        }
        assert_eq!(*pool.respawns.lock().unwrap(), 3);
        let journal: Vec<(String, String)> = r
            .journal()
            .into_iter()
            .map(|a| (a.action, a.outcome))
            .collect();
        assert_eq!(
            journal,
            [
                (
                    REQUEUE_STUCK_TASKS.to_string(),
                    "requeued 3 tasks".to_string()
                ),
                (
                    RESTART_WORKER_POOL.to_string(),
                    "respawned 2 loops".to_string()
                ),
                (
                    RESTART_WORKER_POOL.to_string(),
                    "respawned 2 loops".to_string()
                ),
                (
                    RESTART_WORKER_POOL.to_string(),
                    "respawned 2 loops".to_string()
                ),
                (RESTART_WORKER_POOL.to_string(), SUPPRESSED.to_string()),
            ]
        );
    }
}
