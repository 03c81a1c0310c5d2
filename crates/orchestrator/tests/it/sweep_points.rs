//! A sweep's runs handed to `sweep` workers through a queue ([`ClusterRunner`] and
//! [`sweep_worker`], on the in-memory queue): the same outcomes as on this process's threads;
//! a malformed task is dropped without an outcome, and a task whose worker vanished goes to
//! another.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tradeloom_orchestrator::sweep_points::{ClusterRunner, SWEEP_POOL, sweep_worker};
use tradeloom_orchestrator::worker::InFlight;
use tradeloom_queue::{InMemoryQueue, NewTask, Queue};
use tradeloom_runs::sweep::{BaseSpec, Metric, PointStatus, Sweep, SweepRequest};

fn spec() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs/goog_sma_cross.yaml")
}

fn request() -> SweepRequest {
    SweepRequest {
        base: BaseSpec::load(&spec()).unwrap(),
        grid: "strategy.params.fast=5,10,strategy.params.slow=20..40:10".to_string(),
        metric: Metric::Sharpe,
        walk_forward: None,
        heatmap_x: None,
        heatmap_y: None,
        skip_invalid: false,
    }
}

#[test]
fn a_sweep_on_queue_workers_gives_the_outcomes_of_one_on_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let local_dir = tempfile::tempdir().unwrap();
    let mut local = Sweep::create(local_dir.path(), request()).unwrap();
    local.run(local_dir.path(), 2, &mut |_| {}).unwrap();

    let data = tempfile::tempdir().unwrap();
    let queue: Arc<dyn Queue> = Arc::new(InMemoryQueue::new());
    // Junk first: dropped by the worker, no outcome posted anywhere.
    rt.block_on(queue.enqueue(NewTask::new(SWEEP_POOL, json!({"job": "nonsense"}))))
        .unwrap();
    rt.block_on(queue.enqueue(NewTask::new(
        SWEEP_POOL,
        json!({"job": {"sweep_id": "../../etc", "key": "p0", "spec_path": "x", "spec_text": "x",
                        "params": {}}, "claim": "c", "reply_to": "sweep-results:x"}),
    )))
    .unwrap();
    let (stop, _) = tokio::sync::watch::channel(false);
    for i in 0..2 {
        rt.spawn(sweep_worker(
            queue.clone(),
            data.path().to_path_buf(),
            format!("w{i}"),
            stop.subscribe(),
            Arc::new(InFlight::new()),
        ));
    }
    let mut sweep = Sweep::create(data.path(), request()).unwrap();
    let runner = ClusterRunner {
        queue: queue.clone(),
        handle: rt.handle().clone(),
    };
    let mut seen = Vec::new();
    let made = sweep.run_with(&runner, &mut |p| seen.push(p.done)).unwrap();
    assert_eq!(made, 6);
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    let metrics = |s: &Sweep| -> Vec<_> {
        s.state
            .points
            .iter()
            .map(|p| (p.params.clone(), p.status, p.metrics.clone()))
            .collect()
    };
    assert!(
        sweep
            .state
            .points
            .iter()
            .all(|p| p.status == PointStatus::Completed)
    );
    assert_eq!(metrics(&sweep), metrics(&local));
    // The runs are in the workers' data dir; the junk left no results pool behind.
    for p in &sweep.state.points {
        let id = p.run_id.as_deref().unwrap();
        assert!(
            data.path()
                .join("runs")
                .join(id)
                .join("metrics.json")
                .is_file()
        );
    }
    let stats = rt.block_on(queue.stats(SWEEP_POOL)).unwrap();
    assert_eq!((stats.ready, stats.leased), (0, 0), "{stats:?}");
    let junk = rt.block_on(queue.stats("sweep-results:x")).unwrap();
    assert_eq!(junk.ready, 0, "{junk:?}");
    let _ = stop.send(true);
    rt.shutdown_timeout(Duration::from_secs(5));
}
