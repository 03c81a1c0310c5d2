//! Cron schedules of workflows. A [`Scheduler`] looks at every workflow whose latest version has
//! a `schedule`, works out which fire times are due under the schedule's missed-run policy
//! ([`due_fire_times`]), claims each in the store and starts a run for it through a
//! [`RunStarter`].
//!
//! The store is the only state: a fire time is claimed by inserting its row
//! ([`Store::claim_schedule_fire`]), so several schedulers (one per `tradeloom serve` process)
//! on one database start each fire time exactly once, and a restarted scheduler goes on from the
//! last claimed fire time. Fire times count from the last claimed one, or, before the first,
//! from when the workflow's latest version was saved. A fire time is started at most once: if
//! starting fails the error is logged and recorded with the fire time, and the next fire time
//! is the next chance; if the process dies between claiming and starting, that fire time is
//! lost (at most once, never twice).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tradeloom_flow::cron::{CronSchedule, SKIP_GRACE, due_fire_times};
use tradeloom_flow::{FlowLimits, compile_text_with};
use tradeloom_store::{Store, StoreError, WorkflowVersion};

/// Workflows read per store round trip while ticking.
const PAGE: u32 = 500;

/// The longest period [`Scheduler::spawn`] accepts: half of [`SKIP_GRACE`], so a fire time
/// under `missed: skip` is always seen while it is current.
pub const MAX_TICK_INTERVAL: Duration = Duration::from_secs(30);

/// Starts the run of a scheduled fire time. The runtime implements it; the scheduler only
/// decides when.
#[async_trait]
pub trait RunStarter: Send + Sync {
    /// Starts a run of the latest version of workflow `workflow_id` for fire time `fire_at`,
    /// with the inputs' defaults, and returns its run id; or says why it could not start (the
    /// scheduler records that and does not retry this fire time).
    async fn start_scheduled_run(
        &self,
        workflow_id: &str,
        fire_at: DateTime<Utc>,
    ) -> Result<String, StartError>;
}

/// Why a scheduled run could not start, as the scheduler records it with the fire time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub message: String,
}

impl StartError {
    pub fn new(message: impl Into<String>) -> Self {
        StartError {
            message: message.into(),
        }
    }
}

impl From<crate::OrchestratorError> for StartError {
    fn from(e: crate::OrchestratorError) -> Self {
        StartError::new(e.to_string())
    }
}

/// A fire time this scheduler claimed in a [`Scheduler::tick`], and what starting it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiredRun {
    pub workflow_id: String,
    pub fire_at: DateTime<Utc>,
    /// The run id, or why the run could not start.
    pub run: Result<String, StartError>,
}

/// Starts runs of scheduled workflows; see the [module docs](self).
pub struct Scheduler {
    store: Arc<dyn Store>,
    starter: Arc<dyn RunStarter>,
    /// Parsed schedules by definition hash (`None`: no schedule, or one that cannot be read).
    schedules: Mutex<HashMap<String, Option<Arc<CronSchedule>>>>,
    /// The limits definitions are compiled within.
    flow_limits: FlowLimits,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, starter: Arc<dyn RunStarter>) -> Self {
        Scheduler {
            store,
            starter,
            schedules: Mutex::new(HashMap::new()),
            flow_limits: FlowLimits::DEFAULT,
        }
    }

    /// Compiles definitions within `limits` (default [`FlowLimits::DEFAULT`]), as the runtime
    /// does.
    pub fn with_flow_limits(mut self, limits: FlowLimits) -> Self {
        self.flow_limits = limits;
        self
    }

    /// Starts every fire time due at `now` (of every workflow whose latest version has a
    /// schedule) that no scheduler has claimed yet, and returns those this call claimed, in
    /// workflow-name then time order. A workflow whose store calls fail is logged and left for
    /// the next tick; only failing to list the workflows is an error.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<FiredRun>, StoreError> {
        let mut fired = Vec::new();
        let mut seen = HashSet::new();
        let mut offset = 0u64;
        loop {
            let page = self.store.list_workflows(PAGE, offset).await?;
            for workflow in &page {
                match self.fire_workflow(&workflow.id, now, &mut seen).await {
                    Ok(runs) => fired.extend(runs),
                    // Deleted since it was listed: nothing to fire.
                    Err(StoreError::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(
                        workflow_id = %workflow.id,
                        error = %e,
                        "schedule: could not check the workflow's schedule; trying again next tick"
                    ),
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
            offset += page.len() as u64;
        }
        // Forget schedules of versions that are no longer the latest of any workflow.
        self.cache().retain(|hash, _| seen.contains(hash));
        Ok(fired)
    }

    /// Runs [`tick`](Self::tick) with the wall clock every `interval` (at most
    /// [`MAX_TICK_INTERVAL`], at least 1 s; other values are clamped with a warning) until the
    /// task is aborted with [`JoinHandle::abort`] (dropping the handle leaves it running).
    /// Failed ticks are logged and the next one tries again.
    pub fn spawn(self, interval: Duration) -> JoinHandle<()> {
        let period = interval.clamp(Duration::from_secs(1), MAX_TICK_INTERVAL);
        if period != interval {
            tracing::warn!(
                requested = ?interval,
                used = ?period,
                "schedule: tick interval clamped to 1-30 s (fire times under `missed: skip` are current for {} s)",
                SKIP_GRACE.num_seconds()
            );
        }
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(e) = self.tick(Utc::now()).await {
                    tracing::warn!(error = %e, "schedule: tick failed; trying again next tick");
                }
            }
        })
    }

    async fn fire_workflow(
        &self,
        workflow_id: &str,
        now: DateTime<Utc>,
        seen: &mut HashSet<String>,
    ) -> Result<Vec<FiredRun>, StoreError> {
        let version = self.store.workflow_version(workflow_id, None).await?;
        seen.insert(version.definition_hash.clone());
        let Some(schedule) = self.schedule_of(&version).await? else {
            return Ok(Vec::new());
        };
        let last = self.store.last_schedule_fire(workflow_id).await?;
        let mut fired = Vec::new();
        for fire_at in due_fire_times(&schedule, last, version.created_at, now) {
            if !self.store.claim_schedule_fire(workflow_id, fire_at).await? {
                continue;
            }
            let run = self.starter.start_scheduled_run(workflow_id, fire_at).await;
            let recorded = match &run {
                Ok(run_id) => {
                    tracing::info!(
                        %workflow_id,
                        %fire_at,
                        %run_id,
                        trace_id = %tradeloom_core::trace_id(run_id),
                        "schedule: started a run"
                    );
                    self.store
                        .set_schedule_fire_run(workflow_id, fire_at, run_id)
                        .await
                }
                Err(error) => {
                    tracing::warn!(
                        %workflow_id,
                        %fire_at,
                        %error,
                        "schedule: could not start the run; this fire time is not retried"
                    );
                    self.store
                        .set_schedule_fire_error(workflow_id, fire_at, &error.message)
                        .await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(%workflow_id, %fire_at, error = %e, "schedule: could not record the outcome of a fire time");
            }
            fired.push(FiredRun {
                workflow_id: workflow_id.to_string(),
                fire_at,
                run,
            });
        }
        Ok(fired)
    }

    /// The schedule of a workflow version, compiled once per definition.
    async fn schedule_of(
        &self,
        version: &WorkflowVersion,
    ) -> Result<Option<Arc<CronSchedule>>, StoreError> {
        if let Some(known) = self.cache().get(&version.definition_hash) {
            return Ok(known.clone());
        }
        let definition = self.store.blob(&version.definition_hash).await?;
        let origin = format!(
            "workflow {} version {}",
            version.workflow_id, version.version
        );
        let schedule = match compile_text_with(&definition.body, &origin, &self.flow_limits) {
            Ok(compiled) => match compiled.ir.schedule().map(CronSchedule::from_schedule) {
                None => None,
                Some(Ok(schedule)) => Some(Arc::new(schedule)),
                Some(Err(e)) => {
                    tracing::warn!("schedule: {origin} is not scheduled: schedule.{e}");
                    None
                }
            },
            Err(e) => {
                tracing::warn!("schedule: {origin} is not scheduled: it no longer compiles: {e}");
                None
            }
        };
        self.cache()
            .insert(version.definition_hash.clone(), schedule.clone());
        Ok(schedule)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Arc<CronSchedule>>>> {
        // The map is only a cache of pure results: a panic elsewhere cannot leave it wrong.
        self.schedules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeDelta;
    use tempfile::TempDir;
    use tradeloom_flow::{compile, parse_definition};
    use tradeloom_store::{NewWorkflowVersion, open_store};

    /// Stands in for the runtime: records each call and answers with a fresh run id, or fails.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<(String, DateTime<Utc>)>>,
        fail: bool,
    }

    #[async_trait]
    impl RunStarter for Recorder {
        async fn start_scheduled_run(
            &self,
            workflow_id: &str,
            fire_at: DateTime<Utc>,
        ) -> Result<String, StartError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push((workflow_id.to_string(), fire_at));
            if self.fail {
                return Err(StartError::new("the runtime is shutting down"));
            }
            Ok(format!("run-{}", calls.len()))
        }
    }

    impl Recorder {
        fn calls(&self) -> Vec<(String, DateTime<Utc>)> {
            self.calls.lock().unwrap().clone()
        }
    }

    async fn sqlite() -> (TempDir, Arc<dyn Store>) {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("tradeloom.db");
        let store = open_store(&path.display().to_string()).await.unwrap();
        (dir, store)
    }

    fn definition(name: &str, schedule: Option<&str>) -> NewWorkflowVersion {
        let schedule = schedule
            .map(|s| format!("schedule: {s}\n"))
            .unwrap_or_default();
        let text = format!(
            "name: {name}\n{schedule}nodes:\n  - {{id: a, type: transform, config: {{output: {{x: 1}}}}}}\n"
        );
        let definition = parse_definition(&text, "test.yaml").unwrap();
        let compiled = compile(&definition).unwrap();
        NewWorkflowVersion {
            name: name.into(),
            definition: definition.to_json_value().to_string(),
            ir: compiled.ir.canonical_json(),
        }
    }

    async fn save(store: &Arc<dyn Store>, name: &str, schedule: Option<&str>) -> WorkflowVersion {
        store
            .create_workflow(&definition(name, schedule))
            .await
            .unwrap()
    }

    /// The first 06:00 UTC after `t`.
    fn six_after(t: DateTime<Utc>) -> DateTime<Utc> {
        let six = t.date_naive().and_hms_opt(6, 0, 0).unwrap().and_utc();
        if six > t {
            six
        } else {
            six + TimeDelta::days(1)
        }
    }

    fn fires_of(fired: &[FiredRun], workflow_id: &str) -> Vec<DateTime<Utc>> {
        fired
            .iter()
            .filter(|f| f.workflow_id == workflow_id)
            .map(|f| f.fire_at)
            .collect()
    }

    #[tokio::test]
    async fn a_daily_schedule_fires_once_a_day() {
        let (_dir, store) = sqlite().await;
        let starter = Arc::new(Recorder::default());
        let scheduler = Scheduler::new(Arc::clone(&store), starter.clone());
        let daily = save(
            &store,
            "daily",
            Some("{cron: \"0 6 * * *\", timezone: UTC}"),
        )
        .await;
        let manual = save(&store, "manual", None).await;
        let first = six_after(daily.created_at);
        assert!(
            scheduler
                .tick(first - TimeDelta::seconds(1))
                .await
                .unwrap()
                .is_empty(),
            "not due yet"
        );
        for day in 0..3 {
            let six = first + TimeDelta::days(day);
            let fired = scheduler.tick(six + TimeDelta::seconds(10)).await.unwrap();
            assert_eq!(
                fired,
                [FiredRun {
                    workflow_id: daily.workflow_id.clone(),
                    fire_at: six,
                    run: Ok(format!("run-{}", day + 1)),
                }]
            );
            // Later ticks of the same day start nothing more.
            for later in [TimeDelta::seconds(40), TimeDelta::hours(6)] {
                assert!(scheduler.tick(six + later).await.unwrap().is_empty());
            }
        }
        let calls = starter.calls();
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|(id, _)| *id == daily.workflow_id));
        let recorded = store.schedule_fires(&daily.workflow_id, 0).await.unwrap();
        let recorded: Vec<_> = recorded
            .iter()
            .map(|f| (f.fire_at, f.run_id.clone().unwrap()))
            .collect();
        assert_eq!(
            recorded,
            [
                (first + TimeDelta::days(2), "run-3".to_string()),
                (first + TimeDelta::days(1), "run-2".to_string()),
                (first, "run-1".to_string()),
            ]
        );
        assert!(
            store
                .schedule_fires(&manual.workflow_id, 0)
                .await
                .unwrap()
                .is_empty(),
            "a workflow without a schedule never fires"
        );
    }

    #[tokio::test]
    async fn missed_policies_after_a_three_day_outage() {
        let (_dir, store) = sqlite().await;
        let starter = Arc::new(Recorder::default());
        let scheduler = Scheduler::new(Arc::clone(&store), starter.clone());
        let skip = save(&store, "skip", Some("{cron: \"0 6 * * *\", missed: skip}")).await;
        let once = save(
            &store,
            "once",
            Some("{cron: \"0 6 * * *\", missed: run_once}"),
        )
        .await;
        let all = save(
            &store,
            "all",
            Some("{cron: \"0 6 * * *\", missed: run_all}"),
        )
        .await;
        let first = six_after(skip.created_at.max(all.created_at));
        let fired = scheduler.tick(first + TimeDelta::seconds(5)).await.unwrap();
        for v in [&skip, &once, &all] {
            assert_eq!(fires_of(&fired, &v.workflow_id), [first]);
        }
        let day = |n: i64| first + TimeDelta::days(n);

        // Down for three days; back at noon: only the kept-up policies start anything.
        let (_dir2, store2) = sqlite().await;
        let scheduler2 = Scheduler::new(Arc::clone(&store2), starter.clone());
        let skip2 = save(&store2, "skip", Some("{cron: \"0 6 * * *\", missed: skip}")).await;
        let first2 = six_after(skip2.created_at);
        scheduler2
            .tick(first2 + TimeDelta::seconds(5))
            .await
            .unwrap();
        let late = scheduler2
            .tick(first2 + TimeDelta::days(3) + TimeDelta::hours(6))
            .await
            .unwrap();
        assert!(late.is_empty(), "skip forgets fire times missed for long");

        // Back just after the third missed day's 06:00: it is current.
        let fired = scheduler
            .tick(day(3) + TimeDelta::seconds(20))
            .await
            .unwrap();
        assert_eq!(fires_of(&fired, &skip.workflow_id), [day(3)]);
        assert_eq!(fires_of(&fired, &once.workflow_id), [day(3)]);
        assert_eq!(fires_of(&fired, &all.workflow_id), [day(1), day(2), day(3)]);
        assert!(fired.iter().all(|f| f.run.is_ok()));
        // Nothing is started twice.
        assert!(
            scheduler
                .tick(day(3) + TimeDelta::seconds(50))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(starter.calls().len(), 3 + 1 + 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_schedulers_start_each_fire_time_once() {
        let (_dir, store) = sqlite().await;
        let starter = Arc::new(Recorder::default());
        let a = Arc::new(Scheduler::new(Arc::clone(&store), starter.clone()));
        let b = Arc::new(Scheduler::new(Arc::clone(&store), starter.clone()));
        let v = save(
            &store,
            "every-5",
            Some("{cron: \"*/5 * * * *\", missed: run_all}"),
        )
        .await;
        let mut fired = Vec::new();
        // Ticks an hour apart: a dozen fire times per tick to race for.
        for hour in 1..=4 {
            let now = v.created_at + TimeDelta::hours(hour);
            // Two tasks, so the ticks run in parallel on the two worker threads.
            let ta = tokio::spawn({
                let a = Arc::clone(&a);
                async move { a.tick(now).await }
            });
            let tb = tokio::spawn({
                let b = Arc::clone(&b);
                async move { b.tick(now).await }
            });
            fired.extend(ta.await.unwrap().unwrap());
            fired.extend(tb.await.unwrap().unwrap());
        }
        let mut times: Vec<_> = fired.iter().map(|f| f.fire_at).collect();
        times.sort();
        let schedule = CronSchedule::from_schedule(&tradeloom_flow::definition::Schedule {
            cron: "*/5 * * * *".into(),
            timezone: "UTC".into(),
            missed: tradeloom_flow::definition::Missed::RunAll,
        })
        .unwrap();
        let expected = due_fire_times(
            &schedule,
            None,
            v.created_at,
            v.created_at + TimeDelta::hours(4),
        );
        assert_eq!(expected.len(), 48);
        assert_eq!(times, expected, "every fire time once, none twice");
        let mut started: Vec<_> = starter.calls().into_iter().map(|(_, at)| at).collect();
        started.sort();
        assert_eq!(started, expected);
        let recorded = store.schedule_fires(&v.workflow_id, 100).await.unwrap();
        assert_eq!(recorded.len(), 48);
        assert!(recorded.iter().all(|f| f.run_id.is_some()));
    }

    #[tokio::test]
    async fn deleting_or_unscheduling_a_workflow_stops_it() {
        let (_dir, store) = sqlite().await;
        let starter = Arc::new(Recorder::default());
        let scheduler = Scheduler::new(Arc::clone(&store), starter.clone());
        let gone = save(&store, "gone", Some("{cron: \"0 6 * * *\"}")).await;
        let changed = save(&store, "changed", Some("{cron: \"0 6 * * *\"}")).await;
        let first = six_after(gone.created_at.max(changed.created_at));
        let fired = scheduler.tick(first + TimeDelta::seconds(5)).await.unwrap();
        assert_eq!(fired.len(), 2);

        store.delete_workflow(&gone.workflow_id).await.unwrap();
        // The latest version decides: version 2 has no schedule.
        let (v2, _) = store
            .update_workflow(&changed.workflow_id, &definition("changed", None))
            .await
            .unwrap();
        assert_eq!(v2.version, 2);
        for day in 1..=3 {
            let now = first + TimeDelta::days(day) + TimeDelta::seconds(5);
            assert!(scheduler.tick(now).await.unwrap().is_empty());
        }
        assert_eq!(starter.calls().len(), 2);
        assert!(
            store
                .schedule_fires(&gone.workflow_id, 0)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_failed_start_is_recorded_and_not_retried() {
        let (_dir, store) = sqlite().await;
        let starter = Arc::new(Recorder {
            fail: true,
            ..Recorder::default()
        });
        let scheduler = Scheduler::new(Arc::clone(&store), starter.clone());
        let v = save(
            &store,
            "daily",
            Some("{cron: \"0 6 * * *\", missed: run_all}"),
        )
        .await;
        let first = six_after(v.created_at);
        let fired = scheduler.tick(first + TimeDelta::seconds(5)).await.unwrap();
        assert_eq!(
            fired,
            [FiredRun {
                workflow_id: v.workflow_id.clone(),
                fire_at: first,
                run: Err(StartError::new("the runtime is shutting down")),
            }]
        );
        for later in [10, 20, 3600] {
            assert!(
                scheduler
                    .tick(first + TimeDelta::seconds(later))
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(starter.calls().len(), 1);
        let recorded = store.schedule_fires(&v.workflow_id, 0).await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].run_id, None);
        assert_eq!(
            recorded[0].error.as_deref(),
            Some("the runtime is shutting down")
        );
        // The next fire time is the next chance.
        let next = scheduler
            .tick(first + TimeDelta::days(1) + TimeDelta::seconds(5))
            .await
            .unwrap();
        assert_eq!(
            fires_of(&next, &v.workflow_id),
            [first + TimeDelta::days(1)]
        );
    }

    #[tokio::test]
    async fn a_spawned_scheduler_ticks_with_the_wall_clock() {
        let (_dir, store) = sqlite().await;
        let starter = Arc::new(Recorder::default());
        let v = save(
            &store,
            "minutely",
            Some("{cron: \"* * * * *\", missed: run_once}"),
        )
        .await;
        // As if it last fired ten minutes ago: the latest whole minute is owed at once.
        let long_ago = v.created_at - TimeDelta::minutes(10);
        assert!(
            store
                .claim_schedule_fire(&v.workflow_id, long_ago)
                .await
                .unwrap()
        );
        let before = Utc::now();
        let handle =
            Scheduler::new(Arc::clone(&store), starter.clone()).spawn(Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while starter.calls().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.abort();
        let calls = starter.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        let (id, fire_at) = &calls[0];
        assert_eq!(id, &v.workflow_id);
        assert_eq!(fire_at.timestamp() % 60, 0);
        assert!(*fire_at > long_ago && *fire_at <= Utc::now());
        assert!(*fire_at > before - TimeDelta::minutes(1));
        assert_eq!(
            store.last_schedule_fire(&v.workflow_id).await.unwrap(),
            Some(*fire_at)
        );
    }
}
