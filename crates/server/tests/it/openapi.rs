//! `GET /openapi.json` against the router that serves it: the same operations (method + path,
//! read from the router itself), a well-formed document (descriptions, unique operation ids,
//! parameters where they really are), the bearer scheme on every protected operation, and every
//! status a route answers to a bad request documented with the JSON error body. With
//! `TRADELOOM_TEST_OPENAPI_VALIDATOR` set (the path of `openapi-spec-validator`, which `.ci/run`
//! installs pinned), the document also passes that validator.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tradeloom_agents::{Simulator, SimulatorOptions};
use tradeloom_server::{AppState, AuthMode, required_role};
use tradeloom_store::{NewApiKey, Role, Store, open_store};

/// The methods an operation can have in OpenAPI, lower case as in the document.
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "options", "trace"];

struct Server {
    base: String,
    /// Secrets of a viewer, an operator and an admin key (auth required only).
    keys: BTreeMap<Role, String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn state(dir: &TempDir, auth: AuthMode) -> (AppState, Arc<dyn Store>) {
    let location = dir.path().join("t.db").display().to_string();
    let store = open_store(&location).await.unwrap();
    let simulator = Simulator::new(
        Arc::clone(&store),
        SimulatorOptions {
            data_dir: dir.path().join("data"),
            max_concurrent_jobs: 1,
            base_dir: dir.path().to_path_buf(),
            outbound: tradeloom_net::Outbound::strict(),
        },
    );
    let config = tradeloom_orchestrator::RuntimeConfig::new(dir.path().join("data"));
    let runtime = tradeloom_orchestrator::Runtime::new(
        Arc::clone(&store),
        Arc::new(tradeloom_queue::InMemoryQueue::new()),
        config,
        Some(Arc::clone(&simulator)),
    )
    .unwrap();
    let state = AppState::new(simulator)
        .with_auth(auth)
        .with_runtime(runtime);
    (state, store)
}

async fn start(auth: AuthMode) -> Server {
    let dir = TempDir::new().unwrap();
    let (state, store) = state(&dir, auth).await;
    let mut keys = BTreeMap::new();
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let (new, secret) = NewApiKey::generate(&format!("{role}-key"), role).unwrap();
        store.create_api_key(&new).await.unwrap();
        keys.insert(role, secret);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(tradeloom_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base: format!("http://{addr}"),
        keys,
        stop: Some(stop),
        _dir: dir,
    }
}

async fn document(server: &Server) -> Value {
    let response = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Every operation of the document: (METHOD, path template) → operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.insert((method.to_uppercase(), path.clone()), op.clone());
            }
        }
    }
    ops
}

/// Routes that serve the document and its viewer, not the API: not in the document.
/// Routes that are not the API's: the document itself, Swagger UI and the dashboard's files.
fn is_docs_route(path: &str) -> bool {
    path == "/openapi.json"
        || path == "/docs"
        || path.starts_with("/docs/")
        || tradeloom_server::dashboard::is_dashboard_path(path)
}

/// The path templates the router holds, read from its `Debug` output (axum has no public list
/// of routes): each appears as `RouteId(n): "/path"` in the `path_router` part. The
/// `fallback_router` part (axum's own catch-all routes) is left out.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let routes = debug
        .split_once("fallback_router")
        .map_or(debug.as_str(), |(routes, _)| routes);
    let paths: BTreeSet<String> = routes
        .split("RouteId(")
        .skip(1)
        .filter_map(|chunk| {
            let rest = chunk.split_once("): \"")?.1;
            Some(rest.split_once('"')?.0.to_string())
        })
        .filter(|p| !p.contains("__private__axum"))
        .collect();
    // The format is axum's, not a contract: fail loudly if it stops matching.
    assert!(
        paths.contains("/health") && paths.contains("/workflow-runs/{id}"),
        "cannot read the routes from the router's Debug output: {paths:?}"
    );
    paths
}

/// A concrete path for a template: every `{param}` filled with something that exists nowhere.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{version}" => "7".to_string(),
            "{hash}" => "0".repeat(64),
            s if s.starts_with('{') => "nope".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods the router answers on `path`: the `Allow` header of a 405 to a method no route
/// has. GET implies HEAD in axum; HEAD is left out as the document leaves it out.
async fn allowed_methods(client: &reqwest::Client, base: &str, path: &str) -> BTreeSet<String> {
    let probe = Method::from_bytes(b"PROBE").unwrap();
    let response = client
        .request(probe, format!("{base}{}", concrete(path)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "{path}: a route the router holds"
    );
    let allow = response.headers()["allow"].to_str().unwrap().to_string();
    allow
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty() && m != "HEAD")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_has_exactly_the_routers_operations() {
    let dir = TempDir::new().unwrap();
    let (state, _) = state(&dir, AuthMode::Off).await;
    let router_paths = router_paths(&tradeloom_server::app(state));
    let server = start(AuthMode::Off).await;
    let doc = document(&server).await;
    let client = reqwest::Client::new();

    let mut routed = BTreeSet::new();
    for path in router_paths.iter().filter(|p| !is_docs_route(p)) {
        for method in allowed_methods(&client, &server.base, path).await {
            routed.insert((method, path.clone()));
        }
    }
    let documented: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:?}\ndocumented but not routed: {unrouted:?}"
    );
    // The workflow routes the document once lacked.
    for op in [
        ("POST", "/workflows"),
        ("GET", "/workflows"),
        ("GET", "/workflows/{id}"),
        ("PUT", "/workflows/{id}"),
        ("DELETE", "/workflows/{id}"),
        ("GET", "/workflows/{id}/versions/{version}"),
    ] {
        assert!(
            documented.contains(&(op.0.to_string(), op.1.to_string())),
            "{op:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_well_formed() {
    let server = start(AuthMode::Off).await;
    let doc = document(&server).await;
    let mut problems = Vec::new();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((method, path), op) in operations(&doc) {
        let at = format!("{method} {path}");
        match op["operationId"].as_str() {
            Some(id) => ids.entry(id.to_string()).or_default().push(at.clone()),
            None => problems.push(format!("{at}: no operationId")),
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            if response["description"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{at}: response {status} has no description"));
            }
        }
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let mut in_path = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            match p["in"].as_str() {
                Some("path") => {
                    in_path.insert(name);
                    if !templated.contains(name) {
                        problems.push(format!("{at}: `{name}` is no path parameter"));
                    }
                }
                Some("query") if p["required"] == true => {
                    problems.push(format!("{at}: query parameter `{name}` is required"));
                }
                _ => {}
            }
        }
        if in_path != templated {
            problems.push(format!(
                "{at}: path parameters {in_path:?}, template has {templated:?}"
            ));
        }
    }
    for (id, at) in ids {
        if at.len() > 1 {
            problems.push(format!("operationId `{id}` is used by {at:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_operations_declare_the_api_key_and_its_refusals() {
    let server = start(AuthMode::Off).await;
    let doc = document(&server).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        (
            schemes["api_key"]["type"].as_str(),
            schemes["api_key"]["scheme"].as_str()
        ),
        (Some("http"), Some("bearer")),
        "{schemes}"
    );
    assert_eq!(
        (
            schemes["api_key_query"]["in"].as_str(),
            schemes["api_key_query"]["name"].as_str()
        ),
        (Some("query"), Some("api_key")),
        "{schemes}"
    );
    let mut problems = Vec::new();
    for ((method, path), op) in operations(&doc) {
        let at = format!("{method} {path}");
        let role = required_role(&Method::from_bytes(method.as_bytes()).unwrap(), &path);
        let security = op["security"].as_array().cloned().unwrap_or_default();
        let named: BTreeSet<&str> = security
            .iter()
            .filter_map(|s| s.as_object())
            .flat_map(|s| s.keys().map(String::as_str))
            .collect();
        let mut expected = BTreeSet::new();
        let mut refusals = vec!["429"];
        if let Some(role) = role {
            expected.insert("api_key");
            if path == "/ws" {
                expected.insert("api_key_query");
            }
            refusals.push("401");
            if role != Role::Viewer {
                refusals.push("403");
            }
        }
        if named != expected {
            problems.push(format!("{at}: security {named:?}, expected {expected:?}"));
        }
        for status in refusals {
            let response = &op["responses"][status];
            if response["content"]["application/json"]["schema"]["$ref"]
                != "#/components/schemas/ErrorBody"
            {
                problems.push(format!("{at}: no {status} with the JSON error body"));
            }
        }
        if op["requestBody"].is_object() {
            for status in ["400", "413", "415"] {
                if !op["responses"][status].is_object() {
                    problems.push(format!("{at}: takes a body but has no {status}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One request and what came back.
struct Answer {
    status: StatusCode,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_a_route_gives_to_a_bad_request_is_documented() {
    let server = start(AuthMode::Required).await;
    let doc = document(&server).await;
    let client = reqwest::Client::new();
    let mut problems = Vec::new();
    let mut tried = 0;
    for ((method, path), op) in operations(&doc) {
        let http_method = Method::from_bytes(method.as_bytes()).unwrap();
        let url = format!("{}{}", server.base, concrete(&path));
        let request = || client.request(http_method.clone(), &url);
        let with_key = |role: Role| request().bearer_auth(&server.keys[&role]);
        let with_query = |query: &str| {
            client
                .request(http_method.clone(), format!("{url}?{query}"))
                .bearer_auth(&server.keys[&Role::Admin])
        };
        let mut cases: Vec<(String, reqwest::RequestBuilder)> = Vec::new();
        if let Some(role) = required_role(&http_method, &path) {
            cases.push(("no key".into(), request()));
            cases.push(("an unknown key".into(), request().bearer_auth("tl_nope")));
            for weaker in [Role::Viewer, Role::Operator] {
                if !weaker.allows(role) {
                    cases.push((format!("a {weaker} key"), with_key(weaker)));
                }
            }
        }
        if op["requestBody"].is_object() {
            cases.push((
                "malformed JSON".into(),
                with_key(Role::Admin)
                    .header("content-type", "application/json")
                    .body("{"),
            ));
            cases.push((
                "a JSON body of the wrong shape".into(),
                with_key(Role::Admin).json(&serde_json::json!({"no_such_field": 1})),
            ));
            cases.push((
                "a text/plain body".into(),
                with_key(Role::Admin)
                    .header("content-type", "text/plain")
                    .body("x"),
            ));
        } else if path.contains('{') || method == "GET" {
            cases.push(("unknown ids".into(), with_key(Role::Admin)));
        }
        if op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "query")
            && path != "/ws"
        {
            cases.push((
                "an unknown query parameter".into(),
                with_query("no_such_param=1"),
            ));
        }
        for (case, request) in cases {
            tried += 1;
            let answer = send(request).await;
            let at = format!("{method} {path} with {case}");
            if answer.status.is_success() {
                continue;
            }
            let status = answer.status.as_str();
            if !op["responses"][status].is_object() {
                problems.push(format!(
                    "{at}: {status} is not documented ({})",
                    answer.body
                ));
            }
            let shape_ok = ["error", "message"]
                .iter()
                .all(|f| answer.body[f].is_string())
                && answer.body["details"].is_object();
            if !shape_ok {
                problems.push(format!(
                    "{at}: {status} without the JSON error body: {}",
                    answer.body
                ));
            }
        }
    }
    assert!(tried > 50, "only {tried} requests were tried");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `openapi-spec-validator` (from PyPI, pinned in `.ci/run`) on the document, when
/// `TRADELOOM_TEST_OPENAPI_VALIDATOR` names its executable. Set and not runnable is a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_passes_openapi_spec_validator() {
    let Ok(validator) = std::env::var("TRADELOOM_TEST_OPENAPI_VALIDATOR") else {
        eprintln!("TRADELOOM_TEST_OPENAPI_VALIDATOR is not set: skipped");
        return;
    };
    let server = start(AuthMode::Off).await;
    let doc = document(&server).await;
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let output = std::process::Command::new(&validator)
        .args(["--validation-errors", "all"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {validator}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openapi-spec-validator refuses the document:\n{stdout}\n{stderr}"
    );
}
