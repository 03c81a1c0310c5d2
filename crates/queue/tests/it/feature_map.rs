//! The feature map conformance suite against [`InMemoryFeatureMap`], held in memory and
//! mirrored to files, and what is particular to the mirror file.

use std::sync::Arc;

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
