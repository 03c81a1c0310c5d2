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
/// `gate` as the gate when given; the orders placed; and this process's CPU ns per bar.
pub fn gate_pass(base: &[Bar], gate: Option<&Path>) -> Result<(f64, u64, f64), BenchError> {
    let mut engine = sma_engine(20, 50, FillModel::BarClose, "1000000000")?;
    if let Some(dir) = gate {
        engine.set_kill_switch_gate(Box::new(RunGate::new(
            KillSwitch::open(dir)?,
            "bench".to_string(),
        )));
    }
    let mut sink = NullSink;
    let cpu = super::peer::self_cpu_seconds();
    let started = Instant::now();
    for bar in base {
        engine.on_bar(bar, &mut sink)?;
    }
    let summary = engine.finish(&mut sink)?;
    let secs = started.elapsed().as_secs_f64();
    let cpu_ns = (super::peer::self_cpu_seconds() - cpu) * 1e9 / base.len() as f64;
    Ok((base.len() as f64 / secs, summary.metrics.orders, cpu_ns))
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

    fn epoch(&self) -> Option<tradeloom_engine::GateEpoch> {
        self.inner.epoch()
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

/// The seed of the synthetic bars of [`kill_switch_bench`].
const SEED: u64 = 11;

/// The figures of `tradeloom bench killswitch` (medians over the repetitions).
#[derive(Clone, Debug)]
pub struct KillSwitchBench {
    pub bars: u64,
    pub repetitions: usize,
    pub orders_per_pass: u64,
    pub bars_per_s_without_gate: f64,
    pub bars_per_s_with_gate: f64,
    pub overhead_pct: f64,
    /// This process's CPU time per bar without and with the gate (steadier than wall time on a
    /// shared machine).
    pub cpu_ns_per_bar_without_gate: f64,
    pub cpu_ns_per_bar_with_gate: f64,
    /// Last accepted order → `engage` returned, µs.
    pub gap_us: f64,
    pub engage_us: f64,
    pub accepted_before: usize,
    /// Orders let through by a check that began after `engage` returned: must be 0.
    pub accepted_after: usize,
    pub in_flight: usize,
}

fn work_dir(path: std::path::PathBuf) -> Result<std::path::PathBuf, BenchError> {
    std::fs::create_dir_all(&path).map_err(|source| BenchError::Io {
        action: "creating",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// `repetitions` (at least 1) gate passes over `bars` bars and engage races, in fresh folders
/// under `work`; `seed` picks the points (50–250 ms into a run) where `engage` is called.
pub fn kill_switch_bench(
    bars: u64,
    repetitions: usize,
    work: &Path,
    seed: u32,
) -> Result<KillSwitchBench, BenchError> {
    let repetitions = repetitions.max(1);
    let base = super::bars(bars, SEED);
    let gate_dir = work_dir(work.join("gate"))?;
    let (mut plain, mut gated) = (Vec::new(), Vec::new());
    let (mut plain_cpu, mut gated_cpu) = (Vec::new(), Vec::new());
    let mut orders = 0;
    for _ in 0..repetitions {
        let (rate, _, cpu) = gate_pass(&base, None)?;
        plain.push(rate);
        plain_cpu.push(cpu);
        let (rate, n, cpu) = gate_pass(&base, Some(&gate_dir))?;
        gated.push(rate);
        gated_cpu.push(cpu);
        orders = n;
    }
    let (plain, gated) = (super::median(plain), super::median(gated));
    let (plain_cpu, gated_cpu) = (super::median(plain_cpu), super::median(gated_cpu));
    let race_bars = super::bars(200_000, SEED);
    let (mut gaps, mut engages) = (Vec::new(), Vec::new());
    let (mut after, mut in_flight, mut before) = (0, 0, 0);
    for i in 0..repetitions {
        // 50–250 ms into the run, a different point each time.
        let delay = 50
            + u64::from(
                seed.wrapping_mul(2_654_435_761)
                    .wrapping_add(i as u32 * 7919)
                    % 200,
            );
        let race_dir = work_dir(work.join(format!("race-{i}")))?;
        let r = race(&race_bars, &race_dir, Duration::from_millis(delay))?;
        gaps.push(r.gap_us);
        engages.push(r.engage_us);
        after += r.checked_after;
        in_flight += r.in_flight;
        before += r.accepted_before;
    }
    Ok(KillSwitchBench {
        bars,
        repetitions,
        orders_per_pass: orders,
        bars_per_s_without_gate: plain,
        bars_per_s_with_gate: gated,
        overhead_pct: (plain / gated - 1.0) * 100.0,
        cpu_ns_per_bar_without_gate: plain_cpu,
        cpu_ns_per_bar_with_gate: gated_cpu,
        gap_us: super::median(gaps),
        engage_us: super::median(engages),
        accepted_before: before,
        accepted_after: after,
        in_flight,
    })
}

impl KillSwitchBench {
    /// The figures as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "bars": self.bars,
            "repetitions": self.repetitions,
            "orders_per_pass": self.orders_per_pass,
            "bars_per_s_without_gate": self.bars_per_s_without_gate,
            "bars_per_s_with_gate": self.bars_per_s_with_gate,
            "overhead_pct": self.overhead_pct,
            "cpu_ns_per_bar_without_gate": self.cpu_ns_per_bar_without_gate,
            "cpu_ns_per_bar_with_gate": self.cpu_ns_per_bar_with_gate,
            "cpu_overhead_pct": (self.cpu_ns_per_bar_with_gate / self.cpu_ns_per_bar_without_gate - 1.0) * 100.0,
            "last_accepted_before_engage_returned_us": self.gap_us,
            "engage_us": self.engage_us,
            "orders_accepted_before_engage": self.accepted_before,
            "orders_accepted_after_engage": self.accepted_after,
            "orders_in_flight_at_engage": self.in_flight,
        })
    }

    /// The figures as text, one per line.
    pub fn text(&self) -> String {
        let (bars_n, repetitions, orders) = (self.bars, self.repetitions, self.orders_per_pass);
        let mut out = format!(
            "kill switch, {bars_n} bars × {repetitions} (medians), sma_cross 20/50 ({orders} orders per pass):\n"
        );
        out.push_str(&format!(
            "  engine without gate        {:>12.0} bars/s\n",
            self.bars_per_s_without_gate
        ));
        out.push_str(&format!(
            "  engine with kill switch    {:>12.0} bars/s (one atomic load of the shared generation per bar and per order)\n",
            self.bars_per_s_with_gate
        ));
        out.push_str(&format!(
            "  overhead                   {:>12.2} %\n",
            self.overhead_pct
        ));
        out.push_str(&format!(
            "  CPU per bar                {:>12.1} ns without, {:.1} ns with the gate ({:+.2} %)\n",
            self.cpu_ns_per_bar_without_gate,
            self.cpu_ns_per_bar_with_gate,
            (self.cpu_ns_per_bar_with_gate / self.cpu_ns_per_bar_without_gate - 1.0) * 100.0
        ));
        out.push_str(&format!(
            "engage race, sma_cross 2/3, {repetitions} runs engaged 50–250 ms in:\n"
        ));
        out.push_str(&format!(
            "  engage call                {:>12.0} µs\n",
            self.engage_us
        ));
        out.push_str(&format!(
            "  last accepted order → engage returned {:>8.0} µs before\n",
            self.gap_us
        ));
        out.push_str(&format!(
            "  orders accepted before     {:>12}\n",
            self.accepted_before
        ));
        out.push_str(&format!(
            "  orders accepted after      {:>12} (checked after engage returned; must be 0)\n",
            self.accepted_after
        ));
        out.push_str(&format!(
            "  orders in flight at engage {:>12} (checked before it returned, reported after)\n",
            self.in_flight
        ));
        out
    }
}
