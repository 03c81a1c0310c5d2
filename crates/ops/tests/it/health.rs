//! The health monitor's data-coherence sensor (M5) over a real run folder: a run whose books
//! reconcile keeps M5 at 1; a corrupted fills.csv row drops M5 to 0, the status to DEAD, and the
//! monitor's recovery engages the global kill switch (journaled in actions.jsonl).

use tradeloom_ops::health::{
    Environment, HealthConfig, QueueAccess, RateLimit, Recovery, Status, StoreAccess, cycle,
};

use crate::reconcile::run_folder;

#[tokio::test]
async fn unreconciled_books_fail_coherence_and_engage_the_kill_switch() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = run_folder(dir.path());
    let location = dir.path().join("tradeloom.db").display().to_string();
    tradeloom_store::open_store(&location).await.unwrap();
    let env = Environment {
        data_dir: dir.path().to_path_buf(),
        store: StoreAccess::Location(location),
        queue: QueueAccess::ViaApi,
        registry: None,
    };
    let config = HealthConfig::default();
    let recovery = Recovery::new(dir.path(), RateLimit::default());

    let clean = cycle(&config, &env, None, &recovery).await.unwrap();
    assert_eq!(clean.report.sensors.m5_coherence, 1.0, "{:?}", clean.report);
    assert_eq!(clean.report.status, Status::Green, "{:?}", clean.report);
    assert!(clean.actions.is_empty());

    // Change one fill's quantity in fills.csv (the journal still says the original).
    let path = run_dir.join("fills.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let qty = header.iter().position(|h| *h == "quantity").unwrap();
    let mut row: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    row[qty] = format!("{}1", row[qty]);
    lines[1] = row.join(",");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let broken = cycle(&config, &env, None, &recovery).await.unwrap();
    assert_eq!(
        broken.report.sensors.m5_coherence, 0.0,
        "{:?}",
        broken.report
    );
    assert_eq!(broken.report.status, Status::Dead);
    assert_eq!(broken.actions.len(), 1, "{:?}", broken.actions);
    let switch = tradeloom_safety::KillSwitch::open(dir.path()).unwrap();
    assert!(switch.status().unwrap().global.engaged);
    let journal = std::fs::read_to_string(dir.path().join("health/actions.jsonl")).unwrap();
    assert!(journal.contains("does not reconcile"), "{journal}");
}

#[tokio::test]
async fn a_workflow_orders_folder_is_not_taken_for_the_latest_run_to_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = run_folder(dir.path());
    let location = dir.path().join("tradeloom.db").display().to_string();
    tradeloom_store::open_store(&location).await.unwrap();
    let env = Environment {
        data_dir: dir.path().to_path_buf(),
        store: StoreAccess::Location(location),
        queue: QueueAccess::ViaApi,
        registry: None,
    };
    // A newer completed folder of an `order` node: a journal and fills, no reports.
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("metadata.json")).unwrap())
            .unwrap();
    let id = "ffffffff-ffff-7fff-bfff-ffffffffffff";
    meta["run_id"] = serde_json::json!(id);
    meta["mode"] = serde_json::json!("order");
    meta["artifacts"] = serde_json::json!({});
    let order_dir = run_dir.parent().unwrap().join(id);
    std::fs::create_dir_all(&order_dir).unwrap();
    std::fs::write(order_dir.join("metadata.json"), meta.to_string()).unwrap();
    std::fs::write(order_dir.join("journal.jsonl"), "").unwrap();
    let config = HealthConfig::default();
    let recovery = Recovery::new(dir.path(), RateLimit::default());
    let cycle = cycle(&config, &env, None, &recovery).await.unwrap();
    assert_eq!(cycle.report.sensors.m5_coherence, 1.0, "{:?}", cycle.report);
    assert_eq!(cycle.report.status, Status::Green, "{:?}", cycle.report);
}
