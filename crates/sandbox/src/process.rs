//! [`ScriptProcess`]: one sandboxed Python child speaking the line protocol, with its watchdog
//! (wall-clock budgets), its captured stderr and its scratch folder.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::EffectiveLimits;
use crate::confine::{self, Access, Confinement, Ruleset, resource};
use crate::error::{Refusal, SandboxError};
use crate::interpreter::{Interpreter, SandboxPolicy};

/// The child side of the protocol: `python/tradeloom/sandbox.py`, run with `python3 -c`.
pub const RUNNER: &str = include_str!("../../../python/tradeloom/sandbox.py");

/// The protocol version this side speaks.
pub const PROTOCOL: u32 = 1;

/// Longest reply line accepted (a skill's output included).
const MAX_LINE: u64 = 16 << 20;
/// stderr kept for error messages (the last bytes).
const STDERR_TAIL: usize = 16 << 10;
/// How often the watchdog looks at the deadlines.
const WATCHDOG_TICK: Duration = Duration::from_millis(25);

/// What confinement a child actually got (for the journal and the docs' fallbacks).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SandboxReport {
    /// The Landlock ABI enforced (0: none).
    pub landlock_abi: u32,
    /// Whether the seccomp filter is installed.
    pub seccomp: bool,
    /// Whether the child has a network namespace of its own.
    pub network_namespace: bool,
    /// The interpreter's version.
    pub python: String,
}

/// What one child is for and may read.
#[derive(Clone, Debug)]
pub struct ScriptSpec<'a> {
    /// The script file (must exist).
    pub script: &'a Path,
    /// How the script is named in messages (the path as the spec wrote it).
    pub display: &'a str,
    pub limits: EffectiveLimits,
    /// Folders the child must never read (the data dir): when the script's folder contains
    /// one, only the script file itself is made readable, not its folder.
    pub protected: &'a [PathBuf],
}

/// A reply of the runner.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Hello {
        protocol: u32,
    },
    Ready {
        #[serde(default)]
        batching: bool,
        /// Whether the strategy has an `on_fill` of its own (else fills need no round trip).
        #[serde(default = "yes")]
        fills: bool,
    },
    Done {
        #[serde(default)]
        consumed: Option<usize>,
        #[serde(default)]
        commands: Vec<serde_json::Value>,
        #[serde(default)]
        batching: Option<bool>,
    },
    Result {
        output: serde_json::Value,
    },
    Error {
        kind: String,
        error: String,
        #[serde(default)]
        traceback: String,
    },
}

fn yes() -> bool {
    true
}

/// Why the watchdog killed the child.
const FIRED_NONE: u64 = 0;
const FIRED_CALL: u64 = 1;
const FIRED_RUN: u64 = 2;

struct Watch {
    /// Nanoseconds after `base` when the current call must be answered (0: no call).
    call_deadline: AtomicU64,
    fired: AtomicU64,
    stop: AtomicBool,
}

/// A running sandboxed child. Dropping it kills the child, waits for it and removes the
/// scratch folder.
pub struct ScriptProcess {
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
    watch: Arc<Watch>,
    watchdog: Option<JoinHandle<()>>,
    base: Instant,
    scratch: Option<tempfile::TempDir>,
    limits: EffectiveLimits,
    line: Vec<u8>,
    /// Set once the child is gone; every later request returns it.
    dead: Option<SandboxError>,
    pub report: SandboxReport,
}

impl ScriptProcess {
    /// Starts the runner in the sandbox and waits for its `hello`.
    pub fn spawn(policy: &SandboxPolicy, spec: &ScriptSpec<'_>) -> Result<Self, SandboxError> {
        let interpreter = Interpreter::resolve(policy)?;
        let abi = confine::landlock_abi();
        let seccomp = confine::seccomp_program();
        let mut missing = Vec::new();
        if abi == 0 {
            missing.push("Landlock (Linux 5.13+ with the landlock LSM enabled)");
        }
        if seccomp.is_empty() {
            missing.push("the seccomp filter (x86_64 and aarch64 only)");
        }
        if !missing.is_empty() && !policy.allow_weaker {
            return Err(SandboxError::Unavailable(format!(
                "cannot sandbox scripts on this machine: {} unavailable; refusing to run the \
                 script (set {}=weaker to run it with the remaining limits)",
                missing.join(" and "),
                crate::interpreter::SANDBOX_ENV
            )));
        }
        let scratch = tempfile::Builder::new()
            .prefix("tradeloom-sandbox-")
            .tempdir()
            .map_err(|e| {
                SandboxError::Unavailable(format!("cannot create a scratch folder: {e}"))
            })?;
        let script_dir = spec
            .script
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let landlock = if abi > 0 {
            let mut paths: Vec<(PathBuf, Access)> = interpreter
                .read_paths
                .iter()
                .map(|p| (p.clone(), Access::ReadExecute))
                .collect();
            for system in ["/usr", "/lib", "/lib64", "/lib32"] {
                paths.push((PathBuf::from(system), Access::ReadExecute));
            }
            for file in ["/etc/ld.so.cache", "/etc/localtime", "/dev/urandom"] {
                paths.push((PathBuf::from(file), Access::Read));
            }
            paths.push((PathBuf::from("/dev/null"), Access::ReadWrite));
            let script_dir = script_dir.canonicalize().unwrap_or(script_dir.clone());
            let exposes_protected = spec.protected.iter().any(|p| {
                p.canonicalize()
                    .unwrap_or_else(|_| p.clone())
                    .starts_with(&script_dir)
            });
            if exposes_protected {
                paths.push((spec.script.to_path_buf(), Access::Read));
            } else {
                paths.push((script_dir, Access::Read));
            }
            paths.push((scratch.path().to_path_buf(), Access::ReadWrite));
            let refs: Vec<(&Path, Access)> = paths.iter().map(|(p, a)| (p.as_path(), *a)).collect();
            Some(Ruleset::new(abi, &refs).map_err(|e| {
                SandboxError::Unavailable(format!("cannot set up the Landlock ruleset: {e}"))
            })?)
        } else {
            None
        };
        let limits = spec.limits;
        let mb = 1u64 << 20;
        let cap = |resource, value: u64| value.min(confine::hard_limit(resource));
        let rlimits = vec![
            (
                resource::AS,
                cap(resource::AS, limits.memory_mb * mb),
                cap(resource::AS, limits.memory_mb * mb),
            ),
            // SIGXCPU at the soft limit, SIGKILL one second later.
            (
                resource::CPU,
                cap(resource::CPU, limits.cpu_seconds),
                cap(resource::CPU, limits.cpu_seconds + 1),
            ),
            (
                resource::NOFILE,
                cap(resource::NOFILE, limits.open_files),
                cap(resource::NOFILE, limits.open_files),
            ),
            (
                resource::FSIZE,
                cap(resource::FSIZE, limits.file_size_mb * mb),
                cap(resource::FSIZE, limits.file_size_mb * mb),
            ),
            (resource::CORE, 0, 0),
            // Stops forks for an unprivileged user; root ignores it (the seccomp filter is what
            // stops them there).
            (resource::NPROC, 0, 0),
        ];
        let mut command = Command::new(&interpreter.executable);
        command
            .args(["-s", "-B", "-c", RUNNER])
            .current_dir(scratch.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", scratch.path())
            .env("TMPDIR", scratch.path())
            .env("LANG", "C.UTF-8")
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let landlock_abi = landlock.as_ref().map_or(0, |r| r.abi);
        let has_seccomp = !seccomp.is_empty();
        Confinement {
            rlimits,
            landlock,
            seccomp,
            new_netns: true,
        }
        .install(&mut command);
        let mut child = command.spawn().map_err(|e| {
            SandboxError::Unavailable(format!("cannot start the sandboxed interpreter: {e}"))
        })?;
        let network_namespace = match (confine::netns_of(None), confine::netns_of(Some(child.id())))
        {
            (Some(ours), Some(its)) => ours != its,
            _ => false,
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SandboxError::Unavailable(
                "cannot open the pipes to the sandboxed interpreter".to_string(),
            ));
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr_thread = {
            let tail = stderr_tail.clone();
            std::thread::Builder::new()
                .name("sandbox-stderr".to_string())
                .spawn(move || drain_stderr(stderr, &tail))
                .ok()
        };
        let child = Arc::new(Mutex::new(child));
        let watch = Arc::new(Watch {
            call_deadline: AtomicU64::new(0),
            fired: AtomicU64::new(FIRED_NONE),
            stop: AtomicBool::new(false),
        });
        let base = Instant::now();
        let run_budget = limits.run_timeout_seconds.map(Duration::from_secs);
        let watchdog = {
            let (watch, child) = (watch.clone(), child.clone());
            std::thread::Builder::new()
                .name("sandbox-watchdog".to_string())
                .spawn(move || {
                    while !watch.stop.load(Ordering::Acquire) {
                        std::thread::sleep(WATCHDOG_TICK);
                        let now = base.elapsed();
                        let call = watch.call_deadline.load(Ordering::Acquire);
                        let reason = if run_budget.is_some_and(|budget| now >= budget) {
                            FIRED_RUN
                        } else if call != 0 && now.as_nanos() as u64 >= call {
                            FIRED_CALL
                        } else {
                            continue;
                        };
                        watch.fired.store(reason, Ordering::Release);
                        if let Ok(mut c) = child.lock() {
                            let _ = c.kill();
                        }
                        return;
                    }
                })
                .ok()
        };
        let mut process = ScriptProcess {
            child,
            stdin: Some(stdin),
            stdout: BufReader::with_capacity(1 << 16, stdout),
            stderr_tail,
            stderr_thread,
            watch,
            watchdog,
            base,
            scratch: Some(scratch),
            limits,
            line: Vec::with_capacity(1 << 12),
            dead: None,
            report: SandboxReport {
                landlock_abi,
                seccomp: has_seccomp,
                network_namespace,
                python: interpreter.version.clone(),
            },
        };
        match process.read_reply()? {
            Reply::Hello { protocol } if protocol == PROTOCOL => Ok(process),
            Reply::Hello { protocol } => Err(SandboxError::Protocol(format!(
                "the runner speaks protocol {protocol}, this tradeloom speaks {PROTOCOL}"
            ))),
            other => Err(SandboxError::Protocol(format!(
                "expected hello, got {other:?}"
            ))),
        }
    }

    /// The child's scratch folder.
    pub fn scratch(&self) -> Option<&Path> {
        self.scratch.as_ref().map(|s| s.path())
    }

    /// Sends one request line (without the newline) and waits for the reply, within the
    /// per-call budget. A reply of type `error` becomes the matching [`SandboxError`].
    pub fn request(&mut self, line: &[u8]) -> Result<Reply, SandboxError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        let deadline = self.base.elapsed() + Duration::from_millis(self.limits.call_timeout_ms);
        self.watch
            .call_deadline
            .store(deadline.as_nanos().max(1) as u64, Ordering::Release);
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line)
                .and_then(|_| stdin.write_all(b"\n"))
                .and_then(|_| stdin.flush()),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        let reply = match written {
            Ok(()) => self.read_reply(),
            Err(_) => Err(self.death()),
        };
        self.watch.call_deadline.store(0, Ordering::Release);
        reply
    }

    fn read_reply(&mut self) -> Result<Reply, SandboxError> {
        self.line.clear();
        let n = (&mut self.stdout)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line);
        match n {
            Ok(0) | Err(_) => return Err(self.death()),
            Ok(_) if self.line.last() != Some(&b'\n') => {
                return Err(self.fail(SandboxError::Protocol(format!(
                    "a reply longer than {} MiB",
                    MAX_LINE >> 20
                ))));
            }
            Ok(_) => {}
        }
        let reply = serde_json::from_slice::<Reply>(&self.line).map_err(|e| {
            let shown =
                String::from_utf8_lossy(&self.line[..self.line.len().min(200)]).into_owned();
            SandboxError::Protocol(format!("unreadable reply ({e}): {shown}"))
        });
        match reply {
            Ok(Reply::Error {
                kind,
                error,
                traceback,
            }) => {
                let e = match kind.as_str() {
                    "memory" => self.refused(Refusal::Memory, error),
                    "network" => self.refused(Refusal::Network, error),
                    "process" => self.refused(Refusal::Process, error),
                    "filesystem" => self.refused(Refusal::Filesystem, error),
                    "script" => SandboxError::Script(error),
                    _ => SandboxError::Exception { error, traceback },
                };
                Err(self.fail(e))
            }
            Ok(r) => Ok(r),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn refused(&self, refusal: Refusal, error: String) -> SandboxError {
        SandboxError::Refused {
            refusal,
            error,
            memory_mb: self.limits.memory_mb,
        }
    }

    /// Records `e` as the child's end and stops it.
    fn fail(&mut self, e: SandboxError) -> SandboxError {
        self.kill();
        self.dead = Some(e.clone());
        e
    }

    /// Why the child is gone: the watchdog's reason, a CPU-limit signal, or its exit status
    /// with the end of its stderr.
    fn death(&mut self) -> SandboxError {
        let status = self.wait_exit(Duration::from_secs(2));
        let e = match self.watch.fired.load(Ordering::Acquire) {
            FIRED_CALL => SandboxError::CallTimeout(self.limits.call_timeout_ms),
            // Only fired with a budget.
            FIRED_RUN => SandboxError::RunTimeout(self.limits.run_timeout_seconds.unwrap_or(0)),
            _ => match status {
                Some(s) if s.signal() == Some(libc::SIGXCPU) => {
                    SandboxError::CpuLimit(self.limits.cpu_seconds)
                }
                Some(s) if s.signal() == Some(libc::SIGKILL) && self.cpu_exhausted() => {
                    SandboxError::CpuLimit(self.limits.cpu_seconds)
                }
                other => {
                    if let Some(h) = self.stderr_thread.take() {
                        let _ = h.join();
                    }
                    let stderr = self
                        .stderr_tail
                        .lock()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let memory = stderr.contains("MemoryError");
                    if memory {
                        SandboxError::Refused {
                            refusal: Refusal::Memory,
                            error: "MemoryError".to_string(),
                            memory_mb: self.limits.memory_mb,
                        }
                    } else {
                        SandboxError::Died {
                            status: other.map_or("status unknown".to_string(), |s| s.to_string()),
                            stderr,
                        }
                    }
                }
            },
        };
        self.dead = Some(e.clone());
        e
    }

    fn cpu_exhausted(&self) -> bool {
        // Killed by the hard CPU limit one second after an ignored SIGXCPU: the run's wall
        // time must at least have reached the CPU limit.
        self.base.elapsed() >= Duration::from_secs(self.limits.cpu_seconds)
    }

    fn wait_exit(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            let Ok(mut c) = self.child.lock() else {
                return None;
            };
            match c.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if start.elapsed() < grace => {}
                _ => {
                    let _ = c.kill();
                    return c.wait().ok();
                }
            }
            drop(c);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the runner to exit and waits for it briefly; kills it otherwise.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.dead.is_none()
            && let Some(stdin) = self.stdin.as_mut()
        {
            let _ = stdin.write_all(b"{\"type\":\"exit\"}\n");
            let _ = stdin.flush();
        }
        self.stdin = None;
        let _ = self.wait_exit(Duration::from_millis(500));
        self.watch.stop.store(true, Ordering::Release);
        if let Some(h) = self.watchdog.take() {
            let _ = h.join();
        }
        if let Some(h) = self.stderr_thread.take() {
            let _ = h.join();
        }
        if let Some(s) = self.scratch.take() {
            let _ = s.close();
        }
    }
}

impl Drop for ScriptProcess {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn drain_stderr(mut stderr: std::process::ChildStderr, tail: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    if t.len() > STDERR_TAIL {
                        let cut = t.len() - STDERR_TAIL;
                        t.drain(..cut);
                    }
                }
            }
        }
    }
}
