//! Paper runs, live and stopped: reconciliation of a real paper run folder (written by
//! `run_paper` while it runs, then sealed), and its feed in the health monitor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tradeloom_core::Bar;
use tradeloom_ops::health::{
    Environment, FeedConfig, FeedSource, HealthConfig, QueueAccess, StoreAccess, evaluate, observe,
};
use tradeloom_ops::reconcile::{SKIPPED_RUNNING, reconcile_run};
use tradeloom_runs::SpecSource;
use tradeloom_runs::paper::{
    Feed, FeedError, FeedEvent, FeedPoll, FeedPosition, PaperOptions, StopSignal, run_paper,
};

/// The spec's bars, handed out as far as `allowed` says; idle after that (a silent market).
struct GatedFeed {
    bars: Vec<Bar>,
    next: usize,
    allowed: Arc<AtomicUsize>,
}

impl Feed for GatedFeed {
    fn kind(&self) -> &'static str {
        "websocket"
    }

    fn poll(&mut self, wait: Duration) -> Result<FeedPoll, FeedError> {
        if self.next < self.allowed.load(Ordering::SeqCst).min(self.bars.len()) {
            self.next += 1;
            return Ok(FeedPoll::Event(FeedEvent::Bar(self.bars[self.next - 1])));
        }
        std::thread::sleep(wait.min(Duration::from_millis(20)));
        Ok(FeedPoll::Idle)
    }

    fn resume_after(&mut self, position: FeedPosition) {
        if let Some(ts) = position.last_bar_ts {
            self.next = self.bars.iter().take_while(|b| b.ts <= ts).count();
        }
    }
}

fn spec_file(data_dir: &Path) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data/goog_1d.csv")
        .canonicalize()
        .unwrap();
    let spec = data_dir.join("paper.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: paper-rec\nmode: paper\nfeed: {{type: replay, speed: max}}\nsnapshot_every: 50\n\
             instruments: [{{symbol: GOOG, price_precision: 2, size_precision: 0}}]\n\
             data: [{{symbol: GOOG, path: {}}}]\n\
             strategy: {{name: sma_cross, params: {{fast: 10, slow: 20, quantity: 10}}}}\n\
             execution: {{fill_model: next_open, fee_bps: 10}}\naccount: {{initial_cash: 100000, currency: USD}}\n",
            data.display()
        ),
    )
    .unwrap();
    spec
}

/// Waits (bounded, against hangs) until `ready` holds.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let bound = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < bound, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn feed_json(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("state/feed.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn journal_lines(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .map(|t| t.matches('\n').count() as u64)
        .unwrap_or(0)
}

fn env(data_dir: &Path) -> Environment {
    Environment {
        data_dir: data_dir.to_path_buf(),
        store: StoreAccess::Location(data_dir.join("tradeloom.db").display().to_string()),
        queue: QueueAccess::ViaApi,
        registry: None,
    }
}

fn feeds(entries: Vec<(&str, FeedSource)>) -> HealthConfig {
    HealthConfig {
        feeds: entries
            .into_iter()
            .map(|(name, source)| FeedConfig {
                name: name.into(),
                source,
                stale_after: Duration::from_secs(30),
                dead_after: Duration::from_secs(120),
            })
            .collect(),
        ..HealthConfig::default()
    }
}

/// A paper run reconciles while it runs (the reports it writes on stop are skipped, its books
/// match the snapshot), its feed is fresh in the health monitor and goes stale when silent;
/// once stopped it reconciles in full, and a journal line cut short by a kill is tolerated and
/// noted. A snapshot that disagrees with the journal is caught.
#[test]
fn a_paper_run_reconciles_live_and_stopped_and_its_feed_is_watched() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path();
    let spec = tradeloom_runs::spec::load_spec(&spec_file(data_dir)).unwrap();
    let source = &spec.data[0];
    let bars: Vec<Bar> = tradeloom_data::open_bars(
        &source.path,
        source.format,
        &spec.instruments[source.instrument.index()],
    )
    .unwrap()
    .map(|b| b.unwrap())
    .collect();
    let allowed = Arc::new(AtomicUsize::new(400));
    let feed = GatedFeed {
        bars,
        next: 0,
        allowed: allowed.clone(),
    };
    let stop = StopSignal::new();
    let options = PaperOptions::new(data_dir, stop.clone());
    let runner = std::thread::spawn(move || {
        run_paper(SpecSource::Loaded(Box::new(spec)), Box::new(feed), options)
    });

    // The folder appears; wait until the 400 bars are processed and on disk.
    let runs = data_dir.join("runs");
    wait_for("the run folder", || {
        std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some())
    });
    let dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run_id = dir.file_name().unwrap().to_string_lossy().into_owned();
    wait_for("400 events in feed.json", || {
        feed_json(&dir)["events"] == 400
    });
    wait_for("the snapshot's journal lines on disk", || {
        let snapshot: serde_json::Value = std::fs::read_to_string(dir.join("state/snapshot.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        snapshot["journal_lines"]
            .as_u64()
            .is_some_and(|n| n > 0 && journal_lines(&dir) >= n)
    });

    // Live: passes, with the stop-time reports skipped.
    let live = reconcile_run(&dir).unwrap();
    assert!(live.passed, "{:?}", live.failed().collect::<Vec<_>>());
    for name in [
        "metrics",
        "equity_curve",
        "trades_csv.closed",
        "journal.run_finished",
    ] {
        let c = live.check(name).unwrap_or_else(|| panic!("no {name}"));
        assert!(c.skipped, "{name}: {c:?}");
        assert_eq!(c.observed, SKIPPED_RUNNING);
    }
    let snapshot_cash = live.check("snapshot.cash").unwrap();
    assert!(
        snapshot_cash.passed && !snapshot_cash.skipped,
        "{snapshot_cash:?}"
    );
    assert!(live.check("snapshot.position.GOOG.quantity").is_some());
    assert!(live.notes.iter().any(|n| n.contains("still running")));
    let text = tradeloom_ops::reconcile::render_text(&live, Path::new("r.json"));
    assert!(text.contains("skipped"), "{text}");

    // Health: the run's feed by id and through paper:*, fresh now, stale when silent 45 s.
    let config = feeds(vec![
        ("mine", FeedSource::Run(run_id[..8].to_string())),
        ("paper", FeedSource::PaperRuns),
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let obs = rt.block_on(observe(&config, &env(data_dir)));
    let now = chrono::Utc::now();
    let report = evaluate(&config, &obs, now);
    assert_eq!(
        report.sensors.m3_data_freshness, 1.0,
        "{:?}",
        report.details.feeds
    );
    let mine = &report.details.feeds["mine"];
    assert_eq!(mine.state, "fresh");
    assert_eq!(mine.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(mine.kind.as_deref(), Some("websocket"));
    assert_eq!(mine.events, Some(400));
    assert!(
        report
            .details
            .feeds
            .contains_key(&format!("paper:{run_id}"))
    );
    let later = evaluate(&config, &obs, now + chrono::Duration::seconds(45));
    assert_eq!(later.sensors.m3_data_freshness, 0.7);
    let mine = &later.details.feeds["mine"];
    assert_eq!(mine.state, "stale");
    assert!(
        mine.error.as_deref().unwrap().contains("no event for"),
        "{mine:?}"
    );

    // More bars, then stop: sealed, everything reconciles.
    allowed.store(600, Ordering::SeqCst);
    wait_for("600 events in feed.json", || {
        feed_json(&dir)["events"] == 600
    });
    stop.stop();
    let outcome = runner.join().unwrap().unwrap();
    assert_eq!(outcome.status, tradeloom_runs::RunStatus::Completed);
    let done = reconcile_run(&dir).unwrap();
    assert!(done.passed, "{:?}", done.failed().collect::<Vec<_>>());
    assert_eq!(
        done.skipped().count(),
        0,
        "{:?}",
        done.skipped().collect::<Vec<_>>()
    );
    assert!(done.check("metrics.fees").is_some());
    assert!(done.check("snapshot.cash").unwrap().passed);
    assert!(done.notes.is_empty(), "{:?}", done.notes);
    assert!(done.check("journal.fills").is_some());

    // Stopped: its feed is dead by id, and paper:* no longer lists it.
    let obs = rt.block_on(observe(&config, &env(data_dir)));
    let report = evaluate(&config, &obs, chrono::Utc::now());
    assert_eq!(report.details.feeds["mine"].state, "dead");
    assert!(
        report.details.feeds["mine"]
            .error
            .as_deref()
            .unwrap()
            .contains("stopped")
    );
    assert!(
        !report
            .details
            .feeds
            .contains_key(&format!("paper:{run_id}"))
    );

    // A last line cut short (killed -9 mid-write) is ignored and noted.
    let journal = dir.join("journal.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    let whole = text.clone();
    text.push_str(r#"{"seq":99999,"event":"order_fil"#);
    std::fs::write(&journal, &text).unwrap();
    let cut = reconcile_run(&dir).unwrap();
    assert!(cut.passed, "{:?}", cut.failed().collect::<Vec<_>>());
    assert!(
        cut.notes.iter().any(|n| n.contains("cut short")
            && n.starts_with(&format!("journal.jsonl:{}:", whole.lines().count() + 1))),
        "{:?}",
        cut.notes
    );
    // A cut line in the middle is still an error.
    std::fs::write(&journal, text.clone() + "\n").unwrap();
    assert!(reconcile_run(&dir).is_err());
    std::fs::write(&journal, &whole).unwrap();

    // The snapshot disagreeing with the journal's books is caught.
    let snap_path = dir.join("state/snapshot.json");
    let mut snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&snap_path).unwrap()).unwrap();
    snap["cash"] = serde_json::Value::from("1.00");
    std::fs::write(&snap_path, serde_json::to_string(&snap).unwrap()).unwrap();
    let bad = reconcile_run(&dir).unwrap();
    assert!(!bad.passed);
    assert_eq!(
        bad.failed().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["snapshot.cash"]
    );
}
