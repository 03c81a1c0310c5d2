//! sandbox: runs untrusted Python scripts — strategies of run specs and skills of workflow
//! `script` nodes — in a confined child process speaking a JSON-lines protocol.
//!
//! The child is `python3` running the embedded runner (`python/tradeloom/sandbox.py`) with:
//! resource limits (address space, CPU time, open files, file size), no capabilities,
//! `no_new_privs`, a Landlock domain (read-only: the Python installation, system libraries and
//! the script's folder; read-write: a fresh scratch folder; no TCP; no signals outside), a
//! seccomp filter (no new processes, no sockets, no io_uring, no tracing), a network namespace
//! of its own where the kernel allows, an empty environment but for PATH/HOME/LANG, and
//! wall-clock budgets per call and per run enforced by a watchdog that kills it.
//!
//! Depends on core and engine (the [`tradeloom_engine::Strategy`] it implements); no async, no
//! network.

mod confine;
mod error;
mod interpreter;
mod process;
mod skill;
mod strategy;

pub use confine::landlock_abi;
pub use error::{Refusal, SandboxError};
pub use interpreter::{Interpreter, PYTHON_ENV, SANDBOX_ENV, SandboxPolicy};
pub use process::{PROTOCOL, RUNNER, Reply, SandboxReport, ScriptProcess, ScriptSpec};
pub use skill::run_skill;
pub use strategy::{DEFAULT_MAX_BATCH, FailureSlot, Lookahead, ScriptOptions, ScriptStrategy};
pub use tradeloom_core::script_limits::{
    EffectiveScriptLimits as EffectiveLimits, ScriptLimits as Limits,
};
