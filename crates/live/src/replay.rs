//! [`ReplayFeed`]: a paper run's `feed: {type: replay, speed: …}` — the spec's `data:` files,
//! merged in time order, played on the wall clock. At `speed: N` the wait between two bars is
//! the gap between their timestamps divided by N (1 = real time); at `speed: max` there is no
//! waiting. A poll never blocks longer than its `wait`.
//!
//! Its clock (against which the run measures the age of data, `max_data_age`) is the replayed
//! time: the first bar's time plus the wall time since it was delivered, times the speed; at
//! `speed: max` the time of the last bar delivered, so data is never stale.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use tradeloom_core::{Bar, UnixNanos};
use tradeloom_data::{MergedBars, open_bars};
use tradeloom_runs::RunError;
use tradeloom_runs::paper::{
    Feed, FeedError, FeedEvent, FeedPoll, FeedPosition, ReplayFeedSpec, ReplaySpeed,
};
use tradeloom_runs::spec::ResolvedSpec;

/// Bars parsed per chunk on the reader thread.
const CHUNK: usize = 1024;

/// What the reader thread sends.
enum Chunk {
    /// The next bars, in time order.
    Bars(Vec<Bar>),
    /// Reading failed; nothing follows.
    Error(String),
    /// Every file was read to the end: the hashes of their bytes (see [`Feed::data_hashes`]).
    End(Vec<Option<(String, u64)>>),
}

/// The spec's bar files played on the wall clock (parsed ahead on a reader thread of their
/// own, as a backtest's are).
pub struct ReplayFeed {
    chunks: Receiver<Chunk>,
    ready: VecDeque<Bar>,
    speed: ReplaySpeed,
    /// The next bar, read but not delivered yet.
    next: Option<Bar>,
    /// Bars at or before this time are skipped (a resumed run).
    skip_through: Option<UnixNanos>,
    /// The wall time and data time of the first bar delivered (the pace's origin).
    origin: Option<(Instant, UnixNanos)>,
    /// The time of the last bar delivered.
    last_ts: Option<UnixNanos>,
    ended: bool,
    /// The data files' hashes, once the reader read them to the end.
    hashes: Vec<Option<(String, u64)>>,
}

impl ReplayFeed {
    /// Opens the spec's `data:` files (errors name the file).
    pub fn open(spec: &ResolvedSpec, feed: &ReplayFeedSpec) -> Result<Self, RunError> {
        let mut readers = Vec::with_capacity(spec.data.len());
        for source in &spec.data {
            let inst = &spec.instruments[source.instrument.index()];
            readers.push(open_bars(&source.path, source.format, inst)?);
        }
        Ok(Self::new(MergedBars::new(readers), feed.speed))
    }

    /// A replay of `bars` at `speed`.
    pub fn new(bars: MergedBars, speed: ReplaySpeed) -> Self {
        let (tx, chunks) = sync_channel::<Chunk>(8);
        std::thread::spawn(move || {
            let mut bars = bars;
            loop {
                let mut chunk = Vec::with_capacity(CHUNK);
                let mut error = None;
                while chunk.len() < CHUNK {
                    match bars.next() {
                        Some(Ok(bar)) => chunk.push(bar),
                        Some(Err(e)) => {
                            error = Some(e.to_string());
                            break;
                        }
                        None => break,
                    }
                }
                let last = chunk.len() < CHUNK || error.is_some();
                // A closed channel: the feed was dropped (the run ended).
                if !chunk.is_empty() && tx.send(Chunk::Bars(chunk)).is_err() {
                    return;
                }
                if let Some(e) = error {
                    let _ = tx.send(Chunk::Error(e));
                    return;
                }
                if last {
                    let hashes = bars
                        .into_readers()
                        .iter()
                        .map(|r| r.content_sha256())
                        .collect();
                    let _ = tx.send(Chunk::End(hashes));
                    return;
                }
            }
        });
        Self {
            chunks,
            ready: VecDeque::new(),
            speed,
            next: None,
            skip_through: None,
            origin: None,
            last_ts: None,
            ended: false,
            hashes: Vec::new(),
        }
    }

    /// The next bar not skipped, read ahead; `None` when the reader has none within `wait`
    /// (or none ever: then `ended`).
    fn peek(&mut self, wait: Duration) -> Result<Option<Bar>, FeedError> {
        while self.next.is_none() && !self.ended {
            if let Some(bar) = self.ready.pop_front() {
                if self.skip_through.is_some_and(|t| bar.ts <= t) {
                    continue;
                }
                self.next = Some(bar);
                continue;
            }
            match self.chunks.recv_timeout(wait) {
                Ok(Chunk::Bars(chunk)) => self.ready.extend(chunk),
                Ok(Chunk::End(hashes)) => {
                    self.hashes = hashes;
                    self.ended = true;
                }
                Ok(Chunk::Error(message)) => {
                    self.ended = true;
                    return Err(FeedError {
                        feed: "replay",
                        message,
                    });
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                // The reader thread is done.
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        Ok(self.next)
    }

    /// How long until `bar` is due (zero when it is).
    fn due_in(&self, bar: &Bar) -> Duration {
        let (ReplaySpeed::Factor(speed), Some((wall, ts))) = (self.speed, self.origin) else {
            return Duration::ZERO;
        };
        let gap_ns = bar.ts.0.saturating_sub(ts.0).max(0) as f64 / speed;
        let due = Duration::from_secs_f64((gap_ns / 1e9).min(1e9));
        due.saturating_sub(wall.elapsed())
    }
}

impl Feed for ReplayFeed {
    fn kind(&self) -> &'static str {
        "replay"
    }

    fn poll(&mut self, wait: Duration) -> Result<FeedPoll, FeedError> {
        let Some(bar) = self.peek(wait)? else {
            return Ok(if self.ended {
                FeedPoll::Ended
            } else {
                FeedPoll::Idle
            });
        };
        let due = self.due_in(&bar);
        if due > wait {
            std::thread::sleep(wait);
            return Ok(FeedPoll::Idle);
        }
        if !due.is_zero() {
            std::thread::sleep(due);
        }
        self.next = None;
        if self.origin.is_none() {
            self.origin = Some((Instant::now(), bar.ts));
        }
        self.last_ts = Some(bar.ts);
        Ok(FeedPoll::Event(FeedEvent::Bar(bar)))
    }

    fn resume_after(&mut self, position: FeedPosition) {
        self.skip_through = position.last_bar_ts;
        if let Some(bar) = self.next
            && position.last_bar_ts.is_some_and(|t| bar.ts <= t)
        {
            self.next = None;
        }
    }

    fn data_hashes(&mut self) -> Vec<Option<(String, u64)>> {
        std::mem::take(&mut self.hashes)
    }

    fn clock(&self) -> Option<UnixNanos> {
        match (self.speed, self.origin) {
            (ReplaySpeed::Max, _) | (_, None) => self.last_ts,
            (ReplaySpeed::Factor(speed), Some((wall, ts))) => {
                let elapsed = wall.elapsed().as_nanos() as f64 * speed;
                Some(UnixNanos(
                    ts.0.saturating_add(elapsed.min(i64::MAX as f64) as i64),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeloom_core::{Currency, Instrument, InstrumentId, Symbol};

    fn feed_of(csv: &str, speed: ReplaySpeed) -> (tempfile::TempDir, ReplayFeed) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        std::fs::write(&path, csv).unwrap();
        let inst = Instrument::new(
            InstrumentId(0),
            Symbol::new("ABC").unwrap(),
            "sim",
            2,
            0,
            Currency::from_code("USD").unwrap(),
        )
        .unwrap();
        let reader = open_bars(&path, None, &inst).unwrap();
        (dir, ReplayFeed::new(MergedBars::new(vec![reader]), speed))
    }

    const BARS: &str = "ts,open,high,low,close,volume\n\
2024-01-01T00:00:00Z,10,11,9,10.5,100\n\
2024-01-01T00:00:01Z,10.5,11,10,10.75,100\n\
2024-01-01T00:00:02Z,10.75,11,10,10.25,100\n";

    fn bar_ts(poll: FeedPoll) -> Option<i64> {
        match poll {
            FeedPoll::Event(FeedEvent::Bar(b)) => Some(b.ts.0),
            _ => None,
        }
    }

    #[test]
    fn at_max_speed_every_bar_comes_at_once_then_the_end() {
        let (_dir, mut feed) = feed_of(BARS, ReplaySpeed::Max);
        // Long enough for the reader thread; at max speed a ready bar comes at once.
        let zero = Duration::from_secs(5);
        let a = bar_ts(feed.poll(zero).unwrap()).unwrap();
        let b = bar_ts(feed.poll(zero).unwrap()).unwrap();
        assert_eq!(b - a, 1_000_000_000);
        assert_eq!(feed.clock(), Some(UnixNanos(b)), "never stale at max speed");
        assert!(bar_ts(feed.poll(zero).unwrap()).is_some());
        assert!(matches!(feed.poll(zero).unwrap(), FeedPoll::Ended));
        // Read to the end: the file's bytes were hashed on the way.
        let hashes = feed.data_hashes();
        let digest = tradeloom_runs::hashing::sha256_bytes(BARS.as_bytes());
        assert_eq!(hashes, vec![Some((digest, BARS.len() as u64))]);
    }

    #[test]
    fn at_real_time_a_bar_waits_for_its_time_and_a_poll_never_blocks_longer_than_asked() {
        let (_dir, mut feed) = feed_of(BARS, ReplaySpeed::Factor(1.0));
        assert!(bar_ts(feed.poll(Duration::from_secs(5)).unwrap()).is_some());
        let asked = Instant::now();
        // The next bar is a second away: a 50 ms poll comes back idle after about 50 ms.
        assert!(matches!(
            feed.poll(Duration::from_millis(50)).unwrap(),
            FeedPoll::Idle
        ));
        assert!(asked.elapsed() < Duration::from_millis(900));
        // Waiting long enough delivers it, no earlier than its time.
        let b = bar_ts(feed.poll(Duration::from_secs(2)).unwrap()).unwrap();
        assert!(asked.elapsed() >= Duration::from_millis(900));
        assert_eq!(b, 1_704_067_201_000_000_000);
    }

    #[test]
    fn resuming_skips_what_was_processed() {
        let (_dir, mut feed) = feed_of(BARS, ReplaySpeed::Max);
        feed.resume_after(FeedPosition {
            last_bar_ts: Some(UnixNanos(1_704_067_201_000_000_000)),
            last_scan_seq: None,
        });
        let ts = bar_ts(feed.poll(Duration::from_secs(5)).unwrap()).unwrap();
        assert_eq!(ts, 1_704_067_202_000_000_000);
        assert!(matches!(
            feed.poll(Duration::from_secs(5)).unwrap(),
            FeedPoll::Ended
        ));
    }
}
