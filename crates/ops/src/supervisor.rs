//! The process supervisor: long-running `tradeloom` subcommands (a paper trader, a scan bridge,
//! a cluster worker, …) started from a spec and kept running the way systemd keeps a service —
//! a restart policy (`always`, `on-failure`, `never`), exponential back-off, a start limit that
//! turns a crash loop into `failed`, resource limits (`RLIMIT_AS`, `RLIMIT_CPU`,
//! `RLIMIT_NOFILE`, `RLIMIT_NPROC`) set in the child before `exec`, a cap on the number of
//! children, logs under `<data_dir>/runtime/logs/` and a run history per child.
//!
//! The child is always the `tradeloom` executable the supervisor was started with; a spec only
//! picks a kind from an allow-list and gives that kind's arguments ([`ProcessSpec`]).
//!
//! Everything is kept in `<data_dir>/state/runtime_state.json`, written atomically on every
//! change. Children live in process groups of their own and outlive the supervisor: a new
//! supervisor on the same data dir re-adopts a child that still runs — the pid must still be
//! the same process (start time, command line and boot id from `/proc`, never the pid alone) —
//! and applies the restart policy to one that died meanwhile. One supervisor per data dir
//! (`state/runtime.lock`). `state/server_state.json` says which process supervises the data dir
//! and how the previous one ended (a crash is logged at the next start).
//!
//! Linux only (`/proc`, `setrlimit`, process groups).

mod child;
mod record;
mod spec;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::task::JoinHandle;

pub use child::{Identity, boot_id};
pub use record::{
    HISTORY_LEN, LOGS_DIR, PreviousServer, ProcessRecord, ProcessState, RunEntry,
    SERVER_STATE_FILE, STATE_FILE, ServerState, Snapshot,
};
pub use spec::{
    AddrArgs, Backoff, BridgeArgs, CoordinatorArgs, HealthArgs, KindArgs, MAX_BURST, ProcessKind,
    ProcessSpec, ResourceLimits, RestartPolicy, SpecError, StartLimit, TraderArgs, WorkerArgs,
    check_id,
};

/// Records kept at most; past it the oldest ended ones are forgotten.
pub const MAX_RECORDS: usize = 256;

/// The lock file that keeps a second supervisor off the data dir.
const LOCK_FILE: &str = "state/runtime.lock";

/// What the supervisor refuses or fails at.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A spec that cannot be started (the API's 422).
    #[error("invalid process spec: {0}")]
    Spec(#[from] SpecError),
    #[error("no supervised process `{0}`")]
    NotFound(String),
    #[error(
        "a process named `{0}` exists already; restart it, remove it (once ended) or pick another name"
    )]
    Exists(String),
    #[error(
        "{active} supervised processes run or wait to restart, the most this supervisor allows ({limit}); stop one first"
    )]
    TooManyChildren { active: usize, limit: usize },
    #[error("process `{id}` is {state}; stop it before removing it")]
    Active { id: String, state: &'static str },
    #[error("another supervisor runs on this data dir ({LOCK_FILE} is locked)")]
    Locked,
    #[error("the process supervisor has shut down")]
    Closed,
    /// Reading or writing the supervisor's files; the message names them relative to the data
    /// dir.
    #[error("{0}")]
    Io(String),
}

/// How a supervisor runs its children.
#[derive(Clone)]
pub struct SupervisorOptions {
    /// Children that run or wait to restart at once, at most (1 to [`MAX_RECORDS`]); one more
    /// is refused with [`SupervisorError::TooManyChildren`]. Default 16.
    pub max_children: usize,
    /// The limits a child gets when its spec gives none, and the most a spec may ask for.
    /// Default [`ResourceLimits::supervisor_default`].
    pub limits: ResourceLimits,
    /// Variables added to every child's environment (e.g. `TRADELOOM_REDIS_URL` for workers);
    /// never shown or written anywhere.
    pub env: Vec<(String, String)>,
    /// How often exits are looked for and due restarts made. Default 200 ms.
    pub poll_interval: Duration,
    /// How long a stopped child has between SIGTERM and SIGKILL. Default 10 s.
    pub stop_grace: Duration,
}

/// The environment's names only: its values may be secrets (a Redis URL with a password).
impl std::fmt::Debug for SupervisorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("SupervisorOptions")
            .field("max_children", &self.max_children)
            .field("limits", &self.limits)
            .field("env", &env)
            .field("poll_interval", &self.poll_interval)
            .field("stop_grace", &self.stop_grace)
            .finish()
    }
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        Self {
            max_children: 16,
            limits: ResourceLimits::supervisor_default(),
            env: Vec::new(),
            poll_interval: Duration::from_millis(200),
            stop_grace: Duration::from_secs(10),
        }
    }
}

struct Inner {
    snapshot: Snapshot,
    /// Children this supervisor started (reaped through their handle); re-adopted ones are
    /// watched through `/proc`.
    children: HashMap<String, Child>,
}

/// Supervises child processes of the `tradeloom` executable on one data dir. Create with
/// [`ProcessSupervisor::start`]; end with [`ProcessSupervisor::shutdown`] (stops the children)
/// or [`ProcessSupervisor::detach`] (leaves them running for the next supervisor).
pub struct ProcessSupervisor {
    data_dir: PathBuf,
    executable: PathBuf,
    options: SupervisorOptions,
    inner: Mutex<Inner>,
    closed: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<File>>,
    /// `state/server_state.json`.
    server: Mutex<ServerState>,
}

impl std::fmt::Debug for ProcessSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSupervisor")
            .field("max_children", &self.options.max_children)
            .field("closed", &self.closed.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; carry on with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This process's `state/server_state.json` at its start, with how the previous supervisor of
/// the data dir ended (logged when it crashed).
fn server_state_at_start(data_dir: &Path, snapshot: &Snapshot) -> ServerState {
    let previous = record::load_server(data_dir).map(|p| {
        let ended = if p.state == "running" {
            "crashed"
        } else {
            p.state.as_str()
        };
        if ended == "crashed" {
            let children = snapshot
                .processes
                .iter()
                .filter(|r| r.state.is_active())
                .count();
            tracing::warn!(
                pid = p.pid,
                started_at = %p.started_at,
                children,
                "the previous supervisor of this data dir ended without a shutdown; its children are re-adopted or restarted"
            );
        }
        PreviousServer {
            pid: p.pid,
            started_at: p.started_at,
            ended: ended.to_string(),
        }
    });
    ServerState {
        pid: std::process::id(),
        boot_id: boot_id(),
        started_at: Utc::now(),
        state: "running".to_string(),
        stopped_at: None,
        previous,
    }
}

/// Takes the data dir's supervisor lock, or says who holds it. A lock that was just released
/// can stay held for a moment by a process this one forked meanwhile (a child between `fork`
/// and `exec` shares the descriptor, close-on-exec or not): it is asked again for half a second
/// before the data dir counts as supervised by another process.
#[allow(unsafe_code)] // flock: an fd we own and two integers
fn take_lock(data_dir: &Path) -> Result<File, SupervisorError> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join(LOCK_FILE))
        .map_err(|e| SupervisorError::Io(format!("opening {LOCK_FILE}: {e}")))?;
    for attempt in 0..20 {
        // SAFETY: flock on a descriptor this function owns; the lock ends when the file is
        // closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::WouldBlock {
            return Err(SupervisorError::Io(format!("locking {LOCK_FILE}: {e}")));
        }
        if attempt < 19 {
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    Err(SupervisorError::Locked)
}

impl ProcessSupervisor {
    /// Starts supervising on `data_dir` with `executable` (the `tradeloom` binary, normally
    /// `std::env::current_exe()`): reads `state/runtime_state.json`, re-adopts children that
    /// still run, applies the restart policy to those that died, starts again those a shutdown
    /// stopped, and begins watching. Must be called inside a tokio runtime.
    pub async fn start(
        data_dir: &Path,
        executable: PathBuf,
        options: SupervisorOptions,
    ) -> Result<Arc<Self>, SupervisorError> {
        if options.max_children == 0 || options.max_children > MAX_RECORDS {
            return Err(SupervisorError::Io(format!(
                "max_children {} is outside 1 to {MAX_RECORDS}",
                options.max_children
            )));
        }
        for dir in ["state", LOGS_DIR] {
            std::fs::create_dir_all(data_dir.join(dir))
                .map_err(|e| SupervisorError::Io(format!("creating {dir}/: {e}")))?;
        }
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| SupervisorError::Io(format!("the data dir: {e}")))?;
        let lock = take_lock(&data_dir)?;
        let snapshot = record::load(&data_dir).map_err(SupervisorError::Io)?;
        let server = server_state_at_start(&data_dir, &snapshot);
        let supervisor = Arc::new(Self {
            server: Mutex::new(server),
            data_dir,
            executable,
            options,
            inner: Mutex::new(Inner {
                snapshot,
                children: HashMap::new(),
            }),
            closed: AtomicBool::new(false),
            task: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
        });
        {
            let mut inner = locked(&supervisor.inner);
            supervisor.recover(&mut inner, Utc::now());
            supervisor.save(&inner);
        }
        supervisor.save_server();
        let task = tokio::spawn(watch(
            Arc::downgrade(&supervisor),
            supervisor.options.poll_interval,
        ));
        *locked(&supervisor.task) = Some(task);
        Ok(supervisor)
    }

    /// This supervisor's `state/server_state.json`.
    pub fn server_state(&self) -> ServerState {
        locked(&self.server).clone()
    }

    fn save_server(&self) {
        if let Err(e) = record::save_server(&self.data_dir, &locked(&self.server)) {
            tracing::warn!(error = %e, "server state not saved");
        }
    }

    /// Records how this supervisor ended (`stopped` or `detached`).
    fn record_end(&self, how: &str) {
        {
            let mut server = locked(&self.server);
            server.state = how.to_string();
            server.stopped_at = Some(Utc::now());
        }
        self.save_server();
    }

    /// The options it runs with.
    pub fn options(&self) -> &SupervisorOptions {
        &self.options
    }

    /// Reads a spec (JSON), limits checked against this supervisor's ceilings.
    pub fn parse_spec(&self, value: Value) -> Result<ProcessSpec, SpecError> {
        ProcessSpec::from_json(value, &self.options.limits)
    }

    /// Every child, oldest first.
    pub fn list(&self) -> Vec<ProcessRecord> {
        locked(&self.inner).snapshot.processes.clone()
    }

    /// One child.
    pub fn get(&self, id: &str) -> Result<ProcessRecord, SupervisorError> {
        locked(&self.inner)
            .snapshot
            .processes
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| SupervisorError::NotFound(id.to_string()))
    }

    /// Children that run or wait to restart.
    pub fn active(&self) -> usize {
        active_count(&locked(&self.inner).snapshot)
    }

    fn check_open(&self) -> Result<(), SupervisorError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(SupervisorError::Closed)
        } else {
            Ok(())
        }
    }

    /// Starts a new child from `spec`. Its id is the spec's `name`, or `<kind>-<n>`. The
    /// answer is its record: `running`, or `failed` when it could not be started.
    pub async fn start_child(&self, spec: ProcessSpec) -> Result<ProcessRecord, SupervisorError> {
        self.check_open()?;
        let now = Utc::now();
        let mut inner = locked(&self.inner);
        let active = active_count(&inner.snapshot);
        if active >= self.options.max_children {
            return Err(SupervisorError::TooManyChildren {
                active,
                limit: self.options.max_children,
            });
        }
        let id = match &spec.name {
            Some(name) => {
                if inner.snapshot.processes.iter().any(|r| &r.id == name) {
                    return Err(SupervisorError::Exists(name.clone()));
                }
                name.clone()
            }
            None => loop {
                inner.snapshot.next_seq += 1;
                let id = format!("{}-{}", spec.kind.as_str(), inner.snapshot.next_seq);
                if !inner.snapshot.processes.iter().any(|r| r.id == id) {
                    break id;
                }
            },
        };
        forget_oldest_ended(&mut inner.snapshot);
        let record = ProcessRecord {
            id: id.clone(),
            spec: spec.to_json(),
            argv: spec.argv(),
            state: ProcessState::Stopped,
            reason: None,
            pid: None,
            identity: None,
            limits: ResourceLimits::default(),
            created_at: now,
            next_start_at: None,
            restarts: 0,
            failures_in_a_row: 0,
            window_start: now,
            stop_requested: false,
            resume: false,
            history: Default::default(),
        };
        inner.snapshot.processes.push(record);
        let index = inner.snapshot.processes.len() - 1;
        self.start_run(&mut inner, index, now);
        self.save(&inner);
        Ok(inner.snapshot.processes[index].clone())
    }

    /// Stops child `id`: SIGTERM to its process group, SIGKILL after `grace` (default
    /// [`SupervisorOptions::stop_grace`]); returns once it has ended, as `stopped`. A child in
    /// back-off is stopped at once; an ended one is returned as it is.
    pub async fn stop_child(
        &self,
        id: &str,
        grace: Option<Duration>,
    ) -> Result<ProcessRecord, SupervisorError> {
        self.check_open()?;
        {
            let mut inner = locked(&self.inner);
            let index = index_of(&inner.snapshot, id)?;
            let Inner { snapshot, children } = &mut *inner;
            let record = &mut snapshot.processes[index];
            match record.state {
                ProcessState::Running | ProcessState::Stopping => {
                    record.stop_requested = true;
                    record.resume = false;
                    record.state = ProcessState::Stopping;
                    signal_run(children, record, libc::SIGTERM);
                }
                ProcessState::Backoff => {
                    record.state = ProcessState::Stopped;
                    record.next_start_at = None;
                    record.reason = Some("stopped by an operator".into());
                }
                _ => return Ok(record.clone()),
            }
            self.save(&inner);
        }
        self.wait_stopped(&[id.to_string()], grace.unwrap_or(self.options.stop_grace))
            .await;
        self.get(id)
    }

    /// Stops child `id` if it is active, then starts it afresh: the back-off and the start
    /// limit start over (what `systemctl reset-failed` and `restart` do together).
    pub async fn restart_child(&self, id: &str) -> Result<ProcessRecord, SupervisorError> {
        self.check_open()?;
        if self.get(id)?.state.is_active() {
            self.stop_child(id, None).await?;
        }
        let now = Utc::now();
        let mut inner = locked(&self.inner);
        let index = index_of(&inner.snapshot, id)?;
        if inner.snapshot.processes[index].state.is_active() {
            // Started again meanwhile by a concurrent restart.
            return Ok(inner.snapshot.processes[index].clone());
        }
        let active = active_count(&inner.snapshot);
        if active >= self.options.max_children {
            return Err(SupervisorError::TooManyChildren {
                active,
                limit: self.options.max_children,
            });
        }
        let record = &mut inner.snapshot.processes[index];
        record.failures_in_a_row = 0;
        record.window_start = now;
        record.stop_requested = false;
        record.resume = false;
        self.start_run(&mut inner, index, now);
        self.save(&inner);
        Ok(inner.snapshot.processes[index].clone())
    }

    /// Forgets an ended child (its logs stay).
    pub fn remove(&self, id: &str) -> Result<(), SupervisorError> {
        self.check_open()?;
        let mut inner = locked(&self.inner);
        let index = index_of(&inner.snapshot, id)?;
        let state = inner.snapshot.processes[index].state;
        if state.is_active() {
            return Err(SupervisorError::Active {
                id: id.to_string(),
                state: state.as_str(),
            });
        }
        inner.snapshot.processes.remove(index);
        inner.children.remove(id);
        self.save(&inner);
        Ok(())
    }

    /// Stops every child (SIGTERM, SIGKILL after `grace`), stops watching and releases the data
    /// dir. The children are recorded as stopped by the shutdown, and the next supervisor on
    /// the data dir starts them again.
    pub async fn shutdown(&self, grace: Duration) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let ids: Vec<String> = {
            let mut inner = locked(&self.inner);
            let Inner { snapshot, children } = &mut *inner;
            let mut ids = Vec::new();
            for record in snapshot.processes.iter_mut() {
                match record.state {
                    ProcessState::Running | ProcessState::Stopping => {
                        record.stop_requested = true;
                        record.resume = true;
                        record.state = ProcessState::Stopping;
                        signal_run(children, record, libc::SIGTERM);
                        ids.push(record.id.clone());
                    }
                    ProcessState::Backoff => {
                        record.state = ProcessState::Stopped;
                        record.next_start_at = None;
                        record.resume = true;
                        record.reason = Some("the supervisor shut down".into());
                    }
                    _ => {}
                }
            }
            self.save(&inner);
            ids
        };
        self.wait_stopped(&ids, grace).await;
        self.record_end("stopped");
        self.end_watch().await;
    }

    /// Stops watching and releases the data dir, leaving the children running: the next
    /// supervisor on the data dir re-adopts them.
    pub async fn detach(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.record_end("detached");
        self.end_watch().await;
    }

    async fn end_watch(&self) {
        let task = locked(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        {
            let inner = locked(&self.inner);
            self.save(&inner);
        }
        locked(&self.lock).take();
    }

    /// Waits until none of `ids` is `stopping`: SIGKILL to those left after `grace`, then up to
    /// five more seconds for the kernel to end them.
    async fn wait_stopped(&self, ids: &[String], grace: Duration) {
        let started = tokio::time::Instant::now();
        let mut killed = false;
        loop {
            self.tick(Utc::now());
            let elapsed = started.elapsed();
            let stopping: Vec<u32> = {
                let inner = locked(&self.inner);
                let stopping: Vec<&ProcessRecord> = inner
                    .snapshot
                    .processes
                    .iter()
                    .filter(|r| ids.contains(&r.id) && r.state == ProcessState::Stopping)
                    .collect();
                if !killed && elapsed >= grace {
                    for record in &stopping {
                        signal_run(&inner.children, record, libc::SIGKILL);
                    }
                    killed = true;
                }
                stopping.iter().filter_map(|r| r.pid).collect()
            };
            if stopping.is_empty() {
                return;
            }
            if elapsed >= grace + Duration::from_secs(5) {
                tracing::warn!(
                    pids = ?stopping,
                    "supervised processes still there 5 s after SIGKILL"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Looks for exits and makes due restarts.
    fn tick(&self, now: DateTime<Utc>) {
        let mut inner = locked(&self.inner);
        let mut changed = false;
        for index in 0..inner.snapshot.processes.len() {
            let state = inner.snapshot.processes[index].state;
            match state {
                ProcessState::Running | ProcessState::Stopping => {
                    if let Some((exit, note)) = self.exit_of(&mut inner, index) {
                        self.ended(&mut inner.snapshot.processes[index], exit, note, now);
                        changed = true;
                    }
                }
                ProcessState::Backoff => {
                    let due = inner.snapshot.processes[index]
                        .next_start_at
                        .is_none_or(|at| at <= now);
                    if due {
                        inner.snapshot.processes[index].restarts += 1;
                        self.start_run(&mut inner, index, now);
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        if changed {
            self.save(&inner);
        }
    }

    /// Whether the current run of child `index` has ended: `Some((exit status if known, note))`.
    fn exit_of(
        &self,
        inner: &mut Inner,
        index: usize,
    ) -> Option<(Option<child::ExitInfo>, Option<String>)> {
        let record = &inner.snapshot.processes[index];
        if let Some(handle) = inner.children.get_mut(&record.id) {
            match handle.try_wait() {
                Ok(None) => return None,
                Ok(Some(status)) => {
                    inner.children.remove(&record.id);
                    return Some((Some(child::ExitInfo::of(status)), None));
                }
                // Not waitable any more: fall back on /proc like an adopted child.
                Err(_) => {
                    inner.children.remove(&record.id);
                }
            }
        }
        let Some(identity) = &record.identity else {
            return Some((None, Some("no pid was recorded".into())));
        };
        match child::liveness(identity) {
            child::Liveness::Alive => None,
            child::Liveness::Zombie => Some((child::reap(identity.pid), None)),
            child::Liveness::Gone => Some((
                None,
                Some("ended while not a child of this supervisor: exit status unknown".into()),
            )),
        }
    }

    /// Records the end of the current run of `record` and decides what follows: `stopped`
    /// after a stop, a restart after back-off, or `exited`/`failed` per the policy and the start
    /// limit.
    fn ended(
        &self,
        record: &mut ProcessRecord,
        exit: Option<child::ExitInfo>,
        note: Option<String>,
        now: DateTime<Utc>,
    ) {
        if let Some(run) = record.current_run() {
            run.end(now, exit);
            if note.is_some() {
                run.note = note;
            }
        }
        record.pid = None;
        record.identity = None;
        let last = record.history.back().cloned();
        let description = last
            .as_ref()
            .map_or_else(|| "an unknown status".to_string(), RunEntry::describe_exit);
        if record.stop_requested {
            record.stop_requested = false;
            record.state = ProcessState::Stopped;
            record.reason = Some(if record.resume {
                "the supervisor shut down".into()
            } else {
                "stopped by an operator".into()
            });
            return;
        }
        let failed = last.as_ref().is_none_or(RunEntry::failed);
        let Ok(spec) = ProcessSpec::from_json(record.spec.clone(), &self.options.limits) else {
            record.state = ProcessState::Failed;
            record.reason = Some(format!(
                "exited with {description}; its spec is no longer valid here, not restarted"
            ));
            return;
        };
        if !spec.restart.restarts(failed) {
            record.state = if failed {
                ProcessState::Failed
            } else {
                ProcessState::Exited
            };
            record.reason = Some(format!(
                "exited with {description}; restart policy `{}`",
                spec.restart.as_str()
            ));
            return;
        }
        let ran_ms = last
            .as_ref()
            .map_or(0, |r| (now - r.started_at).num_milliseconds().max(0));
        if !failed || ran_ms >= i64::try_from(spec.backoff.max_ms).unwrap_or(i64::MAX) {
            record.failures_in_a_row = 0;
        }
        if failed {
            record.failures_in_a_row += 1;
        }
        let interval = chrono::TimeDelta::seconds(
            i64::try_from(spec.start_limit.interval_s).unwrap_or(86_400),
        );
        let starts = record.starts_since(now - interval);
        if starts >= spec.start_limit.burst as usize {
            record.state = ProcessState::Failed;
            record.next_start_at = None;
            record.reason = Some(format!(
                "start limit hit: {starts} starts within {} s (start_limit.burst {}), a crash \
                 loop; last exit: {description}. Fix the cause, then restart it",
                spec.start_limit.interval_s, spec.start_limit.burst
            ));
            return;
        }
        let delay = if failed {
            spec.backoff.delay_ms(record.failures_in_a_row)
        } else {
            spec.backoff.initial_ms
        };
        record.state = ProcessState::Backoff;
        record.next_start_at =
            Some(now + chrono::TimeDelta::milliseconds(i64::try_from(delay).unwrap_or(i64::MAX)));
        record.reason = Some(format!(
            "exited with {description}; restarting in {delay} ms"
        ));
    }

    /// Starts a run of child `index` now: `running`, or `failed` with the reason.
    fn start_run(&self, inner: &mut Inner, index: usize, now: DateTime<Utc>) {
        let Inner { snapshot, children } = inner;
        let record = &mut snapshot.processes[index];
        let spec = match ProcessSpec::from_json(record.spec.clone(), &self.options.limits) {
            Ok(spec) => spec,
            Err(e) => {
                record.state = ProcessState::Failed;
                record.reason = Some(format!("its spec is no longer valid here: {e}"));
                return;
            }
        };
        let limits = child::effective_limits(&spec.limits.or(&self.options.limits));
        let (stdout, stderr) = record.log_files();
        let spawned = child::spawn(
            &self.executable,
            &record.argv,
            &self.data_dir,
            &limits,
            &self.options.env,
            child::Logs {
                stdout: &self.data_dir.join(stdout),
                stderr: &self.data_dir.join(stderr),
            },
        );
        match spawned {
            Ok((handle, identity)) => {
                tracing::info!(id = %record.id, pid = identity.pid, "supervised process started");
                record.state = ProcessState::Running;
                record.pid = Some(identity.pid);
                record.push_run(RunEntry {
                    pid: identity.pid,
                    started_at: now,
                    ended_at: None,
                    exit_code: None,
                    signal: None,
                    note: None,
                });
                record.identity = Some(identity);
                record.limits = limits;
                record.next_start_at = None;
                record.reason = None;
                children.insert(record.id.clone(), handle);
            }
            Err(e) => {
                // The error is the OS's (no path in it): the executable or a log file.
                tracing::warn!(id = %record.id, error = %e, "supervised process not started");
                record.state = ProcessState::Failed;
                record.next_start_at = None;
                record.reason = Some(format!("could not be started: {e}"));
            }
        }
    }

    /// After a restart of the supervisor: re-adopts the children still running, applies the
    /// policy to those that died, restarts those the last shutdown stopped.
    fn recover(&self, inner: &mut Inner, now: DateTime<Utc>) {
        for index in 0..inner.snapshot.processes.len() {
            let record = &mut inner.snapshot.processes[index];
            match record.state {
                ProcessState::Running | ProcessState::Stopping => {
                    let alive = record
                        .identity
                        .as_ref()
                        .map(child::liveness)
                        .unwrap_or(child::Liveness::Gone);
                    match alive {
                        child::Liveness::Alive => {
                            tracing::info!(id = %record.id, pid = ?record.pid, "supervised process re-adopted");
                            if let Some(run) = record.current_run() {
                                run.note = Some(format!(
                                    "re-adopted by a new supervisor at {}",
                                    now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                                ));
                            }
                            if record.state == ProcessState::Stopping
                                && let Some(pid) = record.pid
                            {
                                child::signal_group(pid, libc::SIGTERM);
                            }
                        }
                        child::Liveness::Zombie => {
                            let exit = record.pid.and_then(child::reap);
                            self.ended(record, exit, None, now);
                        }
                        child::Liveness::Gone => {
                            let note = "ended while no supervisor watched it: exit status unknown";
                            self.ended(record, None, Some(note.into()), now);
                        }
                    }
                }
                ProcessState::Stopped if record.resume => {
                    record.resume = false;
                    record.failures_in_a_row = 0;
                    record.window_start = now;
                    self.start_run(inner, index, now);
                }
                // Back-off: the watch starts it when due.
                _ => {}
            }
        }
    }

    fn save(&self, inner: &Inner) {
        if let Err(e) = record::save(&self.data_dir, &inner.snapshot) {
            tracing::warn!(error = %e, "runtime state not saved");
        }
    }
}

/// Sends `signal` to the process group of `record`'s current run if it is still that process:
/// a child of this supervisor keeps its pid until reaped, a re-adopted one is checked in `/proc`
/// first (its pid may have been reused).
fn signal_run(children: &HashMap<String, Child>, record: &ProcessRecord, signal: libc::c_int) {
    let Some(pid) = record.pid else {
        return;
    };
    let same_process = children.contains_key(&record.id)
        || record
            .identity
            .as_ref()
            .is_some_and(|i| child::liveness(i) == child::Liveness::Alive);
    if same_process {
        child::signal_group(pid, signal);
    }
}

fn active_count(snapshot: &Snapshot) -> usize {
    snapshot
        .processes
        .iter()
        .filter(|r| r.state.is_active())
        .count()
}

fn index_of(snapshot: &Snapshot, id: &str) -> Result<usize, SupervisorError> {
    snapshot
        .processes
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| SupervisorError::NotFound(id.to_string()))
}

/// Makes room for one more record: forgets the oldest ended ones past [`MAX_RECORDS`] - 1.
fn forget_oldest_ended(snapshot: &mut Snapshot) {
    while snapshot.processes.len() >= MAX_RECORDS {
        let Some(oldest) = snapshot.processes.iter().position(|r| !r.state.is_active()) else {
            return;
        };
        snapshot.processes.remove(oldest);
    }
}

/// The background watch: exits and due restarts every `poll`, until the supervisor is dropped,
/// shut down or detached.
async fn watch(supervisor: Weak<ProcessSupervisor>, poll: Duration) {
    loop {
        tokio::time::sleep(poll).await;
        let Some(supervisor) = supervisor.upgrade() else {
            return;
        };
        if supervisor.closed.load(Ordering::SeqCst) {
            return;
        }
        supervisor.tick(Utc::now());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(state: ProcessState, started: &[i64], now: DateTime<Utc>) -> ProcessRecord {
        ProcessRecord {
            id: "p".into(),
            spec: serde_json::json!({"kind": "health"}),
            argv: vec![],
            state,
            reason: None,
            pid: None,
            identity: None,
            limits: ResourceLimits::default(),
            created_at: now,
            next_start_at: None,
            restarts: 0,
            failures_in_a_row: 0,
            window_start: now - chrono::TimeDelta::days(1),
            stop_requested: false,
            resume: false,
            history: started
                .iter()
                .map(|s| RunEntry {
                    pid: 1,
                    started_at: now - chrono::TimeDelta::seconds(*s),
                    ended_at: None,
                    exit_code: None,
                    signal: None,
                    note: None,
                })
                .collect(),
        }
    }

    #[test]
    fn starts_are_counted_within_the_window_and_after_a_reset() {
        let now = Utc::now();
        let mut r = record(ProcessState::Running, &[300, 50, 20, 1], now);
        assert_eq!(r.starts_since(now - chrono::TimeDelta::seconds(60)), 3);
        r.window_start = now - chrono::TimeDelta::seconds(30);
        assert_eq!(r.starts_since(now - chrono::TimeDelta::seconds(60)), 2);
    }

    #[test]
    fn options_never_show_environment_values() {
        let options = SupervisorOptions {
            env: vec![(
                "TRADELOOM_REDIS_URL".into(),
                "redis://:hunter2@10.0.0.5:6379".into(),
            )],
            ..SupervisorOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("TRADELOOM_REDIS_URL"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn only_ended_records_are_forgotten() {
        let now = Utc::now();
        let mut snapshot = Snapshot::default();
        for i in 0..MAX_RECORDS {
            let mut r = record(
                if i == 0 {
                    ProcessState::Running
                } else {
                    ProcessState::Exited
                },
                &[],
                now,
            );
            r.id = format!("p{i}");
            snapshot.processes.push(r);
        }
        forget_oldest_ended(&mut snapshot);
        assert_eq!(snapshot.processes.len(), MAX_RECORDS - 1);
        assert_eq!(snapshot.processes[0].id, "p0");
        assert_eq!(snapshot.processes[1].id, "p2");
    }
}
