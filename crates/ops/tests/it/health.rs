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
