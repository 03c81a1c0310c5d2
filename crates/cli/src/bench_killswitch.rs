//! `tradeloom bench killswitch`: the figures of the kill switch, printed, never asserted —
//! except the one that is a guarantee: no order let through by a check that started after
//! `engage` returned (exit 1 if any was).
//!
//! * overhead: engine bars/s over synthetic 1-minute bars traded by `sma_cross` 20/50, without
//!   a gate and with the data dir's kill switch as the gate (a cached check every bar, a `stat`
//!   of each scope's file before each order, a read when it changed); the median of several
//!   passes each;
//! * engage → last accepted order: a long backtest on one thread (`sma_cross` 2/3, an order
//!   every few bars), `KillSwitch::engage` on another at a random point; the time between the
//!   last accepted order and `engage` returning; the orders let through by a check that began
//!   after it returned (must be none) and those decided before it returned but reported
//!   accepted after (in flight).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use tradeloom_core::{
    Bar, Currency, Decimal, Event, Instrument, InstrumentId, Money, Symbol, UnixNanos,
};
use tradeloom_data::{SynthSpec, synth_bars};
use tradeloom_engine::sink::Sink;
use tradeloom_engine::strategies::CrossParams;
use tradeloom_engine::{
    Engine, EngineConfig, FillModel, KillSwitchGate, NullSink, StrategyConfig, build_strategy,
};
use tradeloom_runs::kill_switch::RunGate;
use tradeloom_safety::{KillSwitch, Scope};

fn instrument() -> Result<Instrument> {
    Instrument::new(
        InstrumentId(0),
        Symbol::new("SYN").map_err(anyhow::Error::msg)?,
        "sim",
        2,
        0,
        Currency::USD,
    )
    .map_err(anyhow::Error::msg)
}

fn engine(fast: u32, slow: u32) -> Result<Engine> {
    let inst = instrument()?;
    let cash = Money::parse("1000000000", Currency::USD).map_err(anyhow::Error::msg)?;
    let mut config = EngineConfig::frictionless(FillModel::BarClose, cash);
    config.strategy_name = "sma_cross".to_string();
    let strategy = StrategyConfig::SmaCross(CrossParams {
        fast,
        slow,
        quantity: Decimal::from_int(1),
        long_only: false,
    });
    let strategies = vec![build_strategy(&strategy, &inst).map_err(anyhow::Error::msg)?];
    Ok(Engine::new(config, vec![inst], strategies)?)
}

fn bars(n: u64) -> Vec<Bar> {
    synth_bars(&SynthSpec {
        symbol: "SYN".to_string(),
        bars: n,
        timeframe: "1m".parse().unwrap_or_default(),
        seed: 11,
        ..SynthSpec::default()
    })
    .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Bars/s of one pass, with the data dir's kill switch as the gate when `gate` is given.
fn pass(base: &[Bar], gate: Option<&std::path::Path>) -> Result<(f64, u64)> {
    let mut engine = engine(20, 50)?;
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
struct Race {
    /// µs from the last order accepted before engage returned to its return.
    gap_us: f64,
    /// Orders let through by a check that started after engage returned (must be 0).
    checked_after: usize,
    /// Orders decided before engage returned whose acceptance was reported after it.
    in_flight: usize,
    accepted_before: usize,
    engage_us: f64,
}

fn race(base: &[Bar], delay: Duration) -> Result<Race> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_path_buf();
    let accepted = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
    let passed = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let accepted = Arc::clone(&accepted);
        let passed = Arc::clone(&passed);
        let stop = Arc::clone(&stop);
        let base = base.to_vec();
        let data_dir = data_dir.clone();
        std::thread::spawn(move || -> Result<()> {
            let mut engine = engine(2, 3)?;
            engine.set_kill_switch_gate(Box::new(TimedGate {
                inner: RunGate::new(KillSwitch::open(&data_dir)?, "race".to_string()),
                passed,
            }));
            let mut sink = Accepted(accepted);
            let span = match (base.first(), base.last()) {
                (Some(a), Some(b)) => b.ts.0 - a.ts.0 + 60_000_000_000,
                _ => bail!("no bars"),
            };
            let mut round = 0i64;
            while !stop.load(Ordering::Relaxed) {
                for bar in &base {
                    let mut bar = *bar;
                    bar.ts = UnixNanos(bar.ts.0 + round * span);
                    engine.on_bar(&bar, &mut sink)?;
                }
                round += 1;
            }
            engine.finish(&mut sink)?;
            Ok(())
        })
    };
    std::thread::sleep(delay);
    let ks = KillSwitch::open(&data_dir)?;
    let asked = Instant::now();
    ks.engage(&Scope::Global, "bench race", "bench", false)?;
    let returned = Instant::now();
    // Let the engine run on well past the cache interval.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    match runner.join() {
        Ok(r) => r?,
        Err(_) => bail!("the engine thread panicked"),
    }
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

pub fn killswitch(bars_n: u64, repetitions: usize, json_out: bool) -> Result<ExitCode> {
    let repetitions = repetitions.max(1);
    let base = bars(bars_n);
    let dir = tempfile::tempdir()?;
    let (mut plain, mut gated) = (Vec::new(), Vec::new());
    let mut orders = 0;
    for _ in 0..repetitions {
        plain.push(pass(&base, None)?.0);
        let (rate, n) = pass(&base, Some(dir.path()))?;
        gated.push(rate);
        orders = n;
    }
    let (plain, gated) = (median(plain), median(gated));
    let overhead = (plain / gated - 1.0) * 100.0;

    let race_bars = bars(200_000);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let (mut gaps, mut engages) = (Vec::new(), Vec::new());
    let mut after_total = 0;
    let mut in_flight_total = 0;
    let mut before_total = 0;
    for i in 0..repetitions {
        // 50–250 ms into the run, a different point each time.
        let delay = 50
            + u64::from(
                seed.wrapping_mul(2_654_435_761)
                    .wrapping_add(i as u32 * 7919)
                    % 200,
            );
        let r = race(&race_bars, Duration::from_millis(delay))?;
        gaps.push(r.gap_us);
        engages.push(r.engage_us);
        after_total += r.checked_after;
        in_flight_total += r.in_flight;
        before_total += r.accepted_before;
    }
    let (gap, engage_us) = (median(gaps), median(engages));
    if json_out {
        println!(
            "{}",
            json!({
                "bars": bars_n,
                "repetitions": repetitions,
                "orders_per_pass": orders,
                "bars_per_s_without_gate": plain,
                "bars_per_s_with_gate": gated,
                "overhead_pct": overhead,
                "last_accepted_before_engage_returned_us": gap,
                "engage_us": engage_us,
                "orders_accepted_before_engage": before_total,
                "orders_accepted_after_engage": after_total,
                "orders_in_flight_at_engage": in_flight_total,
            })
        );
    } else {
        println!(
            "kill switch, {bars_n} bars × {repetitions} (medians), sma_cross 20/50 ({orders} orders per pass):"
        );
        println!("  engine without gate        {:>12.0} bars/s", plain);
        println!(
            "  engine with kill switch    {:>12.0} bars/s (cached check per bar, stat per order)",
            gated
        );
        println!("  overhead                   {:>12.2} %", overhead);
        println!("engage race, sma_cross 2/3, {repetitions} runs engaged 50–250 ms in:");
        println!("  engage call                {:>12.0} µs", engage_us);
        println!(
            "  last accepted order → engage returned {:>8.0} µs before",
            gap
        );
        println!("  orders accepted before     {:>12}", before_total);
        println!(
            "  orders accepted after      {:>12} (checked after engage returned; must be 0)",
            after_total
        );
        println!(
            "  orders in flight at engage {:>12} (checked before it returned, reported after)",
            in_flight_total
        );
    }
    if after_total > 0 {
        eprintln!("error: {after_total} orders were accepted after `engage` returned");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
