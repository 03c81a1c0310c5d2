//! API keys, roles and rate limits over real HTTP: keys made with `tradeloom keys`, then
//! `tradeloom serve --auth required` on loopback (and the default, auth off, on loopback).

use std::path::Path;
use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode, header};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::service::Service;
use crate::{stderr, stdout, tradeloom};

fn client() -> reqwest::Client {
    tradeloom_llm::install_crypto_provider();
    reqwest::Client::new()
}

/// Status, JSON body and headers of a request.
async fn send(req: RequestBuilder) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

/// `tradeloom keys create --json`: (id, secret).
fn create_key(data: &Path, name: &str, role: &str) -> (String, String) {
    let out = tradeloom(
        data,
        &["keys", "create", "--name", name, "--role", role, "--json"],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["role"], role);
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

fn keys_list(data: &Path) -> Vec<Value> {
    let out = tradeloom(data, &["keys", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    v["keys"].as_array().unwrap().clone()
}

fn workflow() -> Value {
    json!({"name": "guarded", "nodes": [{"id": "a", "type": "transform", "config": {"output": {"x": 1}}}]})
}

#[test]
fn keys_commands_show_the_secret_once_and_check_their_input() {
    let data = TempDir::new().unwrap();
    let out = tradeloom(
        data.path(),
        &["keys", "create", "--name", "ci", "--role", "operator"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no `key:` line in {text}"));
    assert!(secret.starts_with("tl_") && secret.len() == 67, "{secret}");
    assert!(text.contains("cannot be shown again"), "{text}");

    let list = tradeloom(data.path(), &["keys", "list"]);
    let table = stdout(&list);
    assert!(table.contains("ci") && table.contains("operator") && table.contains("active"));
    assert!(
        table.contains(&secret[..11]),
        "the display prefix is listed"
    );
    assert!(!table.contains(secret), "the secret is never listed");

    let bad_role = tradeloom(
        data.path(),
        &["keys", "create", "--name", "x", "--role", "owner"],
    );
    assert_eq!(bad_role.status.code(), Some(2));
    assert!(
        stderr(&bad_role).contains("unknown role `owner`; expected viewer, operator or admin"),
        "{}",
        stderr(&bad_role)
    );
    let dup = tradeloom(
        data.path(),
        &["keys", "create", "--name", "ci", "--role", "viewer"],
    );
    assert_eq!(dup.status.code(), Some(2));
    assert!(
        stderr(&dup).contains("an API key named `ci` exists"),
        "{}",
        stderr(&dup)
    );

    let revoked = tradeloom(data.path(), &["keys", "revoke", "ci"]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains("revoked API key `ci`"));
    assert!(stdout(&tradeloom(data.path(), &["keys", "list"])).contains("revoked 20"));
    let missing = tradeloom(data.path(), &["keys", "revoke", "nobody"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("`nobody`"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_roles_guard_every_route_but_the_public_ones() {
    let data = TempDir::new().unwrap();
    let d = data.path();
    let (_, viewer) = create_key(d, "viewer-1", "viewer");
    let (_, operator) = create_key(d, "ops", "operator");
    let (_, admin) = create_key(d, "root", "admin");
    let (_, doomed) = create_key(d, "doomed", "viewer");
    let api = Service::serve_with(d, &["--auth", "required"], &[]);
    let c = client();
    let url = |path: &str| format!("{}{path}", api.url);

    // Public routes need no key.
    for path in ["/health", "/openapi.json", "/docs/"] {
        let (code, _, _) = send(c.get(url(path))).await;
        assert_ne!(code, StatusCode::UNAUTHORIZED, "{path} is public");
    }
    let (_, doc, _) = send(c.get(url("/openapi.json"))).await;
    assert!(doc["paths"]["/keys"].is_object(), "/keys is documented");

    // No key, a malformed header, an unknown key: 401 with a Bearer challenge.
    let (code, body, headers) = send(c.get(url("/workflows"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        (body["error"].as_str(), body["details"]["reason"].as_str()),
        (Some("unauthorized"), Some("missing_key"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        r#"Bearer realm="tradeloom""#
    );
    let (code, body, _) = send(
        c.get(url("/workflows"))
            .header("authorization", format!("Basic {viewer}")),
    )
    .await;
    assert_eq!(
        (code, body["details"]["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("malformed_header"))
    );
    let (code, body, headers) = send(c.get(url("/workflows")).bearer_auth("tl_00")).await;
    assert_eq!(
        (code, body["details"]["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_key"))
    );
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    let (code, _, _) = send(c.get(url("/no-such-route"))).await;
    assert_eq!(
        code,
        StatusCode::UNAUTHORIZED,
        "unknown routes are not revealed"
    );

    // viewer reads but may not write.
    let (code, body, _) = send(c.get(url("/workflows")).bearer_auth(&viewer)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body, _) = send(
        c.post(url("/workflows"))
            .bearer_auth(&viewer)
            .json(&workflow()),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        body["details"],
        json!({"required_role": "operator", "role": "viewer", "key": "viewer-1"})
    );

    // operator writes, but deleting a workflow and /keys are admin's.
    let (code, created, _) = send(
        c.post(url("/workflows"))
            .bearer_auth(&operator)
            .json(&workflow()),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let wf = url(&format!("/workflows/{}", created["id"].as_str().unwrap()));
    let (code, body, _) = send(c.delete(&wf).bearer_auth(&operator)).await;
    assert_eq!(
        (code, body["details"]["required_role"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin"))
    );
    for req in [
        c.get(url("/keys")),
        c.post(url("/keys"))
            .json(&json!({"name": "x", "role": "viewer"})),
    ] {
        let (code, body, _) = send(req.bearer_auth(&operator)).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    }
    let (code, body, _) = send(c.delete(&wf).bearer_auth(&admin)).await;
    assert!(code.is_success(), "admin deletes: {code} {body}");

    // admin manages keys over HTTP; the secret is in the creation answer only.
    let (code, made, _) = send(
        c.post(url("/keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "made-by-api", "role": "operator"})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let secret = made["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("tl_"));
    assert_eq!(made["prefix"].as_str().unwrap(), &secret[..11]);
    let (code, _, _) = send(
        c.post(url("/workflows"))
            .bearer_auth(&secret)
            .json(&workflow()),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "the new key is an operator's");
    let (code, body, _) = send(
        c.post(url("/keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "x", "role": "owner"})),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_role"))
    );
    let (code, body, _) = send(
        c.post(url("/keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "made-by-api", "role": "viewer"})),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("api_key_exists"))
    );
    let (code, list, _) = send(c.get(url("/keys")).bearer_auth(&admin)).await;
    assert_eq!(code, StatusCode::OK);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 5, "{list}");
    assert!(
        !list.to_string().contains(&secret[11..]),
        "listings never show secrets"
    );
    let (code, revoked, _) = send(c.delete(url("/keys/made-by-api")).bearer_auth(&admin)).await;
    assert_eq!(code, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (code, _, _) = send(c.get(url("/workflows")).bearer_auth(&secret)).await;
    assert_eq!(
        code,
        StatusCode::UNAUTHORIZED,
        "a key revoked over HTTP is refused"
    );
    let (code, body, _) = send(c.delete(url("/keys/nobody")).bearer_auth(&admin)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("api_key_not_found"))
    );

    // A key revoked with the CLI (another process) while the server runs stops working within
    // tradeloom_store::EXTERNAL_CHECK_EVERY (100 ms): the server remembers keys between checks.
    let (code, _, _) = send(c.get(url("/workflows")).bearer_auth(&doomed)).await;
    assert_eq!(code, StatusCode::OK);
    let out = tradeloom(d, &["keys", "revoke", "doomed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    tokio::time::sleep(tradeloom_store::EXTERNAL_CHECK_EVERY).await;
    let (code, _, _) = send(c.get(url("/workflows")).bearer_auth(&doomed)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // `?api_key=` counts on GET /ws only (browsers cannot set headers on an upgrade).
    let (code, _, _) = send(c.get(url(&format!("/workflows?api_key={viewer}")))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "no query keys elsewhere");
    let (code, body, _) = send(c.get(url(&format!("/ws?api_key={viewer}")))).await;
    assert!(
        code != StatusCode::UNAUTHORIZED && code != StatusCode::FORBIDDEN,
        "the query key passes the guard on /ws: {code} {body}"
    );
    let (code, body, _) = send(c.get(url("/ws?api_key=tl_00"))).await;
    assert_eq!(
        (code, body["details"]["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_key"))
    );
    let (code, body, _) = send(c.get(url("/ws"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(body["message"].as_str().unwrap().contains("?api_key="));

    // Use is recorded (asynchronously, at most once a minute per key).
    let mut used = Vec::new();
    for _ in 0..50 {
        used = keys_list(d)
            .into_iter()
            .filter(|k| !k["last_used_at"].is_null())
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect();
        if used.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    used.sort();
    assert_eq!(
        used,
        ["doomed", "made-by-api", "ops", "root", "viewer-1"],
        "every key that called has last_used_at"
    );
}

/// The 429 of `limit`: its Retry-After (whole seconds ≥ 1) equals `details.retry_after_s`.
fn retry_after(body: &Value, headers: &reqwest::header::HeaderMap, limit: &str) -> u64 {
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert_eq!(body["details"]["limit"], limit, "{body}");
    let secs: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs >= 1);
    assert_eq!(body["details"]["retry_after_s"], secs);
    secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let data = TempDir::new().unwrap();
    let d = data.path();
    let (_, first) = create_key(d, "first", "viewer");
    let (_, second) = create_key(d, "second", "viewer");
    let c = client();

    // Per key (from the environment): one request a second each.
    let api = Service::serve_with(
        d,
        &["--auth", "required", "--rate-limit-global", "0"],
        &[("TRADELOOM_RATE_LIMIT_PER_KEY", "1")],
    );
    let url = format!("{}/workflows", api.url);
    let (code, _, _) = send(c.get(&url).bearer_auth(&first)).await;
    assert_eq!(code, StatusCode::OK);
    let (code, body, headers) = send(c.get(&url).bearer_auth(&first)).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait = retry_after(&body, &headers, "per_key");
    assert_eq!(body["details"]["limit_per_s"], 1);
    let (code, _, _) = send(c.get(&url).bearer_auth(&second)).await;
    assert_eq!(code, StatusCode::OK, "another key has its own budget");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (code, _, _) = send(c.get(&url).bearer_auth(&first)).await;
    assert_eq!(code, StatusCode::OK, "the budget refills after Retry-After");
    drop(api);

    // Global, with the loopback default (auth off: no key needed).
    let api = Service::serve_with(
        d,
        &["--rate-limit-global", "1", "--rate-limit-per-key", "0"],
        &[],
    );
    let url = format!("{}/workflows", api.url);
    let (code, body, _) = send(c.get(&url)).await;
    assert_eq!(code, StatusCode::OK, "auth is off on loopback: {body}");
    let (code, body, headers) = send(c.get(&url).bearer_auth(&second)).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    retry_after(&body, &headers, "global");
    drop(api);

    // Workflow runs: a workflow without agent nodes is a light run, one a minute here.
    let api = Service::serve_with(
        d,
        &["--auth", "required", "--rate-limit-runs-light", "1"],
        &[],
    );
    let (_, operator) = create_key(d, "runner", "operator");
    let (code, created, _) = send(
        c.post(format!("{}/workflows", api.url))
            .bearer_auth(&operator)
            .json(&workflow()),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let runs = format!(
        "{}/workflows/{}/runs",
        api.url,
        created["id"].as_str().unwrap()
    );
    let start = || {
        c.post(&runs)
            .bearer_auth(&operator)
            .json(&json!({"inputs": {}}))
    };
    let (code, body, _) = send(start()).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let (code, body, headers) = send(start()).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait = retry_after(&body, &headers, "runs_light");
    assert!((55..=60).contains(&wait), "about a minute: {wait}");
    assert_eq!(
        (&body["details"]["tier"], &body["details"]["agent_nodes"]),
        (&json!("light"), &json!(0))
    );
}

/// Waits for the one pending approval of `run` and returns its id.
async fn pending_approval(c: &reqwest::Client, api: &str, key: &str, run: &str) -> String {
    for _ in 0..200 {
        let (code, body, _) = send(
            c.get(format!("{api}/approvals?status=pending&run_id={run}"))
                .bearer_auth(key),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        if let Some(a) = body["approvals"].as_array().and_then(|a| a.first()) {
            return a["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} never asked for an approval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_decided_by_the_key_that_calls_not_by_the_name_it_sends() {
    let data = TempDir::new().unwrap();
    let d = data.path();
    let (_, alice) = create_key(d, "alice", "operator");
    let (_, bob) = create_key(d, "bob", "operator");
    let api = Service::serve_with(d, &["--auth", "required"], &[]);
    let c = client();
    let gate = json!({"name": "gate", "nodes": [{"id": "review", "type": "hitl", "config": {
        "prompt": "Trade?", "expires_after": "1h", "default": "reject", "approvers": ["bob"]}}]});
    let (code, created, _) = send(
        c.post(format!("{}/workflows", api.url))
            .bearer_auth(&alice)
            .json(&gate),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (code, run, _) = send(
        c.post(format!(
            "{}/workflows/{}/runs",
            api.url,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&alice)
        .json(&json!({})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{run}");
    let approval = pending_approval(&c, &api.url, &alice, run["run_id"].as_str().unwrap()).await;
    let decide = format!("{}/approvals/{approval}/decide", api.url);

    // alice claims to be bob: refused, and nothing is decided.
    let (code, body, headers) = send(
        c.post(&decide)
            .bearer_auth(&alice)
            .json(&json!({"decision": "approve", "by": "bob"})),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(body["error"], "forbidden", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("`alice`"),
        "{body}"
    );

    // bob decides; a `by` he sends is kept as a note in the comment, never as the decider.
    let (code, body, _) = send(
        c.post(&decide)
            .bearer_auth(&bob)
            .json(&json!({"decision": "approve", "comment": "fine", "by": "carol"})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved", "{body}");
    assert_eq!(body["decided_by"], "bob", "{body}");
    let comment = body["comment"].as_str().unwrap();
    assert!(
        comment.contains("fine") && comment.contains("carol"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_key_cannot_be_revoked() {
    let data = TempDir::new().unwrap();
    let d = data.path();
    let (_, root) = create_key(d, "root", "admin");
    let api = Service::serve_with(d, &["--auth", "required"], &[]);
    let c = client();
    let (code, body, headers) = send(
        c.delete(format!("{}/keys/root", api.url))
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(body["error"], "last_admin_key", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("last active admin key"),
        "{body}"
    );
    let (code, _, _) = send(c.get(format!("{}/keys", api.url)).bearer_auth(&root)).await;
    assert_eq!(code, StatusCode::OK, "root still works");

    let out = tradeloom(d, &["keys", "revoke", "root"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("`root` is the last active admin key"),
        "{}",
        stderr(&out)
    );
    // With a second admin, the first may go.
    create_key(d, "root2", "admin");
    let out = tradeloom(d, &["keys", "revoke", "root"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_hosts_and_origins_are_configured_on_serve() {
    let data = TempDir::new().unwrap();
    let api = Service::serve_with(
        data.path(),
        &[
            "--allowed-host",
            "tradeloom.lan",
            "--allow-origin",
            "http://dashboard.lan:3000",
        ],
        &[],
    );
    let c = client();
    let url = format!("{}/workflows", api.url);
    let port = api.url.rsplit(':').next().unwrap().to_string();
    let (code, body, _) = send(c.get(&url).header("host", format!("tradeloom.lan:{port}"))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body, _) = send(c.get(&url).header("host", format!("other.lan:{port}"))).await;
    assert_eq!(code, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert_eq!(body["error"], "host_not_allowed");
    let (code, body, headers) = send(
        c.get(&url)
            .header("origin", "http://dashboard.lan:3000")
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "an allowed origin passes: {body}");
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://dashboard.lan:3000"
    );
    let (code, body, _) = send(c.get(&url).header("origin", "http://evil.example")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "cross_origin_refused");
}

/// `--public-url` (the base of approval links sent to chat): checked before anything starts,
/// and its host answered like an `--allowed-host`, since approvers' browsers come by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_is_checked_and_its_host_is_answered() {
    let data = TempDir::new().unwrap();
    for (url, expected) in [
        (
            "ftp://approvals.lan",
            "--public-url ftp://approvals.lan: the scheme must be http or https",
        ),
        ("approvals.lan", "--public-url approvals.lan: relative URL"),
        (
            "https://approvals.lan/?x=1",
            "a base URL has no query, fragment or user name",
        ),
    ] {
        let out = tradeloom(data.path(), &["serve", "--public-url", url]);
        assert!(!out.status.success(), "--public-url {url} was accepted");
        assert!(stderr(&out).contains(expected), "{url}: {}", stderr(&out));
    }
    let api = Service::serve_with(
        data.path(),
        &["--public-url", "https://approvals.lan/tradeloom/"],
        &[],
    );
    let port = api.url.rsplit(':').next().unwrap().to_string();
    let url = format!("{}/workflows", api.url);
    let (code, body, _) = send(
        client()
            .get(&url)
            .header("host", format!("approvals.lan:{port}")),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body, _) = send(
        client()
            .get(&url)
            .header("host", format!("other.lan:{port}")),
    )
    .await;
    assert_eq!(code, StatusCode::MISDIRECTED_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_paths_stay_inside_the_config_dir_and_errors_never_echo_files() {
    let data = TempDir::new().unwrap();
    let configs = TempDir::new().unwrap();
    let cd = configs.path();
    let outside = TempDir::new().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), "SECRET_LINE=hunter2\n").unwrap();
    std::fs::write(cd.join("bad.yaml"), "models:\n  - SECRET_TOKEN=abc123\n").unwrap();
    std::fs::write(cd.join("plain.txt"), "PASSWORD=letmein\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), cd.join("link.yaml")).unwrap();
    std::fs::create_dir(cd.join("sub")).unwrap();
    let api = Service::serve_with(data.path(), &["--config-dir", cd.to_str().unwrap()], &[]);
    let c = client();
    let url = format!("{}/simulate/trigger", api.url);
    let escape = format!(
        "../{}/secret.yaml",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    let secret_abs = outside.path().join("secret.yaml").display().to_string();
    for (path, code) in [
        ("/etc/passwd", "invalid_config_path"),
        (secret_abs.as_str(), "invalid_config_path"),
        (escape.as_str(), "invalid_config_path"),
        ("sub/../../etc/passwd", "invalid_config_path"),
        ("link.yaml", "invalid_config_path"),
        ("missing.yaml", "invalid_config_path"),
        ("sub", "invalid_config_path"),
        ("bad.yaml", "invalid_config"),
        ("plain.txt", "invalid_config"),
    ] {
        let (status, body, _) = send(c.post(&url).json(&json!({"config_path": path}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"], code, "{path}: {body}");
        let text = body.to_string();
        for leak in [
            "root:", "hunter2", "SECRET", "abc123", "letmein", "PASSWORD",
        ] {
            assert!(!text.contains(leak), "{path} leaks {leak}: {text}");
        }
    }
    // A parse error names the file relative to the config dir, the line and the field.
    let (_, body, _) = send(c.post(&url).json(&json!({"config_path": "bad.yaml"}))).await;
    let text = body.to_string();
    assert!(text.contains("bad.yaml:2"), "{text}");
    assert!(text.contains("models[0]"), "{text}");
    assert!(!text.contains(cd.to_str().unwrap()), "{text}");

    // Without --config-dir, config_path is disabled.
    drop(api);
    let api = Service::serve_with(data.path(), &[], &[]);
    let (status, body, _) = send(
        c.post(format!("{}/simulate/trigger", api.url))
            .json(&json!({"config_path": "/etc/passwd"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "config_path_disabled", "{body}");
    assert!(!body.to_string().contains("root:"), "{body}");
}
