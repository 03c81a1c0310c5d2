//! Deterministic synthetic bars: a geometric random walk from a seed (xoshiro256** seeded by
//! splitmix64, Box–Muller normals). The same spec gives byte-identical files on every machine.
//!
//! Each bar opens at the previous close; the close follows `exp(σ·√dt·z − σ²dt/2)`; high and low
//! extend beyond open/close by half-normal fractions of the bar's σ; prices are rounded to the
//! precision and kept valid (`high ≥ max(open, close)`, `low ≤ min(open, close)`, `low ≥ one
//! tick`). Bars are evenly spaced, 24/7. Volume is a positive whole number around 1000.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use tradeloom_core::fixed::{FIXED_PRECISION, POW10};
use tradeloom_core::{Bar, InstrumentId, Price, Quantity, UnixNanos};

use crate::error::DataError;
use crate::format::DataFormat;
use crate::writer::BarWriter;

/// A bar interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timeframe {
    pub seconds: u32,
}

impl Default for Timeframe {
    fn default() -> Self {
        Self { seconds: 60 }
    }
}

impl FromStr for Timeframe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let seconds = match s {
            "1s" => 1,
            "1m" => 60,
            "5m" => 300,
            "15m" => 900,
            "1h" => 3600,
            "4h" => 14_400,
            "1d" => 86_400,
            other => {
                return Err(format!(
                    "unknown timeframe `{other}`; expected 1s, 1m, 5m, 15m, 1h, 4h or 1d"
                ));
            }
        };
        Ok(Self { seconds })
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seconds {
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSpec {
    pub symbol: String,
    pub bars: u64,
    pub timeframe: Timeframe,
    pub seed: u64,
    /// First bar's timestamp (default 2024-01-01T00:00:00Z).
    pub start: UnixNanos,
    /// First open (default 100).
    pub start_price: f64,
    /// Annualised volatility (default 0.3).
    pub volatility: f64,
    /// Price decimals (default 2).
    pub price_precision: u8,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            symbol: "SYN".to_string(),
            bars: 1000,
            timeframe: Timeframe::default(),
            seed: 42,
            start: UnixNanos(1_704_067_200_000_000_000),
            start_price: 100.0,
            volatility: 0.3,
            price_precision: 2,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SynthSummary {
    pub path: String,
    pub format: DataFormat,
    pub symbol: String,
    pub bars: u64,
    pub timeframe: String,
    pub seed: u64,
    pub first: Option<UnixNanos>,
    pub last: Option<UnixNanos>,
    pub first_open: Option<Price>,
    pub last_close: Option<Price>,
}

/// xoshiro256** seeded by splitmix64 (also drives the synthetic universe and news).
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1].
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    pub(crate) fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// An iterator of synthetic bars (instrument index 0).
pub fn synth_bars(spec: &SynthSpec) -> impl Iterator<Item = Bar> + use<> {
    let p = spec.price_precision.min(FIXED_PRECISION);
    let step = POW10[usize::from(FIXED_PRECISION - p)];
    let scale = 10f64.powi(i32::from(p));
    let to_raw = move |x: f64| ((x * scale).round() as i64).max(1) * step;
    let dt = f64::from(spec.timeframe.seconds) / (365.0 * 86_400.0);
    let sigma = spec.volatility * dt.sqrt();
    let interval = i64::from(spec.timeframe.seconds) * 1_000_000_000;
    let mut rng = Rng::new(spec.seed);
    let mut close = to_raw(spec.start_price);
    let start = spec.start.0;
    (0..spec.bars).map(move |i| {
        let open = close;
        let o = open as f64 / 1e9;
        let c = o * (sigma * rng.normal() - 0.5 * sigma * sigma).exp();
        let close_raw = to_raw(c);
        let top = open.max(close_raw);
        let bottom = open.min(close_raw);
        let high = to_raw(top as f64 / 1e9 * (1.0 + 0.5 * sigma * rng.normal().abs())).max(top);
        let low = to_raw(bottom as f64 / 1e9 * (1.0 - 0.5 * sigma * rng.normal().abs()))
            .min(bottom)
            .max(step);
        let volume = (1000.0 * (0.5 * rng.normal()).exp()).round().max(1.0) as i64;
        close = close_raw;
        Bar {
            instrument: InstrumentId(0),
            ts: UnixNanos(start + i as i64 * interval),
            open: Price::from_raw(open, p),
            high: Price::from_raw(high, p),
            low: Price::from_raw(low, p),
            close: Price::from_raw(close_raw, p),
            volume: Quantity::from_raw(volume * 1_000_000_000, 0).unwrap_or(Quantity::ZERO),
        }
    })
}

/// Writes synthetic bars to `out` (format from the extension).
pub fn write_synth(spec: &SynthSpec, out: &Path) -> Result<SynthSummary, DataError> {
    let format = DataFormat::from_path(out).ok_or_else(|| DataError::Write {
        path: out.to_path_buf(),
        message: "unknown extension; use .csv, .parquet or .arrow".to_string(),
    })?;
    let mut writer = BarWriter::create(out, Some(format))?;
    let mut summary = SynthSummary {
        path: out.display().to_string(),
        format,
        symbol: spec.symbol.clone(),
        bars: 0,
        timeframe: spec.timeframe.to_string(),
        seed: spec.seed,
        first: None,
        last: None,
        first_open: None,
        last_close: None,
    };
    for bar in synth_bars(spec) {
        writer.write(&bar)?;
        summary.first.get_or_insert(bar.ts);
        summary.first_open.get_or_insert(bar.open);
        summary.last = Some(bar.ts);
        summary.last_close = Some(bar.close);
    }
    summary.bars = writer.finish()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid() {
        let spec = SynthSpec {
            bars: 5000,
            ..SynthSpec::default()
        };
        let a: Vec<Bar> = synth_bars(&spec).collect();
        let b: Vec<Bar> = synth_bars(&spec).collect();
        assert_eq!(a, b);
        let c: Vec<Bar> = synth_bars(&SynthSpec {
            seed: 43,
            ..spec.clone()
        })
        .collect();
        assert_ne!(a, c);
        for w in a.windows(2) {
            assert!(w[0].ts < w[1].ts);
            assert_eq!(w[1].open, w[0].close);
        }
        for bar in &a {
            bar.validate().unwrap();
        }
    }

    #[test]
    fn timeframes_parse_and_print() {
        for t in ["1s", "1m", "5m", "15m", "1h", "4h", "1d"] {
            assert_eq!(t.parse::<Timeframe>().unwrap().to_string(), t);
        }
        assert!("2w".parse::<Timeframe>().is_err());
    }
}
