//! What a drill works with: the `tradeloom` binary, its work folder, and the steps it has
//! recorded so far.

use std::path::PathBuf;
use std::time::Duration;

use tradeloom_client::Client;

use super::error::DrillError;
use super::process::{Service, Tradeloom};
use super::report::Step;

/// A client of the drill's `tradeloom serve` at `base` (`http://127.0.0.1:PORT`): every request,
/// connecting included, within `timeout`, so that a hanging server is an observation, not a
/// hung drill; proxies are ignored (the server is on loopback).
pub fn api_client(base: &str, timeout: Duration) -> Result<Client, DrillError> {
    Ok(Client::builder(base)
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .build()?)
}

/// A running drill's context.
pub struct Ctx {
    /// The `tradeloom` binary the drill starts.
    pub exe: PathBuf,
    /// `<data-dir>/drills/work/<name>-<timestamp>/`.
    pub work: PathBuf,
    steps: Vec<Step>,
}

impl Ctx {
    /// A context with no steps yet.
    pub fn new(exe: PathBuf, work: PathBuf) -> Self {
        Self {
            exe,
            work,
            steps: Vec::new(),
        }
    }

    /// The steps recorded so far, in order.
    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }

    /// The data dir of the drill's own tradeloom instance.
    pub fn data(&self) -> PathBuf {
        self.work.join("data")
    }

    /// Records a step; returns whether it passed.
    pub fn check(
        &mut self,
        name: &str,
        expected: impl Into<String>,
        observed: impl Into<String>,
        passed: bool,
    ) -> bool {
        self.steps.push(Step {
            name: name.to_string(),
            passed,
            expected: expected.into(),
            observed: observed.into(),
        });
        passed
    }

    /// Records a step the rest of the drill depends on: a failure stops the drill.
    pub fn require(
        &mut self,
        name: &str,
        expected: impl Into<String>,
        observed: impl Into<String>,
        passed: bool,
    ) -> Result<(), DrillError> {
        let expected = expected.into();
        let observed = observed.into();
        if !self.check(name, expected.clone(), observed.clone(), passed) {
            return Err(DrillError::Step {
                name: name.to_string(),
                expected,
                observed,
            });
        }
        Ok(())
    }

    /// `tradeloom` with `--data-dir` set to the drill's data dir.
    pub fn tradeloom(&self) -> Tradeloom {
        Tradeloom::new(&self.exe).arg("--data-dir").arg(self.data())
    }

    /// A log file in the work folder.
    pub fn log(&self, name: &str) -> PathBuf {
        self.work.join(format!("{name}.log"))
    }

    /// `tradeloom serve` on the drill's data dir (SQLite under it) and a free loopback port,
    /// without rate limits, with `env` added; its output in the log `log`.
    pub fn start_serve(&self, log: &str, env: &[(&str, &str)]) -> Result<Service, DrillError> {
        let mut cmd = self
            .tradeloom()
            .arg("--database-url")
            .arg(self.data().join("tradeloom.db"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(["--rate-limit-per-key", "0", "--rate-limit-runs-light", "0"]);
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd.start_service(&self.log(log), Duration::from_secs(60))
    }
}

/// Sleeps on the async runtime (drills poll files and processes between steps).
pub async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
