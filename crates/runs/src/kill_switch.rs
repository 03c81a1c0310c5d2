//! [`RunGate`]: the data dir's kill switch as the engine's [`KillSwitchGate`] for one run.

use std::sync::{Arc, Mutex};

use tradeloom_engine::{GateEpoch, KillSwitchGate};
use tradeloom_safety::{Engagement, KillSwitch, KillSwitchError, REVALIDATE_EVERY, Scope, Watch};

/// The name recorded as `by` when the engine's drawdown limit engages a run's kill switch.
pub const ENGINE_ACTOR: &str = "engine";

/// Bars the engine goes at most without asking the gate while the shared generation counter
/// stays put (see [`KillSwitchGate::epoch`]); the watch revalidates this many times more
/// often per check, so the files are still looked at every [`REVALIDATE_EVERY`] bars.
pub const GATE_RECHECK: u32 = 64;

/// Answers the engine from the global kill switch, the run's, and those of the runs that
/// started it (a workflow run), through a [`Watch`]: every bar and before each order, one atomic
/// load of the data dir's shared generation counter while nothing changed, the state files
/// re-read when it moved; exact either way (an `engage` that returned, in any process, is seen
/// by the next check). Engages the run's kill switch when the engine's drawdown limit trips.
pub struct RunGate {
    watch: Watch,
    run_id: String,
    /// Flatten on every engagement, whether or not the engagement asked for it (the spec's
    /// `risk.kill_switch.flatten`).
    flatten_default: bool,
    /// The current engagement described for the engine, rebuilt only when it changes.
    detail: Option<String>,
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
            watch: kill_switch
                .watch([run_id.as_str()], None)
                .revalidating_every(REVALIDATE_EVERY / GATE_RECHECK),
            run_id,
            flatten_default: false,
            detail: None,
            errors: GateErrors::default(),
        }
    }

    /// Also honours the kill switches of these runs (`run:<id>`), e.g. the workflow run that
    /// started this backtest.
    pub fn with_parent_runs(mut self, parents: impl IntoIterator<Item = String>) -> Self {
        for id in parents {
            self.watch.cover_run(&id);
        }
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

    #[cold]
    fn describe(&mut self) {
        let described = self.watch.engagement().map(Engagement::describe);
        if described != self.detail {
            self.detail = described;
        }
    }
}

impl KillSwitchGate for RunGate {
    #[inline]
    fn engaged(&mut self) -> Option<&str> {
        if self.watch.poll() {
            self.describe();
        }
        self.detail.as_deref()
    }

    /// The same exact check as [`RunGate::engaged`]: there is no cache to bypass.
    #[inline]
    fn engaged_now(&mut self) -> Option<&str> {
        self.engaged()
    }

    /// The data dir's shared generation counter: every engage and release bumps it before it
    /// returns, and [`RunGate::engaged`] answers from the state files read after loading it.
    fn epoch(&self) -> Option<GateEpoch> {
        self.watch.generation_counter().map(|counter| GateEpoch {
            counter,
            recheck: GATE_RECHECK,
        })
    }

    fn flatten(&self) -> bool {
        self.watch
            .engagement()
            .is_some_and(|e| e.flatten || self.flatten_default)
    }

    fn on_engine_halt(&mut self, detail: &str) {
        let result = Scope::run(&self.run_id).and_then(|scope| {
            self.watch
                .kill_switch()
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
