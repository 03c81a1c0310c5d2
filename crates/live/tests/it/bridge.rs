//! The bridge in this process: every scan format, ordering, the cursor across restarts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use tradeloom_live::bridge::{Bridge, BridgeOptions, open_map};
use tradeloom_queue::{FeatureMap, MapSnapshot};
use tradeloom_runs::paper::StopSignal;

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Float64, true),
        Field::new("volume", DataType::Int64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["AAA", "BBB"])),
        Arc::new(Float64Array::from(vec![Some(10.5), None])),
        Arc::new(Int64Array::from(vec![Some(7), Some(8)])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Writes through a temporary file and a rename, as a producer should.
fn write_renamed(dir: &Path, name: &str, write: impl FnOnce(&Path)) {
    let tmp = dir.join(format!(".{name}.tmp"));
    write(&tmp);
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn write_arrow(path: &Path) {
    let b = batch();
    let file = std::fs::File::create(path).unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(file, &b.schema()).unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
}

fn write_parquet(path: &Path) {
    let b = batch();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, b.schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
}

fn next(map: &Arc<dyn FeatureMap>, after: u64) -> Arc<MapSnapshot> {
    map.wait_next(after, Duration::from_secs(20))
        .unwrap()
        .unwrap_or_else(|| panic!("no scan after {after} within 20 s"))
}

fn options(watch: &Path, data: &Path) -> BridgeOptions {
    let mut o = BridgeOptions::new(watch, "scans", data);
    o.rescan = Duration::from_millis(100);
    o
}

#[test]
fn every_format_is_published_whole_in_file_order() {
    let data = tempfile::tempdir().unwrap();
    let watch = data.path().join("in");
    std::fs::create_dir_all(&watch).unwrap();
    let map: Arc<dyn FeatureMap> = open_map(data.path(), "scans").unwrap();
    let bridge = Bridge::with_map(options(&watch, data.path()), map.clone()).unwrap();
    let stats = bridge.stats();
    let stop = StopSignal::new();
    let handle = bridge.spawn(stop.clone()).unwrap();

    write_renamed(&watch, "s-1.arrow", write_arrow);
    let s1 = next(&map, 0);
    write_renamed(&watch, "s-2.parquet", write_parquet);
    let s2 = next(&map, 1);
    write_renamed(&watch, "s-3.jsonl", |p| {
        std::fs::write(p, "{\"symbol\":\"CCC\",\"price\":3.25,\"tag\":\"x\"}\n").unwrap()
    });
    let s3 = next(&map, 2);
    // Not scans: never read.
    std::fs::write(watch.join("notes.txt"), "hello").unwrap();
    std::fs::write(watch.join("s-4.csv.partial"), "symbol,pr").unwrap();
    write_renamed(&watch, "s-5.csv", |p| {
        std::fs::write(p, "symbol,price\nDDD,4\n").unwrap()
    });
    let s5 = next(&map, 3);
    stop.stop();
    handle.join().unwrap().unwrap();

    for (snap, seq, source) in [(&s1, 1, "s-1.arrow"), (&s2, 2, "s-2.parquet")] {
        assert_eq!((snap.seq, snap.source.as_str()), (seq, source));
        assert_eq!(
            snap.values.to_json(),
            serde_json::json!({
                "AAA": {"symbol": "AAA", "price": 10.5, "volume": 7},
                "BBB": {"symbol": "BBB", "price": null, "volume": 8}
            })
        );
        assert!(snap.observed.is_some());
    }
    assert_eq!(
        s3.values.to_json(),
        serde_json::json!({"CCC": {"symbol": "CCC", "price": 3.25, "tag": "x"}})
    );
    assert_eq!((s5.seq, s5.source.as_str()), (4, "s-5.csv"));
    // The scan's time is its file's modification time.
    let mtime: chrono::DateTime<chrono::Utc> = std::fs::metadata(watch.join("s-5.csv"))
        .unwrap()
        .modified()
        .unwrap()
        .into();
    assert_eq!(s5.updated_at, mtime);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.published.load(Relaxed), 4);
    assert_eq!(stats.malformed.load(Relaxed), 0);
}

#[test]
fn a_restarted_bridge_reads_on_after_the_last_file_and_keeps_the_sequence() {
    let data = tempfile::tempdir().unwrap();
    let watch = data.path().join("in");
    std::fs::create_dir_all(&watch).unwrap();
    for i in 1..=3 {
        std::fs::write(
            watch.join(format!("s-{i}.csv")),
            format!("symbol,price\nAAA,{i}\n"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let run = |expect_after: u64, expect_last: u64| {
        let map: Arc<dyn FeatureMap> = open_map(data.path(), "scans").unwrap();
        let bridge = Bridge::with_map(options(&watch, data.path()), map.clone()).unwrap();
        let stop = StopSignal::new();
        let handle = bridge.spawn(stop.clone()).unwrap();
        let mut seen = Vec::new();
        let mut after = expect_after;
        while after < expect_last {
            let s = next(&map, after);
            seen.push((s.seq, s.source.clone()));
            after = s.seq;
        }
        // Nothing more comes (no file is published twice).
        assert!(
            map.wait_next(after, Duration::from_millis(400))
                .unwrap()
                .is_none()
        );
        stop.stop();
        handle.join().unwrap().unwrap();
        seen
    };
    assert_eq!(
        run(0, 3),
        vec![
            (1, "s-1.csv".into()),
            (2, "s-2.csv".into()),
            (3, "s-3.csv".into())
        ]
    );
    std::fs::write(watch.join("s-4.csv"), "symbol,price\nAAA,4\n").unwrap();
    assert_eq!(run(3, 4), vec![(4, "s-4.csv".into())]);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let err = Bridge::open(options(&data.path().join("nope"), data.path()))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--watch ") && err.contains("nope"), "{err}");
}

#[test]
fn the_map_file_shows_the_last_scan_once_the_bridge_stops() {
    let data = tempfile::tempdir().unwrap();
    let watch = data.path().join("in");
    std::fs::create_dir_all(&watch).unwrap();
    let map: Arc<dyn FeatureMap> = open_map(data.path(), "scans").unwrap();
    let bridge = Bridge::with_map(options(&watch, data.path()), map.clone()).unwrap();
    let stop = StopSignal::new();
    let handle = bridge.spawn(stop.clone()).unwrap();
    for i in 1..=20 {
        write_renamed(&watch, &format!("s-{i:02}.csv"), |p| {
            std::fs::write(p, format!("symbol,price\nAAA,{i}\n")).unwrap()
        });
    }
    let mut after = 0;
    while after < 20 {
        after = next(&map, after).seq;
    }
    stop.stop();
    handle.join().unwrap().unwrap();
    // Written behind the updates, but whole and up to date when `run` returns (the map is
    // still open here: this is the bridge's flush, not the map's drop).
    let file = tradeloom_queue::feature_map::read_map_file(&data.path().join("maps"), "scans")
        .unwrap()
        .unwrap();
    assert_eq!((file.seq, file.source.as_str()), (20, "s-20.csv"));
    drop(map);
}

/// A bridge killed after publishing leaves a cursor that is ahead of the map's file (the file
/// is written behind the updates): a restart goes on from the cursor, so the sequence a trader
/// recorded is never handed out again for another file.
#[test]
fn a_restart_goes_on_from_the_cursor_when_the_map_file_lags_behind_it() {
    let data = tempfile::tempdir().unwrap();
    let watch = data.path().join("in");
    std::fs::create_dir_all(&watch).unwrap();
    let maps = data.path().join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    // What a kill leaves: the map's file at scan 3, the cursor at scan 5 (files 4 and 5 were
    // published and may have been traded; they are gone from the directory since).
    std::fs::write(
        maps.join("scans.json"),
        r#"{"name":"scans","seq":3,"updated_at":"2026-12-06T10:00:00.000000000Z","source":"s-3.csv","values":{"AAA":{"symbol":"AAA","price":3}}}"#,
    )
    .unwrap();
    let cursor = tradeloom_live::bridge::Cursor {
        map: "scans".to_string(),
        watch: watch.display().to_string(),
        last_file: Some("s-5.csv".to_string()),
        last_mtime_ns: Some(1_780_000_000_000_000_000),
        last_seq: 5,
        published: 5,
        malformed: 0,
    };
    cursor
        .save(&tradeloom_live::bridge::Cursor::path(&maps, "scans"))
        .unwrap();
    std::fs::write(watch.join("s-6.csv"), "symbol,price\nAAA,6\n").unwrap();

    let map: Arc<dyn FeatureMap> = open_map(data.path(), "scans").unwrap();
    let bridge = Bridge::with_map(options(&watch, data.path()), map.clone()).unwrap();
    let stop = StopSignal::new();
    let handle = bridge.spawn(stop.clone()).unwrap();
    let s = next(&map, 3);
    stop.stop();
    handle.join().unwrap().unwrap();
    assert_eq!((s.seq, s.source.as_str()), (6, "s-6.csv"));
    let cursor =
        tradeloom_live::bridge::Cursor::load(&tradeloom_live::bridge::Cursor::path(&maps, "scans"))
            .unwrap()
            .unwrap();
    assert_eq!(
        (cursor.last_seq, cursor.last_file.as_deref()),
        (6, Some("s-6.csv"))
    );
}
