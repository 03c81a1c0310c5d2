//! The process supervisor with real `tradeloom` children (bridges, mock-llm): restarts after
//! `kill -9` within the policy, a crash loop stopped at the start limit as `failed`, re-adoption
//! by a new supervisor on the same data dir (and a restart of the child that died meanwhile),
//! resource limits read back from `/proc/<pid>/limits`, and `/runtime/processes` over real HTTP
//! on loopback with roles, 409 at the cap and 422 on bad specs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_ops::supervisor::{
    ProcessRecord, ProcessState, ProcessSupervisor, ResourceLimits, SupervisorError,
    SupervisorOptions,
};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tradeloom"))
}

fn options() -> SupervisorOptions {
    SupervisorOptions {
        poll_interval: Duration::from_millis(50),
        stop_grace: Duration::from_secs(5),
        ..SupervisorOptions::default()
    }
}

async fn supervisor(data_dir: &Path) -> Arc<ProcessSupervisor> {
    ProcessSupervisor::start(data_dir, exe(), options())
        .await
        .unwrap()
}

/// Kills the children of a supervisor when its test fails half-way, so no bridge outlives the
/// test (a passing test shuts its supervisors down itself).
struct KillOnPanic(Arc<ProcessSupervisor>);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for pid in self.0.list().iter().filter_map(|r| r.pid) {
            let _ = std::process::Command::new("kill")
                .args(["-9", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// A bridge on `<data_dir>/<watch>` into map `map`.
fn bridge(sup: &ProcessSupervisor, name: &str, watch: &str, extra: Value) -> Value {
    let mut spec = json!({
        "kind": "bridge", "name": name,
        "args": {"watch": watch, "map": name},
        "backoff": {"initial_ms": 100, "max_ms": 400},
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    sup.parse_spec(spec.clone()).unwrap();
    spec
}

async fn start(sup: &ProcessSupervisor, spec: Value) -> ProcessRecord {
    let spec = sup.parse_spec(spec).unwrap();
    sup.start_child(spec).await.unwrap()
}

/// Polls `id` until `done` holds (10 s at most).
async fn wait_for(
    sup: &ProcessSupervisor,
    id: &str,
    what: &str,
    done: impl Fn(&ProcessRecord) -> bool,
) -> ProcessRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = sup.get(id).unwrap();
        if done(&record) {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "{id}: not {what} after 10 s: {record:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

/// Waits until `pid` has a SIGTERM handler (bit 15 of `SigCgt` in `/proc/<pid>/status`), so a
/// SIGTERM ends it gracefully rather than by the signal's default action.
async fn wait_until_catching_sigterm(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0);
        if caught {
            return;
        }
        assert!(Instant::now() < deadline, "{pid} never handles SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `pid` is a running process (a zombie counts as ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st != "Z")
        })
        .unwrap_or(false)
}

/// Running processes whose command line holds `word` as an argument.
fn processes_with_arg(word: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|a| a == word.as_bytes()) && alive(pid) {
            found.push(pid);
        }
    }
    found
}

fn data_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("scans")).unwrap();
    (dir, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_with_sigkill_is_restarted_within_its_policy() {
    let (_dir, data) = data_dir();
    let sup = supervisor(&data).await;
    let _guard = KillOnPanic(Arc::clone(&sup));
    let on_failure = start(&sup, bridge(&sup, "on-failure", "scans", json!({}))).await;
    let never = start(
        &sup,
        bridge(&sup, "never", "scans", json!({"restart": "never"})),
    )
    .await;
    assert_eq!(on_failure.state, ProcessState::Running, "{on_failure:#?}");
    let first = on_failure.pid.unwrap();
    let never_pid = never.pid.unwrap();

    kill9(first);
    kill9(never_pid);
    let restarted = wait_for(&sup, "on-failure", "restarted", |r| {
        r.state == ProcessState::Running && r.pid.is_some_and(|p| p != first)
    })
    .await;
    assert_eq!(restarted.restarts, 1);
    assert_eq!(restarted.history.len(), 2);
    assert_eq!(restarted.history[0].signal, Some(9), "{restarted:#?}");
    assert_eq!(restarted.history[0].exit_code, None);
    assert!(restarted.history[0].ended_at.is_some());
    assert!(alive(restarted.pid.unwrap()));
    assert!(!alive(first));

    let failed = wait_for(&sup, "never", "failed", |r| r.state == ProcessState::Failed).await;
    assert_eq!(failed.restarts, 0);
    assert_eq!(failed.history.len(), 1);
    let reason = failed.reason.unwrap();
    assert!(
        reason.contains("SIGKILL") && reason.contains("`never`"),
        "{reason}"
    );

    // A clean exit (a bridge exits 0 on SIGTERM) is restarted by `always` only.
    let always = start(
        &sup,
        bridge(&sup, "clean-always", "scans", json!({"restart": "always"})),
    )
    .await;
    let clean = start(&sup, bridge(&sup, "clean-on-failure", "scans", json!({}))).await;
    for pid in [always.pid.unwrap(), clean.pid.unwrap()] {
        wait_until_catching_sigterm(pid).await;
        crate::sigterm(pid);
    }
    let exited = wait_for(&sup, "clean-on-failure", "exited", |r| {
        r.state == ProcessState::Exited
    })
    .await;
    assert_eq!(exited.history[0].exit_code, Some(0), "{exited:#?}");
    let again = wait_for(&sup, "clean-always", "restarted", |r| {
        r.state == ProcessState::Running && r.history.len() == 2
    })
    .await;
    assert_eq!(again.history[0].exit_code, Some(0));
    sup.stop_child("clean-always", None).await.unwrap();
    sup.remove("clean-always").unwrap();
    sup.remove("clean-on-failure").unwrap();

    // The snapshot on disk says the same.
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(data.join("state/runtime_state.json")).unwrap())
            .unwrap();
    let states: Vec<(&str, &str)> = snapshot["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("on-failure", "running"), ("never", "failed")]);

    let pid = restarted.pid.unwrap();
    sup.shutdown(Duration::from_secs(5)).await;
    assert!(!alive(pid), "a shutdown stops the children");
    assert_eq!(sup.get("on-failure").unwrap().state, ProcessState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_stops_at_the_start_limit_and_is_failed() {
    let (_dir, data) = data_dir();
    let sup = supervisor(&data).await;
    let _guard = KillOnPanic(Arc::clone(&sup));
    let spec = bridge(
        &sup,
        "loop",
        "no-such-dir",
        json!({
            "restart": "always",
            "backoff": {"initial_ms": 50, "max_ms": 200},
            "start_limit": {"burst": 3, "interval_s": 60},
        }),
    );
    start(&sup, spec).await;
    let failed = wait_for(&sup, "loop", "failed", |r| r.state == ProcessState::Failed).await;
    assert_eq!(failed.history.len(), 3, "{failed:#?}");
    assert_eq!(failed.restarts, 2);
    for run in &failed.history {
        assert!(
            run.exit_code.is_some_and(|c| c != 0),
            "each run exits with an error: {run:?}"
        );
    }
    // Exponential back-off: 50 ms before the second start, 100 ms before the third.
    let gap = |n: usize| {
        (failed.history[n].started_at - failed.history[n - 1].ended_at.unwrap()).num_milliseconds()
    };
    assert!(gap(1) >= 50 && gap(2) >= 100, "{failed:#?}");
    let reason = failed.reason.clone().unwrap();
    assert!(
        reason.contains("start limit") && reason.contains("3 starts within 60 s"),
        "{reason}"
    );
    assert_eq!(failed.pid, None);
    // No more starts come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sup.get("loop").unwrap().history.len(), 3);
    // The child's own error is in its log.
    let err = std::fs::read_to_string(data.join("runtime/logs/loop.err.log")).unwrap();
    assert!(err.contains("no-such-dir"), "{err}");

    // A restart by hand starts over: one more start, the limit's window reset.
    std::fs::create_dir_all(data.join("no-such-dir")).unwrap();
    let again = sup.restart_child("loop").await.unwrap();
    assert_eq!(again.state, ProcessState::Running, "{again:#?}");
    assert_eq!(again.history.len(), 4);
    sup.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_supervisor_readopts_live_children_and_restarts_dead_ones() {
    let (_dir, data) = data_dir();
    let first = supervisor(&data).await;
    let first_guard = KillOnPanic(Arc::clone(&first));
    // `state/server_state.json` names the supervising process; the first has no predecessor.
    let server = first.server_state();
    assert_eq!(
        (server.pid, server.state.as_str()),
        (std::process::id(), "running")
    );
    assert!(server.previous.is_none(), "{server:?}");
    let on_disk: tradeloom_ops::supervisor::ServerState = serde_json::from_slice(
        &std::fs::read(data.join(tradeloom_ops::supervisor::SERVER_STATE_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk, server);
    let keep = start(&first, bridge(&first, "readopt-keep", "scans", json!({}))).await;
    let dies = start(&first, bridge(&first, "readopt-dies", "scans", json!({}))).await;
    let (keep_pid, dies_pid) = (keep.pid.unwrap(), dies.pid.unwrap());

    // One supervisor per data dir.
    match ProcessSupervisor::start(&data, exe(), options()).await {
        Err(SupervisorError::Locked) => {}
        other => panic!("a second supervisor on the data dir: {other:?}"),
    }

    // The supervisor goes away (as when `serve` is killed); its children do not.
    first.detach().await;
    // Not killed on a later failure: `second` has them (and `first`'s pids grow stale).
    drop(first_guard);
    drop(first);
    assert!(alive(keep_pid) && alive(dies_pid));
    kill9(dies_pid);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let second = supervisor(&data).await;
    let _second_guard = KillOnPanic(Arc::clone(&second));
    let previous = second.server_state().previous.unwrap();
    assert_eq!(previous.ended, "detached");
    let kept = second.get("readopt-keep").unwrap();
    assert_eq!(kept.state, ProcessState::Running);
    assert_eq!(kept.pid, Some(keep_pid), "re-adopted, not started again");
    assert_eq!(kept.history.len(), 1);
    let note = kept.history[0].note.clone().unwrap_or_default();
    assert!(note.contains("re-adopted"), "{note}");
    assert_eq!(
        processes_with_arg("readopt-keep"),
        [keep_pid],
        "exactly one bridge into map `keep`"
    );

    let restarted = wait_for(&second, "readopt-dies", "restarted", |r| {
        r.state == ProcessState::Running && r.pid.is_some_and(|p| p != dies_pid)
    })
    .await;
    assert_eq!(restarted.history.len(), 2);
    assert!(restarted.history[0].ended_at.is_some());
    assert_eq!(processes_with_arg("readopt-dies"), [restarted.pid.unwrap()]);

    // A re-adopted child is still watched: killed, it is restarted.
    kill9(keep_pid);
    let keep_again = wait_for(&second, "readopt-keep", "restarted", |r| {
        r.state == ProcessState::Running && r.pid.is_some_and(|p| p != keep_pid)
    })
    .await;
    assert_eq!(keep_again.history.len(), 2);

    // A shutdown stops them; the next supervisor starts them again.
    second.shutdown(Duration::from_secs(5)).await;
    let stopped = second.list();
    assert!(
        stopped.iter().all(|r| r.state == ProcessState::Stopped),
        "{stopped:#?}"
    );
    assert!(processes_with_arg("readopt-keep").is_empty());
    drop(second);
    let third = supervisor(&data).await;
    let _third_guard = KillOnPanic(Arc::clone(&third));
    assert_eq!(third.server_state().previous.unwrap().ended, "stopped");
    for id in ["readopt-keep", "readopt-dies"] {
        let r = third.get(id).unwrap();
        assert_eq!(r.state, ProcessState::Running, "{r:#?}");
        assert_eq!(processes_with_arg(id), [r.pid.unwrap()]);
    }
    third.shutdown(Duration::from_secs(5)).await;
    drop(third);
    // A supervisor killed outright leaves its file saying `running`: the next one reports it.
    let path = data.join(tradeloom_ops::supervisor::SERVER_STATE_FILE);
    let mut left: tradeloom_ops::supervisor::ServerState =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    left.state = "running".into();
    left.stopped_at = None;
    std::fs::write(&path, serde_json::to_vec(&left).unwrap()).unwrap();
    let fourth = supervisor(&data).await;
    let previous = fourth.server_state().previous.unwrap();
    assert_eq!(
        (previous.ended.as_str(), previous.pid),
        ("crashed", left.pid)
    );
    fourth.shutdown(Duration::from_secs(5)).await;
}

/// `Max open files  256  256  files` → (soft, hard) of the line starting with `name`.
fn limit_of(limits: &str, name: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no `{name}` in {limits}"));
    let words: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (words[0].to_string(), words[1].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_limits_are_set_on_the_child() {
    let (_dir, data) = data_dir();
    let options = SupervisorOptions {
        limits: ResourceLimits {
            memory_mb: Some(2048),
            cpu_seconds: Some(7200),
            open_files: Some(512),
            processes: Some(4096),
        },
        env: vec![("TRADELOOM_SUPERVISOR_TEST".into(), "given".into())],
        ..options()
    };
    let sup = ProcessSupervisor::start(&data, exe(), options)
        .await
        .unwrap();
    let _guard = KillOnPanic(Arc::clone(&sup));
    // Above a ceiling: refused, naming the field.
    let err = sup
        .parse_spec(json!({"kind": "mock-llm", "args": {"addr": "127.0.0.1:0"}, "limits": {"open_files": 100000}}))
        .unwrap_err();
    assert_eq!(err.field, "limits.open_files");

    let record = start(
        &sup,
        json!({
            "kind": "mock-llm", "name": "llm", "args": {"addr": "127.0.0.1:0"},
            "limits": {"memory_mb": 1536, "cpu_seconds": 3600, "open_files": 256},
        }),
    )
    .await;
    assert_eq!(record.state, ProcessState::Running, "{record:#?}");
    let pid = record.pid.unwrap();
    // Still running after a moment: the limits leave it room to work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(pid), "{:#?}", sup.get("llm").unwrap());
    // The supervisor's extra environment reaches the child.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|v| v == b"TRADELOOM_SUPERVISOR_TEST=given")
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let want = |n: Option<u64>| {
        let n = n.unwrap().to_string();
        (n.clone(), n)
    };
    assert_eq!(record.limits.open_files, Some(256));
    assert_eq!(
        limit_of(&limits, "Max address space"),
        want(record.limits.memory_mb.map(|m| m * 1024 * 1024))
    );
    assert_eq!(
        limit_of(&limits, "Max cpu time"),
        want(record.limits.cpu_seconds)
    );
    assert_eq!(
        limit_of(&limits, "Max open files"),
        want(record.limits.open_files)
    );
    // Not given by the spec: the supervisor's default (at most this process's hard limit).
    assert_eq!(
        limit_of(&limits, "Max processes"),
        want(record.limits.processes)
    );
    assert!(record.limits.processes.is_some_and(|p| p <= 4096));
    sup.shutdown(Duration::from_secs(5)).await;
    assert!(!alive(pid));
}

mod api {
    use super::*;
    use tradeloom_agents::{Simulator, SimulatorOptions};
    use tradeloom_server::{AppState, AuthMode};
    use tradeloom_store::{NewApiKey, Role, open_store};

    struct Server {
        base: String,
        viewer: String,
        operator: String,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    async fn serve(dir: &Path, supervisor: Option<Arc<ProcessSupervisor>>) -> Server {
        let store = open_store(&dir.join("t.db").display().to_string())
            .await
            .unwrap();
        let simulator = Simulator::new(
            Arc::clone(&store),
            SimulatorOptions {
                data_dir: dir.join("data"),
                max_concurrent_jobs: 1,
                base_dir: dir.to_path_buf(),
                outbound: tradeloom_net::Outbound::strict(),
            },
        );
        let mut state = AppState::new(simulator).with_auth(AuthMode::Required);
        if let Some(supervisor) = supervisor {
            state = state.with_process_supervisor(supervisor);
        }
        let mut secrets = Vec::new();
        for role in [Role::Viewer, Role::Operator] {
            let (new, secret) = NewApiKey::generate(&format!("{role}-key"), role).unwrap();
            store.create_api_key(&new).await.unwrap();
            secrets.push(secret);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(tradeloom_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server {
            base: format!("http://{addr}"),
            viewer: secrets[0].clone(),
            operator: secrets[1].clone(),
            stop: Some(stop),
        }
    }

    async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runtime_processes_over_http_with_roles_a_cap_and_spec_errors() {
        let (dir, data) = data_dir();
        let sup = ProcessSupervisor::start(
            &data,
            exe(),
            SupervisorOptions {
                max_children: 2,
                ..options()
            },
        )
        .await
        .unwrap();
        let _guard = KillOnPanic(Arc::clone(&sup));
        let server = serve(dir.path(), Some(Arc::clone(&sup))).await;
        let http = reqwest::Client::new();
        let url = |p: &str| format!("{}/runtime/processes{p}", server.base);
        let spec = |name: &str| json!({"kind": "bridge", "name": name, "args": {"watch": "scans", "map": name}});

        // Roles: no key 401, a viewer reads but cannot start.
        let (status, body) = send(http.get(url(""))).await;
        assert_eq!(status, 401, "{body}");
        let (status, body) = send(http.get(url("")).bearer_auth(&server.viewer)).await;
        assert_eq!((status, body["processes"].clone()), (200, json!([])));
        let (status, body) = send(
            http.post(url(""))
                .bearer_auth(&server.viewer)
                .json(&spec("api-a")),
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
        let (status, _) = send(http.post(url("/nope/stop")).bearer_auth(&server.viewer)).await;
        assert_eq!(status, 403);

        // Bad specs: 422 naming the field, never a path of the server.
        let operator = |r: reqwest::RequestBuilder| r.bearer_auth(&server.operator);
        for (bad, field) in [
            (json!({"kind": "sh", "args": {"c": "rm -rf /"}}), "kind"),
            (
                json!({"kind": "bridge", "args": {"map": "m"}}),
                "args.watch",
            ),
            (
                json!({"kind": "bridge", "args": {"watch": "../..", "map": "m"}}),
                "args.watch",
            ),
            (
                json!({"kind": "bridge", "program": "/bin/sh", "args": {"watch": "s", "map": "m"}}),
                "program",
            ),
            (
                json!({"kind": "trader", "args": {"spec": "t.yaml"}, "restart": "sometimes"}),
                "restart",
            ),
        ] {
            let (status, body) = send(operator(http.post(url(""))).json(&bad)).await;
            assert_eq!(status, 422, "{bad}: {body}");
            assert_eq!(body["error"], "invalid_process_spec", "{body}");
            assert_eq!(body["details"]["field"], field, "{bad}: {body}");
            let text = body.to_string();
            assert!(!text.contains(&*data.to_string_lossy()), "{text}");
        }

        // Start two; the third is over the cap.
        let (status, a) = send(operator(http.post(url(""))).json(&spec("api-a"))).await;
        assert_eq!((status, a["state"].as_str()), (201, Some("running")), "{a}");
        assert_eq!(a["args"][2], "bridge");
        assert_eq!(a["stderr_log"], "runtime/logs/api-a.err.log");
        let (status, _) = send(operator(http.post(url(""))).json(&spec("api-b"))).await;
        assert_eq!(status, 201);
        let (status, body) = send(operator(http.post(url(""))).json(&spec("api-c"))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("too_many_processes")),
            "{body}"
        );
        assert_eq!(body["details"]["max_children"], 2);
        assert!(processes_with_arg("api-c").is_empty(), "no third process");
        let (status, body) = send(operator(http.post(url(""))).json(&spec("api-a"))).await;
        assert_eq!(status, 409, "{body}");

        // Read.
        let (status, list) = send(http.get(url("")).bearer_auth(&server.viewer)).await;
        assert_eq!(status, 200);
        assert_eq!(list["active"], 2);
        assert_eq!(list["processes"].as_array().unwrap().len(), 2);
        let (status, one) = send(http.get(url("/api-a")).bearer_auth(&server.viewer)).await;
        assert_eq!((status, &one["pid"]), (200, &a["pid"]));
        let (status, body) = send(http.get(url("/zzz")).bearer_auth(&server.viewer)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("process_not_found"))
        );

        // Stop, remove, restart.
        let a_pid = a["pid"].as_u64().unwrap() as u32;
        let (status, stopped) = send(operator(http.post(url("/api-a/stop")))).await;
        assert_eq!(
            (status, stopped["state"].as_str()),
            (200, Some("stopped")),
            "{stopped}"
        );
        assert!(!alive(a_pid));
        let (status, body) = send(operator(http.delete(url("/api-b")))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("process_active"))
        );
        let (status, _) = send(operator(http.delete(url("/api-a")))).await;
        assert_eq!(status, 204);
        let (status, _) = send(http.get(url("/api-a")).bearer_auth(&server.viewer)).await;
        assert_eq!(status, 404);
        let b_pid = sup.get("api-b").unwrap().pid.unwrap();
        let (status, b) = send(operator(http.post(url("/api-b/restart")))).await;
        assert_eq!((status, b["state"].as_str()), (200, Some("running")), "{b}");
        assert_ne!(b["pid"].as_u64(), Some(u64::from(b_pid)));
        assert!(!alive(b_pid));
        // The cap counts active processes only: room again for `c`.
        let (status, _) = send(operator(http.post(url(""))).json(&spec("api-c"))).await;
        assert_eq!(status, 201);

        sup.shutdown(Duration::from_secs(5)).await;
        // A shut-down supervisor answers 503.
        let (status, body) = send(operator(http.post(url(""))).json(&spec("api-d"))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("supervisor_disabled"))
        );

        // Documented, with every schema the operations refer to.
        let doc: Value = http
            .get(format!("{}/openapi.json", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (path, method) in [
            ("/runtime/processes", "post"),
            ("/runtime/processes", "get"),
            ("/runtime/processes/{id}", "get"),
            ("/runtime/processes/{id}", "delete"),
            ("/runtime/processes/{id}/stop", "post"),
            ("/runtime/processes/{id}/restart", "post"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        let text = doc.to_string();
        for name in [
            "ProcessSpecBody",
            "ProcessView",
            "ProcessList",
            "RunView",
            "LimitsView",
        ] {
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
            assert!(
                text.contains(&format!("#/components/schemas/{name}")),
                "{name}"
            );
        }
        assert!(
            doc["paths"]["/runtime/processes"]["post"]["responses"]["422"].is_object()
                && doc["paths"]["/runtime/processes"]["post"]["responses"]["409"].is_object()
        );

        // Without a supervisor: 503.
        let other = TempDir::new().unwrap();
        let bare = serve(other.path(), None).await;
        let (status, body) = send(
            http.get(format!("{}/runtime/processes", bare.base))
                .bearer_auth(&bare.viewer),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("supervisor_disabled"))
        );
    }
}

/// The pid of supervised process `name` of the server at `url` once it is `running` (within
/// 10 s).
async fn running_pid(client: &reqwest::Client, url: &str, name: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Value = client
            .get(format!("{url}/runtime/processes/{name}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let (Some(pid), "running") = (v["pid"].as_u64(), v["state"].as_str().unwrap_or("")) {
            return pid as u32;
        }
        assert!(
            Instant::now() < deadline,
            "process {name} is not running: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `tradeloom serve` runs the supervisor: a child started over `POST /runtime/processes` runs,
/// and a SIGTERM of `serve` stops it with serve (exit 0); the next `serve` on the data dir
/// starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_supervises_children_started_over_the_api() {
    // reqwest's TLS needs a provider (other tests install it too; this one may run alone).
    tradeloom_llm::install_crypto_provider();
    let (_dir, data) = data_dir();
    let mut serve = crate::service::Service::serve_with(&data, &[], &[]);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/runtime/processes", serve.url))
        .json(
            &json!({"kind": "bridge", "name": "scans", "args": {"watch": "scans", "map": "scans"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let pid = running_pid(&client, &serve.url, "scans").await;
    assert!(alive(pid));
    wait_until_catching_sigterm(serve.child.id()).await;
    crate::sigterm(serve.child.id());
    let exit = serve.child.wait().unwrap();
    assert!(exit.success(), "serve exited {exit}");
    assert!(!alive(pid), "the child outlived serve");
    // The next serve on the data dir starts it again.
    let mut serve = crate::service::Service::serve_with(&data, &[], &[]);
    let new = running_pid(&client, &serve.url, "scans").await;
    assert_ne!(new, pid);
    assert!(alive(new));
    // Stopped gracefully, so the child goes too (a SIGKILL of serve, as when the test's
    // `Service` is dropped, leaves children to be re-adopted: they would outlive the test).
    wait_until_catching_sigterm(serve.child.id()).await;
    crate::sigterm(serve.child.id());
    assert!(serve.child.wait().unwrap().success());
    assert!(!alive(new), "the child outlived the second serve");
}
