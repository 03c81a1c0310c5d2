//! [`RunGate`]: the data dir's kill switch as the engine's [`KillSwitchGate`] for one run.

use std::sync::{Arc, Mutex};

use tradeloom_engine::KillSwitchGate;
use tradeloom_safety::{Engagement, KillSwitch, KillSwitchError, Scope};

/// The name recorded as `by` when the engine's drawdown limit engages a run's kill switch.
pub const ENGINE_ACTOR: &str = "engine";

/// Answers the engine from the global and the run's kill switch (re-read at most every
/// [`tradeloom_safety::kill_switch::DEFAULT_REFRESH`]), and engages the run's kill switch when
/// the engine's drawdown limit trips.
pub struct RunGate {
    kill_switch: KillSwitch,
    run_id: String,
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
            run_id,
            current: None,
            detail: String::new(),
            errors: GateErrors::default(),
        }
    }

    /// Where failures to engage the run's kill switch are kept.
    pub fn errors(&self) -> GateErrors {
        self.errors.clone()
    }
}

impl KillSwitchGate for RunGate {
    fn engaged(&mut self) -> Option<&str> {
        match self.kill_switch.is_engaged(Some(&self.run_id), None) {
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

    fn on_engine_halt(&mut self, detail: &str) {
        let result = Scope::run(&self.run_id).and_then(|scope| {
            self.kill_switch
                .engage(&scope, detail, ENGINE_ACTOR, false)
                .map(|_| ())
        });
        if let Err(e) = result
            && let Ok(mut slot) = self.errors.0.lock()
        {
            slot.get_or_insert(e);
        }
    }
}
