//! `tradeloom reconcile` end to end: a clean run and a clean simulation job exit 0 and write
//! reconciliation_result.json; a corrupted journal fill, fills.csv row, metrics.json or stored
//! holding row exits 1 naming the failed check; a malformed journal line or an unknown id exits 2.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::service::Service;
use crate::{repo, run_json, simple_spec, stderr, stdout, tradeloom, write_spec};

/// A completed GOOG run with fees in a fresh data dir.
fn run(data: &Path) -> (String, PathBuf) {
    let spec = simple_spec(
        &repo()
            .join("examples/data/goog_1d.csv")
            .canonicalize()
            .unwrap(),
        "next_open",
    )
    .replace(
        "execution: {fill_model: next_open}",
        "execution: {fill_model: next_open, fee_bps: 10}",
    );
    let path = write_spec(data, "spec.yaml", &spec);
    let (json, dir) = run_json(data, &path);
    (json["run_id"].as_str().unwrap().to_string(), dir)
}

fn reconcile(data: &Path, id: &str) -> (Option<i32>, Value, String) {
    let out = tradeloom(data, &["reconcile", id, "--json"]);
    let v = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
    (out.status.code(), v, stderr(&out))
}

fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_clean_run_exits_0_and_writes_the_result() {
    let data = TempDir::new().unwrap();
    let (run_id, dir) = run(data.path());
    let out = tradeloom(data.path(), &["reconcile", "latest"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Reconciliation of run {run_id}")),
        "{text}"
    );
    assert!(
        text.contains("journal.cash") && text.contains("PASSED"),
        "{text}"
    );
    assert!(!text.contains("MISMATCH"), "{text}");
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reconciliation_result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written["passed"], true);
    assert_eq!(written["run_id"], run_id.as_str());

    let (code, v, _) = reconcile(data.path(), &run_id[..13]);
    assert_eq!(code, Some(0), "a unique prefix works");
    assert_eq!(v["passed"], true);
    assert_eq!(
        v["checks"].as_array().unwrap().len(),
        written["checks"].as_array().unwrap().len()
    );
}

#[test]
fn corrupted_files_exit_1_naming_the_check() {
    let data = TempDir::new().unwrap();
    let (run_id, dir) = run(data.path());

    // (b) one row of fills.csv: the row check alone fails.
    let fills = dir.join("fills.csv");
    let original = std::fs::read_to_string(&fills).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let mut f: Vec<String> = lines[2].split(',').map(str::to_string).collect();
    f[6] = format!("{}1", f[6]); // price gains a digit
    lines[2] = f.join(",");
    std::fs::write(&fills, lines.join("\n") + "\n").unwrap();
    let out = tradeloom(data.path(), &["reconcile", &run_id]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("fills_csv.match_journal ") && l.contains(" MISMATCH ")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("fills.csv:3:"), "{}", stdout(&out));
    let (_, v, _) = reconcile(data.path(), &run_id);
    assert_eq!(failed(&v), ["fills_csv.match_journal"]);
    std::fs::write(&fills, &original).unwrap();

    // (c) metrics.json's fees.
    let metrics_path = dir.join("metrics.json");
    let metrics = std::fs::read_to_string(&metrics_path).unwrap();
    let mut m: Value = serde_json::from_str(&metrics).unwrap();
    m["fees"] = json!("1.23");
    std::fs::write(&metrics_path, m.to_string()).unwrap();
    let (code, v, _) = reconcile(data.path(), &run_id);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v), ["metrics.fees"]);
    let fees = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "metrics.fees")
        .unwrap();
    assert_eq!(fees["observed"], "1.23");
    assert_ne!(fees["difference"], "0.00");
    std::fs::write(&metrics_path, &metrics).unwrap();
    assert_eq!(reconcile(data.path(), &run_id).0, Some(0), "restored");

    // (a) a fill in the journal, still valid JSON.
    let journal = dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut done = false;
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if !done && v["event"] == "order_filled" {
                done = true;
                v["quantity"] = json!("9");
                return v.to_string();
            }
            l.to_string()
        })
        .collect();
    std::fs::write(&journal, edited.join("\n") + "\n").unwrap();
    let (code, v, _) = reconcile(data.path(), &run_id);
    assert_eq!(code, Some(1));
    let names = failed(&v);
    for name in [
        "journal.cash",
        "journal.position_events",
        "fills_csv.match_journal",
    ] {
        assert!(names.contains(&name.to_string()), "{name} not in {names:?}");
    }
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reconciliation_result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written["passed"], false, "the failed result is written too");
}

#[test]
fn a_malformed_journal_line_or_an_unknown_id_exits_2() {
    let data = TempDir::new().unwrap();
    let (run_id, dir) = run(data.path());
    let journal = dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "not json";
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = reconcile(data.path(), &run_id);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("journal.jsonl:4:"), "{err}");

    let (code, _, err) = reconcile(data.path(), "ffffffff-0000");
    assert_eq!(code, Some(2));
    assert!(err.contains("no run `ffffffff-0000`"), "{err}");
    std::fs::remove_file(dir.join("fills.csv")).unwrap();
    std::fs::write(&journal, text).unwrap();
    let (code, _, err) = reconcile(data.path(), &run_id);
    assert_eq!(code, Some(2));
    assert!(err.contains("fills.csv"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_job_reconciles_and_a_corrupted_holding_exits_1() {
    let data = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let cfg = data.path().join("sim.yaml");
    std::fs::write(
        &cfg,
        format!(
            "models:\n  - {{name: mom, base_url: {0}/v1, model: momentum}}\n  - {{name: bh, base_url: {0}/v1, model: buy_and_hold}}\n\
             universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-08\n",
            mock.url,
            repo().join("examples/universe").display()
        ),
    )
    .unwrap();
    let out = tradeloom(data.path(), &["simulate", cfg.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let sim: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    let job_id = sim["job_id"].as_str().unwrap().to_string();

    let (code, v, err) = reconcile(data.path(), &job_id);
    assert_eq!(code, Some(0), "{err} {v}");
    assert_eq!(v["job_id"], job_id.as_str());
    assert!(v["checks"].as_array().unwrap().len() > 20);
    let result = data
        .path()
        .join("runs")
        .join(&job_id)
        .join("reconciliation_result.json");
    assert!(result.is_file(), "written into the job's folder");

    // (d) a stored holding row of one model-day.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        data.path().join("tradeloom.db").display()
    ))
    .await
    .unwrap();
    let (model, date): (String, String) = sqlx::query_as(
        "SELECT model, date FROM holdings WHERE job_id = ?1 ORDER BY date, model, seq LIMIT 1",
    )
    .bind(&job_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE holdings SET quantity = CAST(quantity AS INTEGER) + 3 WHERE job_id = ?1 AND model = ?2 AND date = ?3 AND seq = (SELECT MIN(seq) FROM holdings WHERE job_id = ?1 AND model = ?2 AND date = ?3)",
    )
    .bind(&job_id)
    .bind(&model)
    .bind(&date)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (code, v, _) = reconcile(data.path(), &job_id[..18]);
    assert_eq!(code, Some(1), "a prefix of the job id works too: {v}");
    let names = failed(&v);
    assert!(
        names.contains(&format!("{model}.{date}.holdings")),
        "{names:?}"
    );
}
