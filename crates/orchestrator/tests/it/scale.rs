//! Big workflows: work per signal is proportional to the nodes it touches, so 1,000-node wide
//! and chain workflows finish, and a small run started during a big one is not held behind it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tradeloom_store::{NodeStatus, RunStatus};

use crate::harness::{Env, run_sqlite};

const NODES: usize = 1_000;

/// `n` transform nodes, each needing the one before.
fn chain(name: &str, n: usize) -> Value {
    let nodes: Vec<Value> = (0..n)
        .map(|i| {
            if i == 0 {
                json!({"id": "n0", "type": "transform", "config": {"output": {"i": 0}}})
            } else {
                json!({"id": format!("n{i}"), "type": "transform", "needs": [format!("n{}", i - 1)],
                       "config": {"output": {"i": i, "prev": format!("{{{{ n{}.i }}}}", i - 1)}}})
            }
        })
        .collect();
    json!({"name": name, "nodes": nodes})
}

/// `n` independent transform nodes and one that needs them all.
fn wide(name: &str, n: usize) -> Value {
    let mut nodes: Vec<Value> = (0..n)
        .map(
            |i| json!({"id": format!("w{i}"), "type": "transform", "config": {"output": {"i": i}}}),
        )
        .collect();
    let all: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
    nodes.push(json!({"id": "join", "type": "transform", "needs": all,
                      "config": {"output": {"last": format!("{{{{ w{}.i }}}}", n - 1)}}}));
    json!({"name": name, "nodes": nodes})
}

/// Waits (up to `limit`) until the run is terminal.
async fn finish(env: &Env, run: &str, limit: Duration) -> RunStatus {
    let run = env.runtime.wait_for(run, limit).await.unwrap();
    assert!(
        run.status.is_terminal(),
        "run {} still {} after {limit:?}",
        run.id,
        run.status
    );
    run.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_node_chain_finishes() {
    run_sqlite(|env| async move {
        let id = env.define(chain("chain", NODES)).await;
        let started = Instant::now();
        let run = env.start(&id, json!({})).await;
        assert_eq!(
            finish(&env, &run, Duration::from_secs(240)).await,
            RunStatus::Completed
        );
        eprintln!(
            "{NODES}-node chain ran in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let view = env.runtime.view(&run).await.unwrap();
        assert!(view.nodes.iter().all(|n| n.status == NodeStatus::Completed));
        let last = env.output(&view, &format!("n{}", NODES - 1)).await;
        assert_eq!(last, json!({"i": NODES - 1, "prev": NODES - 2}));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_node_wide_run_finishes() {
    run_sqlite(|env| async move {
        let id = env.define(wide("wide", NODES)).await;
        let started = Instant::now();
        let run = env.start(&id, json!({})).await;
        assert_eq!(
            finish(&env, &run, Duration::from_secs(240)).await,
            RunStatus::Completed
        );
        eprintln!(
            "{NODES}-node wide run ran in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let view = env.runtime.view(&run).await.unwrap();
        assert_eq!(env.output(&view, "join").await, json!({"last": NODES - 1}));
        assert_eq!(view.tokens, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_run_is_not_held_behind_a_big_one() {
    run_sqlite(|env| async move {
        let big = env.define(wide("big", NODES)).await;
        let small = env.define(chain("small", 2)).await;
        let big_run = env.start(&big, json!({})).await;
        let small_run = env.start(&small, json!({})).await;
        assert_eq!(
            finish(&env, &small_run, Duration::from_secs(240)).await,
            RunStatus::Completed
        );
        let big_now = env.store.workflow_run(&big_run).await.unwrap();
        assert!(
            !big_now.status.is_terminal(),
            "the big run finished before the small one"
        );
        // Cancelling the big run stops its work: nothing of it is left to run.
        env.runtime.cancel(&big_run, "ops", None).await.unwrap();
        let view = env.runtime.view(&big_run).await.unwrap();
        assert!(
            view.nodes
                .iter()
                .all(|n| matches!(n.status, NodeStatus::Completed | NodeStatus::Skipped)),
            "open nodes left after cancel"
        );
        let queue = env.runtime.coordinator().queue().clone();
        let mut left = usize::MAX;
        for _ in 0..200 {
            let stats = queue.stats("transform").await.unwrap();
            left = stats.ready + stats.delayed + stats.leased;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(left, 0, "tasks of the cancelled run are still queued");
    })
    .await;
}
