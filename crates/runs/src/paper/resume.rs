//! Resuming a paper run whose process died (`tradeloom run --resume RUN_ID`): its spec and its
//! folder as the resumed run takes them over.
//!
//! The journal is kept append-only: its whole lines are what the resumed run must regenerate
//! (checked line by line), except the lines a stop, failure or interruption left at its end
//! (`run_stopped`, `run_failed`, `run_interrupted` and everything after the first of them),
//! which are cut: the run goes on instead. An interruption's reason is carried into the
//! `run_resumed` line.

use std::path::{Path, PathBuf};

use tradeloom_safety::{Liveness, ProcessOwner};

use crate::error::RunError;
use crate::folder::{RunFolder, find_run};
use crate::interruption::INTERRUPTED_EVENT;
use crate::metadata::{Metadata, RunStatus};
use crate::paper::inputs::INPUTS_FILE;
use crate::paper::snapshot::Snapshot;
use crate::spec::{ResolvedSpec, parse_spec, resolve};

/// Journal events after which a run's lines are cut when it is resumed.
const ENDING_EVENTS: [&str; 3] = ["run_stopped", "run_failed", INTERRUPTED_EVENT];

/// The spec of the paper run `run_id` to resume, read from its folder (`run_spec.yaml`, with the
/// data paths resolved as when it started). Errors when the run does not exist, is not a paper
/// run, or is completed.
pub fn resume_spec(data_dir: &Path, run_id: &str) -> Result<ResolvedSpec, RunError> {
    let dir = find_run(data_dir, run_id)?;
    let meta = Metadata::read(&dir)?;
    check_resumable(&meta)?;
    let spec_path = dir.join("run_spec.yaml");
    let text = std::fs::read_to_string(&spec_path).map_err(|e| RunError::io(&spec_path, e))?;
    let mut spec = parse_spec(&text, &spec_path)?;
    // The data files as they were read when the run started (absolute), whatever the folder
    // this command runs in.
    for d in &mut spec.data {
        if let Some(info) = meta.data.iter().find(|i| i.symbol == d.symbol) {
            d.path = info.resolved_path.clone();
        }
    }
    let mut resolved = resolve(spec, &spec_path, text)?;
    resolved.path = PathBuf::from(&meta.spec.source_path);
    // The script as it was read when the run started, not relative to the run folder.
    if let (Some(script), Some(path)) = (&mut resolved.script, &meta.spec.script_path) {
        script.path = PathBuf::from(path);
    }
    Ok(resolved)
}

/// Whether a run's metadata allows resuming it.
fn check_resumable(meta: &Metadata) -> Result<(), RunError> {
    let id = &meta.run_id;
    if meta.mode != "paper" {
        return Err(RunError::Resume(format!(
            "run {id} is a {} run; only paper runs can be resumed",
            meta.mode
        )));
    }
    match meta.status {
        RunStatus::Completed => Err(RunError::Resume(format!(
            "run {id} is completed ({}); only a paper run that did not finish can be resumed",
            meta.stop_reason.as_deref().unwrap_or("stopped")
        ))),
        RunStatus::Running => match meta.owner.as_ref().map(ProcessOwner::liveness) {
            Some(Liveness::Gone(_)) => Ok(()),
            Some(Liveness::Alive) => Err(RunError::Resume(format!(
                "run {id} is still running (pid {}); stop it first",
                meta.owner.as_ref().map_or(0, |o| o.pid)
            ))),
            Some(Liveness::Unknown(why)) => Err(RunError::Resume(format!(
                "run {id} is marked running and whether its process lives cannot be told \
                 ({why}); mark it interrupted first"
            ))),
            None => Err(RunError::Resume(format!(
                "run {id} is marked running and records no process; it cannot be resumed"
            ))),
        },
        RunStatus::Failed | RunStatus::Interrupted => Ok(()),
    }
}

/// A run folder taken over by a resumed run.
pub(crate) struct Reopened {
    pub(crate) folder: RunFolder,
    /// Its metadata, `running` again and owned by this process.
    pub(crate) meta: Metadata,
    /// The journal's lines the resumed run must regenerate.
    pub(crate) journal: Vec<u8>,
    /// Why it was marked interrupted, if it was.
    pub(crate) interrupted: Option<String>,
    /// The last snapshot, if any.
    pub(crate) snapshot: Option<Snapshot>,
}

/// Takes over the folder of paper run `id` (see the module documentation).
pub(crate) fn reopen(data_dir: &Path, id: &str) -> Result<Reopened, RunError> {
    let dir = find_run(data_dir, id)?;
    let mut meta = Metadata::read(&dir)?;
    check_resumable(&meta)?;
    let inputs = dir.join(INPUTS_FILE);
    if !inputs.is_file() {
        return Err(RunError::Resume(format!(
            "run {}: {} is missing; the run cannot be resumed",
            meta.run_id, INPUTS_FILE
        )));
    }
    let journal_path = dir.join("journal.jsonl");
    let journal = match std::fs::read(&journal_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(RunError::io(&journal_path, e)),
    };
    let (journal, interrupted) = kept_lines(journal);
    let interrupted = interrupted.or_else(|| meta.error.clone());
    let snapshot = Snapshot::read(&dir)?;
    meta.status = RunStatus::Running;
    meta.error = None;
    meta.stop_reason = None;
    meta.finished_at = None;
    meta.duration_ms = None;
    meta.summary = None;
    meta.owner = Some(ProcessOwner::current());
    Ok(Reopened {
        folder: RunFolder {
            run_id: meta.run_id.clone(),
            dir,
        },
        meta,
        journal,
        interrupted,
        snapshot,
    })
}

/// The whole lines of a journal before the first line of an ending event, and the reason of an
/// interruption among the cut lines.
fn kept_lines(mut journal: Vec<u8>) -> (Vec<u8>, Option<String>) {
    let whole = journal
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    journal.truncate(whole);
    let mut at = 0;
    let mut interrupted = None;
    let mut cut = None;
    for line in journal.split_inclusive(|&b| b == b'\n') {
        // Only lines that may be an ending event are parsed (a journal has millions of lines).
        let candidate = line.windows(5).any(|w| w == b"\"run_");
        if candidate
            && let Ok(value) = serde_json::from_slice::<serde_json::Value>(line)
            && let Some(event) = value.get("event").and_then(|e| e.as_str())
            && ENDING_EVENTS.contains(&event)
        {
            if event == INTERRUPTED_EVENT {
                interrupted = value
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .map(str::to_string);
            }
            cut.get_or_insert(at);
        }
        at += line.len();
    }
    if let Some(cut) = cut {
        journal.truncate(cut);
    }
    (journal, interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_lines_and_a_partial_line_are_cut() {
        let journal = b"{\"seq\":1,\"event\":\"run_started\"}\n{\"seq\":2,\"event\":\"bar\"}\n\
{\"seq\":3,\"event\":\"run_interrupted\",\"reason\":\"killed\"}\n{\"seq\":4,\"ev"
            .to_vec();
        let (kept, why) = kept_lines(journal);
        assert_eq!(
            kept,
            b"{\"seq\":1,\"event\":\"run_started\"}\n{\"seq\":2,\"event\":\"bar\"}\n"
        );
        assert_eq!(why.as_deref(), Some("killed"));
        let (kept, why) = kept_lines(b"{\"seq\":1}\npart".to_vec());
        assert_eq!(kept, b"{\"seq\":1}\n");
        assert_eq!(why, None);
    }
}
