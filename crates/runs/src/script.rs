//! `strategy: {script, class, params, limits, batch}` of a run spec — a sandboxed Python
//! script (the other forms are in [`crate::spec::StrategySpec`]) — and the script strategies of
//! a run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tradeloom_engine::{Strategies, Strategy};
use tradeloom_sandbox::{
    DEFAULT_MAX_BATCH, EffectiveLimits, FailureSlot, Limits, Lookahead, SandboxPolicy,
    ScriptOptions, ScriptSpec, ScriptStrategy,
};

use crate::error::RunError;
use crate::spec::{ResolvedSpec, StrategySpec};

/// `strategy: {script: …, class: …}`: a Python class run in a sandboxed child process.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptStrategySpec {
    /// The Python file, relative to the spec file.
    pub script: String,
    /// The class to instantiate (a subclass of `tradeloom.sandbox.Strategy`).
    pub class: String,
    /// Keyword arguments of the class (any JSON values).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Resource limits of the child (see the "Sandboxed scripts" page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Most bars sent to the script in one round trip (default 2048; 1 turns batching off —
    /// the results are the same either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
}

/// A script strategy checked: its file resolved, its limits effective.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedScript {
    /// As the spec wrote it.
    pub given: String,
    /// Resolved against the spec's folder, not yet checked to exist (a server replaces it with
    /// the path it checked against its allowed folders before anything opens it).
    pub path: PathBuf,
    pub class: String,
    pub params: serde_json::Value,
    pub limits: EffectiveLimits,
    pub max_batch: usize,
}

/// Checks `strategy: {script: …}`; the message names the field.
pub(crate) fn resolve_script(
    spec: &ScriptStrategySpec,
    spec_dir: &Path,
) -> Result<ResolvedScript, (&'static str, String)> {
    if spec.script.trim().is_empty() {
        return Err(("script", "strategy.script: must not be empty".to_string()));
    }
    if !spec.script.ends_with(".py") {
        return Err((
            "script",
            format!(
                "strategy.script: `{}` is not a Python file (expected a .py file)",
                spec.script
            ),
        ));
    }
    let is_identifier = !spec.class.is_empty()
        && !spec.class.starts_with(|c: char| c.is_ascii_digit())
        && spec.class.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !is_identifier {
        return Err((
            "class",
            format!(
                "strategy.class: `{}` is not a Python class name",
                spec.class
            ),
        ));
    }
    let limits = spec
        .limits
        .unwrap_or_default()
        .effective()
        .map_err(|e| ("limits", format!("strategy.{e}")))?;
    let max_batch = match spec.batch {
        None => DEFAULT_MAX_BATCH,
        Some(0) => {
            return Err((
                "batch",
                "strategy.batch: must be at least 1 (1 turns batching off)".to_string(),
            ));
        }
        Some(n) => (n as usize).min(65_536),
    };
    let given = PathBuf::from(&spec.script);
    let path = if given.is_absolute() {
        given
    } else {
        spec_dir.join(given)
    };
    Ok(ResolvedScript {
        given: spec.script.clone(),
        path,
        class: spec.class.clone(),
        params: serde_json::Value::Object(spec.params.clone()),
        limits,
        max_batch,
    })
}

/// What the runner watches while script strategies run: the bars ahead (backtests) and the
/// failure that stops the run.
#[derive(Clone, Debug)]
pub struct ScriptRun {
    pub lookahead: Option<Arc<Lookahead>>,
    pub failure: Arc<FailureSlot>,
}

/// One strategy per instrument: built-ins, or a sandboxed child each for a script (started
/// here: a missing interpreter, a missing class or an exception while loading rejects the
/// spec).
pub(crate) fn build_strategies(
    spec: &ResolvedSpec,
    lookahead: bool,
    protected: &[PathBuf],
) -> Result<(Strategies, Option<ScriptRun>), RunError> {
    let line = spec
        .text
        .lines()
        .position(|l| l.contains("script:"))
        .map_or(String::new(), |i| format!(":{}", i + 1));
    let reject = |message: String| RunError::Spec {
        place: format!("{}{line}", spec.path.display()),
        message,
    };
    match (&spec.spec.strategy, &spec.script) {
        (StrategySpec::Builtin(_) | StrategySpec::User(_), _) => {
            Ok((spec.build_strategies()?, None))
        }
        (StrategySpec::Script(_), Some(script)) => {
            if !script.path.is_file() {
                return Err(reject(format!(
                    "strategy.script: `{}` does not exist or is not a file (paths are relative \
                     to the spec file)",
                    script.given
                )));
            }
            let run = ScriptRun {
                lookahead: lookahead.then(|| Arc::new(Lookahead::default())),
                failure: Arc::new(FailureSlot::default()),
            };
            let policy = SandboxPolicy::from_env();
            let mut strategies: Vec<Box<dyn Strategy>> = Vec::new();
            for inst in &spec.instruments {
                let options = ScriptOptions {
                    policy: policy.clone(),
                    limits: script.limits,
                    lookahead: run.lookahead.clone(),
                    failure: run.failure.clone(),
                    max_batch: script.max_batch,
                };
                let child = ScriptStrategy::start(
                    &ScriptSpec {
                        script: &script.path,
                        display: &script.given,
                        limits: script.limits,
                        protected,
                    },
                    &script.class,
                    &script.params,
                    inst,
                    options,
                )
                .map_err(|e| reject(format!("strategy.script `{}`: {e}", script.given)))?;
                strategies.push(Box::new(child));
            }
            Ok((Strategies::PerInstrument(strategies), Some(run)))
        }
        (StrategySpec::Script(s), None) => Err(reject(format!(
            "strategy.script `{}`: the spec was not resolved",
            s.script
        ))),
    }
}
