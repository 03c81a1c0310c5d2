//! The [`Planner`]: one signal's effect on a run (start, node finished, decided, cancel).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use tradeloom_flow::ir::NodeKind;
use tradeloom_flow::{Context, Ir, IrNode};
use tradeloom_queue::NewTask;
use tradeloom_store::{
    ApprovalChange, ApprovalStatus, Decision, NewEvent, NodeChange, NodeStatus, RunStatus,
    Transition, WorkflowRun,
};

use crate::signal::{Outcome, Signal, approval_id};

use super::state::{Graph, RunState, Slot};
use super::tasks::{MAX_DELAY_MS, after, node_task};

/// Nodes one signal may skip or emit; the rest is left to a continuation signal.
pub const MAX_NODES_PER_SIGNAL: usize = 512;

/// Nodes of one run queued or running at once, unless the runtime is configured otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// What applying a signal amounts to.
#[derive(Debug)]
pub enum Plan {
    /// Commit this, then enqueue the tasks. `more`: the signal left work undone (its node
    /// budget ran out); the coordinator posts a continuation so the run goes on after signals
    /// of other runs.
    Commit {
        transition: Box<Transition>,
        tasks: Vec<NewTask>,
        more: bool,
    },
    /// The signal is about an attempt that is no longer current (or a finished run): drop it.
    Stale,
    /// Nothing to change.
    Nothing,
}

/// Everything the planner reads. `state` and `context` are updated in place to what the
/// transition commits (discard them if the commit fails).
pub struct Input<'a> {
    pub run: &'a WorkflowRun,
    pub state: &'a mut RunState,
    pub ir: &'a Ir,
    pub graph: &'a Graph,
    /// The run context with every completed node's output.
    pub context: &'a mut Context,
    pub now: DateTime<Utc>,
    /// Nodes of the run queued or running at once, at most (at least 1).
    pub max_in_flight: usize,
}

pub(super) struct Planner<'a> {
    pub(super) run: &'a WorkflowRun,
    pub(super) ir: &'a Ir,
    pub(super) graph: &'a Graph,
    pub(super) state: &'a mut RunState,
    pub(super) now: DateTime<Utc>,
    pub(super) max_in_flight: usize,
    /// Slots as they were before this signal touched them.
    pub(super) before: BTreeMap<usize, Slot>,
    pub(super) before_others: BTreeMap<String, Slot>,
    pub(super) in_flight_before: usize,
    pub(super) events: Vec<NewEvent>,
    pub(super) approvals: Vec<ApprovalChange>,
    pub(super) tasks: Vec<NewTask>,
    pub(super) status: RunStatus,
    pub(super) error: Option<String>,
    pub(super) budget: usize,
    pub(super) more: bool,
}

/// Plans `signal` for a run (see the module docs).
pub fn plan(input: Input<'_>, signal: &Signal) -> Plan {
    let Input {
        run,
        state,
        ir,
        graph,
        context,
        now,
        max_in_flight,
    } = input;
    if run.status.is_terminal() {
        return Plan::Stale;
    }
    if run.status == RunStatus::Queued && !matches!(signal, Signal::Cancel { .. }) {
        // Held back by a concurrency limit: nothing happens to it until admission makes it
        // `pending` (and starts it), but it can be cancelled.
        return Plan::Stale;
    }
    let mut p = Planner {
        run,
        ir,
        graph,
        in_flight_before: state.in_flight,
        state,
        now,
        max_in_flight: max_in_flight.max(1),
        before: BTreeMap::new(),
        before_others: BTreeMap::new(),
        events: Vec::new(),
        approvals: Vec::new(),
        tasks: Vec::new(),
        status: run.status,
        error: None,
        budget: MAX_NODES_PER_SIGNAL,
        more: false,
    };
    match signal {
        Signal::Start => {
            if run.status != RunStatus::Pending {
                return Plan::Stale;
            }
            p.status = RunStatus::Running;
            p.event("run_started", None, json!({"ir_hash": run.ir_hash}));
        }
        Signal::Advance { .. } => {}
        Signal::NodeStarted { node, attempt } => {
            if p.current(node, *attempt, &[NodeStatus::Running]).is_some() {
                // Started before a restart: run it again (at least once), change nothing.
                return Plan::Nothing;
            }
            let Some(i) = p.current(node, *attempt, &[NodeStatus::Queued]) else {
                return Plan::Stale;
            };
            if run.status == RunStatus::Paused {
                // No new node starts in a paused run; its task is emitted again on resume.
                return Plan::Stale;
            }
            p.update(i, |slot| {
                slot.status = NodeStatus::Running;
                slot.not_before = None;
            });
            p.event("node_started", Some(node), json!({"attempt": attempt}));
            // Starting a node changes nothing else.
            return p.finish(signal);
        }
        Signal::NodeFinished {
            node,
            attempt,
            outcome,
        } => {
            let Some(i) = p.current(node, *attempt, &[NodeStatus::Queued, NodeStatus::Running])
            else {
                return Plan::Stale;
            };
            let started_now = p.current(node, *attempt, &[NodeStatus::Queued]).is_some();
            if started_now && run.status == RunStatus::Paused {
                // A node that had not started when the run was paused does not start now
                // (its task is emitted again on resume).
                return Plan::Stale;
            }
            if started_now {
                // Started and finished in one transition (a `transform` node is not marked
                // running on its own: it finishes at once and has no effects to guard).
                p.event("node_started", Some(node), json!({"attempt": attempt}));
            }
            match outcome {
                Outcome::Completed {
                    output_hash,
                    output,
                } => {
                    let fallback = matches!(p.node(i).kind(), NodeKind::Agent(_))
                        .then(|| fallback_note(output))
                        .flatten();
                    p.complete(i, output_hash.clone(), *attempt, fallback);
                    context.set_output(node, output.clone());
                }
                Outcome::Failed { error, retryable } => {
                    p.fail_attempt(i, *attempt, error, *retryable);
                }
            }
        }
        Signal::Decided {
            approval_id,
            node,
            attempt,
            decision,
            by,
            comment,
            expired,
        } => {
            let Some(i) = p.current(node, *attempt, &[NodeStatus::Waiting]) else {
                return Plan::Stale;
            };
            if *expired && run.status == RunStatus::Paused {
                // An expiry that falls due during a pause takes effect on resume, which sets
                // the approval's timer again (its deadline passed: it fires at once).
                return Plan::Stale;
            }
            let output = decision_output(approval_id, *decision, by, comment.as_deref(), *expired);
            // The coordinator stored this output as a blob before planning.
            let output_hash = tradeloom_store::blob_hash(&output.to_string());
            p.update(i, |slot| {
                slot.status = NodeStatus::Completed;
                slot.output_hash = Some(output_hash.clone());
            });
            context.set_output(node, output.clone());
            p.approvals.push(ApprovalChange::Close {
                id: approval_id.clone(),
                status: if *expired {
                    ApprovalStatus::Expired
                } else if *decision == Decision::Approve {
                    ApprovalStatus::Approved
                } else {
                    ApprovalStatus::Rejected
                },
                decision: Some(*decision),
                by: Some(by.clone()),
                comment: comment.clone(),
            });
            p.event(
                "approval_decided",
                Some(node),
                json!({"approval_id": approval_id, "decision": decision, "by": by,
                       "comment": comment, "expired": expired}),
            );
            p.event(
                "node_completed",
                Some(node),
                json!({"attempt": attempt, "output": output_hash}),
            );
        }
        Signal::Cancel { by, reason } => {
            p.cancel(by, reason.as_deref());
            return p.finish(signal);
        }
        Signal::Pause { by, .. } => {
            if !matches!(
                run.status,
                RunStatus::Pending | RunStatus::Running | RunStatus::Waiting
            ) {
                return Plan::Stale;
            }
            p.status = RunStatus::Paused;
            p.event("run_paused", None, json!({"by": by, "was": run.status}));
            return p.finish(signal);
        }
        Signal::Resume { by, .. } => {
            if run.status != RunStatus::Paused {
                return Plan::Stale;
            }
            p.status = RunStatus::Running;
            p.event("run_resumed", None, json!({"by": by}));
            // A run paused while `pending` never took its `Start` (it found the run paused):
            // it starts now.
            if p.state.untouched() {
                p.event("run_started", None, json!({"ir_hash": run.ir_hash}));
            }
            // The tasks of nodes queued before or during the pause were dropped unstarted (or
            // lost with a restart), and those of running nodes may have been: emit them again,
            // keeping their `not_before` (a `wait` whose deadline passed runs at once). Tasks
            // are deduplicated per attempt, so one still queued or held is not doubled.
            for i in 0..p.state.slots.len() {
                let slot = p.slot(i);
                if matches!(slot.status, NodeStatus::Queued | NodeStatus::Running) {
                    let (attempt, not_before) = (slot.attempts, slot.not_before);
                    p.task(i, attempt, not_before);
                }
            }
        }
    }
    if p.status == RunStatus::Paused {
        // Nothing new starts in a paused run: results are recorded, nothing is emitted.
        p.tasks.clear();
        return p.finish(signal);
    }
    if !p.status.is_terminal() {
        p.advance(context);
        p.settle();
    }
    p.finish(signal)
}

/// The reason an agent node's output is its `fallback` (`{"fallback": true, "fallback_reason":
/// …}`, written by the agent executor), or `None` for any other output.
fn fallback_note(output: &Value) -> Option<String> {
    if output.get("fallback") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(
        output
            .get("fallback_reason")
            .and_then(Value::as_str)
            .unwrap_or("no usable answer")
            .to_string(),
    )
}

/// The output of a decided `hitl` node.
pub fn decision_output(
    approval_id: &str,
    decision: Decision,
    by: &str,
    comment: Option<&str>,
    expired: bool,
) -> Value {
    json!({
        "approval_id": approval_id,
        "decision": decision,
        "by": by,
        "comment": comment,
        "expired": expired,
    })
}

impl<'a> Planner<'a> {
    pub(super) fn event(&mut self, kind: &str, node: Option<&str>, payload: Value) {
        self.events.push(NewEvent {
            kind: kind.to_string(),
            node_id: node.map(str::to_string),
            payload,
        });
    }

    pub(super) fn node(&self, i: usize) -> &'a IrNode {
        // `i` always comes from the graph of this IR, so it is in range.
        &self.ir.nodes()[i]
    }

    pub(super) fn slot(&self, i: usize) -> &Slot {
        &self.state.slots[i]
    }

    /// Changes node `i`'s slot with `f`, remembering what it was before this signal.
    pub(super) fn update(&mut self, i: usize, f: impl FnOnce(&mut Slot)) {
        let mut slot = self.slot(i).clone();
        self.before.entry(i).or_insert_with(|| slot.clone());
        f(&mut slot);
        self.state.set(self.graph, i, slot);
    }

    /// The position of the node if it is at `attempt` in one of `statuses`.
    pub(super) fn current(
        &self,
        node: &str,
        attempt: u32,
        statuses: &[NodeStatus],
    ) -> Option<usize> {
        let i = self.graph.index_of(node)?;
        let s = self.state.slots.get(i)?;
        (s.attempts == attempt && statuses.contains(&s.status)).then_some(i)
    }

    /// Completes node `i` with the output stored as `output_hash`; `fallback` is the reason
    /// when an agent node's `fallback` stood in for an answer (see [`fallback_note`]), recorded
    /// in the `node_completed` event and as the node's note.
    pub(super) fn complete(
        &mut self,
        i: usize,
        output_hash: String,
        attempt: u32,
        fallback: Option<String>,
    ) {
        let note = fallback
            .as_ref()
            .map(|reason| format!("completed with its fallback: {reason}"));
        self.update(i, |slot| {
            slot.status = NodeStatus::Completed;
            slot.output_hash = Some(output_hash.clone());
            slot.error = note;
            slot.not_before = None;
        });
        let id = self.node(i).id().to_string();
        let mut payload = json!({"attempt": attempt, "output": output_hash});
        if let Some(reason) = fallback {
            payload["fallback"] = json!(true);
            payload["fallback_reason"] = json!(reason);
        }
        self.event("node_completed", Some(&id), payload);
    }

    pub(super) fn fail_attempt(&mut self, i: usize, attempt: u32, error: &str, retryable: bool) {
        let node = self.node(i);
        let retry = node.retry().clone();
        let id = node.id().to_string();
        let mut error = error.to_string();
        if retryable && attempt < retry.max_attempts {
            let next = attempt + 1;
            let delay_ms = retry.delay_before_attempt_ms(next);
            match after(self.now, delay_ms) {
                Some(at) => {
                    self.update(i, |slot| {
                        slot.status = NodeStatus::Queued;
                        slot.attempts = next;
                        slot.error = Some(error.clone());
                        slot.not_before = Some(at);
                    });
                    self.event(
                        "node_retrying",
                        Some(&id),
                        json!({"attempt": attempt, "error": error, "next_attempt": next,
                               "delay_ms": delay_ms, "max_attempts": retry.max_attempts}),
                    );
                    self.task(i, next, Some(at));
                    return;
                }
                None => {
                    error = format!(
                        "{error}; not retried: the back-off before attempt {next} ({delay_ms} ms) is longer than the runtime schedules (at most {MAX_DELAY_MS} ms)"
                    );
                }
            }
        }
        self.update(i, |slot| {
            slot.status = NodeStatus::Failed;
            slot.attempts = slot.attempts.max(attempt);
            slot.error = Some(error.clone());
            slot.not_before = None;
        });
        self.event(
            "node_failed",
            Some(&id),
            json!({"attempt": attempt, "error": error, "retryable": retryable}),
        );
        let message = format!("node `{id}` failed after {attempt} attempt(s): {error}");
        self.settle_open(&format!("run failed: node `{id}` failed"), None, None);
        self.finish_run(RunStatus::Failed, Some(message));
    }

    pub(super) fn finish_run(&mut self, status: RunStatus, error: Option<String>) {
        self.status = status;
        self.event(
            "run_finished",
            None,
            json!({"status": status, "error": error}),
        );
        self.error = error;
    }

    /// Ends every node still to run or running as skipped with `reason` (a running attempt's
    /// worker is stopped once the transition commits), and cancels pending approvals; one
    /// `node_skipped` event per node.
    pub(super) fn settle_open(&mut self, reason: &str, by: Option<&str>, comment: Option<&str>) {
        let settle = |slot: &mut Slot| {
            slot.status = NodeStatus::Skipped;
            slot.error = Some(reason.to_string());
            slot.not_before = None;
        };
        for i in 0..self.state.slots.len() {
            let slot = self.slot(i);
            if !slot.open() {
                continue;
            }
            let (was, attempt) = (slot.status, slot.attempts);
            let id = self.node(i).id().to_string();
            self.update(i, settle);
            self.closed(&id, was, attempt, reason, by, comment);
        }
        let others: Vec<(String, Slot)> = self
            .state
            .others
            .iter()
            .filter(|(_, s)| s.open())
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        for (id, old) in others {
            let mut slot = old.clone();
            settle(&mut slot);
            self.before_others.entry(id.clone()).or_insert(old.clone());
            self.state.set_other(&id, slot);
            self.closed(&id, old.status, old.attempts, reason, by, comment);
        }
    }

    /// Journals a node [`Planner::settle_open`] ended and cancels its approval if it had one.
    pub(super) fn closed(
        &mut self,
        id: &str,
        was: NodeStatus,
        attempt: u32,
        reason: &str,
        by: Option<&str>,
        comment: Option<&str>,
    ) {
        if was == NodeStatus::Waiting {
            self.approvals.push(ApprovalChange::Close {
                id: approval_id(&self.run.id, id, attempt),
                status: ApprovalStatus::Cancelled,
                decision: None,
                by: Some(by.unwrap_or("system").to_string()),
                comment: Some(comment.unwrap_or(reason).to_string()),
            });
        }
        self.event(
            "node_skipped",
            Some(id),
            json!({"reason": reason, "was": was, "warning": false}),
        );
    }

    pub(super) fn cancel(&mut self, by: &str, reason: Option<&str>) {
        self.settle_open("run cancelled", Some(by), reason);
        self.event("run_cancelled", None, json!({"by": by, "reason": reason}));
        self.finish_run(RunStatus::Cancelled, None);
    }

    pub(super) fn task(&mut self, i: usize, attempt: u32, not_before: Option<DateTime<Utc>>) {
        let task = node_task(self.run, self.node(i), attempt, not_before);
        self.tasks.push(task);
    }

    pub(super) fn finish(self, signal: &Signal) -> Plan {
        let tokens_delta = self.state.in_flight as i64 - self.in_flight_before as i64;
        let change = |node_id: &str, s: &Slot| NodeChange {
            node_id: node_id.to_string(),
            status: s.status,
            attempts: s.attempts,
            output_hash: s.output_hash.clone(),
            error: s.error.clone(),
            not_before: s.not_before,
        };
        let mut nodes: Vec<NodeChange> = self
            .before
            .iter()
            .filter(|(i, before)| self.state.slots.get(**i) != Some(*before))
            .map(|(i, _)| change(self.ir.nodes()[*i].id(), &self.state.slots[*i]))
            .collect();
        nodes.extend(self.before_others.iter().filter_map(|(id, before)| {
            self.state
                .others
                .get(id)
                .filter(|now| *now != before)
                .map(|now| change(id, now))
        }));
        let status = (self.status != self.run.status).then_some(self.status);
        if nodes.is_empty() && status.is_none() && self.events.is_empty() {
            return Plan::Nothing;
        }
        let mut transition = Transition::new(&self.run.id, signal.id(), self.run.revision);
        transition.nodes = nodes;
        transition.status = status;
        transition.tokens_delta = tokens_delta;
        transition.error = self.error;
        transition.approvals = self.approvals;
        transition.events = self.events;
        Plan::Commit {
            transition: Box::new(transition),
            tasks: self.tasks,
            more: self.more,
        }
    }
}
