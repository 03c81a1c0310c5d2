//! [`SandboxError`]: why a sandboxed script could not start or was stopped, naming the limit.

/// Which sandbox rule a Python exception ran into, as the runner classified it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `MemoryError`: the address-space limit.
    Memory,
    /// A socket, refused by the seccomp filter (and the network namespace).
    Network,
    /// `fork`/`exec`/`posix_spawn`, refused by the seccomp filter.
    Process,
    /// A file outside what Landlock allows.
    Filesystem,
}

/// A sandboxed script failed or could not run. Messages are for users: they name the limit and
/// the field that sets it, and never the server's paths.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox cannot run here (no interpreter, no Landlock, an unsupported architecture).
    #[error("{0}")]
    Unavailable(String),
    /// The script is unusable (not found, no such class or function, bad parameters).
    #[error("{0}")]
    Script(String),
    /// Python code raised an exception.
    #[error("the script raised {error}\n{traceback}")]
    Exception { error: String, traceback: String },
    /// An exception that is a sandbox refusal.
    #[error("{}: {error}", refusal_text(*.refusal, *.memory_mb))]
    Refused {
        refusal: Refusal,
        error: String,
        memory_mb: u64,
    },
    /// One call took longer than `limits.call_timeout_ms`.
    #[error(
        "the script exceeded its wall-clock budget of {0} ms for one call (limits.call_timeout_ms) and was stopped"
    )]
    CallTimeout(u64),
    /// The script as a whole ran longer than `limits.run_timeout_seconds`.
    #[error(
        "the script exceeded its wall-clock budget of {0} s for the whole run (limits.run_timeout_seconds) and was stopped"
    )]
    RunTimeout(u64),
    /// RLIMIT_CPU (SIGXCPU).
    #[error("the script used up its CPU time limit of {0} s (limits.cpu_seconds) and was stopped")]
    CpuLimit(u64),
    /// The child ended without saying why (a signal, an exit code); `stderr` is its last
    /// output.
    #[error("the script's process ended unexpectedly ({status}){}", stderr_suffix(.stderr))]
    Died { status: String, stderr: String },
    /// The child broke the protocol.
    #[error("protocol error with the script runner: {0}")]
    Protocol(String),
    /// A request the engine cannot carry out (a bad quantity, an unknown order).
    #[error("{0}")]
    Request(String),
}

fn refusal_text(refusal: Refusal, memory_mb: u64) -> String {
    match refusal {
        Refusal::Memory => {
            format!("the script ran out of memory: its limit is {memory_mb} MiB (limits.memory_mb)")
        }
        Refusal::Network => {
            "the script tried to use the network, which the sandbox does not allow".to_string()
        }
        Refusal::Process => {
            "the script tried to start a new process, which the sandbox does not allow".to_string()
        }
        Refusal::Filesystem => "the script tried to access a file the sandbox does not allow \
             (it may write only in its scratch folder and read only its own folder and the \
             Python installation)"
            .to_string(),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{s}")
    }
}
