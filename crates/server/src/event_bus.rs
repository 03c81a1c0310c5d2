//! [`RedisEventBus`]: wakes the `GET /ws` connections of every `serve` sharing a Redis when any
//! of them commits events (the `redis` feature).
//!
//! The store stays the only source of events: a connection resumes from the last `seq` it sent
//! and reads on from the store whenever it is woken (see the `ws` module). The bus carries only
//! the wake-ups: a writer appends the `seq` it committed to the stream `<prefix>events` (`XADD`,
//! capped at about [`STREAM_LENGTH`] entries), and each process runs one reader
//! ([`RedisEventBus::spawn_wakeups`]) that blocks on `XREAD` and calls `notify_waiters` on the
//! process's notifier whenever entries arrive — one wake-up per batch, however many connections
//! and entries. Every publish wakes every reader on the prefix, the publisher's own included.
//!
//! A lost wake-up only delays delivery until the connection's next poll, so the bus is best
//! effort: the reader reconnects with back-off and goes on from the last entry it saw (entries
//! added meanwhile wake at once), and a failed publish is an error the writer may log and
//! forget.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Entries kept in the stream (`MAXLEN ~`, so a few more): a reader needs only the entries
/// since the last one it saw, and a reader further behind than this still wakes.
pub const STREAM_LENGTH: usize = 1_000;

/// How long one `XREAD` blocks; the reader also notices a dropped notifier this often.
const BLOCK: Duration = Duration::from_secs(5);

/// An `XREAD` without an answer this long after its block ended means a dead connection.
const READ_SLACK: Duration = Duration::from_secs(5);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a publish waits for Redis.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits between attempts to reconnect the reader.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Why the bus could not connect or publish.
#[derive(Debug, thiserror::Error)]
pub enum EventBusError {
    #[error("invalid Redis URL `{url}` for the event bus: {source}")]
    Url {
        /// The URL with any password redacted.
        url: String,
        #[source]
        source: RedisError,
    },
    #[error("cannot reach Redis at {url} for the event bus")]
    Connect {
        /// The URL with any password redacted.
        url: String,
        #[source]
        source: RedisError,
    },
    #[error("cannot publish seq {seq} to the event bus stream `{stream}`: {reason}")]
    Publish {
        seq: i64,
        stream: String,
        reason: String,
    },
}

/// The wake-ups of `/ws` across processes on Redis Streams: [`RedisEventBus::publish`] after a
/// commit, one [`RedisEventBus::spawn_wakeups`] reader per process. Only wake-ups travel; the
/// store stays the source of events. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisEventBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// Opens the reader's own connections (a blocking `XREAD` would stall a shared one).
    client: Client,
    /// Publishes; reconnects in the background with back-off.
    manager: ConnectionManager,
    /// `<prefix>events`.
    stream: String,
}

impl std::fmt::Debug for RedisEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEventBus")
            .field("stream", &self.inner.stream)
            .finish_non_exhaustive()
    }
}

impl RedisEventBus {
    /// Connects to the Redis at `url` (`redis://host:port[/db]`) and uses the stream
    /// `<prefix>events` (e.g. prefix `tradeloom:`); every `serve` of one deployment uses the
    /// same Redis and prefix. Fails if Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, EventBusError> {
        let redacted = || tradeloom_core::redact_userinfo(url);
        let client = Client::open(url).map_err(|source| EventBusError::Url {
            url: redacted(),
            source,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_max_delay(RETRY_MAX);
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|source| EventBusError::Connect {
                url: redacted(),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                stream: format!("{prefix}events"),
            }),
        })
    }

    /// The stream's key, `<prefix>events`.
    pub fn stream_key(&self) -> &str {
        &self.inner.stream
    }

    /// Tells every reader on the prefix that events up to `seq` are committed: call it after
    /// the commit (and after waking this process's own connections, which need no Redis). An
    /// error costs the other processes' connections a poll interval of delay, nothing more.
    pub async fn publish(&self, seq: i64) -> Result<(), EventBusError> {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&self.inner.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_LENGTH)
            .arg("*")
            .arg("seq")
            .arg(seq);
        let mut conn = self.inner.manager.clone();
        let failed = |reason: String| EventBusError::Publish {
            seq,
            stream: self.inner.stream.clone(),
            reason,
        };
        // The manager's response timeout does not cover waiting for a reconnection.
        match tokio::time::timeout(PUBLISH_TIMEOUT, xadd.query_async::<String>(&mut conn)).await {
            Ok(Ok(_id)) => Ok(()),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no answer within {PUBLISH_TIMEOUT:?}"))),
        }
    }

    /// Starts this process's reader: it calls `notify.notify_waiters()` whenever entries arrive
    /// on the stream (e.g. with [`EventHub::notifier`](crate::EventHub::notifier) of the
    /// server's state). It reconnects on its own and ends when the handle is aborted or every
    /// other owner of `notify` has dropped it.
    pub fn spawn_wakeups(&self, notify: &Arc<Notify>) -> JoinHandle<()> {
        tokio::spawn(forward_wakeups(
            Arc::clone(&self.inner),
            Arc::downgrade(notify),
        ))
    }
}

/// The reader's loop: one connection at a time, `XREAD BLOCK` from the last entry seen.
async fn forward_wakeups(inner: Arc<Inner>, notify: Weak<Notify>) {
    let stream = inner.stream.as_str();
    // The id of the last entry seen; `None` until a connection first looks at the stream.
    let mut last_id: Option<String> = None;
    let mut retry = RETRY_FIRST;
    let mut lost = false;
    while notify.strong_count() > 0 {
        let mut conn = match open_reader(&inner.client).await {
            Ok(conn) => conn,
            Err(e) => {
                if !lost {
                    tracing::warn!(stream, error = %e, "event bus: cannot connect the reader; retrying");
                }
                lost = true;
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        let mut from = match last_id.take() {
            Some(id) => id,
            None => match newest_id(&mut conn, stream).await {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "event bus: cannot read the stream; reconnecting");
                    lost = true;
                    tokio::time::sleep(retry).await;
                    continue;
                }
            },
        };
        if lost {
            tracing::info!(stream, "event bus: the reader is connected again");
        }
        retry = RETRY_FIRST;
        lost = loop {
            if notify.strong_count() == 0 {
                break false;
            }
            let read = read_after(&mut conn, stream, &from);
            match tokio::time::timeout(BLOCK + READ_SLACK, read).await {
                Ok(Ok(Some(newest))) => {
                    from = newest;
                    if let Some(notify) = notify.upgrade() {
                        notify.notify_waiters();
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(stream, error = %e, "event bus: the reader's connection failed; reconnecting");
                    break true;
                }
                Err(_) => {
                    tracing::warn!(
                        stream,
                        "event bus: the reader's connection does not answer; reconnecting"
                    );
                    break true;
                }
            }
        };
        // Entries published while reconnecting come back from here and wake at once.
        last_id = Some(from);
    }
}

async fn open_reader(client: &Client) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        // `XREAD BLOCK` answers late by design; the loop times it out itself.
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The id of the stream's newest entry, `0-0` when it is empty: reading after it misses
/// nothing published from now on, across reconnections.
async fn newest_id(conn: &mut MultiplexedConnection, stream: &str) -> Result<String, RedisError> {
    let newest: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(newest
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_string(), |(id, _)| id))
}

/// Waits up to [`BLOCK`] for entries after `from`; the id of the newest that arrived, if any.
async fn read_after(
    conn: &mut MultiplexedConnection,
    stream: &str,
    from: &str,
) -> Result<Option<String>, RedisError> {
    let block_ms = u64::try_from(BLOCK.as_millis()).unwrap_or(u64::MAX);
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(STREAM_LENGTH)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(stream)
        .arg(from)
        .query_async(conn)
        .await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(|entry| entry.id)
        .next_back())
}
