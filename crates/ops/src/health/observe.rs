//! Gathering [`Observations`]: heartbeat files and their processes, feed modification times,
//! the store, the API and the queue, the cluster's process registry, and the coherence checks. Everything with a clock or a
//! socket is here; [`super::evaluate`] turns the result into a report.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tradeloom_queue::cluster::{ProcessEntry, Registry};
use tradeloom_store::{JobStatus, ModelDayStatus, NodeStatus, RunStatus, Store};

use super::config::{FeedSource, HealthConfig};
use super::heartbeat::{observe_heartbeat, read_heartbeat};
use super::paths::{heartbeat_dir, meta_health_path};
use super::report::{
    FeedSeen, HealthReport, Observations, Probe, RunFeedSeen, RunFeedState, Status,
};

/// How long a store, API or registry probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How the store is reached.
#[derive(Clone, Debug)]
pub enum StoreAccess {
    /// A store this process has open (`tradeloom serve`): a trivial query through it.
    Shared(Arc<dyn Store>),
    /// Open it (a SQLite path or a `postgres://` URL), then a trivial query.
    Location(String),
}

/// How the queue's reachability is known.
#[derive(Clone, Debug)]
pub enum QueueAccess {
    /// The embedded queue lives in the `serve` process: reachable when its API is (the
    /// `queue` check copies the `api` check; none without an `api` in the config).
    ViaApi,
    /// Checked by the caller (the serve process asks its queue directly).
    Checked(Probe),
}

/// Where and how to look.
#[derive(Clone, Debug)]
pub struct Environment {
    pub data_dir: std::path::PathBuf,
    pub store: StoreAccess,
    pub queue: QueueAccess,
    /// The cluster's process registry (`serve`'s own, or the Redis one `tradeloom health
    /// --redis-url` connects to); `None`: no registry, so `processes:` cannot be met.
    pub registry: Option<Arc<dyn Registry>>,
}

/// Gathers every observation `config` asks for.
pub async fn observe(config: &HealthConfig, env: &Environment) -> Observations {
    let data_dir = env.data_dir.as_path();
    let heartbeats = config
        .roles
        .iter()
        .map(|role| (role.clone(), observe_heartbeat(data_dir, role)))
        .collect();
    let feeds = config
        .feeds
        .iter()
        .filter_map(|f| {
            f.resolve(data_dir).map(|path| FeedSeen {
                name: f.name.clone(),
                modified: newest_modification(&path),
            })
        })
        .collect();
    let run_feeds = observe_run_feeds(config, data_dir);

    let mut control_plane = BTreeMap::new();
    let store = match reach_store(&env.store).await {
        Ok(store) => {
            control_plane.insert("store".to_string(), Probe::ok());
            Some(store)
        }
        Err(e) => {
            control_plane.insert("store".to_string(), Probe::failed(e));
            None
        }
    };
    // The probe syncs a file: off the async workers, which serve requests meanwhile.
    let disk = {
        let dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || probe_disk(&dir))
            .await
            .unwrap_or_else(|e| Probe::failed(format!("the disk probe did not finish: {e}")))
    };
    control_plane.insert("disk".to_string(), disk);
    let api = match &config.api {
        Some(url) => Some(probe_api(url).await),
        None => None,
    };
    match (&env.queue, &api) {
        (QueueAccess::Checked(p), _) => {
            control_plane.insert("queue".to_string(), p.clone());
        }
        (QueueAccess::ViaApi, Some(api)) => {
            let probe = if api.ok {
                Probe::ok()
            } else {
                Probe::failed(format!(
                    "the embedded queue lives in the serve process, whose API is unreachable: {}",
                    api.error.as_deref().unwrap_or("failed")
                ))
            };
            control_plane.insert("queue".to_string(), probe);
        }
        (QueueAccess::ViaApi, None) => {}
    }
    if let Some(api) = api {
        control_plane.insert("api".to_string(), api);
    }
    let registry = match &env.registry {
        Some(registry) => Some(list_registry(registry.as_ref()).await),
        None => None,
    };

    let mut coherence = BTreeMap::new();
    coherence.insert("kill_switch".to_string(), kill_switch_check(data_dir));
    if let Some(store) = &store {
        coherence.insert("store_enums".to_string(), store_enums_check(store).await);
    }
    coherence.insert("meta_files".to_string(), meta_files_check(data_dir));
    if let Some(books) = latest_run_books_check(data_dir) {
        coherence.insert("latest_run_books".to_string(), books);
    }
    Observations {
        heartbeats,
        feeds,
        run_feeds,
        control_plane,
        coherence,
        registry,
    }
}

/// Every live entry of `registry`, or why there is none, within [`PROBE_TIMEOUT`].
async fn list_registry(registry: &dyn Registry) -> Result<Vec<ProcessEntry>, String> {
    let kind = registry.kind();
    match tokio::time::timeout(PROBE_TIMEOUT, registry.list()).await {
        Ok(Ok(entries)) => Ok(entries),
        Ok(Err(e)) => Err(format!("listing the process registry ({kind}): {e}")),
        Err(_) => Err(format!(
            "the process registry ({kind}) did not answer within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// The paper runs of every `run:` feed with their `state/feed.json`: one run for `run: ID`,
/// every paper run whose status is `running` for `run: "paper:*"`.
fn observe_run_feeds(config: &HealthConfig, data_dir: &Path) -> Vec<RunFeedSeen> {
    let mut seen = Vec::new();
    let wants_runs = config
        .feeds
        .iter()
        .any(|f| !matches!(f.source, FeedSource::Path(_)));
    if !wants_runs {
        return seen;
    }
    for feed in &config.feeds {
        match &feed.source {
            FeedSource::Path(_) => {}
            FeedSource::Run(id) => match tradeloom_runs::find_run(data_dir, id) {
                Ok(dir) => seen.push(read_run_feed(&feed.name, data_dir, &dir)),
                Err(e) => seen.push(RunFeedSeen {
                    feed: feed.name.clone(),
                    run_id: id.clone(),
                    path: format!("runs/{id}/{FEED_STATE_FILE}"),
                    state: Err(e.to_string()),
                }),
            },
            FeedSource::PaperRuns => {
                for (dir, meta) in tradeloom_runs::list_runs(data_dir).unwrap_or_default() {
                    if meta.mode == "paper" && meta.status == tradeloom_runs::RunStatus::Running {
                        seen.push(read_run_feed(&feed.name, data_dir, &dir));
                    }
                }
            }
        }
    }
    seen
}

/// A paper run's feed state file, relative to its folder.
pub const FEED_STATE_FILE: &str = "state/feed.json";

/// `state/feed.json` of the run in `run_dir` as the monitor reads it.
fn read_run_feed(feed: &str, data_dir: &Path, run_dir: &Path) -> RunFeedSeen {
    let meta = tradeloom_runs::Metadata::read(run_dir);
    let run_id = meta.as_ref().map_or_else(
        |_| {
            run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        },
        |m| m.run_id.clone(),
    );
    let file = run_dir.join(FEED_STATE_FILE);
    let shown = file
        .strip_prefix(data_dir)
        .unwrap_or(&file)
        .display()
        .to_string();
    let state = (|| -> Result<RunFeedState, String> {
        let meta = meta.map_err(|e| e.to_string())?;
        if meta.mode != "paper" {
            return Err(format!(
                "run {} is a {} run; only paper runs have a feed",
                meta.run_id, meta.mode
            ));
        }
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "{}: {e} (the run has not started its feed yet, or was written by an older version)",
                file.display()
            )
        })?;
        let mut state = parse_feed_state(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        state.started_at = DateTime::parse_from_rfc3339(&meta.created_at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        Ok(state)
    })();
    RunFeedSeen {
        feed: feed.to_string(),
        run_id,
        path: shown,
        state,
    }
}

/// Parses `state/feed.json` (`{"run_id", "kind", "updated_at", "last_event_at", "last_data_ts",
/// "connected", "events", "malformed", "stale", "stopped"}`, times RFC 3339 or null). Errors
/// name the field.
pub(crate) fn parse_feed_state(text: &str) -> Result<RunFeedState, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, String> {
        match v.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(t)) => DateTime::parse_from_rfc3339(t)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| format!("`{key}`: `{t}` is not RFC 3339 ({e})")),
            Some(_) => Err(format!("`{key}` must be an RFC 3339 string or null")),
        }
    };
    let flag = |key: &str| -> Result<Option<bool>, String> {
        match v.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("`{key}` must be true or false")),
        }
    };
    let count = |key: &str| -> Result<u64, String> {
        match v.get(key) {
            None | Some(serde_json::Value::Null) => Ok(0),
            Some(n) => n
                .as_u64()
                .ok_or_else(|| format!("`{key}` must be a non-negative integer")),
        }
    };
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    Ok(RunFeedState {
        kind: v.get("kind").and_then(|k| k.as_str()).map(str::to_string),
        updated_at: time("updated_at")?,
        last_event_at: time("last_event_at")?,
        started_at: None,
        connected: flag("connected")?,
        events: count("events")?,
        malformed: count("malformed")?,
        stale: flag("stale")?.unwrap_or(false),
        stopped: flag("stopped")?.unwrap_or(false),
    })
}

/// Bytes the disk probe writes: a whole block, so a full disk cannot absorb it.
const DISK_PROBE_BYTES: usize = 4096;

/// Whether the data dir takes writes: a probe file is written, synced and removed. Fails on a
/// full disk (ENOSPC), a read-only or unwritable folder, or a file size limit of zero.
pub fn disk_writable(data_dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(format!(".disk_probe.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&[0u8; DISK_PROBE_BYTES])?;
        f.sync_all()
    };
    let result = write();
    let _ = std::fs::remove_file(&path);
    result
}

/// [`disk_writable`] as a control-plane probe.
pub fn probe_disk(data_dir: &Path) -> Probe {
    match disk_writable(data_dir) {
        Ok(()) => Probe::ok(),
        Err(e) => Probe::failed(format!(
            "the data dir {} does not take writes: {e}",
            data_dir.display()
        )),
    }
}

/// A file's modification time, or the newest of the files directly in a directory.
pub fn newest_modification(path: &Path) -> Result<DateTime<Utc>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let modified = |m: &std::fs::Metadata| {
        m.modified()
            .map(DateTime::<Utc>::from)
            .map_err(|e| format!("{}: no modification time: {e}", path.display()))
    };
    if !meta.is_dir() {
        return modified(&meta);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut newest: Option<DateTime<Utc>> = None;
    for entry in entries.flatten() {
        if let Ok(m) = entry.metadata()
            && m.is_file()
            && let Ok(t) = modified(&m)
        {
            newest = Some(newest.map_or(t, |n| n.max(t)));
        }
    }
    newest.ok_or_else(|| format!("{}: the directory has no files", path.display()))
}

async fn reach_store(access: &StoreAccess) -> Result<Arc<dyn Store>, String> {
    let store = match access {
        StoreAccess::Shared(store) => store.clone(),
        StoreAccess::Location(location) => {
            if let Ok(tradeloom_store::Location::Sqlite(path)) =
                tradeloom_store::Location::parse(location)
                && !path.exists()
            {
                // Opening would create an empty database and report a healthy store.
                return Err(format!(
                    "no store at {} (start `tradeloom serve` or run `tradeloom db migrate`)",
                    path.display()
                ));
            }
            match tokio::time::timeout(PROBE_TIMEOUT, tradeloom_store::open_store(location)).await {
                Ok(Ok(store)) => store,
                Ok(Err(e)) => return Err(format!("cannot open the store at {location}: {e}")),
                Err(_) => {
                    return Err(format!(
                        "opening the store at {location} took longer than {} s",
                        PROBE_TIMEOUT.as_secs()
                    ));
                }
            }
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, store.health()).await {
        Ok(Ok(())) => Ok(store),
        Ok(Err(e)) => Err(format!("store query failed: {e}")),
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err: another provider is already the default, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `GET {api}/health` over loopback: any answer but a 5xx is reachable.
async fn probe_api(base: &str) -> Probe {
    install_crypto_provider();
    let url = format!("{base}/health");
    let client = match reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => return Probe::failed(format!("GET {url}: {e}")),
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_server_error() => {
            Probe::failed(format!("GET {url}: HTTP {}", r.status()))
        }
        Ok(_) => Probe::ok(),
        Err(e) => Probe::failed(format!("GET {url}: {e}")),
    }
}

fn kill_switch_check(data_dir: &Path) -> Probe {
    match tradeloom_safety::KillSwitch::open(data_dir).and_then(|k| k.status()) {
        Ok(_) => Probe::ok(),
        Err(e) => Probe::failed(e.to_string()),
    }
}

async fn store_enums_check(store: &Arc<dyn Store>) -> Probe {
    let counts = match tokio::time::timeout(PROBE_TIMEOUT, store.status_counts()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Probe::failed(format!("counting rows by status: {e}")),
        Err(_) => return Probe::failed("counting rows by status timed out"),
    };
    let mut bad = Vec::new();
    let mut check = |table: &str, rows: &[(String, u64)], valid: &dyn Fn(&str) -> bool| {
        for (status, n) in rows {
            if !valid(status) {
                bad.push(format!("{table}: {n} rows with status `{status}`"));
            }
        }
    };
    check("jobs", &counts.jobs, &|s| JobStatus::from_str(s).is_ok());
    check("model-days", &counts.model_days, &|s| {
        ModelDayStatus::from_str(s).is_ok()
    });
    check("workflow runs", &counts.workflow_runs, &|s| {
        RunStatus::from_str(s).is_ok()
    });
    check("workflow nodes", &counts.workflow_nodes, &|s| {
        NodeStatus::from_str(s).is_ok()
    });
    if bad.is_empty() {
        Probe::ok()
    } else {
        Probe::failed(format!("invalid statuses in the store: {}", bad.join("; ")))
    }
}

/// The books of the most recent completed backtest or paper run reconcile (positions, cash, PnL
/// and fees from its journal's fills against its reports; see [`crate::reconcile`]). `None` when
/// there is no such run. A run's verdict is kept while its journal and metrics files are unchanged, so a
/// monitor checking every few seconds reads a large journal once.
fn latest_run_books_check(data_dir: &Path) -> Option<Probe> {
    type Seen = (
        std::path::PathBuf,
        Vec<Option<std::time::SystemTime>>,
        Probe,
    );
    static LAST: std::sync::Mutex<Option<Seen>> = std::sync::Mutex::new(None);

    let runs = tradeloom_runs::list_runs(data_dir).ok()?;
    let (dir, _) = runs
        .iter()
        .rev()
        // A workflow `order` node's folder (mode `order`) has no reports to reconcile against.
        .find(|(_, meta)| {
            meta.status == tradeloom_runs::RunStatus::Completed && meta.mode != "order"
        })?;
    let stamp: Vec<Option<std::time::SystemTime>> = ["journal.jsonl", "metrics.json", "fills.csv"]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f))
                .and_then(|m| m.modified())
                .ok()
        })
        .collect();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((seen_dir, seen_stamp, probe)) = last.as_ref()
        && seen_dir == dir
        && *seen_stamp == stamp
    {
        return Some(probe.clone());
    }
    let probe = match crate::reconcile::reconcile_run(dir) {
        Ok(r) if r.passed => Probe::ok(),
        Ok(r) => {
            let failed: Vec<&str> = r
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.as_str())
                .collect();
            Probe::failed(format!(
                "run {} does not reconcile: {} (see `tradeloom reconcile`)",
                dir.display(),
                failed.join(", ")
            ))
        }
        Err(e) => Probe::failed(format!("reconciling {}: {e}", dir.display())),
    };
    *last = Some((dir.clone(), stamp, probe.clone()));
    Some(probe)
}

/// The monitor's own files make sense: every heartbeat file parses and names its role, and the
/// last report (if any) has sensors in [0, 1] whose product and status match it.
fn meta_files_check(data_dir: &Path) -> Probe {
    let mut problems = Vec::new();
    if let Ok(entries) = std::fs::read_dir(heartbeat_dir(data_dir)) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Err(e) = read_heartbeat(&path)
            {
                problems.push(e);
            }
        }
    }
    let path = meta_health_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        match serde_json::from_str::<HealthReport>(&text) {
            Ok(r) => {
                let named = r.sensors.named();
                for (name, v) in named {
                    if !(0.0..=1.0).contains(&v) {
                        problems.push(format!(
                            "{}: {name} = {v} is outside [0, 1]",
                            path.display()
                        ));
                    }
                }
                if (r.sensors.rm_meta() - r.rm_meta).abs() > 1e-9 {
                    problems.push(format!(
                        "{}: rm_meta {} is not the product of its sensors ({})",
                        path.display(),
                        r.rm_meta,
                        r.sensors.rm_meta()
                    ));
                } else if Status::of(r.rm_meta) != r.status {
                    problems.push(format!(
                        "{}: status {} does not match rm_meta {}",
                        path.display(),
                        r.status,
                        r.rm_meta
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    if problems.is_empty() {
        Probe::ok()
    } else {
        Probe::failed(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::config::FeedConfig;
    use crate::health::heartbeat::write_heartbeat;

    fn env(dir: &Path) -> Environment {
        Environment {
            data_dir: dir.to_path_buf(),
            store: StoreAccess::Location(dir.join("tradeloom.db").display().to_string()),
            queue: QueueAccess::ViaApi,
            registry: None,
        }
    }

    /// `/dev/full` fails every write with ENOSPC, as a full disk does: the probe file is made a
    /// link to it.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_disk_probe_fails_on_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert!(probe_disk(dir.path()).ok);
        let probe_file = dir
            .path()
            .join(format!(".disk_probe.{}", std::process::id()));
        std::os::unix::fs::symlink("/dev/full", &probe_file).unwrap();
        let failed = probe_disk(dir.path());
        assert!(!failed.ok);
        let why = failed.error.unwrap_or_default();
        assert!(
            why.contains("No space left") && why.contains("does not take writes"),
            "{why}"
        );
        // A data dir that is a file cannot be written either.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        assert!(!probe_disk(&file).ok);
    }

    #[tokio::test]
    async fn real_files_store_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = HealthConfig {
            roles: vec!["api".into(), "workers".into()],
            feeds: vec![
                FeedConfig {
                    name: "prices".into(),
                    source: FeedSource::Path("feeds/prices.csv".into()),
                    stale_after: Duration::from_secs(30),
                    dead_after: Duration::from_secs(120),
                },
                FeedConfig {
                    name: "news".into(),
                    source: FeedSource::Path("feeds/news".into()),
                    stale_after: Duration::from_secs(30),
                    dead_after: Duration::from_secs(120),
                },
            ],
            api: None,
            processes: BTreeMap::new(),
        };
        // Nothing there yet: no store, no feeds, no heartbeats.
        let obs = observe(&config, &env(d)).await;
        assert!(!obs.control_plane["store"].ok);
        assert!(
            obs.control_plane["store"]
                .error
                .as_deref()
                .unwrap()
                .contains("no store at")
        );
        assert!(
            !d.join("tradeloom.db").exists(),
            "the check created no store"
        );
        assert!(obs.feeds.iter().all(|f| f.modified.is_err()));
        assert!(obs.coherence["kill_switch"].ok);
        assert!(!obs.coherence.contains_key("store_enums"));

        // Now a store, one heartbeat, the feed file and a directory feed.
        tradeloom_store::db_migrate(&d.join("tradeloom.db").display().to_string())
            .await
            .unwrap();
        write_heartbeat(d, "api", Utc::now()).unwrap();
        std::fs::create_dir_all(d.join("feeds/news")).unwrap();
        std::fs::write(d.join("feeds/prices.csv"), "t,p\n").unwrap();
        std::fs::write(d.join("feeds/news/a.jsonl"), "{}\n").unwrap();
        let obs = observe(&config, &env(d)).await;
        assert!(obs.control_plane["store"].ok, "{:?}", obs.control_plane);
        assert!(obs.coherence["store_enums"].ok, "{:?}", obs.coherence);
        assert!(obs.coherence["meta_files"].ok, "{:?}", obs.coherence);
        assert!(
            obs.feeds.iter().all(|f| f.modified.is_ok()),
            "{:?}",
            obs.feeds
        );
        assert!(matches!(
            obs.heartbeats["api"],
            crate::health::HeartbeatSeen::Beat { alive: true, .. }
        ));
        assert_eq!(
            obs.heartbeats["workers"],
            crate::health::HeartbeatSeen::Missing
        );

        // A corrupt kill switch state and a heartbeat of the wrong role are incoherent.
        std::fs::write(d.join("killswitch/global.state.json"), "{oops").unwrap();
        std::fs::write(
            heartbeat_dir(d).join("workers.json"),
            r#"{"role":"api","pid":1,"at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let obs = observe(&config, &env(d)).await;
        assert!(!obs.coherence["kill_switch"].ok);
        assert!(!obs.coherence["meta_files"].ok);
    }

    /// A registry that fails, or never answers.
    #[derive(Debug)]
    struct Broken {
        hangs: bool,
    }

    #[async_trait::async_trait]
    impl Registry for Broken {
        async fn heartbeat(&self, _: &ProcessEntry) -> Result<(), tradeloom_queue::QueueError> {
            Ok(())
        }

        async fn remove(&self, _: &str) -> Result<(), tradeloom_queue::QueueError> {
            Ok(())
        }

        async fn list(&self) -> Result<Vec<ProcessEntry>, tradeloom_queue::QueueError> {
            if self.hangs {
                std::future::pending::<()>().await;
            }
            Err(tradeloom_queue::QueueError::Backend {
                backend: "redis",
                detail: "Connection refused (os error 111)".into(),
            })
        }

        fn kind(&self) -> &'static str {
            "redis"
        }
    }

    #[tokio::test]
    async fn the_registry_is_listed_within_the_probe_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let config = HealthConfig::default();
        // No registry: nothing listed.
        assert_eq!(observe(&config, &env(dir.path())).await.registry, None);
        // An in-memory one: its entries.
        let memory = tradeloom_queue::InMemoryRegistry::new();
        let now = Utc::now();
        let entry = ProcessEntry {
            id: "h-1-ab".into(),
            roles: vec!["worker".into()],
            pools: vec!["http".into()],
            concurrency: 1,
            host: "h".into(),
            pid: 1,
            addr: None,
            started_at: now,
            heartbeat_at: now,
            in_flight: 0,
            state: "running".into(),
            version: "0".into(),
        };
        memory.heartbeat(&entry).await.unwrap();
        let with = |registry: Arc<dyn Registry>| Environment {
            registry: Some(registry),
            ..env(dir.path())
        };
        let obs = observe(&config, &with(Arc::new(memory))).await;
        assert_eq!(obs.registry, Some(Ok(vec![entry])));
        // A failing one: the error, naming the registry.
        let obs = observe(&config, &with(Arc::new(Broken { hangs: false }))).await;
        let error = obs.registry.unwrap().unwrap_err();
        assert!(
            error.starts_with("listing the process registry (redis): ")
                && error.contains("Connection refused"),
            "{error}"
        );
        // A hung one: given up after PROBE_TIMEOUT.
        let started = std::time::Instant::now();
        let obs = observe(&config, &with(Arc::new(Broken { hangs: true }))).await;
        assert_eq!(
            obs.registry,
            Some(Err(format!(
                "the process registry (redis) did not answer within {} s",
                PROBE_TIMEOUT.as_secs()
            )))
        );
        assert!(started.elapsed() < PROBE_TIMEOUT * 2);
    }

    #[tokio::test]
    async fn api_probe_and_queue_via_api() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = HealthConfig {
            api: Some(format!("http://127.0.0.1:{port}")),
            ..HealthConfig::default()
        };
        let obs = observe(&config, &env(dir.path())).await;
        assert!(!obs.control_plane["api"].ok);
        assert!(!obs.control_plane["queue"].ok);
        assert!(
            obs.control_plane["queue"]
                .error
                .as_deref()
                .unwrap()
                .contains("embedded queue")
        );
    }
}
