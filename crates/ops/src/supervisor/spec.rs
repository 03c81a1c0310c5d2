//! The spec of a supervised process: a kind from an allow-list of `tradeloom` subcommands with
//! that kind's arguments, a restart policy, back-off, a start limit and resource limits. Parsed
//! from JSON with every error naming its field; the command line is built from the validated
//! spec only, so a spec never names a program and never smuggles in a flag.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A field of a spec that cannot be used: the field's path (`args.watch`, `limits.memory_mb`),
/// what is wrong and, for values, the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The JSON path of the field, e.g. `kind`, `args.map`, `start_limit.burst`.
    pub field: String,
    pub message: String,
}

impl SpecError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What a supervised process runs: always the `tradeloom` executable with this subcommand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessKind {
    /// `tradeloom trader SPEC`: the event-driven paper trader.
    Trader,
    /// `tradeloom bridge --watch DIR --map NAME`: the scan bridge.
    Bridge,
    /// `tradeloom worker [--pool P]…`: a cluster's workflow worker.
    Worker,
    /// `tradeloom coordinator`: a cluster's coordinator.
    Coordinator,
    /// `tradeloom mock-llm --addr ADDR`: the offline OpenAI-compatible server.
    MockLlm,
    /// `tradeloom metrics serve --addr ADDR`: the artifacts' Prometheus endpoint.
    Metrics,
    /// `tradeloom health --watch --json`: the meta health monitor.
    Health,
}

impl ProcessKind {
    /// Every kind, as spelt in specs.
    pub const ALL: [&'static str; 7] = [
        "trader",
        "bridge",
        "worker",
        "coordinator",
        "mock-llm",
        "metrics",
        "health",
    ];

    /// The kind's name in specs and generated ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trader => "trader",
            Self::Bridge => "bridge",
            Self::Worker => "worker",
            Self::Coordinator => "coordinator",
            Self::MockLlm => "mock-llm",
            Self::Metrics => "metrics",
            Self::Health => "health",
        }
    }

    fn parse(text: &str) -> Result<Self, SpecError> {
        serde_json::from_value(Value::String(text.to_string())).map_err(|_| {
            SpecError::new(
                "kind",
                format!(
                    "unknown kind `{text}`; expected one of {}",
                    Self::ALL.join(", ")
                ),
            )
        })
    }
}

/// When a process that ended is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// After every exit, successful or not.
    Always,
    /// After an exit with a non-zero code or by a signal (the default).
    #[default]
    OnFailure,
    /// Never: the process ends as `exited` or `failed`.
    Never,
}

impl RestartPolicy {
    /// Whether an exit (`failed`: a non-zero code, a signal, or unknown) is followed by a start.
    pub fn restarts(self, failed: bool) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => failed,
            Self::Never => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OnFailure => "on-failure",
            Self::Never => "never",
        }
    }
}

/// Delay before a restart: `initial_ms` after the first failure in a row, doubled after each
/// further one, at most `max_ms`. A run that lasted `max_ms` or longer resets the doubling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Milliseconds before the first restart (default 500).
    #[serde(default = "default_initial_ms")]
    pub initial_ms: u64,
    /// The longest delay, in milliseconds (default 30000).
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
}

fn default_initial_ms() -> u64 {
    500
}

fn default_max_ms() -> u64 {
    30_000
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial_ms: default_initial_ms(),
            max_ms: default_max_ms(),
        }
    }
}

impl Backoff {
    /// The delay before restart number `failures_in_a_row` (1 for the first), in milliseconds.
    pub fn delay_ms(&self, failures_in_a_row: u32) -> u64 {
        let doublings = failures_in_a_row.saturating_sub(1).min(32);
        self.initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms)
    }
}

/// systemd's `StartLimitBurst`/`StartLimitIntervalSec`: at most `burst` starts within
/// `interval_s` seconds; the restart that would exceed it is not made and the process is
/// `failed` (a crash loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartLimit {
    /// Starts allowed within the interval, 1 to 100 (default 5).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// The interval, in seconds, 1 to 86400 (default 60).
    #[serde(default = "default_interval_s")]
    pub interval_s: u64,
}

fn default_burst() -> u32 {
    5
}

fn default_interval_s() -> u64 {
    60
}

impl Default for StartLimit {
    fn default() -> Self {
        Self {
            burst: default_burst(),
            interval_s: default_interval_s(),
        }
    }
}

/// The most `burst` may be (the run history holds at least this many starts).
pub const MAX_BURST: u32 = 100;

/// Resource limits of a child, set with `setrlimit` between `fork` and `exec` (soft and hard
/// alike). `None` leaves the limit the supervisor's process has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// Address space in MiB (`RLIMIT_AS`): virtual memory, not resident memory.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// CPU time in seconds (`RLIMIT_CPU`): the kernel kills the child when it has used them.
    #[serde(default)]
    pub cpu_seconds: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    #[serde(default)]
    pub open_files: Option<u64>,
    /// Processes and threads of the child's user (`RLIMIT_NPROC`; counted per user, not per
    /// child, and not enforced for root).
    #[serde(default)]
    pub processes: Option<u64>,
}

impl ResourceLimits {
    /// The supervisor's defaults: 4 GiB of address space, 4096 open files, 4096 processes, no
    /// CPU limit (traders run for days).
    pub fn supervisor_default() -> Self {
        Self {
            memory_mb: Some(4096),
            cpu_seconds: None,
            open_files: Some(4096),
            processes: Some(4096),
        }
    }

    /// Each limit of `self`, or `ceilings`' where `self` has none.
    pub fn or(self, ceilings: &Self) -> Self {
        Self {
            memory_mb: self.memory_mb.or(ceilings.memory_mb),
            cpu_seconds: self.cpu_seconds.or(ceilings.cpu_seconds),
            open_files: self.open_files.or(ceilings.open_files),
            processes: self.processes.or(ceilings.processes),
        }
    }

    fn fields(&self) -> [(&'static str, Option<u64>); 4] {
        [
            ("memory_mb", self.memory_mb),
            ("cpu_seconds", self.cpu_seconds),
            ("open_files", self.open_files),
            ("processes", self.processes),
        ]
    }

    /// Refuses a zero limit and one above its ceiling (a spec may lower a limit, never raise
    /// it past what the supervisor was started with).
    fn check(&self, ceilings: &Self) -> Result<(), SpecError> {
        for ((name, value), (_, ceiling)) in self.fields().into_iter().zip(ceilings.fields()) {
            let field = format!("limits.{name}");
            match (value, ceiling) {
                (Some(0), _) => {
                    return Err(SpecError::new(field, "must be at least 1"));
                }
                (Some(v), Some(c)) if v > c => {
                    return Err(SpecError::new(
                        field,
                        format!("{v} is above the supervisor's ceiling of {c}; give at most {c}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The arguments of each kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum KindArgs {
    Trader(TraderArgs),
    Bridge(BridgeArgs),
    Worker(WorkerArgs),
    Coordinator(CoordinatorArgs),
    MockLlm(AddrArgs),
    Metrics(AddrArgs),
    Health(HealthArgs),
}

/// `trader`: `{"spec": "specs/trader.yaml"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraderArgs {
    /// The paper spec (a `scan_dir` feed); a relative path is under the data dir.
    pub spec: String,
}

/// `bridge`: `{"watch": "scans", "map": "scans", "key": "symbol"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeArgs {
    /// The directory scan files appear in; a relative path is under the data dir.
    pub watch: String,
    /// The feature map to publish into.
    pub map: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescan_ms: Option<u64>,
}

/// `worker`: `{"pools": ["agent"]}`; the Redis URL comes from the supervisor's environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerArgs {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_prefix: Option<String>,
}

/// `coordinator`: `{}`; the Redis URL comes from the supervisor's environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_prefix: Option<String>,
}

/// `mock-llm` and `metrics`: `{"addr": "127.0.0.1:8089"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddrArgs {
    /// `IP:PORT` to listen on.
    pub addr: String,
}

/// `health`: `{"interval": "5s"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// The workflow pools a worker may run (`tradeloom worker --pool`).
const POOLS: [&str; 8] = [
    "transform",
    "wait",
    "http",
    "agent",
    "simulate",
    "backtest",
    "paper",
    "sweep",
];

/// A validated spec.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessSpec {
    pub kind: ProcessKind,
    /// The process's id when given: 1 to 63 of `[a-z0-9_-]`, starting with a letter or digit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub args: KindArgs,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    pub start_limit: StartLimit,
    pub limits: ResourceLimits,
}

/// The JSON shape before the kind's arguments are read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    restart: RestartPolicy,
    #[serde(default)]
    backoff: Backoff,
    #[serde(default)]
    start_limit: StartLimit,
    #[serde(default)]
    limits: ResourceLimits,
}

/// `value` as `T`, an error naming the field under `prefix` (`args.map`).
fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut inner = e.path().to_string();
        let message = e.into_inner().to_string();
        // A missing field is reported at its parent (an unknown one at itself): name it.
        let named = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        if let Some(name) = named {
            inner = if inner == "." {
                name.to_string()
            } else {
                format!("{inner}.{name}")
            };
        }
        let field = match (prefix.is_empty(), inner.as_str()) {
            (true, ".") => "spec".to_string(),
            (true, _) => inner,
            (false, ".") => prefix.to_string(),
            (false, _) => format!("{prefix}.{inner}"),
        };
        SpecError::new(field, message)
    })
}

impl ProcessSpec {
    /// Reads and checks a spec; limits above `ceilings` are refused.
    pub fn from_json(value: Value, ceilings: &ResourceLimits) -> Result<Self, SpecError> {
        if !value.is_object() {
            return Err(SpecError::new(
                "spec",
                "a process spec is a JSON object: {\"kind\": \"bridge\", \"args\": {…}}",
            ));
        }
        let raw: RawSpec = typed(value, "")?;
        let kind = ProcessKind::parse(&raw.kind)?;
        let args_value = raw
            .args
            .unwrap_or_else(|| Value::Object(Default::default()));
        let args = match kind {
            ProcessKind::Trader => KindArgs::Trader(typed(args_value, "args")?),
            ProcessKind::Bridge => KindArgs::Bridge(typed(args_value, "args")?),
            ProcessKind::Worker => KindArgs::Worker(typed(args_value, "args")?),
            ProcessKind::Coordinator => KindArgs::Coordinator(typed(args_value, "args")?),
            ProcessKind::MockLlm => KindArgs::MockLlm(typed(args_value, "args")?),
            ProcessKind::Metrics => KindArgs::Metrics(typed(args_value, "args")?),
            ProcessKind::Health => KindArgs::Health(typed(args_value, "args")?),
        };
        let spec = Self {
            kind,
            name: raw.name,
            args,
            restart: raw.restart,
            backoff: raw.backoff,
            start_limit: raw.start_limit,
            limits: raw.limits,
        };
        spec.check(ceilings)?;
        Ok(spec)
    }

    /// The spec as stored and shown (the shape [`ProcessSpec::from_json`] reads).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn check(&self, ceilings: &ResourceLimits) -> Result<(), SpecError> {
        if let Some(name) = &self.name {
            check_id(name)?;
        }
        match &self.args {
            KindArgs::Trader(a) => check_path("args.spec", &a.spec)?,
            KindArgs::Bridge(a) => {
                check_path("args.watch", &a.watch)?;
                check_word("args.map", &a.map, 128)?;
                if let Some(key) = &a.key {
                    check_word("args.key", key, 128)?;
                }
                check_range("args.settle_ms", a.settle_ms, 0, 60_000)?;
                check_range("args.rescan_ms", a.rescan_ms, 1, 3_600_000)?;
            }
            KindArgs::Worker(a) => {
                for (i, pool) in a.pools.iter().enumerate() {
                    if !POOLS.contains(&pool.as_str()) {
                        return Err(SpecError::new(
                            format!("args.pools[{i}]"),
                            format!(
                                "unknown pool `{pool}`; expected one of {}",
                                POOLS.join(", ")
                            ),
                        ));
                    }
                }
                check_prefix(a.redis_prefix.as_deref())?;
            }
            KindArgs::Coordinator(a) => check_prefix(a.redis_prefix.as_deref())?,
            KindArgs::MockLlm(a) | KindArgs::Metrics(a) => {
                if a.addr.parse::<std::net::SocketAddr>().is_err() {
                    return Err(SpecError::new(
                        "args.addr",
                        format!("`{}` is not IP:PORT, e.g. 127.0.0.1:8089", a.addr),
                    ));
                }
            }
            KindArgs::Health(a) => {
                if let Some(interval) = &a.interval {
                    check_duration("args.interval", interval)?;
                }
            }
        }
        let backoff = &self.backoff;
        if backoff.initial_ms == 0 || backoff.initial_ms > 3_600_000 {
            return Err(SpecError::new(
                "backoff.initial_ms",
                format!("{} is outside 1 to 3600000", backoff.initial_ms),
            ));
        }
        if backoff.max_ms < backoff.initial_ms || backoff.max_ms > 3_600_000 {
            return Err(SpecError::new(
                "backoff.max_ms",
                format!(
                    "{} is outside {} (initial_ms) to 3600000",
                    backoff.max_ms, backoff.initial_ms
                ),
            ));
        }
        let limit = &self.start_limit;
        if limit.burst == 0 || limit.burst > MAX_BURST {
            return Err(SpecError::new(
                "start_limit.burst",
                format!("{} is outside 1 to {MAX_BURST}", limit.burst),
            ));
        }
        if limit.interval_s == 0 || limit.interval_s > 86_400 {
            return Err(SpecError::new(
                "start_limit.interval_s",
                format!("{} is outside 1 to 86400", limit.interval_s),
            ));
        }
        self.limits.check(ceilings)
    }

    /// The arguments of the `tradeloom` executable, data dir first. The child runs in the data
    /// dir (`--data-dir .`), so relative paths of the spec are under it and the command line
    /// names no path of the server.
    pub fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec!["--data-dir".into(), ".".into()];
        let mut push = |words: &[&str]| argv.extend(words.iter().map(|w| w.to_string()));
        match &self.args {
            KindArgs::Trader(a) => push(&["trader", &a.spec]),
            KindArgs::Bridge(a) => {
                push(&["bridge", "--watch", &a.watch, "--map", &a.map]);
                if let Some(key) = &a.key {
                    push(&["--key", key]);
                }
                if let Some(ms) = a.settle_ms {
                    push(&["--settle-ms", &ms.to_string()]);
                }
                if let Some(ms) = a.rescan_ms {
                    push(&["--rescan-ms", &ms.to_string()]);
                }
            }
            KindArgs::Worker(a) => {
                push(&["worker"]);
                for pool in &a.pools {
                    push(&["--pool", pool]);
                }
                if let Some(prefix) = &a.redis_prefix {
                    push(&["--redis-prefix", prefix]);
                }
            }
            KindArgs::Coordinator(a) => {
                push(&["coordinator"]);
                if let Some(prefix) = &a.redis_prefix {
                    push(&["--redis-prefix", prefix]);
                }
            }
            KindArgs::MockLlm(a) => push(&["mock-llm", "--addr", &a.addr]),
            KindArgs::Metrics(a) => push(&["metrics", "serve", "--addr", &a.addr]),
            KindArgs::Health(a) => {
                push(&["health", "--watch", "--json"]);
                if let Some(interval) = &a.interval {
                    push(&["--interval", interval]);
                }
            }
        }
        argv
    }
}

/// A process id: 1 to 63 of `[a-z0-9_-]`, starting with a letter or a digit (it names log files).
pub fn check_id(id: &str) -> Result<(), SpecError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            "name",
            format!(
                "`{id}` is not a process name: 1 to 63 of a-z, 0-9, `-` and `_`, starting with a \
                 letter or digit"
            ),
        ))
    }
}

/// A path argument: not empty, no `..`, not read as a flag (starting with `-`).
fn check_path(field: &str, path: &str) -> Result<(), SpecError> {
    let problem = if path.trim().is_empty() {
        Some("is empty")
    } else if path.len() > 4096 {
        Some("is longer than 4096 bytes")
    } else if path.starts_with('-') {
        Some("starts with `-` (it would be read as a flag); write `./-…`")
    } else if path.contains('\0') {
        Some("contains a NUL byte")
    } else if std::path::Path::new(path)
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        Some("contains `..`; give a path under the data dir or an absolute one")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SpecError::new(field, format!("`{path}` {problem}"))),
        None => Ok(()),
    }
}

/// A name argument (map, key column): 1 to `max` of `[A-Za-z0-9_.-]`, not starting with `.`
/// or `-`.
fn check_word(field: &str, word: &str, max: usize) -> Result<(), SpecError> {
    let ok = !word.is_empty()
        && word.len() <= max
        && !word.starts_with(['.', '-'])
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!(
                "`{word}`: give 1 to {max} of A-Z, a-z, 0-9, `_`, `.` and `-`, not starting with \
                 `.` or `-`"
            ),
        ))
    }
}

fn check_range(field: &str, value: Option<u64>, min: u64, max: u64) -> Result<(), SpecError> {
    match value {
        Some(v) if v < min || v > max => Err(SpecError::new(
            field,
            format!("{v} is outside {min} to {max}"),
        )),
        _ => Ok(()),
    }
}

fn check_prefix(prefix: Option<&str>) -> Result<(), SpecError> {
    match prefix {
        Some(p)
            if p.is_empty()
                || p.len() > 64
                || p.starts_with('-')
                || p.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(SpecError::new(
                "args.redis_prefix",
                format!("`{p}`: give 1 to 64 characters without spaces, e.g. `tradeloom:`"),
            ))
        }
        _ => Ok(()),
    }
}

/// `500ms`, `5s`, `2m`: a whole number and a unit.
fn check_duration(field: &str, text: &str) -> Result<(), SpecError> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let ok = !digits.is_empty()
        && digits.len() <= 9
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["ms", "s", "m", "h"].contains(&unit)
        && digits.parse::<u64>().is_ok_and(|n| n > 0);
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("`{text}` is not a duration like `500ms`, `5s`, `2m` or `1h`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<ProcessSpec, SpecError> {
        ProcessSpec::from_json(value, &ResourceLimits::supervisor_default())
    }

    #[test]
    fn a_bridge_spec_becomes_its_command_line() {
        let spec = parse(json!({
            "kind": "bridge", "name": "scans-1",
            "args": {"watch": "scans", "map": "scans", "key": "ticker"},
            "restart": "always", "limits": {"memory_mb": 512}
        }))
        .unwrap();
        assert_eq!(
            spec.argv(),
            [
                "--data-dir",
                ".",
                "bridge",
                "--watch",
                "scans",
                "--map",
                "scans",
                "--key",
                "ticker"
            ]
        );
        assert_eq!(spec.restart, RestartPolicy::Always);
        assert_eq!(spec.limits.memory_mb, Some(512));
        // What is stored reads back the same.
        assert_eq!(parse(spec.to_json()).unwrap(), spec);
    }

    #[test]
    fn errors_name_the_field() {
        let field = |v: Value| parse(v).unwrap_err().field;
        assert_eq!(field(json!({"kind": "sh", "args": {}})), "kind");
        assert_eq!(
            field(json!({"kind": "bridge", "args": {"map": "m"}})),
            "args.watch"
        );
        assert_eq!(
            field(json!({"kind": "bridge", "args": {"watch": "d", "map": "m", "cmd": "x"}})),
            "args.cmd"
        );
        assert_eq!(
            field(json!({"kind": "bridge", "args": {"watch": 3, "map": "m"}})),
            "args.watch"
        );
        assert_eq!(
            field(json!({"kind": "bridge", "args": {"watch": "../etc", "map": "m"}})),
            "args.watch"
        );
        assert_eq!(
            field(json!({"kind": "bridge", "args": {"watch": "d", "map": "--json"}})),
            "args.map"
        );
        assert_eq!(
            field(json!({"kind": "trader", "args": {"spec": "-x"}})),
            "args.spec"
        );
        assert_eq!(
            field(json!({"kind": "mock-llm", "args": {"addr": "localhost"}})),
            "args.addr"
        );
        assert_eq!(
            field(json!({"kind": "worker", "args": {"pools": ["agent", "gpu"]}})),
            "args.pools[1]"
        );
        assert_eq!(
            field(json!({"kind": "health", "restart": "sometimes"})),
            "restart"
        );
        assert_eq!(
            field(json!({"kind": "health", "start_limit": {"burst": 0}})),
            "start_limit.burst"
        );
        assert_eq!(
            field(json!({"kind": "health", "limits": {"memory_mb": 1_000_000}})),
            "limits.memory_mb"
        );
        assert_eq!(field(json!({"kind": "health", "name": "Bad Name"})), "name");
        assert_eq!(
            field(json!({"kind": "health", "program": "/bin/sh"})),
            "program"
        );
        assert_eq!(field(json!({"args": {}})), "kind");
        assert_eq!(field(json!(["bridge"])), "spec");
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let b = Backoff {
            initial_ms: 100,
            max_ms: 1000,
        };
        let delays: Vec<u64> = (1..=6).map(|n| b.delay_ms(n)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay_ms(1000), 1000);
    }

    #[test]
    fn policies_restart_what_they_say() {
        use RestartPolicy::*;
        assert_eq!(
            [Always, OnFailure, Never].map(|p| (p.restarts(true), p.restarts(false))),
            [(true, true), (true, false), (false, false)]
        );
    }
}
