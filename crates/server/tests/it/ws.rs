//! `GET /ws` over a real WebSocket: replay, live delivery, resume after a disconnect with every
//! event exactly once and in order, run and job filters, 400/404 JSON before the upgrade,
//! keepalive and clean closes. SQLite always; PostgreSQL when `TRADELOOM_TEST_POSTGRES_URL` is
//! set.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tradeloom_agents::{Simulator, SimulatorOptions};
use tradeloom_core::Currency;
use tradeloom_server::{AppState, EventHub, EventStreamOptions};
use tradeloom_store::{
    EventFilter, NewEvent, NewJob, NewWorkflowRun, NewWorkflowVersion, ScratchDatabase, Store,
    Transition, open_store,
};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PG_ENV: &str = "TRADELOOM_TEST_POSTGRES_URL";

/// A server on a port of its own over the store at `location`.
struct Server {
    addr: std::net::SocketAddr,
    store: Arc<dyn Store>,
    hub: EventHub,
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

async fn start(location: &str, options: EventStreamOptions) -> Server {
    let dir = TempDir::new().unwrap();
    let store = open_store(location).await.unwrap();
    let simulator = Simulator::new(
        Arc::clone(&store),
        SimulatorOptions {
            data_dir: dir.path().join("data"),
            max_concurrent_jobs: 1,
            base_dir: dir.path().to_path_buf(),
            outbound: tradeloom_net::Outbound::strict(),
        },
    );
    let hub = EventHub::new();
    let state = AppState::new(simulator)
        .with_event_hub(hub.clone())
        .with_event_stream(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(tradeloom_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        store,
        hub,
        stop: Some(stop),
        _dir: dir,
    }
}

fn sqlite_location(dir: &TempDir) -> String {
    dir.path().join("t.db").display().to_string()
}

fn fast() -> EventStreamOptions {
    EventStreamOptions {
        poll_interval: Duration::from_millis(100),
        page_size: 3, // small pages, so replays cross page boundaries
        ..EventStreamOptions::default()
    }
}

/// A workflow run and the revision its next transition expects.
struct Run {
    id: String,
    revision: i64,
}

async fn new_run(s: &dyn Store, name: &str) -> Run {
    let v = s
        .create_workflow(&NewWorkflowVersion {
            name: name.into(),
            definition: format!(r#"{{"name":"{name}"}}"#),
            ir: format!(r#"{{"ir":"{name}"}}"#),
        })
        .await
        .unwrap();
    let run = s
        .create_workflow_run(&NewWorkflowRun {
            workflow_id: v.workflow_id,
            workflow_version: v.version,
            ir_hash: v.ir_hash,
            definition_hash: v.definition_hash,
            agent_nodes: 0,
            inputs: json!({}),
            nodes: vec!["a".into(), "b".into()],
            priority: Default::default(),
            api_key_id: None,
            workflow_limit: None,
        })
        .await
        .unwrap();
    Run {
        id: run.id,
        revision: 0,
    }
}

/// Commits one transition of `run` with an event `kind` of node `node`.
async fn node_event(s: &dyn Store, run: &mut Run, kind: &str, node: &str) {
    let mut t = Transition::new(&run.id, format!("sig-{}", run.revision), run.revision);
    t.events = vec![NewEvent {
        kind: kind.into(),
        node_id: Some(node.into()),
        payload: json!({"revision": run.revision}),
    }];
    s.commit_transition(&t).await.unwrap();
    run.revision += 1;
}

async fn new_job(s: &dyn Store, tag: &str) -> String {
    s.create_job(NewJob {
        config: json!({"tag": tag}),
        currency: Currency::USD,
        models: vec!["m".into()],
        dates: vec![chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()],
    })
    .await
    .unwrap()
    .id
}

async fn connect(server: &Server, query: &str) -> Client {
    let url = format!("ws://{}/ws{query}", server.addr);
    connect_async(url.as_str()).await.unwrap().0
}

/// The next event message (pings skipped), within 10 s.
async fn next_event(ws: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Nothing but pings for `wait`.
async fn assert_quiet(ws: &mut Client, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// Every stored event (of the whole log) as the stream should send it.
async fn stored(s: &dyn Store) -> Vec<Value> {
    s.events(EventFilter::All, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

async fn close(mut ws: Client) {
    ws.close(None).await.unwrap();
    // The server answers the close: the stream ends without an error.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the server answers the close")
        {
            None => return,
            Some(Ok(
                Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Text(_),
            )) => {}
            Some(other) => panic!("unclean close: {other:?}"),
        }
    }
}

async fn resume(location: &str) {
    let server = start(location, fast()).await;
    let s = &*server.store;
    let mut run = new_run(s, "resume").await; // run_created
    node_event(s, &mut run, "node_queued", "a").await;
    node_event(s, &mut run, "node_started", "a").await;
    let job = new_job(s, "resume").await;
    s.append_job_event(&job, "job_started", &json!({"remaining": 1}))
        .await
        .unwrap();
    node_event(s, &mut run, "node_completed", "a").await;

    // Replay (across pages of 3), then a live event; disconnect mid-stream.
    let mut ws = connect(&server, "?after_seq=0").await;
    let mut received = Vec::new();
    for _ in 0..5 {
        received.push(next_event(&mut ws).await);
    }
    let keys: Vec<&str> = received[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [
            "at",
            "engine_run_id",
            "job_id",
            "kind",
            "node_id",
            "payload",
            "run_id",
            "seq"
        ]
        .into()
    );
    assert_eq!(received[0]["kind"], "run_created");
    assert_eq!(received[3]["job_id"], job.as_str());
    assert_eq!(received[3]["run_id"], Value::Null);
    node_event(s, &mut run, "node_queued", "b").await;
    server.hub.notify();
    received.push(next_event(&mut ws).await);
    assert_eq!(received[5]["kind"], "node_queued");
    assert_eq!(received[5]["node_id"], "b");
    // Two events committed while the client is still connected but has not read them, then
    // it drops the connection without reading: they must come after the reconnect.
    s.append_job_event(
        &job,
        "model_day_completed",
        &json!({"model": "m", "portfolio_value": "10012.50"}),
    )
    .await
    .unwrap();
    node_event(s, &mut run, "node_started", "b").await;
    drop(ws);

    // While away.
    node_event(s, &mut run, "node_completed", "b").await;
    s.append_job_event(&job, "job_finished", &json!({"status": "completed"}))
        .await
        .unwrap();

    let last = received.last().unwrap()["seq"].as_i64().unwrap();
    let mut ws = connect(&server, &format!("?after_seq={last}")).await;
    for _ in 0..4 {
        received.push(next_event(&mut ws).await);
    }
    // Live after the reconnect, without a notify (found by the poll).
    node_event(s, &mut run, "run_finished", "b").await;
    received.push(next_event(&mut ws).await);
    assert_quiet(&mut ws, Duration::from_millis(400)).await;

    let all = stored(s).await;
    assert_eq!(all.len(), 11);
    assert_eq!(received, all, "every stored event exactly once, in order");
    let seqs: Vec<i64> = received
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(received[6]["kind"], "model_day_completed");
    assert_eq!(received[6]["payload"]["portfolio_value"], "10012.50");
    close(ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_with_its_last_seq_gets_exactly_what_it_missed() {
    let dir = TempDir::new().unwrap();
    resume(&sqlite_location(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_on_postgres() {
    let Ok(base) = std::env::var(PG_ENV) else {
        eprintln!("note: {PG_ENV} is not set; skipping the PostgreSQL variant");
        return;
    };
    let scratch = ScratchDatabase::create(&base, "tl_ws")
        .await
        .unwrap_or_else(|e| panic!("{PG_ENV}={base} is set but PostgreSQL is unusable: {e}"));
    let url = scratch.url().to_string();
    let outcome = tokio::spawn(async move { resume(&url).await }).await;
    scratch.drop_database().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_job_filters_send_only_their_events() {
    let dir = TempDir::new().unwrap();
    let server = start(&sqlite_location(&dir), fast()).await;
    let s = &*server.store;
    let mut mine = new_run(s, "mine").await;
    let mut other = new_run(s, "other").await;
    let job = new_job(s, "mine").await;
    let other_job = new_job(s, "other").await;
    node_event(s, &mut mine, "node_queued", "a").await;
    s.append_job_event(&job, "job_started", &json!({}))
        .await
        .unwrap();

    let mut by_run = connect(&server, &format!("?run_id={}", mine.id)).await;
    let mut by_job = connect(&server, &format!("?job_id={job}")).await;
    for (kind, event) in [
        ("run_created", next_event(&mut by_run).await),
        ("node_queued", next_event(&mut by_run).await),
    ] {
        assert_eq!(
            (event["kind"].as_str(), event["run_id"].as_str()),
            (Some(kind), Some(mine.id.as_str()))
        );
    }
    let started = next_event(&mut by_job).await;
    assert_eq!(
        (started["kind"].as_str(), started["job_id"].as_str()),
        (Some("job_started"), Some(job.as_str()))
    );

    // Others' events first, then one of each filter's own: the next message is its own.
    node_event(s, &mut other, "node_queued", "a").await;
    s.append_job_event(&other_job, "job_started", &json!({}))
        .await
        .unwrap();
    node_event(s, &mut mine, "node_started", "a").await;
    s.append_job_event(
        &job,
        "model_day_failed",
        &json!({"model": "m", "error": "HTTP 500"}),
    )
    .await
    .unwrap();
    server.hub.notify();
    let e = next_event(&mut by_run).await;
    assert_eq!(
        (e["kind"].as_str(), e["run_id"].as_str()),
        (Some("node_started"), Some(mine.id.as_str()))
    );
    let e = next_event(&mut by_job).await;
    assert_eq!(
        (e["kind"].as_str(), e["job_id"].as_str()),
        (Some("model_day_failed"), Some(job.as_str()))
    );
    assert_eq!(e["payload"]["error"], "HTTP 500");
    assert_quiet(&mut by_run, Duration::from_millis(300)).await;
    assert_quiet(&mut by_job, Duration::from_millis(100)).await;

    // Resuming a filtered stream after its own last seq skips what it saw.
    let after = e["seq"].as_i64().unwrap() - 1;
    let mut again = connect(&server, &format!("?job_id={job}&after_seq={after}")).await;
    assert_eq!(next_event(&mut again).await, e);
    close(again).await;
    close(by_run).await;
    close(by_job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_and_other_writers_wake_the_stream() {
    let dir = TempDir::new().unwrap();
    let location = sqlite_location(&dir);
    // A poll far beyond the test: only the hub can deliver in time.
    let server = start(
        &location,
        EventStreamOptions {
            poll_interval: Duration::from_secs(3600),
            ..EventStreamOptions::default()
        },
    )
    .await;
    let job = new_job(&*server.store, "hub").await;
    let mut ws = connect(&server, &format!("?job_id={job}")).await;
    assert_quiet(&mut ws, Duration::from_millis(200)).await;
    server
        .store
        .append_job_event(&job, "job_started", &json!({}))
        .await
        .unwrap();
    server.hub.notify();
    assert_eq!(next_event(&mut ws).await["kind"], "job_started");
    close(ws).await;

    // Another process on the same database: no notify reaches this one; the poll finds it.
    let polling = start(&location, fast()).await;
    let mut ws = connect(&polling, &format!("?job_id={job}")).await;
    assert_eq!(next_event(&mut ws).await["kind"], "job_started");
    let elsewhere = open_store(&location).await.unwrap();
    elsewhere
        .append_job_event(&job, "job_finished", &json!({"status": "completed"}))
        .await
        .unwrap();
    assert_eq!(next_event(&mut ws).await["kind"], "job_finished");
    close(ws).await;
}

/// The JSON error a refused upgrade answers.
async fn refused(server: &Server, query: &str) -> (u16, Value) {
    let url = format!("ws://{}/ws{query}", server.addr);
    match connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.into_body().expect("a body");
            (status, serde_json::from_slice(&body).unwrap())
        }
        Ok(_) => panic!("{query}: the upgrade was accepted"),
        Err(e) => panic!("{query}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused_with_json_before_the_upgrade() {
    let dir = TempDir::new().unwrap();
    let server = start(&sqlite_location(&dir), fast()).await;
    for (query, status, code) in [
        ("?after_seq=abc", 400, "invalid_after_seq"),
        ("?after_seq=-5", 400, "invalid_after_seq"),
        ("?run_id=r&job_id=j", 400, "conflicting_filters"),
        ("?since=3", 400, "unknown_parameter"),
        ("?run_id=nope", 404, "workflow_run_not_found"),
        ("?job_id=nope", 404, "job_not_found"),
    ] {
        let (got, body) = refused(&server, query).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{query}: {body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, body) = refused(&server, "?after_seq=abc").await;
    assert_eq!(
        body["details"],
        json!({"param": "after_seq", "value": "abc"})
    );
    assert!(body["message"].as_str().unwrap().contains("`abc`"));

    // A plain GET (no upgrade) is told what the endpoint is, as JSON.
    let response = reqwest::get(format!("http://{}/ws", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "websocket_upgrade_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_pings_and_drops_a_silent_client() {
    let dir = TempDir::new().unwrap();
    let server = start(
        &sqlite_location(&dir),
        EventStreamOptions {
            ping_interval: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(300),
            ..fast()
        },
    )
    .await;
    // A client that reads (and so answers pings) stays connected past the idle timeout.
    let mut alive = connect(&server, "").await;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, alive.next()).await {
        match message.unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 5, "{pings} pings in 800 ms");
    // A client that never reads never answers: after the idle timeout the server closes with
    // 1001 (going away) and a reason.
    let mut silent = connect(&server, "").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(5), silent.next())
            .await
            .expect("a close frame")
            .expect("open")
            .expect("a frame")
        {
            Message::Ping(_) => {}
            Message::Close(frame) => break frame.expect("a close frame with a code"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(frame.code, CloseCode::Away);
    assert!(frame.reason.contains("pings"), "{}", frame.reason);
    close(alive).await;
}
