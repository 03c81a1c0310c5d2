//! [`WebsocketFeed`]: a paper run's bars from a WebSocket stream of JSON messages.
//!
//! ```yaml
//! feed:
//!   type: websocket
//!   url: "wss://stream.binance.com:9443/stream?streams=btcusdt@kline_1m"
//!   preset: binance_kline        # or `fields:` (keys or JSON pointers) for any JSON bar message
//!   subscribe: '{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":1}'   # optional
//!   backoff_ms: 200              # first reconnect delay, doubled up to max_backoff_ms
//!   max_backoff_ms: 30000
//! ```
//!
//! The socket lives on a thread of its own with a single-threaded tokio runtime; it connects
//! through `tradeloom-net`'s guard ([`tradeloom_net::connect_websocket`]: the URL checked like an
//! HTTP URL, the TCP connection only to a checked address), sends `subscribe` after every
//! connect, decodes each text message ([`message`]) and hands the results to [`Feed::poll`]
//! through a bounded channel. A lost connection is reported as [`FeedEvent::Status`] and
//! retried after `backoff_ms`, doubling up to `max_backoff_ms` (the delay starts over once a
//! connection delivers a message). A message that cannot be used is a
//! [`FeedEvent::Malformed`] naming the field, and the feed goes on.
//!
//! Duplicates: a bar at or before the last bar handed out for its instrument (or at or before
//! the resume position) is skipped, so a server that resends its last closed kline after a
//! reconnect never gets a bar processed twice.
//!
//! Errors and statuses never show the URL's path or query (they may carry a listen key) nor the
//! `subscribe` text: only `scheme://host:port`.

mod message;

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use tradeloom_core::{Instrument, InstrumentId, UnixNanos};
use tradeloom_net::tokio_tungstenite::tungstenite::Message;
use tradeloom_net::{SsrfPolicy, check_websocket_url, connect_websocket};
use tradeloom_runs::paper::{
    Feed, FeedError, FeedEvent, FeedPoll, FeedPosition, WebsocketFeedSpec,
};

use message::{Decoded, Decoder};

/// `backoff_ms` when the spec gives none.
pub const DEFAULT_BACKOFF_MS: u64 = 200;
/// `max_backoff_ms` when the spec gives none.
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 30_000;
/// Events buffered between the socket thread and the run; a full buffer makes the socket wait
/// (back-pressure), it never drops a bar.
const CHANNEL_CAPACITY: usize = 4096;

/// Why a WebSocket feed cannot start: a bad setting or a URL the guard refuses. The message
/// starts with the spec field (`feed.url: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WebsocketFeedError {
    /// The spec field at fault (`feed.url`, `feed.fields.close`, `feed.backoff_ms`).
    pub field: String,
    /// The whole message, starting with the field.
    pub message: String,
}

impl WebsocketFeedError {
    fn new(field: &str, message: impl std::fmt::Display) -> Self {
        Self {
            field: field.to_string(),
            message: format!("{field}: {message}"),
        }
    }
}

/// The socket thread's side of a feed, as settled before it starts.
struct Settings {
    url: String,
    /// `scheme://host:port`: what statuses and errors show of the URL.
    shown: String,
    decoder: Decoder,
    subscribe: Option<String>,
    backoff: Duration,
    max_backoff: Duration,
}

/// A paper-run feed over a WebSocket bar stream (see the module documentation).
pub struct WebsocketFeed {
    events: Option<Receiver<FeedEvent>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The last bar handed out per instrument.
    last: HashMap<InstrumentId, UnixNanos>,
    /// From [`Feed::resume_after`]: bars at or before it were processed by an earlier process.
    floor: Option<UnixNanos>,
    duplicates: u64,
}

impl std::fmt::Debug for WebsocketFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebsocketFeed")
            .field("floor", &self.floor)
            .field("duplicates", &self.duplicates)
            .finish_non_exhaustive()
    }
}

impl WebsocketFeed {
    /// Checks `spec` against `instruments` and the URL against `policy` (DNS included), then
    /// starts the socket thread, which connects in the background. A URL the guard refuses is an
    /// error here (`feed.url: ws://127.0.0.1:9000: address 127.0.0.1 is blocked …`), so a run
    /// does not start on an address it may not reach.
    pub fn open(
        spec: &WebsocketFeedSpec,
        instruments: &[Instrument],
        policy: &SsrfPolicy,
    ) -> Result<Self, WebsocketFeedError> {
        let decoder =
            Decoder::new(spec.preset, spec.fields.as_ref(), instruments).map_err(|m| {
                // The decoder's messages already start with their field.
                let field = m.split(':').next().unwrap_or("feed.fields").to_string();
                WebsocketFeedError { field, message: m }
            })?;
        let backoff_ms = spec.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS);
        let max_backoff_ms = spec.max_backoff_ms.unwrap_or(DEFAULT_MAX_BACKOFF_MS);
        if backoff_ms == 0 {
            return Err(WebsocketFeedError::new(
                "feed.backoff_ms",
                "must be at least 1 (milliseconds)",
            ));
        }
        if max_backoff_ms < backoff_ms {
            return Err(WebsocketFeedError::new(
                "feed.max_backoff_ms",
                format!("{max_backoff_ms} is below backoff_ms {backoff_ms}"),
            ));
        }
        let settings = Settings {
            url: spec.url.trim().to_string(),
            shown: shown_url(&spec.url),
            decoder,
            subscribe: spec.subscribe.clone(),
            backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_backoff_ms),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (events_tx, events_rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let policy = policy.clone();
        let thread = std::thread::Builder::new()
            .name("websocket-feed".into())
            .spawn(move || socket_thread(settings, policy, ready_tx, events_tx, shutdown_rx))
            .map_err(|e| {
                WebsocketFeedError::new("feed", format!("cannot start the socket thread: {e}"))
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                let _ = thread.join();
                return Err(WebsocketFeedError::new("feed.url", message));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(WebsocketFeedError::new(
                    "feed",
                    "the socket thread stopped before checking the URL",
                ));
            }
        }
        Ok(Self {
            events: Some(events_rx),
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            last: HashMap::new(),
            floor: None,
            duplicates: 0,
        })
    }

    /// Bars skipped because one at the same or a later time was already handed out for their
    /// instrument (a server resending after a reconnect), or they were at or before the resume
    /// position.
    pub fn duplicates_skipped(&self) -> u64 {
        self.duplicates
    }

    fn is_duplicate(&self, instrument: InstrumentId, ts: UnixNanos) -> bool {
        self.floor.is_some_and(|floor| ts <= floor)
            || self.last.get(&instrument).is_some_and(|last| ts <= *last)
    }
}

impl Feed for WebsocketFeed {
    fn kind(&self) -> &'static str {
        "websocket"
    }

    fn poll(&mut self, wait: Duration) -> Result<FeedPoll, FeedError> {
        let deadline = Instant::now() + wait;
        loop {
            let Some(events) = &self.events else {
                return Ok(FeedPoll::Ended);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(FeedEvent::Bar(bar)) => {
                    if self.is_duplicate(bar.instrument, bar.ts) {
                        self.duplicates += 1;
                        tracing::debug!(instrument = bar.instrument.0, ts = %bar.ts, "websocket feed: skipped a bar already processed");
                        continue;
                    }
                    self.last.insert(bar.instrument, bar.ts);
                    return Ok(FeedPoll::Event(FeedEvent::Bar(bar)));
                }
                Ok(event) => return Ok(FeedPoll::Event(event)),
                Err(RecvTimeoutError::Timeout) => return Ok(FeedPoll::Idle),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(FeedError {
                        feed: "websocket",
                        message: "the socket thread stopped unexpectedly".into(),
                    });
                }
            }
        }
    }

    fn resume_after(&mut self, position: FeedPosition) {
        self.floor = position.last_bar_ts;
    }
}

impl Drop for WebsocketFeed {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Dropped first: a socket thread waiting on a full channel wakes with an error.
        self.events.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `scheme://host[:port]` of a URL, without userinfo, path or query; the text itself when it
/// does not parse.
fn shown_url(url: &str) -> String {
    let trimmed = url.trim();
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return "(not a URL)".to_string();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// Why a session on one connection ended.
enum SessionEnd {
    /// The feed was dropped (or the run stopped): exit.
    Shutdown,
    /// The connection was lost; reconnect.
    Lost(String),
}

fn socket_thread(
    settings: Settings,
    policy: SsrfPolicy,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    events: SyncSender<FeedEvent>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the socket runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        if let Err(e) = check_websocket_url(&policy, &settings.url).await {
            let hint = if e.is_refusal()
                && matches!(
                    e.kind,
                    tradeloom_net::SsrfErrorKind::Blocked { .. }
                        | tradeloom_net::SsrfErrorKind::BlockedHost { .. }
                ) {
                "; allow it with `tradeloom run --http-allow HOST:PORT` (or the policy's allow_hosts)"
            } else {
                ""
            };
            let _ = ready.send(Err(format!("{}: {}{hint}", settings.shown, e.kind)));
            return;
        }
        if ready.send(Ok(())).is_err() {
            return;
        }
        run(&settings, &policy, &events, shutdown).await;
    });
}

/// Connects, reads, reconnects with back-off, until shut down.
async fn run(
    settings: &Settings,
    policy: &SsrfPolicy,
    events: &SyncSender<FeedEvent>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let mut delay = settings.backoff;
    loop {
        let connected = tokio::select! {
            _ = &mut shutdown => return,
            c = connect_websocket(policy, &settings.url) => c,
        };
        let reason = match connected {
            Ok(conn) => {
                let detail = format!("connected to {} ({})", settings.shown, conn.remote_addr);
                tracing::info!(detail, "websocket feed connected");
                if !deliver(
                    events,
                    FeedEvent::Status {
                        connected: true,
                        detail,
                    },
                ) {
                    return;
                }
                match session(conn.socket, settings, events, &mut shutdown, &mut delay).await {
                    SessionEnd::Shutdown => return,
                    SessionEnd::Lost(reason) => reason,
                }
            }
            Err(e) => format!("cannot connect to {}: {}", settings.shown, e.kind),
        };
        let detail = format!("{reason}; reconnecting in {} ms", delay.as_millis());
        tracing::warn!(detail, "websocket feed disconnected");
        if !deliver(
            events,
            FeedEvent::Status {
                connected: false,
                detail,
            },
        ) {
            return;
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(settings.max_backoff);
    }
}

/// Reads one connection until it is lost or the feed shuts down. The back-off `delay` starts
/// over at the first message.
async fn session(
    mut socket: tradeloom_net::GuardedWebSocket,
    settings: &Settings,
    events: &SyncSender<FeedEvent>,
    shutdown: &mut tokio::sync::oneshot::Receiver<()>,
    delay: &mut Duration,
) -> SessionEnd {
    use futures_util::{SinkExt, StreamExt};
    if let Some(text) = &settings.subscribe
        && let Err(e) = socket.send(Message::text(text.clone())).await
    {
        return SessionEnd::Lost(format!("cannot send the subscribe message: {e}"));
    }
    loop {
        let next = tokio::select! {
            _ = &mut *shutdown => {
                let _ = socket.close(None).await;
                return SessionEnd::Shutdown;
            }
            next = socket.next() => next,
        };
        let event = match next {
            Some(Ok(Message::Text(text))) => {
                *delay = settings.backoff;
                match settings.decoder.decode(text.as_str()) {
                    Ok(Decoded::Bar(bar)) => Some(FeedEvent::Bar(bar)),
                    Ok(Decoded::Ignored) => None,
                    Err(reason) => Some(FeedEvent::Malformed { reason }),
                }
            }
            Some(Ok(Message::Binary(_))) => Some(FeedEvent::Malformed {
                reason: "a binary message; expected JSON text".into(),
            }),
            // Pings are answered by the library; pongs and raw frames carry nothing.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => None,
            Some(Ok(Message::Close(frame))) => {
                let why = frame
                    .map(|f| format!(" (code {}{})", u16::from(f.code), reason_text(&f.reason)))
                    .unwrap_or_default();
                return SessionEnd::Lost(format!("the server closed the connection{why}"));
            }
            Some(Err(e)) => return SessionEnd::Lost(format!("connection lost: {e}")),
            None => return SessionEnd::Lost("the connection ended".into()),
        };
        if let Some(event) = event
            && !deliver(events, event)
        {
            return SessionEnd::Shutdown;
        }
    }
}

fn reason_text(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        let short: String = reason.chars().take(64).collect();
        format!(": {short}")
    }
}

/// Hands `event` to the run (waiting while the buffer is full); false once the feed is gone.
fn deliver(events: &SyncSender<FeedEvent>, event: FeedEvent) -> bool {
    events.send(event).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_keep_only_scheme_host_and_port() {
        assert_eq!(
            shown_url("wss://user:pw@stream.example.com:9443/ws/LISTENKEY?x=1"),
            "wss://stream.example.com:9443"
        );
        assert_eq!(shown_url(" ws://127.0.0.1:9000 "), "ws://127.0.0.1:9000");
        assert_eq!(shown_url("nonsense"), "(not a URL)");
    }
}
