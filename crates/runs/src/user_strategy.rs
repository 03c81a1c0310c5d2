//! Strategies of the user's own: [`UserStrategies`] maps the names a run spec may give under
//! `strategy: {name: ..., params: {...}}` to factories that build them, and
//! [`run_with_strategies`] runs a spec with them to the same run folder the CLI writes
//! (journal, hashes, metrics, report), so `tradeloom verify` checks it like any other.
//!
//! ```no_run
//! use std::path::Path;
//! use serde::Deserialize;
//! use tradeloom_core::{Bar, Instrument, Quantity};
//! use tradeloom_engine::{Strategy, StrategyContext};
//! use tradeloom_runs::{RunOptions, UserStrategies, run_with_strategies};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Params { quantity: u32 }
//!
//! struct BuyOnce { quantity: Quantity, done: bool }
//!
//! impl Strategy for BuyOnce {
//!     fn on_bar(&mut self, ctx: &mut StrategyContext<'_>, _bar: &Bar) {
//!         if !self.done {
//!             self.done = true;
//!             ctx.buy(self.quantity);
//!         }
//!     }
//! }
//!
//! let strategies = UserStrategies::new().per_instrument(
//!     "buy_once",
//!     |p: &Params, inst: &Instrument| -> Result<BuyOnce, String> {
//!         Ok(BuyOnce { quantity: Quantity::from_int(p.quantity, inst.size_precision), done: false })
//!     },
//! );
//! let options = RunOptions { data_dir: "data".into(), ..RunOptions::default() };
//! let outcome = run_with_strategies(Path::new("spec.yaml"), &strategies, options)?;
//! println!("{}", outcome.run_dir.display());
//! # Ok::<(), tradeloom_runs::ExecuteError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tradeloom_core::Instrument;
use tradeloom_engine::{Strategies, Strategy, StrategyConfig};

use crate::runner::{ExecuteError, RunOptions, RunOutcome, execute};
use crate::spec::load_spec_with;

/// Builds a run's strategies from the spec's `params` (JSON) and the run's instruments; an
/// error is a message about the parameters.
type Factory =
    dyn Fn(&serde_json::Value, &[Instrument]) -> Result<Strategies, String> + Send + Sync;

/// The strategies of the user's own a run spec may name, each with the factory that builds it.
/// Names are those of `strategy.name` in a spec; a built-in's name cannot be taken.
#[derive(Clone, Default)]
pub struct UserStrategies {
    factories: BTreeMap<String, Arc<Factory>>,
}

impl fmt::Debug for UserStrategies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

/// `strategy.params` of a spec as the factory's parameter type (`null` when absent: a unit
/// struct or an `Option` accepts it); errors read `strategy.params: …`.
fn params<P: DeserializeOwned>(value: &serde_json::Value) -> Result<P, String> {
    P::deserialize(value).map_err(|e| format!("strategy.params: {e}"))
}

impl UserStrategies {
    /// No strategies: a spec can only name built-ins.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `name` as a per-instrument strategy: `build` makes one instance per
    /// instrument of the run from the spec's `params` (deserialized into `P`; use
    /// `#[serde(deny_unknown_fields)]` so typos are errors) and the instrument.
    pub fn per_instrument<P, S, F>(mut self, name: &str, build: F) -> Self
    where
        P: DeserializeOwned,
        S: Strategy + 'static,
        F: Fn(&P, &Instrument) -> Result<S, String> + Send + Sync + 'static,
    {
        let factory = move |value: &serde_json::Value, instruments: &[Instrument]| {
            let p: P = params(value)?;
            instruments
                .iter()
                .map(|inst| build(&p, inst).map(|s| Box::new(s) as Box<dyn Strategy>))
                .collect::<Result<Vec<_>, _>>()
                .map(Strategies::PerInstrument)
        };
        self.factories.insert(name.to_string(), Arc::new(factory));
        self
    }

    /// Registers `name` as a portfolio strategy: `build` makes the one instance that sees every
    /// instrument of the run.
    pub fn portfolio<P, S, F>(mut self, name: &str, build: F) -> Self
    where
        P: DeserializeOwned,
        S: Strategy + 'static,
        F: Fn(&P, &[Instrument]) -> Result<S, String> + Send + Sync + 'static,
    {
        let factory = move |value: &serde_json::Value, instruments: &[Instrument]| {
            let p: P = params(value)?;
            build(&p, instruments).map(|s| Strategies::Portfolio(Box::new(s)))
        };
        self.factories.insert(name.to_string(), Arc::new(factory));
        self
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// A registered name that is also a built-in's, if any (a spec naming it would get the
    /// built-in).
    pub(crate) fn shadowed_builtin(&self) -> Option<&str> {
        self.names().find(|n| StrategyConfig::NAMES.contains(n))
    }

    /// Builds strategy `name`'s instances for `instruments`; `None` if it is not registered.
    pub fn build(
        &self,
        name: &str,
        params: &serde_json::Value,
        instruments: &[Instrument],
    ) -> Option<Result<Strategies, String>> {
        self.factories
            .get(name)
            .map(|factory| factory(params, instruments))
    }
}

/// Runs the backtest spec at `spec_path`, whose `strategy.name` may be one of `strategies` (or a
/// built-in), to a run folder under `options.data_dir` — the same folder `tradeloom run`
/// writes. Errors are those of [`execute`]; an unknown name lists the built-ins and the
/// registered names.
pub fn run_with_strategies(
    spec_path: &Path,
    strategies: &UserStrategies,
    options: RunOptions<'_>,
) -> Result<RunOutcome, ExecuteError> {
    let spec = load_spec_with(spec_path, strategies).map_err(ExecuteError::Rejected)?;
    execute(spec, options)
}
