//! [`ReplayFeed`]: a paper run's `feed: {type: replay, speed: …}` — the spec's `data:` files,
//! merged in time order, played on the wall clock. At `speed: N` the wait between two bars is
//! the gap between their timestamps divided by N (1 = real time); at `speed: max` there is no
//! waiting. A poll never blocks longer than its `wait`.
//!
//! Its clock (against which the run measures the age of data, `max_data_age`) is the replayed
//! time: the first bar's time plus the wall time since it was delivered, times the speed; at
//! `speed: max` the time of the last bar delivered, so data is never stale.
//!
//! Bars are delivered as [`FeedPoll::Replayed`], numbered in the order of
//! [`tradeloom_runs::paper::replay_bars`] (a resumed run reads them back from the files): at
//! `speed: max` every bar parsed ahead at once (up to a chunk of 1,024), otherwise one at a
//! time, when it is due.

use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use tradeloom_core::{Bar, UnixNanos};
use tradeloom_data::MergedBars;
use tradeloom_runs::RunError;
use tradeloom_runs::paper::{
    Feed, FeedError, FeedPoll, FeedPosition, ReplayFeedSpec, ReplaySpeed, replay_bars,
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
    /// Bars parsed and not delivered yet: `ready[at..]`.
    ready: Vec<Bar>,
    at: usize,
    /// The number of `ready[at]` in the replayed sequence (bars skipped count too).
    index: u64,
    speed: ReplaySpeed,
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
        Ok(Self::new(replay_bars(spec)?, feed.speed))
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
            ready: Vec::new(),
            at: 0,
            index: 0,
            speed,
            skip_through: None,
            origin: None,
            last_ts: None,
            ended: false,
            hashes: Vec::new(),
        }
    }

    /// The next bar not skipped, read ahead (at `ready[at]`); `None` when the reader has none
    /// within `wait` (or none ever: then `ended`).
    fn peek(&mut self, wait: Duration) -> Result<Option<Bar>, FeedError> {
        while !self.ended {
            if let Some(bar) = self.ready.get(self.at) {
                if self.skip_through.is_some_and(|t| bar.ts <= t) {
                    self.at += 1;
                    self.index += 1;
                    continue;
                }
                return Ok(Some(*bar));
            }
            match self.chunks.recv_timeout(wait) {
                Ok(Chunk::Bars(chunk)) => {
                    self.ready = chunk;
                    self.at = 0;
                }
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
        Ok(None)
    }

    /// Delivers `ready[at..end]`.
    fn deliver(&mut self, end: usize) -> FeedPoll {
        let bars = if self.at == 0 && end == self.ready.len() {
            std::mem::take(&mut self.ready)
        } else {
            self.ready[self.at..end].to_vec()
        };
        let from = self.index;
        self.index += bars.len() as u64;
        self.at = end.min(self.ready.len());
        if self.origin.is_none()
            && let Some(first) = bars.first()
        {
            self.origin = Some((Instant::now(), first.ts));
        }
        self.last_ts = bars.last().map(|b| b.ts);
        FeedPoll::Replayed { from, bars }
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
        if matches!(self.speed, ReplaySpeed::Max) {
            // Every bar parsed is due; those to skip come first (the data is in time order),
            // but a bar to skip further on still ends the batch (its numbers stay contiguous).
            let rest = &self.ready[self.at..];
            let end = match self.skip_through {
                Some(t) => rest.iter().position(|b| b.ts <= t).unwrap_or(rest.len()),
                None => rest.len(),
            };
            return Ok(self.deliver(self.at + end));
        }
        let due = self.due_in(&bar);
        if due > wait {
            std::thread::sleep(wait);
            return Ok(FeedPoll::Idle);
        }
        if !due.is_zero() {
            std::thread::sleep(due);
        }
        Ok(self.deliver(self.at + 1))
    }

    fn resume_after(&mut self, position: FeedPosition) {
        self.skip_through = position.last_bar_ts;
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
    use tradeloom_data::open_bars;

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

    /// The number of the first bar and the bars' times.
    fn replayed(poll: FeedPoll) -> Option<(u64, Vec<i64>)> {
        match poll {
            FeedPoll::Replayed { from, bars } => {
                Some((from, bars.iter().map(|b| b.ts.0).collect()))
            }
            _ => None,
        }
    }

    #[test]
    fn at_max_speed_every_bar_parsed_comes_at_once_then_the_end() {
        let (_dir, mut feed) = feed_of(BARS, ReplaySpeed::Max);
        // Long enough for the reader thread; at max speed the ready bars come together.
        let wait = Duration::from_secs(5);
        let (from, ts) = replayed(feed.poll(wait).unwrap()).unwrap();
        assert_eq!(from, 0);
        assert_eq!(ts.len(), 3);
        assert_eq!(ts[1] - ts[0], 1_000_000_000);
        assert_eq!(
            feed.clock(),
            Some(UnixNanos(ts[2])),
            "never stale at max speed"
        );
        assert!(matches!(feed.poll(wait).unwrap(), FeedPoll::Ended));
        // Read to the end: the file's bytes were hashed on the way.
        let hashes = feed.data_hashes();
        let digest = tradeloom_runs::hashing::sha256_bytes(BARS.as_bytes());
        assert_eq!(hashes, vec![Some((digest, BARS.len() as u64))]);
    }

    #[test]
    fn at_real_time_a_bar_waits_for_its_time_and_a_poll_never_blocks_longer_than_asked() {
        let (_dir, mut feed) = feed_of(BARS, ReplaySpeed::Factor(1.0));
        let (from, ts) = replayed(feed.poll(Duration::from_secs(5)).unwrap()).unwrap();
        assert_eq!((from, ts.len()), (0, 1), "one bar at a time");
        let asked = Instant::now();
        // The next bar is a second away: a 50 ms poll comes back idle after about 50 ms.
        assert!(matches!(
            feed.poll(Duration::from_millis(50)).unwrap(),
            FeedPoll::Idle
        ));
        assert!(asked.elapsed() < Duration::from_millis(900));
        // Waiting long enough delivers it, no earlier than its time.
        let (from, ts) = replayed(feed.poll(Duration::from_secs(2)).unwrap()).unwrap();
        assert!(asked.elapsed() >= Duration::from_millis(900));
        assert_eq!((from, ts), (1, vec![1_704_067_201_000_000_000]));
    }

    #[test]
    fn resuming_skips_what_was_processed_and_keeps_counting() {
        let (_dir, mut feed) = feed_of(BARS, ReplaySpeed::Max);
        feed.resume_after(FeedPosition {
            last_bar_ts: Some(UnixNanos(1_704_067_201_000_000_000)),
            last_scan_seq: None,
        });
        let replayed = replayed(feed.poll(Duration::from_secs(5)).unwrap()).unwrap();
        assert_eq!(replayed, (2, vec![1_704_067_202_000_000_000]));
        assert!(matches!(
            feed.poll(Duration::from_secs(5)).unwrap(),
            FeedPoll::Ended
        ));
    }
}
