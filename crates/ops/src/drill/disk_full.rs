//! Drill `disk_full`: `tradeloom run` with the file size limit (`ulimit -f`) below what the run
//! writes, SIGXFSZ ignored so that writes fail with EFBIG as on a full disk. Asserts a non-zero
//! exit naming the file that could not be written, a journal of complete JSON lines only, and
//! metadata.json marked failed with the same error. A control run without the limit completes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::ctx::Ctx;
use super::error::DrillError;
use super::process::{Tradeloom, command_failed, exit_text, sh_quote, shell};

type Result<T> = std::result::Result<T, DrillError>;

const BARS: u64 = 20_000;
/// The file size limit in `ulimit -f` blocks (512 or 1024 bytes, depending on the shell):
/// far below the run's journal (several MB for these bars) and above metadata.json.
const LIMIT_BLOCKS: u64 = 1024;

const ARTIFACTS: &[&str] = &[
    "journal.jsonl",
    "orders.csv",
    "fills.csv",
    "trades.csv",
    "equity.parquet",
];

/// Runs the drill.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let data = ctx.work.join("bars.csv");
    let out = ctx
        .tradeloom()
        .args(["data", "synth", "--symbol", "DRL", "--timeframe", "1m"])
        .arg("--bars")
        .arg(BARS.to_string())
        .arg("--out")
        .arg(&data)
        .output(Duration::from_secs(60))?;
    if !out.status.success() {
        return Err(command_failed("tradeloom data synth", &out));
    }
    let spec = ctx.work.join("spec.yaml");
    std::fs::write(&spec, spec_text(&data)).map_err(DrillError::io("writing the drill's spec"))?;

    let control_dir = ctx.work.join("control");
    let out = Tradeloom::new(&ctx.exe)
        .arg("--data-dir")
        .arg(&control_dir)
        .arg("run")
        .arg(&spec)
        .args(["--json", "--quiet"])
        .output(Duration::from_secs(120))?;
    let journal_bytes = only_run_dir(&control_dir)
        .ok()
        .and_then(|d| std::fs::metadata(d.join("journal.jsonl")).ok())
        .map_or(0, |m| m.len());
    ctx.require(
        "control run without the limit completes",
        "exit 0 and a journal larger than the limit",
        format!("{}; journal {journal_bytes} bytes", out.status),
        out.status.success() && journal_bytes > LIMIT_BLOCKS * 1024,
    )?;

    let script = format!(
        "trap '' XFSZ; ulimit -f {LIMIT_BLOCKS} && exec {} --data-dir {} run {} --json --quiet",
        sh_quote(&ctx.exe.display().to_string()),
        sh_quote(&ctx.data().display().to_string()),
        sh_quote(&spec.display().to_string()),
    );
    let out = shell(&script, Duration::from_secs(120))?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let named = ARTIFACTS.iter().find(|f| stderr.contains(*f)).copied();
    ctx.check(
        "the run fails with a clear error",
        "non-zero exit; stderr names the artifact that could not be written and the OS error",
        exit_text(&out),
        !out.status.success()
            && out.status.code().is_some()
            && named.is_some()
            && stderr.contains("File too large"),
    );

    let dir = only_run_dir(&ctx.data())?;
    let journal = dir.join("journal.jsonl");
    let bytes = std::fs::read(&journal)
        .map_err(DrillError::io(format!("reading {}", journal.display())))?;
    let (lines, bad) = check_lines(&bytes);
    ctx.check(
        "journal.jsonl holds complete lines only",
        "every line complete, parseable JSON, numbered 1..n; the file ends with a newline",
        format!(
            "{} bytes, {lines} lines, {}",
            bytes.len(),
            bad.clone().unwrap_or_else(|| "all complete".to_string())
        ),
        bad.is_none() && lines > 0,
    );
    ctx.check(
        "the journal stops early",
        format!("fewer bytes than the control run's journal ({journal_bytes})"),
        format!("{} bytes", bytes.len()),
        (bytes.len() as u64) < journal_bytes,
    );

    let meta: Value = serde_json::from_slice(
        &std::fs::read(dir.join("metadata.json"))
            .map_err(DrillError::io("reading metadata.json"))?,
    )
    .map_err(DrillError::json("metadata.json is not JSON"))?;
    let error = meta["error"].as_str().unwrap_or("");
    ctx.check(
        "metadata.json says failed",
        "status failed, with an error naming the file",
        format!("status {}, error {:?}", meta["status"], error),
        meta["status"] == "failed" && named.is_some_and(|f| error.contains(f)),
    );
    Ok(())
}

/// Lines of a journal and the first problem: a line that is not JSON, a `seq` out of order,
/// or a last line without its newline.
fn check_lines(bytes: &[u8]) -> (usize, Option<String>) {
    let text = String::from_utf8_lossy(bytes);
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        count += 1;
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v["seq"].as_u64() == Some(i as u64 + 1) => {}
            Ok(v) => return (count, Some(format!("line {} has seq {}", i + 1, v["seq"]))),
            Err(e) => return (count, Some(format!("line {} is not JSON: {e}", i + 1))),
        }
    }
    if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
        return (
            count,
            Some("the last line has no newline (torn)".to_string()),
        );
    }
    (count, None)
}

fn only_run_dir(data_dir: &Path) -> Result<PathBuf> {
    let runs = data_dir.join("runs");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
        .map_err(DrillError::io(format!("listing {}", runs.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(DrillError::Observed(format!(
            "expected one run folder in {}, found {}",
            runs.display(),
            other.len()
        ))),
    }
}

fn spec_text(data: &Path) -> String {
    format!(
        "# Written by `tradeloom drill run disk_full`.\n\
         name: drill-disk-full\nmode: backtest\n\
         instruments: [{{symbol: DRL, price_precision: 2, size_precision: 0}}]\n\
         data: [{{symbol: DRL, path: {}}}]\n\
         strategy: {{name: sma_cross, params: {{fast: 2, slow: 3, quantity: 1}}}}\n\
         execution: {{fill_model: next_open}}\n\
         account: {{initial_cash: 1000000, currency: USD}}\n",
        serde_json::to_string(&data.display().to_string()).unwrap_or_default()
    )
}
