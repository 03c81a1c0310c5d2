//! The kill switch of a paper run as the engine sees it, recorded so that a resumed run sees
//! exactly the same answers.
//!
//! Live, [`PaperGate`] asks the run's [`RunGate`] (the data dir's kill switch files, exact:
//! an engage that returned is seen by the next question) and writes every change of the answer
//! to `state/inputs.jsonl` with the number of the question it answered, before the engine acts
//! on it. Replaying, it answers from those records instead. The engine asks the same questions
//! in the same order for the same inputs, so the answers land where they did.
//!
//! Live, most questions are answered without asking, as a backtest's engine does with the
//! kill switch's [`GateEpoch`]: while the data dir's generation counter holds (and at most
//! [`GateEpoch::recheck`] questions in a row) the last answer stands. Such questions are still
//! counted, so the numbers match those of a replay, which answers every question.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tradeloom_engine::{GateEpoch, KillSwitchGate};

use crate::error::RunError;
use crate::kill_switch::RunGate;
use crate::paper::inputs::{Input, InputLog};

/// The answer of the kill switch: why orders stop (`None`: they pass) and whether to flatten.
type Answer = (Option<String>, bool);

/// Where the answers come from.
enum Source {
    /// Recorded answers by question number (a resumed run catching up).
    Replay(VecDeque<(u64, Answer)>),
    /// The data dir's kill switch; changes are recorded.
    Live(Box<RunGate>),
}

struct Core {
    source: Source,
    /// Questions asked so far.
    calls: u64,
    answer: Answer,
    log: Arc<Mutex<InputLog>>,
    /// The first failure to record a change (the run fails on it).
    error: Option<RunError>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    /// The live kill switch's generation counter (`None` replaying).
    fn epoch(&self) -> Option<GateEpoch> {
        match &self.source {
            Source::Live(gate) => gate.epoch(),
            Source::Replay(_) => None,
        }
    }

    fn ask(&mut self, fresh: bool) {
        self.calls += 1;
        match &mut self.source {
            Source::Replay(script) => {
                while let Some((call, _)) = script.front() {
                    if *call > self.calls {
                        break;
                    }
                    if let Some((_, answer)) = script.pop_front() {
                        self.answer = answer;
                    }
                }
            }
            Source::Live(gate) => {
                let now = if fresh {
                    gate.engaged_now().map(str::to_string)
                } else {
                    gate.engaged().map(str::to_string)
                };
                let answer = (now, gate.flatten());
                if answer != self.answer {
                    let record = Input::Gate {
                        call: self.calls,
                        engaged: answer.0.clone(),
                        flatten: answer.1,
                    };
                    if let Err(e) = lock(&self.log).write(&record)
                        && self.error.is_none()
                    {
                        self.error = Some(e);
                    }
                    self.answer = answer;
                }
            }
        }
    }
}

/// A handle on the gate the engine holds: the runner peeks at it and switches it to live.
#[derive(Clone)]
pub struct GateHandle(Arc<Mutex<Core>>, Arc<AtomicBool>);

impl GateHandle {
    /// A gate answering from recorded changes (`Input::Gate` records, in order).
    pub fn replaying(recorded: &[Input], log: Arc<Mutex<InputLog>>) -> Self {
        let script = recorded
            .iter()
            .filter_map(|i| match i {
                Input::Gate {
                    call,
                    engaged,
                    flatten,
                } => Some((*call, (engaged.clone(), *flatten))),
                _ => None,
            })
            .collect();
        Self::with(Source::Replay(script), log)
    }

    /// A gate asking `gate` and recording changes to `log`.
    pub fn live(gate: RunGate, log: Arc<Mutex<InputLog>>) -> Self {
        Self::with(Source::Live(Box::new(gate)), log)
    }

    fn with(source: Source, log: Arc<Mutex<InputLog>>) -> Self {
        Self(
            Arc::new(Mutex::new(Core {
                source,
                calls: 0,
                answer: (None, false),
                log,
                error: None,
            })),
            Arc::new(AtomicBool::new(false)),
        )
    }

    /// Switches a replaying gate to `gate` (the question count and the last answer carry on);
    /// errors if recorded answers were not all used (the inputs do not fit the engine).
    pub fn go_live(&self, gate: RunGate) -> Result<(), String> {
        let mut core = lock(&self.0);
        if let Source::Replay(script) = &core.source
            && let Some((call, _)) = script.front()
        {
            return Err(format!(
                "a recorded kill switch change at question {call} was never asked for (the \
                 engine asked {} questions)",
                core.calls
            ));
        }
        core.source = Source::Live(Box::new(gate));
        Ok(())
    }

    /// Whether the kill switch's answer differs from the engine's last one (asked while the feed
    /// is quiet; does not count as a question). When it does, the engine's next question is
    /// asked, whatever the generation counter says (a state file edited by hand moves none).
    pub fn changed(&self) -> bool {
        let mut core = lock(&self.0);
        let Source::Live(gate) = &mut core.source else {
            return false;
        };
        let now = gate.engaged().map(str::to_string);
        let flatten = gate.flatten();
        let changed = (now, flatten) != core.answer;
        if changed {
            self.1.store(true, Ordering::Relaxed);
        }
        changed
    }

    /// The first failure to record a change.
    pub fn take_error(&self) -> Option<RunError> {
        lock(&self.0).error.take()
    }

    /// The gate for the engine.
    pub fn engine_gate(&self) -> Box<dyn KillSwitchGate> {
        Box::new(EngineGate {
            core: self.clone(),
            detail: None,
            epoch: None,
            seen: 0,
            skips: 0,
            unasked: 0,
        })
    }

    /// Passes the engine's own halt (its drawdown limit) on to the live kill switch.
    fn on_engine_halt(&self, detail: &str) {
        let core = &mut *lock(&self.0);
        if let Source::Live(gate) = &mut core.source {
            // The inputs that led to the halt reach their file before the kill switch's
            // engagement reaches its own.
            if let Err(e) = lock(&core.log).flush()
                && core.error.is_none()
            {
                core.error = Some(e);
            }
            gate.on_engine_halt(detail);
        }
    }
}

/// What the engine holds: asks the shared core and keeps a copy of the answer to lend out.
struct EngineGate {
    core: GateHandle,
    detail: Option<String>,
    /// The live kill switch's generation counter, once a question was asked live.
    epoch: Option<GateEpoch>,
    /// The counter's value loaded before the last question asked.
    seen: u64,
    /// Questions still answered without asking while the counter holds.
    skips: u32,
    /// Questions answered without asking since the last asked (counted then).
    unasked: u64,
}

impl EngineGate {
    fn ask(&mut self, fresh: bool) -> Option<&str> {
        if !fresh && let Some(epoch) = self.epoch {
            // As the engine does with a backtest's gate (`Engine::poll_gate`): one load on most
            // bars, the answer standing while nothing that could change it happened.
            let now = epoch.counter.load(Ordering::Acquire);
            if now == self.seen && self.skips > 0 && !self.core.1.load(Ordering::Relaxed) {
                self.skips -= 1;
                self.unasked += 1;
                return self.detail.as_deref();
            }
            self.seen = now;
        }
        self.core.1.store(false, Ordering::Relaxed);
        let mut core = lock(&self.core.0);
        core.calls += std::mem::take(&mut self.unasked);
        core.ask(fresh);
        if core.answer.0 != self.detail {
            self.detail.clone_from(&core.answer.0);
        }
        if !fresh {
            let before = self.epoch.map(|e| e.counter);
            self.epoch = core.epoch();
            self.skips = match self.epoch {
                // The value loaded before this answer was of this very counter.
                Some(epoch) if before.is_some_and(|b| std::ptr::eq(b, epoch.counter)) => {
                    epoch.recheck.saturating_sub(1)
                }
                // Another counter now (or none): asked again next time, after loading it.
                _ => 0,
            };
        }
        drop(core);
        self.detail.as_deref()
    }
}

impl KillSwitchGate for EngineGate {
    fn engaged(&mut self) -> Option<&str> {
        self.ask(false)
    }

    fn engaged_now(&mut self) -> Option<&str> {
        self.ask(true)
    }

    fn flatten(&self) -> bool {
        lock(&self.core.0).answer.1
    }

    fn on_engine_halt(&mut self, detail: &str) {
        self.core.on_engine_halt(detail);
    }
}
