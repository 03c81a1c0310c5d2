//! Runtime patches: RFC 6902 operations on a running workflow's definition, vetted by
//! [`tradeloom_flow::validate_patch`], with the registered agents and skills of the nodes they
//! add resolved as at a run's start, and committed as a new IR version together with the nodes
//! it makes ready, in one transition.

use chrono::Utc;
use serde_json::{Value, json};
use tradeloom_flow::patch::patch_from_value;
use tradeloom_flow::{
    Compiled, Context, Definition, Ir, Patched, RunState, compile_with, from_json_value,
    parse_definition, validate_patch_with,
};
use tradeloom_queue::NewTask;
use tradeloom_store::{
    ApprovalChange, ApprovalStatus, NewEvent, NewPatch, NodeChange, NodeState, NodeStatus,
    StoreError, Transition, TransitionOutcome, WorkflowRun,
};

use crate::coordinator::{Coordinator, Snapshot};
use crate::error::OrchestratorError;
use crate::plan::{Graph, Input, Plan, RunState as PlanState, plan};
use crate::signal::{Signal, approval_id};

/// What became of a patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchOutcome {
    /// The run now executes this IR version.
    Applied { ir_version: u32 },
    /// Every reason the patch was refused; nothing changed.
    Rejected { reasons: Vec<String> },
}

impl Coordinator {
    /// Applies `operations` (a JSON array of RFC 6902 operations on the run's definition
    /// document) to run `run_id` on behalf of `by`. [`OrchestratorError::Conflict`] if the run
    /// has finished; [`OrchestratorError::Unresolved`] if the patched definition names an agent
    /// or skill that is not registered (nothing changes).
    pub async fn patch(
        &self,
        run_id: &str,
        operations: &Value,
        by: &str,
    ) -> Result<PatchOutcome, OrchestratorError> {
        if !operations.is_array() {
            return Ok(PatchOutcome::Rejected {
                reasons: vec![
                    "a JSON Patch (RFC 6902) is an array of operations, e.g. [{\"op\": \"add\", \"path\": \"/nodes/-\", \"value\": {...}}]".to_string(),
                ],
            });
        }
        let ops = match patch_from_value(operations) {
            Ok(ops) => ops,
            Err(e) => {
                return Ok(PatchOutcome::Rejected {
                    reasons: vec![e.to_string()],
                });
            }
        };
        loop {
            let Snapshot {
                run,
                states,
                mut context,
                ..
            } = self.snapshot(run_id).await?;
            if run.status.is_terminal() {
                return Err(OrchestratorError::Conflict(format!(
                    "run {run_id} is {}; only unfinished runs can be patched",
                    run.status
                )));
            }
            let definition_hash = run.definition_hash.clone().unwrap_or_default();
            let blob = self.store().blob(&definition_hash).await?;
            let current = parse_definition(&blob.body, "run definition").map_err(|e| {
                OrchestratorError::Definition {
                    hash: definition_hash.clone(),
                    message: e.to_string(),
                }
            })?;
            let state = RunState {
                completed: states
                    .iter()
                    .filter(|s| s.status == NodeStatus::Completed)
                    .map(|s| s.node_id.clone())
                    .collect(),
                patch_depth: run.ir_version.saturating_sub(1),
                agent_nodes_spawned: run.agent_nodes_spawned,
            };
            let Patched {
                definition: patched,
                compiled,
            } = match validate_patch_with(&current, &ops, &state, self.flow_limits()) {
                Ok(p) => p,
                Err(reasons) => return Ok(PatchOutcome::Rejected { reasons }),
            };
            // The agents and skills an added node names are resolved and pinned as when a run
            // starts: the run executes, and records, the versions current at the patch.
            let Patched {
                definition: patched,
                compiled,
            } = self.resolve_refs(patched, compiled).await?;
            // An agent (or an API caller) must not name a variable the operator did not allow.
            let secret_problems =
                crate::secret_env::definition_problems(&patched, self.secret_env());
            if !secret_problems.is_empty() {
                return Ok(PatchOutcome::Rejected {
                    reasons: secret_problems.iter().map(ToString::to_string).collect(),
                });
            }
            let added_agents = tradeloom_flow::patch::added_agent_nodes(&current, &patched) as u32;
            let text = tradeloom_core::canonical_json(&patched.to_json_value());
            let new_definition = self.store().put_blob("workflow_definition", &text).await?;
            let ir = compiled.ir;
            let ir_hash = self
                .store()
                .put_blob("workflow_ir", &ir.canonical_json())
                .await?;
            self.ir_of_definition(&new_definition).await?;

            let Removed {
                dropped,
                approvals,
                kept,
            } = removed_nodes(&states, &ir, run_id, by);
            let version = run.ir_version + 1;
            let (mut transition, tasks, more) =
                self.plan_after_patch(&run, &mut context, &ir, &kept)?;
            transition.signal_id = format!("patch@{version}");
            let in_flight = |s: &NodeStatus| matches!(s, NodeStatus::Queued | NodeStatus::Running);
            transition.tokens_delta -=
                dropped.iter().filter(|s| in_flight(&s.status)).count() as i64;
            transition.nodes.extend(dropped.iter().map(|s| NodeChange {
                node_id: s.node_id.clone(),
                status: NodeStatus::Skipped,
                attempts: s.attempts,
                output_hash: None,
                error: Some(format!("removed by patch {version}")),
                not_before: None,
            }));
            transition.approvals.extend(approvals);
            transition.events.insert(
                0,
                NewEvent {
                    kind: "patch_applied".into(),
                    node_id: None,
                    payload: json!({
                        "ir_version": version, "by": by, "ir_hash": ir_hash,
                        "operations": operations,
                        "removed": dropped.iter().map(|s| s.node_id.clone()).collect::<Vec<_>>(),
                    }),
                },
            );
            transition.patch = Some(NewPatch {
                operations: operations.clone(),
                definition_hash: new_definition,
                ir_hash,
                applied_by: by.to_string(),
                added_agent_nodes: added_agents,
            });
            let status = transition.status.unwrap_or(run.status);
            let outcome = self
                .commit(tradeloom_store::RunWrite::Transition(transition))
                .await;
            // The run's definition changed (or another signal won): what this process holds of
            // it is read again.
            self.invalidate(run_id).await;
            match outcome {
                Ok(TransitionOutcome::Applied { revision }) => {
                    self.committed(run_id, status, revision, tasks, more).await;
                    return Ok(PatchOutcome::Applied {
                        ir_version: version,
                    });
                }
                Ok(TransitionOutcome::AlreadyApplied) | Err(StoreError::Conflict(_)) => {
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `patched` with the registered agents and unpinned skills of its agent nodes resolved
    /// ([`crate::agent_refs::resolve_definition_refs`]) and compiled again, or as it is when it
    /// names none. One that does not resolve is [`OrchestratorError::Unresolved`], as at start.
    async fn resolve_refs(
        &self,
        patched: Definition,
        compiled: Compiled,
    ) -> Result<Patched, OrchestratorError> {
        let document = patched.to_json_value();
        let Some(resolved) =
            crate::agent_refs::resolve_definition_refs(&**self.store(), &document).await?
        else {
            return Ok(Patched {
                definition: patched,
                compiled,
            });
        };
        // What a registered agent brings may not fit the node (e.g. a market tool without
        // `market`): the caller's mistake, said as at start.
        let unfit = |message: String| OrchestratorError::Unresolved {
            message: format!(
                "with its registered agents and skills resolved, the workflow does not compile: \
                 {message}"
            ),
            errors: vec![message],
        };
        let definition = from_json_value(&resolved).map_err(|e| unfit(e.to_string()))?;
        let compiled = compile_with(&definition, self.flow_limits()).map_err(|errors| {
            unfit(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(Patched {
            definition,
            compiled,
        })
    }

    /// Plans the patched run as if an `Advance` signal came: what the new IR makes ready.
    fn plan_after_patch(
        &self,
        run: &WorkflowRun,
        context: &mut Context,
        ir: &Ir,
        kept: &[NodeState],
    ) -> Result<(Transition, Vec<NewTask>, bool), OrchestratorError> {
        let signal = Signal::Advance {
            revision: run.revision,
        };
        let graph = Graph::new(ir);
        let mut state = PlanState::new(ir, &graph, kept);
        let planned = plan(
            Input {
                run,
                state: &mut state,
                ir,
                graph: &graph,
                context,
                now: Utc::now(),
                max_in_flight: self.max_in_flight(),
            },
            &signal,
        );
        Ok(match planned {
            Plan::Commit {
                transition,
                tasks,
                more,
            } => (*transition, tasks, more),
            Plan::Nothing => (
                Transition::new(&run.id, "", run.revision),
                Vec::new(),
                false,
            ),
            Plan::Stale => {
                return Err(OrchestratorError::Conflict(format!(
                    "run {} finished while the patch was computed",
                    run.id
                )));
            }
        })
    }
}

/// The node states a patch leaves: those it removed while still open (`dropped`, with their
/// approvals to cancel) and the rest (`kept`).
struct Removed {
    dropped: Vec<NodeState>,
    approvals: Vec<ApprovalChange>,
    kept: Vec<NodeState>,
}

/// Nodes the patch removed that were still to run, or running, are dropped.
fn removed_nodes(states: &[NodeState], ir: &Ir, run_id: &str, by: &str) -> Removed {
    let mut dropped = Vec::new();
    let mut approvals = Vec::new();
    let mut kept = Vec::new();
    for s in states {
        let removed = ir.node(&s.node_id).is_none();
        let open = matches!(
            s.status,
            NodeStatus::Pending | NodeStatus::Queued | NodeStatus::Running | NodeStatus::Waiting
        );
        if removed && open {
            if s.status == NodeStatus::Waiting {
                approvals.push(ApprovalChange::Close {
                    id: approval_id(run_id, &s.node_id, s.attempts),
                    status: ApprovalStatus::Cancelled,
                    decision: None,
                    by: Some(by.to_string()),
                    comment: Some("node removed by a patch".into()),
                });
            }
            dropped.push(s.clone());
        } else {
            kept.push(s.clone());
        }
    }
    Removed {
        dropped,
        approvals,
        kept,
    }
}
