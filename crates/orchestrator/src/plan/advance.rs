//! How the [`Planner`] moves a run on after a signal: skip what cannot run, emit what is
//! ready (within the budget and `max_in_flight`), and settle the run when nothing is left.

use serde_json::json;
use tradeloom_flow::Context;
use tradeloom_flow::ir::NodeKind;
use tradeloom_flow::node_config::Decision as FlowDecision;

use tradeloom_store::{ApprovalChange, Decision, NewApproval, NodeStatus, RunStatus};

use crate::signal::approval_id;

use super::planner::Planner;

use super::tasks::{MAX_DELAY_MS, after, expiry_timer, notify_task};

impl<'a> Planner<'a> {
    /// Skips and emits until nothing changes (a skip can settle the needs of further nodes),
    /// the signal's node budget runs out (`more`), or the run has `max_in_flight` nodes queued
    /// or running. Nodes are taken in IR order: skips first, then ready nodes.
    pub(super) fn advance(&mut self, context: &Context) {
        loop {
            let mut changed = false;
            while let Some(&i) = self.state.to_skip.first() {
                if self.budget == 0 {
                    self.more = true;
                    return;
                }
                self.budget -= 1;
                self.skip(i, "every node it needs was skipped", false);
                changed = true;
            }
            let room = self.budget;
            let batch: Vec<usize> = self.state.ready.iter().copied().take(room).collect();
            for i in batch {
                if self.state.in_flight >= self.max_in_flight {
                    // A node finishing frees a place and signals the run again.
                    return;
                }
                if self.budget == 0 {
                    self.more = true;
                    return;
                }
                if !self.state.ready.contains(&i) {
                    continue;
                }
                self.budget -= 1;
                changed = true;
                self.emit(i, context);
                if self.status.is_terminal() {
                    return;
                }
            }
            if !self.state.ready.is_empty() && self.budget == 0 {
                self.more = true;
                return;
            }
            if !changed {
                return;
            }
        }
    }

    pub(super) fn skip(&mut self, i: usize, reason: &str, warning: bool) {
        self.update(i, |slot| {
            slot.status = NodeStatus::Skipped;
            slot.error = None;
        });
        let id = self.node(i).id().to_string();
        self.event(
            "node_skipped",
            Some(&id),
            json!({"reason": reason, "warning": warning}),
        );
    }

    /// Fails node `i` at its first attempt before it ran (a bad prompt, a delay the runtime
    /// cannot schedule).
    pub(super) fn fail_before_start(&mut self, i: usize, error: &str) {
        self.update(i, |slot| slot.attempts = 1);
        self.fail_attempt(i, 1, error, false);
    }

    /// A ready node: skipped (unknown type, `when` false), waiting for approval (`hitl`), or
    /// queued for its workers.
    pub(super) fn emit(&mut self, i: usize, context: &Context) {
        let node = self.node(i);
        let id = node.id().to_string();
        if let NodeKind::Unknown { type_name, .. } = node.kind() {
            let type_name = type_name.clone();
            let message = format!(
                "node `{id}` has type `{type_name}`, which this version of tradeloom does not run; it was skipped"
            );
            self.event("warning", Some(&id), json!({"message": message}));
            self.skip(i, &format!("unknown node type `{type_name}`"), true);
            return;
        }
        if !node.should_run(context.as_value()) {
            let when = node.when().map(ToString::to_string).unwrap_or_default();
            self.skip(i, &format!("`when: {when}` is false"), false);
            return;
        }
        let attempt = 1;
        if let NodeKind::Hitl(h) = node.kind() {
            let prompt = match h.prompt.render_string(context.as_value()) {
                Ok(p) => p,
                Err(e) => {
                    self.fail_before_start(i, &format!("prompt: {e}"));
                    return;
                }
            };
            let Some(expires_at) = after(self.now, h.expires_after_ms) else {
                let message = format!(
                    "expires_after ({} ms) is longer than the runtime schedules (at most {MAX_DELAY_MS} ms)",
                    h.expires_after_ms
                );
                self.fail_before_start(i, &message);
                return;
            };
            let approval = approval_id(&self.run.id, &id, attempt);
            let default_decision = match h.default {
                FlowDecision::Approve => Decision::Approve,
                FlowDecision::Reject => Decision::Reject,
            };
            let approvers = h.approvers.clone();
            let notify = h.notify.is_some();
            self.update(i, |slot| {
                slot.status = NodeStatus::Waiting;
                slot.attempts = attempt;
            });
            self.approvals.push(ApprovalChange::Create(NewApproval {
                id: approval.clone(),
                node_id: id.clone(),
                attempt,
                prompt: prompt.clone(),
                default_decision,
                approvers,
                expires_at,
            }));
            self.event(
                "approval_requested",
                Some(&id),
                json!({"approval_id": approval, "prompt": prompt,
                       "expires_at": expires_at, "default": default_decision}),
            );
            self.tasks.push(expiry_timer(
                &self.run.id,
                &approval,
                &id,
                attempt,
                expires_at,
            ));
            if notify {
                self.tasks
                    .push(notify_task(&self.run.id, &approval, &id, attempt));
            }
            return;
        }
        let not_before = match node.kind() {
            NodeKind::Wait(w) => match after(self.now, w.duration_ms) {
                Some(at) => Some(at),
                None => {
                    let message = format!(
                        "duration_ms ({}) is longer than the runtime schedules (at most {MAX_DELAY_MS} ms)",
                        w.duration_ms
                    );
                    self.fail_before_start(i, &message);
                    return;
                }
            },
            _ => None,
        };
        let type_name = node.kind().type_name().to_string();
        self.update(i, |slot| {
            slot.status = NodeStatus::Queued;
            slot.attempts = attempt;
            slot.not_before = not_before;
        });
        self.event(
            "node_queued",
            Some(&id),
            json!({"attempt": attempt, "type": type_name, "not_before": not_before}),
        );
        self.task(i, attempt, not_before);
    }

    /// The run's status once nothing more can be emitted now.
    pub(super) fn settle(&mut self) {
        if self.status.is_terminal() {
            return;
        }
        let status = if self.state.in_flight > 0
            || self.more
            || !self.state.ready.is_empty()
            || !self.state.to_skip.is_empty()
        {
            RunStatus::Running
        } else if self.state.waiting > 0 {
            RunStatus::Waiting
        } else if self.state.pending == 0 {
            self.finish_run(RunStatus::Completed, None);
            return;
        } else {
            let stuck: Vec<&str> = self
                .state
                .slots
                .iter()
                .zip(self.ir.nodes())
                .filter(|(s, _)| s.status == NodeStatus::Pending)
                .map(|(_, n)| n.id())
                .collect();
            let message = format!("nodes {} can never start", stuck.join(", "));
            self.settle_open("run failed: the node can never start", None, None);
            self.finish_run(RunStatus::Failed, Some(message));
            return;
        };
        self.status = status;
    }
}
