//! `tradeloom agents …` and `tradeloom skills …` against a real `tradeloom serve --auth
//! required` on a loopback port, with two operator keys made by `tradeloom keys create`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use crate::service::Service;
use crate::{repo, stderr, stdout, tradeloom};

const AGENT_V1: &str = "\
name: analyst
description: Reads the tape
model:
  base_url: http://127.0.0.1:8089/v1
  model: qwen
  temperature: 0.2
system_prompt: You are a cautious analyst.
tools: [calc]
";

/// The next version: no `name` (the command line gives it), another prompt.
const AGENT_V2: &str = "\
model: {base_url: 'http://127.0.0.1:8089/v1', model: qwen, temperature: 0.2}
system_prompt: You are a bold analyst.
tools: [calc, get_bars]
";

/// A misspelt field on line 5.
const AGENT_BAD: &str = "\
name: broken
model:
  base_url: http://127.0.0.1:8089/v1
  model: qwen
  temprature: 0.2
";

const SKILL: &str = r#"{"name": "momentum", "description": "Momentum signal of closes",
 "source": "def main(input):\n    return {\"signal\": \"hold\"}\n",
 "input_schema": {"type": "object", "properties": {"closes": {"type": "array"}}, "required": ["closes"]},
 "output_schema": {"type": "object", "properties": {"signal": {"enum": ["buy", "sell", "hold"]}}}}
"#;

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// `tradeloom keys create --json`: the secret.
fn key(data: &Path, name: &str) -> String {
    let out = tradeloom(
        data,
        &[
            "keys", "create", "--name", name, "--role", "operator", "--json",
        ],
    );
    assert!(out.status.success(), "{}", both(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    v["key"].as_str().unwrap().to_string()
}

/// `tradeloom ARGS` with the API and key in `TRADELOOM_API_URL` and `TRADELOOM_API_KEY`.
fn cli(data: &Path, api: &str, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tradeloom"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(repo())
        .env("TRADELOOM_API_URL", api)
        .env("TRADELOOM_API_KEY", key)
        .output()
        .expect("tradeloom runs")
}

fn json_of(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", both(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", both(out)))
}

#[test]
fn agents_are_created_listed_shown_updated_and_deleted_over_the_api() {
    let data = TempDir::new().unwrap();
    let d = data.path();
    let alice = key(d, "alice");
    let bob = key(d, "bob");
    let api = Service::serve_with(d, &["--auth", "required"], &[]);
    let url = api.url.as_str();
    let v1 = write(d, "analyst.yaml", AGENT_V1);
    let v1 = v1.to_str().unwrap();

    let out = cli(d, url, &alice, &["agents", "create", v1]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(stdout(&out), "agent `analyst` created: version 1\n");
    // A second create of the name is the API's conflict: its code and message, exit 1.
    let out = cli(d, url, &alice, &["agents", "create", v1]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out).contains("HTTP 409, agent_exists"),
        "{}",
        both(&out)
    );

    let out = cli(d, url, &alice, &["agents", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("name     latest  owner  updated\n"),
        "{text}"
    );
    assert!(text.contains("analyst  1       alice"), "{text}");
    let list = json_of(&cli(d, url, &alice, &["agents", "list", "--json"]));
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["owner"], "alice");

    let out = cli(d, url, &alice, &["agents", "show", "analyst"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    for expected in [
        "agent        analyst",
        "version      1 of 1 (the latest)",
        "owner        alice",
        "description  Reads the tape",
        "model        qwen at http://127.0.0.1:8089/v1",
        "tools        calc",
        "\"system_prompt\": \"You are a cautious analyst.\"",
    ] {
        assert!(text.contains(expected), "no `{expected}` in\n{text}");
    }

    // A new version, the name from the command line; the same file again changes nothing.
    let v2 = write(d, "analyst-v2.yaml", AGENT_V2);
    let v2 = v2.to_str().unwrap();
    let out = cli(d, url, &alice, &["agents", "update", "analyst", v2]);
    assert_eq!(
        stdout(&out),
        "agent `analyst` updated: version 2\n",
        "{}",
        both(&out)
    );
    let same = json_of(&cli(
        d,
        url,
        &alice,
        &["agents", "update", "analyst", v2, "--json"],
    ));
    assert_eq!(
        (same["version"].as_u64(), same["changed"].as_bool()),
        (Some(2), Some(false))
    );

    let first = json_of(&cli(
        d,
        url,
        &alice,
        &["agents", "show", "analyst@1", "--json"],
    ));
    assert_eq!(first["version"], 1);
    assert_eq!(first["latest_version"], 2);
    assert_eq!(
        first["definition"]["system_prompt"],
        "You are a cautious analyst."
    );
    let latest = json_of(&cli(
        d,
        url,
        &alice,
        &["agents", "show", "analyst", "--json"],
    ));
    assert_eq!(latest["version"], 2);
    assert_eq!(
        latest["definition"]["tools"],
        serde_json::json!(["calc", "get_bars"])
    );
    let out = cli(d, url, &alice, &["agents", "show", "analyst@1"]);
    assert!(
        stdout(&out).contains("version      1 of 2\n"),
        "{}",
        both(&out)
    );

    let out = cli(d, url, &alice, &["agents", "versions", "analyst"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let rows: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0].starts_with("version     written by  created"),
        "{rows:?}"
    );
    assert!(rows[1].starts_with("1           alice"), "{rows:?}");
    assert!(rows[2].starts_with("2 (latest)  alice"), "{rows:?}");
    let versions = json_of(&cli(
        d,
        url,
        &alice,
        &["agents", "versions", "analyst", "--json"],
    ));
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");

    // Another operator key may read but neither write a version nor delete: the server's 403.
    for args in [
        vec!["agents", "update", "analyst", v2],
        vec!["agents", "delete", "analyst"],
    ] {
        let out = cli(d, url, &bob, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", both(&out));
        let err = stderr(&out);
        assert!(err.contains("HTTP 403, not_owner"), "{args:?}: {err}");
        assert!(
            err.contains("`alice`"),
            "the message names the owner: {err}"
        );
        assert!(
            !err.contains(&bob) && !err.contains(&alice),
            "a key leaks: {err}"
        );
    }
    assert_eq!(
        json_of(&cli(d, url, &bob, &["agents", "show", "analyst", "--json"]))["version"],
        2
    );

    // A name that is not one is refused before any request.
    let out = cli(d, url, &alice, &["agents", "show", "Analyst@x"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("`Analyst@x`"), "{}", both(&out));

    let out = cli(d, url, &alice, &["agents", "delete", "analyst"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_eq!(
        stdout(&out),
        "agent `analyst` deleted (its versions are kept)\n"
    );
    let out = cli(d, url, &alice, &["agents", "show", "analyst"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out).contains("HTTP 404, agent_not_found"),
        "{}",
        both(&out)
    );
    let out = cli(d, url, &alice, &["agents", "list"]);
    assert_eq!(stdout(&out), "no agents\n", "{}", both(&out));
}

#[test]
fn a_bad_definition_file_is_refused_before_any_request() {
    let data = TempDir::new().unwrap();
    let d = data.path();
    let bad = write(d, "broken.yaml", AGENT_BAD);
    // Nothing listens on this API: a request would fail with exit 1, not 2.
    let closed = "http://127.0.0.1:9";
    let out = cli(d, closed, "", &["agents", "create", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:5:", bad.display())) && err.contains("model.temprature"),
        "the file, line and field: {err}"
    );
    assert!(err.contains("nothing was sent"), "{err}");
    let out = cli(
        d,
        closed,
        "",
        &["agents", "create", bad.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["errors"][0]["path"], "model.temprature", "{v}");
    assert_eq!(v["errors"][0]["line"], 5, "{v}");

    // An update whose file names another agent.
    let other = write(d, "other.yaml", AGENT_V1);
    let out = cli(
        d,
        closed,
        "",
        &["agents", "update", "quant", other.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let err = stderr(&out);
    assert!(
        err.contains(":1:") && err.contains("name: \"analyst\" differs from `quant`"),
        "{err}"
    );

    // A skill whose input is not an object schema; a file that is not YAML.
    let skill = write(
        d,
        "skill.yaml",
        "name: s\nsource: 'def main(i): return i'\ninput_schema: {type: array}\noutput_schema: {}\n",
    );
    let out = cli(
        d,
        closed,
        "",
        &["skills", "create", skill.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains(":3:") && stderr(&out).contains("input_schema"),
        "{}",
        both(&out)
    );
    let garbled = write(d, "garbled.yaml", "name: [unclosed\n");
    let out = cli(
        d,
        closed,
        "",
        &["skills", "create", garbled.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("not valid YAML"), "{}", both(&out));
    let out = cli(d, closed, "", &["skills", "create", "no-such-file.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains("cannot read the skill file no-such-file.yaml"),
        "{}",
        both(&out)
    );
}

#[test]
fn skills_go_through_the_same_commands_and_the_server_checks_references() {
    let data = TempDir::new().unwrap();
    let d = data.path();
    let api = Service::serve(d, "1");
    let url = api.url.as_str();
    let skill = write(d, "momentum.json", SKILL);
    let out = cli(
        d,
        url,
        "",
        &["skills", "create", skill.to_str().unwrap(), "--json"],
    );
    let saved = json_of(&out);
    assert_eq!(
        (saved["name"].as_str(), saved["version"].as_u64()),
        (Some("momentum"), Some(1))
    );
    let out = cli(d, url, "", &["skills", "show", "momentum"]);
    let text = stdout(&out);
    assert!(text.contains("skill        momentum"), "{}", both(&out));
    assert!(text.contains("\"function\": \"main\""), "{text}");
    let out = cli(d, url, "", &["skills", "list"]);
    assert!(
        stdout(&out).contains("momentum  1       anonymous"),
        "{}",
        both(&out)
    );

    // An agent calling a skill that is not registered: only the server knows, and says so.
    let agent = write(
        d,
        "quant.yaml",
        "name: quant\nmodel: {base_url: 'http://127.0.0.1:8089/v1', model: m}\ntools: ['skill:momentum', 'skill:missing']\n",
    );
    let out = cli(d, url, "", &["agents", "create", agent.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let err = stderr(&out);
    assert!(err.contains("HTTP 422, invalid_agent"), "{err}");
    assert!(
        err.contains("tools[1]") && err.contains("`skill:missing`"),
        "{err}"
    );

    let out = cli(d, url, "", &["skills", "delete", "momentum"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let out = cli(d, url, "", &["skills", "versions", "momentum"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(stderr(&out).contains("skill_not_found"), "{}", both(&out));
}
