//! Loading throughput: 1M synthetic 1-minute bars from CSV and from Parquet (rows/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tradeloom_core::{Currency, Instrument, InstrumentId, Symbol};
use tradeloom_data::{SynthSpec, open_bars, write_synth};

const BARS: u64 = 1_000_000;

fn load(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = SynthSpec {
        bars: BARS,
        ..SynthSpec::default()
    };
    let inst = Instrument::new(
        InstrumentId(0),
        Symbol::new("SYN").expect("symbol"),
        "sim",
        2,
        0,
        Currency::USD,
    )
    .expect("instrument");
    let mut group = c.benchmark_group("load_1m_bars");
    group.throughput(Throughput::Elements(BARS));
    group.sample_size(10);
    for ext in ["csv", "parquet", "arrow"] {
        let path = dir.path().join(format!("syn.{ext}"));
        write_synth(&spec, &path).expect("synthetic file");
        group.bench_function(ext, |b| {
            b.iter(|| {
                let reader = open_bars(&path, None, &inst).expect("open");
                let mut n = 0u64;
                for bar in reader {
                    bar.expect("valid bar");
                    n += 1;
                }
                assert_eq!(n, BARS);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
