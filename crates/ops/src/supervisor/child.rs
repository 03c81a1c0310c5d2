//! The operating system side of a supervised child (Linux): spawning it in a process group of
//! its own with resource limits set between `fork` and `exec`, telling a live child from a
//! dead one or from another process that got its pid (start time, command line and boot id
//! from `/proc`), reaping, and signals.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

use super::spec::ResourceLimits;

/// What makes a pid this child and not a later process that reused the pid: the kernel's start
/// time of the process (clock ticks since boot), the boot it belongs to and its command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The command line as `/proc/<pid>/cmdline` shows it (the executable first).
    pub cmdline: Vec<String>,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn of(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

/// The current boot's id ("" where /proc has none).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The state letter and start time of `pid` from `/proc/<pid>/stat`.
fn stat_of(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn cmdline_of(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// What `/proc` says about a recorded child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The same process, still running.
    Alive,
    /// The same process, ended but not reaped yet (a zombie of this process).
    Zombie,
    /// Gone, or the pid now belongs to another process.
    Gone,
}

/// Whether `identity` is still the process it was recorded as.
pub fn liveness(identity: &Identity) -> Liveness {
    if identity.boot_id != boot_id() {
        return Liveness::Gone;
    }
    let Some((state, start)) = stat_of(identity.pid) else {
        return Liveness::Gone;
    };
    if start != identity.start_ticks {
        return Liveness::Gone;
    }
    if matches!(state, 'Z' | 'X' | 'x') {
        return Liveness::Zombie;
    }
    // The start time alone could match a process started in the same tick; the arguments
    // settle it. Not the executable's path: an upgrade may have moved it, and the old child
    // must still be recognised rather than started a second time.
    match cmdline_of(identity.pid) {
        Some(cmdline) if cmdline.get(1..) == identity.cmdline.get(1..) => Liveness::Alive,
        _ => Liveness::Gone,
    }
}

/// Reaps `pid` if it is an ended child of this process: its exit, or `None` when it is not
/// this process's child (or still running).
#[allow(unsafe_code)] // waitpid: one int out, no pointers kept
pub fn reap(pid: u32) -> Option<ExitInfo> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes one int we own; WNOHANG never blocks.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if rc != pid {
        return None;
    }
    if libc::WIFEXITED(status) {
        Some(ExitInfo {
            code: Some(libc::WEXITSTATUS(status)),
            signal: None,
        })
    } else if libc::WIFSIGNALED(status) {
        Some(ExitInfo {
            code: None,
            signal: Some(libc::WTERMSIG(status)),
        })
    } else {
        None
    }
}

/// Sends `signal` to the child's process group (the child leads it), so helpers it started get
/// it too.
#[allow(unsafe_code)] // kill: two integers
pub fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill takes two integers and touches no memory of ours; a group that is gone
    // answers ESRCH, which is what we want to ignore.
    unsafe {
        if libc::kill(-pid, signal) != 0 {
            libc::kill(pid, signal);
        }
    }
}

/// The type of `setrlimit`'s resource argument (glibc gives it a type of its own).
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// A limit as `setrlimit` takes it.
#[derive(Clone, Copy, Debug)]
struct Rlimit {
    resource: Resource,
    value: libc::rlim_t,
}

/// The current hard limit of `resource` of this process.
#[allow(unsafe_code)] // getrlimit: one plain struct out
fn hard_limit(resource: Resource) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one plain struct we own.
    if unsafe { libc::getrlimit(resource, &mut limit) } == 0 {
        limit.rlim_max
    } else {
        libc::RLIM_INFINITY
    }
}

/// The limits a child really gets: those asked for, each at most this process's hard limit
/// (an unprivileged process cannot raise a hard limit).
pub fn effective_limits(asked: &ResourceLimits) -> ResourceLimits {
    let clamp = |value: Option<u64>, resource, scale: u64| {
        value.map(|v| {
            let hard = hard_limit(resource);
            if hard == libc::RLIM_INFINITY {
                v
            } else {
                v.min(hard / scale)
            }
        })
    };
    ResourceLimits {
        memory_mb: clamp(asked.memory_mb, libc::RLIMIT_AS, MIB),
        cpu_seconds: clamp(asked.cpu_seconds, libc::RLIMIT_CPU, 1),
        open_files: clamp(asked.open_files, libc::RLIMIT_NOFILE, 1),
        processes: clamp(asked.processes, libc::RLIMIT_NPROC, 1),
    }
}

const MIB: u64 = 1024 * 1024;

fn rlimits(limits: &ResourceLimits) -> Vec<Rlimit> {
    [
        (
            libc::RLIMIT_AS,
            limits.memory_mb.map(|m| m.saturating_mul(MIB)),
        ),
        (libc::RLIMIT_CPU, limits.cpu_seconds),
        (libc::RLIMIT_NOFILE, limits.open_files),
        (libc::RLIMIT_NPROC, limits.processes),
    ]
    .into_iter()
    .filter_map(|(resource, value)| value.map(|value| Rlimit { resource, value }))
    .collect()
}

/// Where a child's output goes.
pub struct Logs<'a> {
    pub stdout: &'a Path,
    pub stderr: &'a Path,
}

/// Logs above this size are moved to `<name>.1` (one old file kept) when the child starts.
const LOG_ROTATE_BYTES: u64 = 16 * MIB;

fn open_log(path: &Path) -> io::Result<File> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Environment variables a child must not inherit from the supervisor: they would override
/// what the spec says (`tradeloom worker` refuses `TRADELOOM_ROLES`, a second listener on
/// `TRADELOOM_ADDR` would fail).
const CLEARED_ENV: [&str; 4] = [
    "TRADELOOM_ROLES",
    "TRADELOOM_ADDR",
    "TRADELOOM_POOLS",
    "TRADELOOM_DATA_DIR",
];

/// Starts `executable ARGV` in `cwd` with `limits` (already [`effective_limits`]), in a new
/// process group, stdin from /dev/null, stdout and stderr appended to `logs`.
#[allow(unsafe_code)] // pre_exec: setrlimit only, which is async-signal-safe
pub fn spawn(
    executable: &Path,
    argv: &[String],
    cwd: &Path,
    limits: &ResourceLimits,
    env: &[(String, String)],
    logs: Logs<'_>,
) -> io::Result<(Child, Identity)> {
    let mut command = Command::new(executable);
    command
        .args(argv)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(open_log(logs.stdout)?)
        .stderr(open_log(logs.stderr)?)
        .process_group(0);
    for name in CLEARED_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let limits = rlimits(limits);
    // SAFETY: the closure runs in the forked child before exec: it only calls setrlimit (an
    // async-signal-safe system call) on values computed before the fork, allocates nothing and
    // takes no lock.
    unsafe {
        command.pre_exec(move || {
            for limit in &limits {
                let value = libc::rlimit {
                    rlim_cur: limit.value,
                    rlim_max: limit.value,
                };
                if libc::setrlimit(limit.resource, &value) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child.id();
    // spawn returns after exec succeeded, so /proc shows the new program; the start time is
    // the fork's and never changes.
    let start_ticks = stat_of(pid).map_or(0, |(_, start)| start);
    let mut cmdline = vec![executable.to_string_lossy().into_owned()];
    cmdline.extend(argv.iter().cloned());
    let identity = Identity {
        pid,
        start_ticks,
        boot_id: boot_id(),
        cmdline,
    };
    Ok((child, identity))
}

/// A name for a signal number in messages (`SIGKILL`).
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn this_process() -> Identity {
        let pid = std::process::id();
        Identity {
            pid,
            start_ticks: stat_of(pid).unwrap().1,
            boot_id: boot_id(),
            cmdline: cmdline_of(pid).unwrap(),
        }
    }

    #[test]
    fn a_pid_is_the_recorded_process_only_while_start_time_command_line_and_boot_match() {
        let me = this_process();
        assert_eq!(liveness(&me), Liveness::Alive);
        let other_start = Identity {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        let mut other_cmdline = me.clone();
        other_cmdline.cmdline.push("--other".into());
        let other_boot = Identity {
            boot_id: "another-boot".into(),
            ..me.clone()
        };
        let no_such_pid = Identity {
            pid: 0x3fff_fff0,
            ..me.clone()
        };
        for identity in [other_start, other_cmdline, other_boot, no_such_pid] {
            assert_eq!(liveness(&identity), Liveness::Gone, "{identity:?}");
        }
        // Not a child of this process: nothing to reap.
        assert_eq!(reap(1), None);
    }

    #[test]
    fn limits_never_exceed_this_processs_hard_limits() {
        let asked = ResourceLimits {
            memory_mb: Some(u64::MAX / MIB),
            cpu_seconds: Some(10),
            open_files: Some(u64::MAX),
            processes: None,
        };
        let got = effective_limits(&asked);
        let capped = |asked: u64, resource, scale: u64| match hard_limit(resource) {
            libc::RLIM_INFINITY => asked,
            hard => asked.min(hard / scale),
        };
        assert_eq!(got.cpu_seconds, Some(capped(10, libc::RLIMIT_CPU, 1)));
        assert_eq!(
            got.open_files,
            Some(capped(u64::MAX, libc::RLIMIT_NOFILE, 1))
        );
        assert_eq!(
            got.memory_mb,
            Some(capped(u64::MAX / MIB, libc::RLIMIT_AS, MIB))
        );
        assert_eq!(got.processes, None, "not asked: left as inherited");
    }
}
