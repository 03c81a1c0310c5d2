//! A run's node states as the planner keeps them: per node its slot, how many of its needs are
//! unsettled, and the nodes ready to skip or emit ([`RunState`]), over the IR's [`Graph`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use tradeloom_flow::Ir;

use tradeloom_store::{NodeState, NodeStatus};

/// One node's state while a transition is computed.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Slot {
    pub(super) status: NodeStatus,
    pub(super) attempts: u32,
    pub(super) output_hash: Option<String>,
    pub(super) error: Option<String>,
    pub(super) not_before: Option<DateTime<Utc>>,
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
    pub(super) fn pending() -> Self {
        Slot {
            status: NodeStatus::Pending,
            attempts: 0,
            output_hash: None,
            error: None,
            not_before: None,
        }
    }

    pub(super) fn in_flight(&self) -> bool {
        matches!(self.status, NodeStatus::Queued | NodeStatus::Running)
    }

    pub(super) fn settled(&self) -> bool {
        matches!(self.status, NodeStatus::Completed | NodeStatus::Skipped)
    }

    pub(super) fn open(&self) -> bool {
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
    pub(super) ids: HashMap<String, usize>,
    pub(super) dependents: Vec<Vec<usize>>,
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
    pub(super) slots: Vec<Slot>,
    pub(super) has_needs: Vec<bool>,
    /// States of nodes the IR no longer has (removed by a patch).
    pub(super) others: BTreeMap<String, Slot>,
    /// Needs not yet completed or skipped, per node.
    pub(super) unsettled: Vec<u32>,
    /// Needs completed, per node.
    pub(super) completed_needs: Vec<u32>,
    /// Pending nodes whose needs are all settled with one completed (or that have none).
    pub(super) ready: BTreeSet<usize>,
    /// Pending nodes whose needs are all skipped.
    pub(super) to_skip: BTreeSet<usize>,
    pub(super) in_flight: usize,
    pub(super) waiting: usize,
    pub(super) pending: usize,
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

    /// Whether no node has left `pending`: the run's `Start` has not taken effect (starting
    /// queues or skips at least one node).
    pub fn untouched(&self) -> bool {
        self.others.is_empty()
            && self
                .slots
                .iter()
                .all(|s| s.status == NodeStatus::Pending && s.attempts == 0)
    }

    /// Nodes queued or running.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Puts node `i` in `ready` or `to_skip` if it is pending with every need settled.
    pub(super) fn classify(&mut self, i: usize) {
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

    pub(super) fn count(&mut self, slot: &Slot, add: bool) {
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
    pub(super) fn set(&mut self, graph: &Graph, i: usize, new: Slot) {
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

    pub(super) fn set_other(&mut self, id: &str, new: Slot) {
        if let Some(current) = self.others.get_mut(id) {
            let old = std::mem::replace(current, new.clone());
            self.count(&old, false);
            self.count(&new, true);
        }
    }
}
