//! Drill `data_stall`: a feed named in `<data_dir>/health.yaml` (stale after 1 s, dead after
//! 2 s) is kept fresh by the drill, then no longer updated, then updated again. Asserts from
//! `tradeloom health --json` that the status walks GREEN → DEGRADED → DEAD as the feed goes
//! stale and dead, and returns to GREEN when the data resumes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ctx::{Ctx, pause};
use super::error::DrillError;
use super::process::command_failed;

type Result<T> = std::result::Result<T, DrillError>;

const HEALTH_YAML: &str = "# Written by `tradeloom drill run data_stall`.
feeds:
  - name: prices
    path: feeds/prices.csv
    stale_after: 1s
    dead_after: 2s
";

/// Appends a line to the feed every 200 ms while `on` is set.
struct Feeder {
    on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    fn start(path: PathBuf) -> Self {
        let on = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (on2, stop2) = (Arc::clone(&on), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                if on2.load(Ordering::Relaxed) {
                    n += 1;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)
                    {
                        let _ = writeln!(f, "{n},100.{:02}", n % 100);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self {
            on,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the drill.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let data = ctx.data();
    std::fs::create_dir_all(data.join("feeds"))
        .map_err(DrillError::io("creating the feeds folder"))?;
    std::fs::write(data.join("health.yaml"), HEALTH_YAML)
        .map_err(DrillError::io("writing health.yaml"))?;
    // The store is part of the control plane (M4): create it, as `serve` would.
    let migrate = ctx
        .tradeloom()
        .args(["db", "migrate"])
        .output(Duration::from_secs(60))?;
    if !migrate.status.success() {
        return Err(command_failed("tradeloom db migrate", &migrate));
    }
    let feeder = Feeder::start(data.join("feeds/prices.csv"));
    pause(300).await;

    let fresh = health(ctx)?;
    ctx.require(
        "GREEN while the feed is updated",
        "status GREEN, m3_data_freshness 1",
        summary(&fresh),
        fresh["status"] == "GREEN" && fresh["sensors"]["m3_data_freshness"] == 1.0,
    )?;

    feeder.set(false);
    let stalled_at = Instant::now();
    let mut walk = vec!["GREEN".to_string()];
    let dead = poll(ctx, &mut walk, "DEAD", Duration::from_secs(20))?;
    let degraded_at = walk.iter().position(|s| s == "DEGRADED");
    let dead_at = walk.iter().position(|s| s == "DEAD");
    ctx.check(
        "the status degrades as the feed stalls",
        "GREEN, then DEGRADED (stale), then DEAD (dead), never back up while stalled",
        format!(
            "{} over {} ms; m3 at the end {}",
            walk.join(" -> "),
            stalled_at.elapsed().as_millis(),
            dead["sensors"]["m3_data_freshness"]
        ),
        matches!((degraded_at, dead_at), (Some(a), Some(b)) if a < b)
            && !walk[degraded_at.unwrap_or(0)..].contains(&"GREEN".to_string()),
    );

    feeder.set(true);
    let mut back = vec!["DEAD".to_string()];
    let green = poll(ctx, &mut back, "GREEN", Duration::from_secs(20))?;
    ctx.check(
        "GREEN again when the data resumes",
        "status GREEN, m3_data_freshness 1",
        format!("{}; {}", back.join(" -> "), summary(&green)),
        green["status"] == "GREEN" && green["sensors"]["m3_data_freshness"] == 1.0,
    );
    drop(feeder);
    Ok(())
}

/// `tradeloom health --json` once.
fn health(ctx: &Ctx) -> Result<Value> {
    let out = ctx
        .tradeloom()
        .args(["health", "--json"])
        .output(Duration::from_secs(30))?;
    if !out.status.success() {
        return Err(command_failed("tradeloom health --json", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).map_err(DrillError::json(format!(
        "tradeloom health --json printed {text:?}"
    )))
}

/// Checks until `target`, recording each status change in `walk`.
fn poll(ctx: &Ctx, walk: &mut Vec<String>, target: &str, within: Duration) -> Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let report = health(ctx)?;
        let status = report["status"].as_str().unwrap_or("?").to_string();
        if walk.last() != Some(&status) {
            walk.push(status.clone());
        }
        if status == target {
            return Ok(report);
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Observed(format!(
                "no {target} within {within:?}: {}; last {}",
                walk.join(" -> "),
                summary(&report)
            )));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn summary(report: &Value) -> String {
    format!(
        "status {}, rm_meta {}, sensors {}",
        report["status"], report["rm_meta"], report["sensors"]
    )
}
