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
//! **Fail-safe:** a state file that cannot be read or parsed counts as ENGAGED for
//! [`KillSwitch::is_engaged`] (the engagement's reason names the file and the error), and
//! [`KillSwitch::status`] returns [`KillSwitchError::Corrupt`] naming the file. An operator fixes it
//! by engaging or releasing the scope, which rewrites the file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::atomic_file::{Durability, write_atomic};

/// How long [`KillSwitch::is_engaged`] trusts what it read before it looks at the files again.
pub const DEFAULT_REFRESH: Duration = Duration::from_millis(50);

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

/// What was last read of one scope's state file.
struct Cached {
    checked: Instant,
    stamp: Option<(SystemTime, u64)>,
    engagement: Option<Engagement>,
}

/// The kill switches of one data dir. Cheap to query: [`KillSwitch::is_engaged`] re-reads a
/// scope's file only when its modification time or size changed, and looks at most once per
/// refresh interval (50 ms by default).
pub struct KillSwitch {
    dir: PathBuf,
    refresh: Duration,
    cache: Mutex<Vec<(Scope, Cached)>>,
    /// [`KillSwitch::engaged_now`]'s memory: each scope's state as last parsed, keyed by the
    /// identity of the file it was parsed from.
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
            refresh: DEFAULT_REFRESH,
            cache: Mutex::new(Vec::new()),
            fresh: Mutex::new(Vec::new()),
        })
    }

    /// Sets how long [`KillSwitch::is_engaged`] trusts its cache (zero: look every call).
    pub fn with_refresh_interval(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
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
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(s, _)| s != scope);
        }
        Ok(state)
    }

    /// Forgets what was read: the next [`KillSwitch::is_engaged`] reads the files.
    pub fn refresh(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// The engaged kill switch covering a run or job, if any: global first, then the run's,
    /// then the job's. Unreadable state files count as engaged. Meant for every engine event:
    /// within the refresh interval it only reads memory, and it allocates only when engaged.
    pub fn is_engaged(&self, run_id: Option<&str>, job_id: Option<&str>) -> Option<Engagement> {
        self.is_engaged_any(run_id.as_slice(), job_id)
    }

    /// [`KillSwitch::is_engaged`] for several run scopes at once (a backtest run started by a
    /// workflow run is covered by both runs' kill switches).
    pub fn is_engaged_any(&self, run_ids: &[&str], job_id: Option<&str>) -> Option<Engagement> {
        let mut cache = match self.cache.lock() {
            Ok(cache) => cache,
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
        let now = Instant::now();
        if let Some(e) = self.lookup(&mut cache, ScopeRef::Global, now) {
            return Some(e);
        }
        for id in run_ids {
            if let Some(e) = self.lookup(&mut cache, ScopeRef::Run(id), now) {
                return Some(e);
            }
        }
        if let Some(id) = job_id
            && let Some(e) = self.lookup(&mut cache, ScopeRef::Job(id), now)
        {
            return Some(e);
        }
        None
    }

    /// The engaged kill switch covering these runs or this job, read from the files NOW (no
    /// cache): the check right before an order is accepted. Once [`KillSwitch::engage`] has
    /// returned in any process on the data dir, this sees it. Costs one `open` per scope (a
    /// missing file is one failed `open`) and a small JSON parse per existing file.
    pub fn engaged_now(&self, run_ids: &[&str], job_id: Option<&str>) -> Option<Engagement> {
        let scopes = std::iter::once(ScopeRef::Global)
            .chain(run_ids.iter().map(|id| ScopeRef::Run(id)))
            .chain(job_id.map(ScopeRef::Job));
        for wanted in scopes {
            let Ok(scope) = wanted.owned().validated() else {
                // An id that cannot name a file cannot have been engaged on its own.
                continue;
            };
            if let Some(e) = self.engagement_of(&scope) {
                return Some(e);
            }
        }
        None
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

    fn lookup(
        &self,
        cache: &mut Vec<(Scope, Cached)>,
        wanted: ScopeRef<'_>,
        now: Instant,
    ) -> Option<Engagement> {
        let slot = cache.iter().position(|(s, _)| wanted.is(s));
        if let Some(i) = slot
            && now.duration_since(cache[i].1.checked) < self.refresh
        {
            return cache[i].1.engagement.clone();
        }
        let scope = match slot {
            Some(i) => cache[i].0.clone(),
            None => match wanted.owned().validated() {
                Ok(scope) => scope,
                // An id that cannot name a file cannot have been engaged on its own.
                Err(_) => return None,
            },
        };
        let path = self.state_path(&scope);
        let stamp = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if let Some(i) = slot
            && cache[i].1.stamp == stamp
        {
            cache[i].1.checked = now;
            return cache[i].1.engagement.clone();
        }
        let engagement = self.engagement_of(&scope);
        let cached = Cached {
            checked: now,
            stamp,
            engagement: engagement.clone(),
        };
        match slot {
            Some(i) => cache[i].1 = cached,
            None => cache.push((scope, cached)),
        }
        engagement
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
        KillSwitch::open(dir)
            .unwrap()
            .with_refresh_interval(Duration::ZERO)
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
    fn another_process_engaging_is_seen_after_refresh() {
        let tmp = tempfile::tempdir().unwrap();
        let watcher = KillSwitch::open(tmp.path())
            .unwrap()
            .with_refresh_interval(Duration::from_secs(3600));
        assert_eq!(watcher.is_engaged(None, None), None);
        open(tmp.path())
            .engage(&Scope::Global, "stop", "ops", false)
            .unwrap();
        assert_eq!(
            watcher.is_engaged(None, None),
            None,
            "cached within the interval"
        );
        watcher.refresh();
        assert!(watcher.is_engaged(None, None).is_some());
    }

    #[test]
    fn engaged_now_ignores_the_cache_and_covers_every_run_scope() {
        let tmp = tempfile::tempdir().unwrap();
        let watcher = KillSwitch::open(tmp.path())
            .unwrap()
            .with_refresh_interval(Duration::from_secs(3600));
        assert_eq!(watcher.is_engaged_any(&["wf1", "r1"], Some("j1")), None);
        let other = open(tmp.path());
        other
            .engage(&Scope::run("wf1").unwrap(), "workflow stop", "ops", true)
            .unwrap();
        assert_eq!(
            watcher.is_engaged_any(&["wf1", "r1"], Some("j1")),
            None,
            "the cached check still trusts what it read"
        );
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
        std::fs::write(other.state_path(&Scope::Global), "not json").unwrap();
        assert!(watcher.engaged_now(&[], None).unwrap().unreadable);
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
