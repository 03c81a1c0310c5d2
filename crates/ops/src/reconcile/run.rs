//! Reconciliation of a backtest run folder: the books recomputed from the journal's fills and
//! compared with every file that reports them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tradeloom_core::fixed::{mul_div, parse_decimal};
use tradeloom_core::{
    Account, AccountKind, Currency, InstrumentId, Money, OrderSide, Position, Price, Quantity,
    UnixNanos,
};
use tradeloom_runs::{Metadata, RunStatus};
use tradeloom_store::{Store, StoreError};

use super::{Check, ReconcileError, Reconciliation, SKIPPED_RUNNING, Subject};

/// Reconciles the run folder `run_dir` from its files alone (no store). Synchronous: the
/// health monitor calls it for its data-coherence sensor.
pub fn reconcile_run(run_dir: &Path) -> Result<Reconciliation, ReconcileError> {
    let (run_id, checks, books) = file_checks(run_dir)?;
    let mut result = Reconciliation::new(Subject::RunId(run_id), checks);
    result.notes = books.notes;
    Ok(result)
}

/// [`reconcile_run`] plus, when the run is indexed in `store`, its status and headline figures
/// against the store's row.
pub async fn reconcile_run_with_store(
    run_dir: &Path,
    store: &dyn Store,
) -> Result<Reconciliation, ReconcileError> {
    let (run_id, mut checks, books) = file_checks(run_dir)?;
    match store.run(&run_id).await {
        Ok(entry) => checks.extend(store_checks(&entry, &books)),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut result = Reconciliation::new(Subject::RunId(run_id), checks);
    result.notes = books.notes;
    Ok(result)
}

/// What the recomputation and the reports agree on, for the store comparison.
struct Books {
    status: String,
    currency: Currency,
    final_equity: Option<Money>,
    fees: Money,
    trades: u64,
    /// What was tolerated (a last line cut short, a run still running).
    notes: Vec<String>,
}

fn store_checks(entry: &tradeloom_store::RunEntry, books: &Books) -> Vec<Check> {
    let mut checks = vec![Check::text("store.status", &books.status, &entry.status)];
    let summary = entry.summary.as_ref();
    let money = |key: &str| {
        summary
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .map(|t| Money::parse(t, books.currency))
    };
    if let Some(reported) = money("final_equity") {
        let expected = books.final_equity.unwrap_or(Money::zero(books.currency));
        checks.push(match reported {
            Ok(m) => Check::money("store.final_equity", expected, m),
            Err(e) => Check::verdict(
                "store.final_equity",
                false,
                expected.to_string(),
                format!("not a decimal: {e}"),
            ),
        });
    }
    if let Some(reported) = money("fees") {
        checks.push(match reported {
            Ok(m) => Check::money("store.fees", books.fees, m),
            Err(e) => Check::verdict(
                "store.fees",
                false,
                books.fees.to_string(),
                format!("not a decimal: {e}"),
            ),
        });
    }
    if let Some(trades) = summary
        .and_then(|s| s.get("trades"))
        .and_then(Value::as_u64)
    {
        checks.push(Check::count("store.trades", books.trades, trades));
    }
    checks
}

/// One journal line, as far as reconciliation reads it (other fields are ignored).
#[derive(Deserialize)]
struct Line {
    event: String,
    ts: Option<String>,
    order_id: Option<String>,
    fill_id: Option<u64>,
    symbol: Option<String>,
    side: Option<String>,
    quantity: Option<String>,
    price: Option<String>,
    fee: Option<String>,
    liquidity: Option<String>,
    realized_pnl: Option<String>,
    initial_cash: Option<String>,
    cash: Option<String>,
    equity: Option<String>,
    fills: Option<u64>,
}

/// A fill as the journal reports it, parsed exactly.
#[derive(Clone, Debug, PartialEq)]
struct FillRow {
    fill_id: u64,
    order_id: String,
    ts: String,
    symbol: String,
    side: OrderSide,
    quantity: i64,
    price: i64,
    fee: i128,
    liquidity: String,
}

impl FillRow {
    fn describe(&self) -> String {
        format!(
            "fill {} {} {} {} {} {} @ {} fee {} {}",
            self.fill_id,
            self.order_id,
            self.ts,
            self.symbol,
            self.side.as_str(),
            tradeloom_core::fixed::format_raw(i128::from(self.quantity), 9, 0),
            tradeloom_core::fixed::format_raw(i128::from(self.price), 9, 0),
            tradeloom_core::fixed::format_raw(self.fee, 18, 0),
            self.liquidity
        )
    }
}

/// The books recomputed from the journal, and what the journal itself reported.
struct Journal {
    initial_cash: Option<Money>,
    account: Option<Account>,
    positions: BTreeMap<String, Position>,
    /// Σ realised PnL of each symbol's `position_changed` events, as reported.
    reported_realized: BTreeMap<String, i128>,
    /// Each symbol's last reported net quantity (raw 10^-9).
    reported_net: BTreeMap<String, i64>,
    /// What the next `position_changed` of a symbol must say: (net raw, realised raw).
    pending_position: BTreeMap<String, (i64, i128)>,
    /// `position_changed` events that disagree with the recomputation (first one's line).
    position_mismatches: u64,
    first_position_mismatch: Option<String>,
    fills: Vec<FillRow>,
    fill_lines: Vec<usize>,
    /// order id → (symbol, side, quantity raw) of `order_submitted`.
    orders: BTreeMap<String, (String, String, i64)>,
    /// Distinct ids of orders the engine counted (submitted or rejected before submission).
    counted_orders: std::collections::BTreeSet<String>,
    rejected: u64,
    /// Fills that name no submitted order, or a different symbol/side, or overfill it.
    orphan_fills: u64,
    filled_by_order: BTreeMap<String, i64>,
    fees: i128,
    turnover: i128,
    closed_trades: u64,
    finished_cash: Option<Money>,
    finished_equity: Option<Money>,
    finished_fills: Option<u64>,
    /// Whole lines read.
    lines: usize,
    /// A last line without its newline that is not a journal event (the run was killed while
    /// writing it): its line number and length; it was ignored.
    partial_tail: Option<(usize, usize)>,
    /// The books after line `n` (`state/snapshot.json`'s `journal_lines`), when asked for.
    at_snapshot: Option<SnapshotBooks>,
}

/// The books recomputed up to a journal line: cash and, per symbol, net quantity (raw 10^-9)
/// and realised PnL.
#[derive(Clone, Debug)]
struct SnapshotBooks {
    cash: Money,
    positions: BTreeMap<String, (i64, Money)>,
}

/// Reads `path` as lines: every line that ends with a newline, and the last piece without one
/// separately (a line being written, or cut short by a kill).
fn read_lines(path: &Path) -> Result<(Vec<String>, Option<String>), ReconcileError> {
    let file = std::fs::File::open(path).map_err(|e| ReconcileError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ReconcileError::io(path, e))?;
        if n == 0 {
            return Ok((lines, None));
        }
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let text = String::from_utf8(std::mem::take(&mut buf))
            .map_err(|_| ReconcileError::corrupt(path, Some(lines.len() + 1), "not UTF-8 text"))?;
        if !complete {
            // Nothing can follow a piece without a newline.
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            return Ok((lines, Some(text)));
        }
        lines.push(text);
    }
}

fn field<'a>(
    value: &'a Option<String>,
    name: &str,
    path: &Path,
    line: usize,
) -> Result<&'a str, ReconcileError> {
    value
        .as_deref()
        .ok_or_else(|| ReconcileError::corrupt(path, Some(line), format!("`{name}` is missing")))
}

fn raw9(text: &str, name: &str, path: &Path, line: usize) -> Result<(i64, u8), ReconcileError> {
    parse_decimal(text.as_bytes())
        .map(|p| (p.raw, p.decimals))
        .map_err(|e| {
            ReconcileError::corrupt(
                path,
                Some(line),
                format!("`{name}` is not a decimal: `{text}` ({e})"),
            )
        })
}

fn money(
    text: &str,
    currency: Currency,
    name: &str,
    path: &Path,
    line: usize,
) -> Result<Money, ReconcileError> {
    Money::parse(text, currency).map_err(|e| {
        ReconcileError::corrupt(
            path,
            Some(line),
            format!("`{name}` is not a decimal amount: `{text}` ({e})"),
        )
    })
}

fn side(text: &str, path: &Path, line: usize) -> Result<OrderSide, ReconcileError> {
    match text {
        "BUY" => Ok(OrderSide::Buy),
        "SELL" => Ok(OrderSide::Sell),
        other => Err(ReconcileError::corrupt(
            path,
            Some(line),
            format!("unknown side `{other}`; expected BUY or SELL"),
        )),
    }
}

fn read_journal(
    path: &Path,
    currency: Currency,
    snapshot_at: Option<u64>,
) -> Result<Journal, ReconcileError> {
    let (lines, tail) = read_lines(path)?;
    let mut j = Journal {
        initial_cash: None,
        account: None,
        positions: BTreeMap::new(),
        reported_realized: BTreeMap::new(),
        reported_net: BTreeMap::new(),
        pending_position: BTreeMap::new(),
        position_mismatches: 0,
        first_position_mismatch: None,
        fills: Vec::new(),
        fill_lines: Vec::new(),
        orders: BTreeMap::new(),
        counted_orders: Default::default(),
        rejected: 0,
        orphan_fills: 0,
        filled_by_order: BTreeMap::new(),
        fees: 0,
        turnover: 0,
        closed_trades: 0,
        finished_cash: None,
        finished_equity: None,
        finished_fills: None,
        lines: 0,
        partial_tail: None,
        at_snapshot: None,
    };
    // A last piece without newline counts when it is a whole event (a file written without a
    // final newline); otherwise it is a line cut short, ignored and noted.
    let tail = match tail {
        Some(t) if !t.trim().is_empty() && serde_json::from_str::<Line>(&t).is_ok() => Some(t),
        Some(t) => {
            j.partial_tail = Some((lines.len() + 1, t.len()));
            None
        }
        None => None,
    };
    let all = lines.iter().chain(tail.iter());
    for (i, text) in all.enumerate() {
        let n = i + 1;
        if text.trim().is_empty() {
            return Err(ReconcileError::corrupt(path, Some(n), "empty line"));
        }
        let line: Line = serde_json::from_str(text).map_err(|e| {
            ReconcileError::corrupt(path, Some(n), format!("not a journal event: {e}"))
        })?;
        j.lines = n;
        match line.event.as_str() {
            "run_started" => {
                let cash = money(
                    field(&line.initial_cash, "initial_cash", path, n)?,
                    currency,
                    "initial_cash",
                    path,
                    n,
                )?;
                j.initial_cash = Some(cash);
                j.account = Some(Account::new(AccountKind::Margin, cash));
            }
            "order_submitted" => {
                let id = field(&line.order_id, "order_id", path, n)?.to_string();
                let symbol = field(&line.symbol, "symbol", path, n)?.to_string();
                let s = field(&line.side, "side", path, n)?.to_string();
                let (q, _) = raw9(
                    field(&line.quantity, "quantity", path, n)?,
                    "quantity",
                    path,
                    n,
                )?;
                j.counted_orders.insert(id.clone());
                j.orders.insert(id, (symbol, s, q));
            }
            "order_rejected" => {
                j.counted_orders
                    .insert(field(&line.order_id, "order_id", path, n)?.to_string());
                j.rejected += 1;
            }
            "order_filled" => apply_fill(&mut j, &line, currency, path, n)?,
            "position_changed" => {
                let symbol = field(&line.symbol, "symbol", path, n)?.to_string();
                let (net, _) = raw9(
                    field(&line.quantity, "quantity", path, n)?,
                    "quantity",
                    path,
                    n,
                )?;
                let realized = money(
                    field(&line.realized_pnl, "realized_pnl", path, n)?,
                    currency,
                    "realized_pnl",
                    path,
                    n,
                )?;
                *j.reported_realized.entry(symbol.clone()).or_default() += realized.raw();
                j.reported_net.insert(symbol.clone(), net);
                let agrees = j.pending_position.remove(&symbol) == Some((net, realized.raw()));
                if !agrees {
                    j.position_mismatches += 1;
                    j.first_position_mismatch.get_or_insert_with(|| {
                        format!(
                            "journal.jsonl:{n}: {symbol} net {} realised {realized}",
                            tradeloom_core::fixed::format_raw(i128::from(net), 9, 0)
                        )
                    });
                }
            }
            "run_finished" => {
                j.finished_cash = Some(money(
                    field(&line.cash, "cash", path, n)?,
                    currency,
                    "cash",
                    path,
                    n,
                )?);
                j.finished_equity = Some(money(
                    field(&line.equity, "equity", path, n)?,
                    currency,
                    "equity",
                    path,
                    n,
                )?);
                j.finished_fills = line.fills;
            }
            _ => {}
        }
        if snapshot_at == Some(n as u64) {
            j.at_snapshot = Some(books_now(&j, currency));
        }
    }
    Ok(j)
}

/// The books recomputed so far.
fn books_now(j: &Journal, currency: Currency) -> SnapshotBooks {
    SnapshotBooks {
        cash: j
            .account
            .as_ref()
            .map_or(Money::zero(currency), |a| a.cash()),
        positions: j
            .positions
            .iter()
            .map(|(s, p)| (s.clone(), (p.net_raw(), p.realized())))
            .collect(),
    }
}

fn apply_fill(
    j: &mut Journal,
    line: &Line,
    currency: Currency,
    path: &Path,
    n: usize,
) -> Result<(), ReconcileError> {
    let fill_id = line
        .fill_id
        .ok_or_else(|| ReconcileError::corrupt(path, Some(n), "`fill_id` is missing"))?;
    let order_id = field(&line.order_id, "order_id", path, n)?.to_string();
    let symbol = field(&line.symbol, "symbol", path, n)?.to_string();
    let side = side(field(&line.side, "side", path, n)?, path, n)?;
    let (q_raw, q_dec) = raw9(
        field(&line.quantity, "quantity", path, n)?,
        "quantity",
        path,
        n,
    )?;
    let (p_raw, p_dec) = raw9(field(&line.price, "price", path, n)?, "price", path, n)?;
    let fee = money(field(&line.fee, "fee", path, n)?, currency, "fee", path, n)?;
    let quantity = Quantity::from_raw(q_raw, q_dec)
        .map_err(|_| ReconcileError::corrupt(path, Some(n), "`quantity` of a fill is negative"))?;
    let price = Price::from_raw(p_raw, p_dec);
    let account = j
        .account
        .as_mut()
        .ok_or_else(|| ReconcileError::corrupt(path, Some(n), "a fill before `run_started`"))?;
    let notional = Money::notional(price, quantity, currency)
        .map_err(|e| ReconcileError::corrupt(path, Some(n), e.to_string()))?;
    account
        .apply_fill(side, notional, fee)
        .map_err(|e| ReconcileError::corrupt(path, Some(n), e.to_string()))?;
    let next_id = j.positions.len();
    let position = j.positions.entry(symbol.clone()).or_insert_with(|| {
        Position::flat(
            InstrumentId(u32::try_from(next_id).unwrap_or(u32::MAX)),
            currency,
            p_dec,
            q_dec,
        )
    });
    let change = position
        .apply(side, quantity, price, UnixNanos(0))
        .map_err(|e| ReconcileError::corrupt(path, Some(n), e.to_string()))?;
    if change.closed_round_trip() {
        j.closed_trades += 1;
    }
    j.pending_position
        .insert(symbol.clone(), (change.after_raw, change.realized.raw()));
    j.fees += fee.raw();
    j.turnover += notional.raw().abs();
    let filled = j.filled_by_order.entry(order_id.clone()).or_default();
    *filled += q_raw;
    let consistent = j
        .orders
        .get(&order_id)
        .is_some_and(|(s, sd, q)| *s == symbol && sd == side.as_str() && *filled <= *q);
    if !consistent {
        j.orphan_fills += 1;
    }
    j.fill_lines.push(n);
    j.fills.push(FillRow {
        fill_id,
        order_id,
        ts: field(&line.ts, "ts", path, n)?.to_string(),
        symbol,
        side,
        quantity: q_raw,
        price: p_raw,
        fee: fee.raw(),
        liquidity: field(&line.liquidity, "liquidity", path, n)?.to_string(),
    });
    Ok(())
}

/// Reads `fills.csv` rows (header checked) as [`FillRow`]s with their line numbers.
/// `fills.csv` rows, and the line number of a last line cut short (ignored), if any.
type FillsCsv = (Vec<(usize, FillRow)>, Option<usize>);

fn read_fills_csv(path: &Path, currency: Currency) -> Result<FillsCsv, ReconcileError> {
    let (lines, tail) = read_lines(path)?;
    let partial = tail.filter(|t| !t.is_empty()).map(|_| lines.len() + 1);
    let mut rows = Vec::new();
    // A paper run's file has one more column, `wall_ts`.
    let mut width = 9;
    for (i, text) in lines.iter().enumerate() {
        let n = i + 1;
        if i == 0 {
            let header = text.trim_end();
            let plain = tradeloom_runs::artifacts::FILLS_HEADER.trim_end();
            if header == format!("{plain},wall_ts") {
                width = 10;
            } else if header != plain {
                return Err(ReconcileError::corrupt(
                    path,
                    Some(n),
                    format!("unexpected header `{text}`"),
                ));
            }
            continue;
        }
        let f: Vec<&str> = text.split(',').collect();
        if f.len() != width {
            return Err(ReconcileError::corrupt(
                path,
                Some(n),
                format!("expected {width} fields, found {}", f.len()),
            ));
        }
        let fill_id = f[0].parse::<u64>().map_err(|_| {
            ReconcileError::corrupt(path, Some(n), format!("fill_id `{}` is not a number", f[0]))
        })?;
        rows.push((
            n,
            FillRow {
                fill_id,
                order_id: f[1].to_string(),
                ts: f[2].to_string(),
                symbol: f[3].to_string(),
                side: side(f[4], path, n)?,
                quantity: raw9(f[5], "quantity", path, n)?.0,
                price: raw9(f[6], "price", path, n)?.0,
                fee: money(f[7], currency, "fee", path, n)?.raw(),
                liquidity: f[8].to_string(),
            },
        ));
    }
    Ok((rows, partial))
}

/// The lines of a CSV file after its header, with line numbers (a last line without its
/// newline, cut short by a kill, is left out).
/// CSV rows with their line numbers, and the line number of a last line cut short.
type CsvRows = (Vec<(usize, Vec<String>)>, Option<usize>);

fn csv_rows(path: &Path) -> Result<CsvRows, ReconcileError> {
    let (lines, tail) = read_lines(path)?;
    let cut = tail.filter(|t| !t.is_empty()).map(|_| lines.len() + 1);
    let rows = lines
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, text)| (i + 1, text.split(',').map(str::to_string).collect()))
        .collect();
    Ok((rows, cut))
}

/// The last row of `equity.parquet` (only its last row group is read).
fn last_equity_row(
    path: &Path,
    currency: Currency,
) -> Result<Option<tradeloom_runs::equity::EquityRow>, ReconcileError> {
    let file = tradeloom_runs::equity::EquityFile::open(path).map_err(super::run_error)?;
    if file.currency() != currency {
        return Err(ReconcileError::corrupt(
            path,
            None,
            format!(
                "amounts are in {}; the run's account is in {currency}",
                file.currency()
            ),
        ));
    }
    file.last().map_err(super::run_error)
}

fn read_json(path: &Path) -> Result<Value, ReconcileError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReconcileError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ReconcileError::corrupt(path, Some(e.line()), format!("not JSON: {e}")))
}

/// A money field of `metrics.json` (a decimal string), or an error naming it.
fn metric_money(
    metrics: &Value,
    key: &str,
    currency: Currency,
    path: &Path,
) -> Result<Money, ReconcileError> {
    match metrics.get(key) {
        Some(Value::String(s)) => Money::parse(s, currency).map_err(|e| {
            ReconcileError::corrupt(
                path,
                None,
                format!("field `{key}`: `{s}` is not a decimal amount ({e})"),
            )
        }),
        other => Err(ReconcileError::corrupt(
            path,
            None,
            format!(
                "field `{key}` must be a decimal string, found {}",
                other.map_or("nothing".to_string(), Value::to_string)
            ),
        )),
    }
}

fn metric_count(metrics: &Value, key: &str, path: &Path) -> Result<u64, ReconcileError> {
    metrics.get(key).and_then(Value::as_u64).ok_or_else(|| {
        ReconcileError::corrupt(
            path,
            None,
            format!("field `{key}` must be a non-negative integer"),
        )
    })
}

fn run_currency(run_dir: &Path) -> Result<Currency, ReconcileError> {
    /// Only `account.currency` is needed: the rest of the spec is not re-validated here (a
    /// field this version cannot read back must not stop the books from being checked).
    #[derive(Deserialize)]
    struct SpecAccount {
        account: AccountCurrency,
    }
    #[derive(Deserialize)]
    struct AccountCurrency {
        #[serde(default)]
        currency: Option<String>,
    }
    let path = run_dir.join("run_spec.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| ReconcileError::io(&path, e))?;
    let spec: SpecAccount = yaml_serde::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        ReconcileError::corrupt(&path, line, format!("account.currency: {e}"))
    })?;
    let code = spec.account.currency.unwrap_or_else(|| "USD".to_string());
    Currency::from_code(&code)
        .map_err(|e| ReconcileError::corrupt(&path, None, format!("account.currency: {e}")))
}

fn file_checks(run_dir: &Path) -> Result<(String, Vec<Check>, Books), ReconcileError> {
    let meta = Metadata::read(run_dir).map_err(super::run_error)?;
    if meta.mode == "order" {
        return Err(ReconcileError::Corrupt {
            path: run_dir.join("metadata.json"),
            line: None,
            message: format!(
                "run {} is a workflow `order` node's run (mode: order): it has no reports to \
                 reconcile its journal against; `tradeloom verify` checks its files",
                meta.run_id
            ),
        });
    }
    let currency = run_currency(run_dir)?;
    let file = |name: &str| -> PathBuf { run_dir.join(name) };
    let paper = meta.mode == "paper";
    // A paper run killed before it stopped is `running` until a later process marks it
    // `interrupted` (listing runs does); either way its folder is not sealed yet.
    let interrupted = paper && meta.status == RunStatus::Interrupted;
    let running = meta.status == RunStatus::Running || interrupted;
    let mut notes = Vec::new();
    if interrupted {
        notes.push(
            "the run was interrupted (its process died) and not resumed yet: the reports it \
             writes when it stops are skipped (`tradeloom run --resume` finishes it)"
                .to_string(),
        );
    } else if running {
        notes.push(
            "the run is still running (or its process died without marking it): the reports it \
             writes when it stops are skipped, and fills.csv may trail the journal"
                .to_string(),
        );
    }
    // While the run writes, the CSV files are read before the journal, so that the journal
    // holds at least every fill and order they show.
    let snapshot = if paper {
        read_snapshot(&file(SNAPSHOT_FILE))?
    } else {
        None
    };
    let fills_csv = read_fills_csv(&file("fills.csv"), currency)?;
    let (orders_rows, orders_cut) = csv_rows(&file("orders.csv"))?;
    if let Some(line) = orders_cut {
        notes.push(format!(
            "orders.csv:{line}: the last line is cut short and was ignored"
        ));
    }
    let journal_path = file("journal.jsonl");
    let snapshot_at = snapshot.as_ref().map(|s| s.journal_lines);
    let j = read_journal(&journal_path, currency, snapshot_at)?;
    if let Some((line, bytes)) = j.partial_tail {
        notes.push(format!(
            "journal.jsonl:{line}: the last line is cut short ({bytes} bytes without a newline; the run was killed while writing it) and was ignored"
        ));
    }
    if let Some(line) = fills_csv.1 {
        notes.push(format!(
            "fills.csv:{line}: the last line is cut short and was ignored"
        ));
    }
    let mut checks = Vec::new();

    let Some(initial) = j.initial_cash else {
        return Err(ReconcileError::corrupt(
            &journal_path,
            None,
            "no `run_started` event",
        ));
    };
    let account = j
        .account
        .clone()
        .unwrap_or(Account::new(AccountKind::Margin, initial));
    let finished = j.finished_cash.is_some();
    journal_checks(&j, &account, currency, running, &mut checks);
    if running {
        checks.push(Check::skipped(
            "equity_curve",
            "equity.parquet's last row",
            SKIPPED_RUNNING,
        ));
    } else {
        equity_curve_checks(
            &file(tradeloom_runs::equity::EQUITY_FILE),
            &j,
            &account,
            currency,
            &mut checks,
        )?;
    }
    fills_csv_checks(&fills_csv.0, &j, running, &mut checks);
    checks.push(orders_csv_check(
        &file("orders.csv"),
        orders_rows,
        &j,
        finished,
    )?);
    if running {
        checks.push(Check::skipped(
            "trades_csv.closed",
            "trades.csv's closed trades",
            SKIPPED_RUNNING,
        ));
    } else {
        checks.push(trades_csv_check(&file("trades.csv"), &j)?);
    }
    let fees = Money::from_raw(j.fees, currency);
    let reported_equity = if running {
        checks.push(Check::skipped("metrics", "metrics.json", SKIPPED_RUNNING));
        None
    } else {
        metrics_checks(
            &file("metrics.json"),
            &j,
            initial,
            currency,
            finished,
            &mut checks,
        )?
    };
    let final_equity = j.finished_equity.or(reported_equity);
    metadata_checks(
        &meta,
        &file("metadata.json"),
        final_equity,
        &j,
        currency,
        &mut checks,
    )?;
    if paper {
        snapshot_checks(snapshot.as_ref(), &j, currency, running, &mut checks)?;
    }
    let books = Books {
        status: meta.status.as_str().to_string(),
        currency,
        final_equity,
        fees,
        trades: j.closed_trades,
        notes,
    };
    Ok((meta.run_id, checks, books))
}

/// `state/snapshot.json` of a paper run.
const SNAPSHOT_FILE: &str = "state/snapshot.json";

/// What reconciliation reads of a snapshot.
#[derive(Deserialize)]
struct SnapshotFile {
    journal_lines: u64,
    cash: String,
    #[serde(default)]
    positions: Vec<SnapshotPosition>,
}

#[derive(Deserialize)]
struct SnapshotPosition {
    symbol: String,
    quantity: String,
    realized: String,
}

/// The snapshot, or `None` when the run has not written one yet.
fn read_snapshot(path: &Path) -> Result<Option<SnapshotFile>, ReconcileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            ReconcileError::corrupt(path, Some(e.line()), format!("not a snapshot: {e}"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReconcileError::io(path, e)),
    }
}

/// The snapshot's cash and positions against the books replayed from the journal up to the
/// snapshot's `journal_lines`.
fn snapshot_checks(
    snapshot: Option<&SnapshotFile>,
    j: &Journal,
    currency: Currency,
    running: bool,
    checks: &mut Vec<Check>,
) -> Result<(), ReconcileError> {
    let Some(snapshot) = snapshot else {
        checks.push(if running {
            Check::skipped(
                "snapshot",
                SNAPSHOT_FILE,
                "skipped (run still running: no snapshot written yet)",
            )
        } else {
            // A paper run writes one when it stops.
            Check::verdict("snapshot", false, SNAPSHOT_FILE, "missing")
        });
        return Ok(());
    };
    let Some(books) = &j.at_snapshot else {
        let expected = format!("journal.jsonl has line {}", snapshot.journal_lines);
        checks.push(if running {
            // The snapshot is written as the run goes; its journal lines reach the file within
            // a moment.
            Check::skipped(
                "snapshot.journal_lines",
                expected,
                &format!(
                    "skipped (run still running: journal.jsonl has {} of its lines yet)",
                    j.lines
                ),
            )
        } else {
            Check::verdict(
                "snapshot.journal_lines",
                false,
                expected,
                format!("journal.jsonl has {} whole lines", j.lines),
            )
        });
        return Ok(());
    };
    checks.push(Check::verdict(
        "snapshot.journal_lines",
        true,
        format!("journal.jsonl has line {}", snapshot.journal_lines),
        format!("journal.jsonl has {} whole lines", j.lines),
    ));
    let path = Path::new(SNAPSHOT_FILE);
    let amount = |text: &str, field: &str| {
        Money::parse(text, currency).map_err(|e| {
            ReconcileError::corrupt(
                path,
                None,
                format!("`{field}`: `{text}` is not a decimal amount ({e})"),
            )
        })
    };
    let cash = amount(&snapshot.cash, "cash")?;
    checks.push(Check::money("snapshot.cash", books.cash, cash));
    let mut reported: BTreeMap<&str, (i64, Money)> = BTreeMap::new();
    for (i, p) in snapshot.positions.iter().enumerate() {
        let net = parse_decimal(p.quantity.as_bytes())
            .map_err(|e| {
                ReconcileError::corrupt(
                    path,
                    None,
                    format!(
                        "`positions[{i}].quantity`: `{}` is not a decimal ({e})",
                        p.quantity
                    ),
                )
            })?
            .raw;
        let realized = amount(&p.realized, &format!("positions[{i}].realized"))?;
        reported.insert(p.symbol.as_str(), (net, realized));
    }
    let symbols: std::collections::BTreeSet<&str> = books
        .positions
        .keys()
        .map(String::as_str)
        .chain(reported.keys().copied())
        .collect();
    let zero = (0i64, Money::zero(currency));
    for symbol in symbols {
        let (net, realized) = books.positions.get(symbol).copied().unwrap_or(zero);
        let (r_net, r_realized) = reported.get(symbol).copied().unwrap_or(zero);
        checks.push(Check::raw9(
            format!("snapshot.position.{symbol}.quantity"),
            i128::from(net),
            i128::from(r_net),
        ));
        checks.push(Check::money(
            format!("snapshot.position.{symbol}.realized_pnl"),
            realized,
            r_realized,
        ));
    }
    Ok(())
}

/// The journal against itself: fill ids in order, every fill with its order, positions and
/// realized P&L replayed from the fills, `run_finished` with its cash and fill count.
fn journal_checks(
    j: &Journal,
    account: &Account,
    currency: Currency,
    running: bool,
    checks: &mut Vec<Check>,
) {
    let in_order = j
        .fills
        .iter()
        .enumerate()
        .all(|(i, f)| f.fill_id == i as u64 + 1);
    checks.push(Check::verdict(
        "journal.fill_ids",
        in_order,
        format!("1..{} in order", j.fills.len()),
        if in_order {
            format!("1..{} in order", j.fills.len())
        } else {
            let (i, f) = j
                .fills
                .iter()
                .enumerate()
                .find(|(i, f)| f.fill_id != *i as u64 + 1)
                .map(|(i, f)| (i, f.fill_id))
                .unwrap_or((0, 0));
            format!(
                "fill {f} at position {} (journal.jsonl:{})",
                i + 1,
                j.fill_lines.get(i).copied().unwrap_or(0)
            )
        },
    ));
    checks.push(Check::count(
        "journal.fills_without_matching_order",
        0,
        j.orphan_fills,
    ));
    for (symbol, position) in &j.positions {
        checks.push(Check::raw9(
            format!("journal.position.{symbol}.quantity"),
            i128::from(position.net_raw()),
            i128::from(j.reported_net.get(symbol).copied().unwrap_or(0)),
        ));
        checks.push(Check::money(
            format!("journal.position.{symbol}.realized_pnl"),
            position.realized(),
            Money::from_raw(
                j.reported_realized.get(symbol).copied().unwrap_or(0),
                currency,
            ),
        ));
    }
    let unmatched = j.position_mismatches + j.pending_position.len() as u64;
    checks.push(Check::verdict(
        "journal.position_events",
        unmatched == 0,
        "every position_changed follows from its fill",
        match &j.first_position_mismatch {
            None if unmatched == 0 => "every position_changed follows from its fill".to_string(),
            None => format!("{unmatched} fills without their position_changed event"),
            Some(first) => format!("{unmatched} events disagree; first {first}"),
        },
    ));
    let finished = j.finished_cash.is_some();
    if running && !finished {
        checks.push(Check::skipped(
            "journal.run_finished",
            "run_finished",
            SKIPPED_RUNNING,
        ));
    } else {
        checks.push(Check::verdict(
            "journal.run_finished",
            finished,
            "run_finished",
            if finished {
                "run_finished"
            } else {
                "missing (the run did not finish)"
            },
        ));
    }
    if let Some(cash) = j.finished_cash {
        checks.push(Check::money("journal.cash", account.cash(), cash));
    }
    if let Some(fills) = j.finished_fills {
        checks.push(Check::count("journal.fills", j.fills.len() as u64, fills));
    }
}

/// The last row of `equity.parquet`: cash, final equity and (positions on one side) gross
/// exposure.
fn equity_curve_checks(
    equity_path: &Path,
    j: &Journal,
    account: &Account,
    currency: Currency,
    checks: &mut Vec<Check>,
) -> Result<(), ReconcileError> {
    match last_equity_row(equity_path, currency)? {
        Some(row) => {
            let (cash, equity, gross) = (row.cash, row.equity, row.gross_exposure);
            checks.push(Check::money("equity_curve.cash", account.cash(), cash));
            if let Some(e) = j.finished_equity {
                checks.push(Check::money("equity_curve.final_equity", e, equity));
            }
            // Equity = cash + Σ net × mark. With every open position on one side, |equity −
            // cash| is the gross exposure exactly; with mixed sides the marks cannot be
            // separated.
            let signs: std::collections::BTreeSet<i64> = j
                .positions
                .values()
                .map(|p| p.net_raw().signum())
                .filter(|s| *s != 0)
                .collect();
            if signs.len() <= 1 {
                let expected =
                    Money::from_raw((equity.raw() - account.cash().raw()).abs(), currency);
                checks.push(Check::money("equity_curve.gross_exposure", expected, gross));
            }
        }
        None => checks.push(Check::verdict(
            "equity_curve.rows",
            false,
            "at least one row",
            "no rows",
        )),
    }
    Ok(())
}

/// `fills.csv`, row by row, against the journal's fills. While the run runs, the file may
/// trail the journal: its rows must be the journal's first ones.
fn fills_csv_checks(csv: &[(usize, FillRow)], j: &Journal, running: bool, checks: &mut Vec<Check>) {
    if running {
        let ok = csv.len() <= j.fills.len();
        checks.push(Check::verdict(
            "fills_csv.rows",
            ok,
            format!(
                "at most {} (the journal's fills; run still running)",
                j.fills.len()
            ),
            csv.len().to_string(),
        ));
    } else {
        checks.push(Check::count(
            "fills_csv.rows",
            j.fills.len() as u64,
            csv.len() as u64,
        ));
    }
    let mismatch = j
        .fills
        .iter()
        .zip(&j.fill_lines)
        .zip(csv.iter())
        .find(|((f, _), (_, row))| *f != row);
    let all = format!(
        "{} rows equal to the journal's fills",
        j.fills.len().min(csv.len())
    );
    checks.push(match mismatch {
        None => Check::verdict("fills_csv.match_journal", true, all.clone(), all),
        Some(((f, jl), (n, row))) => Check::verdict(
            "fills_csv.match_journal",
            false,
            format!("journal.jsonl:{jl}: {}", f.describe()),
            format!("fills.csv:{n}: {}", row.describe()),
        ),
    });
}

/// `orders.csv`: every order's filled quantity equals its fills in the journal.
fn orders_csv_check(
    orders_path: &Path,
    rows: Vec<(usize, Vec<String>)>,
    j: &Journal,
    finished: bool,
) -> Result<Check, ReconcileError> {
    let mut bad_orders = 0u64;
    let mut first_bad = None;
    let mut seen = std::collections::BTreeSet::new();
    for (n, row) in rows {
        let (Some(id), Some(filled)) = (row.first(), row.get(10)) else {
            return Err(ReconcileError::corrupt(
                orders_path,
                Some(n),
                "fewer than 11 fields",
            ));
        };
        let (filled, _) = raw9(filled, "filled_quantity", orders_path, n)?;
        let journal = j.filled_by_order.get(id).copied().unwrap_or(0);
        seen.insert(id.clone());
        if filled != journal {
            bad_orders += 1;
            first_bad.get_or_insert_with(|| {
                format!(
                    "orders.csv:{n}: {id} filled {} (journal {})",
                    tradeloom_core::fixed::format_raw(i128::from(filled), 9, 0),
                    tradeloom_core::fixed::format_raw(i128::from(journal), 9, 0)
                )
            });
        }
    }
    // Orders with fills that never reached orders.csv (every order is closed by the run's end).
    let missing = j
        .filled_by_order
        .keys()
        .filter(|id| !seen.contains(*id))
        .count() as u64;
    let ok = bad_orders == 0 && (missing == 0 || !finished);
    Ok(Check::verdict(
        "orders_csv.filled_quantity",
        ok,
        "every order's filled_quantity equals its fills in the journal",
        if ok {
            "every order's filled_quantity equals its fills in the journal".to_string()
        } else if let Some(first) = first_bad {
            format!("{bad_orders} rows differ; first {first}")
        } else {
            format!("{missing} filled orders missing from orders.csv")
        },
    ))
}

/// `trades.csv`: its closed trades, as many as the journal's.
fn trades_csv_check(trades_path: &Path, j: &Journal) -> Result<Check, ReconcileError> {
    let closed = csv_rows(trades_path)?
        .0
        .iter()
        .filter(|(_, r)| r.last().map(String::as_str) == Some("closed"))
        .count() as u64;
    Ok(Check::count("trades_csv.closed", j.closed_trades, closed))
}

/// `metrics.json` against the journal; returns the final equity it reports, if it exists.
fn metrics_checks(
    metrics_path: &Path,
    j: &Journal,
    initial: Money,
    currency: Currency,
    finished: bool,
    checks: &mut Vec<Check>,
) -> Result<Option<Money>, ReconcileError> {
    let fees = Money::from_raw(j.fees, currency);
    if metrics_path.is_file() {
        let m = read_json(metrics_path)?;
        let mm = |k: &str| metric_money(&m, k, currency, metrics_path);
        checks.push(Check::money(
            "metrics.initial_cash",
            initial,
            mm("initial_cash")?,
        ));
        checks.push(Check::money("metrics.fees", fees, mm("fees")?));
        checks.push(Check::money(
            "metrics.turnover",
            Money::from_raw(j.turnover, currency),
            mm("turnover")?,
        ));
        let reported_equity = mm("final_equity")?;
        let expected_equity = j.finished_equity.unwrap_or(reported_equity);
        checks.push(Check::money(
            "metrics.final_equity",
            expected_equity,
            reported_equity,
        ));
        let net = Money::from_raw(expected_equity.raw() - initial.raw(), currency);
        checks.push(Check::money("metrics.net_pnl", net, mm("net_pnl")?));
        checks.push(return_check(&m, net, initial, metrics_path)?);
        checks.push(Check::count(
            "metrics.fills",
            j.fills.len() as u64,
            metric_count(&m, "fills", metrics_path)?,
        ));
        checks.push(Check::count(
            "metrics.orders",
            j.counted_orders.len() as u64,
            metric_count(&m, "orders", metrics_path)?,
        ));
        checks.push(Check::count(
            "metrics.rejected_orders",
            j.rejected,
            metric_count(&m, "rejected_orders", metrics_path)?,
        ));
        checks.push(Check::count(
            "metrics.trades",
            j.closed_trades,
            metric_count(&m, "trades", metrics_path)?,
        ));
        return Ok(Some(reported_equity));
    }
    if finished {
        checks.push(Check::verdict(
            "metrics.present",
            false,
            "metrics.json",
            "missing",
        ));
    }
    Ok(None)
}

/// The summary of `metadata.json`: final equity and trades.
fn metadata_checks(
    meta: &Metadata,
    path: &Path,
    final_equity: Option<Money>,
    j: &Journal,
    currency: Currency,
    checks: &mut Vec<Check>,
) -> Result<(), ReconcileError> {
    if let Some(summary) = &meta.summary {
        let reported = Money::parse(&summary.final_equity, currency).map_err(|e| {
            ReconcileError::corrupt(
                path,
                None,
                format!("summary.final_equity `{}`: {e}", summary.final_equity),
            )
        })?;
        checks.push(Check::money(
            "metadata.final_equity",
            final_equity.unwrap_or(Money::zero(currency)),
            reported,
        ));
        checks.push(Check::count(
            "metadata.trades",
            j.closed_trades,
            summary.trades,
        ));
    }
    Ok(())
}

/// `metrics.total_return_pct` (an `f64` statistic rounded to 6 decimals) against the exact
/// `net / initial × 100`, to within one unit of the sixth decimal.
fn return_check(
    m: &Value,
    net: Money,
    initial: Money,
    path: &Path,
) -> Result<Check, ReconcileError> {
    let reported = m
        .get("total_return_pct")
        .and_then(Value::as_f64)
        .ok_or_else(|| {
            ReconcileError::corrupt(path, None, "field `total_return_pct` must be a number")
        })?;
    // Exact: net × 100 × 10^6 / initial, rounded half away from zero, in millionths of a percent.
    let scaled = mul_div(net.raw() * 100, 10_000_000, initial.raw()).unwrap_or(0);
    let expected = (scaled + scaled.signum() * 5) / 10;
    // The reported figure is a rounded f64 statistic; it is converted only to compare it.
    let observed = (reported * 1e6).round() as i128;
    let fmt = |v: i128| tradeloom_core::fixed::format_raw(v, 6, 0);
    Ok(Check {
        name: "metrics.total_return_pct".into(),
        passed: (observed - expected).abs() <= 1,
        expected: Value::String(fmt(expected)),
        observed: Value::String(fmt(observed)),
        difference: Value::String(fmt(observed - expected)),
        skipped: false,
    })
}
