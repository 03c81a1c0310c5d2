//! What every benchmark that names a peer needs: CPU time of this process, of its children and of
//! another process (so a figure survives a noisy machine), and the Python environment the peers
//! are installed in (`bench/peers/setup`).

use std::io;
use std::path::{Path, PathBuf};

/// Environment variable naming the peers' venv; default `$HOME/.cache/tradeloom-bench-venv`.
pub const PEER_VENV_ENV: &str = "TRADELOOM_BENCH_VENV";

/// User + system CPU seconds of this process (every thread) so far.
pub fn self_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

/// User + system CPU seconds of this process's children that have been waited for.
pub fn children_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_CHILDREN)
}

#[allow(unsafe_code)] // getrusage: one plain struct out, no pointers kept
fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes one plain struct that we own; it cannot fail for these `who`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// User + system CPU seconds of the running process `pid` (every thread), from `/proc`.
#[allow(unsafe_code)] // sysconf(_SC_CLK_TCK): reads a constant
pub fn process_cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: unexpected format")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let tick = |i: usize| -> io::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64)
            .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: no field {}", i + 3)))
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((tick(11)? + tick(12)?) / hz)
}

/// The Python interpreter of the peers' venv, or why there is none (a bench prints the reason in
/// place of the peer's figures).
pub fn peer_python() -> Result<PathBuf, String> {
    let venv = match std::env::var_os(PEER_VENV_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".cache/tradeloom-bench-venv"),
            None => return Err(format!("not installed (set {PEER_VENV_ENV} or HOME)")),
        },
    };
    let python = venv.join("bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(format!(
            "not installed (no {}; run bench/peers/setup)",
            python.display()
        ))
    }
}

/// Writes an embedded peer script into `dir` and returns its path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, body)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_this_process_grows_with_work() {
        let before = process_cpu_seconds(std::process::id()).unwrap();
        let rusage_before = self_cpu_seconds();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(120) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(self_cpu_seconds() > rusage_before);
        assert!(process_cpu_seconds(std::process::id()).unwrap() >= before);
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(process_cpu_seconds(u32::MAX).is_err());
    }
}
