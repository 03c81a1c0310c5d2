//! The `/ws` event bus on Redis Streams ([`RedisEventBus`]), when `TRADELOOM_TEST_REDIS_URL` is
//! set (skipped with a note otherwise; set and unreachable, the tests fail): buses on one
//! prefix are processes of one deployment.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tradeloom_server::RedisEventBus;

use crate::redis_scratch::{ENV, Scratch, kill_clients_of_db, url, with_db};

async fn bus(scratch: &Scratch) -> RedisEventBus {
    RedisEventBus::connect(&scratch.url, &scratch.prefix)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{ENV}={} is set but the event bus cannot connect: {e}",
                scratch.url
            )
        })
}

/// Whether `notify` fires within `timeout` after `action` (armed before it runs).
async fn wakes(notify: &Notify, timeout: Duration, action: impl Future<Output = ()>) -> bool {
    let woke = notify.notified();
    tokio::pin!(woke);
    woke.as_mut().enable();
    action.await;
    tokio::time::timeout(timeout, woke).await.is_ok()
}

/// Publishes on `publisher` until `notify` fires (the reader may still be connecting, or
/// reconnecting); fails after `limit`.
async fn publish_until_woken(publisher: &RedisEventBus, notify: &Notify, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seq = 1_000;
    loop {
        seq += 1;
        let woke = wakes(notify, Duration::from_millis(300), async {
            // A publish may fail while the publisher's own connection is re-established.
            let _ = publisher.publish(seq).await;
        })
        .await;
        if woke {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no wake-up within {limit:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_event_bus_wakes_every_process_on_the_prefix() {
    let Some(url) = url("event bus") else { return };
    let scratch = Scratch::new(&url);
    let writer = bus(&scratch).await;
    let reader = bus(&scratch).await;
    assert_eq!(reader.stream_key(), format!("{}events", scratch.prefix));
    let notify = Arc::new(Notify::new());
    let task = reader.spawn_wakeups(&notify);
    // The reader starts after the newest entry: wait until it is listening.
    publish_until_woken(&writer, &notify, Duration::from_secs(5)).await;

    for seq in [7, 8] {
        assert!(
            wakes(&notify, Duration::from_secs(2), async {
                writer.publish(seq).await.unwrap();
            })
            .await,
            "seq {seq} published by another process wakes this one"
        );
    }
    // A burst is at least one wake-up, and the stream stays capped.
    assert!(
        wakes(&notify, Duration::from_secs(2), async {
            for seq in 0..3_000 {
                writer.publish(seq).await.unwrap();
            }
        })
        .await
    );
    let len: usize = {
        let mut conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("XLEN")
            .arg(writer.stream_key())
            .query(&mut conn)
            .unwrap()
    };
    assert!(len < 2_000, "the stream is capped near 1000 entries: {len}");

    // Another prefix is another deployment.
    let other = Scratch::new(&url);
    let stranger = bus(&other).await;
    assert!(
        !wakes(&notify, Duration::from_millis(500), async {
            stranger.publish(1).await.unwrap();
        })
        .await,
        "a publish under another prefix woke this reader"
    );

    // The reader ends once nobody else holds its notifier.
    drop(notify);
    writer.publish(9).await.unwrap();
    tokio::time::timeout(Duration::from_secs(8), task)
        .await
        .expect("the reader ends with its notifier")
        .unwrap();
}

/// The reader's connection is killed (as by a network failure or a Redis restart): it
/// reconnects and keeps waking, entries published meanwhile included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_event_bus_reader_reconnects_after_its_connection_is_killed() {
    const DB: u8 = 12;
    let Some(url) = url("event bus") else { return };
    let scratch = Scratch::new(&with_db(&url, DB));
    let writer = bus(&scratch).await;
    let reader = bus(&scratch).await;
    let notify = Arc::new(Notify::new());
    let task = reader.spawn_wakeups(&notify);
    publish_until_woken(&writer, &notify, Duration::from_secs(5)).await;

    for round in 0..3 {
        let killed = kill_clients_of_db(&url, DB);
        assert!(killed >= 1, "round {round}: no connection to kill");
        publish_until_woken(&writer, &notify, Duration::from_secs(10)).await;
        assert!(
            wakes(&notify, Duration::from_secs(2), async {
                writer.publish(round).await.unwrap();
            })
            .await,
            "round {round}: woken after reconnecting"
        );
    }
    assert!(!task.is_finished());
    task.abort();
}
