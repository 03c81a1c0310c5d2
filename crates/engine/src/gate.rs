//! [`KillSwitchGate`]: how something outside the engine — an operator's kill switch kept in
//! files — stops new orders. The engine stays pure: it asks the gate, it never reads a file.

/// Asked once per bar (every engine event), before that bar's orders. While it answers
/// `Some(reason)` every new order is rejected with code `risk.kill_switch` and the reason, and
/// when it starts answering so, working orders are cancelled. Keep it cheap: it runs in the
/// hot loop.
pub trait KillSwitchGate: Send {
    /// `Some(why)` while new orders must be refused; `None` to let them through.
    fn engaged(&mut self) -> Option<&str>;

    /// The engine's own kill switch tripped (the `max_drawdown_pct` limit): trading stops for
    /// the rest of the run. `detail` names the limit and the values. Lets the owner of the gate
    /// engage the run's kill switch so that other paths see it.
    fn on_engine_halt(&mut self, _detail: &str) {}
}
