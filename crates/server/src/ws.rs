//! `GET /ws`: the live event stream. Every event of the store's event log (workflow runs'
//! node/approval/patch/run events and simulation jobs' trading events) is sent as one JSON text
//! message `{"seq", "run_id", "job_id", "engine_run_id", "kind", "node_id", "payload", "at"}`, in
//! strictly increasing `seq`, optionally only those of one workflow run (`?run_id=`), one job
//! (`?job_id=`) or one engine run (`?engine_run_id=`: a paper run's `order`, `fill`, `equity`
//! and `run_finished` events; `run_id` stays the workflow run's, so old clients are unchanged).
//!
//! The store is the only source: a connection replays what is stored after `?after_seq=` page
//! by page, then keeps reading on from the last `seq` it sent whenever it is woken — by the
//! [`EventHub`] (this process's writers), the workflow runtime's notifier, the simulator's
//! progress channel, or a short poll (writers in other processes sharing the database). So a
//! reconnecting client that passes its last `seq` gets exactly what it missed, and a slow client
//! holds at most one page in memory: the next page is read only once the last one is sent.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tradeloom_store::{EventFilter, RunEvent, Store, StoreError};

use crate::AppState;
use crate::error::ApiError;

/// Wakes the `/ws` connections of this process when events are committed. Writers in this
/// process call [`EventHub::notify`] after each commit (or hand [`EventHub::notifier`] to code
/// that only knows `tokio::sync::Notify`); missing a call only delays delivery to the next poll.
#[derive(Clone, Debug, Default)]
pub struct EventHub {
    notify: Arc<Notify>,
}

impl EventHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub that wakes on an existing notifier (e.g. the workflow runtime's).
    pub fn from_notify(notify: Arc<Notify>) -> Self {
        Self { notify }
    }

    /// Wakes every connection: call after committing events.
    pub fn notify(&self) {
        self.notify.notify_waiters();
    }

    /// The notifier itself; `notify_waiters()` on it is the same as [`EventHub::notify`].
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }
}

/// Timing of `/ws` connections.
#[derive(Clone, Copy, Debug)]
pub struct EventStreamOptions {
    /// How often a connection looks for events nobody woke it for (other processes' writes).
    /// Default 250 ms.
    pub poll_interval: Duration,
    /// How often the server pings the client. Default 20 s.
    pub ping_interval: Duration,
    /// A client silent this long (no pong nor any other frame) is disconnected with close code
    /// 1001. Default 60 s.
    pub idle_timeout: Duration,
    /// Events read from the store (and sent) per round trip. Default 200.
    pub page_size: u32,
}

impl Default for EventStreamOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            page_size: 200,
        }
    }
}

/// Which events a connection receives.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Filter {
    All,
    Run(String),
    Job(String),
    /// An engine run (a paper run's `order`, `fill`, `equity` events), by its run folder's id.
    EngineRun(String),
}

const PARAMS: &str = "run_id, job_id, engine_run_id, after_seq (and api_key)";

/// The checked query of `GET /ws`.
#[derive(Debug, PartialEq, Eq)]
struct StreamQuery {
    filter: Filter,
    after_seq: i64,
}

fn bad_param(code: &'static str, message: String, param: &str, value: &str) -> ApiError {
    ApiError::bad_request(code, message).with_details(json!({"param": param, "value": value}))
}

/// Checks the query parameters: each at most once, no unknown ones, `after_seq` a non-negative
/// integer, `run_id` and `job_id` non-empty and not both.
fn parse_query(pairs: &[(String, String)]) -> Result<StreamQuery, ApiError> {
    let (mut run_id, mut job_id, mut engine_run_id, mut after_seq) = (None, None, None, None);
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "run_id" => &mut run_id,
            "job_id" => &mut job_id,
            "engine_run_id" => &mut engine_run_id,
            "after_seq" => &mut after_seq,
            // Read by the auth layer.
            "api_key" => continue,
            other => {
                return Err(bad_param(
                    "unknown_parameter",
                    format!("unknown query parameter `{other}` of /ws; expected {PARAMS}"),
                    other,
                    value,
                ));
            }
        };
        if slot.replace(value.as_str()).is_some() {
            return Err(bad_param(
                "duplicate_parameter",
                format!("query parameter `{name}` is given more than once"),
                name,
                value,
            ));
        }
    }
    let after_seq = match after_seq {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                bad_param(
                    "invalid_after_seq",
                    format!(
                        "after_seq must be a whole number ≥ 0 (the seq of the last event you \
                     received), not `{text}`"
                    ),
                    "after_seq",
                    text,
                )
            })?,
    };
    for (name, value) in [
        ("run_id", run_id),
        ("job_id", job_id),
        ("engine_run_id", engine_run_id),
    ] {
        if value.is_some_and(|v| v.trim().is_empty()) {
            return Err(bad_param(
                "invalid_filter",
                format!("{name} is empty; give an id or leave the parameter out"),
                name,
                "",
            ));
        }
    }
    let filter = match (run_id, job_id, engine_run_id) {
        (Some(run), None, None) => Filter::Run(run.to_string()),
        (None, Some(job), None) => Filter::Job(job.to_string()),
        (None, None, Some(engine)) => Filter::EngineRun(engine.to_string()),
        (None, None, None) => Filter::All,
        (run, job, engine) => {
            return Err(ApiError::bad_request(
                "conflicting_filters",
                "give one of run_id, job_id and engine_run_id (or none for every event)",
            )
            .with_details(json!({"run_id": run, "job_id": job, "engine_run_id": engine})));
        }
    };
    Ok(StreamQuery { filter, after_seq })
}

/// The live event stream.
#[utoipa::path(
    get, path = "/ws", tag = "events", operation_id = "event_stream",
    params(
        ("run_id" = Option<String>, Query, min_length = 1, description = "Only this workflow run's events (not with `job_id`)."),
        ("job_id" = Option<String>, Query, min_length = 1, description = "Only this simulation job's events (not with `run_id`)."),
        ("engine_run_id" = Option<String>, Query, min_length = 1, description = "Only this engine run's events: a paper run's `order`, `fill`, `equity` and `run_finished` (the id of `GET /runs`; not with `run_id` or `job_id`)."),
        ("after_seq" = Option<i64>, Query, minimum = 0, description = "Send events with a larger seq (default 0: everything stored)."),
    ),
    responses(
        (status = 101, description = "WebSocket: one JSON text message per event, `{\"seq\", \"run_id\", \"job_id\", \"engine_run_id\", \"kind\", \"node_id\", \"payload\", \"at\"}`"),
        (status = 400, description = "A bad query parameter, or not a WebSocket upgrade request", body = crate::ErrorBody),
        (status = 404, description = "No such run or job", body = crate::ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query?;
    let query = parse_query(&pairs)?;
    let store = Arc::clone(state.simulator.store());
    match &query.filter {
        Filter::All => {}
        Filter::Run(id) => {
            store.workflow_run(id).await.map_err(|e| match e {
                StoreError::NotFound { .. } => ApiError::not_found(
                    "workflow_run_not_found",
                    format!("no workflow run with id `{id}`"),
                )
                .with_details(json!({"run_id": id})),
                other => other.into(),
            })?;
        }
        Filter::Job(id) => {
            store.job(id).await.map_err(|e| ApiError::for_job(e, id))?;
        }
        Filter::EngineRun(id) => {
            let data_dir = &state.simulator.options().data_dir;
            if !engine_run_exists(data_dir, id) {
                return Err(ApiError::not_found(
                    "run_not_found",
                    format!("no engine run with id `{id}` (see GET /runs)"),
                )
                .with_details(json!({"engine_run_id": id})));
            }
        }
    }
    let upgrade = upgrade.map_err(|rejection| {
        let status = match rejection.status() {
            s if s.is_client_error() => s,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            "websocket_upgrade_required",
            format!("GET /ws is a WebSocket endpoint: {}", rejection.body_text()),
        )
    })?;
    let connection = Connection {
        store,
        hub: state.event_hub.notifier(),
        runtime: state.runtime.as_ref().map(|r| r.notify()),
        simulator: state.simulator.subscribe(),
        options: state.event_stream,
        filter: query.filter,
        cursor: query.after_seq,
    };
    Ok(upgrade.on_upgrade(move |socket| connection.run(socket)))
}

/// Whether `id` (a full run id, nothing else: no path is built from other text) names a run
/// folder of the data dir.
fn engine_run_exists(data_dir: &std::path::Path, id: &str) -> bool {
    let plain = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plain
        && tradeloom_core::DataDir::new(data_dir)
            .run(id)
            .join("metadata.json")
            .is_file()
}

/// One client's stream.
struct Connection {
    store: Arc<dyn Store>,
    hub: Arc<Notify>,
    runtime: Option<Arc<Notify>>,
    simulator: broadcast::Receiver<tradeloom_agents::SimEvent>,
    options: EventStreamOptions,
    filter: Filter,
    /// The seq of the last event sent.
    cursor: i64,
}

/// Why a connection ends.
enum End {
    /// The client went away (closed, or the socket failed).
    Gone,
    /// The server closes with this code and reason.
    Close(u16, String),
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket) {
        let end = self.serve(&mut socket).await;
        if let End::Close(code, reason) = end {
            // Close reasons are limited to 123 bytes.
            let mut reason = reason;
            while reason.len() > 123 {
                reason.pop();
            }
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            if socket.send(Message::Close(Some(frame))).await.is_ok() {
                // Wait (briefly) for the client's close reply, so the handshake completes.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = socket.recv().await {}
                })
                .await;
            }
        }
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> End {
        let idle = Notify::new(); // never notified: stands in for an absent runtime
        let runtime = self.runtime.clone();
        let runtime: &Notify = runtime.as_deref().unwrap_or(&idle);
        let hub = Arc::clone(&self.hub);
        let ping_every = self.options.ping_interval.max(Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        // After a long replay, one ping rather than a burst of the missed ones.
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            // Armed before reading the store, so a commit between the read and the wait still
            // wakes us (`notify_waiters` only reaches registered waiters).
            let mut hub_woke = pin!(hub.notified());
            hub_woke.as_mut().enable();
            let mut runtime_woke = pin!(runtime.notified());
            runtime_woke.as_mut().enable();

            if let Err(end) = self.send_pending(socket).await {
                return end;
            }

            let simulator = &mut self.simulator;
            let simulator_woke = async {
                if let Err(broadcast::error::RecvError::Closed) = simulator.recv().await {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = &mut hub_woke => {}
                () = &mut runtime_woke => {}
                () = simulator_woke => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
                _ = ping.tick() => {
                    if last_heard.elapsed() > self.options.idle_timeout {
                        return End::Close(
                            close_code::AWAY,
                            format!("no answer to pings for {:?}", self.options.idle_timeout),
                        );
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return End::Gone;
                    }
                }
                message = socket.recv() => match message {
                    // The close reply is queued by axum; reading on flushes it.
                    Some(Ok(Message::Close(_))) => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), socket.recv()).await;
                        return End::Gone;
                    }
                    // Pongs, and anything else the client says, only show it is alive: the
                    // stream is configured by the URL.
                    Some(Ok(_)) => last_heard = Instant::now(),
                    None | Some(Err(_)) => return End::Gone,
                },
            }
        }
    }

    /// Sends every stored event after the cursor, a page at a time.
    async fn send_pending(&mut self, socket: &mut WebSocket) -> Result<(), End> {
        loop {
            let page = self
                .read_page()
                .await
                .map_err(|e| End::Close(close_code::ERROR, format!("cannot read events: {e}")))?;
            let full = page.len() >= self.options.page_size.max(1) as usize;
            for event in page {
                // Pages are ordered by seq; the check keeps the promise even if a page were not.
                if event.seq <= self.cursor {
                    continue;
                }
                let text = serde_json::to_string(&event).map_err(|e| {
                    End::Close(
                        close_code::ERROR,
                        format!("cannot encode event {}: {e}", event.seq),
                    )
                })?;
                socket
                    .send(Message::Text(text.into()))
                    .await
                    .map_err(|_| End::Gone)?;
                self.cursor = event.seq;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn read_page(&self) -> Result<Vec<RunEvent>, StoreError> {
        let limit = self.options.page_size.max(1);
        let filter = match &self.filter {
            Filter::All => EventFilter::All,
            Filter::Run(id) => EventFilter::Run(id),
            Filter::Job(id) => EventFilter::Job(id),
            Filter::EngineRun(id) => EventFilter::EngineRun(id),
        };
        self.store.events(filter, self.cursor, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<StreamQuery, ApiError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        parse_query(&pairs)
    }

    #[test]
    fn the_query_names_what_is_wrong() {
        assert_eq!(
            q(&[]).unwrap(),
            StreamQuery {
                filter: Filter::All,
                after_seq: 0
            }
        );
        assert_eq!(
            q(&[("job_id", "j1"), ("after_seq", "42"), ("api_key", "k")]).unwrap(),
            StreamQuery {
                filter: Filter::Job("j1".into()),
                after_seq: 42
            }
        );
        for (pairs, code) in [
            (&[("after_seq", "-1")][..], "invalid_after_seq"),
            (&[("after_seq", "1.5")][..], "invalid_after_seq"),
            (&[("after_seq", "")][..], "invalid_after_seq"),
            (
                &[("run_id", "r"), ("job_id", "j")][..],
                "conflicting_filters",
            ),
            (&[("run_id", " ")][..], "invalid_filter"),
            (
                &[("after_seq", "1"), ("after_seq", "2")][..],
                "duplicate_parameter",
            ),
            (&[("since", "1")][..], "unknown_parameter"),
            (
                &[("engine_run_id", "e"), ("job_id", "j")][..],
                "conflicting_filters",
            ),
            (&[("engine_run_id", "")][..], "invalid_filter"),
        ] {
            let e = q(pairs).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, code),
                "{pairs:?}"
            );
        }
        let e = q(&[("since", "1")]).unwrap_err();
        assert!(e.message.contains("`since`") && e.message.contains("after_seq"));
    }
}
