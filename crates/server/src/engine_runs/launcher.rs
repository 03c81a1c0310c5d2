//! `POST /runs` and `POST /runs/{id}/stop`: a spec posted as YAML text becomes a resolved spec
//! whose every file path lies inside the folders the server allows (its config folder, its data
//! dir), then a run of the process's [`tradeloom_orchestrator::EngineRuns`].
//!
//! Nothing outside those folders is ever opened for a client: a path is refused on its text
//! first (`..`, an absolute path elsewhere) and then by where it resolves (symlinks followed).
//! Errors name the spec field and the path as given, never a file's contents: errors of the
//! market data loaders (which may quote a row) are reduced to the file, the kind of problem and
//! the line.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tradeloom_orchestrator::{StartError, StopOutcome};
use tradeloom_runs::spec::{ResolvedSpec, parse_spec, resolve};
use tradeloom_runs::{Metadata, RunError, RunStatus};

use super::{StartedEngineRun, StoppedEngineRun};
use crate::AppState;
use crate::error::ApiError;

/// The name a posted spec goes by in errors (`spec.yaml:3:5: …`).
const SPEC_NAME: &str = "spec.yaml";
/// The longest spec text taken.
const MAX_SPEC_BYTES: usize = 1024 * 1024;
/// How long `POST /runs/{id}/stop` waits for the run to end.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The folders a posted spec may read from, canonical; relative paths resolve against the first.
pub(crate) struct Roots {
    pub(crate) dirs: Vec<PathBuf>,
}

impl Roots {
    pub(crate) fn of(state: &AppState) -> Result<Self, ApiError> {
        let data_dir = &state.simulator.options().data_dir;
        let internal = |e: std::io::Error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "data_dir_unusable",
                format!("the server's data dir is not usable: {e}"),
            )
        };
        std::fs::create_dir_all(data_dir).map_err(internal)?;
        let data_dir = data_dir.canonicalize().map_err(internal)?;
        let mut dirs = Vec::new();
        if let Some(config) = state.config_dir.as_deref() {
            dirs.push(config.root().to_path_buf());
        }
        dirs.push(data_dir);
        Ok(Self { dirs })
    }

    /// The file `given` names, if it lies inside one of the folders.
    pub(crate) fn resolve(&self, given: &str, want_dir: bool) -> Result<PathBuf, String> {
        let path = Path::new(given.trim());
        if path.as_os_str().is_empty() {
            return Err("is empty".to_string());
        }
        // Decided on the text first, so a refusal says nothing of files outside the folders.
        if path.components().any(|c| c == Component::ParentDir) {
            return Err("may not contain `..`".to_string());
        }
        let joined = if path.is_absolute() {
            if !self.dirs.iter().any(|d| path.starts_with(d)) {
                return Err(self.outside());
            }
            path.to_path_buf()
        } else {
            self.dirs[0].join(path)
        };
        let canonical = joined.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_string(),
            _ => "cannot be opened".to_string(),
        })?;
        if !self.dirs.iter().any(|d| canonical.starts_with(d)) {
            return Err("resolves (through a symlink) outside the allowed folders".to_string());
        }
        match (want_dir, canonical.is_dir()) {
            (false, true) => Err("is a folder, not a file".to_string()),
            (true, false) => Err("is not a folder".to_string()),
            _ => Ok(canonical),
        }
    }

    fn outside(&self) -> String {
        "is outside the folders the server reads (its config folder and data dir); give a path \
         relative to them"
            .to_string()
    }
}

fn invalid_spec(place: &str, message: &str) -> ApiError {
    // `place` is `spec.yaml[:line[:column]]`; the field is the message's leading path.
    let field = message
        .split_once(':')
        .map(|(f, _)| f.trim())
        .filter(|f| !f.contains(' '))
        .unwrap_or("spec");
    ApiError::bad_request("invalid_spec", format!("{place}: {message}")).with_details(json!({
        "field": format!("spec.{field}").trim_end_matches(".spec").to_string(),
        "place": place,
        "reason": message,
    }))
}

/// The spec text of a request, parsed and resolved, its paths checked against the roots.
fn load(text: &str, roots: &Roots) -> Result<ResolvedSpec, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_spec",
            "spec: is empty; send the run spec's YAML text",
        )
        .with_details(json!({"field": "spec"})));
    }
    if text.len() > MAX_SPEC_BYTES {
        return Err(ApiError::bad_request(
            "invalid_spec",
            format!(
                "spec: {} bytes, more than the {MAX_SPEC_BYTES} taken",
                text.len()
            ),
        )
        .with_details(json!({"field": "spec"})));
    }
    let name = Path::new(SPEC_NAME);
    let spec_error = |e: RunError| match e {
        RunError::Spec { place, message } => invalid_spec(&place, &message),
        other => invalid_spec(SPEC_NAME, &other.to_string()),
    };
    let spec = parse_spec(text, name).map_err(spec_error)?;
    let mut resolved = resolve(spec, name, text.to_string()).map_err(spec_error)?;
    for (i, source) in resolved.data.iter_mut().enumerate() {
        source.path = roots.resolve(&source.given, false).map_err(|reason| {
            ApiError::bad_request(
                "invalid_data_path",
                format!("data[{i}].path `{}` {reason}", source.given),
            )
            .with_details(json!({
                "field": format!("spec.data[{i}].path"),
                "path": source.given,
                "reason": reason,
            }))
        })?;
    }
    // A script strategy's file: inside the allowed folders like the data (never an arbitrary
    // file of the server's), checked on its text before anything is opened.
    if let Some(script) = resolved.script.as_mut() {
        script.path = roots.resolve(&script.given, false).map_err(|reason| {
            ApiError::bad_request(
                "invalid_script_path",
                format!("strategy.script `{}` {reason}", script.given),
            )
            .with_details(json!({
                "field": "spec.strategy.script",
                "path": script.given,
                "reason": reason,
            }))
        })?;
    }
    // The scan folder of a `scan_dir` feed is a path too (in the spec and its checked copy).
    let scan_path = match resolved.spec.feed.as_ref() {
        Some(tradeloom_runs::paper::FeedSpec::ScanDir(scan)) => Some(scan.path.clone()),
        _ => None,
    };
    if let Some(given) = scan_path {
        let dir = roots.resolve(&given, true).map_err(|reason| {
            ApiError::bad_request("invalid_data_path", format!("feed.path `{given}` {reason}"))
                .with_details(json!({"field": "spec.feed.path", "path": given, "reason": reason}))
        })?;
        let dir = dir.display().to_string();
        let feeds = [
            resolved.spec.feed.as_mut(),
            resolved.paper.as_mut().map(|p| &mut p.feed),
        ];
        for feed in feeds.into_iter().flatten() {
            if let tradeloom_runs::paper::FeedSpec::ScanDir(scan) = feed {
                scan.path = dir.clone();
            }
        }
    }
    Ok(resolved)
}

/// A loader's error reduced to what may be shown: the spec's data entry, the kind of problem
/// and its place — never a quoted row or header.
fn data_error(spec: &[(PathBuf, String)], e: &RunError) -> ApiError {
    let text = e.to_string();
    // Every loader error but an in-memory one starts with the file's path.
    let entry = spec
        .iter()
        .position(|(resolved, _)| text.starts_with(&resolved.display().to_string()));
    let kind = match e {
        RunError::Data(d) => match (std::error::Error::source(d), d.place()) {
            (Some(_), _) => "cannot be opened or read".to_string(),
            (None, Some(place)) => format!("has an invalid row{place}"),
            (None, None) if entry.is_some() => {
                "has no usable bar header or schema (ts, open, high, low, close, volume)"
                    .to_string()
            }
            (None, None) => "is not usable market data".to_string(),
        },
        _ => "is not usable market data".to_string(),
    };
    let (field, shown) = match entry {
        Some(i) => (format!("spec.data[{i}].path"), spec[i].1.clone()),
        None => ("spec.data".to_string(), "a data file".to_string()),
    };
    ApiError::bad_request("invalid_market_data", format!("{field} `{shown}` {kind}"))
        .with_details(json!({"field": field, "path": shown, "reason": kind}))
}

/// Starts the run of a posted spec; answers once its folder exists.
pub(crate) async fn start(state: &AppState, text: &str) -> Result<StartedEngineRun, ApiError> {
    let roots = Roots::of(state)?;
    let spec = load(text, &roots)?;
    let data: Vec<(PathBuf, String)> = spec
        .data
        .iter()
        .map(|d| (d.path.clone(), d.given.clone()))
        .collect();
    let started = state
        .engine_runs()
        .start(spec, Vec::new())
        .await
        .map_err(|e| match e {
            StartError::Rejected(RunError::Spec { place, message }) => {
                if message.starts_with("feed") {
                    ApiError::bad_request("invalid_feed", format!("{place}: {message}"))
                        .with_details(
                            json!({"field": "spec.feed", "place": place, "reason": message}),
                        )
                } else {
                    invalid_spec(&place, &message)
                }
            }
            StartError::Rejected(e @ RunError::Data(_)) => data_error(&data, &e),
            StartError::Rejected(RunError::Engine(e)) => invalid_spec(SPEC_NAME, &e.to_string()),
            StartError::Busy { running } => ApiError::new(
                StatusCode::CONFLICT,
                "too_many_runs",
                StartError::Busy { running }.to_string(),
            )
            .with_details(json!({"running": running})),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "run_not_started",
                other.to_string(),
            ),
        })?;
    Ok(StartedEngineRun {
        run_id: started.run_id,
        mode: started.mode.as_str().to_string(),
        status: "running".to_string(),
    })
}

/// Stops paper run `meta` of this process and waits (a while) for it to end.
pub(crate) async fn stop(
    state: &AppState,
    meta: &Metadata,
) -> Result<(StatusCode, StoppedEngineRun), ApiError> {
    let id = meta.run_id.as_str();
    let runs = state.engine_runs();
    let conflict = |code: &'static str, message: String| {
        ApiError::new(StatusCode::CONFLICT, code, message).with_details(json!({
            "run_id": id,
            "status": meta.status.as_str(),
            "mode": meta.mode,
        }))
    };
    let mut finished = match runs.stop(id) {
        StopOutcome::Stopping(finished) => finished,
        StopOutcome::NotPaper => {
            return Err(conflict(
                "not_a_paper_run",
                format!("run `{id}` is a backtest: it runs to its end and cannot be stopped"),
            ));
        }
        StopOutcome::NotActive if meta.status == RunStatus::Running => {
            return Err(conflict(
                "run_not_owned",
                format!(
                    "run `{id}` is not running in this server (another process runs it, or it \
                     died: `tradeloom run --resume {id}`); stop it where it runs"
                ),
            ));
        }
        StopOutcome::NotActive => {
            return Err(conflict(
                "run_finished",
                format!("run `{id}` has finished ({})", meta.status.as_str()),
            ));
        }
    };
    let ended = tokio::time::timeout(STOP_WAIT, finished.wait_for(|done| *done))
        .await
        .is_ok();
    if !ended {
        return Ok((
            StatusCode::ACCEPTED,
            StoppedEngineRun {
                run_id: id.to_string(),
                status: "stopping".to_string(),
                stop_reason: None,
            },
        ));
    }
    let dir = tradeloom_core::DataDir::new(&state.simulator.options().data_dir).run(id);
    let raw = super::read_json(&dir.join("metadata.json"))?;
    Ok((
        StatusCode::OK,
        StoppedEngineRun {
            run_id: id.to_string(),
            status: raw
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("completed")
                .to_string(),
            stop_reason: raw
                .get("stop_reason")
                .and_then(|s| s.as_str())
                .map(str::to_string),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_roots() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("bars.csv"), "x").unwrap();
        std::fs::write(outside.path().join("secret.csv"), "x").unwrap();
        std::fs::create_dir(root.path().join("scans")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            outside.path().join("secret.csv"),
            root.path().join("link.csv"),
        )
        .unwrap();
        let roots = Roots {
            dirs: vec![root.path().canonicalize().unwrap()],
        };
        assert!(roots.resolve("bars.csv", false).is_ok());
        let abs = roots.dirs[0].join("bars.csv");
        assert!(roots.resolve(abs.to_str().unwrap(), false).is_ok());
        assert!(roots.resolve("scans", true).is_ok());
        let secret = outside.path().join("secret.csv");
        for (given, reason) in [
            ("../x.csv", "`..`"),
            (secret.to_str().unwrap(), "outside"),
            ("/etc/passwd", "outside"),
            ("nope.csv", "does not exist"),
            ("scans", "folder"),
            (" ", "empty"),
        ] {
            let e = roots.resolve(given, false).unwrap_err();
            assert!(e.contains(reason), "{given}: {e}");
        }
        #[cfg(unix)]
        assert!(
            roots
                .resolve("link.csv", false)
                .unwrap_err()
                .contains("symlink")
        );
    }
}
