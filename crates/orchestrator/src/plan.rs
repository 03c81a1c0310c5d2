//! The coordinator's decisions as a pure function: from a run as stored ([`RunState`]), its IR,
//! its context and one [`Signal`], the [`Transition`] to commit and the tasks to emit after the
//! commit.
//!
//! Nothing here reads a clock or the store; the coordinator passes `now` and everything it read,
//! which keeps every rule testable on its own.
//!
//! # Cost and fairness
//! A signal costs work in proportion to the nodes it touches, not to the size of the workflow:
//! [`RunState`] keeps, per node, how many of its needs are unsettled and how many completed, and
//! the set of nodes whose needs are all settled; settling a node updates only its dependents
//! (found through [`Graph`]). One signal skips or emits at most [`MAX_NODES_PER_SIGNAL`] nodes,
//! and a run has at most `max_in_flight` nodes queued or running; what is left waits for the
//! next signal (a node finishing, or the continuation the coordinator posts when
//! [`Plan::Commit`] says `more`), so one big run cannot hold the coordinator or the worker
//! queues while others wait. Settling a whole run (failure, cancellation) touches every open
//! node once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
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

/// Nodes one signal may skip or emit; the rest is left to a continuation signal.
pub const MAX_NODES_PER_SIGNAL: usize = 512;

/// Nodes of one run queued or running at once, unless the runtime is configured otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// The longest delay the runtime schedules (a `wait`, an approval's expiry, a retry back-off):
/// about ten years. Anything longer fails its node with a reason; a timestamp that far ahead
/// still fits every store.
pub const MAX_DELAY_MS: u64 = 10 * 366 * 24 * 60 * 60 * 1000;

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

    fn settled(&self) -> bool {
        matches!(self.status, NodeStatus::Completed | NodeStatus::Skipped)
    }

    fn open(&self) -> bool {
        matches!(
            self.status,
            NodeStatus::Pending | NodeStatus::Queued | NodeStatus::Running | NodeStatus::Waiting
        )
    }
}

/// The dependency index of a compiled workflow: node positions by id and, per node, the nodes
/// that need it. Built once per IR; the coordinator caches it with the IR.
#[derive(Clone, Debug)]
pub struct Graph {
    ids: HashMap<String, usize>,
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    pub fn new(ir: &Ir) -> Graph {
        let nodes = ir.nodes();
        let mut dependents = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for &k in n.needs() {
                if let Some(d) = dependents.get_mut(k) {
                    d.push(i);
                }
            }
        }
        Graph {
            ids: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.id().to_string(), i))
                .collect(),
            dependents,
        }
    }

    /// Position of node `id` in [`Ir::nodes`].
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.get(id).copied()
    }

    /// Whether the IR has node `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }
}

/// A run's node states arranged for planning: slots by IR position, the counters the
/// scheduling rules read ([`Ir::ready_nodes`], [`Ir::nodes_to_skip`]) and the nodes those rules
/// pick next. Built from the stored states in time linear in the nodes and their needs, then
/// kept up to date by [`plan`] one touched node at a time.
#[derive(Clone, Debug)]
pub struct RunState {
    slots: Vec<Slot>,
    has_needs: Vec<bool>,
    /// States of nodes the IR no longer has (removed by a patch).
    others: BTreeMap<String, Slot>,
    /// Needs not yet completed or skipped, per node.
    unsettled: Vec<u32>,
    /// Needs completed, per node.
    completed_needs: Vec<u32>,
    /// Pending nodes whose needs are all settled with one completed (or that have none).
    ready: BTreeSet<usize>,
    /// Pending nodes whose needs are all skipped.
    to_skip: BTreeSet<usize>,
    in_flight: usize,
    waiting: usize,
    pending: usize,
}

impl RunState {
    /// The state of a run of `ir` whose stored node states are `states` (nodes without a state
    /// are pending).
    pub fn new(ir: &Ir, graph: &Graph, states: &[NodeState]) -> RunState {
        let nodes = ir.nodes();
        let mut slots = vec![Slot::pending(); nodes.len()];
        let mut others = BTreeMap::new();
        for s in states {
            match graph.index_of(&s.node_id).and_then(|i| slots.get_mut(i)) {
                Some(slot) => *slot = Slot::from(s),
                None => {
                    others.insert(s.node_id.clone(), Slot::from(s));
                }
            }
        }
        let mut unsettled = vec![0u32; nodes.len()];
        let mut completed_needs = vec![0u32; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for &k in n.needs() {
                match slots.get(k).map(|s| s.status) {
                    Some(NodeStatus::Completed) => completed_needs[i] += 1,
                    Some(NodeStatus::Skipped) => {}
                    _ => unsettled[i] += 1,
                }
            }
        }
        let all = || slots.iter().chain(others.values());
        let mut state = RunState {
            in_flight: all().filter(|s| s.in_flight()).count(),
            waiting: all().filter(|s| s.status == NodeStatus::Waiting).count(),
            pending: slots
                .iter()
                .filter(|s| s.status == NodeStatus::Pending)
                .count(),
            has_needs: nodes.iter().map(|n| !n.needs().is_empty()).collect(),
            slots,
            others,
            unsettled,
            completed_needs,
            ready: BTreeSet::new(),
            to_skip: BTreeSet::new(),
        };
        for i in 0..nodes.len() {
            state.classify(i);
        }
        state
    }

    /// The status of node `id`, if the run has it.
    pub fn status_of(&self, graph: &Graph, id: &str) -> Option<NodeStatus> {
        match graph.index_of(id) {
            Some(i) => self.slots.get(i).map(|s| s.status),
            None => self.others.get(id).map(|s| s.status),
        }
    }

    /// Nodes queued or running.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Puts node `i` in `ready` or `to_skip` if it is pending with every need settled.
    fn classify(&mut self, i: usize) {
        self.ready.remove(&i);
        self.to_skip.remove(&i);
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        if slot.status != NodeStatus::Pending || self.unsettled[i] > 0 {
            return;
        }
        if !self.has_needs[i] || self.completed_needs[i] > 0 {
            self.ready.insert(i);
        } else {
            self.to_skip.insert(i);
        }
    }

    fn count(&mut self, slot: &Slot, add: bool) {
        let step = |n: &mut usize| {
            *n = if add {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        if slot.in_flight() {
            step(&mut self.in_flight);
        }
        if slot.status == NodeStatus::Waiting {
            step(&mut self.waiting);
        }
    }

    /// Replaces node `i`'s slot, keeping the counters and its dependents' counts right.
    fn set(&mut self, graph: &Graph, i: usize, new: Slot) {
        let Some(current) = self.slots.get_mut(i) else {
            return;
        };
        let old = std::mem::replace(current, new.clone());
        self.count(&old, false);
        self.count(&new, true);
        if old.status == NodeStatus::Pending {
            self.pending = self.pending.saturating_sub(1);
        }
        if new.status == NodeStatus::Pending {
            self.pending += 1;
        }
        let (was_settled, is_settled) = (old.settled(), new.settled());
        let (was_completed, is_completed) = (
            old.status == NodeStatus::Completed,
            new.status == NodeStatus::Completed,
        );
        if (was_settled, was_completed) != (is_settled, is_completed) {
            let dependents = graph.dependents.get(i).cloned().unwrap_or_default();
            for d in dependents {
                let unsettled = &mut self.unsettled[d];
                *unsettled = if is_settled && !was_settled {
                    unsettled.saturating_sub(1)
                } else if was_settled && !is_settled {
                    *unsettled + 1
                } else {
                    *unsettled
                };
                let completed = &mut self.completed_needs[d];
                *completed = if is_completed && !was_completed {
                    *completed + 1
                } else if was_completed && !is_completed {
                    completed.saturating_sub(1)
                } else {
                    *completed
                };
                self.classify(d);
            }
        }
        self.classify(i);
    }

    fn set_other(&mut self, id: &str, new: Slot) {
        if let Some(current) = self.others.get_mut(id) {
            let old = std::mem::replace(current, new.clone());
            self.count(&old, false);
            self.count(&new, true);
        }
    }
}

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

struct Planner<'a> {
    run: &'a WorkflowRun,
    ir: &'a Ir,
    graph: &'a Graph,
    state: &'a mut RunState,
    now: DateTime<Utc>,
    max_in_flight: usize,
    /// Slots as they were before this signal touched them.
    before: BTreeMap<usize, Slot>,
    before_others: BTreeMap<String, Slot>,
    in_flight_before: usize,
    events: Vec<NewEvent>,
    approvals: Vec<ApprovalChange>,
    tasks: Vec<NewTask>,
    status: RunStatus,
    error: Option<String>,
    budget: usize,
    more: bool,
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
            match outcome {
                Outcome::Completed {
                    output_hash,
                    output,
                } => {
                    p.complete(i, output_hash.clone(), *attempt);
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
    }
    if !p.status.is_terminal() {
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

impl<'a> Planner<'a> {
    fn event(&mut self, kind: &str, node: Option<&str>, payload: Value) {
        self.events.push(NewEvent {
            kind: kind.to_string(),
            node_id: node.map(str::to_string),
            payload,
        });
    }

    fn node(&self, i: usize) -> &'a IrNode {
        // `i` always comes from the graph of this IR, so it is in range.
        &self.ir.nodes()[i]
    }

    fn slot(&self, i: usize) -> &Slot {
        &self.state.slots[i]
    }

    /// Changes node `i`'s slot with `f`, remembering what it was before this signal.
    fn update(&mut self, i: usize, f: impl FnOnce(&mut Slot)) {
        let mut slot = self.slot(i).clone();
        self.before.entry(i).or_insert_with(|| slot.clone());
        f(&mut slot);
        self.state.set(self.graph, i, slot);
    }

    /// The position of the node if it is at `attempt` in one of `statuses`.
    fn current(&self, node: &str, attempt: u32, statuses: &[NodeStatus]) -> Option<usize> {
        let i = self.graph.index_of(node)?;
        let s = self.state.slots.get(i)?;
        (s.attempts == attempt && statuses.contains(&s.status)).then_some(i)
    }

    fn complete(&mut self, i: usize, output_hash: String, attempt: u32) {
        self.update(i, |slot| {
            slot.status = NodeStatus::Completed;
            slot.output_hash = Some(output_hash.clone());
            slot.error = None;
            slot.not_before = None;
        });
        let id = self.node(i).id().to_string();
        self.event(
            "node_completed",
            Some(&id),
            json!({"attempt": attempt, "output": output_hash}),
        );
    }

    fn fail_attempt(&mut self, i: usize, attempt: u32, error: &str, retryable: bool) {
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

    fn finish_run(&mut self, status: RunStatus, error: Option<String>) {
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
    fn settle_open(&mut self, reason: &str, by: Option<&str>, comment: Option<&str>) {
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
    fn closed(
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

    fn cancel(&mut self, by: &str, reason: Option<&str>) {
        self.settle_open("run cancelled", Some(by), reason);
        self.event("run_cancelled", None, json!({"by": by, "reason": reason}));
        self.finish_run(RunStatus::Cancelled, None);
    }

    fn task(&mut self, i: usize, attempt: u32, not_before: Option<DateTime<Utc>>) {
        let task = node_task(&self.run.id, self.node(i), attempt, not_before);
        self.tasks.push(task);
    }

    /// Skips and emits until nothing changes (a skip can settle the needs of further nodes),
    /// the signal's node budget runs out (`more`), or the run has `max_in_flight` nodes queued
    /// or running. Nodes are taken in IR order: skips first, then ready nodes.
    fn advance(&mut self, context: &Context) {
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

    fn skip(&mut self, i: usize, reason: &str, warning: bool) {
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
    fn fail_before_start(&mut self, i: usize, error: &str) {
        self.update(i, |slot| slot.attempts = 1);
        self.fail_attempt(i, 1, error, false);
    }

    /// A ready node: skipped (unknown type, `when` false), waiting for approval (`hitl`), or
    /// queued for its workers.
    fn emit(&mut self, i: usize, context: &Context) {
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
    fn settle(&mut self) {
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

    fn finish(self, signal: &Signal) -> Plan {
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

/// `now` plus `ms` milliseconds, or `None` when that is beyond [`MAX_DELAY_MS`] (or beyond what
/// a timestamp can hold): the caller fails the node with a reason instead of overflowing.
pub fn after(now: DateTime<Utc>, ms: u64) -> Option<DateTime<Utc>> {
    if ms > MAX_DELAY_MS {
        return None;
    }
    let delta = TimeDelta::try_milliseconds(i64::try_from(ms).ok()?)?;
    now.checked_add_signed(delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeloom_flow::{compile, from_json_value};

    fn ir(definition: Value) -> Ir {
        compile(&from_json_value(&definition).unwrap()).unwrap().ir
    }

    fn run(status: RunStatus) -> WorkflowRun {
        WorkflowRun {
            id: "run".into(),
            workflow_id: "wf".into(),
            workflow_version: 1,
            ir_hash: "h".into(),
            definition_hash: Some("d".into()),
            ir_version: 1,
            agent_nodes_spawned: 0,
            status,
            inputs: json!({}),
            tokens: 0,
            revision: 1,
            error: None,
            created_at: Utc::now(),
            finished_at: None,
        }
    }

    fn context() -> Context {
        let info = tradeloom_flow::RunInfo {
            id: "run".into(),
            workflow: "wf".into(),
            hash: "h".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        Context::new(&info, serde_json::Map::new())
    }

    /// Plans `signal` at `now` on a fresh state of `ir`; returns the transition.
    fn commit(ir: &Ir, status: RunStatus, signal: &Signal, now: DateTime<Utc>) -> Transition {
        let graph = Graph::new(ir);
        let mut state = RunState::new(ir, &graph, &[]);
        let run = run(status);
        let planned = plan(
            Input {
                run: &run,
                state: &mut state,
                ir,
                graph: &graph,
                context: &mut context(),
                now,
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            },
            signal,
        );
        match planned {
            Plan::Commit { transition, .. } => *transition,
            other => panic!("expected a commit, got {other:?}"),
        }
    }

    #[test]
    fn delays_beyond_the_clock_fail_the_node_instead_of_panicking() {
        // Whatever bounds the compiler puts on durations, a time near the end of the clock
        // overflows any delay.
        let end = DateTime::<Utc>::MAX_UTC - TimeDelta::seconds(1);
        let wait = ir(json!({"name": "w", "nodes": [
            {"id": "w", "type": "wait", "config": {"duration_ms": 5000}},
            {"id": "after", "type": "transform", "needs": ["w"]},
        ]}));
        let t = commit(&wait, RunStatus::Pending, &Signal::Start, end);
        assert_eq!(t.status, Some(RunStatus::Failed));
        assert!(
            t.error.as_deref().unwrap().contains("duration_ms (5000)"),
            "{:?}",
            t.error
        );
        let after = t.nodes.iter().find(|n| n.node_id == "after").unwrap();
        assert_eq!(after.status, NodeStatus::Skipped);

        let review = ir(json!({"name": "r", "nodes": [
            {"id": "r", "type": "hitl", "config": {"prompt": "?", "expires_after": "1h", "default": "reject"}},
        ]}));
        let t = commit(&review, RunStatus::Pending, &Signal::Start, end);
        assert_eq!(t.status, Some(RunStatus::Failed));
        assert!(t.error.as_deref().unwrap().contains("expires_after"));
        assert!(t.approvals.is_empty(), "no approval for a node that failed");

        assert_eq!(after_ms(Utc::now(), u64::MAX), None);
        assert_eq!(after_ms(Utc::now(), MAX_DELAY_MS + 1), None);
        assert!(after_ms(Utc::now(), MAX_DELAY_MS).is_some());
    }

    fn after_ms(now: DateTime<Utc>, ms: u64) -> Option<DateTime<Utc>> {
        after(now, ms)
    }

    #[test]
    fn a_retry_back_off_beyond_the_clock_fails_the_node() {
        let call = ir(json!({"name": "c", "nodes": [
            {"id": "c", "type": "http", "retries": {"max_attempts": 3, "backoff_ms": 1000},
             "config": {"method": "GET", "url": "https://example.com"}},
        ]}));
        let graph = Graph::new(&call);
        let queued = NodeState {
            node_id: "c".into(),
            status: NodeStatus::Running,
            attempts: 1,
            output_hash: None,
            error: None,
            not_before: None,
            updated_at: Utc::now(),
        };
        let mut state = RunState::new(&call, &graph, &[queued]);
        let run = run(RunStatus::Running);
        let failed = Signal::NodeFinished {
            node: "c".into(),
            attempt: 1,
            outcome: Outcome::Failed {
                error: "HTTP 503".into(),
                retryable: true,
            },
        };
        let planned = plan(
            Input {
                run: &run,
                state: &mut state,
                ir: &call,
                graph: &graph,
                context: &mut context(),
                now: DateTime::<Utc>::MAX_UTC,
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            },
            &failed,
        );
        let Plan::Commit { transition, .. } = planned else {
            panic!("expected a commit");
        };
        assert_eq!(transition.status, Some(RunStatus::Failed));
        let error = transition.error.unwrap();
        assert!(
            error.contains("HTTP 503; not retried: the back-off"),
            "{error}"
        );
        assert_eq!(transition.tokens_delta, -1);
    }

    #[test]
    fn a_wide_run_is_emitted_in_bounded_batches() {
        let nodes: Vec<Value> = (0..1000)
            .map(|i| json!({"id": format!("n{i}"), "type": "transform"}))
            .collect();
        let wide = ir(json!({"name": "wide", "nodes": nodes}));
        let graph = Graph::new(&wide);
        let mut state = RunState::new(&wide, &graph, &[]);
        let run = run(RunStatus::Pending);
        let planned = plan(
            Input {
                run: &run,
                state: &mut state,
                ir: &wide,
                graph: &graph,
                context: &mut context(),
                now: Utc::now(),
                max_in_flight: 2000,
            },
            &Signal::Start,
        );
        let Plan::Commit { tasks, more, .. } = planned else {
            panic!("expected a commit");
        };
        assert_eq!(tasks.len(), MAX_NODES_PER_SIGNAL);
        assert!(more, "a continuation is asked for");
        assert_eq!(state.in_flight(), MAX_NODES_PER_SIGNAL);
    }
}
