//! `tradeloom deploy systemd` (unit files checked by `systemd-analyze verify` where the machine
//! has it) and the environment variables a deployment sets for `serve`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{stderr, stdout, tradeloom};

fn unit(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn systemd_units_carry_restart_policy_and_limits_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("units");
    let state = tmp.path().join("state");
    let binary = env!("CARGO_BIN_EXE_tradeloom");
    let scans = tmp.path().join("scans");
    let spec = tmp.path().join("scan_trader.yaml");
    let o = tradeloom(
        tmp.path(),
        &[
            "deploy",
            "systemd",
            "--out",
            out.to_str().unwrap(),
            "--binary",
            binary,
            "--user",
            "root",
            "--state-dir",
            state.to_str().unwrap(),
            "--health",
            "--bridge",
            &format!("scans={}", scans.display()),
            "--trader",
            spec.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let written: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(written.len(), 5, "{written:?}");

    let serve = unit(&out, "tradeloom-serve.service");
    for line in [
        format!("ExecStart={binary} serve --addr 127.0.0.1:8080"),
        "Restart=always".into(),
        "MemoryMax=4G".into(),
        format!("Environment=TRADELOOM_DATA_DIR={}", state.display()),
        format!("ReadWritePaths={}", state.display()),
    ] {
        assert!(serve.lines().any(|l| l == line), "{line} in\n{serve}");
    }
    let trader = unit(&out, "tradeloom-trader-scan_trader.service");
    for line in [
        format!("ExecStart={binary} trader {}", spec.display()),
        "MemoryMax=2G".into(),
        "CPUQuota=200%".into(),
        "TasksMax=50".into(),
    ] {
        assert!(trader.lines().any(|l| l == line), "{line} in\n{trader}");
    }
    let bridge = unit(&out, "tradeloom-bridge-scans.service");
    assert!(
        bridge.lines().any(|l| l
            == format!(
                "ExecStart={binary} bridge --watch {} --map scans",
                scans.display()
            )),
        "{bridge}"
    );
    let target = unit(&out, "tradeloom.target");
    assert!(target.contains("Wants=tradeloom-serve.service tradeloom-health.service tradeloom-bridge-scans.service tradeloom-trader-scan_trader.service"), "{target}");

    // Written again: refused without --force, nothing changed.
    let again = tradeloom(
        tmp.path(),
        &[
            "deploy",
            "systemd",
            "--out",
            out.to_str().unwrap(),
            "--binary",
            binary,
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("tradeloom-serve.service exists already (--force overwrites)"),
        "{}",
        stderr(&again)
    );
    assert_eq!(unit(&out, "tradeloom-serve.service"), serve);

    // systemd's own check of every unit, where the machine has systemd-analyze.
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(v) if v.status.success() => {
            let mut cmd = Command::new("systemd-analyze");
            cmd.arg("verify").arg("--man=no");
            for name in &written {
                cmd.arg(name);
            }
            let verify = cmd.output().unwrap();
            let text = format!("{}{}", stdout(&verify), stderr(&verify));
            // Lines about units outside ours (postgresql.service, …) are not ours to fix.
            let ours: Vec<&str> = text.lines().filter(|l| l.contains("tradeloom")).collect();
            assert!(
                verify.status.success() && ours.is_empty(),
                "systemd-analyze verify: {text}"
            );
        }
        _ => eprintln!("systemd-analyze not found: unit files checked by content only"),
    }
}

#[test]
fn systemd_bad_values_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("units");
    for (args, message) in [
        (
            vec!["--binary", "bin/tradeloom"],
            "--binary bin/tradeloom: must be an absolute path",
        ),
        (
            vec!["--memory-max", "2 gigs"],
            "--memory-max \"2 gigs\": expected bytes",
        ),
        (
            vec!["--cpu-quota", "150"],
            "--cpu-quota \"150\": expected a percentage",
        ),
        (
            vec!["--bridge", "scans"],
            "--bridge scans: expected NAME=DIR",
        ),
        (
            vec!["--bridge", "a b=/srv/scans"],
            "--bridge: name \"a b\" must be 1 to 64 letters",
        ),
        (
            vec!["--no-serve"],
            "nothing to write: --no-serve without --health, --bridge or --trader",
        ),
    ] {
        let mut all = vec!["deploy", "systemd", "--out", out.to_str().unwrap()];
        all.extend(args.iter().copied());
        let o = tradeloom(tmp.path(), &all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        assert!(!out.join("tradeloom-serve.service").exists(), "{args:?}");
    }
}

/// `serve` listens where `TRADELOOM_ADDR` says, else on `API_HOST`:`API_PORT`.
#[test]
fn serve_takes_its_address_from_the_environment() {
    for env in [
        vec![("TRADELOOM_ADDR", "127.0.0.1:0")],
        vec![("API_HOST", "127.0.0.1"), ("API_PORT", "0")],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradeloom"));
        cmd.args(["serve", "--auth", "off", "--data-dir"])
            .arg(tmp.path())
            .env_remove("TRADELOOM_ADDR")
            .env_remove("API_HOST")
            .env_remove("API_PORT")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        // Port 0 means the system chose one: the default 8080 would show `:8080`.
        assert!(line.contains("http://127.0.0.1:"), "{env:?}: {line:?}");
        assert!(!line.contains(":8080"), "{env:?}: {line:?}");
    }
}

/// Every command line of the container deployments (`command:` of deploy/compose.yaml, `args:`
/// of deploy/k8s, the Dockerfile's `CMD`), as the binary's argument parser sees it.
fn deployment_command_lines() -> Vec<(String, Vec<String>)> {
    let mut lines = Vec::new();
    let strings = |v: &yaml_serde::Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let compose: yaml_serde::Value = yaml_serde::from_str(
        &std::fs::read_to_string(crate::repo().join("deploy/compose.yaml")).unwrap(),
    )
    .unwrap();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        let image = service.get("image").and_then(|i| i.as_str()).unwrap_or("");
        let ours = image.starts_with("tradeloom") || service.get("<<").is_some();
        if let (true, Some(command)) = (ours, service.get("command")) {
            lines.push((
                format!("compose {}", name.as_str().unwrap()),
                strings(command),
            ));
        }
    }
    for entry in std::fs::read_dir(crate::repo().join("deploy/k8s")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in text.split("\n---\n") {
            let v: yaml_serde::Value = yaml_serde::from_str(doc).unwrap();
            if v["kind"].as_str() != Some("Deployment") {
                continue;
            }
            for c in v["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .unwrap()
            {
                let file = path.file_name().unwrap().to_string_lossy().into_owned();
                lines.push((format!("k8s {file}"), strings(&c["args"])));
            }
        }
    }
    let dockerfile = std::fs::read_to_string(crate::repo().join("Dockerfile")).unwrap();
    let cmd = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("the Dockerfile has a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    lines.push(("Dockerfile CMD".into(), cmd));
    lines
}

#[test]
fn container_deployments_run_commands_the_binary_accepts() {
    let lines = deployment_command_lines();
    // api, coordinator, two workers in compose; three Deployments; the Dockerfile.
    assert_eq!(lines.len(), 8, "{lines:?}");
    let tmp = tempfile::tempdir().unwrap();
    for (source, args) in &lines {
        // Parsed up to `--help`: an unknown command, flag or bad value fails before it.
        let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
        with_help.push("--help");
        let o = tradeloom(tmp.path(), &with_help);
        assert!(
            o.status.success(),
            "{source}: `tradeloom {}` is refused: {}",
            args.join(" "),
            stderr(&o)
        );
    }
    // And the parser does refuse a misspelt flag this way.
    let o = tradeloom(tmp.path(), &["worker", "--concurrenzy", "2", "--help"]);
    assert!(!o.status.success());
}
