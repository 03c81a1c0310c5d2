//! The operator's kill switch: the gate polled, working orders cancelled on engagement, and
//! positions flattened with reduce-only market orders when asked (also for a margin call).

use std::sync::atomic::Ordering;

use tradeloom_core::{Bar, Event, KillReason, OrderId, OrderSide, UnixNanos};

use super::{Engine, EngineError};
use crate::sink::Sink;
use crate::strategy::OrderRequest;

impl Engine {
    /// Asks the gate whether orders may pass (`fresh`: from the source of truth, before an
    /// order is accepted; otherwise its cheap per-bar answer, not even asked while the gate's
    /// epoch counter stays put, see [`crate::KillSwitchGate::epoch`]). On engagement: a
    /// `kill_switch_engaged` event and every working order cancelled; on release: a
    /// `kill_switch_released` event.
    #[inline]
    pub(super) fn poll_gate<S: Sink>(
        &mut self,
        ts: UnixNanos,
        sink: &mut S,
        fresh: bool,
    ) -> Result<(), EngineError> {
        if !fresh && let Some(epoch) = self.gate_epoch {
            // One load on most bars: nothing that could change the answer happened since the
            // gate last answered.
            let now = epoch.counter.load(Ordering::Acquire);
            if now == self.gate_seen && self.gate_skips > 0 {
                self.gate_skips -= 1;
                return Ok(());
            }
            self.gate_seen = now;
        }
        self.ask_gate(ts, sink, fresh)
    }

    fn ask_gate<S: Sink>(
        &mut self,
        ts: UnixNanos,
        sink: &mut S,
        fresh: bool,
    ) -> Result<(), EngineError> {
        let Some(gate) = self.gate.as_mut() else {
            return Ok(());
        };
        let answer = if fresh {
            gate.engaged_now()
        } else {
            gate.engaged()
        };

        // Once the run's own limit halted it, the gate's answer is that engagement (or a later
        // one of no consequence: trading is over); the journal keeps the engine's text.
        let halted = self.halted;
        match (answer, &mut self.gate_halt) {
            (Some(now), Some(before)) => {
                if !halted && now != before.as_str() {
                    // Another engagement (say the global one after the run's): keep the
                    // newest reason for the rejections.
                    now.clone_into(before);
                }
            }
            (Some(now), halt @ None) => {
                let detail = now.to_string();
                *halt = Some(detail.clone());
                sink.on_event(&Event::KillSwitchEngaged {
                    ts,
                    reason: KillReason::Operator,
                    detail,
                });
                self.cancel_where(ts, "kill_switch", sink, |_| true)?;
            }
            (None, halt @ Some(_)) => {
                *halt = None;
                sink.on_event(&Event::KillSwitchReleased { ts });
            }
            (None, None) => {}
        }
        if !fresh && let Some(gate) = self.gate.as_ref() {
            let before = self.gate_epoch.map(|e| e.counter);
            self.gate_epoch = gate.epoch();
            self.gate_skips = match self.gate_epoch {
                // The value loaded before this answer was of this very counter.
                Some(epoch) if before.is_some_and(|b| std::ptr::eq(b, epoch.counter)) => {
                    epoch.recheck.saturating_sub(1)
                }
                // Another counter now (or none): ask again on the next bar, after loading it.
                _ => 0,
            };
        }
        Ok(())
    }

    /// While an engaged kill switch asks for flattening: closes the position in instrument `i`
    /// with a reduce-only market order (one at a time), journaled as `kill_switch_liquidation`.
    pub(super) fn flatten_if_asked<S: Sink>(
        &mut self,
        i: usize,
        bar: &Bar,
        sink: &mut S,
    ) -> Result<(), EngineError> {
        let asks = self.gate.as_ref().is_some_and(|g| g.flatten());
        let net = self.positions[i].net_raw();
        if !asks
            || net == 0
            || self
                .working
                .iter()
                .any(|w| w.liquidation && w.order.instrument.index() == i)
        {
            return Ok(());
        }
        self.submit_liquidation(i, bar.ts, Some(bar), sink, false)
    }

    /// Submits a reduce-only market order closing the position in instrument `i`, journaled as
    /// `margin_liquidation` (for a margin call) or `kill_switch_liquidation`.
    pub(super) fn submit_liquidation<S: Sink>(
        &mut self,
        i: usize,
        ts: UnixNanos,
        bar: Option<&Bar>,
        sink: &mut S,
        margin: bool,
    ) -> Result<(), EngineError> {
        let net = self.positions[i].net_raw();
        let inst = &self.instruments[i];
        let side = if net > 0 {
            OrderSide::Sell
        } else {
            OrderSide::Buy
        };
        let mut request = OrderRequest::market(side, inst.quantity(net.abs()));
        request.reduce_only = true;
        self.next_order_id += 1;
        let id = OrderId(self.next_order_id);
        let (symbol, quantity) = (inst.symbol, self.positions[i].signed_quantity());
        if margin {
            sink.on_event(&Event::MarginLiquidation {
                ts,
                order_id: id,
                symbol,
                quantity,
                detail: self.margin_call.clone().unwrap_or_default(),
            });
        } else {
            sink.on_event(&Event::KillSwitchLiquidation {
                ts,
                order_id: id,
                symbol,
                quantity,
                detail: self.gate_halt.clone().unwrap_or_default(),
            });
        }
        self.submit(id, i, request, None, ts, bar, sink, true)
    }
}
