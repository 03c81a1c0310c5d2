//! Turning one WebSocket text message into a [`Bar`]: the `binance_kline` preset and the
//! generic field mapping. Values are read from the message's own text (JSON numbers are never
//! converted to `f64`): a number or a numeric string becomes a fixed-point [`Price`] at the
//! instrument's price precision (more significant decimals than that is an error, trailing
//! zeros are fine), the volume is rounded to 10^-9 as bar files' volumes are.
//!
//! A message that cannot be used gives a reason naming the field (`k.c`, `/data/price`) and at
//! most a short excerpt of the offending value, never the raw message.

use std::collections::{BTreeMap, HashMap};

use serde_json::value::RawValue;
use tradeloom_core::{Bar, Instrument, InstrumentId, Price, Quantity, UnixNanos};
use tradeloom_runs::paper::{WebsocketFields, WebsocketPreset};

/// What a message was.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decoded {
    /// A completed bar.
    Bar(Bar),
    /// A message that carries no bar and is not an error (a kline still open, a subscription
    /// acknowledgement).
    Ignored,
}

/// An instrument as the decoder needs it.
#[derive(Clone, Copy, Debug)]
struct Target {
    id: InstrumentId,
    price_precision: u8,
    size_precision: u8,
}

/// How messages are read: the preset or the generic mapping, and the spec's instruments by
/// symbol.
#[derive(Clone, Debug)]
pub(crate) struct Decoder {
    format: Format,
    instruments: HashMap<String, Target>,
}

#[derive(Clone, Debug)]
enum Format {
    BinanceKline,
    Fields(Box<FieldPaths>),
}

/// Where each value of a bar is, compiled from `fields:`.
#[derive(Clone, Debug)]
struct FieldPaths {
    symbol: FieldPath,
    ts: FieldPath,
    open: FieldPath,
    high: FieldPath,
    low: FieldPath,
    close: FieldPath,
    volume: FieldPath,
}

/// A top-level key (`price`) or a JSON pointer (`/data/k/c`, RFC 6901).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldPath {
    /// As written in the spec; how errors name the field.
    shown: String,
    segments: Vec<String>,
}

impl FieldPath {
    /// Reads `text`: a JSON pointer when it starts with `/` (`~1` is `/`, `~0` is `~`), else
    /// one key. Errors name the problem.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err(
                "must not be empty (a key like `price` or a JSON pointer like `/k/c`)".into(),
            );
        }
        let segments = match text.strip_prefix('/') {
            None => vec![text.to_string()],
            Some(rest) => {
                let mut segments = Vec::new();
                for raw in rest.split('/') {
                    if raw.contains('~') && !valid_escapes(raw) {
                        return Err(format!(
                            "`{text}` is not a JSON pointer: `~` must be followed by 0 or 1"
                        ));
                    }
                    segments.push(raw.replace("~1", "/").replace("~0", "~"));
                }
                segments
            }
        };
        Ok(Self {
            shown: text.to_string(),
            segments,
        })
    }

    #[cfg(test)]
    fn named(shown: &str, segments: &[&str]) -> Self {
        Self {
            shown: shown.to_string(),
            segments: segments.iter().map(|s| (*s).to_string()).collect(),
        }
    }
}

fn valid_escapes(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b != b'~' || matches!(bytes.get(i + 1), Some(b'0' | b'1')))
}

impl Decoder {
    /// A decoder for `preset` or `fields` (at most one of them; neither is the generic mapping
    /// with its default keys) over `instruments`. Errors name the `fields` entry at fault.
    pub(crate) fn new(
        preset: Option<WebsocketPreset>,
        fields: Option<&WebsocketFields>,
        instruments: &[Instrument],
    ) -> Result<Self, String> {
        let format = match (preset, fields) {
            (Some(WebsocketPreset::BinanceKline), Some(_)) => {
                return Err("feed.fields: not used with `preset: binance_kline` (the preset fixes every field); remove one of them".into());
            }
            (Some(WebsocketPreset::BinanceKline), None) => Format::BinanceKline,
            (None, fields) => {
                let defaults;
                let f = match fields {
                    Some(f) => f,
                    None => {
                        defaults = default_fields();
                        &defaults
                    }
                };
                let path = |name: &str, text: &str| {
                    FieldPath::parse(text).map_err(|e| format!("feed.fields.{name}: {e}"))
                };
                Format::Fields(Box::new(FieldPaths {
                    symbol: path("symbol", &f.symbol)?,
                    ts: path("ts", &f.ts)?,
                    open: path("open", &f.open)?,
                    high: path("high", &f.high)?,
                    low: path("low", &f.low)?,
                    close: path("close", &f.close)?,
                    volume: path("volume", &f.volume)?,
                }))
            }
        };
        let instruments = instruments
            .iter()
            .map(|i| {
                (
                    i.symbol.as_str().to_string(),
                    Target {
                        id: i.id,
                        price_precision: i.price_precision,
                        size_precision: i.size_precision,
                    },
                )
            })
            .collect();
        Ok(Self {
            format,
            instruments,
        })
    }

    /// Reads one text message; `Err` is the reason it is malformed.
    pub(crate) fn decode(&self, text: &str) -> Result<Decoded, String> {
        let root: &RawValue = serde_json::from_str(text).map_err(|e| {
            let why = match e.classify() {
                serde_json::error::Category::Eof => "cut short",
                _ => "syntax",
            };
            format!("not JSON ({why})")
        })?;
        match &self.format {
            Format::BinanceKline => self.binance(root),
            Format::Fields(paths) => self.generic(root, paths),
        }
    }

    fn binance(&self, root: &RawValue) -> Result<Decoded, String> {
        let top = object(root, "the message")?;
        // `{"result": null, "id": 1}` answers a SUBSCRIBE request.
        if top.contains_key("id") && top.contains_key("result") {
            return Ok(Decoded::Ignored);
        }
        // The combined stream wraps each event: {"stream": "btcusdt@kline_1m", "data": {…}}.
        let (event, prefix) = match (top.get("stream"), top.get("data")) {
            (Some(_), Some(data)) => (object(data, "data")?, "data."),
            _ => (top, ""),
        };
        if let Some(e) = event.get("e") {
            let kind = string(e, &format!("{prefix}e"))?;
            if kind != "kline" {
                return Err(format!(
                    "field `{prefix}e`: `{}` is not a kline event",
                    excerpt(&kind)
                ));
            }
        }
        let k_name = format!("{prefix}k");
        let k = event
            .get("k")
            .ok_or_else(|| format!("field `{k_name}` is missing"))?;
        let k = object(k, &k_name)?;
        let get = |key: &str| -> Result<&RawValue, String> {
            k.get(key)
                .copied()
                .ok_or_else(|| format!("field `{k_name}.{key}` is missing"))
        };
        let closed_name = format!("{k_name}.x");
        match get("x")?.get() {
            "true" => {}
            "false" => return Ok(Decoded::Ignored),
            _ => return Err(format!("field `{closed_name}`: expected true or false")),
        }
        let symbol_name = format!("{k_name}.s");
        let symbol = string(get("s")?, &symbol_name)?;
        let target = self.target(&symbol, &symbol_name)?;
        // The kline's open time stamps the bar, as bar files are stamped (`Bar::ts` is the
        // open time).
        let ts_name = format!("{k_name}.t");
        let ts = epoch_millis(number_text(get("t")?, &ts_name)?.as_str(), &ts_name)?;
        let price = |key: &str| -> Result<Price, String> {
            let name = format!("{k_name}.{key}");
            parse_price(
                &number_text(get(key)?, &name)?,
                target.price_precision,
                &name,
            )
        };
        let volume_name = format!("{k_name}.v");
        let volume = parse_volume(
            &number_text(get("v")?, &volume_name)?,
            target.size_precision,
            &volume_name,
        )?;
        bar(
            target,
            ts,
            price("o")?,
            price("h")?,
            price("l")?,
            price("c")?,
            volume,
            &symbol,
        )
    }

    fn generic(&self, root: &RawValue, paths: &FieldPaths) -> Result<Decoded, String> {
        let symbol = string(lookup(root, &paths.symbol)?, &paths.symbol.shown)?;
        let target = self.target(&symbol, &paths.symbol.shown)?;
        let ts = timestamp(lookup(root, &paths.ts)?, &paths.ts.shown)?;
        let price = |path: &FieldPath| -> Result<Price, String> {
            let text = number_text(lookup(root, path)?, &path.shown)?;
            parse_price(&text, target.price_precision, &path.shown)
        };
        let volume_text = number_text(lookup(root, &paths.volume)?, &paths.volume.shown)?;
        let volume = parse_volume(&volume_text, target.size_precision, &paths.volume.shown)?;
        bar(
            target,
            ts,
            price(&paths.open)?,
            price(&paths.high)?,
            price(&paths.low)?,
            price(&paths.close)?,
            volume,
            &symbol,
        )
    }

    fn target(&self, symbol: &str, field: &str) -> Result<Target, String> {
        self.instruments.get(symbol).copied().ok_or_else(|| {
            let mut known: Vec<&str> = self.instruments.keys().map(String::as_str).collect();
            known.sort_unstable();
            format!(
                "field `{field}`: unknown symbol `{}`; the spec's instruments are {}",
                excerpt(symbol),
                known.join(", ")
            )
        })
    }
}

fn default_fields() -> WebsocketFields {
    // The defaults `WebsocketFields` deserialises with when `fields:` is `{}`.
    serde_json::from_str("{}").unwrap_or_else(|_| WebsocketFields {
        symbol: "symbol".into(),
        ts: "ts".into(),
        open: "open".into(),
        high: "high".into(),
        low: "low".into(),
        close: "close".into(),
        volume: "volume".into(),
    })
}

#[allow(clippy::too_many_arguments)]
fn bar(
    target: Target,
    ts: UnixNanos,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    volume: Quantity,
    symbol: &str,
) -> Result<Decoded, String> {
    let bar = Bar {
        instrument: target.id,
        ts,
        open,
        high,
        low,
        close,
        volume,
    };
    bar.validate()
        .map_err(|e| format!("bar of {} at {ts}: {e}", excerpt(symbol)))?;
    Ok(Decoded::Bar(bar))
}

/// The value at `path`, or an error naming the field.
fn lookup<'a>(root: &'a RawValue, path: &FieldPath) -> Result<&'a RawValue, String> {
    let mut current = root;
    for segment in &path.segments {
        let text = current.get().trim_start();
        current = if text.starts_with('[') {
            let items: Vec<&RawValue> = serde_json::from_str(current.get())
                .map_err(|_| format!("field `{}`: not valid JSON", path.shown))?;
            segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).copied())
                .ok_or_else(|| format!("field `{}` is missing", path.shown))?
        } else if text.starts_with('{') {
            let map: BTreeMap<String, &RawValue> = serde_json::from_str(current.get())
                .map_err(|_| format!("field `{}`: not valid JSON", path.shown))?;
            map.get(segment.as_str())
                .copied()
                .ok_or_else(|| format!("field `{}` is missing", path.shown))?
        } else {
            return Err(format!("field `{}` is missing", path.shown));
        };
    }
    Ok(current)
}

/// A JSON object's members, or an error naming it.
fn object<'a>(value: &'a RawValue, name: &str) -> Result<BTreeMap<String, &'a RawValue>, String> {
    serde_json::from_str(value.get()).map_err(|_| {
        if name == "the message" {
            "the message is not a JSON object".to_string()
        } else {
            format!("field `{name}`: expected an object")
        }
    })
}

/// A JSON string's content.
fn string(value: &RawValue, name: &str) -> Result<String, String> {
    serde_json::from_str::<String>(value.get())
        .map_err(|_| format!("field `{name}`: expected a string, found {}", kind(value)))
}

/// The text of a JSON number, or the content of a JSON string (numbers sent as strings).
fn number_text(value: &RawValue, name: &str) -> Result<String, String> {
    let text = value.get().trim();
    match text.as_bytes().first() {
        Some(b'"') => string(value, name),
        Some(b'-' | b'0'..=b'9') => Ok(text.to_string()),
        _ => Err(format!(
            "field `{name}`: expected a number or a numeric string, found {}",
            kind(value)
        )),
    }
}

fn kind(value: &RawValue) -> &'static str {
    match value.get().trim().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn parse_price(text: &str, precision: u8, name: &str) -> Result<Price, String> {
    Price::parse(text.trim(), precision).map_err(|e| {
        use tradeloom_core::fixed::DecimalError;
        match e {
            DecimalError::TooPrecise(..) => format!(
                "field `{name}`: `{}` has more decimal places than the instrument's price precision {precision}",
                excerpt(text)
            ),
            DecimalError::Empty => format!("field `{name}` is empty"),
            DecimalError::OutOfRange(_) => format!("field `{name}`: `{}` is out of range", excerpt(text)),
            DecimalError::Invalid(_) => {
                format!("field `{name}`: `{}` is not a decimal number", excerpt(text))
            }
        }
    })
}

fn parse_volume(text: &str, size_precision: u8, name: &str) -> Result<Quantity, String> {
    let raw = tradeloom_data::validate::parse_volume(text.trim().as_bytes())
        .map_err(|e| format!("field `{name}`: {e}"))?;
    Quantity::from_raw(raw, size_precision)
        .map_err(|_| format!("field `{name}`: `{}` is negative", excerpt(text)))
}

/// A bar time: epoch milliseconds (a number or a string of digits) or RFC 3339.
fn timestamp(value: &RawValue, name: &str) -> Result<UnixNanos, String> {
    let text = number_text(value, name)?;
    let digits = text.strip_prefix('-').unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return epoch_millis(&text, name);
    }
    let at = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
        format!(
            "field `{name}`: `{}` is neither epoch milliseconds nor RFC 3339",
            excerpt(&text)
        )
    })?;
    at.timestamp_nanos_opt()
        .map(UnixNanos)
        .ok_or_else(|| format!("field `{name}`: `{}` is out of range", excerpt(&text)))
}

fn epoch_millis(text: &str, name: &str) -> Result<UnixNanos, String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .map(UnixNanos)
        .ok_or_else(|| {
            format!(
                "field `{name}`: `{}` is not a time in epoch milliseconds",
                excerpt(text)
            )
        })
}

/// At most 24 characters of a value, for error messages.
fn excerpt(text: &str) -> String {
    const MAX: usize = 24;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use tradeloom_core::{Currency, Symbol};

    use super::*;

    fn instruments() -> Vec<Instrument> {
        let mk = |id, sym: &str, pp, sp| {
            Instrument::new(
                InstrumentId(id),
                Symbol::new(sym).unwrap(),
                "sim",
                pp,
                sp,
                Currency::USD,
            )
            .unwrap()
        };
        vec![
            mk(0, "BTCUSDT", 2, 5),
            mk(1, "ETHUSDT", 2, 4),
            mk(2, "XAU", 9, 0),
        ]
    }

    fn binance() -> Decoder {
        Decoder::new(Some(WebsocketPreset::BinanceKline), None, &instruments()).unwrap()
    }

    fn kline(symbol: &str, t: i64, close: &str, closed: bool) -> String {
        format!(
            r#"{{"e":"kline","E":{e},"s":"{symbol}","k":{{"t":{t},"T":{end},"s":"{symbol}","i":"1m","f":100,"L":200,"o":"100.00000000","c":"{close}","h":"101.50000000","l":"99.25000000","v":"12.34567891","n":100,"x":{closed},"q":"1.0","V":"0.5","Q":"0.5","B":"0"}}}}"#,
            e = t + 60_000,
            end = t + 59_999
        )
    }

    fn the_bar(d: Result<Decoded, String>) -> Bar {
        match d {
            Ok(Decoded::Bar(b)) => b,
            other => panic!("not a bar: {other:?}"),
        }
    }

    #[test]
    fn binance_closed_klines_are_bars_stamped_at_their_open_time() {
        let d = binance();
        let bar = the_bar(d.decode(&kline("ETHUSDT", 1_700_000_040_000, "100.75", true)));
        assert_eq!(bar.instrument, InstrumentId(1));
        assert_eq!(bar.ts, UnixNanos(1_700_000_040_000 * 1_000_000));
        assert_eq!(bar.open, Price::parse("100", 2).unwrap());
        assert_eq!(bar.high, Price::parse("101.5", 2).unwrap());
        assert_eq!(bar.low, Price::parse("99.25", 2).unwrap());
        assert_eq!(bar.close.to_string(), "100.75");
        // Volume rounded to 10^-9 as bar files' volumes are, shown at the size precision.
        assert_eq!(bar.volume.raw(), 12_345_678_910);
        // An open kline is no bar, and neither is a subscription answer.
        assert_eq!(
            d.decode(&kline("ETHUSDT", 1_700_000_040_000, "100.75", false)),
            Ok(Decoded::Ignored)
        );
        assert_eq!(d.decode(r#"{"result":null,"id":1}"#), Ok(Decoded::Ignored));
        // The combined stream's wrapper.
        let wrapped = format!(
            r#"{{"stream":"btcusdt@kline_1m","data":{}}}"#,
            kline("BTCUSDT", 1_700_000_000_000, "100.10", true)
        );
        let bar = the_bar(d.decode(&wrapped));
        assert_eq!(bar.instrument, InstrumentId(0));
        assert_eq!(bar.close.to_string(), "100.10");
    }

    #[test]
    fn malformed_messages_name_the_field_and_never_echo_the_message() {
        let d = binance();
        let secret = "sekrit-listen-key-123";
        let cases: Vec<(String, &str)> = vec![
            (format!("{{not json {secret}"), "not JSON (syntax)"),
            ("[1,2]".to_string(), "the message is not a JSON object"),
            (
                format!(r#"{{"e":"trade","s":"{secret}"}}"#),
                "field `e`: `trade` is not a kline event",
            ),
            (r#"{"e":"kline"}"#.to_string(), "field `k` is missing"),
            (
                kline("DOGEUSDT", 0, "1", true),
                "field `k.s`: unknown symbol `DOGEUSDT`; the spec's instruments are BTCUSDT, ETHUSDT, XAU",
            ),
            (
                kline("BTCUSDT", 0, "100.123", true),
                "field `k.c`: `100.123` has more decimal places than the instrument's price precision 2",
            ),
            (
                kline("BTCUSDT", 0, "abc", true),
                "field `k.c`: `abc` is not a decimal number",
            ),
            (
                kline("BTCUSDT", 0, "1", true).replace(r#""o":"100.00000000""#, r#""o":null"#),
                "field `k.o`: expected a number or a numeric string, found null",
            ),
            (
                kline("BTCUSDT", 0, "1", true).replace(r#""x":true"#, r#""x":"yes""#),
                "field `k.x`: expected true or false",
            ),
            (
                kline("BTCUSDT", 0, "1", true).replace(r#""t":0,"#, ""),
                "field `k.t` is missing",
            ),
            (
                kline("BTCUSDT", 0, "200", true),
                "bar of BTCUSDT at 1970-01-01T00:00:00Z: high 101.50 is below max(open, close) 200.00",
            ),
            (
                format!(
                    r#"{{"stream":"x","data":{{"e":"kline","k":{{"x":true,"s":"BTCUSDT","t":"{secret}"}}}}}}"#
                ),
                "field `data.k.t`: `sekrit-listen-key-123` is not a time in epoch milliseconds",
            ),
        ];
        for (message, reason) in cases {
            let got = d.decode(&message).unwrap_err();
            assert_eq!(got, reason, "{message}");
            if !reason.contains(secret) {
                assert!(!got.contains(secret), "{got}");
            }
        }
    }

    #[test]
    fn generic_mapping_reads_keys_and_pointers_numbers_and_strings() {
        let fields = WebsocketFields {
            symbol: "/meta/sym".into(),
            ts: "time".into(),
            open: "/p/0".into(),
            high: "/p/1".into(),
            low: "/p/2".into(),
            close: "/p/3".into(),
            volume: "/a~1b".into(),
        };
        let d = Decoder::new(None, Some(&fields), &instruments()).unwrap();
        // 19 significant digits stay exact (an f64 keeps about 16): no f64 on the way.
        let bar = the_bar(d.decode(
            r#"{"meta":{"sym":"XAU"},"time":"2026-03-02T10:00:00.5+01:00","p":[1234567890.123456789,"1234567890.123456799",1234567890.123456781,1234567890.123456787],"a/b":"3"}"#,
        ));
        assert_eq!(bar.open.raw(), 1_234_567_890_123_456_789);
        assert_eq!(bar.close.to_string(), "1234567890.123456787");
        assert_eq!(bar.ts.to_string(), "2026-03-02T09:00:00.500Z");
        assert_eq!(bar.volume.raw(), 3_000_000_000);
        // Epoch milliseconds as a number.
        let bar = the_bar(
            d.decode(r#"{"meta":{"sym":"ETHUSDT"},"time":1700000000000,"p":[1,2,1,2],"a/b":0}"#),
        );
        assert_eq!(bar.ts, UnixNanos(1_700_000_000_000_000_000));
        let e = d
            .decode(r#"{"meta":{},"time":1,"p":[1,2,1,2],"a/b":0}"#)
            .unwrap_err();
        assert_eq!(e, "field `/meta/sym` is missing");
        let e = d
            .decode(r#"{"meta":{"sym":"ETHUSDT"},"time":"yesterday","p":[1,2,1,2],"a/b":0}"#)
            .unwrap_err();
        assert_eq!(
            e,
            "field `time`: `yesterday` is neither epoch milliseconds nor RFC 3339"
        );
        let e = d
            .decode(r#"{"meta":{"sym":"ETHUSDT"},"time":1,"p":[1,2,1],"a/b":0}"#)
            .unwrap_err();
        assert_eq!(e, "field `/p/3` is missing");
        let e = d
            .decode(r#"{"meta":{"sym":"ETHUSDT"},"time":1,"p":[1,2,1,2],"a/b":-1}"#)
            .unwrap_err();
        assert!(e.starts_with("field `/a~1b`: "), "{e}");

        // Default keys.
        let d = Decoder::new(None, None, &instruments()).unwrap();
        let bar = the_bar(d.decode(
            r#"{"symbol":"BTCUSDT","ts":1000,"open":"1","high":"1","low":"1","close":"1","volume":"0"}"#,
        ));
        assert_eq!(bar.ts, UnixNanos(1_000_000_000));
    }

    #[test]
    fn bad_field_settings_are_refused() {
        let e = Decoder::new(
            Some(WebsocketPreset::BinanceKline),
            Some(&default_fields()),
            &instruments(),
        )
        .unwrap_err();
        assert!(
            e.starts_with("feed.fields: not used with `preset: binance_kline`"),
            "{e}"
        );
        let mut f = default_fields();
        f.close = "/a/~2".into();
        let e = Decoder::new(None, Some(&f), &instruments()).unwrap_err();
        assert!(
            e.starts_with("feed.fields.close: `/a/~2` is not a JSON pointer"),
            "{e}"
        );
        f.close = String::new();
        let e = Decoder::new(None, Some(&f), &instruments()).unwrap_err();
        assert!(e.starts_with("feed.fields.close: must not be empty"), "{e}");
        assert_eq!(
            FieldPath::parse("/a~1b/~0c").unwrap(),
            FieldPath::named("/a~1b/~0c", &["a/b", "~c"])
        );
    }
}
