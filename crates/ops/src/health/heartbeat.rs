//! Heartbeat files: `<data_dir>/health/heartbeats/<role>.json` = `{"role", "pid", "at"}`,
//! rewritten every few seconds by the process that runs the role.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::HealthError;
use super::files::write_atomic;
use super::paths::heartbeat_path;
use super::report::{HeartbeatSeen, rfc3339};

/// One heartbeat file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub role: String,
    pub pid: u32,
    /// RFC 3339 UTC.
    pub at: String,
}

/// Writes `role`'s heartbeat for this process at `at` (atomically: readers never see half a
/// file).
pub fn write_heartbeat(data_dir: &Path, role: &str, at: DateTime<Utc>) -> Result<(), HealthError> {
    let beat = Heartbeat {
        role: role.to_string(),
        pid: std::process::id(),
        at: rfc3339(at),
    };
    let text = serde_json::to_string(&beat).map_err(|e| HealthError::Io {
        path: heartbeat_path(data_dir, role),
        message: e.to_string(),
    })?;
    write_atomic(&heartbeat_path(data_dir, role), text.as_bytes())
}

/// Writes `role`'s heartbeat for this process now.
pub fn write_heartbeat_now(data_dir: &Path, role: &str) -> Result<(), HealthError> {
    write_heartbeat(data_dir, role, Utc::now())
}

/// Removes `role`'s heartbeat if this process wrote it (a clean shutdown).
pub fn remove_heartbeat(data_dir: &Path, role: &str) {
    let path = heartbeat_path(data_dir, role);
    if let Ok(Heartbeat { pid, .. }) = read_heartbeat(&path)
        && pid == std::process::id()
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Parses one heartbeat file; the error says what is wrong with it.
pub fn read_heartbeat(path: &Path) -> Result<Heartbeat, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let beat: Heartbeat =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if beat.role != stem {
        return Err(format!(
            "{}: names role `{}` but is the file of `{stem}`",
            path.display(),
            beat.role
        ));
    }
    if beat.pid == 0 {
        return Err(format!("{}: pid 0 is not a process", path.display()));
    }
    DateTime::parse_from_rfc3339(&beat.at).map_err(|e| {
        format!(
            "{}: `at` is not an RFC 3339 time (`{}`): {e}",
            path.display(),
            beat.at
        )
    })?;
    Ok(beat)
}

/// What the monitor sees of `role`'s heartbeat, with whether its process is alive.
pub fn observe_heartbeat(data_dir: &Path, role: &str) -> HeartbeatSeen {
    let path = heartbeat_path(data_dir, role);
    if !path.exists() {
        return HeartbeatSeen::Missing;
    }
    match read_heartbeat(&path) {
        Ok(beat) => match DateTime::parse_from_rfc3339(&beat.at) {
            Ok(at) => HeartbeatSeen::Beat {
                pid: beat.pid,
                at: at.with_timezone(&Utc),
                alive: pid_alive(beat.pid),
            },
            Err(e) => HeartbeatSeen::Unreadable(e.to_string()),
        },
        Err(e) => HeartbeatSeen::Unreadable(e),
    }
}

/// Whether process `pid` runs on this host: `/proc/<pid>` exists and is not a zombie. Without
/// `/proc` (not Linux) it cannot be told, and counts as alive; heartbeat freshness still applies.
pub fn pid_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)` (comm may contain parentheses).
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, Some('Z' | 'X' | 'x'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::paths::heartbeat_dir;

    #[test]
    fn write_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        write_heartbeat(dir.path(), "api", now).unwrap();
        match observe_heartbeat(dir.path(), "api") {
            HeartbeatSeen::Beat { pid, at, alive } => {
                assert_eq!(pid, std::process::id());
                assert_eq!(rfc3339(at), rfc3339(now));
                assert!(alive);
            }
            other => panic!("{other:?}"),
        }
        remove_heartbeat(dir.path(), "api");
        assert_eq!(observe_heartbeat(dir.path(), "api"), HeartbeatSeen::Missing);
    }

    #[test]
    fn bad_files_and_dead_pids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(heartbeat_dir(dir.path())).unwrap();
        std::fs::write(heartbeat_path(dir.path(), "api"), "{not json").unwrap();
        assert!(matches!(
            observe_heartbeat(dir.path(), "api"),
            HeartbeatSeen::Unreadable(_)
        ));
        std::fs::write(
            heartbeat_path(dir.path(), "workers"),
            r#"{"role":"api","pid":1,"at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let HeartbeatSeen::Unreadable(e) = observe_heartbeat(dir.path(), "workers") else {
            panic!("a heartbeat naming another role is not read");
        };
        assert!(e.contains("names role `api`"), "{e}");
        // A child that exited (and was reaped) is not alive.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert!(pid_alive(std::process::id()));
    }
}
