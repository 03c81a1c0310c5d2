//! The behaviour every [`FeatureMap`] implementation must show, as functions its tests call.
//! Each takes `open`, which opens (or reopens) the map of a given name in the implementation
//! under test, and panics on the first deviation. Every function names its maps with a fresh
//! suffix, so tests may share one back end and run in parallel.
//!
//! ```
//! # use std::sync::Arc;
//! # use tradeloom_queue::{FeatureMap, InMemoryFeatureMap, feature_map_conformance as c};
//! let open = |name: &str| -> Arc<dyn FeatureMap> { Arc::new(InMemoryFeatureMap::new(name).unwrap()) };
//! c::sequence_starts_at_one_and_publish_replaces(&open);
//! ```
//!
//! An implementation must retain at least [`MIN_HISTORY`] snapshots for late subscribers.
//! [`reopened_map_goes_on`] is for implementations that keep a map beyond the process (the
//! mirrored in-memory map, Redis).
//!
//! Panicking is the point of this module: `expect` here reports a failed operation of the map
//! under test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::feature_map::{FeatureMap, MapUpdate, MapValues};

/// The fewest snapshots an implementation keeps for subscribers that are behind.
pub const MIN_HISTORY: usize = 64;

/// Opens the map of a name in the implementation under test.
pub type Open<'a> = &'a dyn Fn(&str) -> Arc<dyn FeatureMap>;

/// `name` with a fresh suffix: a map no other test uses.
pub fn fresh_name(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}

fn scan(source: &str, secs: i64, rows: &[(&str, f64)]) -> MapUpdate {
    MapUpdate {
        updated_at: at(secs),
        source: source.to_string(),
        values: MapValues::from_pairs(
            rows.iter()
                .map(|(k, p)| (k.to_string(), json!({"price": p})))
                .collect(),
        )
        .unwrap(),
        observed: None,
    }
}

/// The first update has sequence 1; a publish replaces every value; `latest` shows the
/// update's time, source and values.
pub fn sequence_starts_at_one_and_publish_replaces(open: Open<'_>) {
    let map = open(&fresh_name("replace"));
    assert!(
        map.latest().expect("latest").is_none(),
        "a new map is empty"
    );
    let first = map
        .publish(scan("scan-1.csv", 1, &[("AAA", 1.0), ("BBB", 2.0)]))
        .expect("publish");
    assert_eq!(first.seq, 1, "the first update is sequence 1");
    let second = map
        .publish(scan("scan-2.csv", 2, &[("CCC", 3.0)]))
        .expect("publish");
    assert_eq!(second.seq, 2);
    let latest = map.latest().expect("latest").expect("a snapshot");
    assert_eq!(latest.seq, 2);
    assert_eq!(latest.source, "scan-2.csv");
    assert_eq!(latest.updated_at, at(2));
    assert_eq!(latest.name, map.name());
    assert_eq!(
        latest.values.len(),
        1,
        "publish replaces: {:?}",
        latest.values
    );
    assert_eq!(latest.values.get("CCC"), Some(&json!({"price": 3.0})));
    assert_eq!(latest.values.get("AAA"), None);
}

/// A set changes one key and keeps the others, under the next sequence number.
pub fn set_keeps_the_other_keys(open: Open<'_>) {
    let map = open(&fresh_name("set"));
    map.publish(scan("scan-1.csv", 1, &[("AAA", 1.0)]))
        .expect("publish");
    let snap = map
        .set("pnl:2026-12-06", json!({"pnl": "12.50"}), "trader", at(5))
        .expect("set");
    assert_eq!(snap.seq, 2);
    assert_eq!(snap.source, "trader");
    assert_eq!(snap.values.get("AAA"), Some(&json!({"price": 1.0})));
    assert_eq!(
        snap.values.get("pnl:2026-12-06"),
        Some(&json!({"pnl": "12.50"}))
    );
    let snap = map
        .set("pnl:2026-12-06", json!({"pnl": "13.00"}), "trader", at(6))
        .expect("set");
    assert_eq!(snap.seq, 3);
    assert_eq!(snap.values.len(), 2, "a set replaces the key's value");
    assert_eq!(
        snap.values.get("pnl:2026-12-06"),
        Some(&json!({"pnl": "13.00"}))
    );
}

/// `continue_after` raises the sequence the next update gets, never lowers it, and leaves the
/// latest snapshot as it was.
pub fn continue_after_raises_the_next_sequence(open: Open<'_>) {
    let map = open(&fresh_name("continue"));
    map.continue_after(0).expect("continue_after");
    let first = map
        .publish(scan("scan-1.csv", 1, &[("AAA", 1.0)]))
        .expect("publish");
    assert_eq!(first.seq, 1, "continue_after(0) changes nothing");
    map.continue_after(41).expect("continue_after");
    let latest = map.latest().expect("latest").expect("a snapshot");
    assert_eq!(
        (latest.seq, latest.source.as_str()),
        (1, "scan-1.csv"),
        "the latest snapshot stays"
    );
    map.continue_after(7).expect("continue_after");
    let next = map
        .publish(scan("scan-42.csv", 2, &[("AAA", 2.0)]))
        .expect("publish");
    assert_eq!(next.seq, 42, "the sequence goes on after 41, not after 7");
    let after = map
        .wait_next(1, Duration::ZERO)
        .expect("wait_next")
        .expect("the update after 1");
    assert_eq!(after.seq, 42, "a subscriber at 1 gets 42 next");
}

/// Publishers on several threads at once: every update gets its own sequence number, and the
/// latest has the highest.
pub fn concurrent_publishers_get_distinct_sequences(open: Open<'_>) {
    let map = open(&fresh_name("concurrent"));
    let threads = 4;
    let per_thread = 50;
    let mut handles = Vec::new();
    for t in 0..threads {
        let map = map.clone();
        handles.push(std::thread::spawn(move || {
            (0..per_thread)
                .map(|i| {
                    map.publish(scan(&format!("t{t}-{i}"), i, &[("AAA", i as f64)]))
                        .expect("publish")
                        .seq
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("publisher thread"))
        .collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=(threads * per_thread) as u64).collect();
    assert_eq!(seqs, expected, "sequences are 1..=n, each once");
    let latest = map.latest().expect("latest").expect("a snapshot");
    assert_eq!(latest.seq, (threads * per_thread) as u64);
}

/// `wait_next` returns at once when a newer snapshot exists, and `None` after its timeout when
/// none comes (not before).
pub fn wait_next_returns_at_once_or_times_out(open: Open<'_>) {
    let map = open(&fresh_name("wait"));
    map.publish(scan("scan-1.csv", 1, &[("AAA", 1.0)]))
        .expect("publish");
    let got = map
        .wait_next(0, Duration::from_secs(30))
        .expect("wait_next")
        .expect("sequence 1 exists");
    assert_eq!(got.seq, 1);
    let timeout = Duration::from_millis(150);
    let start = Instant::now();
    let none = map.wait_next(1, timeout).expect("wait_next");
    assert!(none.is_none(), "nothing newer than 1: got {none:?}");
    assert!(
        start.elapsed() >= timeout,
        "returned None after {:?}, before its timeout {timeout:?}",
        start.elapsed()
    );
}

/// A subscriber blocked in `wait_next` is woken by a publish on another thread and gets it.
pub fn wait_next_wakes_on_publish(open: Open<'_>) {
    let map = open(&fresh_name("wake"));
    let waiter = {
        let map = map.clone();
        std::thread::spawn(move || {
            map.wait_next(0, Duration::from_secs(30))
                .expect("wait_next")
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    map.publish(scan("scan-1.csv", 1, &[("AAA", 1.0)]))
        .expect("publish");
    let got = waiter
        .join()
        .expect("waiter")
        .expect("woken with a snapshot");
    assert_eq!((got.seq, got.source.as_str()), (1, "scan-1.csv"));
}

/// A subscriber that starts late or lags behind still gets every retained update, in order,
/// once each.
pub fn subscriber_sees_every_update_in_order(open: Open<'_>) {
    let map = open(&fresh_name("order"));
    let n = MIN_HISTORY as u64;
    for i in 1..=n / 2 {
        map.publish(scan(&format!("scan-{i}"), i as i64, &[("AAA", i as f64)]))
            .expect("publish");
    }
    let publisher = {
        let map = map.clone();
        std::thread::spawn(move || {
            for i in n / 2 + 1..=n {
                map.publish(scan(&format!("scan-{i}"), i as i64, &[("AAA", i as f64)]))
                    .expect("publish");
            }
        })
    };
    let mut sub = crate::feature_map::Subscription::new(map.clone(), 0);
    let mut seen = Vec::new();
    while seen.len() < n as usize {
        let snap = sub
            .next(Duration::from_secs(30))
            .expect("next")
            .expect("an update within 30 s");
        assert_eq!(snap.source, format!("scan-{}", snap.seq));
        assert_eq!(
            snap.values.get("AAA"),
            Some(&json!({"price": snap.seq as f64}))
        );
        seen.push(snap.seq);
    }
    publisher.join().expect("publisher");
    assert_eq!(seen, (1..=n).collect::<Vec<_>>());
    assert_eq!(sub.skipped(), 0);
    assert!(
        sub.next(Duration::ZERO).expect("next").is_none(),
        "nothing after the last update"
    );
}

/// For maps kept beyond the process: reopening a map by name shows its latest snapshot, and
/// its sequence goes on from there.
pub fn reopened_map_goes_on(open: Open<'_>) {
    let name = fresh_name("reopen");
    {
        let map = open(&name);
        map.publish(scan("scan-1.csv", 1, &[("AAA", 1.0)]))
            .expect("publish");
        map.publish(scan("scan-2.csv", 2, &[("BBB", 2.0)]))
            .expect("publish");
    }
    let map = open(&name);
    let latest = map
        .latest()
        .expect("latest")
        .expect("the reopened map's snapshot");
    assert_eq!((latest.seq, latest.source.as_str()), (2, "scan-2.csv"));
    assert_eq!(latest.updated_at, at(2));
    assert_eq!(latest.values.get("BBB"), Some(&json!({"price": 2.0})));
    let next = map
        .publish(scan("scan-3.csv", 3, &[("CCC", 3.0)]))
        .expect("publish");
    assert_eq!(next.seq, 3, "the sequence goes on after a reopen");
    assert_eq!(next.values.get("CCC"), Some(&json!({"price": 3.0})));
}
