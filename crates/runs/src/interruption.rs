//! Runs whose process died: a run folder still `running` whose recorded owner
//! ([`tradeloom_safety::ProcessOwner`]) is gone was interrupted (SIGKILL, an OOM kill, a crash).
//! [`mark_interrupted_runs`] marks such runs `interrupted`: a partial last journal line (what the
//! killed writer had half written) is cut off, a `run_interrupted` line with the reason is
//! appended to the journal, and `metadata.json` gets the status and the reason as its error.
//!
//! The runs looked at are those of the index of running runs ([`crate::running`]), not every
//! run of the data dir.
//!
//! Runs with no recorded owner (written before owners were recorded) and runs owned by a process
//! on another host are left alone: nothing here can tell whether they still run.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tradeloom_safety::Liveness;

use crate::error::RunError;
use crate::journal::cut_to_last_line;
use crate::metadata::{Metadata, RunStatus};

/// The journal event of an interruption.
pub const INTERRUPTED_EVENT: &str = "run_interrupted";

/// A lock older than this was left by a process that died while marking: taken over.
const STALE_LOCK: Duration = Duration::from_secs(60);

/// A run marked interrupted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterruptedRun {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub reason: String,
}

/// Marks every run under `data_dir` that is `running` with a dead owner `interrupted` (see the
/// module documentation) and returns them. A run that cannot be marked (an unwritable folder)
/// is logged and skipped; it is tried again next time.
pub fn mark_interrupted_runs(data_dir: &Path) -> Result<Vec<InterruptedRun>, RunError> {
    let mut marked = Vec::new();
    for dir in crate::running::candidates(data_dir)? {
        let meta = match Metadata::read(&dir) {
            Ok(meta) => meta,
            // Removed, or not yet written by a run that is starting: nothing to mark.
            Err(_) if !dir.join("metadata.json").exists() => {
                if !dir.exists() {
                    crate::running::unmark(&dir);
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(run_dir = %dir.display(), error = %e, "run metadata unreadable");
                continue;
            }
        };
        if meta.status != RunStatus::Running {
            // Left by a process that died between writing the metadata and removing it.
            crate::running::unmark(&dir);
            continue;
        }
        let Some(owner) = &meta.owner else { continue };
        let Liveness::Gone(why) = owner.liveness() else {
            continue;
        };
        let reason = format!("interrupted: {why} (host {})", owner.host);
        match mark(&dir, &reason) {
            Ok(true) => {
                tracing::warn!(run_id = %meta.run_id, reason = %reason, "run interrupted");
                marked.push(InterruptedRun {
                    run_id: meta.run_id.clone(),
                    run_dir: dir,
                    reason,
                });
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(run_id = %meta.run_id, error = %e, "cannot mark the run interrupted")
            }
        }
    }
    Ok(marked)
}

/// Marks one run; `false` when another process did it first.
fn mark(dir: &Path, reason: &str) -> Result<bool, RunError> {
    let lock_path = dir.join(".interrupt.lock");
    let Some(_lock) = Lock::take(&lock_path)? else {
        return Ok(false);
    };
    // Read again under the lock: another process may have marked it meanwhile.
    let mut meta = Metadata::read(dir)?;
    if meta.status != RunStatus::Running {
        return Ok(false);
    }
    let journal = dir.join("journal.jsonl");
    if journal.is_file() {
        append_interruption(&journal, reason).map_err(|e| RunError::io(&journal, e))?;
    }
    meta.status = RunStatus::Interrupted;
    meta.error = Some(reason.to_string());
    meta.write(dir)?;
    Ok(true)
}

/// Cuts a partial last line, then appends `{"seq":N+1,"event":"run_interrupted",...}`.
fn append_interruption(path: &Path, reason: &str) -> std::io::Result<()> {
    let mut file = File::options().read(true).write(true).open(path)?;
    let before = file.metadata()?.len();
    let kept = cut_to_last_line(&mut file)?;
    let seq = last_seq(&mut file, kept)?;
    let event = serde_json::json!({
        "seq": seq + 1,
        "event": INTERRUPTED_EVENT,
        "reason": reason,
        "dropped_partial_bytes": before - kept,
    });
    let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.seek(SeekFrom::End(0))?;
    file.write_all(&line)?;
    file.sync_data()
}

/// The `seq` of the last line of a journal that ends at `len` with a newline (0 when empty).
fn last_seq(file: &mut File, len: u64) -> std::io::Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    // Read backwards until the newline before the last line (or the file's start).
    const BLOCK: u64 = 8192;
    let body_end = len - 1; // the last line's own newline
    let mut start = body_end;
    let mut tail = Vec::new();
    loop {
        let from = start.saturating_sub(BLOCK);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        if let Some(i) = tail.iter().rposition(|&b| b == b'\n') {
            tail.drain(..=i);
            break;
        }
        if from == 0 {
            break;
        }
        start = from;
    }
    let line: serde_json::Value = serde_json::from_slice(&tail).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the last journal line is not JSON: {e}"),
        )
    })?;
    Ok(line["seq"].as_u64().unwrap_or(0))
}

/// An exclusive marker file, removed on drop.
struct Lock(PathBuf);

impl Lock {
    fn take(path: &Path) -> Result<Option<Self>, RunError> {
        for _ in 0..2 {
            match File::options().write(true).create_new(true).open(path) {
                Ok(_) => return Ok(Some(Self(path.to_path_buf()))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if !stale {
                        return Ok(None);
                    }
                    let _ = std::fs::remove_file(path);
                }
                Err(e) => return Err(RunError::io(path, e)),
            }
        }
        Ok(None)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_seq_of_journals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let long = "x".repeat(20_000);
        for (text, expected) in [
            (String::new(), 0),
            ("{\"seq\":1}\n".to_string(), 1),
            ("{\"seq\":1}\n{\"seq\":2,\"e\":\"a\"}\n".to_string(), 2),
            (
                format!("{{\"seq\":1}}\n{{\"seq\":2,\"e\":\"{long}\"}}\n"),
                2,
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let mut f = File::open(&path).unwrap();
            assert_eq!(last_seq(&mut f, text.len() as u64).unwrap(), expected);
        }
    }

    #[test]
    fn a_torn_journal_gets_its_partial_line_cut_and_the_event_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, "{\"seq\":1,\"event\":\"a\"}\n{\"seq\":2,\"ev").unwrap();
        append_interruption(&path, "interrupted: gone").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[1]["seq"], 2);
        assert_eq!(lines[1]["event"], INTERRUPTED_EVENT);
        assert_eq!(lines[1]["reason"], "interrupted: gone");
        assert_eq!(lines[1]["dropped_partial_bytes"], 12);
    }
}
