//! [`ProcessOwner`]: which process runs a backtest or a simulation job, recorded when it starts,
//! so that a later process can tell a run that is still going from one whose process died (a
//! SIGKILL, an OOM kill, a power cut) and mark the latter interrupted.
//!
//! A pid alone is not an identity: pids are reused. An owner is the pid together with the
//! process's start time (clock ticks since boot, field 22 of `/proc/<pid>/stat`), the boot id
//! (`/proc/sys/kernel/random/boot_id`) and the host name. The owner is alive only if a process
//! with that pid runs on this host, in this boot, and started at that time.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The process that owns a run or a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessOwner {
    pub pid: u32,
    /// Start time of the process in clock ticks since boot; `None` where `/proc` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// The kernel's boot id; `None` where it cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    pub host: String,
}

/// Whether an owner still runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// The owner is gone; the text says how we know.
    Gone(String),
    /// Cannot be told from here (another host, no `/proc`): treat as alive.
    Unknown(String),
}

impl ProcessOwner {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            pid,
            start_time: start_time(pid),
            boot_id: boot_id(),
            host: hostname(),
        }
    }

    /// Whether the owner process still runs (see the module documentation).
    pub fn liveness(&self) -> Liveness {
        let host = hostname();
        if self.host != host {
            return Liveness::Unknown(format!(
                "owned by pid {} on host `{}`, not this host (`{host}`)",
                self.pid, self.host
            ));
        }
        if !Path::new("/proc/self/stat").exists() {
            return Liveness::Unknown("no /proc on this system".to_string());
        }
        if let (Some(recorded), Some(now)) = (&self.boot_id, boot_id())
            && *recorded != now
        {
            return Liveness::Gone(format!(
                "its process (pid {}) ran before the host rebooted",
                self.pid
            ));
        }
        let Some((state, started)) = stat(self.pid) else {
            return Liveness::Gone(format!("its process (pid {}) has exited", self.pid));
        };
        if matches!(state, 'Z' | 'X' | 'x') {
            return Liveness::Gone(format!("its process (pid {}) has exited", self.pid));
        }
        match self.start_time {
            Some(recorded) if recorded != started => Liveness::Gone(format!(
                "its process (pid {}) has exited; the pid now belongs to another process",
                self.pid
            )),
            _ => Liveness::Alive,
        }
    }
}

/// The host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, started)| started)
}

/// State and start time of `pid` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: fields are counted after the last `)`, as comm may hold anything.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; the start time is field 22, the 19th after the state.
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_gone() {
        let me = ProcessOwner::current();
        assert!(me.start_time.is_some());
        assert_eq!(me.liveness(), Liveness::Alive);

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = ProcessOwner { pid, ..me.clone() };
        assert!(matches!(gone.liveness(), Liveness::Gone(_)));

        // Our pid with another start time: the pid was reused.
        let reused = ProcessOwner {
            start_time: me.start_time.map(|t| t + 1),
            ..me.clone()
        };
        let Liveness::Gone(why) = reused.liveness() else {
            panic!("a different start time is another process");
        };
        assert!(why.contains("another process"), "{why}");

        let elsewhere = ProcessOwner {
            host: format!("{}-elsewhere", me.host),
            ..me
        };
        assert!(matches!(elsewhere.liveness(), Liveness::Unknown(_)));
    }
}
