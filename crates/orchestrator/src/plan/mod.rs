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

mod advance;
mod planner;
mod state;
mod tasks;

pub use planner::{
    DEFAULT_MAX_IN_FLIGHT, Input, MAX_NODES_PER_SIGNAL, Plan, decision_output, plan,
};
pub use state::{Graph, RunState};
pub use tasks::{MAX_DELAY_MS, TIMER_POOL, after, expiry_timer, node_task, notify_task, pool_of};

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};
    use serde_json::{Value, json};
    use tradeloom_flow::{Context, Ir};
    use tradeloom_store::{NodeState, NodeStatus, RunStatus, Transition, WorkflowRun};

    use super::*;
    use crate::signal::{Outcome, Signal};
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
            priority: tradeloom_store::RunPriority::Normal,
            api_key_id: None,
            workflow_limit: None,
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
    fn a_run_paused_before_it_started_starts_on_resume() {
        let one = ir(json!({"name": "one", "nodes": [{"id": "a", "type": "transform"}]}));
        let resume = Signal::Resume {
            by: "ops".into(),
            request: "r".into(),
        };
        let kinds =
            |t: &Transition| -> Vec<String> { t.events.iter().map(|e| e.kind.clone()).collect() };
        // Paused while pending: no node has left `pending`.
        let t = commit(&one, RunStatus::Paused, &resume, Utc::now());
        assert_eq!(t.status, Some(RunStatus::Running));
        let events = kinds(&t);
        assert_eq!(events[..2], ["run_resumed", "run_started"], "{events:?}");
        assert_eq!(events.iter().filter(|k| *k == "run_started").count(), 1);

        // Paused after it started: its node was queued; resuming is not starting.
        let graph = Graph::new(&one);
        let queued = NodeState {
            node_id: "a".into(),
            status: NodeStatus::Queued,
            attempts: 1,
            output_hash: None,
            error: None,
            not_before: None,
            updated_at: Utc::now(),
        };
        let mut state = RunState::new(&one, &graph, &[queued]);
        let paused = run(RunStatus::Paused);
        let planned = plan(
            Input {
                run: &paused,
                state: &mut state,
                ir: &one,
                graph: &graph,
                context: &mut context(),
                now: Utc::now(),
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            },
            &resume,
        );
        let Plan::Commit { transition, .. } = planned else {
            panic!("expected a commit");
        };
        assert_eq!(kinds(&transition), ["run_resumed"]);
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
