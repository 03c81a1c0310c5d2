//! [`KillSwitchGate`]: how something outside the engine — an operator's kill switch kept in
//! files — stops new orders. The engine stays pure: it asks the gate, it never reads a file.

use std::sync::atomic::AtomicU64;

/// What lets the engine skip asking its gate on most bars: a counter that every change of the
/// gate's answer moves first, in whatever process makes it (the kill switch's shared generation
/// counter). See [`KillSwitchGate::epoch`].
#[derive(Clone, Copy, Debug)]
pub struct GateEpoch {
    /// Moved (before the change returns) by every change that can alter the gate's answer.
    pub counter: &'static AtomicU64,
    /// The engine still asks at least once every `recheck` bars while the counter stays put
    /// (for what a gate looks at without an announcement, such as a state file edited by hand).
    pub recheck: u32,
}

/// Asked once per bar (every engine event; or, with an [`KillSwitchGate::epoch`], whenever its
/// counter moved and every few bars), before that bar's orders, and again right before
/// each order is accepted. While it answers `Some(reason)` every new order is rejected with code
/// `risk.kill_switch` and the reason, and when it starts answering so, working orders are
/// cancelled. While it also asks for [`KillSwitchGate::flatten`], the engine closes every open
/// position with market orders (the only orders it accepts while engaged).
pub trait KillSwitchGate: Send {
    /// `Some(why)` while new orders must be refused; `None` to let them through. Asked every
    /// bar: keep it cheap (it may answer from a cache that is a few milliseconds old).
    fn engaged(&mut self) -> Option<&str>;

    /// Like [`KillSwitchGate::engaged`] but from the source of truth, never a cache: asked
    /// right before each order is accepted, so that no order is accepted once an operator's
    /// engage has returned. Defaults to [`KillSwitchGate::engaged`] for gates without a cache.
    fn engaged_now(&mut self) -> Option<&str> {
        self.engaged()
    }

    /// Whether the current engagement (the last `Some` answer) asks for positions to be
    /// flattened.
    fn flatten(&self) -> bool {
        false
    }

    /// The engine's own kill switch tripped (the `max_drawdown_pct` limit): trading stops for
    /// the rest of the run. `detail` names the limit and the values. Lets the owner of the gate
    /// engage the run's kill switch so that other paths see it.
    fn on_engine_halt(&mut self, _detail: &str) {}

    /// A counter the engine may load on every bar instead of asking: while it holds the value
    /// the engine loaded right before its last call of [`KillSwitchGate::engaged`], that call's
    /// answer stands, and the engine asks only every [`GateEpoch::recheck`] bars. Asked again
    /// after each call of `engaged` (the counter may be another one then). `None` (the
    /// default): asked every bar. Before each order the engine asks
    /// [`KillSwitchGate::engaged_now`] regardless.
    fn epoch(&self) -> Option<GateEpoch> {
        None
    }
}
