//! Daily universes end to end: synthetic generation (determinism, correlation, OHLC invariants,
//! weekdays), write → load round trips, the accessors, and every load error at its file and line.

use std::path::{Path, PathBuf};

use tradeloom_core::{Price, Quantity};
use tradeloom_data::chrono::{Datelike, NaiveDate, Weekday};
use tradeloom_data::{BarWriter, DailyBar, Universe, UniverseSpec, synth_universe, write_universe};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn spec(symbols: usize, days: usize, seed: u64) -> UniverseSpec {
    UniverseSpec {
        symbols,
        days,
        seed,
        ..UniverseSpec::default()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The error of loading a folder holding one file `name` with `text` (and a good `OK.csv`).
fn load_error(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "OK.csv",
        "timestamp,open,high,low,close,volume\n2025-01-02,10,11,9,10.5,100\n",
    );
    write(dir.path(), name, text);
    Universe::load(dir.path()).unwrap_err().to_string()
}

fn bar(date: NaiveDate, o: &str, h: &str, l: &str, c: &str) -> DailyBar {
    let p = |s: &str| Price::parse(s, 2).unwrap();
    DailyBar {
        date,
        open: p(o),
        high: p(h),
        low: p(l),
        close: p(c),
        volume: Quantity::from_int(1000, 0),
    }
}

/// Bytes of every file in `dir`, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn written_universe_loads_back_equal_and_rewrites_identically() {
    let universe = synth_universe(&spec(8, 60, 42)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = write_universe(&universe, dir.path()).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "AAA.csv", "BBB.csv", "CCC.csv", "DDD.csv", "EEE.csv", "FFF.csv", "GGG.csv", "HHH.csv"
        ]
    );
    let text = std::fs::read_to_string(&paths[0]).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,open,high,low,close,volume"));
    let first = lines.next().unwrap();
    assert!(first.starts_with("2025-01-02,"), "{first}");
    // Prices carry exactly two decimals, volume none.
    let fields: Vec<&str> = first.split(',').collect();
    for price in &fields[1..5] {
        assert_eq!(price.split('.').nth(1).map(str::len), Some(2), "{first}");
    }
    assert!(fields[5].bytes().all(|c| c.is_ascii_digit()), "{first}");

    let loaded = Universe::load(dir.path()).unwrap();
    assert_eq!(loaded, universe);
    let again = tempfile::tempdir().unwrap();
    write_universe(&loaded, again.path()).unwrap();
    assert_eq!(files(dir.path()), files(again.path()));
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dirs: Vec<_> = [42, 42, 43]
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    for (dir, seed) in dirs.iter().zip([42, 42, 43]) {
        write_universe(&synth_universe(&spec(5, 80, seed)).unwrap(), dir.path()).unwrap();
    }
    let [a, b, c] = [0, 1, 2].map(|i| files(dirs[i].path()));
    assert_eq!(a, b);
    for (x, y) in a.iter().zip(&c) {
        assert_eq!(x.0, y.0, "same symbol names");
        assert_ne!(x.1, y.1, "{} differs with another seed", x.0);
    }
}

#[test]
fn a_larger_spec_extends_a_smaller_one() {
    let small = synth_universe(&spec(3, 40, 7)).unwrap();
    let large = synth_universe(&spec(5, 90, 7)).unwrap();
    for symbol in small.symbols() {
        let s = small.bars(symbol).unwrap();
        assert_eq!(s, &large.bars(symbol).unwrap()[..40], "{symbol}");
    }
}

fn log_returns(bars: &[DailyBar]) -> Vec<f64> {
    bars.windows(2)
        .map(|w| (w[1].close.as_f64() / w[0].close.as_f64()).ln())
        .collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn std_dev(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (a.len() - 1) as f64;
    cov / (std_dev(a) * std_dev(b))
}

#[test]
fn symbols_are_correlated_with_realistic_volatility() {
    for seed in [1, 42, 2025] {
        let universe = synth_universe(&spec(8, 250, seed)).unwrap();
        let returns: Vec<Vec<f64>> = universe
            .symbols()
            .iter()
            .map(|s| log_returns(universe.bars(s).unwrap()))
            .collect();
        for (s, r) in universe.symbols().iter().zip(&returns) {
            let vol = std_dev(r);
            assert!(
                (0.005..0.04).contains(&vol),
                "seed {seed} {s}: daily vol {vol}"
            );
        }
        let mut pairs = Vec::new();
        for i in 0..returns.len() {
            for j in i + 1..returns.len() {
                pairs.push(correlation(&returns[i], &returns[j]));
            }
        }
        let average = mean(&pairs);
        assert!(
            average > 0.3,
            "seed {seed}: average pairwise correlation {average}"
        );
        assert!(
            average < 0.8,
            "seed {seed}: average pairwise correlation {average}"
        );
    }
}

#[test]
fn every_bar_is_consistent_and_every_date_a_weekday() {
    let universe = synth_universe(&spec(40, 600, 9)).unwrap();
    let dates = universe.trading_dates();
    assert_eq!(dates.len(), 600);
    assert_eq!(dates[0], day(2025, 1, 2));
    assert!(dates.windows(2).all(|w| w[0] < w[1]));
    assert!(
        dates
            .iter()
            .all(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
    );
    // Every weekday in the range is there: consecutive dates are 1 day apart, or 3 over a weekend.
    for w in dates.windows(2) {
        let gap = (w[1] - w[0]).num_days();
        assert!(
            gap == 1 || (gap == 3 && w[0].weekday() == Weekday::Fri),
            "{w:?}"
        );
    }
    let cent = Price::parse("0.01", 2).unwrap();
    let mut gaps = 0;
    for symbol in universe.symbols() {
        let bars = universe.bars(symbol).unwrap();
        assert_eq!(bars.iter().map(|b| b.date).collect::<Vec<_>>(), dates);
        for (i, b) in bars.iter().enumerate() {
            assert!(b.high >= b.open.max(b.close), "{symbol} {b:?}");
            assert!(b.low <= b.open.min(b.close), "{symbol} {b:?}");
            assert!(b.low >= cent, "{symbol} {b:?}");
            for p in [b.open, b.high, b.low, b.close] {
                assert!(p.fits_precision(2), "{symbol} {b:?}");
            }
            assert!(
                b.volume.fits_precision(0) && !b.volume.is_zero(),
                "{symbol} {b:?}"
            );
            if i > 0 && b.open != bars[i - 1].close {
                gaps += 1;
            }
        }
        let first_open = bars[0].open.as_f64();
        assert!(
            (15.0..600.0).contains(&first_open),
            "{symbol}: {first_open}"
        );
    }
    assert!(
        gaps > 40 * 600 / 2,
        "opens gap from the previous close: {gaps}"
    );
}

#[test]
fn a_weekend_start_moves_to_monday() {
    let universe = synth_universe(&UniverseSpec {
        start: day(2025, 1, 4),
        ..spec(2, 5, 1)
    })
    .unwrap();
    assert_eq!(universe.first_date(), Some(day(2025, 1, 6)));
    assert_eq!(universe.last_date(), Some(day(2025, 1, 10)));
}

#[test]
fn rejects_out_of_range_specs() {
    for (symbols, days, expected) in [
        (0, 10, "symbols is 0; expected 1 to 500"),
        (501, 10, "symbols is 501; expected 1 to 500"),
        (2, 0, "days is 0; expected 1 to 20000"),
        (2, 20_001, "days is 20001; expected 1 to 20000"),
    ] {
        let e = synth_universe(&spec(symbols, days, 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{e}");
    }
    let e = synth_universe(&UniverseSpec {
        start: NaiveDate::MAX,
        ..spec(1, 2, 1)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("past the last representable date"), "{e}");
}

#[test]
fn accessors_answer_by_date_without_look_ahead() {
    let (d2, d3, d6, d7) = (
        day(2025, 1, 2),
        day(2025, 1, 3),
        day(2025, 1, 6),
        day(2025, 1, 7),
    );
    let universe = Universe::from_series(vec![
        (
            "BBB".to_string(),
            vec![
                bar(d2, "10", "11", "9", "10.5"),
                bar(d6, "10.5", "12", "10", "11"),
            ],
        ),
        ("AAA".to_string(), vec![bar(d3, "20", "21", "19", "20.5")]),
    ])
    .unwrap();
    assert_eq!(universe.symbols(), ["AAA", "BBB"]);
    assert!(universe.contains("AAA") && !universe.contains("aaa"));
    assert_eq!(universe.trading_dates(), [d2, d3, d6]);
    assert_eq!(
        (universe.first_date(), universe.last_date()),
        (Some(d2), Some(d6))
    );
    assert_eq!(
        universe
            .bar("BBB", d6)
            .map(|b| b.close.to_string())
            .as_deref(),
        Some("11.00")
    );
    assert!(universe.bar("BBB", d3).is_none());
    assert!(universe.bar("ZZZ", d2).is_none());
    assert!(universe.last_bar_before("BBB", d2).is_none());
    assert_eq!(
        universe.last_bar_before("BBB", d3).map(|b| b.date),
        Some(d2)
    );
    assert_eq!(
        universe.last_bar_before("BBB", d6).map(|b| b.date),
        Some(d2),
        "strictly before"
    );
    assert_eq!(
        universe.last_bar_before("BBB", d7).map(|b| b.date),
        Some(d6)
    );
    assert_eq!(universe.bars("AAA").map(<[DailyBar]>::len), Some(1));

    let only = universe
        .restrict(&["BBB".to_string(), "BBB".to_string()])
        .unwrap();
    assert_eq!(only.symbols(), ["BBB"]);
    assert_eq!(only.trading_dates(), [d2, d6]);
    let e = universe
        .restrict(&["BBB".to_string(), "XYZ".to_string()])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "unknown symbol `XYZ`; available: AAA, BBB");
    let e = universe.restrict(&[]).unwrap_err().to_string();
    assert_eq!(e, "no symbols given; available: AAA, BBB");
}

#[test]
fn from_series_rejects_what_load_rejects() {
    let (d2, d3) = (day(2025, 1, 2), day(2025, 1, 3));
    let good = || vec![bar(d2, "10", "11", "9", "10.5")];
    let cases = [
        (vec![], "at least one symbol"),
        (
            vec![("aaa".to_string(), good())],
            "`aaa` is not a valid symbol",
        ),
        (vec![("AAA".to_string(), vec![])], "symbol AAA has no bars"),
        (
            vec![("AAA".to_string(), good()), ("AAA".to_string(), good())],
            "symbol AAA is given twice",
        ),
        (
            vec![(
                "AAA".to_string(),
                vec![
                    bar(d3, "10", "11", "9", "10"),
                    bar(d2, "10", "11", "9", "10"),
                ],
            )],
            "symbol AAA, bar 2 (2025-01-02): not after the previous bar's date 2025-01-03",
        ),
        (
            vec![(
                "AAA".to_string(),
                vec![
                    bar(d2, "10", "11", "9", "10"),
                    bar(d2, "10", "11", "9", "10"),
                ],
            )],
            "bar 2 (2025-01-02): not after",
        ),
        (
            vec![("AAA".to_string(), vec![bar(d2, "10", "9.5", "9", "10")])],
            "symbol AAA, bar 1 (2025-01-02): high 9.50 is below max(open, close) 10.00",
        ),
        (
            vec![(
                "AAA".to_string(),
                vec![DailyBar {
                    open: Price::parse("10.1234567", 7).unwrap(),
                    high: Price::parse("11", 2).unwrap(),
                    ..bar(d2, "10", "11", "9", "10")
                }],
            )],
            "open 10.1234567 has more than 6 decimal places",
        ),
    ];
    for (series, expected) in cases {
        let e = Universe::from_series(series).unwrap_err().to_string();
        assert!(e.contains(expected), "got `{e}`, expected `{expected}`");
    }
}

const HEADER: &str = "timestamp,open,high,low,close,volume\n";

#[test]
fn load_errors_name_the_file_and_line() {
    let cases = [
        (
            "AAA.csv",
            format!("{HEADER}2025-01-02,10,11,9,10,5\n2025-01-03 14:30,10,11,9,10,5\n"),
            "AAA.csv:3: not a daily bar: timestamp 2025-01-03T14:30:00Z has a time of day",
        ),
        (
            "AAA.csv",
            format!("{HEADER}2025-01-02T00:00:00+02:00,10,11,9,10,5\n"),
            "AAA.csv:2: not a daily bar",
        ),
        (
            "AAA.csv",
            format!("{HEADER}2025-01-02,10,11,9,10,5\n\n2025-01-02,10,11,9,10,5\n"),
            "AAA.csv:4: duplicate timestamp 2025-01-02",
        ),
        (
            "AAA.csv",
            format!("{HEADER}2025-01-03,10,11,9,10,5\n2025-01-02,10,11,9,10,5\n"),
            "AAA.csv:3: timestamp 2025-01-02T00:00:00Z goes backwards",
        ),
        (
            "AAA.csv",
            format!("{HEADER}2025-01-02,10,9.5,9,10,5\n"),
            "AAA.csv:2: high 9.500000 is below max(open, close) 10.000000",
        ),
        (
            "AAA.csv",
            format!("{HEADER}2025-01-02,10.1234567,11,9,10,5\n"),
            "AAA.csv:2: open 10.1234567 has 7 decimal places",
        ),
        (
            "AAA.csv",
            format!("{HEADER}2025-01-02,10,11,9,,5\n"),
            "AAA.csv:2: missing value for `close`",
        ),
        ("AAA.csv", HEADER.to_string(), "AAA.csv: no bars"),
        (
            "aapl.csv",
            format!("{HEADER}2025-01-02,10,11,9,10,5\n"),
            "aapl.csv: the file name gives the symbol; `aapl` is not a valid symbol",
        ),
        (
            "WAY_TOO_LONG_A_NAME_FOR_A_TICKER.csv",
            format!("{HEADER}2025-01-02,10,11,9,10,5\n"),
            "WAY_TOO_LONG_A_NAME_FOR_A_TICKER.csv: the file name gives the symbol",
        ),
        (
            "OK.parquet",
            "not parquet".to_string(),
            "OK.parquet: symbol OK already has the file",
        ),
    ];
    for (name, text, expected) in cases {
        let e = load_error(name, &text);
        assert!(e.contains(expected), "got `{e}`, expected `{expected}`");
    }
}

#[test]
fn columnar_errors_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let universe = synth_universe(&spec(1, 3, 1)).unwrap();
    let mut writer = BarWriter::create(&dir.path().join("AAA.parquet"), None).unwrap();
    let instrument = tradeloom_core::InstrumentId(0);
    for (i, b) in universe.bars("AAA").unwrap().iter().enumerate() {
        let mut bar = b.to_bar(instrument);
        if i == 2 {
            bar.ts.0 += 3_600_000_000_000;
        }
        writer.write(&bar).unwrap();
    }
    writer.finish().unwrap();
    let e = Universe::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("AAA.parquet: row 3: not a daily bar"), "{e}");
}

#[test]
fn parquet_and_arrow_files_load_like_csv() {
    let universe = synth_universe(&spec(2, 30, 5)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (symbol, ext) in [("AAA", "parquet"), ("BBB", "arrow")] {
        let mut writer =
            BarWriter::create(&dir.path().join(format!("{symbol}.{ext}")), None).unwrap();
        for b in universe.bars(symbol).unwrap() {
            writer
                .write(&b.to_bar(tradeloom_core::InstrumentId(0)))
                .unwrap();
        }
        writer.finish().unwrap();
    }
    assert_eq!(Universe::load(dir.path()).unwrap(), universe);
}

#[test]
fn other_files_are_ignored_and_empty_folders_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "README.md", "# prices\n");
    write(dir.path(), "news.jsonl", "{}\n");
    std::fs::create_dir(dir.path().join("OLD.csv")).unwrap();
    let e = Universe::load(dir.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "no daily bar files (*.csv, *.parquet, *.arrow) in {}",
            dir.path().display()
        )
    );
    write(
        dir.path(),
        "X.csv",
        &format!("{HEADER}2025-01-02,10.125,11,9,10.5,5\n"),
    );
    let universe = Universe::load(dir.path()).unwrap();
    assert_eq!(universe.symbols(), ["X"]);
    // Display precision follows the file: 3 decimals here, so a rewrite keeps 10.125 and 11.000.
    let out = tempfile::tempdir().unwrap();
    let paths = write_universe(&universe, out.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&paths[0]).unwrap(),
        format!("{HEADER}2025-01-02,10.125,11.000,9.000,10.500,5\n")
    );

    let missing = dir.path().join("nope");
    let e = Universe::load(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot open", missing.display())),
        "{e}"
    );
}

#[test]
fn writing_refuses_a_folder_with_other_bar_files() {
    let dir = tempfile::tempdir().unwrap();
    let universe = synth_universe(&spec(2, 5, 1)).unwrap();
    write_universe(&universe, dir.path()).unwrap();
    // Rewriting in place is fine; other files are left alone.
    write(dir.path(), "notes.txt", "x");
    write_universe(&universe, dir.path()).unwrap();
    write(dir.path(), "ZZZ.csv", HEADER);
    let e = write_universe(&universe, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("already holds other bar files (ZZZ.csv)"), "{e}");
}
