use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tradeloom_sandbox::{Limits, Refusal, SandboxError, SandboxPolicy, ScriptSpec, run_skill};

/// A project folder with one skill script `skill.py` holding `body`.
fn project(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("skill.py"), body).unwrap();
    dir
}

fn run(dir: &Path, limits: Limits, input: Value) -> Result<Value, SandboxError> {
    run_with(&SandboxPolicy::from_env(), dir, limits, input)
}

fn run_with(
    policy: &SandboxPolicy,
    dir: &Path,
    limits: Limits,
    input: Value,
) -> Result<Value, SandboxError> {
    let script = dir.join("skill.py");
    run_skill(
        policy,
        &ScriptSpec {
            script: &script,
            display: "skills/skill.py",
            limits: limits.effective().unwrap(),
            protected: &[],
        },
        "main",
        &input,
    )
}

#[test]
fn a_skill_maps_json_to_json_in_its_scratch_folder() {
    let dir = project(
        "import os, json\n\
         def main(input):\n\
         \x20   with open('notes.txt', 'w') as f:\n\
         \x20       f.write('scratch is writable')\n\
         \x20   env = sorted(os.environ)\n\
         \x20   return {'sum': sum(input['xs']), 'env': env, 'cwd_is_home': os.getcwd() == os.environ['HOME']}\n",
    );
    let out = run(dir.path(), Limits::default(), json!({"xs": [1, 2, 3]})).unwrap();
    assert_eq!(out["sum"], 6);
    assert_eq!(out["cwd_is_home"], true);
    // Nothing of the parent's environment (secrets included) reaches the child.
    let env: Vec<&str> = out["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in &env {
        assert!(
            ["PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE"].contains(name)
                || name.starts_with("PYTHON"),
            "unexpected variable {name} in {env:?}"
        );
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_the_call_budget() {
    let dir = project("def main(input):\n    while True:\n        pass\n");
    let started = Instant::now();
    let limits = Limits {
        call_timeout_ms: Some(300),
        ..Limits::default()
    };
    let e = run(dir.path(), limits, json!(null)).unwrap_err();
    assert!(matches!(e, SandboxError::CallTimeout(300)), "{e:?}");
    assert!(e.to_string().contains("limits.call_timeout_ms"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn cpu_time_is_limited() {
    let dir = project("def main(input):\n    while True:\n        pass\n");
    let limits = Limits {
        cpu_seconds: Some(1),
        call_timeout_ms: Some(20_000),
        ..Limits::default()
    };
    let e = run(dir.path(), limits, json!(null)).unwrap_err();
    assert!(matches!(e, SandboxError::CpuLimit(1)), "{e:?}");
    assert!(e.to_string().contains("limits.cpu_seconds"), "{e}");
}

#[test]
fn the_run_budget_stops_a_slow_script() {
    let dir = project("import time\ndef main(input):\n    time.sleep(30)\n");
    let limits = Limits {
        run_timeout_seconds: Some(1),
        call_timeout_ms: Some(60_000),
        ..Limits::default()
    };
    let e = run(dir.path(), limits, json!(null)).unwrap_err();
    assert!(matches!(e, SandboxError::RunTimeout(1)), "{e:?}");
    assert!(e.to_string().contains("limits.run_timeout_seconds"), "{e}");
}

#[test]
fn a_fork_bomb_is_refused() {
    let dir = project("import os\ndef main(input):\n    while True:\n        os.fork()\n");
    let e = run(dir.path(), Limits::default(), json!(null)).unwrap_err();
    assert!(
        matches!(
            e,
            SandboxError::Refused {
                refusal: Refusal::Process,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("new process"), "{e}");
    let dir = project(
        "import subprocess\ndef main(input):\n    return subprocess.run(['/bin/echo', 'hi']).returncode\n",
    );
    let e = run(dir.path(), Limits::default(), json!(null)).unwrap_err();
    assert!(e.to_string().contains("new process"), "{e}");
}

#[test]
fn allocating_10_gb_fails_on_the_memory_limit() {
    let dir =
        project("def main(input):\n    block = bytearray(10 * 1024 ** 3)\n    return len(block)\n");
    let limits = Limits {
        memory_mb: Some(512),
        ..Limits::default()
    };
    let e = run(dir.path(), limits, json!(null)).unwrap_err();
    assert!(
        matches!(
            e,
            SandboxError::Refused {
                refusal: Refusal::Memory,
                memory_mb: 512,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("limits.memory_mb"), "{e}");
}

#[test]
fn the_network_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = project(
        "import socket\n\
         def main(input):\n\
         \x20   s = socket.create_connection(('127.0.0.1', input['port']), timeout=2)\n\
         \x20   s.sendall(b'stolen')\n\
         \x20   return 'connected'\n",
    );
    let e = run(dir.path(), Limits::default(), json!({"port": port})).unwrap_err();
    assert!(
        matches!(
            e,
            SandboxError::Refused {
                refusal: Refusal::Network,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("network"), "{e}");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection: {other:?}"),
    }
}

/// A fake home with `.ssh/id_rsa` and a data dir with `tradeloom.db`, outside the project.
fn secrets() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let ssh = root.path().join("home/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_rsa"), "-----BEGIN FAKE KEY-----").unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("tradeloom.db"), "SQLite format 3\0").unwrap();
    let key = ssh.join("id_rsa");
    let db = data.join("tradeloom.db");
    (root, key, db)
}

#[test]
fn secrets_outside_the_sandbox_are_unreadable() {
    let (_root, key, db) = secrets();
    let dir = project("def main(input):\n    return open(input['path']).read()\n");
    for path in [&key, &db] {
        let e = run(
            dir.path(),
            Limits::default(),
            json!({"path": path.display().to_string()}),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                SandboxError::Refused {
                    refusal: Refusal::Filesystem,
                    ..
                }
            ),
            "{}: {e:?}",
            path.display()
        );
        assert!(e.to_string().contains("scratch folder"), "{e}");
    }
}

#[test]
fn a_script_folder_holding_the_data_dir_is_not_readable() {
    // The script sits in a folder that also holds the data dir: only the file itself is
    // readable, not its neighbours.
    let dir = project("def main(input):\n    return open(input['path']).read()\n");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("tradeloom.db"), "SQLite format 3\0").unwrap();
    let script = dir.path().join("skill.py");
    let protected = [data.clone()];
    let e = run_skill(
        &SandboxPolicy::from_env(),
        &ScriptSpec {
            script: &script,
            display: "skill.py",
            limits: Limits::default().effective().unwrap(),
            protected: &protected,
        },
        "main",
        &json!({"path": data.join("tradeloom.db").display().to_string()}),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("file the sandbox does not allow"),
        "{e}"
    );
}

#[test]
fn writing_outside_scratch_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted.txt");
    let dir = project(
        "def main(input):\n    with open(input['path'], 'w') as f:\n        f.write('x')\n",
    );
    let e = run(
        dir.path(),
        Limits::default(),
        json!({"path": target.display().to_string()}),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("file the sandbox does not allow"),
        "{e}"
    );
    assert!(!target.exists());
    // Not next to the script either.
    let beside = dir.path().join("planted.txt");
    let e = run(
        dir.path(),
        Limits::default(),
        json!({"path": beside.display().to_string()}),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("file the sandbox does not allow"),
        "{e}"
    );
    assert!(!beside.exists());
}

#[test]
fn an_exception_carries_the_traceback_without_server_paths() {
    let dir = project(
        "def helper(x):\n    raise ValueError('bad input %r' % x)\n\ndef main(input):\n    helper(input)\n",
    );
    let e = run(dir.path(), Limits::default(), json!(7)).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("ValueError: bad input 7"), "{text}");
    assert!(
        text.contains("skills/skill.py\", line 2, in helper"),
        "{text}"
    );
    let folder = dir.path().display().to_string();
    assert!(!text.contains(&folder), "{text}");
}

#[test]
fn a_missing_interpreter_is_a_clear_error() {
    let dir = project("def main(input):\n    return 1\n");
    let policy = SandboxPolicy {
        python: Some(PathBuf::from("/nonexistent/python3")),
        allow_weaker: false,
    };
    let e = run_with(&policy, dir.path(), Limits::default(), json!(null)).unwrap_err();
    assert!(matches!(e, SandboxError::Unavailable(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("/nonexistent/python3` was not found"),
        "{text}"
    );
    assert!(text.contains("TRADELOOM_PYTHON"), "{text}");
}

#[test]
fn a_missing_function_is_named() {
    let dir = project("def other(input):\n    return 1\n");
    let e = run(dir.path(), Limits::default(), json!(null)).unwrap_err();
    assert_eq!(e.to_string(), "the script defines no function main");
}

#[test]
fn the_child_gets_every_layer_this_machine_offers() {
    let dir = project("def main(input):\n    return 1\n");
    let script = dir.path().join("skill.py");
    let process = tradeloom_sandbox::ScriptProcess::spawn(
        &SandboxPolicy::from_env(),
        &ScriptSpec {
            script: &script,
            display: "skill.py",
            limits: Limits::default().effective().unwrap(),
            protected: &[],
        },
    )
    .unwrap();
    let report = process.report.clone();
    let scratch = process.scratch().unwrap().to_path_buf();
    assert!(scratch.is_dir());
    process.close();
    assert!(!scratch.exists(), "the scratch folder is removed");
    assert!(report.seccomp, "{report:?}");
    assert_eq!(report.landlock_abi, tradeloom_sandbox::landlock_abi());
    if tradeloom_sandbox::landlock_abi() > 0 {
        assert!(report.landlock_abi >= 1);
    }
    // This machine (root in a container) can make network namespaces; where it cannot, the
    // seccomp filter and Landlock still refuse sockets (the test above).
    if std::fs::read_link("/proc/self/ns/net").is_ok() && nix_can_unshare() {
        assert!(report.network_namespace, "{report:?}");
    }
}

/// Whether `unshare -n true` works here (what the child's namespace needs).
fn nix_can_unshare() -> bool {
    std::process::Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
}
