//! Drill `kill_switch`: the global kill switch is engaged (with `tradeloom killswitch engage`)
//! while a backtest that trades on almost every bar is running. From the run's journal: orders
//! flowed before the engagement, nothing was accepted or filled after the `kill_switch_engaged`
//! event, and every later order was refused with `risk.kill_switch` and the operator's reason.
//! After `release`, a new run trades again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ctx::Ctx;
use super::error::DrillError;
use super::process::{command_failed, exit_text};

type Result<T> = std::result::Result<T, DrillError>;

/// Bars of the first attempt; each further attempt has four times as many, so a fast (release)
/// build is still running when the kill switch lands.
const FIRST_BARS: u64 = 40_000;
const ATTEMPTS: u32 = 3;
const REASON: &str = "drill kill_switch: stop all trading";

/// Runs the drill.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let mut bars = FIRST_BARS;
    let mut journal = None;
    for attempt in 1..=ATTEMPTS {
        match engage_mid_run(ctx, bars, attempt)? {
            MidRun::Engaged(lines) => {
                journal = Some(lines);
                break;
            }
            MidRun::FinishedFirst => bars *= 4,
        }
    }
    let Some(journal) = journal else {
        ctx.require(
            "kill switch engaged while the run was trading",
            "a kill_switch_engaged event in the journal of a running backtest",
            format!(
                "every run ({ATTEMPTS} attempts, up to {bars} bars) finished before the engagement"
            ),
            false,
        )?;
        return Ok(());
    };
    let engaged_at = journal
        .iter()
        .position(|l| l["event"] == "kill_switch_engaged")
        .ok_or_else(|| {
            DrillError::Observed("the journal lost its kill_switch_engaged line".to_string())
        })?;
    let (before, after) = journal.split_at(engaged_at);
    let count = |lines: &[Value], event: &str| lines.iter().filter(|l| l["event"] == event).count();
    let filled_before = count(before, "order_filled");
    ctx.require(
        "kill switch engaged while the run was trading",
        "orders filled before the kill_switch_engaged event",
        format!(
            "kill_switch_engaged at journal line {} (bar {}), {filled_before} fills before it",
            engaged_at + 1,
            after[0]["ts"].as_str().unwrap_or("?")
        ),
        filled_before > 0,
    )?;
    let accepted_after = count(after, "order_accepted");
    let filled_after = count(after, "order_filled");
    ctx.check(
        "orders stop at the engagement event",
        "0 order_accepted and 0 order_filled after kill_switch_engaged",
        format!("{accepted_after} accepted, {filled_after} filled after it"),
        accepted_after == 0 && filled_after == 0,
    );
    let submitted_after = count(after, "order_submitted");
    let refusals: Vec<&Value> = after
        .iter()
        .filter(|l| l["event"] == "order_rejected")
        .collect();
    let by_kill_switch = refusals
        .iter()
        .filter(|l| l["code"] == "risk.kill_switch")
        .count();
    ctx.check(
        "later orders refused with risk.kill_switch",
        "every order submitted after the engagement rejected with code risk.kill_switch (and some were)",
        format!(
            "{submitted_after} submitted, {} rejected, {by_kill_switch} with risk.kill_switch",
            refusals.len()
        ),
        submitted_after > 0 && by_kill_switch == submitted_after && refusals.len() == submitted_after,
    );
    let with_reason = refusals
        .iter()
        .filter(|l| l["reason"].as_str().is_some_and(|r| r.contains(REASON)))
        .count();
    ctx.check(
        "refusals carry the operator's reason",
        format!("every refusal's reason contains {REASON:?}"),
        format!(
            "{with_reason} of {}; first: {}",
            refusals.len(),
            refusals
                .first()
                .map_or("none".to_string(), |l| l["reason"].to_string())
        ),
        !refusals.is_empty() && with_reason == refusals.len(),
    );

    let out = ctx
        .tradeloom()
        .args([
            "killswitch",
            "release",
            "--reason",
            "drill kill_switch over",
            "--by",
            "drill",
        ])
        .output(Duration::from_secs(30))?;
    ctx.require(
        "release the kill switch",
        "tradeloom killswitch release exits 0",
        exit_text(&out),
        out.status.success(),
    )?;
    let (status, run_dir) = run_to_end(ctx, &ctx.work.join("spec.yaml"))?;
    let lines = read_journal(&run_dir.join("journal.jsonl"))?;
    let fills = count(&lines, "order_filled");
    let refused = lines
        .iter()
        .filter(|l| l["code"] == "risk.kill_switch")
        .count();
    ctx.check(
        "a new run trades after release",
        "status completed, fills, no risk.kill_switch refusal",
        format!("status {status}, {fills} fills, {refused} kill-switch refusals"),
        status == "completed" && fills > 0 && refused == 0,
    );

    let events = std::fs::read_to_string(ctx.data().join("killswitch/global.events.jsonl"))
        .map_err(DrillError::io("reading the kill switch event log"))?;
    let actions: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| {
            format!(
                "{} by {}",
                e["action"].as_str().unwrap_or("?"),
                e["by"].as_str().unwrap_or("?")
            )
        })
        .collect();
    ctx.check(
        "engagement and release journaled",
        "global.events.jsonl: engage by drill, release by drill",
        actions.join(", "),
        actions == ["engage by drill", "release by drill"],
    );
    Ok(())
}

enum MidRun {
    /// The run saw the engagement; its journal lines.
    Engaged(Vec<Value>),
    /// The run ended before the engagement reached it (the switch was released again).
    FinishedFirst,
}

/// Writes `bars` synthetic bars and a spec, starts the run, engages the global kill switch as
/// soon as the journal has its first lines, and waits for the run to end.
fn engage_mid_run(ctx: &mut Ctx, bars: u64, attempt: u32) -> Result<MidRun> {
    let data = ctx.work.join(format!("bars-{bars}.csv"));
    let out = ctx
        .tradeloom()
        .args(["data", "synth", "--symbol", "DRL", "--timeframe", "1m"])
        .arg("--bars")
        .arg(bars.to_string())
        .arg("--out")
        .arg(&data)
        .output(Duration::from_secs(120))?;
    if !out.status.success() {
        return Err(command_failed("tradeloom data synth", &out));
    }
    let spec = ctx.work.join("spec.yaml");
    std::fs::write(&spec, spec_text(&data)).map_err(DrillError::io("writing the drill's spec"))?;

    let runs = ctx.data().join("runs");
    let known = run_dirs(&runs);
    let mut child = ctx
        .tradeloom()
        .arg("run")
        .arg(&spec)
        .args(["--json", "--quiet"])
        .spawn(&ctx.log(&format!("run-{attempt}")))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    // The run folder appears first, its journal once the writer flushes its first block.
    let journal = loop {
        if let Some(dir) = run_dirs(&runs).into_iter().find(|d| !known.contains(d)) {
            let path = dir.join("journal.jsonl");
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                break path;
            }
        }
        if let Some(status) = child.try_wait()? {
            return Err(DrillError::Observed(format!(
                "the run ended ({status}) before its journal was written; log {}",
                ctx.log(&format!("run-{attempt}")).display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(DrillError::Observed(
                "the run wrote no journal within 120 s".to_string(),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = ctx
        .tradeloom()
        .args(["killswitch", "engage", "--reason", REASON, "--by", "drill"])
        .output(Duration::from_secs(30))?;
    if !out.status.success() {
        return Err(command_failed("tradeloom killswitch engage", &out));
    }
    let status = child.wait_timeout(Duration::from_secs(300))?;
    if !status.success() {
        return Err(DrillError::Observed(format!(
            "the run failed ({status}); log {}",
            ctx.log(&format!("run-{attempt}")).display()
        )));
    }
    let lines = read_journal(&journal)?;
    if lines.iter().any(|l| l["event"] == "kill_switch_engaged") {
        return Ok(MidRun::Engaged(lines));
    }
    let out = ctx
        .tradeloom()
        .args([
            "killswitch",
            "release",
            "--reason",
            "drill: run again with more bars",
            "--by",
            "drill",
        ])
        .output(Duration::from_secs(30))?;
    if !out.status.success() {
        return Err(command_failed("tradeloom killswitch release", &out));
    }
    // Only the last engage/release pair counts in the event log check; start it afresh.
    let _ = std::fs::remove_file(ctx.data().join("killswitch/global.events.jsonl"));
    Ok(MidRun::FinishedFirst)
}

fn spec_text(data: &Path) -> String {
    format!(
        "# Written by `tradeloom drill run kill_switch`: SMA(2/3) crosses trade almost every bar.\n\
         name: drill-kill-switch\nmode: backtest\n\
         instruments: [{{symbol: DRL, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: DRL, path: {}}}]\n\
         strategy: {{name: sma_cross, params: {{fast: 2, slow: 3, quantity: 1}}}}\n\
         execution: {{fill_model: next_open}}\n\
         account: {{initial_cash: 1000000, currency: USD}}\n",
        serde_json::to_string(&data.display().to_string()).unwrap_or_default()
    )
}

fn run_dirs(runs: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(runs)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// `tradeloom run SPEC --json` in the foreground: its status and run folder.
fn run_to_end(ctx: &Ctx, spec: &Path) -> Result<(String, PathBuf)> {
    let out = ctx
        .tradeloom()
        .arg("run")
        .arg(spec)
        .args(["--json", "--quiet"])
        .output(Duration::from_secs(300))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last: Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            DrillError::Observed(format!(
                "tradeloom run printed no JSON: {}",
                exit_text(&out)
            ))
        })?;
    let dir = last["run_dir"]
        .as_str()
        .ok_or_else(|| DrillError::Observed(format!("no run_dir in {last}")))?;
    Ok((
        last["status"].as_str().unwrap_or("?").to_string(),
        PathBuf::from(dir),
    ))
}

/// Every line of a journal, parsed; an error names the first line that is not JSON.
fn read_journal(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(DrillError::io(format!("reading {}", path.display())))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(DrillError::json(format!(
                "{} line {}: not JSON",
                path.display(),
                i + 1
            )))
        })
        .collect()
}
