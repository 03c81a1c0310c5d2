//! The scan_dir feed: map updates → scans of the spec's instruments, unknown symbols ignored,
//! bad prices malformed, and where a fresh or resumed run starts.

use std::path::Path;
use std::time::{Duration, Instant};

use tradeloom_live::FeedOptions;
use tradeloom_live::scan_dir::ScanDirFeed;
use tradeloom_runs::paper::{Feed, FeedEvent, FeedPoll, FeedPosition, ScanDirFeedSpec};
use tradeloom_runs::spec::ResolvedSpec;

/// A spec trading AAA (2 decimals) and BBB (0 decimals); its scans come from `<dir>/scans`.
fn spec(dir: &Path) -> ResolvedSpec {
    std::fs::write(
        dir.join("bars.csv"),
        "timestamp,open,high,low,close,volume\n2026-01-02,1,1,1,1,1\n",
    )
    .unwrap();
    let path = dir.join("trader.yaml");
    std::fs::write(
        &path,
        "name: scan-trader\nmode: backtest\nvenue: sim\n\
         instruments: [{symbol: AAA, price_precision: 2, size_precision: 0}, {symbol: BBB, price_precision: 0, size_precision: 0}]\n\
         data: [{symbol: AAA, path: bars.csv}, {symbol: BBB, path: bars.csv}]\n\
         strategy: {name: signal, params: {quantity: 1, enter: {field: score, above: 0.8}, exit: {field: score, below: 0.2}}}\n\
         execution: {fill_model: bar_close, fee_bps: 0, slippage_bps: 0}\n\
         account: {initial_cash: 100000, currency: USD}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("scans")).unwrap();
    tradeloom_runs::spec::load_spec(&path).unwrap()
}

fn feed_spec() -> ScanDirFeedSpec {
    ScanDirFeedSpec {
        path: "scans".to_string(),
        symbol_field: "symbol".to_string(),
        price_field: "price".to_string(),
        map: None,
    }
}

fn poll(feed: &mut ScanDirFeed) -> FeedEvent {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match feed.poll(Duration::from_millis(200)).unwrap() {
            FeedPoll::Event(e) => return e,
            FeedPoll::Idle => assert!(Instant::now() < deadline, "no event within 20 s"),
            FeedPoll::Ended => panic!("a scan_dir feed never ends"),
            FeedPoll::Replayed { .. } => panic!("a scan_dir feed replays no data files"),
        }
    }
}

fn write_scan(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

#[test]
fn scans_become_rows_of_the_specs_instruments() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let options = FeedOptions {
        data_dir: dir.path().join("data"),
        ..FeedOptions::default()
    };
    let mut feed = ScanDirFeed::open(&spec, &feed_spec(), &options).unwrap();
    assert_eq!(feed.kind(), "scan_dir");
    write_scan(
        &dir.path().join("scans"),
        "scan-1.csv",
        "symbol,price,score,note\nZZZ,5,0.5,x\nBBB,abc,0.1,y\nAAA,10.257,0.9,z\n",
    );
    // The scan first (its rows trade at once), then the report of its bad row.
    let FeedEvent::Scan(scan) = poll(&mut feed) else {
        panic!("expected a scan")
    };
    let malformed = poll(&mut feed);
    let FeedEvent::Malformed { reason } = malformed else {
        panic!("expected the bad BBB row: {malformed:?}");
    };
    assert_eq!(
        reason,
        "scan 1 (scan-1.csv): BBB: `price` must be a number, got `abc`"
    );
    assert_eq!((scan.seq, scan.source.as_str()), (1, "scan-1.csv"));
    assert_eq!(scan.rows.len(), 1, "ZZZ is not traded, BBB is malformed");
    let row = &scan.rows[0];
    assert_eq!(row.bar.instrument, spec.instruments[0].id);
    assert_eq!(row.bar.close.to_string(), "10.26");
    assert_eq!(row.bar.open, row.bar.close);
    assert_eq!(row.bar.ts, scan.ts);
    assert_eq!(row.fields.get("score"), Some(0.9));
    assert_eq!(row.fields.get("price"), Some(10.257));
    assert_eq!(row.fields.get("note"), None);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(feed.stats().unknown_symbols.load(Relaxed), 1);
    assert_eq!(feed.stats().malformed_rows.load(Relaxed), 1);
    // The map is mirrored where `tradeloom map show` reads it, under the spec's name (written
    // just after subscribers are woken).
    let mirror = dir.path().join("data/maps/scan-trader.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mirror.is_file() {
        assert!(
            Instant::now() < deadline,
            "{} never written",
            mirror.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_fresh_feed_starts_after_the_latest_scan_and_a_resumed_one_after_its_last() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let options = FeedOptions {
        data_dir: dir.path().join("data"),
        ..FeedOptions::default()
    };
    let scans = dir.path().join("scans");
    {
        let mut feed = ScanDirFeed::open(&spec, &feed_spec(), &options).unwrap();
        write_scan(&scans, "scan-1.csv", "symbol,price\nAAA,1\n");
        write_scan(&scans, "scan-2.csv", "symbol,price\nAAA,2\n");
        let mut seqs = Vec::new();
        while seqs.len() < 2 {
            if let FeedEvent::Scan(s) = poll(&mut feed) {
                seqs.push(s.seq);
            }
        }
        assert_eq!(seqs, vec![1, 2]);
    }
    // A fresh feed: scan 2 is old news.
    let mut feed = ScanDirFeed::open(&spec, &feed_spec(), &options).unwrap();
    assert!(matches!(
        feed.poll(Duration::from_millis(300)).unwrap(),
        FeedPoll::Idle
    ));
    drop(feed);
    // A run resumed after scan 1 gets scan 2 (the map's latest), then the new scan 3.
    let mut feed = ScanDirFeed::open(&spec, &feed_spec(), &options).unwrap();
    feed.resume_after(FeedPosition {
        last_bar_ts: None,
        last_scan_seq: Some(1),
    });
    let FeedEvent::Scan(s) = poll(&mut feed) else {
        panic!()
    };
    assert_eq!((s.seq, s.source.as_str()), (2, "scan-2.csv"));
    write_scan(&scans, "scan-3.csv", "symbol,price\nAAA,3\n");
    let FeedEvent::Scan(s) = poll(&mut feed) else {
        panic!()
    };
    assert_eq!((s.seq, s.source.as_str()), (3, "scan-3.csv"));
}

#[test]
fn bad_feed_fields_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let options = FeedOptions {
        data_dir: dir.path().join("data"),
        ..FeedOptions::default()
    };
    let mut bad = feed_spec();
    bad.path = "missing".to_string();
    let err = ScanDirFeed::open(&spec, &bad, &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("feed.path:") && err.contains("missing"),
        "{err}"
    );
    let mut bad = feed_spec();
    bad.map = Some("a b".to_string());
    let err = ScanDirFeed::open(&spec, &bad, &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("feed.map: invalid map name `a b`"), "{err}");
}
