//! Child processes of a drill: `tradeloom` itself started as `serve`, `mock-llm`, `run` or a
//! one-shot command, each killed (SIGKILL) and reaped when its guard is dropped — on success, on
//! a failed step, on a timeout and on a panic alike.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::error::DrillError;

type Result<T> = std::result::Result<T, DrillError>;

/// Environment variables a drill's children must not inherit: each drill chooses its own data
/// dir and store, whatever the operator's shell has set.
const SCRUBBED_ENV: &[&str] = &[
    "TRADELOOM_DATA_DIR",
    "TRADELOOM_DATABASE_URL",
    "MAX_CONCURRENT_JOBS",
    "TRADELOOM_LOG_FORMAT",
];

/// A running child, killed and reaped on drop.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    fn new(child: Child, what: String) -> Self {
        Self {
            child: Some(child),
            what,
        }
    }

    /// The process id (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL and reap. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the child has ended.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(DrillError::io(format!("waiting for {}", self.what))),
            None => Err(DrillError::Process(format!(
                "{} was already killed",
                self.what
            ))),
        }
    }

    /// Waits for the child to end; kills it and fails after `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(DrillError::Process(format!(
                    "{} did not end within {timeout:?}; killed",
                    self.what
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `tradeloom` command line for a drill: the binary, its arguments and environment.
pub struct Tradeloom {
    exe: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
}

impl Tradeloom {
    /// The binary `exe` with no arguments yet.
    pub fn new(exe: &Path) -> Self {
        Self {
            exe: exe.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable of the child.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The command line as text, for step records and errors.
    pub fn describe(&self) -> String {
        let mut s = String::from("tradeloom");
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.args).stdin(Stdio::null());
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs to the end with captured output; killed and an error after `timeout`.
    pub fn output(&self, timeout: Duration) -> Result<Output> {
        run_captured(self.command(), &self.describe(), timeout)
    }

    /// Starts it in the background, stdout and stderr appended to `log`.
    pub fn spawn(&self, log: &Path) -> Result<ChildGuard> {
        let out = log_file(log)?;
        let err = out
            .try_clone()
            .map_err(DrillError::io(format!("opening {}", log.display())))?;
        let child = self
            .command()
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(DrillError::io(format!("starting {}", self.describe())))?;
        Ok(ChildGuard::new(child, self.describe()))
    }

    /// Starts a server (`serve`, `mock-llm`) that prints its `http://` address on its first
    /// stdout line; stderr goes to `log`. Fails if no address comes within `timeout`.
    pub fn start_service(&self, log: &Path, timeout: Duration) -> Result<Service> {
        let err = log_file(log)?;
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(DrillError::io(format!("starting {}", self.describe())))?;
        let stdout = child.stdout.take().ok_or_else(|| {
            DrillError::Process(format!("no stdout pipe for {}", self.describe()))
        })?;
        let mut guard = ChildGuard::new(child, self.describe());
        let (tx, rx) = mpsc::channel();
        // Reads the first line, then drains the rest so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(timeout).map_err(|_| {
            guard.kill();
            DrillError::Process(format!(
                "{} printed no address within {timeout:?}; its log {}: {}",
                self.describe(),
                log.display(),
                log_tail(log)
            ))
        })?;
        let Some(start) = line.find("http://") else {
            guard.kill();
            return Err(DrillError::Process(format!(
                "{} did not start (first line {line:?}); its log {}: {}",
                self.describe(),
                log.display(),
                log_tail(log)
            )));
        };
        let url = line[start..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches("/v1")
            .to_string();
        Ok(Service { guard, url })
    }
}

/// A server child and its root URL (`http://127.0.0.1:PORT`).
pub struct Service {
    /// The child, killed when this is dropped.
    pub guard: ChildGuard,
    /// Its root URL, without a trailing `/v1`.
    pub url: String,
}

impl Service {
    /// The port of its URL.
    pub fn port(&self) -> Result<u16> {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .ok_or_else(|| DrillError::Observed(format!("no port in {}", self.url)))
    }
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(DrillError::io(format!(
            "opening the log {}",
            path.display()
        )))
}

/// The last lines of a log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(5);
    lines[from..].join(" | ")
}

fn run_captured(mut cmd: Command, what: &str, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(DrillError::io(format!("starting {what}")))?;
    let pipes = (child.stdout.take(), child.stderr.take());
    let mut guard = ChildGuard::new(child, what.to_string());
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(pipes.0.map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = reader(pipes.1.map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = guard.wait_timeout(timeout)?;
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs `script` with `sh -c` (for shell-only setup such as `ulimit`), captured, with a timeout.
pub fn shell(script: &str, timeout: Duration) -> Result<Output> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).stdin(Stdio::null());
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    run_captured(cmd, &format!("sh -c {script:?}"), timeout)
}

/// Quotes a path for `sh`.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Exit status and stderr of a finished command, for step records.
pub fn exit_text(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim();
    let tail: String = err
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}; stderr: {tail}", out.status)
}

/// The error for a set-up command (`tradeloom data synth`, …) that exited unsuccessfully.
pub fn command_failed(command: &str, out: &Output) -> DrillError {
    DrillError::Command {
        command: command.to_string(),
        detail: exit_text(out),
    }
}
