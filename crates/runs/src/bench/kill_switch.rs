//! The kill switch gate's cost per bar, and the race between `engage` and a running engine.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tradeloom_core::{Bar, Event};
use tradeloom_engine::sink::Sink;
use tradeloom_engine::{FillModel, KillSwitchGate, NullSink};
use tradeloom_safety::{KillSwitch, Scope};

use super::{BenchError, replay_span, shifted, sma_engine};
use crate::kill_switch::RunGate;

/// Bars/s of one pass of `sma_cross` 20/50 over `base`, with the kill switch of the data dir
/// `gate` as the gate when given; and the orders placed.
pub fn gate_pass(base: &[Bar], gate: Option<&Path>) -> Result<(f64, u64), BenchError> {
    let mut engine = sma_engine(20, 50, FillModel::BarClose, "1000000000")?;
    if let Some(dir) = gate {
        engine.set_kill_switch_gate(Box::new(RunGate::new(
            KillSwitch::open(dir)?,
            "bench".to_string(),
        )));
    }
    let mut sink = NullSink;
    let started = Instant::now();
    for bar in base {
        engine.on_bar(bar, &mut sink)?;
    }
    let summary = engine.finish(&mut sink)?;
    let secs = started.elapsed().as_secs_f64();
    Ok((base.len() as f64 / secs, summary.metrics.orders))
}

/// Wall time of every accepted order.
struct Accepted(Arc<Mutex<Vec<Instant>>>);

impl Sink for Accepted {
    fn on_event(&mut self, event: &Event) {
        if let Event::OrderAccepted { .. } = event
            && let Ok(mut v) = self.0.lock()
        {
            v.push(Instant::now());
        }
    }
}

/// The run's gate, recording when each pre-acceptance check that let an order through started:
/// the guarantee is about checks, since an order decided by a check that began before `engage`
/// returned can still be reported accepted a few microseconds after.
struct TimedGate {
    inner: RunGate,
    passed: Arc<Mutex<Vec<Instant>>>,
}

impl KillSwitchGate for TimedGate {
    fn engaged(&mut self) -> Option<&str> {
        self.inner.engaged()
    }

    fn engaged_now(&mut self) -> Option<&str> {
        let started = Instant::now();
        let answer = self.inner.engaged_now();
        if answer.is_none()
            && let Ok(mut v) = self.passed.lock()
        {
            v.push(started);
        }
        answer
    }

    fn flatten(&self) -> bool {
        self.inner.flatten()
    }
}

/// One engage race.
pub struct Race {
    /// µs from the last order accepted before engage returned to its return.
    pub gap_us: f64,
    /// Orders let through by a check that started after engage returned (must be 0).
    pub checked_after: usize,
    /// Orders decided before engage returned whose acceptance was reported after it.
    pub in_flight: usize,
    pub accepted_before: usize,
    /// How long the `engage` call took, µs.
    pub engage_us: f64,
}

/// Runs `sma_cross` 2/3 (an order every few bars) over `base` replayed on another thread with
/// the kill switch of `data_dir` (a fresh folder) as its gate, engages it globally after
/// `delay`, and lets the engine run on for 200 ms.
pub fn race(base: &[Bar], data_dir: &Path, delay: Duration) -> Result<Race, BenchError> {
    let accepted = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
    let passed = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let accepted = Arc::clone(&accepted);
        let passed = Arc::clone(&passed);
        let stop = Arc::clone(&stop);
        let base = base.to_vec();
        let data_dir = data_dir.to_path_buf();
        std::thread::spawn(move || -> Result<(), BenchError> {
            let mut engine = sma_engine(2, 3, FillModel::BarClose, "1000000000")?;
            engine.set_kill_switch_gate(Box::new(TimedGate {
                inner: RunGate::new(KillSwitch::open(&data_dir)?, "race".to_string()),
                passed,
            }));
            let mut sink = Accepted(accepted);
            let span = replay_span(&base)?;
            let mut round = 0i64;
            while !stop.load(Ordering::Relaxed) {
                for bar in &base {
                    engine.on_bar(&shifted(bar, round, span), &mut sink)?;
                }
                round += 1;
            }
            engine.finish(&mut sink)?;
            Ok(())
        })
    };
    std::thread::sleep(delay);
    let ks = KillSwitch::open(data_dir)?;
    let asked = Instant::now();
    ks.engage(&Scope::Global, "bench race", "bench", false)?;
    let returned = Instant::now();
    // Let the engine run on well past the cache interval.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    runner.join().map_err(|_| BenchError::Panicked)??;
    let times = accepted.lock().map(|v| v.clone()).unwrap_or_default();
    let checks = passed.lock().map(|v| v.clone()).unwrap_or_default();
    let before: Vec<&Instant> = times.iter().filter(|t| **t <= returned).collect();
    let gap_us = before.last().map_or(f64::NAN, |t| {
        returned.duration_since(**t).as_secs_f64() * 1e6
    });
    Ok(Race {
        gap_us,
        checked_after: checks.iter().filter(|t| **t > returned).count(),
        in_flight: times.iter().filter(|t| **t > returned).count(),
        accepted_before: before.len(),
        engage_us: returned.duration_since(asked).as_secs_f64() * 1e6,
    })
}
