//! `tradeloom._tradeloom`: the native module of the `tradeloom` Python package (python/).
//!
//! It runs a spec file through the same [`tradeloom_runs::execute`] as `tradeloom run`, so a
//! run started from Python writes the same run folder (journal, hashes, metrics, report) as
//! one started from the command line. The Python side (python/tradeloom/__init__.py) turns
//! specs given as dicts and data given as frames into files. A run's CSV tables (orders, fills,
//! trades) are built as Arrow batches while its files are written and handed to
//! pyarrow without a copy ([`table::ArrowTable`]); nothing is read back from the folder.

mod indicators;
mod strategy;
mod table;
mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tradeloom_runs::spec::{
    DataSpec, ResolvedSpec, StrategySpec, UserStrategySpec, parse_spec, read_spec_text,
    resolve_with,
};
use tradeloom_runs::{ExecuteError, RunError, RunOptions, UserStrategies, execute};

use crate::strategy::{Hooks, PythonStrategy};
use crate::table::ArrowTable;

/// What a run returns to Python: `(run_id, run_dir, status, tables)`, with `tables` the
/// run's [`ArrowTable`]s by name (`orders`, `fills`, `trades`; the equity curve is read from
/// `equity.parquet` when asked for).
type Finished = (String, String, String, BTreeMap<&'static str, ArrowTable>);

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

/// A strategy object from Python: its name in the run (`python:module.Class`), its `params`
/// (JSON) and its callbacks.
struct PyStrategySource {
    name: String,
    params: serde_json::Value,
    hooks: Hooks,
}

impl PyStrategySource {
    /// The strategies a spec naming this one may use. The factory runs when the spec is
    /// resolved (a check) and again when the engine is built: each gets the same object.
    fn registry(self) -> UserStrategies {
        let name = self.name.clone();
        UserStrategies::new().portfolio(
            &name,
            move |_: &serde_json::Value, instruments: &[tradeloom_core::Instrument]| {
                Python::attach(|py| {
                    PythonStrategy::new(
                        py,
                        self.name.clone(),
                        self.hooks.clone_ref(py),
                        instruments,
                    )
                    .map_err(|e| e.to_string())
                })
            },
        )
    }
}

/// A spec file's text with `strategy:` added when it has none (a Python strategy object
/// replaces it anyway); the file's own text otherwise, so errors keep their lines.
fn with_strategy_key(text: String, name: &str) -> String {
    let Ok(yaml_serde::Value::Mapping(mut map)) = yaml_serde::from_str::<yaml_serde::Value>(&text)
    else {
        return text;
    };
    let key = yaml_serde::Value::String("strategy".to_string());
    if map.contains_key(&key) {
        return text;
    }
    let mut strategy = yaml_serde::Mapping::new();
    strategy.insert(
        yaml_serde::Value::String("name".to_string()),
        yaml_serde::Value::String(name.to_string()),
    );
    map.insert(key, yaml_serde::Value::Mapping(strategy));
    serde_json::to_string(&map).unwrap_or(text)
}

/// The spec of `source` with the bar files of `data` (symbol → file; `""` for the spec's only
/// instrument) in place of its own, and `python`'s strategy in place of the spec's.
fn load(
    source: Source,
    data: BTreeMap<String, PathBuf>,
    python: Option<PyStrategySource>,
) -> Result<ResolvedSpec, RunError> {
    let (text, place) = match source {
        Source::File(path) => (read_spec_text(&path)?, path),
        Source::Text { text, place } => (text, place),
    };
    let text = match &python {
        Some(p) => with_strategy_key(text, &p.name),
        None => text,
    };
    let mut spec = parse_spec(&text, &place)?;
    let mut user = UserStrategies::new();
    if let Some(python) = python {
        spec.strategy = StrategySpec::User(UserStrategySpec {
            name: python.name.clone(),
            params: python.params.clone(),
        });
        user = python.registry();
    }
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
    resolve_with(spec, &place, text, &user)
}

/// Runs `source` to a run folder under `data_dir`; see [`Finished`]. The
/// interpreter's lock is released while the engine runs, unless a Python strategy runs in it.
fn run(
    py: Python<'_>,
    source: Source,
    data: BTreeMap<String, PathBuf>,
    data_dir: PathBuf,
    python: Option<PyStrategySource>,
) -> PyResult<Finished> {
    let python_strategy = python.is_some();
    let go = move || {
        let spec = load(source, data, python).map_err(ExecuteError::Rejected)?;
        execute(
            spec,
            RunOptions {
                data_dir,
                tables: true,
                ..RunOptions::default()
            },
        )
    };
    let outcome = if python_strategy {
        // The engine calls the strategy on this thread: keep the lock for the whole run.
        go()
    } else {
        py.detach(go)
    };
    match outcome {
        Ok(run) => {
            let tables = run
                .tables
                .map(|t| {
                    BTreeMap::from([
                        ("orders", ArrowTable::new(t.orders)),
                        ("fills", ArrowTable::new(t.fills)),
                        ("trades", ArrowTable::new(t.trades)),
                    ])
                })
                .ok_or_else(|| {
                    PyRuntimeError::new_err(format!(
                        "run {} completed without its tables (a bug: please report it)",
                        run.run_id
                    ))
                })?;
            Ok((
                run.run_id,
                run.run_dir.display().to_string(),
                run.status.as_str().to_string(),
                tables,
            ))
        }
        Err(ExecuteError::Rejected(e)) => Err(SpecError::new_err(e.to_string())),
        Err(ExecuteError::Failed(failed)) => Err(RunFailed::new_err((
            failed.error.to_string(),
            failed.run_id,
            failed.run_dir.display().to_string(),
        ))),
    }
}

/// Runs the spec file `spec_path` to a run folder under `data_dir`, with the bar files of
/// `data` (symbol → file) in place of the spec's; returns `(run_id, run_dir, status, tables)`
/// (`tables`: `ArrowTable`s by name).
///
/// Raises `SpecError` when the spec or its data is refused (nothing written), `RunFailed`
/// (with the run id and folder) when the run started and failed.
#[pyfunction]
#[pyo3(signature = (spec_path, data_dir, data=None, strategy=None))]
fn run_spec(
    py: Python<'_>,
    spec_path: PathBuf,
    data_dir: PathBuf,
    data: Option<BTreeMap<String, PathBuf>>,
    strategy: Option<&Bound<'_, PyTuple>>,
) -> PyResult<Finished> {
    let python = strategy.map(strategy_source).transpose()?;
    run(
        py,
        Source::File(spec_path),
        data.unwrap_or_default(),
        data_dir,
        python,
    )
}

/// `(object, name, params_json, hooks)` from the Python side as a [`PyStrategySource`].
fn strategy_source(given: &Bound<'_, PyTuple>) -> PyResult<PyStrategySource> {
    let (object, name, params, hooks): (Bound<'_, PyAny>, String, String, Bound<'_, PyTuple>) =
        given.extract()?;
    let params: serde_json::Value = serde_json::from_str(&params)
        .map_err(|e| SpecError::new_err(format!("strategy.params: {e}")))?;
    Ok(PyStrategySource {
        name,
        params,
        hooks: strategy::hooks(&object, &hooks)?,
    })
}

/// [`run_spec`] of spec text (YAML or JSON); its relative paths resolve against the folder of
/// `place`, which also names the spec in errors.
#[pyfunction]
#[pyo3(signature = (text, place, data_dir, data=None, strategy=None))]
fn run_spec_text(
    py: Python<'_>,
    text: String,
    place: PathBuf,
    data_dir: PathBuf,
    data: Option<BTreeMap<String, PathBuf>>,
    strategy: Option<&Bound<'_, PyTuple>>,
) -> PyResult<Finished> {
    let python = strategy.map(strategy_source).transpose()?;
    run(
        py,
        Source::Text { text, place },
        data.unwrap_or_default(),
        data_dir,
        python,
    )
}

#[pymodule]
fn _tradeloom(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_spec, m)?)?;
    m.add_function(wrap_pyfunction!(run_spec_text, m)?)?;
    m.add_class::<ArrowTable>()?;
    m.add_class::<strategy::Context>()?;
    m.add_class::<strategy::PyBar>()?;
    m.add_class::<strategy::PyFill>()?;
    m.add_class::<strategy::PyOrder>()?;
    m.add_class::<indicators::PySma>()?;
    m.add_class::<indicators::PyEma>()?;
    m.add_class::<indicators::PyRollingStd>()?;
    m.add_class::<indicators::PyCrossover>()?;
    m.add("SpecError", m.py().get_type::<SpecError>())?;
    m.add("RunFailed", m.py().get_type::<RunFailed>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
