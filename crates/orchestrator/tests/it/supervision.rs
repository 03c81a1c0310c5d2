//! Supervision of the runtime's consume loops (what the health monitor's recovery uses): loops
//! that died are seen as finished, respawned ones take the waiting work.

use serde_json::json;
use tradeloom_orchestrator::runtime::{COORDINATOR_GROUP, LoopGroupHealth};
use tradeloom_store::RunStatus;

use crate::harness::run_sqlite;

fn group<'a>(health: &'a [LoopGroupHealth], name: &str) -> &'a LoopGroupHealth {
    health
        .iter()
        .find(|g| g.group == name)
        .unwrap_or_else(|| panic!("no group {name} in {health:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_worker_pool_is_seen_and_respawned_and_its_work_completes() {
    run_sqlite(|env| async move {
        let health = env.runtime.loop_health();
        assert_eq!(
            group(&health, "transform"),
            &LoopGroupHealth {
                group: "transform".into(),
                total: 4,
                finished: 0
            }
        );
        assert_eq!(group(&health, COORDINATOR_GROUP).finished, 0);
        assert_eq!(env.runtime.respawn_finished("transform"), 0);

        assert_eq!(env.runtime.abort_loops("transform").await, 4);
        let health = env.runtime.loop_health();
        assert_eq!(group(&health, "transform").finished, 4);
        assert_eq!(group(&health, "wait").finished, 0, "other pools untouched");

        let id = env
            .define(json!({"name": "one", "nodes": [
                {"id": "a", "type": "transform", "config": {"output": {"x": 1}}},
            ]}))
            .await;
        let run = env.start(&id, json!({})).await;
        // Nobody takes transform tasks now.
        let view = env.runtime.view(&run).await.unwrap();
        assert!(!view.status.is_terminal(), "{:?}", view.status);
        assert_eq!(env.runtime.requeue_expired().await.unwrap(), vec![]);

        assert_eq!(env.runtime.respawn_finished("transform"), 4);
        assert_eq!(group(&env.runtime.loop_health(), "transform").finished, 0);
        env.wait_status(&run, RunStatus::Completed).await;
    })
    .await;
}
