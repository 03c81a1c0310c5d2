//! `<data_dir>/health.yaml`: which roles must be alive, which feeds must stay fresh, and where
//! the API answers.
//!
//! ```yaml
//! roles: [api, coordinator, workers]      # M1 process, M2 heartbeat; optional
//! feeds:                                  # M3; optional
//!   - name: prices
//!     path: feeds/prices.csv              # relative to the data dir: a file or a directory
//!     stale_after: 30s                    # defaults 30s / 120s
//!     dead_after: 120s
//!   - run: 0197a3c2-…                     # a paper run's state/feed.json (name optional)
//!     stale_after: 30s                    # `max_age` is the same setting
//!   - run: "paper:*"                      # every running paper run
//! api: http://127.0.0.1:8080              # optional; M4 checks GET {api}/health
//! processes: {api: 1, coordinator: 2, worker: 3}   # M1/M2 of the process registry; optional
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tradeloom_core::duration::{DurationSyntax, HOURS, MILLISECONDS, MINUTES, SECONDS};

use super::HealthError;

/// The config's file name under the data dir.
pub const CONFIG_FILE: &str = "health.yaml";

/// A feed older than this is stale (the reference's 30 s) unless its `stale_after` says other.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30);

/// A feed older than this is dead (the reference's 120 s) unless its `dead_after` says other.
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(120);

/// The monitor's configuration. [`HealthConfig::default`] (no file) expects no role and no feed
/// and probes no API: only the store and the data dir's files are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthConfig {
    /// Roles whose heartbeat files must be fresh and whose processes must be alive.
    pub roles: Vec<String>,
    pub feeds: Vec<FeedConfig>,
    /// Base URL of the API (`http://` on a loopback address); M4 asks `GET {api}/health`.
    pub api: Option<String>,
    /// How many processes of each role ([`PROCESS_ROLES`]) must be registered in the cluster's
    /// process registry (`processes:`); each count is at least 1. Empty: the registry's entries
    /// are shown but expected of nobody.
    pub processes: BTreeMap<String, u32>,
}

/// The roles a process registers with (`serve --roles`, `coordinator`, `worker`): the keys of
/// `processes:`. Not the heartbeat roles of `roles:` (there the worker loops are `workers`).
pub const PROCESS_ROLES: [&str; 3] = ["api", "coordinator", "worker"];

/// Where the config of a check came from ([`HealthConfig::load_or_discover`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// `health.yaml`.
    File,
    /// No `health.yaml`: the roles of the heartbeat files found.
    Heartbeats,
    /// No `health.yaml` and no heartbeat file: nothing is configured, only the store and the
    /// data dir are checked.
    Nothing,
}

/// One data feed of M3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedConfig {
    /// Unique among the feeds; for a run feed written or `run:<id>` (`paper` for `paper:*`).
    pub name: String,
    /// What is watched.
    pub source: FeedSource,
    /// Older than this (strictly) is stale.
    pub stale_after: Duration,
    /// Older than this (strictly) is dead; longer than `stale_after`.
    pub dead_after: Duration,
}

/// What a feed entry watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedSource {
    /// `path:` as written: relative to the data dir (or absolute). A file's modification time,
    /// or for a directory the newest modification time of the files directly in it.
    Path(PathBuf),
    /// `run: ID`: one paper run (a full id, a unique prefix or `latest`), through its
    /// `state/feed.json`: the age of its last event, whether its process still updates the file.
    Run(String),
    /// `run: "paper:*"`: every paper run whose status is `running`, each as a feed of its own.
    PaperRuns,
}

/// `run:` of the entry that watches every running paper run.
pub const ALL_PAPER_RUNS: &str = "paper:*";

impl FeedConfig {
    /// The feed's path on disk, for a `path:` feed.
    pub fn resolve(&self, data_dir: &Path) -> Option<PathBuf> {
        match &self.source {
            FeedSource::Path(p) => Some(data_dir.join(p)),
            FeedSource::Run(_) | FeedSource::PaperRuns => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    feeds: Vec<RawFeed>,
    #[serde(default)]
    api: Option<String>,
    /// Counts are read as signed, so that `0` and `-1` get the same message naming the role.
    #[serde(default)]
    processes: BTreeMap<String, i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    run: Option<String>,
    #[serde(default, alias = "max_age")]
    stale_after: Option<String>,
    #[serde(default)]
    dead_after: Option<String>,
}

impl HealthConfig {
    /// Reads `<data_dir>/health.yaml`; no file is the default config.
    pub fn load(data_dir: &Path) -> Result<Self, HealthError> {
        let path = data_dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(HealthError::Config {
                place: path.display().to_string(),
                message: format!("cannot read it: {e}"),
            }),
        }
    }

    /// What `tradeloom health` checks: `health.yaml` if there is one; without it, the roles
    /// whose heartbeat files are under `<data_dir>/health/heartbeats/` (those of a `serve` on
    /// this data dir, running or not), so that a dead server is not reported GREEN; without
    /// either, the default config (nothing configured).
    pub fn load_or_discover(data_dir: &Path) -> Result<(Self, ConfigSource), HealthError> {
        if data_dir.join(CONFIG_FILE).exists() {
            return Ok((Self::load(data_dir)?, ConfigSource::File));
        }
        let mut roles: Vec<String> = std::fs::read_dir(super::paths::heartbeat_dir(data_dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "json") {
                    path.file_stem()
                        .and_then(|s| s.to_str())
                        .filter(|role| check_role(role).is_ok())
                        .map(str::to_string)
                } else {
                    None
                }
            })
            .collect();
        roles.sort();
        if roles.is_empty() {
            return Ok((Self::default(), ConfigSource::Nothing));
        }
        Ok((
            Self {
                roles,
                ..Self::default()
            },
            ConfigSource::Heartbeats,
        ))
    }

    /// Parses config text; errors name `file:line[:column]` and the field.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, HealthError> {
        let origin_text = origin.display().to_string();
        // An empty file (or only comments) is the default config.
        if text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        }) {
            return Ok(Self::default());
        }
        let raw: RawConfig = yaml_serde::from_str(text).map_err(|e| {
            let line_column = e.location().map(|l| (l.line(), l.column()));
            let (place, message) =
                tradeloom_core::locate_error(&origin_text, e.to_string(), line_column);
            HealthError::Config { place, message }
        })?;
        let place = |key: &str, value: Option<&str>| match line_of(text, key, value) {
            Some(line) => format!("{origin_text}:{line}"),
            None => origin_text.clone(),
        };
        let mut feeds: Vec<FeedConfig> = Vec::with_capacity(raw.feeds.len());
        for (i, f) in raw.feeds.into_iter().enumerate() {
            let source = match (f.path, f.run) {
                (Some(_), Some(run)) => {
                    return Err(HealthError::Config {
                        place: place("run", Some(&run)),
                        message: format!(
                            "feeds[{i}]: give either `path` (a file or directory) or `run` (a paper run id or \"{ALL_PAPER_RUNS}\"), not both"
                        ),
                    });
                }
                (None, None) => {
                    return Err(HealthError::Config {
                        place: place("feeds", None),
                        message: format!(
                            "feeds[{i}]: missing `path` (a file or directory) or `run` (a paper run id or \"{ALL_PAPER_RUNS}\")"
                        ),
                    });
                }
                (Some(path), None) => {
                    if path.as_os_str().is_empty() {
                        return Err(HealthError::Config {
                            place: place("path", None),
                            message: format!("feeds[{i}].path: must not be empty"),
                        });
                    }
                    if f.name.is_none() {
                        return Err(HealthError::Config {
                            place: place("path", path.to_str()),
                            message: format!(
                                "feeds[{i}]: missing field `name` (a `path` feed needs a name)"
                            ),
                        });
                    }
                    FeedSource::Path(path)
                }
                (None, Some(run)) => {
                    let run = run.trim().to_string();
                    if run == ALL_PAPER_RUNS {
                        FeedSource::PaperRuns
                    } else if !run.is_empty()
                        && run.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        FeedSource::Run(run)
                    } else {
                        return Err(HealthError::Config {
                            place: place("run", None),
                            message: format!(
                                "feeds[{i}].run: `{run}` is not a run id (hex digits and dashes, a unique prefix, `latest`) nor \"{ALL_PAPER_RUNS}\""
                            ),
                        });
                    }
                }
            };
            let name = match (&f.name, &source) {
                (Some(name), _) => name.trim().to_string(),
                (None, FeedSource::Run(id)) => format!("run:{id}"),
                (None, _) => "paper".to_string(),
            };
            if name.is_empty() {
                return Err(HealthError::Config {
                    place: place("name", None),
                    message: format!("feeds[{i}].name: must not be empty"),
                });
            }
            if feeds.iter().any(|g| g.name == name) {
                return Err(HealthError::Config {
                    place: place("name", Some(&name)),
                    message: format!(
                        "feeds[{i}].name: feed `{name}` is listed twice; feed names must be unique"
                    ),
                });
            }
            let duration = |key: &str, text: &Option<String>, default: Duration| match text {
                None => Ok(default),
                Some(t) => parse_duration(t).map_err(|message| HealthError::Config {
                    place: place(key, Some(t)),
                    message: format!("feeds[{i}].{key}: {message}"),
                }),
            };
            let stale_after = duration("stale_after", &f.stale_after, DEFAULT_STALE_AFTER)?;
            let dead_after = duration("dead_after", &f.dead_after, DEFAULT_DEAD_AFTER)?;
            if dead_after <= stale_after {
                return Err(HealthError::Config {
                    place: place("dead_after", None),
                    message: format!(
                        "feeds[{i}].dead_after: {} must be longer than stale_after {} (feed `{name}`)",
                        show(dead_after),
                        show(stale_after)
                    ),
                });
            }
            feeds.push(FeedConfig {
                name,
                source,
                stale_after,
                dead_after,
            });
        }
        let mut roles: Vec<String> = Vec::with_capacity(raw.roles.len());
        for role in raw.roles {
            check_role(&role).map_err(|message| HealthError::Config {
                place: place("roles", None),
                message: format!("roles: {message}"),
            })?;
            if roles.contains(&role) {
                return Err(HealthError::Config {
                    place: place("roles", None),
                    message: format!("roles: `{role}` is listed twice"),
                });
            }
            roles.push(role);
        }
        let api = match raw.api {
            None => None,
            Some(url) => {
                check_api_url(&url).map_err(|message| HealthError::Config {
                    place: place("api", None),
                    message: format!("api: {message}"),
                })?;
                Some(url.trim_end_matches('/').to_string())
            }
        };
        let mut processes = BTreeMap::new();
        for (role, count) in raw.processes {
            let place = match line_after(text, "processes", &role) {
                Some(line) => format!("{origin_text}:{line}"),
                None => origin_text.clone(),
            };
            if !PROCESS_ROLES.contains(&role.as_str()) {
                let hint = match role.strip_suffix('s') {
                    Some(singular) if PROCESS_ROLES.contains(&singular) => {
                        format!(" (a process registers the role `{singular}`)")
                    }
                    _ => String::new(),
                };
                return Err(HealthError::Config {
                    place,
                    message: format!(
                        "processes.{role}: unknown role `{role}`; the roles of registered processes are {}{hint}",
                        PROCESS_ROLES.join(", ")
                    ),
                });
            }
            let count = u32::try_from(count)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| HealthError::Config {
                    place,
                    message: format!(
                        "processes.{role}: `{count}` is not a positive number of processes (leave the role out to expect none)"
                    ),
                })?;
            processes.insert(role, count);
        }
        Ok(Self {
            roles,
            feeds,
            api,
            processes,
        })
    }
}

fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The 1-based line of the first line that mentions `key:` (and `value`, if given).
fn line_of(text: &str, key: &str, value: Option<&str>) -> Option<usize> {
    let pattern = format!("{key}:");
    let hit = |line: &str| line.contains(&pattern) && value.is_none_or(|v| line.contains(v));
    text.lines().position(hit).map(|i| i + 1)
}

/// The 1-based line of the first line mentioning `key:` at or after the first line mentioning
/// `section:` (`processes: {worker: 0}` and the block form alike).
fn line_after(text: &str, section: &str, key: &str) -> Option<usize> {
    let start = line_of(text, section, None)?;
    let pattern = format!("{key}:");
    text.lines()
        .skip(start - 1)
        .position(|line| {
            line.split_once(&format!("{section}:"))
                .map_or(line, |(_, rest)| rest)
                .contains(&pattern)
        })
        .map(|i| start + i)
}

/// Health intervals and timeouts: no days.
const DURATION: DurationSyntax = DurationSyntax {
    units: &[MILLISECONDS, SECONDS, MINUTES, HOURS],
    examples: &["30s", "2m", "500ms"],
};

/// Parses `30s`, `2m`, `1h30m`, `500ms`: integer parts with units ms, s, m, h, summed; zero is
/// an error.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    DURATION
        .parse_ms(text.trim())
        .map(Duration::from_millis)
        .map_err(|e| e.to_string())
}

fn check_role(role: &str) -> Result<(), String> {
    let ok = !role.is_empty()
        && role.len() <= 64
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid role `{role}`: use lowercase letters, digits, `_` and `-` (the roles `tradeloom serve` runs are api, coordinator, workers, scheduler)"
        ))
    }
}

/// The API probe only goes over loopback: `http://127.0.0.1:PORT`, `http://localhost:PORT` or
/// `http://[::1]:PORT`.
fn check_api_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("invalid api `{url}`: expected an http:// URL on a loopback address, like http://127.0.0.1:8080")
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "invalid api `{url}`: the health probe only reaches loopback addresses (127.0.0.1, localhost, [::1])"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HealthConfig, String> {
        HealthConfig::parse(text, Path::new("/d/health.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn full_config_and_defaults() {
        let c = parse(
            "roles: [api, coordinator, workers]\nfeeds:\n  - name: prices\n    path: feeds/prices.csv\n    stale_after: 1s\n    dead_after: 2s\n  - name: news\n    path: feeds/news\napi: http://127.0.0.1:8080/\n",
        )
        .unwrap();
        assert_eq!(c.roles, ["api", "coordinator", "workers"]);
        assert_eq!(c.feeds[0].stale_after, Duration::from_secs(1));
        assert_eq!(c.feeds[0].dead_after, Duration::from_secs(2));
        assert_eq!(c.feeds[1].stale_after, DEFAULT_STALE_AFTER);
        assert_eq!(c.feeds[1].dead_after, DEFAULT_DEAD_AFTER);
        assert_eq!(c.feeds[1].source, FeedSource::Path("feeds/news".into()));
        assert_eq!(c.api.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(parse("# nothing\n\n").unwrap(), HealthConfig::default());
    }

    #[test]
    fn run_feeds() {
        let c = parse(
            "feeds:\n  - run: 0197a3c2-7f10\n    max_age: 10s\n    dead_after: 1m\n  - run: \"paper:*\"\n  - name: mine\n    run: latest\n",
        )
        .unwrap();
        assert_eq!(c.feeds[0].name, "run:0197a3c2-7f10");
        assert_eq!(c.feeds[0].source, FeedSource::Run("0197a3c2-7f10".into()));
        assert_eq!(c.feeds[0].stale_after, Duration::from_secs(10));
        assert_eq!(c.feeds[0].dead_after, Duration::from_secs(60));
        assert_eq!(c.feeds[1].name, "paper");
        assert_eq!(c.feeds[1].source, FeedSource::PaperRuns);
        assert_eq!(c.feeds[1].stale_after, DEFAULT_STALE_AFTER);
        assert_eq!(c.feeds[2].name, "mine");
        assert_eq!(c.feeds[1].resolve(Path::new("/d")), None);
        let cases: [(&str, &[&str]); 4] = [
            (
                "feeds:\n  - name: a\n    path: a.csv\n    run: x\n",
                &[
                    "/d/health.yaml:4:",
                    "feeds[0]: give either `path`",
                    "not both",
                ],
            ),
            (
                "feeds:\n  - name: a\n    stale_after: 1s\n",
                &["/d/health.yaml:1:", "feeds[0]: missing `path`", "or `run`"],
            ),
            (
                "feeds:\n  - run: ../etc\n",
                &[
                    "/d/health.yaml:2:",
                    "feeds[0].run: `../etc` is not a run id",
                ],
            ),
            (
                "feeds:\n  - run: \"paper:*\"\n  - run: \"paper:*\"\n",
                &["feeds[1].name: feed `paper` is listed twice"],
            ),
        ];
        for (text, wanted) in cases {
            let err = parse(text).unwrap_err();
            for w in wanted {
                assert!(err.contains(w), "{text:?}: `{err}` lacks `{w}`");
            }
        }
    }

    #[test]
    fn missing_file_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            HealthConfig::load(dir.path()).unwrap(),
            HealthConfig::default()
        );
    }

    #[test]
    fn bad_configs_name_file_line_and_field() {
        let cases: [(&str, &[&str]); 9] = [
            (
                "roles: [api]\nfeeds:\n  - name: prices\n    path: p.csv\n    stale: 1s\n",
                &["/d/health.yaml:5:", "unknown field `stale`"],
            ),
            (
                "feeds:\n  - name: prices\n    path: p.csv\n    stale_after: soon\n",
                &["/d/health.yaml:4:", "invalid duration `soon`"],
            ),
            (
                "feeds:\n  - name: prices\n    path: p.csv\n    stale_after: 0s\n",
                &["/d/health.yaml:4:", "must be longer than zero"],
            ),
            (
                "feeds:\n  - name: prices\n    path: p.csv\n    stale_after: 30s\n    dead_after: 30s\n",
                &[
                    "/d/health.yaml:5:",
                    "feeds[0].dead_after: 30s must be longer than stale_after 30s",
                ],
            ),
            (
                "feeds:\n  - name: a\n    path: a.csv\n  - name: a\n    path: b.csv\n",
                &["/d/health.yaml:2:", "feeds[1].name", "listed twice"],
            ),
            (
                "feeds:\n  - path: a.csv\n",
                &["/d/health.yaml:2:", "missing field `name`"],
            ),
            (
                "roles: [api, Workers]\n",
                &["/d/health.yaml:1:", "invalid role `Workers`"],
            ),
            (
                "api: http://example.com:8080\n",
                &["/d/health.yaml:1:", "only reaches loopback"],
            ),
            (
                "api: https://127.0.0.1:8080\n",
                &["/d/health.yaml:1:", "expected an http:// URL"],
            ),
        ];
        for (text, wanted) in cases {
            let err = parse(text).unwrap_err();
            for w in wanted {
                assert!(err.contains(w), "{text:?}: `{err}` lacks `{w}`");
            }
        }
    }

    #[test]
    fn expected_processes_per_role() {
        let c = parse("roles: [api]\nprocesses: {api: 1, coordinator: 2, worker: 3}\n").unwrap();
        assert_eq!(
            c.processes,
            BTreeMap::from([
                ("api".to_string(), 1),
                ("coordinator".to_string(), 2),
                ("worker".to_string(), 3)
            ])
        );
        let c = parse("processes:\n  worker: 2\n").unwrap();
        assert_eq!(c.processes, BTreeMap::from([("worker".to_string(), 2)]));
        assert!(parse("roles: [api]\n").unwrap().processes.is_empty());
        let cases: [(&str, &[&str]); 5] = [
            (
                "roles: [api]\nprocesses:\n  api: 1\n  workers: 3\n",
                &[
                    "/d/health.yaml:4:",
                    "processes.workers: unknown role `workers`",
                    "api, coordinator, worker",
                    "registers the role `worker`",
                ],
            ),
            (
                "processes: {api: 1, worker: 0}\n",
                &[
                    "/d/health.yaml:1:",
                    "processes.worker: `0` is not a positive number",
                ],
            ),
            (
                "api: http://127.0.0.1:8080\nprocesses:\n  api: -1\n",
                &["/d/health.yaml:3:", "processes.api: `-1`"],
            ),
            (
                "processes:\n  worker: three\n",
                &["/d/health.yaml:2:", "processes.worker", "invalid type"],
            ),
            (
                "processes: [worker]\n",
                &["/d/health.yaml:1:", "processes", "expected a map"],
            ),
        ];
        for (text, wanted) in cases {
            let err = parse(text).unwrap_err();
            for w in wanted {
                assert!(err.contains(w), "{text:?}: `{err}` lacks `{w}`");
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "5", "s", "5 s", "5d", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
