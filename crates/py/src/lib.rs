//! `tradeloom._tradeloom`: the native module of the `tradeloom` Python package (python/).
//!
//! It runs a spec file through the same [`tradeloom_runs::execute`] as `tradeloom run`, so a
//! run started from Python writes the same run folder (journal, hashes, metrics, report) as
//! one started from the command line. The Python side (python/tradeloom/__init__.py) turns
//! specs given as dicts and data given as frames into files, and reads the run folder's tables
//! back as Arrow tables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tradeloom_runs::spec::{DataSpec, ResolvedSpec, parse_spec, read_spec_text, resolve};
use tradeloom_runs::{ExecuteError, RunError, RunOptions, execute};

pyo3::create_exception!(
    _tradeloom,
    SpecError,
    PyValueError,
    "The spec or its data was refused before the run started: nothing was written."
);
pyo3::create_exception!(
    _tradeloom,
    RunFailed,
    PyRuntimeError,
    "The run started and failed: its folder is marked failed (args: message, run_id, run_dir)."
);

/// Where a spec comes from: a file, or text (a dict spec as JSON) whose relative paths resolve
/// against `place`'s folder.
enum Source {
    File(PathBuf),
    Text { text: String, place: PathBuf },
}

/// The spec of `source` with the bar files of `data` (symbol → file; `""` for the spec's only
/// instrument) in place of its own.
fn load(source: Source, data: BTreeMap<String, PathBuf>) -> Result<ResolvedSpec, RunError> {
    let (text, place) = match source {
        Source::File(path) => (read_spec_text(&path)?, path),
        Source::Text { text, place } => (text, place),
    };
    let mut spec = parse_spec(&text, &place)?;
    let refuse = |message: String| RunError::Spec {
        place: place.display().to_string(),
        message,
    };
    for (symbol, path) in data {
        // `""`: the bars of the spec's only instrument.
        let symbol = match (symbol.is_empty(), spec.instruments.as_slice()) {
            (false, _) => symbol,
            (true, [only]) => only.symbol.clone(),
            (true, all) => {
                return Err(refuse(format!(
                    "data: the spec has {} instruments; give the frames as a dict by symbol",
                    all.len()
                )));
            }
        };
        if !spec.instruments.iter().any(|i| i.symbol == symbol) {
            return Err(refuse(format!(
                "data: `{symbol}` is not an instrument of the spec"
            )));
        }
        let path = path.display().to_string();
        match spec.data.iter_mut().find(|d| d.symbol == symbol) {
            Some(entry) => {
                entry.path = path;
                entry.format = None;
            }
            None => spec.data.push(DataSpec {
                symbol,
                path,
                format: None,
            }),
        }
    }
    resolve(spec, &place, text)
}

/// Runs `source` to a run folder under `data_dir`; `(run_id, run_dir, status)`. The
/// interpreter's lock is released while the engine runs.
fn run(
    py: Python<'_>,
    source: Source,
    data: BTreeMap<String, PathBuf>,
    data_dir: PathBuf,
) -> PyResult<(String, String, String)> {
    let outcome = py.detach(|| {
        let spec = load(source, data).map_err(ExecuteError::Rejected)?;
        execute(
            spec,
            RunOptions {
                data_dir,
                ..RunOptions::default()
            },
        )
    });
    match outcome {
        Ok(run) => Ok((
            run.run_id,
            run.run_dir.display().to_string(),
            run.status.as_str().to_string(),
        )),
        Err(ExecuteError::Rejected(e)) => Err(SpecError::new_err(e.to_string())),
        Err(ExecuteError::Failed(failed)) => Err(RunFailed::new_err((
            failed.error.to_string(),
            failed.run_id,
            failed.run_dir.display().to_string(),
        ))),
    }
}

/// Runs the spec file `spec_path` to a run folder under `data_dir`, with the bar files of
/// `data` (symbol → file) in place of the spec's; returns `(run_id, run_dir, status)`.
///
/// Raises `SpecError` when the spec or its data is refused (nothing written), `RunFailed`
/// (with the run id and folder) when the run started and failed.
#[pyfunction]
#[pyo3(signature = (spec_path, data_dir, data=None))]
fn run_spec(
    py: Python<'_>,
    spec_path: PathBuf,
    data_dir: PathBuf,
    data: Option<BTreeMap<String, PathBuf>>,
) -> PyResult<(String, String, String)> {
    run(
        py,
        Source::File(spec_path),
        data.unwrap_or_default(),
        data_dir,
    )
}

/// [`run_spec`] of spec text (YAML or JSON); its relative paths resolve against the folder of
/// `place`, which also names the spec in errors.
#[pyfunction]
#[pyo3(signature = (text, place, data_dir, data=None))]
fn run_spec_text(
    py: Python<'_>,
    text: String,
    place: PathBuf,
    data_dir: PathBuf,
    data: Option<BTreeMap<String, PathBuf>>,
) -> PyResult<(String, String, String)> {
    run(
        py,
        Source::Text { text, place },
        data.unwrap_or_default(),
        data_dir,
    )
}

#[pymodule]
fn _tradeloom(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_spec, m)?)?;
    m.add_function(wrap_pyfunction!(run_spec_text, m)?)?;
    m.add("SpecError", m.py().get_type::<SpecError>())?;
    m.add("RunFailed", m.py().get_type::<RunFailed>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
