//! Process lifecycle and CLI robustness, end to end on the real binary: runs and jobs whose
//! process was killed are marked interrupted at the next start; `serve` stops gracefully on
//! SIGTERM and SIGINT; output to a closed pipe ends quietly; `--log-format json` prints only
//! JSON on stderr; ids resolve by prefix and `latest` everywhere; `health` without a config;
//! a full disk fails `/health`, `tradeloom health` and the job that hits it.
//!
//! `TRADELOOM_TEST_BIN` runs these tests against another build (e.g. the previous release, to
//! see them fail there).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::service::Service;
use crate::{repo, simple_spec, write_spec};

fn exe() -> PathBuf {
    std::env::var_os("TRADELOOM_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tradeloom")))
}

fn cmd(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe());
    c.args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("TRADELOOM_LOG_FORMAT");
    c
}

fn run(data: &Path, args: &[&str]) -> Output {
    cmd(data, args).output().expect("tradeloom runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json_out(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// One HTTP request (GET, or POST with a JSON body): the status and the JSON body (`null` if
/// it is not JSON).
fn http(url: &str, body: Option<&Value>) -> (u16, Value) {
    tradeloom_llm::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let request = match body {
            Some(b) => client.post(url).json(b),
            None => client.get(url),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{name} failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The only run folder under `data`, once it exists.
fn only_run_dir(data: &Path) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::fs::read_dir(data.join("runs"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match dirs.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Every line of a journal, parsed.
fn journal(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A spec over many synthetic 1-second bars: long enough to be killed mid-run.
fn long_run_spec(data: &Path) -> PathBuf {
    let bars = data.join("bars.csv");
    let out = run(
        data,
        &[
            "data",
            "synth",
            "--symbol",
            "GOOG",
            "--timeframe",
            "1s",
            "--bars",
            "3000000",
            "--out",
            bars.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    write_spec(data, "long.yaml", &simple_spec(&bars, "bar_close"))
}

#[test]
fn a_killed_run_is_marked_interrupted_at_the_next_start() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let spec = long_run_spec(data);
    let mut child = cmd(data, &["run", spec.to_str().unwrap(), "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its journal has grown: mid-run.
    wait_for(
        "the run to write its journal",
        Duration::from_secs(60),
        || {
            only_run_dir(data)
                .and_then(|d| std::fs::metadata(d.join("journal.jsonl")).ok())
                .is_some_and(|m| m.len() > 64 * 1024)
        },
    );
    signal(&child, "KILL");
    child.wait().unwrap();
    let dir = only_run_dir(data).unwrap();
    let before: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(before["status"], "running", "killed before it finished");

    // The next start (any command that lists runs) marks it.
    let list = run(data, &["runs", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list));
    let runs = json_out(&list);
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let error = runs[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("interrupted") && error.contains("has exited"),
        "{error}"
    );
    let lines = journal(&dir);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "run_interrupted", "{last}");
    assert_eq!(last["reason"].as_str(), Some(error));
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i as u64 + 1, "journal numbered 1..n");
    }
    // Once only: a later start leaves it as it is.
    let again = run(data, &["runs", "show", "latest", "--json"]);
    assert_eq!(json_out(&again)["metadata"]["status"], "interrupted");
    assert_eq!(journal(&dir).len(), lines.len());
}

/// A simulation config with a slow model, written under `dir`.
fn slow_sim_config(dir: &Path, mock: &Service) -> PathBuf {
    let cfg = dir.join("sim.yaml");
    std::fs::write(
        &cfg,
        format!(
            "models:\n  - {{name: slow, base_url: {0}/v1, model: fault-slow-150}}\n  - {{name: mom, base_url: {0}/v1, model: momentum}}\n\
             universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-10\n",
            mock.url,
            repo().join("examples/universe").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_killed_simulate_job_is_marked_interrupted_then_resumes() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let mock = Service::mock_llm();
    let cfg = slow_sim_config(data, &mock);
    // Migrated first: two processes creating one SQLite store at once race on its migrations.
    let migrated = run(data, &["db", "migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated));
    let mut child = cmd(data, &["simulate", cfg.to_str().unwrap(), "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = data.join("tradeloom.db");
    wait_for("a model-day to complete", Duration::from_secs(60), || {
        db.exists() && {
            let list = run(data, &["jobs", "list", "--json"]);
            let jobs = json_out(&list);
            jobs[0]["status"] == "running" && {
                let id = jobs[0]["id"].as_str().unwrap().to_string();
                let s = json_out(&run(data, &["jobs", "status", &id, "--json"]));
                s["progress"]["completed"].as_u64().unwrap_or(0) >= 2
            }
        }
    });
    signal(&child, "KILL");
    child.wait().unwrap();

    let jobs = json_out(&run(data, &["jobs", "list", "--json"]));
    assert_eq!(jobs[0]["status"], "interrupted", "{jobs}");
    let error = jobs[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("has exited"), "{error}");
    let status = json_out(&run(data, &["jobs", "status", "latest", "--json"]));
    assert_eq!(
        status["progress"]["running"], 0,
        "no model-day left running"
    );

    // Triggered again, it resumes and completes.
    let again = run(data, &["simulate", cfg.to_str().unwrap(), "--json"]);
    assert!(again.status.success(), "{}", text(&again));
    let v: Value = serde_json::from_str(
        String::from_utf8_lossy(&again.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["job_id"], jobs[0]["id"]);
    assert_eq!(v["job_status"], "completed", "{v}");
}

/// `serve` on `data` with more arguments, its stdout read up to the listening line; the child
/// and the API's URL.
fn start_serve_with(data: &Path, args: &[&str]) -> (Child, String) {
    let mut all = vec!["serve", "--addr", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut child = cmd(data, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let start = line
        .find("http://")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"));
    let url = line[start..].split_whitespace().next().unwrap().to_string();
    (child, url)
}

fn start_serve(data: &Path) -> Child {
    start_serve_with(data, &[]).0
}

/// A `serve` killed when dropped.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(data: &Path, args: &[&str]) -> Serve {
        let (child, url) = start_serve_with(data, args);
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn heartbeats(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("health/heartbeats"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn serve_stops_gracefully_on_sigterm_and_sigint() {
    for name in ["TERM", "INT"] {
        let tmp = TempDir::new().unwrap();
        let data = tmp.path();
        let mut child = start_serve(data);
        wait_for("the heartbeats", Duration::from_secs(20), || {
            heartbeats(data).len() >= 4
        });
        signal(&child, name);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "SIG{name}: {status:?}");
        assert_eq!(heartbeats(data), Vec::<String>::new(), "SIG{name}");
    }
}

#[cfg(unix)]
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let workflow = repo().join("examples/workflows/trading-team.yaml");
    for args in [
        vec!["flow", "validate", workflow.to_str().unwrap()],
        vec!["spec", "schema"],
        vec!["runs", "list"],
        vec!["--help"],
    ] {
        // The read end is closed before the command starts: its first write meets EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = cmd(data, &args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc_sigpipe()),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// SIGPIPE's number on Linux and the BSDs.
#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13
}

/// Every line of `stderr` is a JSON object.
fn assert_json_lines(what: &str, out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.as_ref().is_ok_and(Value::is_object),
            "{what}: a stderr line is not JSON: {line:?}\n{err}"
        );
    }
}

#[test]
fn log_format_json_prints_only_json_lines_on_stderr() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let mock = Service::mock_llm();
    let cfg = data.join("sim.yaml");
    std::fs::write(
        &cfg,
        format!(
            "models:\n  - {{name: mom, base_url: {0}/v1, model: momentum}}\n  - {{name: bad, base_url: {0}/v1, model: fault-bad-args}}\n\
             universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-03\n",
            mock.url,
            repo().join("examples/universe").display()
        ),
    )
    .unwrap();
    let bad_flow = data.join("bad.yaml");
    std::fs::write(&bad_flow, "name: x\nnodes:\n  - {id: a, type: nope}\n").unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("simulate", vec!["simulate", cfg.to_str().unwrap()]),
        ("a missing spec", vec!["run", "no-such-spec.yaml"]),
        ("runs show of nothing", vec!["runs", "show", "nope"]),
        ("jobs status of nothing", vec!["jobs", "status", "nope"]),
        (
            "a bad workflow",
            vec!["flow", "validate", bad_flow.to_str().unwrap()],
        ),
        ("health", vec!["health"]),
    ];
    for (what, args) in cases {
        let mut all = vec!["--log-format", "json", "--log-level", "info"];
        all.extend(args);
        let out = run(data, &all);
        // These write errors or progress on stderr (`flow validate` lists problems on stdout).
        if !matches!(what, "health" | "a bad workflow") {
            assert!(!out.stderr.is_empty(), "{what}: no stderr at all");
        }
        assert_json_lines(what, &out);
    }
}

#[test]
fn ids_resolve_by_unique_prefix_and_latest_and_ambiguity_lists_candidates() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let bars = data.join("bars.csv");
    let out = run(
        data,
        &[
            "data",
            "synth",
            "--symbol",
            "GOOG",
            "--bars",
            "200",
            "--out",
            bars.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let spec = write_spec(data, "s.yaml", &simple_spec(&bars, "bar_close"));
    for _ in 0..2 {
        let out = run(data, &["run", spec.to_str().unwrap(), "--quiet"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let runs = json_out(&run(data, &["runs", "list", "--json"]));
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    // UUIDv7 ids made within the same second share their first characters.
    let ambiguous = run(data, &["runs", "show", &ids[0][..4]]);
    assert_eq!(ambiguous.status.code(), Some(2));
    let err = text(&ambiguous);
    assert!(
        err.contains("matches 2 runs") && err.contains(ids[0]) && err.contains(ids[1]),
        "{err}"
    );

    // Simulation jobs: `jobs status` by prefix and `latest`, like `verify` and `reconcile`.
    let mock = Service::mock_llm();
    let cfg = data.join("sim.yaml");
    std::fs::write(
        &cfg,
        format!(
            "models:\n  - {{name: mom, base_url: {0}/v1, model: momentum}}\n\
             universe: {{path: {1}}}\nstart_date: 2025-01-02\nend_date: 2025-01-03\n",
            mock.url,
            repo().join("examples/universe").display()
        ),
    )
    .unwrap();
    let sim = run(
        data,
        &["simulate", cfg.to_str().unwrap(), "--json", "--quiet"],
    );
    assert!(sim.status.success(), "{}", text(&sim));
    let job_id = json_out(&sim)["job_id"].as_str().unwrap().to_string();
    for given in [&job_id[..13], "latest", job_id.as_str()] {
        let out = run(data, &["jobs", "status", given, "--json"]);
        assert!(out.status.success(), "jobs status {given}: {}", text(&out));
        assert_eq!(json_out(&out)["job"]["id"], job_id.as_str());
        let out = run(data, &["results", "--job", given, "--json"]);
        assert!(
            out.status.success(),
            "results --job {given}: {}",
            text(&out)
        );
    }
    let none = run(data, &["jobs", "status", "ffffffff"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none).contains("no job `ffffffff`"), "{}", text(&none));
}

#[test]
fn workflow_runs_and_approvals_resolve_by_prefix_and_approvals_accept_status_all() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let api = Serve::start(data, &[]);
    let review = data.join("review.yaml");
    std::fs::write(
        &review,
        "name: review\nnodes:\n  - {id: review, type: hitl, config: {prompt: 'Go?', expires_after: 1h, default: reject}}\n",
    )
    .unwrap();
    let submit = run(
        data,
        &[
            "flow",
            "submit",
            review.to_str().unwrap(),
            "--json",
            "--api",
            &api.url,
        ],
    );
    assert!(submit.status.success(), "{}", text(&submit));
    let run_id = json_out(&submit)["run_id"].as_str().unwrap().to_string();
    wait_for("the approval", Duration::from_secs(30), || {
        let out = run(data, &["approvals", "--json", "--api", &api.url]);
        json_out(&out)["approvals"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let status = run(
        data,
        &["flow", "status", &run_id[..13], "--json", "--api", &api.url],
    );
    assert!(status.status.success(), "{}", text(&status));
    assert_eq!(json_out(&status)["run_id"], run_id.as_str());
    let latest = run(
        data,
        &["flow", "status", "latest", "--json", "--api", &api.url],
    );
    assert_eq!(
        json_out(&latest)["run_id"],
        run_id.as_str(),
        "{}",
        text(&latest)
    );

    // The API takes `status=all` as the CLI does.
    let (code, all) = http(&format!("{}/approvals?status=all", api.url), None);
    assert_eq!(code, 200, "{all}");
    let approval = all["approvals"][0]["id"].as_str().unwrap().to_string();
    let (code, runs_all) = http(&format!("{}/workflow-runs?status=all", api.url), None);
    assert_eq!(code, 200, "{runs_all}");

    let decided = run(
        data,
        &["approve", &approval[..8], "--json", "--api", &api.url],
    );
    assert!(decided.status.success(), "{}", text(&decided));
    assert_eq!(json_out(&decided)["id"], approval.as_str());
}

#[test]
fn health_without_a_config_checks_the_heartbeats_or_says_nothing_is_configured() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let nothing = run(data, &["health"]);
    assert_eq!(nothing.status.code(), Some(3), "{}", text(&nothing));
    assert!(
        text(&nothing).contains("NOTHING CONFIGURED"),
        "{}",
        text(&nothing)
    );

    // A serve that died (SIGKILL) left its heartbeats: not GREEN.
    let mut child = start_serve(data);
    wait_for("the heartbeats", Duration::from_secs(20), || {
        heartbeats(data).len() >= 4
    });
    signal(&child, "KILL");
    child.wait().unwrap();
    let out = run(data, &["health", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json_out(&out);
    assert_eq!(report["config_source"], "heartbeats", "{report}");
    assert_ne!(report["status"], "GREEN", "{report}");
    assert!(
        report["sensors"]["m1_process"].as_f64().unwrap() < 1.0,
        "{report}"
    );
}

/// Mounts a tmpfs of `size` at `dir`; `false` when this process may not mount (not root).
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` until a write fails with ENOSPC.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![7u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&block).and_then(|()| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
            return;
        }
    }
}

#[test]
fn a_full_disk_fails_health_and_the_job_that_hits_it() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    if !mount_tmpfs(&data, "16m") {
        eprintln!("note: cannot mount a tmpfs here (needs root); skipping the full-disk test");
        return;
    }
    let _mount = Mount(data.clone());
    // The store lives elsewhere (as a PostgreSQL server would): the job's failure can be
    // recorded although its folder cannot be written.
    let db = tmp.path().join("db").join("t.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let db = db.to_str().unwrap().to_string();
    let mock = Service::mock_llm();
    let api = Serve::start(&data, &["--database-url", &db, "--http-allow", "127.0.0.1"]);
    let (code, healthy) = http(&format!("{}/health", api.url), None);
    assert_eq!(code, 200, "{healthy}");

    fill(&data);
    let (code, sick) = http(&format!("{}/health", api.url), None);
    assert_eq!(code, 503, "{sick}");
    assert_eq!(sick["status"], "unavailable", "{sick}");
    assert_eq!(sick["disk"]["ok"], false, "{sick}");
    assert!(
        sick["disk"]["error"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{sick}"
    );

    let report = json_out(&run(&data, &["health", "--json", "--database-url", &db]));
    assert_eq!(
        report["details"]["control_plane"]["disk"]["ok"], false,
        "{report}"
    );
    assert_ne!(report["status"], "GREEN", "{report}");

    // A job on the full disk ends failed with the reason, not running.
    let (code, started) = http(
        &format!("{}/simulate/trigger", api.url),
        Some(&serde_json::json!({"config": {
            "models": [{"name": "mom", "base_url": format!("{}/v1", mock.url), "model": "momentum"}],
            "universe": {"path": repo().join("examples/universe")},
            "start_date": "2025-01-02", "end_date": "2025-01-03",
        }})),
    );
    assert_eq!(code, 202, "{started}");
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    wait_for("the job to end", Duration::from_secs(60), || {
        last = http(&format!("{}/simulate/status/{job_id}", api.url), None).1;
        !matches!(last["status"].as_str(), Some("pending" | "running"))
    });
    assert_eq!(last["status"], "failed", "{last}");
    assert!(
        last["error"]
            .as_str()
            .unwrap_or_default()
            .contains("No space left"),
        "{last}"
    );
}

#[test]
fn scheduled_workflow_runs_log_their_trace_id() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path();
    let log_path = data.join("serve.stderr");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = cmd(
        data,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--schedule-tick-secs",
            "1",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let start = first.find("http://").expect("the listening line");
    let url = first[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let definition = serde_json::json!({
        "name": "every-minute",
        "schedule": {"cron": "* * * * *", "timezone": "UTC", "missed": "run_once"},
        "nodes": [{"id": "a", "type": "transform", "config": {"output": {"x": 1}}}]
    });
    let (code, created) = http(&format!("{url}/workflows"), Some(&definition));
    assert_eq!(code, 201, "{created}");
    let lines = |text: &str| -> Vec<Value> {
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let mut run_id = String::new();
    wait_for("a scheduled run", Duration::from_secs(90), || {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if let Some(line) = lines(&text)
            .into_iter()
            .find(|l| l["message"] == "scheduled workflow run started")
        {
            run_id = line["run_id"].as_str().unwrap().to_string();
            text.contains("workflow run is now completed")
        } else {
            false
        }
    });
    signal(&child, "TERM");
    wait_exit(&mut child, Duration::from_secs(30));
    let trace = tradeloom_core::trace_id(&run_id);
    let text = std::fs::read_to_string(&log_path).unwrap();
    let of_run: Vec<Value> = lines(&text)
        .into_iter()
        .filter(|l| l["run_id"] == run_id.as_str())
        .collect();
    assert!(of_run.len() >= 3, "{text}");
    for line in of_run {
        assert_eq!(line["trace_id"], trace.as_str(), "{line}");
    }
}
