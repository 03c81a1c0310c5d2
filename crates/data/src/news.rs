//! [`NewsCorpus`]: timestamped news items about symbols, read from JSONL and searched without
//! look-ahead; [`synth_news`] writes a deterministic demo corpus for a [`Universe`].
//!
//! A JSONL file holds one object per line, fields in this order when written:
//!
//! ```json
//! {"timestamp":"2025-01-06T21:30:00Z","symbols":["AAA"],"headline":"AAA closes up 3.1% at 104.20","body":"…"}
//! ```
//!
//! All four fields are required and no others are allowed; `timestamp` is RFC 3339 (any offset
//! is accepted and converted to UTC). Blank lines are skipped.

use std::io::Write as _;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Place};
use crate::synth::Rng;
use crate::universe::{DailyBar, NEWS_STREAM, Universe, stream_rng};

/// One news item. It is known from `timestamp` on, never before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsItem {
    /// When the item was published (UTC).
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// The symbols it is about; may be empty for market-wide news.
    pub symbols: Vec<String>,
    pub headline: String,
    pub body: String,
}

/// RFC 3339 timestamps: written in UTC with `Z` and only the fractional digits needed.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                D::Error::custom(format!(
                    "invalid timestamp `{text}` ({e}); expected RFC 3339 such as 2025-01-02T21:30:00Z"
                ))
            })
    }
}

const FIELDS: &str = "`timestamp`, `symbols`, `headline`, `body`";

/// serde_json's message without its " at line L column C" suffix (each JSONL line is parsed on
/// its own, so the line would always be 1).
fn without_location(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Why one line of a news file is not a news item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NewsLineError {
    /// The headline is empty or blank.
    #[error("field `headline` is empty")]
    EmptyHeadline,
    /// The line is not JSON.
    #[error("invalid JSON at column {column}: {reason}")]
    InvalidJson { column: usize, reason: String },
    /// The line is JSON but not an object; `start` is its first 40 characters.
    #[error("expected a JSON object with the fields {fields}, found {start}", fields = FIELDS)]
    NotAnObject { start: String },
    /// A field holds a value of the wrong type.
    #[error("field `{field}`: {reason}")]
    Field { field: String, reason: String },
    /// A field is missing or unknown (serde's message names it).
    #[error("{0}")]
    Fields(String),
}

/// Parses one JSONL line; the error names the field at fault where there is one.
fn parse_item(line: &str) -> Result<NewsItem, NewsLineError> {
    let error = match serde_json::from_str::<NewsItem>(line) {
        Ok(item) if item.headline.trim().is_empty() => {
            return Err(NewsLineError::EmptyHeadline);
        }
        Ok(item) => return Ok(item),
        Err(e) => e,
    };
    if error.is_syntax() || error.is_eof() {
        return Err(NewsLineError::InvalidJson {
            column: error.column(),
            reason: without_location(&error),
        });
    }
    // Missing and unknown fields are named by serde; a value of the wrong type is not, so find
    // the field by checking each on its own.
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) else {
        return Err(NewsLineError::NotAnObject {
            start: line.chars().take(40).collect(),
        });
    };
    for (name, value) in &map {
        let result = match name.as_str() {
            "timestamp" => rfc3339::deserialize(value).map(drop),
            "symbols" => Vec::<String>::deserialize(value).map(drop),
            "headline" | "body" => String::deserialize(value).map(drop),
            _ => continue,
        };
        if let Err(e) = result {
            return Err(NewsLineError::Field {
                field: name.clone(),
                reason: without_location(&e),
            });
        }
    }
    Err(NewsLineError::Fields(without_location(&error)))
}

/// News items in timestamp order (items with equal timestamps keep their given order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewsCorpus {
    items: Vec<NewsItem>,
    /// Lower-cased `headline\nbody` of each item, for search.
    text: Vec<String>,
}

impl NewsCorpus {
    /// A corpus with no items.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads a JSONL file (see the module doc). Errors are `PATH:LINE: …` and name the bad,
    /// missing or unknown field.
    pub fn load(path: &Path) -> Result<NewsCorpus, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let item = parse_item(line).map_err(|e| DataError::Row {
                path: path.to_path_buf(),
                place: Place::Line(i as u64 + 1),
                message: e.to_string(),
            })?;
            items.push(item);
        }
        Ok(Self::from_items(items))
    }

    /// A corpus of `items`, sorted by timestamp (stable).
    pub fn from_items(mut items: Vec<NewsItem>) -> Self {
        items.sort_by_key(|item| item.timestamp);
        let text = items
            .iter()
            .map(|item| format!("{}\n{}", item.headline, item.body).to_lowercase())
            .collect();
        Self { items, text }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every item, in timestamp order.
    pub fn items(&self) -> &[NewsItem] {
        &self.items
    }

    /// At most `limit` items published at or before `as_of` (never later: no look-ahead) that
    /// match `query`.
    ///
    /// The query is split into terms at whitespace and commas, surrounding punctuation is
    /// dropped, and matching ignores case. An item matches a term when one of its symbols equals
    /// it or its headline or body contains it. Items are ranked by the number of terms they
    /// match, then newest first; items matching no term are left out. A blank query returns the
    /// newest items.
    pub fn search(&self, query: &str, limit: usize, as_of: DateTime<Utc>) -> Vec<&NewsItem> {
        let visible = self.items.partition_point(|item| item.timestamp <= as_of);
        let mut terms: Vec<String> = query
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|t| {
                t.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|t| !t.is_empty())
            .collect();
        terms.sort();
        terms.dedup();
        if terms.is_empty() {
            return self.items[..visible].iter().rev().take(limit).collect();
        }
        let mut ranked: Vec<(usize, usize)> = (0..visible)
            .filter_map(|i| {
                let item = &self.items[i];
                let score = terms
                    .iter()
                    .filter(|t| {
                        item.symbols.iter().any(|s| s.eq_ignore_ascii_case(t))
                            || self.text[i].contains(t.as_str())
                    })
                    .count();
                (score > 0).then_some((score, i))
            })
            .collect();
        // Items are in timestamp order, so a higher index is newer (or later in the file).
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        ranked
            .into_iter()
            .take(limit)
            .map(|(_, i)| &self.items[i])
            .collect()
    }
}

/// When close recaps are published: after the US close, so a session on that date never sees
/// them.
const RECAP_TIME: (u32, u32) = (21, 30);
/// When pre-market items are published: before the open, and they carry no price of that day.
const PRE_MARKET_TIME: (u32, u32) = (12, 0);
/// A move larger than this (close to close) gets a recap.
const NOTABLE_MOVE: f64 = 0.02;
/// The chance of a pre-market item on a trading day.
const PRE_MARKET_CHANCE: f64 = 0.3;

const ANALYSTS: [&str; 5] = [
    "Northgate Research",
    "Harbor Lane Securities",
    "Meridian Capital",
    "Bluefield Partners",
    "Ashcombe & Co",
];
const RATINGS: [&str; 4] = ["Buy", "Hold", "Overweight", "Neutral"];
const THEMES: [&str; 6] = [
    "input costs",
    "pricing power",
    "demand trends",
    "margin outlook",
    "a regulatory review",
    "capacity expansion",
];
const EVENTS: [&str; 3] = [
    "Global Industrials Conference",
    "Technology Leaders Summit",
    "Consumer & Retail Forum",
];

fn at(date: NaiveDate, (h, m): (u32, u32)) -> DateTime<Utc> {
    date.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN))
        .and_utc()
}

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[(rng.next_u64() % list.len() as u64) as usize]
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Close-to-close change as a fraction (for text only; never for accounting).
fn change(prev: &DailyBar, bar: &DailyBar) -> f64 {
    bar.close.as_f64() / prev.close.as_f64() - 1.0
}

/// A pre-market item about one symbol, from what was known before `date` opened.
fn pre_market_item(
    universe: &Universe,
    date: NaiveDate,
    rng: &mut Rng,
    symbols: &[&str],
) -> Option<NewsItem> {
    // Draw the same numbers every day, so later days do not depend on this day's branch.
    let (chance, kind, target_u) = (rng.uniform(), rng.next_u64() % 4, rng.uniform());
    let symbol = pick(rng, symbols);
    let peer = pick(rng, symbols);
    let (analyst, rating, theme, event) = (
        pick(rng, &ANALYSTS),
        pick(rng, &RATINGS),
        pick(rng, &THEMES),
        pick(rng, &EVENTS),
    );
    if chance >= PRE_MARKET_CHANCE {
        return None;
    }
    let last = universe.last_bar_before(symbol, date);
    let last_close = last.map_or(String::new(), |b| {
        format!(" {symbol} last closed at {} on {}.", b.close, b.date)
    });
    let (headline, body, mut about) = match (kind, last) {
        (0, Some(b)) => {
            let target = (b.close.as_f64() * (1.05 + 0.2 * target_u)).round();
            (
                format!("{analyst} sets {symbol} price target at {target:.0}"),
                format!("{analyst} rates {symbol} {rating}, citing {theme}.{last_close}"),
                vec![symbol],
            )
        }
        (1, _) => (
            format!("{symbol} to present at the {event} next week"),
            format!("Investors expect questions on {theme}.{last_close}"),
            vec![symbol],
        ),
        (2, _) if peer != symbol => (
            format!("Sector note: {theme} in focus for {symbol} and {peer}"),
            format!(
                "{analyst} sees {theme} as the main question for {symbol} and {peer} this quarter."
            ),
            vec![symbol, peer],
        ),
        _ => (
            format!("{analyst} reiterates {rating} on {symbol}"),
            format!("The note cites {theme}; estimates are unchanged.{last_close}"),
            vec![symbol],
        ),
    };
    about.sort_unstable();
    Some(NewsItem {
        timestamp: at(date, PRE_MARKET_TIME),
        symbols: about.into_iter().map(str::to_string).collect(),
        headline,
        body,
    })
}

/// The close recaps of `date`: a market wrap when two or more symbols traded, and one item per
/// notable move.
fn recaps(universe: &Universe, date: NaiveDate, symbols: &[&str]) -> Vec<NewsItem> {
    let timestamp = at(date, RECAP_TIME);
    let mut moves = Vec::new();
    let mut items = Vec::new();
    for &symbol in symbols {
        let (Some(bar), Some(prev)) = (
            universe.bar(symbol, date),
            universe.last_bar_before(symbol, date),
        ) else {
            continue;
        };
        let pct = 100.0 * change(prev, bar);
        moves.push((symbol, pct));
        if pct.abs() <= 100.0 * NOTABLE_MOVE {
            continue;
        }
        // Heavy volume: 1.5× the average of up to 20 earlier days (at least 5), so the recap
        // uses nothing after `date`.
        let earlier = universe.bars(symbol).map_or(&[][..], |bars| {
            let end = bars.partition_point(|b| b.date < date);
            &bars[end.saturating_sub(20)..end]
        });
        let ratio = (earlier.len() >= 5).then(|| {
            let mean =
                earlier.iter().map(|b| b.volume.as_f64()).sum::<f64>() / earlier.len() as f64;
            bar.volume.as_f64() / mean.max(1.0)
        });
        let heavy = ratio.is_some_and(|r| r > 1.5);
        let direction = if pct > 0.0 { "up" } else { "down" };
        let volume_note = ratio.map_or(String::new(), |r| format!(" ({r:.1}× its 20-day average)"));
        items.push(NewsItem {
            timestamp,
            symbols: vec![symbol.to_string()],
            headline: format!(
                "{symbol} closes {direction} {:.1}% at {}{}",
                pct.abs(),
                bar.close,
                if heavy { " on heavy volume" } else { "" }
            ),
            body: format!(
                "{symbol} closed at {} on {date}, {direction} {:.2}% from {}. Day range {}–{}, volume {}{volume_note}.",
                bar.close,
                pct.abs(),
                prev.close,
                bar.low,
                bar.high,
                grouped(bar.volume.as_f64().round() as u64),
            ),
        });
    }
    if moves.len() >= 2 {
        let best = moves
            .iter()
            .copied()
            .reduce(|a, b| if b.1 > a.1 { b } else { a });
        let worst = moves
            .iter()
            .copied()
            .reduce(|a, b| if b.1 < a.1 { b } else { a });
        if let (Some(best), Some(worst)) = (best, worst) {
            let up = moves.iter().filter(|m| m.1 > 0.0).count();
            let average = moves.iter().map(|m| m.1).sum::<f64>() / moves.len() as f64;
            let mut about = vec![best.0.to_string(), worst.0.to_string()];
            about.sort();
            about.dedup();
            items.insert(
                0,
                NewsItem {
                    timestamp,
                    symbols: about,
                    headline: format!(
                        "Market wrap {date}: {up} of {} symbols higher; {} leads ({:+.1}%), {} lags ({:+.1}%)",
                        moves.len(),
                        best.0,
                        best.1,
                        worst.0,
                        worst.1
                    ),
                    body: format!(
                        "The average close-to-close move was {average:+.2}%. {} of {} symbols moved more than {:.0}%.",
                        moves.iter().filter(|m| m.1.abs() > 100.0 * NOTABLE_MOVE).count(),
                        moves.len(),
                        100.0 * NOTABLE_MOVE
                    ),
                },
            );
        }
    }
    items
}

/// A deterministic demo corpus for `universe`. For each trading day: sometimes (30 %) a
/// pre-market item at 12:00 UTC — analyst or sector chatter that uses only earlier closes —
/// and at 21:30 UTC, after the close, a market wrap and a recap of every move above 2 %
/// ("AAA closes up 3.1% at 104.20 on heavy volume"). A session on date D therefore never sees
/// D's prices in the news. Sorted by timestamp; the same universe and seed give the same items.
pub fn synth_news(universe: &Universe, seed: u64) -> Vec<NewsItem> {
    let symbols = universe.symbols();
    let mut rng = stream_rng(seed, NEWS_STREAM);
    let mut items = Vec::new();
    for date in universe.trading_dates() {
        items.extend(pre_market_item(universe, date, &mut rng, &symbols));
        items.extend(recaps(universe, date, &symbols));
    }
    items.sort_by_key(|item| item.timestamp);
    items
}

/// Writes `items` as JSONL (one object per line, fields `timestamp`, `symbols`, `headline`,
/// `body` in that order, timestamps in UTC with `Z`).
pub fn write_news(path: &Path, items: &[NewsItem]) -> Result<(), DataError> {
    let error = |message: String| DataError::Write {
        path: path.to_path_buf(),
        message,
    };
    let mut out = Vec::with_capacity(256 * items.len());
    for item in items {
        serde_json::to_writer(&mut out, item).map_err(|e| error(e.to_string()))?;
        out.push(b'\n');
    }
    let mut file = std::fs::File::create(path).map_err(|e| error(e.to_string()))?;
    file.write_all(&out).map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_ts(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn writes_utc_with_z_and_reads_offsets() {
        assert_eq!(
            format_ts(ts("2025-01-02T23:30:00+02:00")),
            "2025-01-02T21:30:00Z"
        );
        let item = parse_item(
            r#"{"timestamp":"2025-01-02T23:30:00+02:00","symbols":["AAA"],"headline":"h","body":""}"#,
        )
        .unwrap();
        assert_eq!(item.timestamp, ts("2025-01-02T21:30:00Z"));
        let line = serde_json::to_string(&item).unwrap();
        assert_eq!(
            line,
            r#"{"timestamp":"2025-01-02T21:30:00Z","symbols":["AAA"],"headline":"h","body":""}"#
        );
    }

    #[test]
    fn names_the_field_at_fault() {
        let cases = [
            (
                r#"{"symbols":[],"headline":"h","body":""}"#,
                "missing field `timestamp`",
            ),
            (
                r#"{"timestamp":"2025-01-02T12:00:00Z","symbols":[],"headline":"h","body":"","url":"x"}"#,
                "unknown field `url`",
            ),
            (
                r#"{"timestamp":"2025-01-02T12:00:00Z","symbols":"AAA","headline":"h","body":""}"#,
                "field `symbols`: invalid type: string \"AAA\", expected a sequence",
            ),
            (
                r#"{"timestamp":"2025-01-02","symbols":[],"headline":"h","body":""}"#,
                "field `timestamp`: invalid timestamp `2025-01-02`",
            ),
            (
                r#"{"timestamp":"2025-01-02T12:00:00Z","symbols":[],"headline":" ","body":""}"#,
                "field `headline` is empty",
            ),
            (r#"{"timestamp": "#, "invalid JSON at column"),
            ("[1, 2]", "expected a JSON object"),
        ];
        for (line, expected) in cases {
            let e = parse_item(line).unwrap_err().to_string();
            assert!(
                e.contains(expected),
                "{line}: got `{e}`, expected `{expected}`"
            );
            assert!(!e.contains("at line"), "{e}");
        }
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
