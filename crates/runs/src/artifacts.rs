//! The run folder's CSV artifacts and the engine [`Sink`] that writes them with the journal and
//! the equity curve (`equity.parquet`, see [`crate::equity`]).
//!
//! | file | one row per | columns |
//! | --- | --- | --- |
//! | `orders.csv` | order, when it reaches a terminal state | order_id, symbol, side, type, quantity, price, trigger_price, time_in_force, reduce_only, status, filled_quantity, avg_fill_price, created_ts, closed_ts, reason, parent_id, oco_id (a bracket leg's entry and other leg) |
//! | `fills.csv` | execution | fill_id, order_id, ts, symbol, side, quantity, price, fee, liquidity |
//! | `trades.csv` | round trip (open ones last, with empty exit) | trade_id, symbol, side, quantity, entry_ts, entry_price, exit_ts, exit_price, gross_pnl, fees, net_pnl, bars, status |
//! | `equity.parquet` | timestamp | ts, cash, equity, gross_exposure (exact decimals) |
//!
//! A paper run's `orders.csv` and `fills.csv` end with one more column, `wall_ts` (when the row
//! was written, RFC 3339 UTC with nanoseconds), and its journal lines with a `wall_ts` field; a
//! backtest's files have neither.

use std::io::{self, Write};

use arrow::error::ArrowError;

use tradeloom_core::fixed::{MONEY_PRECISION, write_raw};
use tradeloom_core::time::write_rfc3339;
use tradeloom_core::{Bar, Event, Fill, Money, OrderSide, Price, Quantity, Symbol, UnixNanos};
use tradeloom_engine::sink::OrderRecord;
use tradeloom_engine::{EquityPoint, Sink, Trade};

use crate::chart::ChartSampler;
use crate::equity::EquityWriter;
use crate::hashing::ArtifactWriter;
use crate::journal::{Journal, write_order_id};
use crate::report::{EquitySampler, TradeRows};
use crate::tables::{CsvColumns, RunTables};

pub const ORDERS_HEADER: &str = "order_id,symbol,side,type,quantity,price,trigger_price,time_in_force,reduce_only,status,filled_quantity,avg_fill_price,created_ts,closed_ts,reason,parent_id,oco_id\n";
pub const FILLS_HEADER: &str = "fill_id,order_id,ts,symbol,side,quantity,price,fee,liquidity\n";
pub const TRADES_HEADER: &str = "trade_id,symbol,side,quantity,entry_ts,entry_price,exit_ts,exit_price,gross_pnl,fees,net_pnl,bars,status\n";

fn money(out: &mut Vec<u8>, m: Money) {
    write_raw(out, m.raw(), MONEY_PRECISION, m.currency().precision());
}

fn price(out: &mut Vec<u8>, p: Price) {
    write_raw(out, i128::from(p.raw()), 9, p.precision());
}

fn quantity(out: &mut Vec<u8>, q: Quantity) {
    write_raw(out, i128::from(q.raw()), 9, q.precision());
}

fn text(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// Writes the journal and the CSV artifacts as the engine reports; the first I/O error is kept
/// and returned by [`RunSink::finish`] (the engine's sink interface cannot fail).
pub struct RunSink {
    pub journal: Journal,
    orders: ArtifactWriter,
    fills: ArtifactWriter,
    trades: ArtifactWriter,
    /// `None` once a write of it failed (the error is kept).
    equity: Option<EquityWriter<ArtifactWriter>>,
    error: Option<io::Error>,
    pub sampler: EquitySampler,
    /// Candles and fill markers for `chart.json`.
    pub chart: ChartSampler,
    trade_rows: ShownTrades,
    /// `,<wall_ts>` of a paper run's CSV rows (`None`: a backtest's rows, without the column).
    wall_column: Option<Vec<u8>>,
    /// The CSV rows as Arrow columns too, once [`RunSink::record_tables`] asked for them.
    tables: Option<CsvTables>,
}

/// The CSV artifacts' rows kept as Arrow columns (see [`crate::tables`]).
struct CsvTables {
    orders: CsvColumns,
    fills: CsvColumns,
    trades: CsvColumns,
}

impl CsvTables {
    /// The run's tables.
    fn finish(self) -> Result<RunTables, ArrowError> {
        Ok(RunTables {
            orders: self.orders.finish()?,
            fills: self.fills.finish()?,
            trades: self.trades.finish()?,
        })
    }
}

/// The writers of a finished sink, to be flushed and hashed.
pub struct SinkFiles {
    pub journal: ArtifactWriter,
    pub orders: ArtifactWriter,
    pub fills: ArtifactWriter,
    pub trades: ArtifactWriter,
    pub equity: ArtifactWriter,
    pub sampler: EquitySampler,
    pub chart: ChartSampler,
    pub trade_rows: TradeRows,
    pub journal_lines: u64,
    /// The tables, when [`RunSink::record_tables`] asked for them.
    pub tables: Option<RunTables>,
}

impl RunSink {
    pub fn new(
        journal: ArtifactWriter,
        orders: ArtifactWriter,
        fills: ArtifactWriter,
        trades: ArtifactWriter,
        equity: EquityWriter<ArtifactWriter>,
    ) -> io::Result<Self> {
        Self::with_journal(Journal::new(journal), orders, fills, trades, equity, false)
    }

    /// A sink writing to `journal` (possibly [resumed](Journal::resumed)); with `wall_clock`
    /// (a paper run) `orders.csv` and `fills.csv` get a `wall_ts` column, set by
    /// [`RunSink::set_wall_ts`] like the journal's field.
    pub fn with_journal(
        journal: Journal,
        mut orders: ArtifactWriter,
        mut fills: ArtifactWriter,
        mut trades: ArtifactWriter,
        equity: EquityWriter<ArtifactWriter>,
        wall_clock: bool,
    ) -> io::Result<Self> {
        let with_wall = |header: &str| match wall_clock {
            true => format!("{},wall_ts\n", header.trim_end()),
            false => header.to_string(),
        };
        orders.write_all(with_wall(ORDERS_HEADER).as_bytes())?;
        fills.write_all(with_wall(FILLS_HEADER).as_bytes())?;
        trades.write_all(TRADES_HEADER.as_bytes())?;
        Ok(Self {
            journal,
            orders,
            fills,
            trades,
            equity: Some(equity),
            error: None,
            sampler: EquitySampler::default(),
            chart: ChartSampler::default(),
            trade_rows: ShownTrades::default(),
            wall_column: wall_clock.then(|| b",".to_vec()),
            tables: None,
        })
    }

    /// Keeps every row written from now on as Arrow columns too, returned by
    /// [`RunSink::finish`] in [`SinkFiles::tables`] (call it before the first bar).
    pub fn record_tables(&mut self) {
        let wall = if self.wall_column.is_some() {
            ",wall_ts"
        } else {
            ""
        };
        self.tables = Some(CsvTables {
            orders: CsvColumns::new(&format!("{}{wall}", ORDERS_HEADER.trim_end())),
            fills: CsvColumns::new(&format!("{}{wall}", FILLS_HEADER.trim_end())),
            trades: CsvColumns::new(TRADES_HEADER),
        });
    }

    /// The wall-clock time of what is written next (a paper run): the journal's `wall_ts`
    /// field and the CSV files' `wall_ts` column. Does nothing for a backtest's sink.
    pub fn set_wall_ts(&mut self, wall: &str) {
        if let Some(column) = self.wall_column.as_mut() {
            column.clear();
            column.push(b',');
            column.extend_from_slice(wall.as_bytes());
            self.journal.set_wall_ts(Some(wall));
        }
    }

    /// Hands every buffered row to the writer thread, so that readers of the folder see them.
    pub fn hand_over(&mut self) {
        let r = self.journal.hand_over();
        self.keep("journal.jsonl", r);
        let r = self.orders.hand_over();
        self.keep("orders.csv", r);
        let r = self.fills.hand_over();
        self.keep("fills.csv", r);
        let r = self.trades.hand_over();
        self.keep("trades.csv", r);
    }

    /// The first write error met so far, if any (the run then fails).
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// Keeps the first failure, naming the file it happened in (the run folder's name of it).
    fn keep(&mut self, file: &str, result: io::Result<()>) {
        if let (Err(e), None) = (result, &self.error) {
            self.error = Some(io::Error::new(
                e.kind(),
                format!("cannot write {file}: {e}"),
            ));
        }
    }

    /// Appends a journal entry that is not an engine event (e.g. the run's own lifecycle).
    pub fn journal_extra<T: serde::Serialize>(&mut self, value: &T) {
        let r = self.journal.append(value);
        self.keep("journal.jsonl", r);
    }

    /// Ends writing; returns the writers or the first error met.
    pub fn finish(self) -> io::Result<SinkFiles> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let journal_lines = self.journal.len();
        let equity = self
            .equity
            .ok_or_else(|| io::Error::other("equity.parquet was not written"))?;
        let tables = match self.tables {
            Some(csv) => Some(
                csv.finish()
                    .map_err(|e| io::Error::other(format!("cannot build the run's tables: {e}")))?,
            ),
            None => None,
        };
        let equity = equity.finish().map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("cannot write equity.parquet: {e}"))
        })?;
        Ok(SinkFiles {
            journal: self.journal.into_inner()?,
            orders: self.orders,
            fills: self.fills,
            trades: self.trades,
            equity,
            sampler: self.sampler,
            chart: self.chart,
            trade_rows: self.trade_rows.finish(),
            journal_lines,
            tables,
        })
    }
}

fn side_str(side: OrderSide) -> &'static str {
    side.as_str()
}

fn ts_field(out: &mut Vec<u8>, ts: Option<UnixNanos>) {
    if let Some(ts) = ts {
        write_rfc3339(out, ts);
    }
}

/// Fields of a `trades.csv` row.
const TRADE_FIELDS: usize = 13;

/// Appends field `index` (of [`TRADE_FIELDS`]) of `t`'s `trades.csv` row.
fn trade_field(o: &mut Vec<u8>, t: &Trade, index: usize) {
    match index {
        0 => o.extend_from_slice(itoa::Buffer::new().format(t.id).as_bytes()),
        1 => o.extend_from_slice(t.symbol.as_str().as_bytes()),
        2 => o.extend_from_slice(if t.side == OrderSide::Buy {
            b"LONG"
        } else {
            b"SHORT"
        }),
        3 => quantity(o, t.quantity),
        4 => ts_field(o, Some(t.entry_ts)),
        5 => price(o, t.entry_price),
        6 => ts_field(o, t.exit_ts),
        7 => {
            if let Some(p) = t.exit_price {
                price(o, p)
            }
        }
        8 => money(o, t.gross_pnl),
        9 => money(o, t.fees),
        10 => money(o, t.net_pnl),
        11 => o.extend_from_slice(itoa::Buffer::new().format(t.bars).as_bytes()),
        _ => o.extend_from_slice(if t.is_open() { b"open" } else { b"closed" }),
    }
}

/// Appends `t`'s `trades.csv` row (without newline).
fn write_trade_row(out: &mut Vec<u8>, t: &Trade) {
    for i in 0..TRADE_FIELDS {
        if i > 0 {
            out.push(b',');
        }
        trade_field(out, t, i);
    }
}

/// One `trades.csv` row (without newline) as fields, as the report lists it.
pub fn trade_fields(t: &Trade) -> Vec<String> {
    let mut b = Vec::new();
    (0..TRADE_FIELDS)
        .map(|i| {
            b.clear();
            trade_field(&mut b, t, i);
            String::from_utf8_lossy(&b).into_owned()
        })
        .collect()
}

/// The trades the report lists (the first and the last [`TradeRows`] holds), the last ones kept
/// as trades and turned into text only once known to be among the last.
#[derive(Default)]
struct ShownTrades {
    rows: TradeRows,
    last: std::collections::VecDeque<Trade>,
}

impl ShownTrades {
    fn push(&mut self, t: &Trade) {
        if self.rows.total < TradeRows::SHOWN as u64 {
            self.rows.push(trade_fields(t));
            return;
        }
        self.rows.total += 1;
        if self.last.len() == TradeRows::SHOWN {
            self.last.pop_front();
        }
        self.last.push_back(t.clone());
    }

    fn finish(mut self) -> TradeRows {
        let total = self.rows.total;
        for t in &self.last {
            self.rows.push(trade_fields(t));
        }
        self.rows.total = total;
        self.rows
    }
}

impl Sink for RunSink {
    #[inline]
    fn on_bar(&mut self, bar: &Bar) {
        self.chart.push_bar(bar);
    }

    fn on_event(&mut self, event: &Event) {
        let r = self.journal.append_event(event);
        self.keep("journal.jsonl", r);
    }

    fn on_fill(&mut self, fill: &Fill, symbol: Symbol) {
        self.chart.push_fill(fill, symbol);
        let row = self.fills.buffer();
        let start = row.len();
        row.extend_from_slice(itoa::Buffer::new().format(fill.id).as_bytes());
        row.push(b',');
        write_order_id(row, fill.order_id);
        row.push(b',');
        write_rfc3339(row, fill.ts);
        row.push(b',');
        row.extend_from_slice(symbol.as_str().as_bytes());
        row.push(b',');
        row.extend_from_slice(side_str(fill.side).as_bytes());
        row.push(b',');
        quantity(row, fill.quantity);
        row.push(b',');
        price(row, fill.price);
        row.push(b',');
        money(row, fill.fee);
        row.push(b',');
        row.extend_from_slice(fill.liquidity.as_str().as_bytes());
        if let Some(wall) = &self.wall_column {
            row.extend_from_slice(wall);
        }
        if let Some(tables) = self.tables.as_mut() {
            tables.fills.push_line(&row[start..]);
        }
        row.push(b'\n');
        let r = self.fills.commit();
        self.keep("fills.csv", r);
    }

    fn on_order_closed(&mut self, record: &OrderRecord<'_>) {
        let o = record.order;
        let row = self.orders.buffer();
        let start = row.len();
        write_order_id(row, o.id);
        row.push(b',');
        row.extend_from_slice(record.symbol.as_str().as_bytes());
        row.push(b',');
        row.extend_from_slice(side_str(o.side).as_bytes());
        row.push(b',');
        row.extend_from_slice(o.order_type.as_str().as_bytes());
        row.push(b',');
        quantity(row, o.quantity);
        row.push(b',');
        if let Some(p) = o.price {
            price(row, p);
        }
        row.push(b',');
        if let Some(p) = o.trigger_price {
            price(row, p);
        }
        row.push(b',');
        row.extend_from_slice(o.time_in_force.as_str().as_bytes());
        row.push(b',');
        row.extend_from_slice(if o.reduce_only { b"true" } else { b"false" });
        row.push(b',');
        row.extend_from_slice(o.status().as_str().as_bytes());
        row.push(b',');
        quantity(row, o.filled());
        row.push(b',');
        if let Some(p) = record.avg_price {
            price(row, p);
        }
        row.push(b',');
        write_rfc3339(row, o.created_ts);
        row.push(b',');
        write_rfc3339(row, record.closed_ts);
        row.push(b',');
        if let Some(reason) = record.reason {
            text(row, reason);
        }
        row.push(b',');
        if let Some(id) = o.links().parent_id {
            write_order_id(row, id);
        }
        row.push(b',');
        if let Some(id) = o.links().oco_id {
            write_order_id(row, id);
        }
        if let Some(wall) = &self.wall_column {
            row.extend_from_slice(wall);
        }
        if let Some(tables) = self.tables.as_mut() {
            tables.orders.push_line(&row[start..]);
        }
        row.push(b'\n');
        let r = self.orders.commit();
        self.keep("orders.csv", r);
    }

    fn on_trade(&mut self, trade: &Trade) {
        self.trade_rows.push(trade);
        let row = self.trades.buffer();
        let start = row.len();
        write_trade_row(row, trade);
        if let Some(tables) = self.tables.as_mut() {
            tables.trades.push_line(&row[start..]);
        }
        row.push(b'\n');
        let r = self.trades.commit();
        self.keep("trades.csv", r);
    }

    #[inline]
    fn on_equity(&mut self, point: &EquityPoint) {
        // The chart samples `Money::as_f64` of the exact value; a re-render reads the same value
        // back from equity.parquet and derives the drawdown the same way, so both give the same
        // bytes.
        self.sampler
            .push(point.ts, point.equity.as_f64(), point.drawdown_pct);
        if let Some(writer) = self.equity.as_mut()
            && let Err(e) = writer.push(point)
        {
            self.equity = None;
            self.keep("equity.parquet", Err(e.into()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error
mod tests {
    use tradeloom_core::{Currency, InstrumentId};

    use super::*;

    fn trade(id: u64) -> Trade {
        let usd = |raw: i128| Money::from_raw(raw, Currency::USD);
        Trade {
            id,
            symbol: Symbol::new("SYN").unwrap(),
            instrument: InstrumentId(0),
            side: if id.is_multiple_of(2) {
                OrderSide::Buy
            } else {
                OrderSide::Sell
            },
            quantity: Quantity::from_raw(1_000_000_000, 0).unwrap(),
            entry_ts: UnixNanos(id as i64 * 60_000_000_000),
            entry_price: Price::from_raw(100_250_000_000 + id as i64, 9),
            exit_ts: (!id.is_multiple_of(7)).then_some(UnixNanos((id as i64 + 1) * 60_000_000_000)),
            exit_price: (!id.is_multiple_of(7)).then_some(Price::from_raw(101_000_000_000, 2)),
            gross_pnl: usd(i128::from(id) * 1_000_000 - 5),
            fees: usd(3),
            net_pnl: usd(i128::from(id) * 1_000_000 - 8),
            bars: id * 3,
        }
    }

    #[test]
    fn the_report_lists_the_same_trades_as_when_every_row_was_kept() {
        for count in [0, 1, 49, 50, 51, 99, 100, 101, 250] {
            let (mut shown, mut every) = (ShownTrades::default(), TradeRows::default());
            for id in 1..=count {
                shown.push(&trade(id));
                every.push(trade_fields(&trade(id)));
            }
            let shown = shown.finish();
            assert_eq!(shown.total, every.total, "{count} trades");
            assert_eq!(shown.head, every.head, "{count} trades");
            assert_eq!(shown.tail, every.tail, "{count} trades");
        }
    }

    #[test]
    fn a_trades_row_is_written_exactly() {
        let mut row = Vec::new();
        write_trade_row(&mut row, &trade(12));
        assert_eq!(
            String::from_utf8(row).unwrap(),
            "12,SYN,LONG,1,1970-01-01T00:12:00Z,100.250000012,1970-01-01T00:13:00Z,101.00,\
             0.000000000011999995,0.000000000000000003,0.000000000011999992,36,closed"
        );
        let open = trade_fields(&trade(7));
        assert_eq!((&*open[1], &*open[2], &*open[6]), ("SYN", "SHORT", ""));
        assert_eq!((&*open[7], &*open[12]), ("", "open"));
    }
}
