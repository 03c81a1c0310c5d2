//! `journal.jsonl`: append-only, one JSON object per line, numbered from 1 (`seq`), with event
//! times only.
//!
//! Lines are serialised straight into the artifact's buffer, and chunks of whole lines are
//! hashed and written by the run's writer thread ([`crate::hashing`]). A failed write (a full
//! disk, a file size limit) closes the journal: the writer thread drops every later chunk and cuts
//! the file back to its last complete line, so the journal never ends in a partial line; the
//! next append that hands a chunk over (and the end of the run) reports the error, and every
//! append after it fails.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use serde::Serialize;
use tradeloom_core::fixed::{FIXED_PRECISION, MONEY_PRECISION, write_raw};
use tradeloom_core::time::write_rfc3339;
use tradeloom_core::{Event, Money, OrderId, Price, Quantity, SignedQuantity, Symbol, UnixNanos};

use crate::hashing::ArtifactWriter;

/// Writes journal lines.
pub struct Journal {
    out: ArtifactWriter,
    seq: u64,
    /// Why the journal was closed, repeated by later appends.
    closed: Option<(io::ErrorKind, String)>,
    /// `,"wall_ts":"…"}` ending every line of a paper run (`None`: a backtest's lines).
    wall_suffix: Option<Vec<u8>>,
    /// A resumed paper run: the lines already in the file, which the regenerated lines must
    /// repeat exactly (they are checked, not written again), and how far they were checked.
    existing: Option<(Vec<u8>, usize)>,
}

impl Journal {
    pub fn new(out: ArtifactWriter) -> Self {
        Self {
            out,
            seq: 0,
            closed: None,
            wall_suffix: None,
            existing: None,
        }
    }

    /// A journal whose file already holds `existing` (whole lines; `out` appends after them):
    /// the next appends regenerate those lines and must equal them byte for byte; they are
    /// checked, not written, and a difference closes the journal with an error naming the
    /// line. Appends after them are written.
    pub fn resumed(out: ArtifactWriter, existing: Vec<u8>) -> Self {
        let mut journal = Self::new(out);
        if !existing.is_empty() {
            journal.existing = Some((existing, 0));
        }
        journal
    }

    /// Lines of the existing file not regenerated yet (0 once the regenerated lines caught up).
    pub fn pending_existing(&self) -> usize {
        self.existing.as_ref().map_or(0, |(bytes, at)| {
            bytes[*at..].iter().filter(|&&b| b == b'\n').count()
        })
    }

    /// Ends every later line with `"wall_ts"` (RFC 3339 UTC with nanoseconds), or with nothing.
    pub fn set_wall_ts(&mut self, wall: Option<&str>) {
        match (wall, self.wall_suffix.as_mut()) {
            // A paper run sets it per event: the buffer is reused.
            (Some(w), Some(suffix)) => {
                suffix.clear();
                suffix.extend_from_slice(b",\"wall_ts\":\"");
                suffix.extend_from_slice(w.as_bytes());
                suffix.extend_from_slice(b"\"}");
            }
            (Some(w), None) => {
                self.wall_suffix = Some(format!(",\"wall_ts\":\"{w}\"}}").into_bytes());
            }
            (None, _) => self.wall_suffix = None,
        }
    }

    /// Hands what is buffered to the writer thread (so that a reader sees it soon).
    pub fn hand_over(&mut self) -> io::Result<()> {
        if let Some((kind, message)) = &self.closed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        self.out.hand_over().map_err(|e| self.close_after(e))
    }

    /// Appends one event (any value that serialises to a JSON object) as
    /// `{"seq":N,<the event's fields>}`. Once a write failed the journal is closed (see the
    /// module documentation) and this and every later append return the error.
    pub fn append<T: Serialize>(&mut self, event: &T) -> io::Result<()> {
        self.append_with(|buf| serde_json::to_writer(buf, event))
    }

    /// [`Journal::append`] of an engine event: the events of every order (submitted, accepted,
    /// filled, position changed, …) are written by [`write_event`], the same bytes as
    /// `serde_json` without its formatting machinery; the rare ones go through `serde_json`.
    pub fn append_event(&mut self, event: &Event) -> io::Result<()> {
        self.append_with(|buf| {
            let start = buf.len();
            if write_event(buf, event) {
                return Ok(());
            }
            buf.truncate(start);
            serde_json::to_writer(buf, event)
        })
    }

    /// Appends the line whose JSON object `body` writes (see [`Journal::append`]).
    fn append_with(
        &mut self,
        body: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> io::Result<()> {
        if let Some((kind, message)) = &self.closed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        let seq = self.seq + 1;
        let buf = self.out.buffer();
        let start = buf.len();
        buf.extend_from_slice(b"{\"seq\":");
        buf.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        let body_at = buf.len();
        let serialised = body(&mut *buf);
        let body = body_at;
        // The event's own `{` becomes the comma after `seq` (or goes, for an empty object).
        let object = buf.get(body) == Some(&b'{') && buf.last() == Some(&b'}');
        match serialised {
            Ok(()) if object => {
                if buf.len() - body == 2 {
                    buf.truncate(body);
                    buf.push(b'}');
                } else {
                    buf[body] = b',';
                }
                if let Some(suffix) = &self.wall_suffix {
                    buf.pop();
                    buf.extend_from_slice(suffix);
                }
                buf.push(b'\n');
            }
            Ok(()) => {
                buf.truncate(start);
                return Err(io::Error::other("journal events must be JSON objects"));
            }
            Err(e) => {
                buf.truncate(start);
                return Err(io::Error::other(e));
            }
        }
        self.seq = seq;
        if let Some((existing, at)) = self.existing.as_mut() {
            let len = buf.len() - start;
            let matches = existing.get(*at..*at + len) == Some(&buf[start..]);
            buf.truncate(start);
            if !matches {
                let message = format!(
                    "resume: journal line {seq} regenerated from state/inputs.jsonl differs from \
                     the line in journal.jsonl"
                );
                self.closed = Some((io::ErrorKind::InvalidData, message.clone()));
                return Err(io::Error::new(io::ErrorKind::InvalidData, message));
            }
            *at += len;
            if *at == existing.len() {
                self.existing = None;
            }
            return Ok(());
        }
        self.out.commit().map_err(|e| self.close_after(e))
    }

    /// Closes the journal after `error` (the writer thread has cut the file back to its last
    /// complete line). Returns the error to report.
    fn close_after(&mut self, error: io::Error) -> io::Error {
        let (kind, message) = (error.kind(), error.to_string());
        self.closed = Some((kind, message.clone()));
        io::Error::new(kind, message)
    }

    /// Lines appended (the `seq` of the last one).
    pub fn len(&self) -> u64 {
        self.seq
    }

    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// The writer, to be finished (flushed, hashed, synced); an error if a write failed and
    /// closed the journal.
    pub fn into_inner(self) -> io::Result<ArtifactWriter> {
        match self.closed {
            None => Ok(self.out),
            Some((kind, message)) => Err(io::Error::new(kind, message)),
        }
    }
}

/// Writes the JSON object of the events every order produces, byte for byte what
/// `serde_json::to_writer(event)` writes (field order, `skip_serializing_if`, the `Display` text
/// of money, prices, quantities, ids and timestamps); `false` for the other events, which
/// are left to `serde_json`.
pub(crate) fn write_event(out: &mut Vec<u8>, event: &Event) -> bool {
    match event {
        Event::OrderSubmitted {
            ts,
            order_id,
            symbol,
            side,
            order_type,
            quantity,
            price,
            trigger_price,
            time_in_force,
            reduce_only,
            links,
        } => {
            if links.is_some() {
                // Rare (brackets, trailing stops): left to serde_json.
                return false;
            }
            head(out, "order_submitted", *ts);
            order_field(out, *order_id);
            symbol_field(out, *symbol);
            str_field(out, "side", side.as_str());
            str_field(out, "order_type", order_type.as_str());
            quantity_field(out, "quantity", *quantity);
            if let Some(p) = price {
                price_field(out, "price", *p);
            }
            if let Some(p) = trigger_price {
                price_field(out, "trigger_price", *p);
            }
            str_field(out, "time_in_force", time_in_force.as_str());
            out.extend_from_slice(if *reduce_only {
                b",\"reduce_only\":true}"
            } else {
                b",\"reduce_only\":false}"
            });
        }
        Event::OrderAccepted { ts, order_id } => {
            head(out, "order_accepted", *ts);
            order_field(out, *order_id);
            out.push(b'}');
        }
        Event::OrderTriggered { ts, order_id } => {
            head(out, "order_triggered", *ts);
            order_field(out, *order_id);
            out.push(b'}');
        }
        Event::OrderExpired { ts, order_id } => {
            head(out, "order_expired", *ts);
            order_field(out, *order_id);
            out.push(b'}');
        }
        Event::OrderCancelled {
            ts,
            order_id,
            reason,
        } => {
            head(out, "order_cancelled", *ts);
            order_field(out, *order_id);
            if !text_field(out, "reason", reason) {
                return false;
            }
            out.push(b'}');
        }
        Event::OrderFilled {
            ts,
            order_id,
            fill_id,
            symbol,
            side,
            quantity,
            price,
            fee,
            liquidity,
        } => {
            head(out, "order_filled", *ts);
            order_field(out, *order_id);
            out.extend_from_slice(b",\"fill_id\":");
            out.extend_from_slice(itoa::Buffer::new().format(*fill_id).as_bytes());
            symbol_field(out, *symbol);
            str_field(out, "side", side.as_str());
            quantity_field(out, "quantity", *quantity);
            price_field(out, "price", *price);
            money_field(out, "fee", *fee);
            str_field(out, "liquidity", liquidity.as_str());
            out.push(b'}');
        }
        Event::PositionChanged {
            ts,
            symbol,
            quantity,
            avg_price,
            realized_pnl,
        } => {
            head(out, "position_changed", *ts);
            symbol_field(out, *symbol);
            signed_quantity_field(out, "quantity", *quantity);
            if let Some(p) = avg_price {
                price_field(out, "avg_price", *p);
            }
            money_field(out, "realized_pnl", *realized_pnl);
            out.push(b'}');
        }
        _ => return false,
    }
    true
}

/// `{"event":"<name>","ts":"<RFC 3339>"`.
fn head(out: &mut Vec<u8>, name: &str, ts: UnixNanos) {
    out.extend_from_slice(b"{\"event\":\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\",\"ts\":\"");
    write_rfc3339(out, ts);
    out.push(b'"');
}

/// `,"<key>":"` (the value follows, then its closing quote).
fn key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
}

/// A string field whose text needs no escaping (enum names: capital letters and `_`).
fn str_field(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

/// A string field of text that needs no escaping; `false` for text that would (the caller
/// then drops what was written and falls back to `serde_json`).
fn text_field(out: &mut Vec<u8>, name: &str, value: &str) -> bool {
    if value
        .bytes()
        .any(|c| c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c))
    {
        return false;
    }
    str_field(out, name, value);
    true
}

/// `,"order_id":"O-000042"` (`OrderId`'s `Display`: at least six digits).
fn order_field(out: &mut Vec<u8>, id: OrderId) {
    key(out, "order_id");
    write_order_id(out, id);
    out.push(b'"');
}

/// `O-000042`: the same text as `OrderId`'s `Display` (at least six digits), without
/// allocating.
pub(crate) fn write_order_id(out: &mut Vec<u8>, id: OrderId) {
    out.extend_from_slice(b"O-");
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(id.0).as_bytes();
    for _ in digits.len()..6 {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
}

/// `,"symbol":"…"`; a symbol is printable ASCII, of which only `"` and `\` are escaped.
fn symbol_field(out: &mut Vec<u8>, symbol: Symbol) {
    key(out, "symbol");
    for &c in symbol.as_str().as_bytes() {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
}

fn price_field(out: &mut Vec<u8>, name: &str, p: Price) {
    key(out, name);
    write_raw(out, i128::from(p.raw()), FIXED_PRECISION, p.precision());
    out.push(b'"');
}

fn quantity_field(out: &mut Vec<u8>, name: &str, q: Quantity) {
    key(out, name);
    write_raw(out, i128::from(q.raw()), FIXED_PRECISION, q.precision());
    out.push(b'"');
}

fn signed_quantity_field(out: &mut Vec<u8>, name: &str, q: SignedQuantity) {
    key(out, name);
    write_raw(out, i128::from(q.raw), FIXED_PRECISION, q.precision);
    out.push(b'"');
}

fn money_field(out: &mut Vec<u8>, name: &str, m: Money) {
    key(out, name);
    write_raw(out, m.raw(), MONEY_PRECISION, m.currency().precision());
    out.push(b'"');
}

/// Truncates `file` right after its last `\n` (to nothing when there is none), removing a
/// partial last line. Returns the new length.
pub fn cut_to_last_line(file: &mut File) -> io::Result<u64> {
    const BLOCK: u64 = 8192;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut block = vec![0u8; BLOCK as usize];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if keep < len {
        file.set_len(keep)?;
        file.sync_data()?;
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::create_artifact;

    #[test]
    fn order_ids_are_written_as_displayed() {
        for id in [0, 7, 42, 999_999, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            write_order_id(&mut out, OrderId(id));
            assert_eq!(String::from_utf8(out).unwrap(), OrderId(id).to_string());
        }
    }

    #[test]
    fn lines_are_numbered_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::new(create_artifact(&path).unwrap());
        j.append(&serde_json::json!({"event": "a", "x": 1}))
            .unwrap();
        j.append(&serde_json::json!({})).unwrap();
        assert!(j.append(&serde_json::json!([1])).is_err());
        assert_eq!(j.len(), 2);
        crate::hashing::finish_artifact(j.into_inner().unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"seq\":1,\"event\":\"a\",\"x\":1}\n{\"seq\":2}\n");
    }

    #[test]
    fn cutting_removes_only_a_partial_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let long = "y".repeat(20_000);
        for (text, expected) in [
            ("a\nb\npartial", "a\nb\n"),
            ("a\nb\n", "a\nb\n"),
            ("no newline", ""),
            ("", ""),
        ] {
            std::fs::write(&path, text).unwrap();
            let mut f = File::options().read(true).write(true).open(&path).unwrap();
            cut_to_last_line(&mut f).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        }
        // The last newline several blocks before the end.
        std::fs::write(&path, format!("first\n{long}")).unwrap();
        let mut f = File::options().read(true).write(true).open(&path).unwrap();
        assert_eq!(cut_to_last_line(&mut f).unwrap(), 6);
    }

    mod hand_written {
        use proptest::prelude::*;
        use tradeloom_core::{
            Currency, Event, Liquidity, Money, OrderId, OrderSide, OrderType, Price, Quantity,
            SignedQuantity, Symbol, TimeInForce, UnixNanos,
        };

        use super::super::write_event;

        fn symbol() -> impl Strategy<Value = Symbol> {
            // Printable ASCII but `,` and `"` (not symbols), `\\` included (it is escaped).
            "[!#-+\\--~]{1,12}".prop_map(|s| Symbol::new(&s).unwrap())
        }

        fn price() -> impl Strategy<Value = Price> {
            (any::<i64>(), 0u8..=9).prop_map(|(raw, p)| Price::from_raw(raw, p))
        }

        fn quantity() -> impl Strategy<Value = Quantity> {
            (0i64..=i64::MAX, 0u8..=9).prop_map(|(raw, p)| Quantity::from_raw(raw, p).unwrap())
        }

        fn money() -> impl Strategy<Value = Money> {
            (any::<i128>(), 0u8..=8).prop_map(|(raw, p)| {
                Money::from_raw(raw, Currency::new("XYZ", p).unwrap_or(Currency::USD))
            })
        }

        fn ts() -> impl Strategy<Value = UnixNanos> {
            prop_oneof![
                (0i64..4_102_444_800).prop_map(|s| UnixNanos(s * 1_000_000_000)),
                any::<i64>().prop_map(UnixNanos),
            ]
        }

        fn order_id() -> impl Strategy<Value = OrderId> {
            prop_oneof![0u64..2_000_000, any::<u64>()].prop_map(OrderId)
        }

        fn event() -> impl Strategy<Value = Event> {
            let side = prop_oneof![Just(OrderSide::Buy), Just(OrderSide::Sell)];
            let kind = prop_oneof![
                Just(OrderType::Market),
                Just(OrderType::Limit),
                Just(OrderType::Stop),
                Just(OrderType::StopLimit)
            ];
            let tif = prop_oneof![
                Just(TimeInForce::Gtc),
                Just(TimeInForce::Ioc),
                Just(TimeInForce::Day)
            ];
            let liquidity = prop_oneof![Just(Liquidity::Maker), Just(Liquidity::Taker)];
            let reason = prop_oneof![
                Just("user"),
                Just("ioc"),
                Just("margin_call"),
                Just("say \"no\""),
                Just("back\\slash"),
                Just("tab\there"),
                Just("é")
            ];
            prop_oneof![
                (
                    ts(),
                    order_id(),
                    symbol(),
                    side.clone(),
                    kind,
                    quantity(),
                    proptest::option::of(price()),
                    proptest::option::of(price()),
                    tif,
                    any::<bool>()
                )
                    .prop_map(
                        |(
                            ts,
                            order_id,
                            symbol,
                            side,
                            order_type,
                            quantity,
                            price,
                            trigger_price,
                            time_in_force,
                            reduce_only,
                        )| {
                            Event::OrderSubmitted {
                                ts,
                                order_id,
                                symbol,
                                side,
                                order_type,
                                quantity,
                                price,
                                trigger_price,
                                time_in_force,
                                reduce_only,
                                links: None,
                            }
                        }
                    ),
                (ts(), order_id()).prop_map(|(ts, order_id)| Event::OrderAccepted { ts, order_id }),
                (ts(), order_id())
                    .prop_map(|(ts, order_id)| Event::OrderTriggered { ts, order_id }),
                (ts(), order_id()).prop_map(|(ts, order_id)| Event::OrderExpired { ts, order_id }),
                (ts(), order_id(), reason).prop_map(|(ts, order_id, reason)| {
                    Event::OrderCancelled {
                        ts,
                        order_id,
                        reason,
                    }
                }),
                (
                    ts(),
                    order_id(),
                    any::<u64>(),
                    symbol(),
                    side,
                    quantity(),
                    price(),
                    money(),
                    liquidity
                )
                    .prop_map(
                        |(ts, order_id, fill_id, symbol, side, quantity, price, fee, liquidity)| {
                            Event::OrderFilled {
                                ts,
                                order_id,
                                fill_id,
                                symbol,
                                side,
                                quantity,
                                price,
                                fee,
                                liquidity,
                            }
                        }
                    ),
                (
                    ts(),
                    symbol(),
                    any::<i64>(),
                    0u8..=9,
                    proptest::option::of(price()),
                    money()
                )
                    .prop_map(
                        |(ts, symbol, raw, precision, avg_price, realized_pnl)| {
                            Event::PositionChanged {
                                ts,
                                symbol,
                                quantity: SignedQuantity { raw, precision },
                                avg_price,
                                realized_pnl,
                            }
                        }
                    ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            /// The hand-written bytes are `serde_json`'s, or nothing is claimed.
            #[test]
            fn hand_written_events_are_serde_json_bytes(event in event()) {
                let want = serde_json::to_vec(&event).unwrap();
                let mut got = b"prefix".to_vec();
                if write_event(&mut got, &event) {
                    prop_assert_eq!(
                        String::from_utf8_lossy(&got[6..]),
                        String::from_utf8_lossy(&want)
                    );
                } else {
                    // Only a cancel reason that needs escaping is left to serde_json.
                    let escaped = matches!(&event, Event::OrderCancelled { reason, .. }
                        if reason.bytes().any(|c| c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c)));
                    prop_assert!(escaped, "{:?} not written by hand", event);
                }
            }
        }

        #[test]
        fn a_journal_line_is_the_same_either_way() {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (dir.path().join("a"), dir.path().join("b"));
            let mut by_hand = super::Journal::new(crate::hashing::create_artifact(&a).unwrap());
            let mut by_serde = super::Journal::new(crate::hashing::create_artifact(&b).unwrap());
            let events = [
                Event::OrderAccepted {
                    ts: UnixNanos(1_700_000_000_123_000_000),
                    order_id: OrderId(7),
                },
                Event::OrderCancelled {
                    ts: UnixNanos(0),
                    order_id: OrderId(1_234_567),
                    reason: "a \"quoted\" reason",
                },
                Event::KillSwitchReleased { ts: UnixNanos(5) },
            ];
            for e in &events {
                by_hand.append_event(e).unwrap();
                by_serde.append(e).unwrap();
            }
            crate::hashing::finish_artifact(by_hand.into_inner().unwrap()).unwrap();
            crate::hashing::finish_artifact(by_serde.into_inner().unwrap()).unwrap();
            let hand = std::fs::read_to_string(&a).unwrap();
            assert_eq!(hand, std::fs::read_to_string(&b).unwrap());
            assert_eq!(hand.lines().count(), 3);
            assert!(hand.starts_with("{\"seq\":1,\"event\":\"order_accepted\",\"ts\":\"2023-11-14T22:13:20.123Z\",\"order_id\":\"O-000007\"}\n"), "{hand}");
        }
    }

    /// `/dev/full` fails every write with ENOSPC, as a full disk does.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_closes_the_journal() {
        let out = crate::hashing::ArtifactPipe::spawn()
            .unwrap()
            .create_lines(std::path::Path::new("/dev/full"))
            .unwrap();
        let mut j = Journal::new(out);
        let big = "z".repeat(10 * 1024);
        let mut failed = None;
        for i in 0..10_000 {
            if let Err(e) = j.append(&serde_json::json!({"event": "a", "i": i, "big": big})) {
                failed = Some(e);
                break;
            }
        }
        let err = failed.expect("an append after the failed chunk reports it");
        assert!(err.to_string().contains("No space left"), "{err}");
        let again = j.append(&serde_json::json!({"event": "b"})).unwrap_err();
        assert!(again.to_string().contains("No space left"), "{again}");
        assert!(j.into_inner().is_err());
    }
}
