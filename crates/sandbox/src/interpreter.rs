//! [`SandboxPolicy`] (which interpreter, whether a weaker sandbox is acceptable) and
//! [`Interpreter`]: the Python installation a sandboxed child may read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::SandboxError;

/// The environment variable naming the Python interpreter (default `python3` on `PATH`).
pub const PYTHON_ENV: &str = "TRADELOOM_PYTHON";
/// The environment variable that, set to `weaker`, lets scripts run where a sandbox mechanism
/// (Landlock, seccomp) is missing, with what remains.
pub const SANDBOX_ENV: &str = "TRADELOOM_SANDBOX";

/// How scripts are run on this machine: set by whoever runs tradeloom, never by a spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// The interpreter (`None`: `python3` on `PATH`).
    pub python: Option<PathBuf>,
    /// Run even when Landlock or the seccomp filter is unavailable (the error says which is
    /// missing when this is off).
    pub allow_weaker: bool,
}

impl SandboxPolicy {
    /// From `TRADELOOM_PYTHON` and `TRADELOOM_SANDBOX=weaker`.
    pub fn from_env() -> Self {
        Self {
            python: std::env::var_os(PYTHON_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            allow_weaker: std::env::var(SANDBOX_ENV).is_ok_and(|v| v == "weaker"),
        }
    }

    fn python_command(&self) -> &Path {
        self.python.as_deref().unwrap_or(Path::new("python3"))
    }
}

/// A resolved Python installation: the real executable (not a shim such as pyenv's, which is a
/// shell script that forks) and the folders the child must be able to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpreter {
    pub executable: PathBuf,
    /// `sys.prefix`, `sys.base_prefix`, `sys.exec_prefix`, … and the executable's folder.
    pub read_paths: Vec<PathBuf>,
    /// `3.11.7`.
    pub version: String,
}

const PROBE: &str = "import sys, os, json\n\
print(json.dumps({'executable': os.path.realpath(sys.executable), 'version': '%d.%d.%d' % sys.version_info[:3], \
'paths': sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(os.path.realpath(sys.executable))})}))";

#[derive(serde::Deserialize)]
struct Probe {
    executable: PathBuf,
    version: String,
    paths: Vec<PathBuf>,
}

static RESOLVED: Mutex<Option<HashMap<PathBuf, Interpreter>>> = Mutex::new(None);

impl Interpreter {
    /// Resolves the policy's interpreter once per process (it runs the configured interpreter,
    /// outside the sandbox, to ask where it lives; no user code is involved).
    pub fn resolve(policy: &SandboxPolicy) -> Result<Interpreter, SandboxError> {
        let command = policy.python_command().to_path_buf();
        if let Some(found) = RESOLVED
            .lock()
            .ok()
            .and_then(|m| m.as_ref().and_then(|m| m.get(&command).cloned()))
        {
            return Ok(found);
        }
        let missing = |detail: String| {
            SandboxError::Unavailable(format!(
                "cannot run Python scripts: the interpreter `{}` {detail}; install Python 3 or \
                 set {PYTHON_ENV} to its path",
                command.display()
            ))
        };
        let output = Command::new(&command)
            .args(["-s", "-B", "-c", PROBE])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => missing("was not found".to_string()),
                _ => missing(format!("could not be started ({e})")),
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(missing(format!(
                "failed ({}): {}",
                output.status,
                stderr.trim()
            )));
        }
        let probe: Probe = serde_json::from_slice(&output.stdout)
            .map_err(|e| missing(format!("answered something unexpected ({e})")))?;
        let major_ok = probe
            .version
            .split('.')
            .take(2)
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>();
        if major_ok.first() != Some(&3) || major_ok.get(1).is_none_or(|m| *m < 8) {
            return Err(missing(format!(
                "is Python {}; Python 3.8 or newer is needed",
                probe.version
            )));
        }
        let found = Interpreter {
            executable: probe.executable,
            read_paths: probe.paths,
            version: probe.version,
        };
        if let Ok(mut m) = RESOLVED.lock() {
            m.get_or_insert_with(HashMap::new)
                .insert(command, found.clone());
        }
        Ok(found)
    }
}
