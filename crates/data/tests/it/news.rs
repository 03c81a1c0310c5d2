//! News corpora: JSONL loading and its errors, search without look-ahead and its ranking, and
//! the synthetic corpus (deterministic, after-the-close recaps, pre-market items that reveal no
//! price of their day).

use std::path::Path;

use tradeloom_core::Price;
use tradeloom_data::chrono::{DateTime, NaiveDate, Utc};
use tradeloom_data::{
    DailyBar, NewsCorpus, NewsItem, Universe, UniverseSpec, synth_news, synth_universe, write_news,
};

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn item(t: &str, symbols: &[&str], headline: &str, body: &str) -> NewsItem {
    NewsItem {
        timestamp: ts(t),
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        headline: headline.to_string(),
        body: body.to_string(),
    }
}

fn headlines(items: &[&NewsItem]) -> Vec<String> {
    items.iter().map(|i| i.headline.clone()).collect()
}

#[test]
fn search_sees_an_item_only_from_its_timestamp_on() {
    let corpus = NewsCorpus::from_items(vec![item(
        "2025-01-06T21:30:00Z",
        &["AAA"],
        "AAA closes up 3.1% at 104.20",
        "",
    )]);
    for query in ["AAA", ""] {
        assert!(
            corpus
                .search(query, 10, ts("2025-01-06T14:30:00Z"))
                .is_empty()
        );
        assert!(
            corpus
                .search(query, 10, ts("2025-01-06T21:29:59Z"))
                .is_empty()
        );
        assert_eq!(
            corpus.search(query, 10, ts("2025-01-06T21:30:00Z")).len(),
            1
        );
        assert_eq!(
            corpus.search(query, 10, ts("2025-01-07T14:30:00Z")).len(),
            1
        );
    }
}

#[test]
fn search_ranks_by_terms_matched_then_newest() {
    let corpus = NewsCorpus::from_items(vec![
        item(
            "2025-01-03T12:00:00Z",
            &["AAA"],
            "old both",
            "aaa raises guidance",
        ),
        item(
            "2025-01-04T12:00:00Z",
            &["BBB"],
            "guidance only",
            "BBB raises Guidance",
        ),
        item("2025-01-05T12:00:00Z", &["AAA"], "symbol only", "quiet day"),
        item(
            "2025-01-02T12:00:00Z",
            &["CCC"],
            "unrelated",
            "nothing here",
        ),
        item(
            "2025-01-06T12:00:00Z",
            &[],
            "newest symbol in text",
            "Analysts on aaa.",
        ),
        item(
            "2025-01-09T12:00:00Z",
            &["AAA"],
            "future both",
            "AAA guidance",
        ),
    ]);
    let as_of = ts("2025-01-08T00:00:00Z");
    let got = corpus.search("AAA, GUIDANCE!", 10, as_of);
    assert_eq!(
        headlines(&got),
        [
            "old both",
            "newest symbol in text",
            "symbol only",
            "guidance only"
        ],
        "two terms before one; newest first among equals; no match and the future left out"
    );
    assert_eq!(
        headlines(&corpus.search("aaa guidance", 1, as_of)),
        ["old both"]
    );
    assert_eq!(
        headlines(&corpus.search("aaa aaa", 10, as_of)).len(),
        3,
        "repeated terms count once"
    );
    assert!(corpus.search("zzz", 10, as_of).is_empty());
    assert!(corpus.search("AAA", 0, as_of).is_empty());
    assert_eq!(
        headlines(&corpus.search("  ", 2, as_of)),
        ["newest symbol in text", "symbol only"],
        "a blank query gives the newest items"
    );
}

fn load_text(text: &str) -> Result<NewsCorpus, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("news.jsonl");
    std::fs::write(&path, text).unwrap();
    NewsCorpus::load(&path).map_err(|e| {
        let e = e.to_string();
        // The error starts with the path; keep the part after it.
        e.strip_prefix(&path.display().to_string())
            .unwrap()
            .to_string()
    })
}

#[test]
fn loads_jsonl_skipping_blank_lines_and_sorting_stably() {
    let text = concat!(
        r#"{"timestamp":"2025-01-03T12:00:00Z","symbols":["AAA"],"headline":"second","body":""}"#,
        "\n\n   \n",
        r#"{"timestamp":"2025-01-02T13:00:00+01:00","symbols":[],"headline":"first","body":"b"}"#,
        "\r\n",
        r#"{"timestamp":"2025-01-03T12:00:00Z","symbols":["BBB"],"headline":"third","body":""}"#,
    );
    let corpus = load_text(text).unwrap();
    assert_eq!(corpus.len(), 3);
    assert!(!corpus.is_empty() && NewsCorpus::empty().is_empty());
    let order: Vec<&str> = corpus.items().iter().map(|i| i.headline.as_str()).collect();
    assert_eq!(order, ["first", "second", "third"]);
    assert_eq!(corpus.items()[0].timestamp, ts("2025-01-02T12:00:00Z"));
}

#[test]
fn a_bad_line_is_named_with_its_field() {
    let good = r#"{"timestamp":"2025-01-02T12:00:00Z","symbols":[],"headline":"h","body":""}"#;
    let cases = [
        (
            r#"{"timestamp":"2025-01-02T12:00:00Z","symbols":[],"body":""}"#,
            ":3: missing field `headline`",
        ),
        (
            r#"{"timestamp":"2025-01-02T12:00:00Z","symbols":[],"headline":"h","body":"","source":"x"}"#,
            ":3: unknown field `source`",
        ),
        (
            r#"{"timestamp":"2025-01-02T12:00:00Z","symbols":[1],"headline":"h","body":""}"#,
            ":3: field `symbols`: invalid type: integer `1`, expected a string",
        ),
        (
            r#"{"timestamp":"yesterday","symbols":[],"headline":"h","body":""}"#,
            ":3: field `timestamp`: invalid timestamp `yesterday`",
        ),
        (
            r#"{"timestamp":"2025-01-02T12:00:00Z","#,
            ":3: invalid JSON at column",
        ),
    ];
    for (bad, expected) in cases {
        let e = load_text(&format!("{good}\n\n{bad}\n{good}\n")).unwrap_err();
        assert!(e.starts_with(expected), "got `{e}`, expected `{expected}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.jsonl");
    let e = NewsCorpus::load(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot open", missing.display())),
        "{e}"
    );
}

fn universe() -> Universe {
    synth_universe(&UniverseSpec {
        symbols: 8,
        days: 120,
        seed: 3,
        ..UniverseSpec::default()
    })
    .unwrap()
}

fn news_bytes(universe: &Universe, seed: u64, dir: &Path) -> Vec<u8> {
    let path = dir.join(format!("news{seed}.jsonl"));
    write_news(&path, &synth_news(universe, seed)).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn synthetic_news_is_deterministic_and_round_trips() {
    let universe = universe();
    let dir = tempfile::tempdir().unwrap();
    let a = news_bytes(&universe, 3, dir.path());
    assert_eq!(a, news_bytes(&universe, 3, dir.path()));
    assert_ne!(a, news_bytes(&universe, 4, dir.path()));
    let first = String::from_utf8(a.clone()).unwrap();
    let first = first.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"timestamp":"2025-01-0"#) && first.contains(r#"Z","symbols":["#),
        "{first}"
    );
    let loaded = NewsCorpus::load(&dir.path().join("news3.jsonl")).unwrap();
    assert_eq!(loaded.items(), synth_news(&universe, 3).as_slice());
}

#[test]
fn synthetic_news_recaps_every_notable_move_after_the_close() {
    let universe = universe();
    let news = synth_news(&universe, 3);
    assert!(news.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let mut recaps = 0;
    for symbol in universe.symbols() {
        for w in universe.bars(symbol).unwrap().windows(2) {
            let change = w[1].close.as_f64() / w[0].close.as_f64() - 1.0;
            if change.abs() <= 0.02 {
                continue;
            }
            recaps += 1;
            let when = w[1].date.and_hms_opt(21, 30, 0).unwrap().and_utc();
            let direction = if change > 0.0 { "up" } else { "down" };
            let prefix = format!(
                "{symbol} closes {direction} {:.1}% at {}",
                change.abs() * 100.0,
                w[1].close
            );
            assert!(
                news.iter().any(|i| i.timestamp == when
                    && i.symbols == [symbol]
                    && i.headline.starts_with(&prefix)),
                "no recap `{prefix}` at {when}"
            );
        }
    }
    assert!(recaps > 50, "{recaps} notable moves in 8 × 120 days");
    let pre_market = news
        .iter()
        .filter(|i| i.timestamp.format("%H:%M").to_string() == "12:00")
        .count();
    assert!(
        (15..=60).contains(&pre_market),
        "{pre_market} pre-market items in 120 days"
    );
    assert!(news.iter().all(|i| matches!(
        i.timestamp.format("%H:%M").to_string().as_str(),
        "12:00" | "21:30"
    )));
}

/// `universe` with every price of `date` doubled (still a valid bar).
fn with_changed_day(universe: &Universe, date: NaiveDate) -> Universe {
    let double = |p: Price| Price::from_raw(p.raw() * 2, p.precision());
    let series = universe
        .symbols()
        .iter()
        .map(|s| {
            let bars = universe
                .bars(s)
                .unwrap()
                .iter()
                .map(|b| {
                    if b.date == date {
                        DailyBar {
                            open: double(b.open),
                            high: double(b.high),
                            low: double(b.low),
                            close: double(b.close),
                            ..*b
                        }
                    } else {
                        *b
                    }
                })
                .collect();
            (s.to_string(), bars)
        })
        .collect();
    Universe::from_series(series).unwrap()
}

#[test]
fn news_before_the_close_does_not_depend_on_that_days_prices() {
    let universe = universe();
    let news = synth_news(&universe, 3);
    // Days with a pre-market item (those items must not change), and the last day.
    let mut dates: Vec<NaiveDate> = news
        .iter()
        .filter(|i| i.timestamp.format("%H:%M").to_string() == "12:00")
        .map(|i| i.timestamp.date_naive())
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(dates.len(), 3);
    dates.extend(universe.last_date());
    for date in dates {
        let changed = synth_news(&with_changed_day(&universe, date), 3);
        let close = date.and_hms_opt(21, 30, 0).unwrap().and_utc();
        let before = |items: &[NewsItem]| -> Vec<NewsItem> {
            items
                .iter()
                .filter(|i| i.timestamp < close)
                .cloned()
                .collect()
        };
        assert_eq!(before(&news), before(&changed), "news before {close}");
        // The recaps of that day do change: they report its prices.
        let at_close = |items: &[NewsItem]| -> Vec<NewsItem> {
            items
                .iter()
                .filter(|i| i.timestamp == close)
                .cloned()
                .collect()
        };
        assert_ne!(at_close(&news), at_close(&changed), "recaps at {close}");
    }
}
