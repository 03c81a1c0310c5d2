//! [`RunGate`]: the data dir's kill switch as the engine's [`KillSwitchGate`] for one run.

use std::sync::{Arc, Mutex};

use tradeloom_engine::KillSwitchGate;
use tradeloom_safety::{Engagement, KillSwitch, KillSwitchError, Scope};

/// The name recorded as `by` when the engine's drawdown limit engages a run's kill switch.
pub const ENGINE_ACTOR: &str = "engine";

/// Answers the engine from the global kill switch, the run's, and those of the runs that
/// started it (a workflow run): every bar from the cache (re-read at most every
/// [`tradeloom_safety::kill_switch::DEFAULT_REFRESH`]), before each order from the files.
/// Engages the run's kill switch when the engine's drawdown limit trips.
pub struct RunGate {
    kill_switch: KillSwitch,
    run_id: String,
    /// The run itself first, then the runs that started it.
    run_ids: Vec<String>,
    /// Flatten on every engagement, whether or not the engagement asked for it (the spec's
    /// `risk.kill_switch.flatten`).
    flatten_default: bool,
    current: Option<Engagement>,
    detail: String,
    errors: GateErrors,
}

/// The first failure to write the run's kill switch, for the runner to report after the loop
/// (the engine's hot loop has no error path for it).
#[derive(Clone, Default)]
pub struct GateErrors(Arc<Mutex<Option<KillSwitchError>>>);

impl GateErrors {
    /// Takes the recorded failure, if any.
    pub fn take(&self) -> Option<KillSwitchError> {
        self.0.lock().ok().and_then(|mut e| e.take())
    }
}

impl RunGate {
    pub fn new(kill_switch: KillSwitch, run_id: String) -> Self {
        Self {
            kill_switch,
            run_ids: vec![run_id.clone()],
            run_id,
            flatten_default: false,
            current: None,
            detail: String::new(),
            errors: GateErrors::default(),
        }
    }

    /// Also honours the kill switches of these runs (`run:<id>`), e.g. the workflow run that
    /// started this backtest.
    pub fn with_parent_runs(mut self, parents: impl IntoIterator<Item = String>) -> Self {
        self.run_ids.extend(parents);
        self
    }

    /// Flattens positions on every engagement (the run spec's `risk.kill_switch.flatten`).
    pub fn with_flatten_default(mut self, flatten: bool) -> Self {
        self.flatten_default = flatten;
        self
    }

    /// Where failures to engage the run's kill switch are kept.
    pub fn errors(&self) -> GateErrors {
        self.errors.clone()
    }

    fn answer(&mut self, found: Option<Engagement>) -> Option<&str> {
        match found {
            Some(e) => {
                if self.current.as_ref() != Some(&e) {
                    self.detail = e.describe();
                    self.current = Some(e);
                }
                Some(&self.detail)
            }
            None => {
                self.current = None;
                None
            }
        }
    }
}

impl KillSwitchGate for RunGate {
    fn engaged(&mut self) -> Option<&str> {
        let found = match self.run_ids.as_slice() {
            // The common case without allocating: the hot loop asks every bar.
            [only] => self.kill_switch.is_engaged(Some(only), None),
            many => {
                let ids: Vec<&str> = many.iter().map(String::as_str).collect();
                self.kill_switch.is_engaged_any(&ids, None)
            }
        };
        self.answer(found)
    }

    fn engaged_now(&mut self) -> Option<&str> {
        let ids: Vec<&str> = self.run_ids.iter().map(String::as_str).collect();
        let found = self.kill_switch.engaged_now(&ids, None);
        self.answer(found)
    }

    fn flatten(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|e| e.flatten || self.flatten_default)
    }

    fn on_engine_halt(&mut self, detail: &str) {
        let result = Scope::run(&self.run_id).and_then(|scope| {
            self.kill_switch
                .engage(&scope, detail, ENGINE_ACTOR, self.flatten_default)
                .map(|_| ())
        });
        if let Err(e) = result
            && let Ok(mut slot) = self.errors.0.lock()
        {
            slot.get_or_insert(e);
        }
    }
}
