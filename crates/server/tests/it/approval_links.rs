//! Approvals from chat, end to end over real HTTP on loopback with a real SQLite store: a
//! `hitl` node's `notify` posts Slack- and Telegram-shaped messages to a local webhook
//! receiver, and the links in them decide once, as their approver, only by `POST`.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tradeloom_orchestrator::{LoopRoles, Runtime, RuntimeConfig};
use tradeloom_queue::InMemoryQueue;
use tradeloom_server::AuthMode;
use tradeloom_store::{ApprovalStatus, EventFilter, Role, RunStatus, Store};

use crate::harness::{key, read, state};

/// A webhook receiver: records every body it is sent and answers `status`.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    /// Serves on 127.0.0.1:0; returns it and its `http://ADDR`.
    async fn start(status: u16) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver.status.store(status, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hooks/{*rest}", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, base)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits until `n` messages came (10 s at most).
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver got {:?}, expected {n} messages",
            self.bodies()
        );
    }
}

async fn receive(State(r): State<Receiver>, Json(body): Json<Value>) -> (StatusCode, &'static str) {
    r.bodies.lock().unwrap().push(body);
    let status = StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap();
    (status, "ok")
}

/// A served API with a running workflow runtime that may reach `receiver` (and only it, on
/// loopback), auth required, keys `alice` and `bob` (operators), `viewer` (a viewer).
struct Api {
    base: String,
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    alice: String,
    bob: String,
    viewer: String,
    http: reqwest::Client,
    _dir: TempDir,
}

/// The runtime settings of the tests: `receiver` reachable (as `serve --http-allow
/// 127.0.0.1:PORT`: it and nothing else on loopback), links under `base`, short back-off.
fn runtime_config(dir: &TempDir, receiver: &str, base: &str, roles: LoopRoles) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(dir.path().join("data"));
    config
        .ssrf
        .allow_hosts
        .push(receiver.trim_start_matches("http://").to_string());
    config.public_url = Some(base.to_string());
    config.notify_backoff = Duration::from_millis(50);
    config.roles = roles;
    config
}

impl Api {
    async fn start(receiver: &str) -> Api {
        Api::start_with(receiver, LoopRoles::all()).await
    }

    /// With the runtime running only the loops of `roles`.
    async fn start_with(receiver: &str, roles: LoopRoles) -> Api {
        let (state, store, dir) = state().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = runtime_config(&dir, receiver, &base, roles);
        let runtime =
            Runtime::new(store.clone(), Arc::new(InMemoryQueue::new()), config, None).unwrap();
        runtime.start().await.unwrap();
        let state = state
            .with_auth(AuthMode::Required)
            .with_runtime(runtime.clone());
        tokio::spawn(tradeloom_server::serve(
            listener,
            state,
            std::future::pending(),
        ));
        Api {
            base,
            alice: key(store.as_ref(), "alice", Role::Operator).await,
            bob: key(store.as_ref(), "bob", Role::Operator).await,
            viewer: key(store.as_ref(), "viewer", Role::Viewer).await,
            store,
            runtime,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Creates a workflow `name` whose `review` node has `notify`, with `go` and `stop`
    /// branches, starts a run as alice and returns its id.
    async fn run_with(&self, name: &str, notify: Value) -> String {
        let definition = json!({"name": name, "nodes": [
            {"id": "review", "type": "hitl", "config": {
                "prompt": "Buy 10 <AAPL> & hold?", "expires_after": "1h", "default": "reject",
                "approvers": ["bob"], "notify": notify}},
            {"id": "go", "type": "transform", "needs": ["review"],
             "when": "review.decision == \"approve\""},
            {"id": "stop", "type": "transform", "needs": ["review"],
             "when": "review.decision == \"reject\""},
        ]});
        let (status, _, body) = read(
            self.http
                .post(format!("{}/workflows", self.base))
                .bearer_auth(&self.alice)
                .json(&definition)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let workflow: Value = serde_json::from_str(&body).unwrap();
        let (status, _, body) = read(
            self.http
                .post(format!(
                    "{}/workflows/{}/runs",
                    self.base,
                    workflow["id"].as_str().unwrap()
                ))
                .bearer_auth(&self.alice)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let run: Value = serde_json::from_str(&body).unwrap();
        run["run_id"].as_str().unwrap().to_string()
    }

    /// The run's only approval.
    async fn approval(&self, run_id: &str) -> tradeloom_store::Approval {
        let approvals = self
            .store
            .list_approvals(None, Some(run_id), 10, 0)
            .await
            .unwrap();
        assert_eq!(approvals.len(), 1, "{approvals:?}");
        approvals.into_iter().next().unwrap()
    }

    async fn events(&self, run_id: &str, kind: &str) -> Vec<Value> {
        self.store
            .events(EventFilter::Run(run_id), 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.payload)
            .collect()
    }

    /// Waits for `n` events of `kind` (10 s at most).
    async fn wait_events(&self, run_id: &str, kind: &str, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let found = self.events(run_id, kind).await;
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run_id}: fewer than {n} `{kind}` events");
    }

    async fn node_status(&self, run_id: &str, node: &str) -> String {
        let view = self.runtime.view(run_id).await.unwrap();
        let n = view.nodes.iter().find(|n| n.id == node).unwrap();
        serde_json::to_value(n.status)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Status, content type and body of a `POST` to `link` built by `request`.
async fn post(request: reqwest::RequestBuilder) -> (StatusCode, String, String) {
    let (status, headers, body) = read(request.send().await.unwrap()).await;
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, body)
}

/// `request` with `pairs` as the confirmation page's form sends them.
fn form(request: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).unwrap())
}

/// The token of a link URL.
fn token_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap()
}

/// The JSON error `body` with code `error`, checked not to show `token`.
fn error_of(body: &str, error: &str, token: &str) -> Value {
    assert!(!body.contains(token), "the answer shows the token: {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["error"], error, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_links_show_a_page_on_get_and_decide_once_on_post() {
    let (receiver, hooks) = Receiver::start(200).await;
    let api = Api::start(&hooks).await;
    let run_id = api
        .run_with(
            "slack-gate",
            json!({"webhook": {"url": format!("{hooks}/hooks/slack/T000/B000/secret"), "format": "slack"},
                   "approver": "bob", "forwardable": true}),
        )
        .await;

    let message = receiver.wait_for(1).await.remove(0);
    let section = message["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains("Buy 10 &lt;AAPL&gt; &amp; hold?"),
        "{message}"
    );
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains("Buy 10 <AAPL> & hold?")
    );
    let buttons = &message["blocks"][1]["elements"];
    assert_eq!(buttons[0]["text"]["text"], "Approve", "{message}");
    assert_eq!(buttons[1]["text"]["text"], "Reject", "{message}");
    let approve = buttons[0]["url"].as_str().unwrap().to_string();
    let reject = buttons[1]["url"].as_str().unwrap().to_string();
    let links = format!("{}/approvals/links/", api.base);
    assert!(
        approve.starts_with(&links) && reject.starts_with(&links),
        "{approve} {reject}"
    );
    assert_ne!(approve, reject);
    let notified = api.wait_events(&run_id, "approval_notified", 1).await;
    assert_eq!(
        (
            notified[0]["format"].as_str(),
            notified[0]["approver"].as_str()
        ),
        (Some("slack"), Some("bob")),
        "{notified:?}"
    );

    // GET shows a page and decides nothing (chat apps fetch links to preview them).
    let (status, headers, page) = read(
        api.http
            .get(&approve)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        page.contains("Approve?") && page.contains("Buy 10 &lt;AAPL&gt; &amp; hold?"),
        "{page}"
    );
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(
        !page.contains("api_key"),
        "a forwardable link asks for no key: {page}"
    );
    assert!(
        !page.contains(token_of(&approve)),
        "the page shows the token"
    );
    let (status, _, json) = read(api.http.get(&approve).send().await.unwrap()).await;
    assert_eq!(status, 200, "{json}");
    let shown: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (shown["decision"].as_str(), shown["approver"].as_str()),
        (Some("approve"), Some("bob"))
    );
    for _ in 0..3 {
        api.http.get(&approve).send().await.unwrap();
    }
    assert_eq!(api.approval(&run_id).await.status, ApprovalStatus::Pending);
    assert_eq!(
        api.runtime.view(&run_id).await.unwrap().status,
        RunStatus::Waiting
    );

    // A tampered token: one character of the signature changed.
    let token = token_of(&approve);
    let (claims, signature) = token.split_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{claims}.{flipped}{}", &signature[1..]);
    let (status, _, body) = post(api.http.post(format!("{links}{tampered}"))).await;
    assert_eq!(status, 403, "{body}");
    error_of(&body, "link_invalid", &tampered);
    // The claims of the approve link with the reject link's signature.
    let forged = format!(
        "{}.{}",
        token.split('.').next().unwrap(),
        token_of(&reject).split('.').nth(1).unwrap()
    );
    let (status, _, body) = post(api.http.post(format!("{links}{forged}"))).await;
    assert_eq!(status, 403, "{body}");
    error_of(&body, "link_invalid", &forged);

    // POST decides, as bob, with no key at all: the link is forwardable.
    let (status, _, body) = post(api.http.post(&approve).json(&json!({"comment": "fine"}))).await;
    assert_eq!(status, 200, "{body}");
    let decided: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (decided["status"].as_str(), decided["decided_by"].as_str()),
        (Some("approved"), Some("bob")),
        "{decided}"
    );
    assert_eq!(decided["comment"], "fine (via approval link)");
    let run = api
        .runtime
        .wait_for(&run_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(api.node_status(&run_id, "go").await, "completed");
    assert_eq!(api.node_status(&run_id, "stop").await, "skipped");

    // Single use: the same link again, then the other one.
    let (status, _, body) = post(api.http.post(&approve)).await;
    assert_eq!(status, 409, "{body}");
    error_of(&body, "link_used", token);
    let (status, _, body) = post(api.http.post(&reject)).await;
    assert_eq!(status, 409, "{body}");
    error_of(&body, "approval_closed", token_of(&reject));
    let (status, _, body) = read(api.http.get(&reject).send().await.unwrap()).await;
    assert_eq!(status, 409, "{body}");
    // And a browser is told on a page.
    let (status, ct, body) = post(api.http.post(&approve).header("accept", "text/html")).await;
    assert_eq!(status, 409, "{body}");
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(body.contains("used already"), "{body}");
    assert!(!body.contains(token));
    // No event shows the webhook's secret path.
    let all = api
        .store
        .events(EventFilter::Run(&run_id), 0, 1000)
        .await
        .unwrap();
    assert!(
        all.iter()
            .all(|e| !e.payload.to_string().contains("secret")),
        "{all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_links_that_may_not_be_forwarded_need_the_approvers_own_key() {
    let (receiver, hooks) = Receiver::start(200).await;
    let api = Api::start(&hooks).await;
    let run_id = api
        .run_with(
            "telegram-gate",
            json!({"webhook": {"url": format!("{hooks}/hooks/bot123:secret/sendMessage"),
                               "format": "telegram", "chat_id": -100123},
                   "approver": "bob", "link_base": format!("{}/", api.base),
                   "link_expires_after": "30m"}),
        )
        .await;
    let message = receiver.wait_for(1).await.remove(0);
    assert_eq!(message["chat_id"], -100123, "{message}");
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains("Buy 10 <AAPL> & hold?")
    );
    let keyboard = &message["reply_markup"]["inline_keyboard"][0];
    assert_eq!(
        (keyboard[0]["text"].as_str(), keyboard[1]["text"].as_str()),
        (Some("Approve"), Some("Reject")),
        "{message}"
    );
    let reject = keyboard[1]["url"].as_str().unwrap().to_string();
    let token = token_of(&reject).to_string();
    assert!(
        reject.starts_with(&format!("{}/approvals/links/", api.base)),
        "{reject}"
    );

    let (status, _, page) = read(
        api.http
            .get(&reject)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("name=\"api_key\"") && page.contains("Reject?"),
        "{page}"
    );

    // Forwarded to alice, or sent without a key: refused, and the link stays usable.
    let (status, _, body) = post(api.http.post(&reject)).await;
    assert_eq!(status, 403, "{body}");
    error_of(&body, "link_key_required", &token);
    let (status, _, body) = post(api.http.post(&reject).bearer_auth(&api.alice)).await;
    assert_eq!(status, 403, "{body}");
    let v = error_of(&body, "link_key_mismatch", &token);
    assert!(v["message"].as_str().unwrap().contains("`alice`"), "{v}");
    let (status, _, body) = post(form(api.http.post(&reject), &[("api_key", &api.alice)])).await;
    assert_eq!(status, 403, "{body}");
    error_of(&body, "link_key_mismatch", &token);
    let (status, _, body) = post(api.http.post(&reject).bearer_auth("tl_nope")).await;
    assert_eq!(status, 403, "{body}");
    error_of(&body, "link_key_invalid", &token);
    let (status, _, body) = post(api.http.post(&reject).bearer_auth(&api.viewer)).await;
    assert_eq!(status, 403, "{body}");
    error_of(&body, "link_key_mismatch", &token);
    assert_eq!(api.approval(&run_id).await.status, ApprovalStatus::Pending);

    // Bob's own key on the page's form decides, as bob.
    let (status, ct, body) = post(form(
        api.http.post(&reject).header("accept", "text/html"),
        &[("api_key", &api.bob), ("comment", "too risky")],
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        ct.starts_with("text/html") && body.contains("Rejected"),
        "{body}"
    );
    assert!(!body.contains(&token) && !body.contains(&api.bob));
    let approval = api.approval(&run_id).await;
    assert_eq!(approval.status, ApprovalStatus::Rejected);
    assert_eq!(approval.decided_by.as_deref(), Some("bob"));
    assert_eq!(
        approval.comment.as_deref(),
        Some("too risky (via approval link)")
    );
    let run = api
        .runtime
        .wait_for(&run_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(api.node_status(&run_id, "stop").await, "completed");
    assert_eq!(api.node_status(&run_id, "go").await, "skipped");
    let (status, _, body) = post(api.http.post(&reject).bearer_auth(&api.bob)).await;
    assert_eq!(status, 409, "{body}");
    error_of(&body, "link_used", &token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_links_are_gone_and_the_approval_still_waits() {
    let (receiver, hooks) = Receiver::start(200).await;
    let api = Api::start(&hooks).await;
    let run_id = api
        .run_with(
            "short-links",
            json!({"webhook": {"url": format!("{hooks}/hooks/x"), "format": "slack"},
                   "approver": "bob", "forwardable": true, "link_expires_after": "1s"}),
        )
        .await;
    let message = receiver.wait_for(1).await.remove(0);
    let approve = message["blocks"][1]["elements"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let token = token_of(&approve);
    let (status, _, body) = post(api.http.post(&approve)).await;
    assert_eq!(status, 410, "{body}");
    let v = error_of(&body, "link_expired", token);
    assert!(v["details"]["expired_at"].is_string(), "{v}");
    let (status, _, body) = read(api.http.get(&approve).send().await.unwrap()).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(api.approval(&run_id).await.status, ApprovalStatus::Pending);
    assert_eq!(
        api.runtime.view(&run_id).await.unwrap().status,
        RunStatus::Waiting
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_and_recorded_and_the_run_waits() {
    let (receiver, hooks) = Receiver::start(500).await;
    let api = Api::start(&hooks).await;
    let run_id = api
        .run_with(
            "down-hook",
            json!({"webhook": {"url": format!("{hooks}/hooks/T1/B1/secret-path"), "format": "slack"},
                   "approver": "bob"}),
        )
        .await;
    let failures = api.wait_events(&run_id, "approval_notify_failed", 4).await;
    assert_eq!(receiver.bodies().len(), 4, "four attempts in all");
    assert_eq!(failures[0]["status"], 500, "{failures:?}");
    assert_eq!(failures[0]["attempt"], 1);
    assert_eq!(failures[0]["will_retry"], true);
    assert_eq!(failures[0]["retry_in_ms"], 50);
    assert_eq!(failures[1]["retry_in_ms"], 200);
    assert_eq!(failures[3]["attempt"], 4);
    assert_eq!(failures[3]["will_retry"], false);
    assert!(
        failures
            .iter()
            .all(|f| !f.to_string().contains("secret-path") && !f.to_string().contains(&hooks)),
        "{failures:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.bodies().len(), 4, "no fifth attempt");
    assert!(api.events(&run_id, "approval_notified").await.is_empty());
    assert_eq!(
        api.runtime.view(&run_id).await.unwrap().status,
        RunStatus::Waiting
    );
    assert_eq!(api.approval(&run_id).await.status, ApprovalStatus::Pending);
    // The approval is decided the usual way.
    let approval = api.approval(&run_id).await;
    let (status, _, body) = read(
        api.http
            .post(format!("{}/approvals/{}/decide", api.base, approval.id))
            .bearer_auth(&api.bob)
            .json(&json!({"decision": "approve"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_the_outbound_guard_blocks_is_not_retried() {
    // The receiver runs, but the runtime is not allowed to reach this port.
    let (receiver, hooks) = Receiver::start(200).await;
    let (_, other) = Receiver::start(200).await;
    let api = Api::start(&other).await;
    let run_id = api
        .run_with(
            "blocked-hook",
            json!({"webhook": {"url": format!("{hooks}/hooks/x"), "format": "slack"},
                   "approver": "bob"}),
        )
        .await;
    let failures = api.wait_events(&run_id, "approval_notify_failed", 1).await;
    assert_eq!(failures[0]["will_retry"], false, "{failures:?}");
    assert!(
        failures[0]["reason"]
            .as_str()
            .unwrap()
            .contains("the outbound guard refused the webhook"),
        "{failures:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.bodies().is_empty());
    assert_eq!(api.events(&run_id, "approval_notify_failed").await.len(), 1);
    assert_eq!(
        api.runtime.view(&run_id).await.unwrap().status,
        RunStatus::Waiting
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_with_its_process_is_sent_after_a_restart_and_only_then() {
    let (receiver, hooks) = Receiver::start(200).await;
    // A process that creates the approval but runs no loop: its in-process queue, with the
    // message's task in it, is lost as if the process died.
    let api = Api::start_with(&hooks, LoopRoles::none()).await;
    let run_id = api
        .run_with(
            "restarted",
            json!({"webhook": {"url": format!("{hooks}/hooks/x"), "format": "slack"},
                   "approver": "bob", "forwardable": true}),
        )
        .await;
    assert_eq!(api.approval(&run_id).await.status, ApprovalStatus::Pending);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.bodies().is_empty());

    // The next process on the store re-arms the approval, message included.
    let restart = |roles| {
        Runtime::new(
            api.store.clone(),
            Arc::new(InMemoryQueue::new()),
            runtime_config(&api._dir, &hooks, &api.base, roles),
            None,
        )
        .unwrap()
    };
    let second = restart(LoopRoles::all());
    assert_eq!(second.start().await.unwrap(), 1);
    let message = receiver.wait_for(1).await.remove(0);
    assert!(
        message["blocks"][1]["elements"][0]["url"].is_string(),
        "{message}"
    );
    api.wait_events(&run_id, "approval_notified", 1).await;
    second.shutdown().await;

    // Delivered once: a later restart does not post it again.
    let third = restart(LoopRoles::all());
    assert_eq!(third.start().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.bodies().len(), 1, "{:?}", receiver.bodies());
    third.shutdown().await;
}
