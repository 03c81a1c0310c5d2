//! The engine alone: `sma_cross` (10/30, quantity 1) over synthetic 1-minute bars into a
//! [`NullSink`]. The bars are generated once, outside the timed loop, by a seeded geometric
//! random walk, so every run measures the same work.
//!
//! `cargo bench -p tradeloom-engine --bench engine`; criterion reports elements/s = bars/s.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tradeloom_core::{
    Bar, Currency, Decimal, Instrument, InstrumentId, Money, Price, Quantity, Symbol, UnixNanos,
};
use tradeloom_engine::strategies::CrossParams;
use tradeloom_engine::{
    Engine, EngineConfig, FillModel, NullSink, StrategyConfig, Summary, build_strategy,
};

/// splitmix64: a tiny, seedable generator; the engine itself takes no randomness.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Prices at precision 2 are multiples of 10^7 raw units.
const CENT: i64 = 10_000_000;

/// `n` one-minute bars from 2020-01-01: a geometric random walk (±0.1 % per minute) with
/// valid OHLC at precision 2 and every price at least one cent.
fn synthetic_bars(n: usize, seed: u64) -> Vec<Bar> {
    let mut rng = SplitMix64(seed);
    let start = UnixNanos::from_date(2020, 1, 1).map_or(0, |t| t.0);
    let minute = 60 * 1_000_000_000;
    let mut close = 100.0_f64;
    let cents = |x: f64| ((x * 100.0).round() as i64).max(1);
    (0..n)
        .map(|k| {
            let open = close;
            close = open * (1.0 + (rng.next_f64() - 0.5) * 0.002);
            let (o, c) = (cents(open), cents(close));
            let h = o.max(c) + cents(open * rng.next_f64() * 0.0005) - 1;
            let l = (o.min(c) - cents(open * rng.next_f64() * 0.0005) + 1).max(1);
            let p = |c: i64| Price::from_raw(c * CENT, 2);
            Bar {
                instrument: InstrumentId(0),
                ts: UnixNanos(start + k as i64 * minute),
                open: p(o),
                high: p(h),
                low: p(l),
                close: p(c),
                volume: Quantity::from_int(1, 0),
            }
        })
        .collect()
}

fn instrument() -> Instrument {
    // Invariant: a valid literal symbol and precisions below the maximum.
    #[allow(clippy::unwrap_used)]
    Instrument::new(
        InstrumentId(0),
        Symbol::new("SYN").unwrap(),
        "sim",
        2,
        0,
        Currency::USD,
    )
    .unwrap()
}

#[allow(clippy::unwrap_used)]
fn run(bars: &[Bar]) -> Summary {
    let inst = instrument();
    let strategy = StrategyConfig::SmaCross(CrossParams {
        fast: 10,
        slow: 30,
        quantity: Decimal::from_int(1),
        long_only: false,
    });
    let strategies = vec![build_strategy(&strategy, &inst).unwrap()];
    let cash = Money::parse("1000000", Currency::USD).unwrap();
    let config = EngineConfig::frictionless(FillModel::NextOpen, cash);
    let mut engine = Engine::new(config, vec![inst], strategies).unwrap();
    let mut sink = NullSink;
    for bar in bars {
        engine.on_bar(bar, &mut sink).unwrap();
    }
    engine.finish(&mut sink).unwrap()
}

fn bench_sma_cross(c: &mut Criterion, n: usize, sample_size: usize) {
    let bars = synthetic_bars(n, 42);
    // A run that never trades would measure nothing but the loop.
    let fills = run(&bars).metrics.fills;
    assert!(fills > n as u64 / 100, "only {fills} fills over {n} bars");
    let mut group = c.benchmark_group(format!("engine_{}", n));
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(sample_size);
    group.bench_with_input(BenchmarkId::new("sma_cross_10_30", n), &bars, |b, bars| {
        b.iter(|| black_box(run(black_box(bars))));
    });
    group.finish();
}

fn engine_1m(c: &mut Criterion) {
    bench_sma_cross(c, 1_000_000, 20);
}

fn engine_10m(c: &mut Criterion) {
    bench_sma_cross(c, 10_000_000, 10);
}

criterion_group!(benches, engine_1m, engine_10m);
criterion_main!(benches);
