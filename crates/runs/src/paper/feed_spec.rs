//! `feed:` and the other fields of a paper spec.
//!
//! ```yaml
//! mode: paper
//! feed: {type: replay, speed: max}   # or speed: 1 (real time), 60 (a minute per second)
//! # feed: {type: scan_dir, path: scans/, symbol_field: symbol, price_field: price}
//! # feed: {type: websocket, url: "ws://127.0.0.1:9000/stream", preset: binance_kline}
//! stop_at: 2026-12-31T00:00:00Z      # optional
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `feed:` of a paper spec: where the market data comes from.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeedSpec {
    /// The spec's `data:` files played on the wall clock.
    Replay(ReplayFeedSpec),
    /// Scan files of a directory, through the bridge and the feature map.
    ScanDir(ScanDirFeedSpec),
    /// A JSON bar stream over WebSocket.
    Websocket(WebsocketFeedSpec),
}

impl FeedSpec {
    /// `replay`, `scan_dir` or `websocket`.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedSpec::Replay(_) => "replay",
            FeedSpec::ScanDir(_) => "scan_dir",
            FeedSpec::Websocket(_) => "websocket",
        }
    }
}

/// `speed:` of a replay: `max` (as fast as the engine goes) or a factor of real time.
#[derive(Clone, Copy, Debug, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum ReplaySpeed {
    /// `max`.
    #[schemars(with = "MaxSchema")]
    Max,
    /// `1` = real time, `60` = a minute of bars per second.
    Factor(f64),
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum MaxSchema {
    #[serde(rename = "max")]
    Max,
}

impl<'de> Deserialize<'de> for ReplaySpeed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) if t == "max" => Ok(ReplaySpeed::Max),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "speed: expected `max` or a positive number, got `{t}`"
            ))),
            Raw::Number(n) if n.is_finite() && n > 0.0 => Ok(ReplaySpeed::Factor(n)),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "speed: expected `max` or a positive number, got {n}"
            ))),
        }
    }
}

/// Written as the spec says it: `max`, or the number (so `run_spec.yaml` reads back).
impl Serialize for ReplaySpeed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ReplaySpeed::Max => s.serialize_str("max"),
            ReplaySpeed::Factor(n) => s.serialize_f64(*n),
        }
    }
}

impl Default for ReplaySpeed {
    fn default() -> Self {
        ReplaySpeed::Factor(1.0)
    }
}

/// `feed: {type: replay, …}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayFeedSpec {
    /// `max` or a factor of real time (default 1).
    #[serde(default)]
    pub speed: ReplaySpeed,
}

/// `feed: {type: scan_dir, …}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanDirFeedSpec {
    /// The directory the scan files appear in, relative to the spec file.
    pub path: String,
    /// The column naming the instrument (default `symbol`).
    #[serde(default = "default_symbol_field")]
    pub symbol_field: String,
    /// The column holding the price the instrument is marked and filled at (default `price`).
    #[serde(default = "default_price_field")]
    pub price_field: String,
    /// The feature map the scans are published into (default: the spec's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
}

fn default_symbol_field() -> String {
    "symbol".to_string()
}

fn default_price_field() -> String {
    "price".to_string()
}

/// `feed: {type: websocket, …}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsocketFeedSpec {
    /// `ws://` or `wss://` URL; the address must pass the SSRF guard's allow-list.
    pub url: String,
    /// A known message format (`binance_kline`); without it, `fields` maps a generic JSON bar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<WebsocketPreset>,
    /// Where each bar value is in a generic JSON message (JSON pointers or top-level keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<WebsocketFields>,
    /// A text message sent after each connect (e.g. a subscribe request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<String>,
    /// First reconnect delay in milliseconds (default 200), doubled up to `max_backoff_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Longest reconnect delay in milliseconds (default 30,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
}

/// `preset:` of a WebSocket feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebsocketPreset {
    /// Binance's public kline stream (`{"e":"kline","k":{"t","s","o","h","l","c","v","x"}}`):
    /// only closed klines (`x: true`) are bars.
    BinanceKline,
}

/// `fields:` of a generic WebSocket feed: where each value of a bar is in a message.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsocketFields {
    /// The instrument's symbol (default `symbol`).
    #[serde(default = "default_symbol_field")]
    pub symbol: String,
    /// The bar's time: epoch milliseconds or RFC 3339 (default `ts`).
    #[serde(default = "default_ts_field")]
    pub ts: String,
    #[serde(default = "default_open")]
    pub open: String,
    #[serde(default = "default_high")]
    pub high: String,
    #[serde(default = "default_low")]
    pub low: String,
    #[serde(default = "default_close")]
    pub close: String,
    #[serde(default = "default_volume")]
    pub volume: String,
}

fn default_ts_field() -> String {
    "ts".to_string()
}
fn default_open() -> String {
    "open".to_string()
}
fn default_high() -> String {
    "high".to_string()
}
fn default_low() -> String {
    "low".to_string()
}
fn default_close() -> String {
    "close".to_string()
}
fn default_volume() -> String {
    "volume".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_speed_reads_back_as_it_was_written() {
        for text in [
            "{type: replay, speed: max}",
            "{type: replay, speed: 60}",
            "{type: replay, speed: 0.5}",
        ] {
            let feed: FeedSpec = yaml_serde::from_str(text).unwrap();
            let written = yaml_serde::to_string(&feed).unwrap();
            let again: FeedSpec = yaml_serde::from_str(&written).unwrap();
            assert_eq!(again, feed, "{text} was written as {written}");
        }
        let max: FeedSpec = yaml_serde::from_str("{type: replay, speed: max}").unwrap();
        assert!(yaml_serde::to_string(&max).unwrap().contains("speed: max"));
    }
}
