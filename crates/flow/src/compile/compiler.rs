//! The [`Compiler`]: the whole-definition checks (size, header, ids, needs, cycles, depth,
//! reachability), the error list, and building the [`Ir`].

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::graph::{Condensation, condensation, shortest_cycle, topological_order};
use super::names::{check_input_name, check_node_id, suggestion};

use crate::cron::{check_cron, check_timezone};
use crate::definition::{Definition, NodeType};

use crate::error::{CompileError, CompileErrorKind as Kind};
use crate::field_path::FieldPath;
use crate::ir::{Ir, IrNode, NodeKind, RetryPolicy};
use crate::limits::{FlowLimits, json_size};

use crate::predicate::Predicate;
use crate::template::Template;

/// Errors (and, separately, warnings) listed at most; the rest are counted in a last line.
pub const MAX_REPORTED: usize = 100;

/// A definition that compiled: its IR and anything worth telling the author.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    pub ir: Ir,
    /// `place: path: message` lines (unknown node types, nodes that will always be skipped).
    pub warnings: Vec<String>,
}

/// What the per-node checks produce for one node (parts that failed are left out).
pub(super) struct NodeParts {
    pub(super) when: Option<Predicate>,
    pub(super) kind: Option<NodeKind>,
    pub(super) retry: RetryPolicy,
    pub(super) inputs: BTreeMap<String, Template>,
}

/// Whether a node can run, as far as compile time can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    MayRun,
    /// Its `when` is constant false, or all its needs are `Never`.
    Never,
    /// Skipped by the runtime: an unknown type, or all needs skipped with at least one unknown.
    AlwaysSkipped,
}

/// A template that reads node `target` which is not among the direct needs of `node`: allowed
/// only if `target` is among its transitive needs, checked for all such reads at once.
pub(super) struct IndirectRead {
    /// The error's place among the others, had it been reported when found.
    pub(super) seq: usize,
    pub(super) node: usize,
    pub(super) target: usize,
    /// The path read, as written in the template.
    pub(super) read: String,
    pub(super) at: FieldPath,
}

pub(super) struct Compiler<'d> {
    pub(super) def: &'d Definition,
    pub(super) limits: &'d FlowLimits,
    /// With the order they were found in, which breaks ties of place when they are sorted.
    pub(super) errors: Vec<(usize, CompileError)>,
    pub(super) next_seq: usize,
    pub(super) warnings: Vec<String>,
    /// Errors and warnings found beyond [`MAX_REPORTED`].
    pub(super) unlisted_errors: usize,
    pub(super) unlisted_warnings: usize,
    pub(super) pending: Vec<IndirectRead>,
}

impl<'d> Compiler<'d> {
    pub(super) fn new(def: &'d Definition, limits: &'d FlowLimits) -> Compiler<'d> {
        Compiler {
            def,
            limits,
            errors: Vec::new(),
            next_seq: 0,
            warnings: Vec::new(),
            unlisted_errors: 0,
            unlisted_warnings: 0,
            pending: Vec::new(),
        }
    }

    /// Whether further errors are only counted (so hints need not be computed).
    pub(super) fn errors_full(&self) -> bool {
        self.errors.len() >= MAX_REPORTED
    }

    pub(super) fn error(&mut self, kind: Kind, path: FieldPath, message: impl Into<String>) {
        let seq = self.take_seq();
        self.error_in_order(seq, kind, path, message);
    }

    /// A number for the next error found (see [`IndirectRead::seq`]).
    pub(super) fn take_seq(&mut self) -> usize {
        self.next_seq += 1;
        self.next_seq
    }

    pub(super) fn error_in_order(
        &mut self,
        seq: usize,
        kind: Kind,
        path: FieldPath,
        message: impl Into<String>,
    ) {
        if self.errors_full() {
            self.unlisted_errors += 1;
            return;
        }
        // Locating re-reads the text, so it is done only for errors that are listed.
        let location = self.def.source().and_then(|s| s.locate(&path));
        self.errors.push((
            seq,
            CompileError {
                kind,
                path,
                location,
                message: message.into(),
            },
        ));
    }

    pub(super) fn warning(&mut self, path: FieldPath, message: impl Into<String>) {
        if self.warnings.len() >= MAX_REPORTED {
            self.unlisted_warnings += 1;
            return;
        }
        let place = self
            .def
            .source()
            .and_then(|s| s.locate(&path))
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        self.warnings
            .push(format!("{place}{path}: {}", message.into()));
    }

    pub(super) fn run(mut self) -> Result<Compiled, Vec<CompileError>> {
        let def = self.def;
        let nodes_at = FieldPath::root().key("nodes");
        // Size first (node count, then bytes): everything after costs time in proportion to it.
        if def.nodes.len() > self.limits.max_nodes {
            self.error(
                Kind::Limit,
                nodes_at,
                format!(
                    "{} nodes, over the limit max_nodes ({})",
                    def.nodes.len(),
                    self.limits.max_nodes
                ),
            );
            return Err(self.into_errors());
        }
        let bytes = json_size(def);
        if bytes > self.limits.max_definition_bytes {
            self.error(
                Kind::Limit,
                FieldPath::root(),
                format!(
                    "the definition is {bytes} bytes as compact JSON, over the limit max_definition_bytes ({})",
                    self.limits.max_definition_bytes
                ),
            );
            return Err(self.into_errors());
        }
        self.check_header();

        // Ids: the first node with an id owns it.
        let mut index: HashMap<&'d str, usize> = HashMap::new();
        for (i, node) in def.nodes.iter().enumerate() {
            let at = nodes_at.index(i).key("id");
            if let Some(problem) = check_node_id(&node.id) {
                self.error(Kind::InvalidName, at.clone(), problem);
            }
            if let Some(&first) = index.get(node.id.as_str()) {
                self.error(
                    Kind::DuplicateId,
                    at,
                    format!(
                        "duplicate node id `{}` (first used by nodes[{first}])",
                        node.id
                    ),
                );
            } else {
                index.insert(&node.id, i);
            }
        }

        let deps = self.resolve_needs(&index);
        let components = condensation(&deps);
        let cyclic = self.check_cycles(&deps, &components);

        // `direct[k] == i + 1` while node i is checked: k is among its needs.
        let mut direct = vec![0; def.nodes.len()];
        let parts: Vec<NodeParts> = (0..def.nodes.len())
            .map(|i| {
                for &k in &deps[i] {
                    direct[k] = i + 1;
                }
                self.check_node(i, &index, &direct)
            })
            .collect();
        self.check_indirect_reads(&deps, &components);

        self.check_agent_limit();
        self.check_concurrency_limit();
        let order = topological_order(&deps, &def.nodes);
        if !cyclic {
            self.check_depth(&deps, &order);
            self.check_reachability(&deps, &parts, &order);
        }

        if !self.errors.is_empty() {
            return Err(self.into_errors());
        }
        if self.unlisted_warnings > 0 {
            self.warnings.push(format!(
                "… and {} more warning(s); only the first {MAX_REPORTED} are listed",
                self.unlisted_warnings
            ));
        }
        let ir = self.build(&deps, parts, &order);
        Ok(Compiled {
            ir,
            warnings: self.warnings,
        })
    }

    /// The errors in file order (by path without a file; found first for the same place), and
    /// a count of those not listed.
    pub(super) fn into_errors(self) -> Vec<CompileError> {
        let mut errors = self.errors;
        errors.sort_by(|(a_seq, a), (b_seq, b)| {
            let place = |e: &CompileError| e.location.as_ref().map(|l| (l.line, l.column));
            place(a)
                .cmp(&place(b))
                .then_with(|| a.path.cmp(&b.path))
                .then(a_seq.cmp(b_seq))
        });
        let mut errors: Vec<CompileError> = errors.into_iter().map(|(_, e)| e).collect();
        if self.unlisted_errors > 0 {
            errors.push(CompileError {
                kind: Kind::Limit,
                path: FieldPath::root(),
                location: None,
                message: format!(
                    "… and {} more problem(s); only the first {MAX_REPORTED} are listed",
                    self.unlisted_errors
                ),
            });
        }
        errors
    }

    /// Name, declared inputs, schedule, and that there are nodes at all.
    pub(super) fn check_header(&mut self) {
        let def = self.def;
        if def.name.trim().is_empty() {
            self.error(
                Kind::InvalidName,
                FieldPath::root().key("name"),
                "must not be empty",
            );
        } else if def.name.chars().any(char::is_control) || def.name.chars().count() > 200 {
            self.error(
                Kind::InvalidName,
                FieldPath::root().key("name"),
                "must be at most 200 characters, without control characters",
            );
        }
        for name in def.inputs.keys() {
            if let Some(problem) = check_input_name(name) {
                self.error(
                    Kind::InvalidName,
                    FieldPath::root().key("inputs").key(name),
                    problem,
                );
            }
        }
        if let Some(schedule) = &def.schedule {
            let at = FieldPath::root().key("schedule");
            if let Err(e) = check_cron(&schedule.cron) {
                self.error(Kind::Schedule, at.key("cron"), e.to_string());
            }
            if let Err(e) = check_timezone(&schedule.timezone) {
                self.error(Kind::Schedule, at.key("timezone"), e.to_string());
            }
        }
        if def.nodes.is_empty() {
            self.error(
                Kind::Config,
                FieldPath::root().key("nodes"),
                "a workflow needs at least one node",
            );
        }
    }

    /// Each node's needs as indices (unknown and repeated names reported and left out).
    pub(super) fn resolve_needs(&mut self, index: &HashMap<&str, usize>) -> Vec<Vec<usize>> {
        let def = self.def;
        let ids: Vec<&str> = def.nodes.iter().map(|n| n.id.as_str()).collect();
        let mut deps = vec![Vec::new(); def.nodes.len()];
        // `listed[k] == i + 1`: node i has already listed k.
        let mut listed = vec![0; def.nodes.len()];
        for (i, node) in def.nodes.iter().enumerate() {
            if node.needs.len() > self.limits.max_needs {
                self.error(
                    Kind::Limit,
                    FieldPath::root().key("nodes").index(i).key("needs"),
                    format!(
                        "node `{}` has {} needs, over the limit max_needs ({})",
                        node.id,
                        node.needs.len(),
                        self.limits.max_needs
                    ),
                );
            }
            for (j, need) in node.needs.iter().enumerate() {
                let at = FieldPath::root()
                    .key("nodes")
                    .index(i)
                    .key("needs")
                    .index(j);
                match index.get(need.as_str()) {
                    Some(&k) if listed[k] == i + 1 => {
                        self.error(Kind::UnknownNeed, at, format!("`{need}` is listed twice"));
                    }
                    Some(&k) => {
                        listed[k] = i + 1;
                        deps[i].push(k);
                    }
                    None => {
                        let hint = if self.errors_full() {
                            String::new()
                        } else {
                            suggestion(need, &ids)
                        };
                        self.error(
                            Kind::UnknownNeed,
                            at,
                            format!("unknown node `{need}`{hint}"),
                        );
                    }
                }
            }
        }
        deps
    }

    /// Reports each cycle once (one per strongly connected component); true if there was any.
    pub(super) fn check_cycles(&mut self, deps: &[Vec<usize>], components: &Condensation) -> bool {
        let def = self.def;
        let mut any = false;
        let mut cyclic: Vec<&[usize]> = components
            .members
            .iter()
            .filter(|c| c.len() > 1 || deps[c[0]].contains(&c[0]))
            .map(Vec::as_slice)
            .collect();
        // Named in file order of their first node.
        cyclic.sort_by_key(|c| c.iter().min().copied());
        for component in cyclic {
            let start = component.iter().copied().min().unwrap_or(component[0]);
            any = true;
            if self.errors_full() {
                self.unlisted_errors += 1;
                continue;
            }
            let cycle = shortest_cycle(start, deps, &components.of);
            let names: Vec<&str> = cycle.iter().map(|&i| def.nodes[i].id.as_str()).collect();
            self.error(
                Kind::Cycle,
                FieldPath::root().key("nodes").index(start).key("needs"),
                format!(
                    "dependency cycle: {} (each node needs the next)",
                    names.join(" → ")
                ),
            );
        }
        any
    }

    /// `limits.max_concurrent_runs`, when given, admits at least one run.
    pub(super) fn check_concurrency_limit(&mut self) {
        if self.def.limits.max_concurrent_runs == Some(0) {
            self.error(
                Kind::Limit,
                FieldPath::root().key("limits").key("max_concurrent_runs"),
                "limits.max_concurrent_runs is 0, which would queue every run for ever; give at least 1, or leave it out for no limit".to_string(),
            );
        }
    }

    pub(super) fn check_agent_limit(&mut self) {
        let def = self.def;
        let max = def.limits.max_agent_nodes as usize;
        let agents: Vec<usize> = def
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.node_type == NodeType::Agent)
            .map(|(i, _)| i)
            .collect();
        if agents.len() > max {
            let first_over = agents[max];
            self.error(
                Kind::AgentLimit,
                FieldPath::root().key("nodes").index(first_over),
                format!(
                    "{} agent nodes, but limits.max_agent_nodes is {max}; node `{}` is one too many",
                    agents.len(),
                    def.nodes[first_over].id
                ),
            );
        }
    }

    /// Reports the first node (in `order`) that ends a chain of needs longer than
    /// `max_depth`; needs an acyclic graph.
    pub(super) fn check_depth(&mut self, deps: &[Vec<usize>], order: &[usize]) {
        let def = self.def;
        let max = self.limits.max_depth;
        // Nodes on the longest chain ending at each node, and the need it continues from.
        let mut depth = vec![0usize; def.nodes.len()];
        let mut via = vec![None; def.nodes.len()];
        for &i in order {
            let deepest = deps[i].iter().copied().max_by_key(|&k| depth[k]);
            depth[i] = 1 + deepest.map_or(0, |k| depth[k]);
            via[i] = deepest;
            if depth[i] > max {
                let mut first = i;
                while let Some(k) = via[first] {
                    first = k;
                }
                let first = &def.nodes[first].id;
                self.error(
                    Kind::Limit,
                    FieldPath::root().key("nodes").index(i).key("needs"),
                    format!(
                        "node `{}` ends a chain of {} nodes (from `{first}`), over the limit max_depth ({max})",
                        def.nodes[i].id, depth[i]
                    ),
                );
                return;
            }
        }
    }

    /// Reports nodes that can never run (see the module docs); needs an acyclic graph and its
    /// order.
    pub(super) fn check_reachability(
        &mut self,
        deps: &[Vec<usize>],
        parts: &[NodeParts],
        order: &[usize],
    ) {
        let def = self.def;
        let mut fate = vec![Fate::MayRun; def.nodes.len()];
        for &i in order {
            let at = FieldPath::root().key("nodes").index(i);
            let id = &def.nodes[i].id;
            let constant_false = parts[i]
                .when
                .as_ref()
                .is_some_and(|p| p.is_constant() && !p.evaluate(&Value::Null));
            if constant_false {
                fate[i] = Fate::Never;
                self.error(
                    Kind::Unreachable,
                    at.key("when"),
                    format!("node `{id}` can never run: its `when` is always false"),
                );
                continue;
            }
            if !deps[i].is_empty() && deps[i].iter().all(|&k| fate[k] != Fate::MayRun) {
                let names: Vec<String> = deps[i]
                    .iter()
                    .map(|&k| format!("`{}`", def.nodes[k].id))
                    .collect();
                if deps[i].iter().all(|&k| fate[k] == Fate::Never) {
                    fate[i] = Fate::Never;
                    self.error(
                        Kind::Unreachable,
                        at.key("needs"),
                        format!(
                            "node `{id}` can never run: none of the nodes it needs can run ({})",
                            names.join(", ")
                        ),
                    );
                } else {
                    fate[i] = Fate::AlwaysSkipped;
                    self.warning(
                        at.key("needs"),
                        format!(
                            "node `{id}` will always be skipped: every node it needs ({}) is skipped",
                            names.join(", ")
                        ),
                    );
                }
                continue;
            }
            if def.nodes[i].node_type.is_known() {
                continue;
            }
            fate[i] = Fate::AlwaysSkipped;
        }
    }

    /// Builds the IR; only called without errors, so every part is present.
    pub(super) fn build(&self, deps: &[Vec<usize>], parts: Vec<NodeParts>, order: &[usize]) -> Ir {
        let def = self.def;
        let mut position = vec![0; def.nodes.len()];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }
        let mut parts: Vec<Option<NodeParts>> = parts.into_iter().map(Some).collect();
        let mut nodes = Vec::with_capacity(order.len());
        for (p, &i) in order.iter().enumerate() {
            let node = &def.nodes[i];
            let Some(NodeParts {
                when,
                kind: Some(kind),
                retry,
                inputs,
            }) = parts[i].take()
            else {
                // Unreachable: a node without a kind has reported an error.
                continue;
            };
            let mut needs: Vec<usize> = deps[i].iter().map(|&k| position[k]).collect();
            needs.sort_unstable();
            nodes.push(IrNode {
                id: node.id.clone(),
                index: p,
                needs,
                when,
                kind,
                retry,
                timeout_ms: node.timeout_ms,
                inputs,
                definition_index: i,
            });
        }
        let positions = nodes
            .iter()
            .map(|n: &IrNode| (n.id.clone(), n.index))
            .collect();
        Ir {
            name: def.name.clone(),
            description: def.description.clone(),
            inputs: def.inputs.clone(),
            schedule: def.schedule.clone(),
            limits: def.limits,
            nodes,
            positions,
        }
    }
}
