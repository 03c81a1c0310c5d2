//! The coordinator's decisions as a pure function: from a run as stored, its IR, its context
//! and one [`Signal`], the [`Transition`] to commit and the tasks to emit after the commit.
//!
//! Nothing here reads a clock or the store; the coordinator passes `now` and everything it read,
//! which keeps every rule testable on its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{Value, json};
use tradeloom_flow::ir::NodeKind;
use tradeloom_flow::node_config::Decision as FlowDecision;
use tradeloom_flow::{Context, Ir, IrNode};
use tradeloom_queue::NewTask;
use tradeloom_store::{
    ApprovalChange, ApprovalStatus, Decision, NewApproval, NewEvent, NodeChange, NodeState,
    NodeStatus, RunStatus, Transition, WorkflowRun,
};

use crate::signal::{Outcome, Signal, approval_id};

/// Pool of the approval-expiry timers.
pub const TIMER_POOL: &str = "timer";

/// One node's state while a transition is computed.
#[derive(Clone, Debug, PartialEq)]
struct Slot {
    status: NodeStatus,
    attempts: u32,
    output_hash: Option<String>,
    error: Option<String>,
    not_before: Option<DateTime<Utc>>,
}

impl From<&NodeState> for Slot {
    fn from(s: &NodeState) -> Self {
        Slot {
            status: s.status,
            attempts: s.attempts,
            output_hash: s.output_hash.clone(),
            error: s.error.clone(),
            not_before: s.not_before,
        }
    }
}

impl Slot {
    fn pending() -> Self {
        Slot {
            status: NodeStatus::Pending,
            attempts: 0,
            output_hash: None,
            error: None,
            not_before: None,
        }
    }

    fn in_flight(&self) -> bool {
        matches!(self.status, NodeStatus::Queued | NodeStatus::Running)
    }
}

/// What applying a signal amounts to.
#[derive(Debug)]
pub enum Plan {
    /// Commit this, then enqueue the tasks.
    Commit {
        transition: Box<Transition>,
        tasks: Vec<NewTask>,
    },
    /// The signal is about an attempt that is no longer current (or a finished run): drop it.
    Stale,
    /// Nothing to change.
    Nothing,
}

/// Everything the planner reads.
pub struct Input<'a> {
    pub run: &'a WorkflowRun,
    pub states: &'a [NodeState],
    pub ir: &'a Ir,
    /// The run context with every completed node's output.
    pub context: &'a mut Context,
    pub now: DateTime<Utc>,
}

struct Planner<'a> {
    run: &'a WorkflowRun,
    ir: &'a Ir,
    now: DateTime<Utc>,
    slots: BTreeMap<String, Slot>,
    before: BTreeMap<String, Slot>,
    events: Vec<NewEvent>,
    approvals: Vec<ApprovalChange>,
    tasks: Vec<NewTask>,
    status: RunStatus,
    error: Option<String>,
}

/// Plans `signal` for a run (see the module docs).
pub fn plan(input: Input<'_>, signal: &Signal) -> Plan {
    let Input {
        run,
        states,
        ir,
        context,
        now,
    } = input;
    if run.status.is_terminal() {
        return Plan::Stale;
    }
    let mut slots: BTreeMap<String, Slot> = states
        .iter()
        .map(|s| (s.node_id.clone(), Slot::from(s)))
        .collect();
    for n in ir.nodes() {
        slots
            .entry(n.id().to_string())
            .or_insert_with(Slot::pending);
    }
    let mut p = Planner {
        run,
        ir,
        now,
        before: slots.clone(),
        slots,
        events: Vec::new(),
        approvals: Vec::new(),
        tasks: Vec::new(),
        status: run.status,
        error: None,
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
            let Some(slot) = p.current(node, *attempt, &[NodeStatus::Queued]) else {
                return Plan::Stale;
            };
            slot.status = NodeStatus::Running;
            slot.not_before = None;
            p.event("node_started", Some(node), json!({"attempt": attempt}));
            // Starting a node changes nothing else.
            return p.finish(signal);
        }
        Signal::NodeFinished {
            node,
            attempt,
            outcome,
        } => {
            let Some(ir_node) = ir.node(node) else {
                return Plan::Stale;
            };
            if p.current(node, *attempt, &[NodeStatus::Queued, NodeStatus::Running])
                .is_none()
            {
                return Plan::Stale;
            }
            match outcome {
                Outcome::Completed {
                    output_hash,
                    output,
                } => {
                    p.complete(node, output_hash.clone(), *attempt);
                    context.set_output(node, output.clone());
                }
                Outcome::Failed { error, retryable } => {
                    p.fail_attempt(ir_node, *attempt, error, *retryable);
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
            let Some(slot) = p.current(node, *attempt, &[NodeStatus::Waiting]) else {
                return Plan::Stale;
            };
            slot.status = NodeStatus::Completed;
            let output = decision_output(approval_id, *decision, by, comment.as_deref(), *expired);
            // The coordinator stored this output as a blob before planning.
            let output_hash = tradeloom_store::blob_hash(&output.to_string());
            slot.output_hash = Some(output_hash.clone());
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
    }
    if p.status != RunStatus::Failed {
        p.advance(context);
        p.settle();
    }
    p.finish(signal)
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

impl Planner<'_> {
    fn event(&mut self, kind: &str, node: Option<&str>, payload: Value) {
        self.events.push(NewEvent {
            kind: kind.to_string(),
            node_id: node.map(str::to_string),
            payload,
        });
    }

    /// The node's slot if it is at `attempt` in one of `statuses`.
    fn current(&mut self, node: &str, attempt: u32, statuses: &[NodeStatus]) -> Option<&mut Slot> {
        self.slots
            .get_mut(node)
            .filter(|s| s.attempts == attempt && statuses.contains(&s.status))
    }

    fn complete(&mut self, node: &str, output_hash: String, attempt: u32) {
        if let Some(slot) = self.slots.get_mut(node) {
            slot.status = NodeStatus::Completed;
            slot.output_hash = Some(output_hash.clone());
            slot.error = None;
            slot.not_before = None;
        }
        self.event(
            "node_completed",
            Some(node),
            json!({"attempt": attempt, "output": output_hash}),
        );
    }

    fn fail_attempt(&mut self, node: &IrNode, attempt: u32, error: &str, retryable: bool) {
        let retry = node.retry();
        let id = node.id().to_string();
        if retryable && attempt < retry.max_attempts {
            let next = attempt + 1;
            let delay_ms = retry.delay_before_attempt_ms(next);
            let at = self.now + millis(delay_ms);
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.status = NodeStatus::Queued;
                slot.attempts = next;
                slot.error = Some(error.to_string());
                slot.not_before = Some(at);
            }
            self.event(
                "node_retrying",
                Some(&id),
                json!({"attempt": attempt, "error": error, "next_attempt": next,
                       "delay_ms": delay_ms, "max_attempts": retry.max_attempts}),
            );
            self.task(node, next, Some(at));
            return;
        }
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.status = NodeStatus::Failed;
            slot.error = Some(error.to_string());
            slot.not_before = None;
        }
        self.event(
            "node_failed",
            Some(&id),
            json!({"attempt": attempt, "error": error, "retryable": retryable}),
        );
        let message = format!("node `{id}` failed after {attempt} attempt(s): {error}");
        self.finish_run(RunStatus::Failed, Some(message));
    }

    fn finish_run(&mut self, status: RunStatus, error: Option<String>) {
        self.status = status;
        self.event(
            "run_finished",
            None,
            json!({"status": status, "error": error}),
        );
        self.error = error;
    }

    fn cancel(&mut self, by: &str, reason: Option<&str>) {
        let ids: Vec<String> = self.slots.keys().cloned().collect();
        for id in ids {
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            let status = slot.status;
            let attempt = slot.attempts;
            if matches!(
                status,
                NodeStatus::Pending
                    | NodeStatus::Queued
                    | NodeStatus::Running
                    | NodeStatus::Waiting
            ) {
                slot.status = NodeStatus::Skipped;
                slot.error = Some("run cancelled".to_string());
                slot.not_before = None;
                if status == NodeStatus::Waiting {
                    self.approvals.push(ApprovalChange::Close {
                        id: approval_id(&self.run.id, &id, attempt),
                        status: ApprovalStatus::Cancelled,
                        decision: None,
                        by: Some(by.to_string()),
                        comment: reason.map(str::to_string),
                    });
                }
            }
        }
        self.event("run_cancelled", None, json!({"by": by, "reason": reason}));
        self.finish_run(RunStatus::Cancelled, None);
    }

    fn task(&mut self, node: &IrNode, attempt: u32, not_before: Option<DateTime<Utc>>) {
        self.tasks
            .push(node_task(&self.run.id, node, attempt, not_before));
    }

    /// Emits and skips until nothing changes: a skip can settle the needs of further nodes.
    fn advance(&mut self, context: &Context) {
        loop {
            let mut changed = false;
            let (completed, skipped) = self.settled();
            for n in self.ir.nodes_to_skip(&completed, &skipped) {
                let id = n.id().to_string();
                if self
                    .slots
                    .get(&id)
                    .is_some_and(|s| s.status == NodeStatus::Pending)
                {
                    self.skip(&id, "every node it needs was skipped", false);
                    changed = true;
                }
            }
            let (completed, skipped) = self.settled();
            let ready: Vec<&IrNode> = self
                .ir
                .ready_nodes(&completed, &skipped)
                .into_iter()
                .filter(|n| {
                    self.slots
                        .get(n.id())
                        .is_some_and(|s| s.status == NodeStatus::Pending)
                })
                .collect();
            for n in ready {
                changed = true;
                self.emit(n, context);
                if self.status == RunStatus::Failed {
                    return;
                }
            }
            if !changed {
                return;
            }
        }
    }

    fn settled(
        &self,
    ) -> (
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
    ) {
        let mut completed = std::collections::BTreeSet::new();
        let mut skipped = std::collections::BTreeSet::new();
        for (id, s) in &self.slots {
            match s.status {
                NodeStatus::Completed => {
                    completed.insert(id.clone());
                }
                NodeStatus::Skipped => {
                    skipped.insert(id.clone());
                }
                _ => {}
            }
        }
        (completed, skipped)
    }

    fn skip(&mut self, id: &str, reason: &str, warning: bool) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.status = NodeStatus::Skipped;
            slot.error = None;
        }
        self.event(
            "node_skipped",
            Some(id),
            json!({"reason": reason, "warning": warning}),
        );
    }

    /// A ready node: skipped (unknown type, `when` false), waiting for approval (`hitl`), or
    /// queued for its workers.
    fn emit(&mut self, node: &IrNode, context: &Context) {
        let id = node.id().to_string();
        if let NodeKind::Unknown { type_name, .. } = node.kind() {
            let message = format!(
                "node `{id}` has type `{type_name}`, which this version of tradeloom does not run; it was skipped"
            );
            self.event("warning", Some(&id), json!({"message": message}));
            self.skip(&id, &format!("unknown node type `{type_name}`"), true);
            return;
        }
        if !node.should_run(context.as_value()) {
            let when = node.when().map(ToString::to_string).unwrap_or_default();
            self.skip(&id, &format!("`when: {when}` is false"), false);
            return;
        }
        let attempt = 1;
        if let NodeKind::Hitl(h) = node.kind() {
            let prompt = match h.prompt.render_string(context.as_value()) {
                Ok(p) => p,
                Err(e) => {
                    self.fail_attempt(node, attempt, &format!("prompt: {e}"), false);
                    return;
                }
            };
            let approval = approval_id(&self.run.id, &id, attempt);
            let expires_at = self.now + millis(h.expires_after_ms);
            let default_decision = match h.default {
                FlowDecision::Approve => Decision::Approve,
                FlowDecision::Reject => Decision::Reject,
            };
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.status = NodeStatus::Waiting;
                slot.attempts = attempt;
            }
            self.approvals.push(ApprovalChange::Create(NewApproval {
                id: approval.clone(),
                node_id: id.clone(),
                attempt,
                prompt: prompt.clone(),
                default_decision,
                approvers: h.approvers.clone(),
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
            return;
        }
        let not_before = match node.kind() {
            NodeKind::Wait(w) => Some(self.now + millis(w.duration_ms)),
            _ => None,
        };
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.status = NodeStatus::Queued;
            slot.attempts = attempt;
            slot.not_before = not_before;
        }
        self.event(
            "node_queued",
            Some(&id),
            json!({"attempt": attempt, "type": node.kind().type_name(), "not_before": not_before}),
        );
        self.task(node, attempt, not_before);
    }

    /// The run's status once nothing more can be emitted.
    fn settle(&mut self) {
        if self.status.is_terminal() {
            return;
        }
        let in_flight = self.slots.values().any(Slot::in_flight);
        let waiting = self.slots.values().any(|s| s.status == NodeStatus::Waiting);
        let status = if in_flight {
            RunStatus::Running
        } else if waiting {
            RunStatus::Waiting
        } else {
            let stuck: Vec<&str> = self
                .ir
                .nodes()
                .iter()
                .filter(|n| {
                    self.slots
                        .get(n.id())
                        .is_some_and(|s| s.status == NodeStatus::Pending)
                })
                .map(IrNode::id)
                .collect();
            if stuck.is_empty() {
                self.finish_run(RunStatus::Completed, None);
                return;
            }
            let message = format!("nodes {} can never start", stuck.join(", "));
            self.finish_run(RunStatus::Failed, Some(message));
            return;
        };
        self.status = status;
    }

    fn finish(self, signal: &Signal) -> Plan {
        let tokens =
            |m: &BTreeMap<String, Slot>| m.values().filter(|s| s.in_flight()).count() as i64;
        let tokens_delta = tokens(&self.slots) - tokens(&self.before);
        let nodes: Vec<NodeChange> = self
            .slots
            .iter()
            .filter(|(id, s)| self.before.get(*id) != Some(s))
            .map(|(id, s)| NodeChange {
                node_id: id.clone(),
                status: s.status,
                attempts: s.attempts,
                output_hash: s.output_hash.clone(),
                error: s.error.clone(),
                not_before: s.not_before,
            })
            .collect();
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
        }
    }
}

/// The queue pool of a node type.
pub fn pool_of(kind: &NodeKind) -> &str {
    kind.type_name()
}

/// The task of attempt `attempt` of `node`, deduplicated per attempt so re-emitting it (after a
/// restart) is harmless.
pub fn node_task(
    run_id: &str,
    node: &IrNode,
    attempt: u32,
    not_before: Option<DateTime<Utc>>,
) -> NewTask {
    let task = NewTask::new(
        pool_of(node.kind()),
        json!({"run_id": run_id, "node_id": node.id(), "attempt": attempt}),
    )
    .with_dedup_key(format!("{run_id}/{}/{attempt}", node.id()));
    match not_before {
        Some(at) => task.with_not_before(at),
        None => task,
    }
}

/// The task that decides an approval with its default when it expires.
pub fn expiry_timer(
    run_id: &str,
    approval_id: &str,
    node: &str,
    attempt: u32,
    expires_at: DateTime<Utc>,
) -> NewTask {
    NewTask::new(
        TIMER_POOL,
        json!({"kind": "approval_expiry", "run_id": run_id, "approval_id": approval_id,
               "node_id": node, "attempt": attempt}),
    )
    .with_dedup_key(format!("expire/{approval_id}"))
    .with_not_before(expires_at)
}

fn millis(ms: u64) -> ChronoDuration {
    ChronoDuration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2))
}
