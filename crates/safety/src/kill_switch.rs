//! [`KillSwitch`]: stop trading at once, globally, for one run or for one job.
//!
//! Files under `<data_dir>/killswitch/`, one pair per scope (`global`, `run:<id>`, `job:<id>`):
//!
//! - `<scope>.state.json`: `{"scope","engaged","reason","by","since","flatten"}`, the current
//!   state, replaced atomically (temporary file, fsync, rename, fsync of the folder);
//! - `<scope>.events.jsonl`: one `{"at","action":"engage|release","reason","by"}` line per change,
//!   appended and fsynced, never rewritten.
//!
//! Being files, the state survives restarts and is shared by every process on the data dir.
//!
//! **Seen at once, checked for free:** every change bumps a counter shared by every process on the
//! host (`<scope>` files written durably first, then `killswitch/generation`, memory-mapped, see
//! [`generation`]), and only then returns. A check loads that counter (one atomic load, no system
//! call, no lock for a [`Watch`]) and re-reads the state files only when it moved, so the first
//! check that starts after `engage` returned, in any process, refuses the order.
//!
//! **Fail-safe:** a state file that cannot be read or parsed counts as ENGAGED for
//! [`KillSwitch::is_engaged`] (the engagement's reason names the file and the error), and
//! [`KillSwitch::status`] returns [`KillSwitchError::Corrupt`] naming the file. An operator fixes it
//! by engaging or releasing the scope, which rewrites the file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};

use crate::atomic_file::{Durability, write_atomic};

pub mod generation;

use generation::Generation;

/// Checks by a [`Watch`] between two looks at the files without a change announced (a `stat`
/// of the generation file and of each scope's state file): they notice a state file edited by
/// hand and a generation file deleted or replaced (a process keeps mapping the old page then;
/// see [`generation`]). Amortised, they cost well under a nanosecond per check.
pub const REVALIDATE_EVERY: u32 = 1 << 14;

/// The same for the shared checks of [`KillSwitch::is_engaged`] and
/// [`KillSwitch::engaged_now`] (agents, workflows, the API: a few checks per second).
const SHARED_REVALIDATE_EVERY: u32 = 64;

/// Answers of [`KillSwitch::engaged_now`] kept within one generation before they are dropped
/// (many runs asked about by one server process).
const SHARED_ANSWERS_MAX: usize = 256;

/// A kill switch failure; every variant names what and where.
#[derive(Debug, thiserror::Error)]
pub enum KillSwitchError {
    #[error(
        "invalid kill switch scope `{0}`: expected `global`, `run:<id>` or `job:<id>`, ids made of letters, digits, `.`, `_` and `-`"
    )]
    InvalidScope(String),
    #[error("a kill switch {0} needs a non-empty --reason")]
    EmptyReason(&'static str),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "corrupt kill switch state file {}: {message}; it counts as ENGAGED until `tradeloom killswitch engage` or `release` rewrites it",
        path.display()
    )]
    Corrupt { path: PathBuf, message: String },
}

impl KillSwitchError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a kill switch covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Everything on this data dir.
    Global,
    /// One run (a backtest run id).
    Run(String),
    /// One simulation job.
    Job(String),
}

impl Scope {
    /// `global`, `run:<id>` or `job:<id>`.
    pub fn parse(text: &str) -> Result<Self, KillSwitchError> {
        let scope = match text.split_once(':') {
            None if text == "global" => Scope::Global,
            Some(("run", id)) => Scope::Run(id.to_string()),
            Some(("job", id)) => Scope::Job(id.to_string()),
            _ => return Err(KillSwitchError::InvalidScope(text.to_string())),
        };
        scope.validated()
    }

    /// The scope of run `id`.
    pub fn run(id: &str) -> Result<Self, KillSwitchError> {
        Scope::Run(id.to_string()).validated()
    }

    /// The scope of job `id`.
    pub fn job(id: &str) -> Result<Self, KillSwitchError> {
        Scope::Job(id.to_string()).validated()
    }

    /// Ids become file names: no separators, no `..`, nothing empty.
    fn validated(self) -> Result<Self, KillSwitchError> {
        if let Scope::Run(id) | Scope::Job(id) = &self {
            let ok = !id.is_empty()
                && id.len() <= 128
                && !id.starts_with('.')
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(KillSwitchError::InvalidScope(self.to_string()));
            }
        }
        Ok(self)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Run(id) => write!(f, "run:{id}"),
            Scope::Job(id) => write!(f, "job:{id}"),
        }
    }
}

/// The content of `<scope>.state.json`, and one entry of [`Status`]. `reason`, `by` and
/// `since` describe the last change (engage or release); they are `null` only for a scope that
/// was never changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeState {
    pub scope: String,
    pub engaged: bool,
    pub reason: Option<String>,
    pub by: Option<String>,
    /// RFC 3339 UTC time of the last change.
    pub since: Option<String>,
    /// Whether positions should be flattened while engaged (a request to the trading paths).
    pub flatten: bool,
}

impl ScopeState {
    fn never_changed(scope: &Scope) -> Self {
        Self {
            scope: scope.to_string(),
            engaged: false,
            reason: None,
            by: None,
            since: None,
            flatten: false,
        }
    }

    /// One line after an engage or release: `<scope> kill switch ENGAGED by <who>: <why>`.
    pub fn summary(&self) -> String {
        format!(
            "{} kill switch {} by {}: {}",
            self.scope,
            if self.engaged { "ENGAGED" } else { "released" },
            self.by.as_deref().unwrap_or("-"),
            self.reason.as_deref().unwrap_or("-"),
        )
    }

    /// The state in a status listing: `ENGAGED since <when> by <who>: <why>`, or that it was
    /// never engaged.
    pub fn describe(&self) -> String {
        match (&self.since, self.engaged) {
            (None, _) => "released (never engaged)".to_string(),
            (Some(since), engaged) => format!(
                "{} since {since} by {}: {}{}",
                if engaged { "ENGAGED" } else { "released" },
                self.by.as_deref().unwrap_or("-"),
                self.reason.as_deref().unwrap_or("-"),
                if self.flatten { " (flatten)" } else { "" },
            ),
        }
    }
}

/// One line of `<scope>.events.jsonl`.
#[derive(Serialize)]
struct EventLine<'a> {
    at: &'a str,
    action: &'static str,
    reason: &'a str,
    by: &'a str,
}

/// `tradeloom killswitch status --json`: `{"global": {...}, "runs": {id: {...}}, "jobs": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub global: ScopeState,
    pub runs: BTreeMap<String, ScopeState>,
    pub jobs: BTreeMap<String, ScopeState>,
}

impl Status {
    /// One line per kill switch: its scope (`global`, `run:<id>`, `job:<id>`) and its state.
    pub fn text(&self) -> String {
        let mut rows = vec![("global".to_string(), self.global.describe())];
        for (id, s) in &self.runs {
            rows.push((format!("run:{id}"), s.describe()));
        }
        for (id, s) in &self.jobs {
            rows.push((format!("job:{id}"), s.describe()));
        }
        rows.iter()
            .map(|(scope, text)| format!("{scope:<44} {text}\n"))
            .collect()
    }
}

/// An engaged kill switch that covers what was asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engagement {
    pub scope: Scope,
    pub reason: String,
    pub by: String,
    pub since: String,
    pub flatten: bool,
    /// The state file could not be read; the switch counts as engaged (fail-safe) and `reason`
    /// is the error.
    pub unreadable: bool,
}

impl Engagement {
    /// One line for journals and logs: `global kill switch engaged by alice at <time>: <reason>`.
    pub fn describe(&self) -> String {
        if self.unreadable {
            format!(
                "{} kill switch treated as engaged: {}",
                self.scope, self.reason
            )
        } else {
            format!(
                "{} kill switch engaged by {} at {}: {}",
                self.scope, self.by, self.since, self.reason
            )
        }
    }
}

/// A scope named without allocating, for cache lookups on the hot path.
#[derive(Clone, Copy)]
enum ScopeRef<'a> {
    Global,
    Run(&'a str),
    Job(&'a str),
}

impl ScopeRef<'_> {
    fn is(self, scope: &Scope) -> bool {
        match (self, scope) {
            (ScopeRef::Global, Scope::Global) => true,
            (ScopeRef::Run(a), Scope::Run(b)) | (ScopeRef::Job(a), Scope::Job(b)) => a == b,
            _ => false,
        }
    }

    fn owned(self) -> Scope {
        match self {
            ScopeRef::Global => Scope::Global,
            ScopeRef::Run(id) => Scope::Run(id.to_string()),
            ScopeRef::Job(id) => Scope::Job(id.to_string()),
        }
    }
}

/// Whether the kill switch changed since a check last read the state files: the shared
/// generation counter when it is mapped, otherwise "always" (every check reads the files).
#[derive(Debug)]
struct Tracker {
    dir: PathBuf,
    generation: Option<Generation>,
    /// The counter's value loaded right before the state files were last read.
    seen: Option<u64>,
    checks: u32,
    /// `revalidate_every - 1` (a power of two): the checks whose low bits are all zero `stat`.
    revalidate_mask: u32,
}

impl Tracker {
    fn new(dir: &Path, revalidate_every: u32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            // Where it cannot be mapped (a read-only folder), every check reads the files.
            generation: Generation::open(dir).ok(),
            seen: None,
            checks: 0,
            revalidate_mask: revalidate_every.next_power_of_two() - 1,
        }
    }

    /// True while what was read last time is still the truth: nothing was engaged or released
    /// since the counter was loaded before that read. One atomic load; once every
    /// `revalidate_every` checks `false` regardless, so that the files are looked at (a `stat`
    /// each) even without a change announced: a state file edited by hand, a generation file
    /// deleted or replaced.
    #[inline]
    fn unchanged(&mut self) -> bool {
        self.checks = self.checks.wrapping_add(1);
        let Some(generation) = &self.generation else {
            return false;
        };
        self.checks & self.revalidate_mask != 0 && Some(generation.load()) == self.seen
    }

    /// Before the state files are read again: the counter's value now (a change that bumps it
    /// later is seen by the next check), from the file now at the path if it was replaced.
    #[cold]
    fn before_reading(&mut self) {
        let reopen = match &self.generation {
            Some(generation) => !generation.is_current(),
            // Unmapped (say a read-only folder): every check reads the files; mapping is tried
            // again once in a while.
            None => self.checks & self.revalidate_mask == 0,
        };
        if reopen {
            self.generation = Generation::open(&self.dir).ok();
        }
        self.seen = self.generation.as_ref().map(Generation::load);
    }
}

/// Each scope's state as last parsed, while the generation did not move: the memory of
/// [`KillSwitch::engaged_now`].
#[derive(Debug)]
struct Shared {
    tracker: Tracker,
    answers: Vec<(Scope, Option<Engagement>)>,
}

/// The kill switches of one data dir. Every check is exact (it sees every change whose
/// `engage` or `release` returned, in any process on the host) and cheap: the state files are
/// read only after the shared generation counter moved. [`KillSwitch::watch`] gives the
/// lock-free check of one run for the engine's hot loop.
pub struct KillSwitch {
    dir: PathBuf,
    shared: Mutex<Option<Shared>>,
    /// Each scope's state as last parsed, keyed by the identity of the file it was parsed from
    /// (what spares a parse where the generation cannot be mapped).
    fresh: Mutex<Vec<(Scope, FileKey, Option<Engagement>)>>,
}

/// What identifies one version of a state file without reading it: every change replaces the
/// file by a rename (a new inode) and changes its change time; with its size and modification
/// time, a `stat` tells a changed file from the one already parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    dev: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileKey {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Self {
            ino: meta.ino(),
            dev: meta.dev(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
    }

    /// Elsewhere every fresh check reads the file.
    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Option<Self> {
        None
    }
}

impl fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KillSwitch")
            .field("dir", &self.dir)
            .finish()
    }
}

impl KillSwitch {
    /// The kill switches of `data_dir` (`<data_dir>/killswitch/`, created if missing).
    pub fn open(data_dir: &Path) -> Result<Self, KillSwitchError> {
        let dir = tradeloom_core::DataDir::new(data_dir).kill_switch();
        std::fs::create_dir_all(&dir).map_err(|e| KillSwitchError::io(&dir, e))?;
        Ok(Self {
            dir,
            shared: Mutex::new(None),
            fresh: Mutex::new(Vec::new()),
        })
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a scope's state file.
    pub fn state_path(&self, scope: &Scope) -> PathBuf {
        self.dir.join(format!("{scope}.state.json"))
    }

    /// The path of a scope's event log.
    pub fn events_path(&self, scope: &Scope) -> PathBuf {
        self.dir.join(format!("{scope}.events.jsonl"))
    }

    /// Engages `scope`; returns the new state.
    pub fn engage(
        &self,
        scope: &Scope,
        reason: &str,
        by: &str,
        flatten: bool,
    ) -> Result<ScopeState, KillSwitchError> {
        self.change(scope, true, reason, by, flatten)
    }

    /// Releases `scope`; returns the new state. Releasing a scope that is not engaged still
    /// records the release (an operator's statement is kept either way).
    pub fn release(
        &self,
        scope: &Scope,
        reason: &str,
        by: &str,
    ) -> Result<ScopeState, KillSwitchError> {
        self.change(scope, false, reason, by, false)
    }

    fn change(
        &self,
        scope: &Scope,
        engaged: bool,
        reason: &str,
        by: &str,
        flatten: bool,
    ) -> Result<ScopeState, KillSwitchError> {
        let action = if engaged { "engage" } else { "release" };
        if reason.trim().is_empty() {
            return Err(KillSwitchError::EmptyReason(action));
        }
        // Mapped before anything is written: a change that could not be announced to running
        // checks is refused whole. Mapped afresh each time, so the file now at the path is the
        // one bumped even if it was deleted and re-created since this value was opened.
        let generation = Generation::open(&self.dir)
            .map_err(|e| KillSwitchError::io(&self.dir.join(generation::FILE_NAME), e))?;
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let state = ScopeState {
            scope: scope.to_string(),
            engaged,
            reason: Some(reason.to_string()),
            by: Some(by.to_string()),
            since: Some(at.clone()),
            flatten: engaged && flatten,
        };
        // The event first: a crash between the two leaves a logged change whose state file
        // is older, never a state nobody can explain.
        let line = serde_json::to_string(&EventLine {
            at: &at,
            action,
            reason,
            by,
        })
        .map_err(|e| KillSwitchError::io(&self.events_path(scope), e.into()))?;
        append_line(&self.events_path(scope), &line)?;
        let text = serde_json::to_string_pretty(&state)
            .map_err(|e| KillSwitchError::io(&self.state_path(scope), e.into()))?;
        write_atomic(&self.state_path(scope), text.as_bytes(), Durability::Synced)
            .map_err(|e| KillSwitchError::io(&e.path, e.source))?;
        // The state is durable; only now may checks learn of it, and only after they can does
        // the caller hear that it is done.
        generation.bump();
        Ok(state)
    }

    /// The engaged kill switch covering a run or job, if any: global first, then the run's,
    /// then the job's. Unreadable state files count as engaged. Exact, like
    /// [`KillSwitch::engaged_now`] (which it is, for one run).
    pub fn is_engaged(&self, run_id: Option<&str>, job_id: Option<&str>) -> Option<Engagement> {
        self.engaged_now(run_id.as_slice(), job_id)
    }

    /// [`KillSwitch::is_engaged`] for several run scopes at once (a backtest run started by a
    /// workflow run is covered by both runs' kill switches).
    pub fn is_engaged_any(&self, run_ids: &[&str], job_id: Option<&str>) -> Option<Engagement> {
        self.engaged_now(run_ids, job_id)
    }

    /// The engaged kill switch covering these runs or this job: the check right before an
    /// order is accepted. Once [`KillSwitch::engage`] has returned in any process on the data
    /// dir, this sees it. Costs a lock and one atomic load while nothing changed; after a
    /// change, one `stat` per scope (a missing file is one failed `stat`) and a small JSON
    /// parse per changed file. Where the generation counter cannot be mapped, every call
    /// costs what a change costs.
    pub fn engaged_now(&self, run_ids: &[&str], job_id: Option<&str>) -> Option<Engagement> {
        let mut shared = match self.shared.lock() {
            Ok(shared) => shared,
            // A panic elsewhere while holding the lock: stop trading rather than guess.
            Err(_) => {
                return Some(Engagement {
                    scope: Scope::Global,
                    reason: "the kill switch cache is poisoned by a panic".to_string(),
                    by: String::new(),
                    since: String::new(),
                    flatten: false,
                    unreadable: true,
                });
            }
        };
        let shared = shared.get_or_insert_with(|| Shared {
            tracker: Tracker::new(&self.dir, SHARED_REVALIDATE_EVERY),
            answers: Vec::new(),
        });
        if !shared.tracker.unchanged() || shared.answers.len() > SHARED_ANSWERS_MAX {
            shared.tracker.before_reading();
            shared.answers.clear();
        }
        let scopes = std::iter::once(ScopeRef::Global)
            .chain(run_ids.iter().map(|id| ScopeRef::Run(id)))
            .chain(job_id.map(ScopeRef::Job));
        for wanted in scopes {
            if let Some((_, known)) = shared.answers.iter().find(|(s, _)| wanted.is(s)) {
                if known.is_some() {
                    return known.clone();
                }
                continue;
            }
            let Ok(scope) = wanted.owned().validated() else {
                // An id that cannot name a file cannot have been engaged on its own.
                continue;
            };
            let engagement = self.engagement_of(&scope);
            shared.answers.push((scope, engagement.clone()));
            if engagement.is_some() {
                return engagement;
            }
        }
        None
    }

    /// A lock-free, exact check of the global scope, these runs' and this job's, for one
    /// thread (the engine's gate): see [`Watch`].
    pub fn watch<'a>(
        self,
        run_ids: impl IntoIterator<Item = &'a str>,
        job_id: Option<&str>,
    ) -> Watch {
        let tracker = Tracker::new(&self.dir, REVALIDATE_EVERY);
        let mut watch = Watch {
            kill_switch: self,
            scopes: vec![Scope::Global],
            tracker,
            current: None,
        };
        for id in run_ids {
            watch.cover(ScopeRef::Run(id));
        }
        if let Some(id) = job_id {
            watch.cover(ScopeRef::Job(id));
        }
        watch
    }

    /// What a scope's state file says now, unreadable counting as engaged. One `stat` when the
    /// file is the version already parsed (or absent); a read and parse when it changed.
    fn engagement_of(&self, scope: &Scope) -> Option<Engagement> {
        let key = match std::fs::metadata(self.state_path(scope)) {
            Ok(meta) => FileKey::of(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => None,
        };
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = key
            && let Some((_, _, known)) = fresh.iter().find(|(s, k, _)| s == scope && *k == key)
        {
            return known.clone();
        }
        let engagement = self.parse_engagement(scope);
        fresh.retain(|(s, _, _)| s != scope);
        if let Some(key) = key {
            fresh.push((scope.clone(), key, engagement.clone()));
        }
        engagement
    }

    fn parse_engagement(&self, scope: &Scope) -> Option<Engagement> {
        match self.read_state(scope) {
            Ok(Some(state)) if state.engaged => Some(Engagement {
                scope: scope.clone(),
                reason: state.reason.unwrap_or_default(),
                by: state.by.unwrap_or_default(),
                since: state.since.unwrap_or_default(),
                flatten: state.flatten,
                unreadable: false,
            }),
            Ok(_) => None,
            Err(e) => Some(Engagement {
                scope: scope.clone(),
                reason: e.to_string(),
                by: String::new(),
                since: String::new(),
                flatten: false,
                unreadable: true,
            }),
        }
    }

    /// A scope's state file, `None` if it does not exist.
    pub fn read_state(&self, scope: &Scope) -> Result<Option<ScopeState>, KillSwitchError> {
        let path = self.state_path(scope);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(KillSwitchError::Corrupt {
                    path,
                    message: format!("cannot read it: {e}"),
                });
            }
        };
        let state: ScopeState =
            serde_json::from_str(&text).map_err(|e| KillSwitchError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if state.scope != scope.to_string() {
            return Err(KillSwitchError::Corrupt {
                path,
                message: format!("it names scope `{}`", state.scope),
            });
        }
        Ok(Some(state))
    }

    /// Every scope with a state file; the global scope always appears.
    pub fn status(&self) -> Result<Status, KillSwitchError> {
        let mut status = Status {
            global: self
                .read_state(&Scope::Global)?
                .unwrap_or_else(|| ScopeState::never_changed(&Scope::Global)),
            runs: BTreeMap::new(),
            jobs: BTreeMap::new(),
        };
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| KillSwitchError::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| KillSwitchError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".state.json")) else {
                continue;
            };
            let scope = Scope::parse(stem).map_err(|_| KillSwitchError::Corrupt {
                path: entry.path(),
                message: format!("`{stem}` is not a kill switch scope"),
            })?;
            let Some(state) = self.read_state(&scope)? else {
                continue;
            };
            match scope {
                Scope::Global => {}
                Scope::Run(id) => {
                    status.runs.insert(id, state);
                }
                Scope::Job(id) => {
                    status.jobs.insert(id, state);
                }
            }
        }
        Ok(status)
    }
}

/// The kill switch of one run (or job) as the engine's hot loop asks it: every check is one
/// atomic load of the shared generation counter while nothing changed (no system call, no lock,
/// no clock), and re-reads the covered scopes' state files when it moved. Exact: a check that
/// starts after an `engage` returned, in any process on the host, sees it.
#[derive(Debug)]
pub struct Watch {
    kill_switch: KillSwitch,
    /// Global first, then runs, then the job: the order [`KillSwitch::engaged_now`] answers in.
    scopes: Vec<Scope>,
    tracker: Tracker,
    current: Option<Engagement>,
}

impl Watch {
    /// Also covers run `id` (say the workflow run that started this one).
    pub fn cover_run(&mut self, id: &str) {
        self.cover(ScopeRef::Run(id));
    }

    fn cover(&mut self, wanted: ScopeRef<'_>) {
        // An id that cannot name a file cannot have been engaged on its own.
        if let Ok(scope) = wanted.owned().validated()
            && !self.scopes.contains(&scope)
        {
            self.scopes.push(scope);
            // Read at the next check.
            self.tracker.seen = None;
        }
    }

    /// Looks: `true` when the state files were read again (the engagement may have changed),
    /// `false` when nothing changed since the last look.
    #[inline]
    pub fn poll(&mut self) -> bool {
        if self.tracker.unchanged() {
            return false;
        }
        self.reread();
        true
    }

    #[cold]
    fn reread(&mut self) {
        self.tracker.before_reading();
        self.current = self
            .scopes
            .iter()
            .find_map(|scope| self.kill_switch.engagement_of(scope));
    }

    /// The engagement found by the last [`Watch::poll`] (`None` before the first).
    pub fn engagement(&self) -> Option<&Engagement> {
        self.current.as_ref()
    }

    /// [`Watch::poll`], then [`Watch::engagement`].
    pub fn check(&mut self) -> Option<&Engagement> {
        self.poll();
        self.current.as_ref()
    }

    /// The kill switch watched (to engage or release through it).
    pub fn kill_switch(&self) -> &KillSwitch {
        &self.kill_switch
    }

    /// Whether checks read the shared generation counter (`false`: the counter file cannot be
    /// mapped, say a read-only folder, and every check reads the state files).
    pub fn is_mapped(&self) -> bool {
        self.tracker.generation.is_some()
    }

    /// The shared generation counter the checks load (`None` where it cannot be mapped). While
    /// it holds the value it had right before a [`Watch::poll`], every engagement and release
    /// that returned before that poll was seen by it, and another poll would find nothing
    /// new (but for the revalidation every [`REVALIDATE_EVERY`] checks). After a poll it may be
    /// another counter (the file was replaced): ask again.
    pub fn generation_counter(&self) -> Option<&'static AtomicU64> {
        self.tracker.generation.as_ref().map(Generation::counter)
    }

    /// Revalidates (see [`REVALIDATE_EVERY`]) every `checks` checks instead, rounded up to a
    /// power of two: for a caller that polls only every so many of its own checks while
    /// [`Watch::generation_counter`] stays put, so that the files are still looked at as often
    /// in its terms.
    pub fn revalidating_every(mut self, checks: u32) -> Self {
        self.tracker.revalidate_mask = checks.max(1).next_power_of_two() - 1;
        self
    }
}

fn append_line(path: &Path, line: &str) -> Result<(), KillSwitchError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| KillSwitchError::io(path, e))?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    file.write_all(&buf)
        .and_then(|()| file.sync_data())
        .map_err(|e| KillSwitchError::io(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error

    use super::*;

    fn open(dir: &Path) -> KillSwitch {
        KillSwitch::open(dir).unwrap()
    }

    #[test]
    fn scopes_parse_and_reject_path_tricks() {
        assert_eq!(Scope::parse("global").unwrap(), Scope::Global);
        assert_eq!(
            Scope::parse("run:abc-1").unwrap(),
            Scope::Run("abc-1".into())
        );
        assert_eq!(Scope::parse("job:j_2").unwrap(), Scope::Job("j_2".into()));
        for bad in [
            "",
            "globals",
            "run:",
            "run:../x",
            "job:a/b",
            "run:.hidden",
            "desk:1",
        ] {
            let e = Scope::parse(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn engage_release_and_status_with_files_and_events() {
        let tmp = tempfile::tempdir().unwrap();
        let ks = open(tmp.path());
        assert_eq!(ks.is_engaged(Some("r1"), None), None);
        let status = ks.status().unwrap();
        assert!(!status.global.engaged);
        assert!(status.runs.is_empty() && status.jobs.is_empty());

        let run = Scope::run("r1").unwrap();
        ks.engage(&run, "bad fills", "alice", true).unwrap();
        let e = ks.is_engaged(Some("r1"), None).unwrap();
        assert_eq!(
            (e.scope.clone(), e.reason.as_str(), e.by.as_str()),
            (run.clone(), "bad fills", "alice")
        );
        assert!(e.flatten && !e.unreadable);
        assert!(
            e.describe()
                .starts_with("run:r1 kill switch engaged by alice at ")
        );
        assert_eq!(
            ks.is_engaged(Some("r2"), None),
            None,
            "another run is not covered"
        );
        assert_eq!(
            ks.is_engaged(None, Some("r1")),
            None,
            "a job of the same id is not covered"
        );

        ks.engage(&Scope::Global, "exchange outage", "bob", false)
            .unwrap();
        let e = ks.is_engaged(Some("r2"), Some("j9")).unwrap();
        assert_eq!(e.scope, Scope::Global, "global covers every run and job");

        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("killswitch/global.state.json")).unwrap(),
        )
        .unwrap();
        let keys: Vec<&str> = state
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 6);
        for k in ["scope", "engaged", "reason", "by", "since", "flatten"] {
            assert!(keys.contains(&k), "{k} missing");
        }
        assert_eq!(state["engaged"], true);

        ks.release(&Scope::Global, "exchange back", "bob").unwrap();
        assert_eq!(ks.is_engaged(Some("r2"), None), None);
        assert_eq!(ks.is_engaged(Some("r1"), None).unwrap().scope, run);

        let status = ks.status().unwrap();
        assert!(!status.global.engaged);
        assert_eq!(status.global.reason.as_deref(), Some("exchange back"));
        assert!(status.runs["r1"].engaged);

        let events = std::fs::read_to_string(ks.events_path(&Scope::Global)).unwrap();
        let lines: Vec<serde_json::Value> = events
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "engage");
        assert_eq!(lines[0]["reason"], "exchange outage");
        assert_eq!(lines[1]["action"], "release");
        assert_eq!(lines[1]["by"], "bob");
        assert!(lines[1]["at"].as_str().unwrap().ends_with('Z'));
        assert!(
            !std::fs::read_dir(ks.dir()).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")),
            "no temporary file left behind"
        );
    }

    #[test]
    fn a_new_instance_sees_the_state_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        open(tmp.path())
            .engage(&Scope::job("j1").unwrap(), "drill", "ops", false)
            .unwrap();
        let again = KillSwitch::open(tmp.path()).unwrap();
        assert_eq!(again.is_engaged(None, Some("j1")).unwrap().reason, "drill");
        assert!(again.status().unwrap().jobs["j1"].engaged);
    }

    #[test]
    fn another_instance_engaging_is_seen_by_the_very_next_check() {
        let tmp = tempfile::tempdir().unwrap();
        let watcher = open(tmp.path());
        let mut watch = open(tmp.path()).watch(["r1"], None);
        assert!(watch.is_mapped());
        assert_eq!(watcher.is_engaged(Some("r1"), None), None);
        assert_eq!(watch.check(), None);
        assert!(!watch.poll(), "nothing changed: no file read");
        let operator = open(tmp.path());
        for round in 0..50 {
            operator
                .engage(&Scope::Global, &format!("stop {round}"), "ops", false)
                .unwrap();
            // No refresh, no wait: the first check after `engage` returned sees it.
            assert_eq!(
                watcher.is_engaged(Some("r1"), None).unwrap().reason,
                format!("stop {round}")
            );
            assert!(watch.poll(), "round {round}: the generation moved");
            assert_eq!(watch.engagement().unwrap().reason, format!("stop {round}"));
            assert!(!watch.poll());
            operator.release(&Scope::Global, "go", "ops").unwrap();
            assert_eq!(watcher.is_engaged(Some("r1"), None), None, "round {round}");
            assert_eq!(watch.check(), None, "round {round}");
        }
        operator
            .engage(&Scope::run("r1").unwrap(), "run stop", "ops", true)
            .unwrap();
        let e = watch.check().unwrap();
        assert_eq!(
            (e.scope.clone(), e.flatten),
            (Scope::Run("r1".into()), true)
        );
        assert_eq!(
            watcher.is_engaged(Some("r2"), None),
            None,
            "another run is not covered"
        );
    }

    #[test]
    fn a_watch_covers_parent_runs_and_the_job_and_fails_safe() {
        let tmp = tempfile::tempdir().unwrap();
        let mut watch = open(tmp.path()).watch(["r1"], Some("j1"));
        watch.cover_run("wf1");
        watch.cover_run("../not-an-id");
        let other = open(tmp.path());
        assert_eq!(watch.check(), None);
        other
            .engage(&Scope::run("wf1").unwrap(), "workflow stop", "ops", true)
            .unwrap();
        assert_eq!(watch.check().unwrap().scope, Scope::Run("wf1".into()));
        other
            .release(&Scope::run("wf1").unwrap(), "ok", "ops")
            .unwrap();
        other
            .engage(&Scope::job("j1").unwrap(), "job stop", "ops", false)
            .unwrap();
        assert_eq!(watch.check().unwrap().scope, Scope::Job("j1".into()));
        other
            .release(&Scope::job("j1").unwrap(), "ok", "ops")
            .unwrap();
        assert_eq!(watch.check(), None);
        // A corrupt file written by hand (no engage, so no bump) is seen at the next look
        // without a change announced (within REVALIDATE_EVERY checks), and counts as engaged.
        std::fs::write(other.state_path(&Scope::Global), "not json").unwrap();
        (0..=REVALIDATE_EVERY)
            .find(|_| watch.poll())
            .expect("looked within REVALIDATE_EVERY checks");
        assert!(watch.engagement().unwrap().unreadable);
        // And at once after any announced change.
        other.release(&Scope::Global, "repaired", "ops").unwrap();
        assert_eq!(watch.check(), None);
        std::fs::write(other.state_path(&Scope::Global), "not json").unwrap();
        other
            .release(&Scope::run("zz").unwrap(), "unrelated", "ops")
            .unwrap();
        assert!(watch.check().unwrap().unreadable);
    }

    /// The data dir the child process of
    /// [`an_engage_in_another_process_is_seen_by_the_next_check`] engages.
    const CHILD_DIR_ENV: &str = "TRADELOOM_KILL_SWITCH_TEST_CHILD_DIR";

    /// Run only as the child of the test below (`--ignored --exact`): engages the global kill
    /// switch of the data dir it is given, then exits.
    #[test]
    #[ignore = "the child process of an_engage_in_another_process_is_seen_by_the_next_check"]
    fn child_engages_the_global_kill_switch() {
        let dir = std::env::var_os(CHILD_DIR_ENV).expect("run by the parent test");
        open(Path::new(&dir))
            .engage(&Scope::Global, "from another process", "child", false)
            .unwrap();
    }

    #[test]
    fn an_engage_in_another_process_is_seen_by_the_next_check() {
        let tmp = tempfile::tempdir().unwrap();
        let mut watch = open(tmp.path()).watch(["r1"], None);
        let shared = open(tmp.path());
        for _ in 0..1000 {
            assert_eq!(watch.check(), None);
            assert_eq!(shared.engaged_now(&["r1"], None), None);
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "kill_switch::tests::child_engages_the_global_kill_switch",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, tmp.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the child engaged");
        // The child's engage returned before it exited: the very next check sees it.
        assert!(watch.poll(), "the generation moved");
        assert_eq!(watch.engagement().unwrap().reason, "from another process");
        assert_eq!(
            shared.engaged_now(&["r1"], None).unwrap().by,
            "child",
            "the shared check too"
        );
    }

    #[test]
    fn engaged_now_covers_every_run_scope() {
        let tmp = tempfile::tempdir().unwrap();
        let watcher = open(tmp.path());
        assert_eq!(watcher.is_engaged_any(&["wf1", "r1"], Some("j1")), None);
        let other = open(tmp.path());
        other
            .engage(&Scope::run("wf1").unwrap(), "workflow stop", "ops", true)
            .unwrap();
        let e = watcher.engaged_now(&["r1", "wf1"], Some("j1")).unwrap();
        assert_eq!(e.scope, Scope::Run("wf1".into()));
        assert!(e.flatten);
        assert_eq!(watcher.engaged_now(&["r1"], Some("j1")), None);
        other
            .engage(&Scope::job("j1").unwrap(), "job stop", "ops", false)
            .unwrap();
        assert_eq!(
            watcher.engaged_now(&["r1"], Some("j1")).unwrap().scope,
            Scope::Job("j1".into())
        );
        other
            .release(&Scope::job("j1").unwrap(), "ok", "ops")
            .unwrap();
        assert_eq!(watcher.engaged_now(&["r1"], Some("j1")), None);
    }

    #[test]
    fn a_deleted_generation_file_is_noticed_and_engage_recreates_it() {
        let tmp = tempfile::tempdir().unwrap();
        let mut watch = open(tmp.path()).watch(["r1"], None);
        let shared = open(tmp.path());
        assert_eq!(watch.check(), None);
        assert_eq!(shared.is_engaged(Some("r1"), None), None);
        // Deleted (say by hand) while both map it: a new engage creates and bumps a new file
        // that their old mappings do not see…
        std::fs::remove_dir_all(tmp.path().join("killswitch")).unwrap();
        open(tmp.path())
            .engage(&Scope::Global, "after the wipe", "ops", false)
            .unwrap();
        // …until their next revalidation `stat` (every REVALIDATE_EVERY checks; 64 for the
        // shared check), after which they map the new file and read the state.
        let polls = (0..=REVALIDATE_EVERY)
            .position(|_| watch.poll())
            .expect("noticed within REVALIDATE_EVERY checks");
        assert!(polls < REVALIDATE_EVERY as usize);
        assert_eq!(watch.engagement().unwrap().reason, "after the wipe");
        let noticed = (0..=SHARED_REVALIDATE_EVERY)
            .find_map(|_| shared.is_engaged(Some("r1"), None))
            .expect("noticed within SHARED_REVALIDATE_EVERY checks");
        assert_eq!(noticed.reason, "after the wipe");
        // From then on, at once again.
        open(tmp.path())
            .release(&Scope::Global, "ok", "ops")
            .unwrap();
        assert_eq!(watch.check(), None);
        assert_eq!(shared.is_engaged(Some("r1"), None), None);
    }

    #[test]
    fn engaged_now_sees_every_change_even_within_one_timestamp_tick() {
        let tmp = tempfile::tempdir().unwrap();
        let watcher = open(tmp.path());
        let operator = open(tmp.path());
        for i in 0..200 {
            operator
                .engage(&Scope::Global, &format!("stop {i}"), "ops", false)
                .unwrap();
            let e = watcher.engaged_now(&[], None).expect("engaged");
            assert_eq!(e.reason, format!("stop {i}"));
            operator.release(&Scope::Global, "go", "ops").unwrap();
            assert_eq!(watcher.engaged_now(&[], None), None, "round {i}");
        }
    }

    #[test]
    fn a_corrupt_state_file_counts_as_engaged_and_status_names_it() {
        let tmp = tempfile::tempdir().unwrap();
        let ks = open(tmp.path());
        let path = ks.state_path(&Scope::Global);
        std::fs::write(&path, "{\"scope\": \"global\", \"engag").unwrap();
        let e = ks.is_engaged(Some("r1"), None).unwrap();
        assert!(e.unreadable);
        assert!(
            e.describe().contains("global.state.json"),
            "{}",
            e.describe()
        );
        let err = ks.status().unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("ENGAGED"), "{err}");

        // A state file of another scope under this name is corrupt too.
        std::fs::write(
            &path,
            r#"{"scope":"run:x","engaged":false,"reason":null,"by":null,"since":null,"flatten":false}"#,
        )
        .unwrap();
        assert!(ks.is_engaged(None, None).unwrap().unreadable);

        // Releasing rewrites the file and clears the fail-safe.
        ks.release(&Scope::Global, "file repaired", "ops").unwrap();
        assert_eq!(ks.is_engaged(None, None), None);
        assert!(!ks.status().unwrap().global.engaged);
    }

    #[test]
    fn an_empty_reason_is_refused_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let ks = open(tmp.path());
        let e = ks.engage(&Scope::Global, "  ", "ops", false).unwrap_err();
        assert!(e.to_string().contains("--reason"), "{e}");
        assert!(!ks.state_path(&Scope::Global).exists());
        assert!(!ks.events_path(&Scope::Global).exists());
    }
}
