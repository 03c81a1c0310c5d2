//! `tradeloom deploy systemd`: unit files for running tradeloom under systemd — `serve`, the
//! health monitor, bridges and traders — each restarted by systemd (`Restart=always` with a
//! start-rate limit) and held to its resource limits (`MemoryMax`, `CPUQuota`, `TasksMax`),
//! grouped under `tradeloom.target`.
//!
//! Secrets never go into a unit: the database URL, API keys and LLM keys belong in the
//! environment file the units read (`--env-file`, default `/etc/tradeloom/tradeloom.env`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// `tradeloom deploy …`
#[derive(clap::Subcommand)]
pub enum DeployCommand {
    /// Write systemd unit files (serve, health monitor, bridges, traders) and
    /// `tradeloom.target` into a folder, to copy to /etc/systemd/system.
    Systemd(SystemdArgs),
}

/// The flags of `tradeloom deploy systemd`.
#[derive(clap::Args, Debug)]
pub struct SystemdArgs {
    /// The folder the unit files are written to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// The tradeloom binary the units start (an absolute path).
    #[arg(long, default_value = "/usr/local/bin/tradeloom")]
    pub binary: PathBuf,
    /// The user and group the services run as.
    #[arg(long, default_value = "tradeloom")]
    pub user: String,
    /// The data dir of every service (an absolute path; the only place they may write).
    #[arg(long, default_value = "/var/lib/tradeloom")]
    pub state_dir: PathBuf,
    /// Environment file read by every unit (settings and secrets: TRADELOOM_DATABASE_URL,
    /// TRADELOOM_REDIS_URL, LLM keys); a missing file is allowed.
    #[arg(long, default_value = "/etc/tradeloom/tradeloom.env")]
    pub env_file: PathBuf,
    /// The address `serve` listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Leave out the `serve` unit.
    #[arg(long)]
    pub no_serve: bool,
    /// Add the health monitor (`tradeloom health --watch`).
    #[arg(long)]
    pub health: bool,
    /// A bridge: `NAME=DIR` publishes the scans of DIR into the map NAME (repeatable).
    #[arg(long = "bridge", value_name = "NAME=DIR")]
    pub bridges: Vec<String>,
    /// A trader of this spec file (an absolute path; repeatable).
    #[arg(long = "trader", value_name = "SPEC")]
    pub traders: Vec<PathBuf>,
    /// MemoryMax= of every unit (e.g. 2G, 512M, infinity) instead of each role's default.
    #[arg(long)]
    pub memory_max: Option<String>,
    /// CPUQuota= of every unit (e.g. 200%) instead of each role's default.
    #[arg(long)]
    pub cpu_quota: Option<String>,
    /// TasksMax= of every unit (e.g. 50, infinity) instead of each role's default.
    #[arg(long)]
    pub tasks_max: Option<String>,
    /// Overwrite unit files that exist already.
    #[arg(long)]
    pub force: bool,
}

/// Resource limits of one unit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Limits {
    memory_max: String,
    cpu_quota: String,
    tasks_max: String,
}

/// One service unit to write.
#[derive(Debug)]
struct Unit {
    /// File name, `tradeloom-….service`.
    file: String,
    description: String,
    /// Arguments after the binary, each already checked to need no quoting.
    args: Vec<String>,
    limits: Limits,
    /// Seconds systemd waits after SIGTERM before SIGKILL.
    stop_timeout_s: u32,
}

/// The settings every unit shares.
struct Common<'a> {
    binary: &'a str,
    user: &'a str,
    state_dir: &'a str,
    env_file: &'a str,
}

pub fn run(command: &DeployCommand) -> Result<ExitCode> {
    match command {
        DeployCommand::Systemd(args) => systemd(args),
    }
}

fn systemd(args: &SystemdArgs) -> Result<ExitCode> {
    let binary = absolute_path("--binary", &args.binary)?;
    let state_dir = absolute_path("--state-dir", &args.state_dir)?;
    let env_file = absolute_path("--env-file", &args.env_file)?;
    plain_word("--user", &args.user)?;
    plain_word("--addr", &args.addr)?;
    let overrides = (
        args.memory_max
            .as_deref()
            .map(|v| memory_value("--memory-max", v))
            .transpose()?,
        args.cpu_quota
            .as_deref()
            .map(|v| cpu_quota_value("--cpu-quota", v))
            .transpose()?,
        args.tasks_max
            .as_deref()
            .map(|v| tasks_value("--tasks-max", v))
            .transpose()?,
    );
    let limits = |memory: &str, cpu: &str, tasks: &str| Limits {
        memory_max: overrides.0.clone().unwrap_or_else(|| memory.to_string()),
        cpu_quota: overrides.1.clone().unwrap_or_else(|| cpu.to_string()),
        tasks_max: overrides.2.clone().unwrap_or_else(|| tasks.to_string()),
    };

    let mut units = Vec::new();
    if !args.no_serve {
        units.push(Unit {
            file: "tradeloom-serve.service".into(),
            description: "tradeloom serve: REST API, workflow runtime, schedules".into(),
            args: vec!["serve".into(), "--addr".into(), args.addr.clone()],
            limits: limits("4G", "200%", "1024"),
            stop_timeout_s: 60,
        });
    }
    if args.health {
        units.push(Unit {
            file: "tradeloom-health.service".into(),
            description: "tradeloom meta health monitor".into(),
            args: vec![
                "health".into(),
                "--watch".into(),
                "--interval".into(),
                "5s".into(),
            ],
            limits: limits("256M", "25%", "16"),
            stop_timeout_s: 10,
        });
    }
    for bridge in &args.bridges {
        let (name, dir) = bridge
            .split_once('=')
            .with_context(|| format!("--bridge {bridge}: expected NAME=DIR"))?;
        unit_name("--bridge", name)?;
        let dir = absolute_path("--bridge", Path::new(dir))?;
        units.push(Unit {
            file: format!("tradeloom-bridge-{name}.service"),
            description: format!("tradeloom bridge: scans of {dir} into the map {name}"),
            args: vec![
                "bridge".into(),
                "--watch".into(),
                dir,
                "--map".into(),
                name.to_string(),
            ],
            limits: limits("512M", "50%", "32"),
            stop_timeout_s: 10,
        });
    }
    for spec in &args.traders {
        let path = absolute_path("--trader", spec)?;
        let stem = spec
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("--trader {path}: no file name"))?;
        unit_name("--trader", stem)?;
        units.push(Unit {
            file: format!("tradeloom-trader-{stem}.service"),
            description: format!("tradeloom trader of {path}"),
            args: vec!["trader".into(), path],
            // Reference document 004's event-driven trader: 2G, 200 %, 50 tasks.
            limits: limits("2G", "200%", "50"),
            stop_timeout_s: 30,
        });
    }
    if units.is_empty() {
        bail!("nothing to write: --no-serve without --health, --bridge or --trader");
    }
    let mut names = std::collections::BTreeSet::new();
    for unit in &units {
        if !names.insert(unit.file.clone()) {
            bail!(
                "two units would be named {}: give each bridge and trader its own name",
                unit.file
            );
        }
    }

    let common = Common {
        binary: &binary,
        user: &args.user,
        state_dir: &state_dir,
        env_file: &env_file,
    };
    let mut files: Vec<(String, String)> = units
        .iter()
        .map(|u| (u.file.clone(), render_service(u, &common)))
        .collect();
    files.push(("tradeloom.target".into(), render_target(&units)));

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out {}: cannot create the folder", args.out.display()))?;
    if !args.force {
        for (name, _) in &files {
            if args.out.join(name).exists() {
                bail!(
                    "--out {}: {name} exists already (--force overwrites)",
                    args.out.display()
                );
            }
        }
    }
    for (name, text) in &files {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn render_service(unit: &Unit, common: &Common<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Written by `tradeloom deploy systemd`.");
    let _ = writeln!(s, "[Unit]");
    let _ = writeln!(s, "Description={}", unit.description);
    let _ = writeln!(s, "Wants=network-online.target");
    let _ = writeln!(
        s,
        "After=network-online.target postgresql.service redis-server.service"
    );
    let _ = writeln!(s, "PartOf=tradeloom.target");
    // At most 5 starts in 60 s: a crash loop stops there and the unit shows `failed`.
    let _ = writeln!(s, "StartLimitIntervalSec=60");
    let _ = writeln!(s, "StartLimitBurst=5");
    let _ = writeln!(s);
    let _ = writeln!(s, "[Service]");
    let _ = writeln!(s, "Type=simple");
    let _ = writeln!(s, "User={}", common.user);
    let _ = writeln!(s, "Group={}", common.user);
    let _ = writeln!(s, "WorkingDirectory={}", common.state_dir);
    let _ = writeln!(s, "Environment=TRADELOOM_DATA_DIR={}", common.state_dir);
    let _ = writeln!(s, "Environment=TRADELOOM_LOG_FORMAT=json");
    let _ = writeln!(s, "EnvironmentFile=-{}", common.env_file);
    let _ = writeln!(s, "ExecStart={} {}", common.binary, unit.args.join(" "));
    // tradeloom stops gracefully on SIGTERM (runs sealed, leases handed back).
    let _ = writeln!(s, "KillSignal=SIGTERM");
    let _ = writeln!(s, "TimeoutStopSec={}", unit.stop_timeout_s);
    let _ = writeln!(s, "Restart=always");
    let _ = writeln!(s, "RestartSec=2");
    let _ = writeln!(s, "MemoryMax={}", unit.limits.memory_max);
    let _ = writeln!(s, "CPUQuota={}", unit.limits.cpu_quota);
    let _ = writeln!(s, "TasksMax={}", unit.limits.tasks_max);
    let _ = writeln!(s, "LimitNOFILE=65536");
    let _ = writeln!(s, "NoNewPrivileges=yes");
    let _ = writeln!(s, "PrivateTmp=yes");
    let _ = writeln!(s, "ProtectSystem=strict");
    let _ = writeln!(s, "ProtectHome=yes");
    let _ = writeln!(s, "ReadWritePaths={}", common.state_dir);
    let _ = writeln!(s);
    let _ = writeln!(s, "[Install]");
    let _ = writeln!(s, "WantedBy=tradeloom.target");
    s
}

fn render_target(units: &[Unit]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Written by `tradeloom deploy systemd`.");
    let _ = writeln!(s, "[Unit]");
    let _ = writeln!(s, "Description=tradeloom services");
    let wants: Vec<&str> = units.iter().map(|u| u.file.as_str()).collect();
    let _ = writeln!(s, "Wants={}", wants.join(" "));
    let _ = writeln!(s);
    let _ = writeln!(s, "[Install]");
    let _ = writeln!(s, "WantedBy=multi-user.target");
    s
}

/// An absolute path that needs no quoting in a unit file (letters, digits, `/._-+@`).
fn absolute_path(flag: &str, path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{flag}: the path is not UTF-8"))?;
    if !path.is_absolute() {
        bail!("{flag} {text}: must be an absolute path (systemd starts services from /)");
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@".contains(*c)))
    {
        bail!(
            "{flag} {text}: {c:?} is not allowed in a unit file path here (use letters, digits and /._-+@)"
        );
    }
    Ok(text.to_string())
}

/// A word that needs no quoting in a unit file (letters, digits, `._-:[]`).
fn plain_word(flag: &str, word: &str) -> Result<()> {
    if word.is_empty()
        || !word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:[]".contains(c))
    {
        bail!("{flag} {word:?}: use letters, digits and ._-:[] only");
    }
    Ok(())
}

/// A name that becomes part of a unit file name.
fn unit_name(flag: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    {
        bail!("{flag}: name {name:?} must be 1 to 64 letters, digits, `_` or `-`");
    }
    Ok(())
}

/// `MemoryMax=`: bytes with an optional K/M/G/T suffix, or `infinity`.
fn memory_value(flag: &str, v: &str) -> Result<String> {
    let digits = v.trim_end_matches(['K', 'M', 'G', 'T']);
    let suffixes = v.len() - digits.len();
    if v == "infinity"
        || (suffixes <= 1 && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
    {
        return Ok(v.to_string());
    }
    bail!("{flag} {v:?}: expected bytes with an optional K, M, G or T suffix (2G), or infinity")
}

/// `CPUQuota=`: a percentage, e.g. `200%`.
fn cpu_quota_value(flag: &str, v: &str) -> Result<String> {
    match v.strip_suffix('%') {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && n != "0" => {
            Ok(v.to_string())
        }
        _ => bail!("{flag} {v:?}: expected a percentage above zero, e.g. 200%"),
    }
}

/// `TasksMax=`: a count or `infinity`.
fn tasks_value(flag: &str, v: &str) -> Result<String> {
    if v == "infinity" || (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) && v != "0") {
        return Ok(v.to_string());
    }
    bail!("{flag} {v:?}: expected a count above zero or infinity")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert!(memory_value("--memory-max", "2G").is_ok());
        assert!(memory_value("--memory-max", "536870912").is_ok());
        assert!(memory_value("--memory-max", "infinity").is_ok());
        for bad in ["", "G", "2GG", "2 G", "-1", "2g"] {
            assert!(memory_value("--memory-max", bad).is_err(), "{bad}");
        }
        assert!(cpu_quota_value("--cpu-quota", "150%").is_ok());
        for bad in ["150", "%", "0%", "1.5%"] {
            assert!(cpu_quota_value("--cpu-quota", bad).is_err(), "{bad}");
        }
        assert!(tasks_value("--tasks-max", "50").is_ok());
        assert!(tasks_value("--tasks-max", "0").is_err());
    }

    #[test]
    fn paths_must_be_absolute_and_plain() {
        assert!(absolute_path("--binary", Path::new("/usr/local/bin/tradeloom")).is_ok());
        let e = absolute_path("--binary", Path::new("bin/tradeloom")).unwrap_err();
        assert!(
            e.to_string()
                .contains("--binary bin/tradeloom: must be an absolute")
        );
        let e = absolute_path("--state-dir", Path::new("/var/lib/my data")).unwrap_err();
        assert!(e.to_string().contains("' ' is not allowed"), "{e}");
        assert!(absolute_path("--state-dir", Path::new("/var/%h")).is_err());
    }

    #[test]
    fn a_service_carries_its_limits_and_restart_policy() {
        let unit = Unit {
            file: "tradeloom-trader-x.service".into(),
            description: "t".into(),
            args: vec!["trader".into(), "/etc/tradeloom/x.yaml".into()],
            limits: Limits {
                memory_max: "2G".into(),
                cpu_quota: "200%".into(),
                tasks_max: "50".into(),
            },
            stop_timeout_s: 30,
        };
        let text = render_service(
            &unit,
            &Common {
                binary: "/usr/local/bin/tradeloom",
                user: "tradeloom",
                state_dir: "/var/lib/tradeloom",
                env_file: "/etc/tradeloom/tradeloom.env",
            },
        );
        for line in [
            "ExecStart=/usr/local/bin/tradeloom trader /etc/tradeloom/x.yaml",
            "Restart=always",
            "MemoryMax=2G",
            "CPUQuota=200%",
            "TasksMax=50",
            "StartLimitBurst=5",
            "EnvironmentFile=-/etc/tradeloom/tradeloom.env",
            "ReadWritePaths=/var/lib/tradeloom",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
