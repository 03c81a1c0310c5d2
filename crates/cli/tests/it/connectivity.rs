//! Connectivity readiness and probe: `tradeloom connectivity check` against a real `tradeloom
//! mock-llm`, a real `tradeloom serve` and a closed loopback port; the files `tradeloom run` and
//! `tradeloom simulate` write into their folders.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use crate::service::Service;
use crate::{repo, stderr, stdout, tradeloom};

const KEY_VAR: &str = "TL_TEST_CONNECTIVITY_KEY";
const SECRET: &str = "sk-test-never-written-7f3a";

/// A loopback port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn check(args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradeloom"));
    cmd.arg("connectivity")
        .arg("check")
        .args(args)
        .current_dir(repo())
        .env_remove(KEY_VAR);
    if let Some(k) = key {
        cmd.env(KEY_VAR, k);
    }
    cmd.output().unwrap()
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn write_config(dir: &Path, models: &str) -> String {
    let path = dir.join("sim.yaml");
    std::fs::write(
        &path,
        format!(
            "models:\n{models}universe: {{path: {}}}\nstart_date: 2025-01-02\nend_date: 2025-01-03\n",
            repo().join("examples/universe").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn check_reports_missing_variables_and_probes_only_loopback_endpoints() {
    let dir = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let closed = closed_port();
    let config = write_config(
        dir.path(),
        &format!(
            "  - {{name: mock, base_url: {}/v1, model: momentum, api_key_env: {KEY_VAR}}}\n\
             \x20 - {{name: down, base_url: http://127.0.0.1:{closed}/v1, model: m}}\n\
             \x20 - {{name: remote, base_url: https://llm.example.com/v1, model: m}}\n",
            mock.url
        ),
    );
    let out_dir = dir.path().join("out");
    let out = check(
        &[
            &config,
            "--probe",
            "--json",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("not ready") && err.contains(&format!("{KEY_VAR} (needed by mock)")),
        "{err}"
    );
    let printed: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let readiness = read(&out_dir.join("connectivity_readiness.json"));
    let probe = read(&out_dir.join("connectivity_probe.json"));
    assert_eq!(printed["readiness"], readiness);
    assert_eq!(printed["probe"], probe);

    assert_eq!(readiness["ready"], false);
    let providers = readiness["providers"].as_array().unwrap();
    let names: Vec<&str> = providers
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["mock", "down", "remote", "universe", "news", "venue:sim"]
    );
    assert_eq!(providers[0]["kind"], "llm");
    assert_eq!(providers[0]["ready"], false);
    assert_eq!(
        providers[0]["env"],
        serde_json::json!([{"var": KEY_VAR, "set": false, "required": true}])
    );
    assert_eq!(providers[1]["ready"], true);

    let probes = probe["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 3, "{probe:#}");
    let up = &probes[0];
    assert_eq!(up["name"], "mock");
    assert_eq!(up["url"], format!("{}/v1/models", mock.url));
    assert_eq!(
        (&up["ok"], &up["status"]),
        (&Value::Bool(true), &Value::from(200))
    );
    assert!(up["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(up["error"], Value::Null);
    let down = &probes[1];
    assert_eq!(
        (&down["ok"], &down["status"]),
        (&Value::Bool(false), &Value::Null)
    );
    assert_eq!(down["skipped"], false);
    assert!(
        down["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{down}"
    );
    let remote = &probes[2];
    assert_eq!(remote["skipped"], true);
    assert_eq!(remote["ok"], false);
    assert!(
        remote["error"]
            .as_str()
            .unwrap()
            .contains("not a loopback address"),
        "{remote}"
    );
    assert_eq!(probe["ok"], false, "the closed port fails the probe");
}

#[test]
fn check_passes_when_ready_and_never_records_values() {
    let dir = TempDir::new().unwrap();
    let mock = Service::mock_llm();
    let api = Service::serve(dir.path(), "1");
    let config = write_config(
        dir.path(),
        &format!(
            "  - {{name: mock, base_url: {}/v1/, model: momentum, api_key_env: {KEY_VAR}}}\n",
            mock.url
        ),
    );
    let out_dir = dir.path().join("out");
    let out = check(
        &[
            &config,
            "--probe",
            "--api",
            &api.url,
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Some(SECRET),
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("connectivity: ready, probe ok"), "{text}");
    assert!(!text.contains(SECRET));
    for file in ["connectivity_readiness.json", "connectivity_probe.json"] {
        let body = std::fs::read_to_string(out_dir.join(file)).unwrap();
        assert!(!body.contains(SECRET), "{file}: {body}");
    }
    let readiness = read(&out_dir.join("connectivity_readiness.json"));
    assert_eq!(readiness["ready"], true);
    assert_eq!(readiness["providers"][0]["env"][0]["set"], true);
    let probe = read(&out_dir.join("connectivity_probe.json"));
    assert_eq!(probe["ok"], true);
    let api_probe = probe["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tradeloom-api")
        .unwrap();
    assert_eq!(api_probe["url"], format!("{}/health", api.url));
    assert_eq!(api_probe["status"], 200);

    // Without --probe nothing is contacted and no probe file is written.
    let quiet_dir = dir.path().join("quiet");
    let out = check(
        &[&config, "--out", quiet_dir.to_str().unwrap()],
        Some(SECRET),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(quiet_dir.join("connectivity_readiness.json").is_file());
    assert!(!quiet_dir.join("connectivity_probe.json").exists());
}

#[test]
fn bad_files_exit_2_naming_the_place() {
    let dir = TempDir::new().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "models:\n  - {name: a, base_url: http://127.0.0.1:1/v1, model: m, colour: red}\nuniverse: {path: x}\nstart_date: 2025-01-02\nend_date: 2025-01-03\n").unwrap();
    let out = check(&[broken.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("broken.yaml:2:") && err.contains("unknown field `colour`"),
        "{err}"
    );
    let neither = dir.path().join("neither.yaml");
    std::fs::write(&neither, "name: x\n").unwrap();
    let out = check(&[neither.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither a run spec"),
        "{}",
        stderr(&out)
    );
    let out = check(&[dir.path().join("missing.yaml").to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_and_simulate_write_the_files_into_their_folders() {
    let data = TempDir::new().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (result, run_dir) = crate::run_json(data.path(), &spec);
    let readiness = read(&run_dir.join("connectivity_readiness.json"));
    assert_eq!(readiness["ready"], true);
    let kinds: Vec<&str> = readiness["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["venue", "data"], "{readiness:#}");
    let probe = read(&run_dir.join("connectivity_probe.json"));
    assert_eq!(probe["ok"], true);
    assert_eq!(probe["probes"], serde_json::json!([]));
    assert!(result["run_id"].is_string());

    let mock = Service::mock_llm();
    let config = write_config(
        data.path(),
        &format!(
            "  - {{name: mom, base_url: {}/v1, model: momentum}}\n",
            mock.url
        ),
    );
    let out = tradeloom(data.path(), &["simulate", &config, "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let job: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let job_dir = Path::new(job["run_dir"].as_str().unwrap());
    let readiness = read(&job_dir.join("connectivity_readiness.json"));
    assert_eq!(readiness["ready"], true);
    assert_eq!(readiness["providers"][0]["name"], "mom");
    let probe = read(&job_dir.join("connectivity_probe.json"));
    assert_eq!(probe["ok"], true);
    assert_eq!(probe["probes"][0]["status"], 200);
    assert_eq!(probe["probes"][0]["url"], format!("{}/v1/models", mock.url));
}

/// Every file of a fresh run folder but `metadata.json` itself is hashed in it and checked by
/// `tradeloom verify`: the connectivity files are written before the folder is sealed.
#[test]
fn verify_covers_every_file_of_the_run_folder() {
    let data = TempDir::new().unwrap();
    let spec = repo().join("examples/specs/goog_sma_cross.yaml");
    let (result, run_dir) = crate::run_json(data.path(), &spec);
    let id = result["run_id"].as_str().unwrap();
    let out = tradeloom(data.path(), &["verify", id, "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let checked: std::collections::BTreeSet<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap().to_string())
        .filter(|f| !f.starts_with("data:"))
        .collect();
    let mut in_folder = std::collections::BTreeSet::new();
    let mut pending = vec![run_dir.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(&run_dir).unwrap();
                in_folder.insert(name.to_str().unwrap().to_string());
            }
        }
    }
    in_folder.remove("metadata.json");
    assert!(
        in_folder.contains("connectivity_probe.json"),
        "{in_folder:?}"
    );
    assert_eq!(
        in_folder, checked,
        "files of the run folder that verify does not check"
    );
}

/// The probes of `connectivity check CONFIG --probe --json --data-dir DATA`, its stderr and exit
/// code.
fn probes_of(config: &str, data: &Path) -> (Vec<Value>, String, Option<i32>) {
    let out = check(
        &[
            config,
            "--probe",
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    let printed: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    let probes = printed["probe"]["probes"].as_array().unwrap().clone();
    (probes, stderr(&out), out.status.code())
}

/// A model that names a registered agent is probed at the agent's endpoint, resolved from the
/// store the agent was registered in; without that store, or when the store has no such agent,
/// it is named and skipped with the reason — never a probe of an empty URL.
#[test]
fn a_model_naming_an_agent_is_probed_at_the_agents_endpoint_or_skipped_saying_why() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let mock = Service::mock_llm();
    let config = write_config(
        dir.path(),
        "  - {name: desk, agent: analyst}\n  - {name: ghost, agent: nobody@2}\n",
    );

    // No store under the data dir: nothing is created, both are skipped, saying why.
    let (probes, err, code) = probes_of(&config, &data);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !data.join("tradeloom.db").exists(),
        "a check creates no store"
    );
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(probes[0]["name"], "desk");
    assert_eq!(probes[0]["url"], "agent:analyst");
    assert_eq!(probes[0]["skipped"], true);
    let reason = probes[0]["error"].as_str().unwrap();
    assert!(
        reason.contains("model `desk` names agent `analyst`") && reason.contains("no store at"),
        "{reason}"
    );
    assert!(
        err.contains("note: model `desk` names agent `analyst`")
            && err.contains("note: model `ghost` names agent `nobody@2`"),
        "{err}"
    );

    // The agent registered on a server over that data dir: its endpoint is probed.
    let api = Service::serve(&data, "1");
    let agent = dir.path().join("analyst.yaml");
    std::fs::write(
        &agent,
        format!(
            "name: analyst\nmodel: {{base_url: '{}/v1', model: momentum}}\n",
            mock.url
        ),
    )
    .unwrap();
    let out = tradeloom(
        &data,
        &[
            "agents",
            "create",
            agent.to_str().unwrap(),
            "--api",
            &api.url,
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let solo_dir = dir.path().join("solo");
    std::fs::create_dir(&solo_dir).unwrap();
    let solo = write_config(&solo_dir, "  - {name: desk, agent: analyst}\n");
    let (probes, err, code) = probes_of(&solo, &data);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("note:"), "{err}");
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!(probes[0]["name"], "desk");
    assert_eq!(probes[0]["url"], format!("{}/v1/models", mock.url));
    assert_eq!(
        (&probes[0]["ok"], &probes[0]["status"]),
        (&Value::Bool(true), &Value::from(200))
    );

    // An agent the store does not have: that model is skipped with the store's answer, the
    // other is probed.
    let (probes, err, code) = probes_of(&config, &data);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("note: model `ghost` names agent `nobody@2`")
            && err.contains("no agent `nobody`")
            && !err.contains("model `desk`"),
        "{err}"
    );
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(probes[0]["url"], format!("{}/v1/models", mock.url));
    assert_eq!(
        (&probes[1]["name"], &probes[1]["skipped"]),
        (&Value::from("ghost"), &Value::Bool(true))
    );
}
