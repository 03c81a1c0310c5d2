//! The feature map conformance suite against [`InMemoryFeatureMap`], held in memory and
//! mirrored to files, and what is particular to the mirror file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tradeloom_queue::feature_map::{map_file, read_map_file};
use tradeloom_queue::feature_map_conformance as c;
use tradeloom_queue::{FeatureMap, InMemoryFeatureMap, MapUpdate, MapValues};

fn memory(name: &str) -> Arc<dyn FeatureMap> {
    Arc::new(InMemoryFeatureMap::new(name).unwrap())
}

macro_rules! suite {
    ($module:ident, $open:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn sequence_starts_at_one_and_publish_replaces() {
                c::sequence_starts_at_one_and_publish_replaces(&$open)
            }
            #[test]
            fn continue_after_raises_the_next_sequence() {
                c::continue_after_raises_the_next_sequence(&$open)
            }
            #[test]
            fn set_keeps_the_other_keys() {
                c::set_keeps_the_other_keys(&$open)
            }
            #[test]
            fn concurrent_publishers_get_distinct_sequences() {
                c::concurrent_publishers_get_distinct_sequences(&$open)
            }
            #[test]
            fn wait_next_returns_at_once_or_times_out() {
                c::wait_next_returns_at_once_or_times_out(&$open)
            }
            #[test]
            fn wait_next_wakes_on_publish() {
                c::wait_next_wakes_on_publish(&$open)
            }
            #[test]
            fn subscriber_sees_every_update_in_order() {
                c::subscriber_sees_every_update_in_order(&$open)
            }
        }
    };
}

suite!(in_memory, memory);

/// One folder for every mirrored map of this test binary (names are fresh per test).
fn mirror_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn mirrored(name: &str) -> Arc<dyn FeatureMap> {
    Arc::new(InMemoryFeatureMap::mirrored(name, mirror_dir()).unwrap())
}

suite!(mirrored_suite, mirrored);

#[test]
fn mirrored_map_reopens_where_it_was() {
    c::reopened_map_goes_on(&mirrored)
}

#[test]
fn the_mirror_file_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let map = InMemoryFeatureMap::mirrored("scans", dir.path()).unwrap();
    let values = MapValues::from_pairs(vec![(
        "BTCUSDT".to_string(),
        serde_json::json!({"symbol": "BTCUSDT", "price": 97000.5, "score": 0.9}),
    )])
    .unwrap();
    map.publish(MapUpdate {
        updated_at: chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .into(),
        source: "scan-000001.csv".to_string(),
        values,
        observed: None,
    })
    .unwrap();
    map.flush().unwrap();
    let text = std::fs::read_to_string(map_file(dir.path(), "scans")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "scans",
            "seq": 1,
            "updated_at": "2026-12-06T10:00:00.000000000Z",
            "source": "scan-000001.csv",
            "values": {"BTCUSDT": {"symbol": "BTCUSDT", "price": 97000.5, "score": 0.9}}
        })
    );
    assert_eq!(read_map_file(dir.path(), "scans").unwrap().unwrap().seq, 1);
    assert!(read_map_file(dir.path(), "other").unwrap().is_none());
    std::fs::write(map_file(dir.path(), "broken"), "{\"name\": \"broken\"}").unwrap();
    let err = read_map_file(dir.path(), "broken").unwrap_err().to_string();
    assert!(
        err.contains("broken.json") && err.contains("`seq` is missing"),
        "{err}"
    );
    // No temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

fn update(n: u64) -> MapUpdate {
    MapUpdate {
        updated_at: chrono::DateTime::from_timestamp(1_780_000_000 + n as i64, 0).unwrap(),
        source: format!("scan-{n:06}.csv"),
        values: MapValues::from_pairs(vec![(
            "AAA".to_string(),
            serde_json::json!({"symbol": "AAA", "n": n}),
        )])
        .unwrap(),
        observed: None,
    }
}

fn file_seq(dir: &std::path::Path) -> Option<u64> {
    read_map_file(dir, "scans").unwrap().map(|s| s.seq)
}

#[test]
fn the_mirror_is_written_behind_the_updates_and_at_once_on_flush_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let map = InMemoryFeatureMap::mirrored("scans", dir.path()).unwrap();
    for n in 1..=100 {
        map.publish(update(n)).unwrap();
    }
    // The writer thread catches up by itself (within MIRROR_DELAY on an idle machine; the
    // deadline only keeps a broken writer from hanging the test).
    let deadline = Instant::now() + Duration::from_secs(60);
    while file_seq(dir.path()) != Some(100) {
        assert!(
            Instant::now() < deadline,
            "the mirror never caught up: {:?}",
            file_seq(dir.path())
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let snap = read_map_file(dir.path(), "scans").unwrap().unwrap();
    assert_eq!(snap.source, "scan-000100.csv");
    assert_eq!(snap.values.get("AAA").unwrap()["n"], 100);

    map.publish(update(101)).unwrap();
    map.flush().unwrap();
    assert_eq!(file_seq(dir.path()), Some(101), "flush writes at once");

    map.publish(update(102)).unwrap();
    drop(map);
    assert_eq!(
        file_seq(dir.path()),
        Some(102),
        "the drop writes the last update"
    );
    let reopened = InMemoryFeatureMap::mirrored("scans", dir.path()).unwrap();
    assert_eq!(reopened.publish(update(103)).unwrap().seq, 103);
}

#[test]
fn a_mirror_that_cannot_be_written_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("maps");
    std::fs::create_dir_all(&folder).unwrap();
    let map = InMemoryFeatureMap::mirrored("scans", &folder).unwrap();
    // The folder becomes a file: no mirror can be written under it.
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::write(&folder, "not a folder").unwrap();
    map.publish(update(1)).unwrap();
    let err = map.flush().unwrap_err().to_string();
    assert!(err.contains("scans.json"), "{err}");
    // The writer thread meets the same failure and the next update reports it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let reported = loop {
        std::thread::sleep(Duration::from_millis(20));
        match map.publish(update(2)) {
            Err(e) => break e.to_string(),
            Ok(_) => assert!(Instant::now() < deadline, "never reported"),
        }
    };
    assert!(reported.contains("scans.json"), "{reported}");
}
