//! `chart.json`: what the charts of `report.html` and the dashboard's run page draw besides the
//! equity curve — each instrument's price as at most [`MAX_CANDLES`] candles, and the fills as
//! trade markers (at most [`MAX_MARKERS`]).
//!
//! The run's bars are not in its folder (they are the spec's data files), so the candles are
//! collected while the engine runs, at a constant memory whatever the number of bars: when the
//! candles are full, neighbours merge pairwise (first open, highest high, lowest low, last
//! close) and each candle then covers twice as many bars. The same bars give the same bytes.
//!
//! Prices are written as the exact decimal text of the engine's fixed-point prices (a JSON
//! number); they are only drawn, never computed with.

use std::fmt::Write as _;

use tradeloom_core::{Bar, Fill, OrderSide, Price, Quantity, Symbol, UnixNanos};

/// The artifact's file name in a run folder.
pub const CHART_FILE: &str = "chart.json";
/// Most candles kept per instrument (even, so that pairs merge exactly).
pub const MAX_CANDLES: usize = 4096;
/// Most fills kept as markers; the total is recorded beside them.
pub const MAX_MARKERS: usize = 5000;
/// Instruments whose prices are kept (the first ones of the spec).
pub const MAX_INSTRUMENTS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candle {
    ts: UnixNanos,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
}

/// The candles of one instrument.
#[derive(Clone, Debug)]
struct Candles {
    candles: Vec<Candle>,
    /// Bars per full candle.
    stride: u64,
    /// Bars in the last candle.
    in_last: u64,
}

impl Default for Candles {
    fn default() -> Self {
        Self {
            candles: Vec::new(),
            stride: 1,
            in_last: 0,
        }
    }
}

impl Candles {
    #[inline]
    fn push(&mut self, bar: &Bar) {
        if self.in_last > 0
            && self.in_last < self.stride
            && let Some(c) = self.candles.last_mut()
        {
            c.high = c.high.max(bar.high);
            c.low = c.low.min(bar.low);
            c.close = bar.close;
            self.in_last += 1;
            return;
        }
        if self.candles.len() == MAX_CANDLES {
            self.candles = self
                .candles
                .chunks(2)
                .map(|pair| {
                    let (a, b) = (pair[0], pair[pair.len() - 1]);
                    Candle {
                        ts: a.ts,
                        open: a.open,
                        high: a.high.max(b.high),
                        low: a.low.min(b.low),
                        close: b.close,
                    }
                })
                .collect();
            self.stride *= 2;
        }
        self.candles.push(Candle {
            ts: bar.ts,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
        });
        self.in_last = 1;
    }
}

#[derive(Clone, Copy, Debug)]
struct Marker {
    ts: UnixNanos,
    symbol: Symbol,
    side: OrderSide,
    quantity: Quantity,
    price: Price,
}

/// Collects a run's candles and fill markers (fed by the run's sink).
#[derive(Clone, Debug, Default)]
pub struct ChartSampler {
    /// By instrument index.
    instruments: Vec<Candles>,
    markers: Vec<Marker>,
    fills: u64,
}

impl ChartSampler {
    /// Takes a bar the engine accepted.
    #[inline]
    pub fn push_bar(&mut self, bar: &Bar) {
        let i = bar.instrument.index();
        if i >= MAX_INSTRUMENTS {
            return;
        }
        if i >= self.instruments.len() {
            self.instruments.resize_with(i + 1, Candles::default);
        }
        self.instruments[i].push(bar);
    }

    /// Takes a fill.
    #[inline]
    pub fn push_fill(&mut self, fill: &Fill, symbol: Symbol) {
        self.fills += 1;
        if self.markers.len() < MAX_MARKERS {
            self.markers.push(Marker {
                ts: fill.ts,
                symbol,
                side: fill.side,
                quantity: fill.quantity,
                price: fill.price,
            });
        }
    }

    /// `chart.json`'s text; `symbols` are the run's instruments in spec order.
    pub fn to_json(&self, symbols: &[String]) -> String {
        let mut out = String::with_capacity(64 + self.markers.len() * 64);
        out.push_str("{\"format\":1,\"instruments\":[");
        let mut first = true;
        for (i, c) in self.instruments.iter().enumerate() {
            if c.candles.is_empty() {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            let symbol = symbols.get(i).map(String::as_str).unwrap_or("");
            let _ = write!(
                out,
                "{{\"symbol\":{},\"bars_per_candle\":{},\"candles\":[",
                serde_json::Value::String(symbol.to_string()),
                c.stride
            );
            for (k, x) in c.candles.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "[{},{},{},{},{}]",
                    seconds(x.ts),
                    x.open,
                    x.high,
                    x.low,
                    x.close
                );
            }
            out.push_str("]}");
        }
        let _ = write!(out, "],\"fills_total\":{},\"fills\":[", self.fills);
        for (k, m) in self.markers.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "[{},{},\"{}\",{},{}]",
                seconds(m.ts),
                serde_json::Value::String(m.symbol.as_str().to_string()),
                m.side.as_str(),
                m.quantity,
                m.price
            );
        }
        out.push_str("]}\n");
        out
    }
}

/// Unix seconds (what the chart library takes), floored.
fn seconds(ts: UnixNanos) -> i64 {
    ts.0.div_euclid(1_000_000_000)
}

/// The `chart.json` of a folder written before it existed: no candles, no markers.
pub fn empty_json() -> String {
    ChartSampler::default().to_json(&[])
}

#[cfg(test)]
mod tests {
    use tradeloom_core::InstrumentId;

    use super::*;

    fn bar(i: i64, close: i64) -> Bar {
        let p = |v: i64| Price::from_raw(v * 1_000_000_000, 0);
        Bar {
            instrument: InstrumentId(0),
            ts: UnixNanos(i * 60_000_000_000),
            open: p(close - 1),
            high: p(close + 2),
            low: p(close - 3),
            close: p(close),
            volume: Quantity::ZERO,
        }
    }

    fn parsed(s: &ChartSampler) -> serde_json::Value {
        serde_json::from_str(&s.to_json(&["GOOG".to_string()])).unwrap()
    }

    #[test]
    fn few_bars_are_one_candle_each() {
        let mut s = ChartSampler::default();
        for i in 0..10 {
            s.push_bar(&bar(i, 100 + i));
        }
        let v = parsed(&s);
        let c = &v["instruments"][0];
        assert_eq!(c["symbol"], "GOOG");
        assert_eq!(c["bars_per_candle"], 1);
        assert_eq!(c["candles"].as_array().unwrap().len(), 10);
        assert_eq!(
            c["candles"][3],
            serde_json::json!([180, 102, 105, 100, 103])
        );
    }

    #[test]
    fn many_bars_merge_into_at_most_max_candles_keeping_extremes() {
        let mut s = ChartSampler::default();
        let n = 10 * MAX_CANDLES as i64 + 7;
        for i in 0..n {
            // One spike and one dip somewhere in the middle.
            let close = match i {
                12_345 => 900,
                15_000 => 5,
                _ => 100 + (i % 50),
            };
            s.push_bar(&bar(i, close));
        }
        let v = parsed(&s);
        let candles = v["instruments"][0]["candles"].as_array().unwrap();
        assert!(candles.len() <= MAX_CANDLES, "{}", candles.len());
        assert_eq!(v["instruments"][0]["bars_per_candle"], 16);
        let high = candles
            .iter()
            .map(|c| c[2].as_f64().unwrap())
            .fold(0.0, f64::max);
        let low = candles
            .iter()
            .map(|c| c[3].as_f64().unwrap())
            .fold(f64::MAX, f64::min);
        assert_eq!((high, low), (902.0, 2.0));
        // The first candle opens with the first bar, the last closes with the last bar.
        assert_eq!(candles[0][1], 99);
        assert_eq!(candles[candles.len() - 1][4], 100 + (n - 1) % 50);
        let times: Vec<i64> = candles.iter().map(|c| c[0].as_i64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn markers_stop_at_the_cap_and_count_every_fill() {
        let mut s = ChartSampler::default();
        let fill = Fill {
            id: 1,
            order_id: tradeloom_core::OrderId(1),
            instrument: InstrumentId(0),
            ts: UnixNanos(5_000_000_000),
            side: OrderSide::Buy,
            quantity: Quantity::from_raw(10_000_000_000, 0).unwrap(),
            price: Price::from_raw(101_500_000_000, 1),
            fee: tradeloom_core::Money::from_raw(0, tradeloom_core::Currency::USD),
            liquidity: tradeloom_core::Liquidity::Taker,
        };
        for _ in 0..MAX_MARKERS + 3 {
            s.push_fill(&fill, Symbol::new("GOOG").unwrap());
        }
        let v = parsed(&s);
        assert_eq!(v["fills_total"], MAX_MARKERS as u64 + 3);
        assert_eq!(v["fills"].as_array().unwrap().len(), MAX_MARKERS);
        assert_eq!(
            v["fills"][0],
            serde_json::json!([5, "GOOG", "BUY", 10, 101.5])
        );
    }
}
