//! Loaders end to end on files: every timestamp form, headers, aliases, quoting, each validation
//! error at its exact line or row, columnar round trips, merging, synth determinism, inspect.

use std::path::{Path, PathBuf};

use tradeloom_core::{Bar, Currency, Instrument, InstrumentId, Symbol};
use tradeloom_data::{
    BarWriter, DataError, DataFormat, MergedBars, Place, SynthSpec, inspect, open_bars, synth_bars,
    write_synth,
};

fn instrument(id: u32, symbol: &str, price_precision: u8) -> Instrument {
    Instrument::new(
        InstrumentId(id),
        Symbol::new(symbol).unwrap(),
        "sim",
        price_precision,
        0,
        Currency::USD,
    )
    .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn read_all(path: &Path, inst: &Instrument) -> Result<Vec<Bar>, DataError> {
    open_bars(path, None, inst)?.collect()
}

fn example_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(name)
}

#[test]
fn reads_every_timestamp_form_to_the_same_instants() {
    let dir = tempfile::tempdir().unwrap();
    let forms = [
        "2024-01-02 09:30:00",
        "2024-01-02T09:30:00Z",
        "2024-01-02T11:30:00+02:00",
        "1704187800",
        "1704187800000",
        "1704187800000000",
        "1704187800000000000",
    ];
    for (i, ts) in forms.iter().enumerate() {
        let path = write(
            dir.path(),
            &format!("f{i}.csv"),
            &format!("time,open,high,low,close\n{ts},10,11,9,10.5\n"),
        );
        let bars = read_all(&path, &instrument(0, "X", 2)).unwrap();
        assert_eq!(bars[0].ts.to_string(), "2024-01-02T09:30:00Z", "form {ts}");
        assert!(bars[0].volume.is_zero(), "no volume column means volume 0");
    }
}

#[test]
fn header_aliases_order_quotes_and_no_header() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.csv",
        "Vol,C,L,H,O,Date,extra\n100,10.5,9,11,10,2024-01-02,zz\n",
    );
    let b = write(dir.path(), "b.csv", "2024-01-02,10,11,9,10.5,100\n");
    let c = write(
        dir.path(),
        "c.csv",
        "\u{feff}\"date\",\"open\",\"high\",\"low\",\"close\",\"volume\"\r\n\"2024-01-02\",\"10\",\"11\",\"9\",\"10.5\",\"100\"\r\n",
    );
    let inst = instrument(0, "X", 2);
    let expect = read_all(&b, &inst).unwrap();
    assert_eq!(expect.len(), 1);
    assert_eq!(expect[0].close.to_string(), "10.50");
    assert_eq!(expect[0].volume.to_string(), "100");
    assert_eq!(read_all(&a, &inst).unwrap(), expect);
    assert_eq!(read_all(&c, &inst).unwrap(), expect);
}

fn row_error(text: &str, precision: u8) -> (Option<Place>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.csv", text);
    let err = read_all(&path, &instrument(0, "EURUSD", precision)).unwrap_err();
    (err.place(), err.to_string())
}

const HEAD: &str =
    "timestamp,open,high,low,close,volume\n2024-01-01,10,11,9,10,1\n2024-01-02,10,11,9,10,1\n";

#[test]
fn each_validation_error_names_its_line() {
    let cases = [
        (
            "2024-01-03,10,11,9\n",
            "expected at least 6 fields, found 4",
        ),
        (
            "2024-01-03,10,abc,9,10,1\n",
            "high: `abc` is not a decimal number",
        ),
        ("2024-01-03,10,,9,10,1\n", "missing value for `high`"),
        (
            "2024-01-03,NaN,11,9,10,1\n",
            "open: `NaN` is not a decimal number",
        ),
        (
            "2024-01-02,10,11,9,10,1\n",
            "duplicate timestamp 2024-01-02T00:00:00Z",
        ),
        ("2024-01-01,10,11,9,10,1\n", "goes backwards"),
        (
            "2024-01-03,10,10.2,9,10.5,1\n",
            "high 10.20 is below max(open, close) 10.50",
        ),
        (
            "2024-01-03,10,11,10.1,10.05,1\n",
            "low 10.10 is above min(open, close) 10.00",
        ),
        ("2024-01-03,0,11,0,10,1\n", "open 0.00 is not positive"),
        ("2024-01-03,10,11,9,10,-5\n", "volume -5 is negative"),
        (
            "2024-13-03,10,11,9,10,1\n",
            "invalid timestamp `2024-13-03`",
        ),
    ];
    for (row, expect) in cases {
        let (place, message) = row_error(&format!("{HEAD}{row}2024-01-09,10,11,9,10,1\n"), 2);
        assert_eq!(place, Some(Place::Line(4)), "{message}");
        assert!(message.contains("bad.csv:4: "), "{message}");
        assert!(
            message.contains(expect),
            "expected `{expect}` in `{message}`"
        );
    }
}

#[test]
fn finer_prices_than_the_instrument_are_a_precision_error() {
    let (place, message) = row_error(&format!("{HEAD}2024-01-03,1.07219,1.08,1.07,1.075,1\n"), 2);
    assert_eq!(place, Some(Place::Line(4)));
    assert!(
        message.ends_with(
            "open 1.07219 has 5 decimal places; instrument EURUSD has price_precision 2"
        ),
        "{message}"
    );
}

#[test]
fn open_fails_early_on_missing_file_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let inst = instrument(0, "X", 2);
    let missing = open_bars(&dir.path().join("nope.csv"), None, &inst)
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("nope.csv: cannot open"),
        "{missing}"
    );
    let path = write(
        dir.path(),
        "cols.csv",
        "timestamp,open,high,low\n2024-01-01,1,1,1\n",
    );
    let err = open_bars(&path, None, &inst).err().unwrap();
    assert!(
        err.to_string()
            .ends_with("cols.csv:1: missing column `close` (found: timestamp, open, high, low)"),
        "{err}"
    );
    let empty = write(dir.path(), "empty.csv", "");
    assert!(
        open_bars(&empty, None, &inst)
            .err()
            .unwrap()
            .to_string()
            .contains("the file is empty")
    );
    let unknown = write(dir.path(), "x.txt", "");
    assert!(
        open_bars(&unknown, None, &inst)
            .err()
            .unwrap()
            .to_string()
            .contains("cannot tell the format")
    );
}

#[test]
fn volume_float_artifacts_are_rounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "v.csv",
        "timestamp,open,high,low,close,volume\n2024-01-01,10,11,9,10,397787.41249925003\n",
    );
    let bars = read_all(&path, &instrument(0, "X", 2)).unwrap();
    assert_eq!(bars[0].volume.raw(), 397_787_412_499_250);
}

#[test]
fn parquet_and_arrow_round_trip_synthetic_bars_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        bars: 150_000,
        ..SynthSpec::default()
    };
    let expected: Vec<Bar> = synth_bars(&spec).collect();
    let inst = instrument(0, "SYN", 2);
    for name in ["s.csv", "s.parquet", "s.arrow"] {
        let path = dir.path().join(name);
        let summary = write_synth(&spec, &path).unwrap();
        assert_eq!(summary.bars, 150_000);
        let mut reader = open_bars(&path, None, &inst).unwrap();
        let bars: Vec<Bar> = reader.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(bars, expected, "{name}");
        let (done, total) = reader.progress();
        assert_eq!(done, total, "{name}: progress ends at its total");
    }
}

#[test]
fn parquet_errors_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.parquet");
    let mut bars: Vec<Bar> = synth_bars(&SynthSpec {
        bars: 100,
        ..SynthSpec::default()
    })
    .collect();
    bars[41].ts = bars[40].ts; // row 42 duplicates row 41
    let mut w = BarWriter::create(&path, None).unwrap();
    for b in &bars {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    let result: Vec<Result<Bar, DataError>> = open_bars(&path, None, &instrument(0, "SYN", 2))
        .unwrap()
        .collect();
    assert_eq!(
        result.iter().filter(|r| r.is_ok()).count(),
        41,
        "rows before the error are yielded"
    );
    let err = result.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.place(), Some(Place::Row(42)));
    assert!(
        err.to_string()
            .contains("bad.parquet: row 42: duplicate timestamp"),
        "{err}"
    );
    // The same file at a coarser precision than its prices: a precision error at row 1.
    let coarse = open_bars(&path, None, &instrument(0, "SYN", 0))
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(coarse.place(), Some(Place::Row(1)), "{coarse}");
}

#[test]
fn merge_orders_by_time_then_instrument() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.csv",
        "date,open,high,low,close\n2024-01-01,1,1,1,1\n2024-01-03,1,1,1,1\n2024-01-04,1,1,1,1\n",
    );
    let b = write(
        dir.path(),
        "b.csv",
        "date,open,high,low,close\n2024-01-01,2,2,2,2\n2024-01-02,2,2,2,2\n2024-01-04,2,2,2,2\n",
    );
    let readers = vec![
        open_bars(&a, None, &instrument(0, "A", 0)).unwrap(),
        open_bars(&b, None, &instrument(1, "B", 0)).unwrap(),
    ];
    let merged: Vec<(String, u32)> = MergedBars::new(readers)
        .map(|r| r.map(|bar| (bar.ts.date_string(), bar.instrument.0)))
        .collect::<Result<_, _>>()
        .unwrap();
    let expect = [
        ("2024-01-01", 0),
        ("2024-01-01", 1),
        ("2024-01-02", 1),
        ("2024-01-03", 0),
        ("2024-01-04", 0),
        ("2024-01-04", 1),
    ];
    assert_eq!(merged, expect.map(|(d, i)| (d.to_string(), i)));
}

#[test]
fn merge_stops_at_the_first_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.csv",
        "date,open,high,low,close\n2024-01-01,1,1,1,1\n2024-01-02,1,1,x,1\n",
    );
    let b = write(
        dir.path(),
        "b.csv",
        "date,open,high,low,close\n2024-01-01,2,2,2,2\n2024-01-05,2,2,2,2\n",
    );
    let readers = vec![
        open_bars(&a, None, &instrument(0, "A", 0)).unwrap(),
        open_bars(&b, None, &instrument(1, "B", 0)).unwrap(),
    ];
    let items: Vec<_> = MergedBars::new(readers).collect();
    let err = items.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(err.to_string().contains("a.csv:3: low"), "{err}");
    assert!(items.last().unwrap().is_err(), "nothing after the error");
}

#[test]
fn synth_files_are_byte_identical_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        bars: 2000,
        seed: 11,
        ..SynthSpec::default()
    };
    for ext in ["csv", "parquet"] {
        let a = dir.path().join(format!("a.{ext}"));
        let b = dir.path().join(format!("b.{ext}"));
        write_synth(&spec, &a).unwrap();
        write_synth(&spec, &b).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{ext}"
        );
        let c = dir.path().join(format!("c.{ext}"));
        write_synth(
            &SynthSpec {
                seed: 12,
                ..spec.clone()
            },
            &c,
        )
        .unwrap();
        assert_ne!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&c).unwrap(),
            "{ext}"
        );
    }
}

#[test]
fn inspect_goog_daily() {
    let report = inspect(&example_data("goog_1d.csv"), None).unwrap();
    assert_eq!(report.rows, 2148);
    assert_eq!(report.first.unwrap().date_string(), "2004-08-19");
    assert_eq!(report.last.unwrap().date_string(), "2013-03-01");
    assert_eq!(report.interval_seconds, Some(86_400.0));
    assert!(report.gaps > 400, "weekends are gaps: {}", report.gaps);
    assert_eq!(report.first_open.as_deref(), Some("100"));
    assert_eq!(report.last_close.as_deref(), Some("806.19"));
    assert_eq!(report.format, DataFormat::Csv);
    assert!(report.error.is_none());
    assert!(report.to_string().contains("rows        2148"));
}

#[test]
fn inspect_eurusd_hourly_and_reports_errors_in_place() {
    let report = inspect(&example_data("eurusd_1h.csv"), None).unwrap();
    assert_eq!(report.rows, 5000);
    assert_eq!(report.interval_seconds, Some(3600.0));
    assert_eq!(
        report.min_low.as_deref().map(|s| s.starts_with("1.")),
        Some(true)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.csv",
        "timestamp,open,high,low,close\n2024-01-01,1,1,1,1\n2024-01-01,1,1,1,1\n",
    );
    let report = inspect(&bad, None).unwrap();
    assert_eq!(report.rows, 1);
    assert!(
        report
            .error
            .unwrap()
            .contains("bad.csv:3: duplicate timestamp")
    );
}

/// An Arrow IPC file of `bars` with the timestamp column in `unit` and the volume column as
/// `Int64` or `Float64`: the layouts pandas, polars and pyarrow's CSV reader give (all decoded
/// on the loader's column-wise path), or, with `text_prices`, the prices as decimal strings
/// (decoded cell by cell).
fn write_arrow_layout(
    path: &Path,
    rows: &[(i64, [f64; 4], i64)],
    unit: arrow::datatypes::TimeUnit,
    int_volume: bool,
    text_prices: bool,
) {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
        TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
    };
    use arrow::datatypes::TimeUnit;

    let secs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let ts: ArrayRef = match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from(secs).with_timezone("UTC")),
        TimeUnit::Millisecond => Arc::new(
            TimestampMillisecondArray::from(secs.iter().map(|s| s * 1_000).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(
            secs.iter().map(|s| s * 1_000_000).collect::<Vec<_>>(),
        )),
        TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(
            secs.iter().map(|s| s * 1_000_000_000).collect::<Vec<_>>(),
        )),
    };
    let price = |k: usize| -> ArrayRef {
        if text_prices {
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| format!("{:.2}", r.1[k]))
                    .collect::<Vec<_>>(),
            ))
        } else {
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.1[k]).collect::<Vec<_>>(),
            ))
        }
    };
    let volume: ArrayRef = if int_volume {
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ))
    } else {
        Arc::new(Float64Array::from(
            rows.iter().map(|r| r.2 as f64).collect::<Vec<_>>(),
        ))
    };
    let batch = RecordBatch::try_from_iter([
        ("timestamp", ts),
        ("open", price(0)),
        ("high", price(1)),
        ("low", price(2)),
        ("close", price(3)),
        ("volume", volume),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema()).unwrap();
    // Two batches, so rows are numbered across batches.
    let half = batch.num_rows() / 2;
    writer.write(&batch.slice(0, half)).unwrap();
    writer
        .write(&batch.slice(half, batch.num_rows() - half))
        .unwrap();
    writer.finish().unwrap();
}

#[test]
fn frames_from_pandas_and_pyarrow_decode_like_the_cell_by_cell_path() {
    use arrow::datatypes::TimeUnit;

    let dir = tempfile::tempdir().unwrap();
    let inst = instrument(0, "SYN", 2);
    let rows: Vec<(i64, [f64; 4], i64)> = (0..1_000)
        .map(|i| {
            let base = 100.0 + (i % 37) as f64 * 0.25;
            (
                1_704_067_200 + i * 60,
                [base, base + 0.5, base - 0.75, base + 0.01],
                1_000 + i,
            )
        })
        .collect();
    let reference = dir.path().join("text.arrow");
    write_arrow_layout(&reference, &rows, TimeUnit::Second, true, true);
    let expected = read_all(&reference, &inst).unwrap();
    assert_eq!(expected.len(), 1_000);
    for unit in [
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ] {
        for int_volume in [true, false] {
            let path = dir.path().join(format!("{unit:?}-{int_volume}.arrow"));
            write_arrow_layout(&path, &rows, unit, int_volume, false);
            assert_eq!(
                read_all(&path, &inst).unwrap(),
                expected,
                "{unit:?}, int volume {int_volume}"
            );
        }
    }

    // The same bad row is the same error on both paths, at the same row.
    let mut bad = rows.clone();
    bad[700].2 = -5;
    let errors: Vec<String> = [true, false]
        .into_iter()
        .map(|text_prices| {
            let path = dir.path().join(format!("negative-{text_prices}.arrow"));
            write_arrow_layout(&path, &bad, TimeUnit::Second, true, text_prices);
            let result: Vec<Result<Bar, DataError>> =
                open_bars(&path, None, &inst).unwrap().collect();
            assert_eq!(result.iter().filter(|r| r.is_ok()).count(), 700);
            let err = result.last().unwrap().as_ref().unwrap_err();
            assert_eq!(err.place(), Some(Place::Row(701)), "{err}");
            err.to_string().replace("negative-true", "negative-false")
        })
        .collect();
    assert_eq!(errors[0], errors[1]);

    // A timestamp in seconds too far out for nanoseconds: out of range, on both paths.
    let mut far = rows.clone();
    far[10].0 = i64::MAX / 100;
    for text_prices in [true, false] {
        let path = dir.path().join(format!("far-{text_prices}.arrow"));
        write_arrow_layout(&path, &far, TimeUnit::Second, true, text_prices);
        let err = read_all(&path, &inst).unwrap_err();
        assert_eq!(err.place(), Some(Place::Row(11)), "{err}");
        assert!(err.to_string().contains("out of range"), "{err}");
    }
}
