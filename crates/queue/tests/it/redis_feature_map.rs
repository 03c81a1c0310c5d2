//! The feature map conformance suite against [`RedisFeatureMap`] when
//! `TRADELOOM_TEST_REDIS_URL` is set (skipped with a note otherwise; set and unreachable, the
//! tests fail), each under its own key prefix; then connections killed under a subscriber.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tradeloom_queue::feature_map_conformance as c;
use tradeloom_queue::{FeatureMap, MapUpdate, MapValues, RedisFeatureMap, Subscription};

use crate::redis_scratch::{ENV, Scratch, kill_clients_of_db, url, with_db};

fn open(scratch: &Scratch, name: &str) -> Arc<dyn FeatureMap> {
    Arc::new(
        RedisFeatureMap::open(&scratch.url, &scratch.prefix, name).unwrap_or_else(|e| {
            panic!("{ENV}={} is set but the map cannot open: {e}", scratch.url)
        }),
    )
}

macro_rules! conformance_on_redis {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(url) = url("feature map") else { return };
                let scratch = Scratch::new(&url);
                c::$name(&|name: &str| open(&scratch, name))
            }
        )*
    };
}

conformance_on_redis!(
    sequence_starts_at_one_and_publish_replaces,
    set_keeps_the_other_keys,
    concurrent_publishers_get_distinct_sequences,
    wait_next_returns_at_once_or_times_out,
    wait_next_wakes_on_publish,
    subscriber_sees_every_update_in_order,
    reopened_map_goes_on,
    continue_after_raises_the_next_sequence,
);

fn update(i: u64) -> MapUpdate {
    MapUpdate {
        updated_at: Utc.timestamp_opt(1_780_000_000 + i as i64, 0).unwrap(),
        source: format!("scan-{i}"),
        values: MapValues::from_pairs(vec![("AAA".into(), serde_json::json!(i))]).unwrap(),
        observed: None,
    }
}

/// The map's connections are killed while a subscriber is blocked in `wait_next` and between
/// publishes: both reconnect, the sequence goes on without a gap or a repeat, and the
/// subscriber sees every update once.
#[test]
fn the_map_goes_on_after_its_connections_are_killed() {
    const DB: u8 = 14;
    let Some(url) = url("feature map") else {
        return;
    };
    let scratch = Scratch::new(&with_db(&url, DB));
    let map = open(&scratch, "scans");
    let subscriber = {
        let map = Arc::clone(&map);
        std::thread::spawn(move || {
            let mut sub = Subscription::new(map, 0);
            (0..20)
                .map(|_| {
                    sub.next(Duration::from_secs(30))
                        .expect("next across a reconnect")
                        .expect("an update within 30 s")
                        .seq
                })
                .collect::<Vec<u64>>()
        })
    };
    for i in 1..=10 {
        assert_eq!(map.publish(update(i)).unwrap().seq, i);
    }
    // Let the subscriber catch up and block again, then cut every connection.
    std::thread::sleep(Duration::from_millis(300));
    assert!(kill_clients_of_db(&url, DB) > 0, "nothing to kill");
    for i in 11..=20 {
        assert_eq!(map.publish(update(i)).unwrap().seq, i, "no gap, no repeat");
        if i == 15 {
            kill_clients_of_db(&url, DB);
        }
    }
    assert_eq!(subscriber.join().unwrap(), (1..=20).collect::<Vec<u64>>());
    let latest = map.latest().unwrap().unwrap();
    assert_eq!((latest.seq, latest.source.as_str()), (20, "scan-20"));
}

/// The history is capped near its length, never below it.
#[test]
fn history_is_capped() {
    let Some(url) = url("feature map") else {
        return;
    };
    let scratch = Scratch::new(&url);
    let map = RedisFeatureMap::open(&scratch.url, &scratch.prefix, "capped")
        .unwrap()
        .with_history(c::MIN_HISTORY);
    for i in 1..=400 {
        map.publish(update(i)).unwrap();
    }
    let oldest = map.wait_next(0, Duration::ZERO).unwrap().unwrap().seq;
    let retained = 400 - oldest + 1;
    assert!(
        retained >= c::MIN_HISTORY as u64 && retained < 400,
        "{retained} snapshots retained"
    );
}
