//! Orders from outside a paper run's strategy: a workflow's `order` node, `tradeloom order`.
//!
//! A paper spec with `external_orders: true` accepts them through its run folder, so a client
//! in another process (or on another machine sharing the data dir) needs nothing but the
//! folder:
//!
//! 1. The client writes a request ([`ExternalOrder`]) to `state/orders/inbox/<id>.json`
//!    (`<id>`: its `client_order_id`), atomically: a temporary file renamed into place
//!    ([`submit`]).
//! 2. The run takes the inbox's requests at least every [`INBOX_EVERY`] while it runs, in file
//!    name order, and checks each against its instruments. A request it can use is recorded in
//!    `state/inputs.jsonl` before anything else happens (a resumed run replays it, so it is
//!    never submitted twice nor lost), journaled as an `external_order` line, and submitted to
//!    the engine at the time of the last bar: the kill switch and pre-trade risk see it as they
//!    see the strategy's orders. The request file is then removed.
//! 3. The run answers in `state/orders/<id>.json` ([`OrderReply`], rewritten atomically):
//!    `accepted` or `refused` at once, then `partially_filled`, `filled`, `cancelled` or
//!    `expired` as the order's later events come. A request the run cannot use (not JSON, an
//!    unknown symbol, a quantity finer than the instrument's precision) is answered `refused`
//!    without being recorded: nothing of it reaches the engine or the journal.
//!
//! A client that stops waiting withdraws its request with [`withdraw`]: a rename the run can
//! no longer race with. If the rename fails, the run took the request and its reply follows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tradeloom_core::{Event, Instrument, InstrumentId, OrderId, OrderSide, Price, Quantity};
use tradeloom_engine::strategy::OrderRequest;

use crate::paper::snapshot::rfc3339;

/// The folder of the replies, under the run folder.
pub const ORDERS_DIR: &str = "state/orders";
/// The folder the run takes requests from, under the run folder.
pub const INBOX_DIR: &str = "state/orders/inbox";
/// The longest a request waits in the inbox of a running run before the run looks.
pub const INBOX_EVERY: Duration = Duration::from_millis(50);
/// The longest `client_order_id`.
const MAX_ID: usize = 128;

/// A request: one order, by symbol, side and quantity (a limit price makes it a limit order,
/// otherwise it is a market order). Quantities and prices are exact decimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalOrder {
    /// Unique per run: letters, digits, `.`, `_`, `-` and `:`, at most 128 characters. A
    /// second request with an id the run answered already is refused.
    pub client_order_id: String,
    /// Who sends it (`workflow:<run id>/<node id>`, `cli`), set by the sender's own process
    /// from what authenticated it, never from a request body.
    pub source: String,
    pub symbol: String,
    pub side: Side,
    pub quantity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// `buy` or `sell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl From<Side> for OrderSide {
    fn from(side: Side) -> Self {
        match side {
            Side::Buy => OrderSide::Buy,
            Side::Sell => OrderSide::Sell,
        }
    }
}

/// Where an external order stands, as its reply says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Working at the simulated venue: a later bar fills it under the run's fill model.
    Accepted,
    /// Never working: the run could not use the request, or the kill switch or pre-trade risk
    /// refused it (`code`, `reason`).
    Refused,
    PartiallyFilled,
    Filled,
    /// Cancelled while working (`reason`: the kill switch, the run's end, …).
    Cancelled,
    Expired,
}

impl OrderStatus {
    /// Whether nothing more will happen to the order.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Refused
                | OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Expired
        )
    }
}

/// One fill of an external order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyFill {
    pub fill_id: u64,
    /// The bar time it filled at (RFC 3339, UTC).
    pub ts: String,
    pub price: String,
    pub quantity: String,
    pub fee: String,
}

/// The run's answer to a request (`state/orders/<client_order_id>.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReply {
    pub run_id: String,
    pub client_order_id: String,
    pub source: String,
    pub status: OrderStatus,
    /// The engine's order id as the journal writes it (`O-000007`; `None` when refused before
    /// reaching the engine).
    pub order_id: Option<String>,
    /// The bar time the order was submitted at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_ts: Option<String>,
    /// Why it was refused or cancelled: a stable code (`order.invalid`, `risk.kill_switch`, …)
    /// and words for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub fills: Vec<ReplyFill>,
    /// The request as the run read it.
    pub request: ExternalOrder,
}

impl OrderReply {
    fn refused(run_id: &str, request: ExternalOrder, code: &str, reason: String) -> Self {
        Self {
            run_id: run_id.to_string(),
            client_order_id: request.client_order_id.clone(),
            source: request.source.clone(),
            status: OrderStatus::Refused,
            order_id: None,
            submitted_ts: None,
            code: Some(code.to_string()),
            reason: Some(reason),
            fills: Vec::new(),
            request,
        }
    }
}

/// Why a request cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("client_order_id: {0}")]
    BadId(String),
    #[error("order {0} was sent to this run already")]
    Duplicate(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks a `client_order_id` (it names files).
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(format!("must be 1 to {MAX_ID} characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(format!(
            "`{c}` is not allowed (letters, digits, `.`, `_`, `-` and `:`)"
        ));
    }
    if id.starts_with('.') {
        return Err("must not start with `.`".to_string());
    }
    Ok(())
}

/// The reply file of order `id` in `run_dir`.
pub fn reply_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join(ORDERS_DIR).join(format!("{id}.json"))
}

fn inbox_path(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join(INBOX_DIR).join(format!("{id}.json"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SubmitError + '_ {
    move |source| SubmitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A `client_order_id` for a sender that was given none: `prefix:` and the UTC time to the
/// nanosecond (`cli:20261207T181500.123456789Z`).
pub fn timed_client_id(prefix: &str) -> String {
    format!(
        "{prefix}:{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ")
    )
}

/// Puts `order` into the inbox of the paper run in `run_dir`. Refuses an id the run answered
/// or holds already.
pub fn submit(run_dir: &Path, order: &ExternalOrder) -> Result<(), SubmitError> {
    check_client_id(&order.client_order_id).map_err(SubmitError::BadId)?;
    let id = &order.client_order_id;
    if reply_path(run_dir, id).exists() || inbox_path(run_dir, id).exists() {
        return Err(SubmitError::Duplicate(id.clone()));
    }
    let path = inbox_path(run_dir, id);
    let bytes = serde_json::to_vec(order).unwrap_or_default();
    write_atomic(&path, &bytes).map_err(io(&path))
}

/// The run's reply to order `id`, if it answered (a reply being rewritten is read whole: the
/// rename is atomic).
pub fn read_reply(run_dir: &Path, id: &str) -> Option<OrderReply> {
    let text = std::fs::read(reply_path(run_dir, id)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Takes request `id` back from the inbox if the run has not taken it: `true` when it was
/// withdrawn (the run will never see it).
pub fn withdraw(run_dir: &Path, id: &str) -> bool {
    let from = inbox_path(run_dir, id);
    let to = run_dir.join(INBOX_DIR).join(format!(".{id}.withdrawn"));
    std::fs::rename(from, to).is_ok()
}

/// Polls the reply of order `id` every 25 ms until `done` holds for it or `timeout` passes;
/// returns the last reply read.
pub fn wait_reply(
    run_dir: &Path,
    id: &str,
    timeout: Duration,
    done: impl Fn(&OrderReply) -> bool,
) -> Option<OrderReply> {
    let deadline = Instant::now() + timeout;
    loop {
        let reply = read_reply(run_dir, id);
        if reply.as_ref().is_some_and(&done) || Instant::now() >= deadline {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// How long [`send`] waits.
#[derive(Clone, Copy, Debug)]
pub struct SendWait {
    /// For the run to take the request (it looks every [`INBOX_EVERY`] while it runs).
    pub take: Duration,
    /// Then for the order to fill (or be cancelled): bars fill it, so on a slow feed it may
    /// still be working when this passes.
    pub fill: Duration,
}

impl Default for SendWait {
    fn default() -> Self {
        Self {
            take: Duration::from_secs(10),
            fill: Duration::from_secs(10),
        }
    }
}

/// Why [`send`] could not place an order.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("paper run `{0}` not found in the data dir")]
    NotFound(String),
    #[error("run `{0}` is a {1}, not a paper run")]
    NotPaper(String, String),
    #[error("paper run `{0}` is {1}: only a running paper run takes orders")]
    NotRunning(String, String),
    #[error(
        "paper run `{0}` does not accept external orders: its spec needs `external_orders: true`"
    )]
    NotAccepting(String),
    #[error(
        "paper run `{0}` did not take the order within {1} ms: is its process running? \
         (`tradeloom run --resume {0}` continues a run whose process died); the request was \
         withdrawn"
    )]
    NotTaken(String, u128),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error("{0}")]
    Metadata(String),
}

impl SendError {
    /// Whether sending again later may succeed (the run's process may come back).
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::NotTaken(..) | SendError::Metadata(_))
    }
}

/// Sends `order` to the running paper run `run_id` (a full id) of `data_dir` and waits for the
/// run to take it, then for it to fill, as `wait` says. Idempotent by `client_order_id`: a
/// request the run answered or holds already is waited for, not sent again. Blocking.
pub fn send(
    data_dir: &Path,
    run_id: &str,
    order: &ExternalOrder,
    wait: SendWait,
) -> Result<OrderReply, SendError> {
    let run_dir = paper_run_dir(data_dir, run_id)?;
    check_client_id(&order.client_order_id).map_err(SubmitError::BadId)?;
    let id = order.client_order_id.as_str();
    let known = read_reply(&run_dir, id).is_some() || inbox_path(&run_dir, id).exists();
    if !known {
        let meta = crate::metadata::Metadata::read(&run_dir)
            .map_err(|e| SendError::Metadata(format!("run `{run_id}`: {e}")))?;
        if meta.mode != "paper" {
            return Err(SendError::NotPaper(run_id.to_string(), meta.mode));
        }
        if meta.status != crate::metadata::RunStatus::Running {
            return Err(SendError::NotRunning(
                run_id.to_string(),
                meta.status.as_str().to_string(),
            ));
        }
        if !run_dir.join(INBOX_DIR).is_dir() {
            return Err(SendError::NotAccepting(run_id.to_string()));
        }
        submit(&run_dir, order)?;
    }
    let taken = match wait_reply(&run_dir, id, wait.take, |_| true) {
        Some(reply) => reply,
        None if withdraw(&run_dir, id) => {
            return Err(SendError::NotTaken(
                run_id.to_string(),
                wait.take.as_millis(),
            ));
        }
        // Taken between the last look and the withdrawal: its reply follows.
        None => wait_reply(&run_dir, id, wait.take, |_| true)
            .ok_or_else(|| SendError::NotTaken(run_id.to_string(), wait.take.as_millis()))?,
    };
    if taken.status.is_final() {
        return Ok(taken);
    }
    Ok(wait_reply(&run_dir, id, wait.fill, |r| r.status.is_final()).unwrap_or(taken))
}

/// The paper account file, under the run folder: rewritten at least every second while the
/// run runs (with `state/feed.json`), right after the run takes an order, and at the stop.
pub const ACCOUNT_FILE: &str = "state/account.json";

/// A paper run's account as `state/account.json` says (money and quantities exact decimals).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub run_id: String,
    /// When it was written (RFC 3339, wall clock).
    pub updated_at: String,
    /// The time of the last bar processed (RFC 3339), if any.
    pub last_bar_ts: Option<String>,
    pub cash: String,
    pub equity: String,
    /// `[{symbol, quantity (signed), avg_price, realized, mark}]`.
    pub positions: Vec<Value>,
    pub working_orders: Vec<Value>,
}

/// The account of the paper run `run_id` of `data_dir` (one that accepts external orders).
pub fn read_account(data_dir: &Path, run_id: &str) -> Result<Account, SendError> {
    let run_dir = paper_run_dir(data_dir, run_id)?;
    if !run_dir.join(INBOX_DIR).is_dir() {
        return Err(SendError::NotAccepting(run_id.to_string()));
    }
    let path = run_dir.join(ACCOUNT_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        SendError::Metadata(format!(
            "run `{run_id}`: {ACCOUNT_FILE} cannot be read: {e}"
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| SendError::Metadata(format!("run `{run_id}`: {ACCOUNT_FILE}: {e}")))
}

/// The folder of paper run `run_id` (a full id) of `data_dir`.
fn paper_run_dir(data_dir: &Path, run_id: &str) -> Result<PathBuf, SendError> {
    if run_id.is_empty()
        || !run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(SendError::NotFound(run_id.to_string()));
    }
    let run_dir = data_dir.join("runs").join(run_id);
    if !run_dir.is_dir() {
        return Err(SendError::NotFound(run_id.to_string()));
    }
    Ok(run_dir)
}

/// Writes `state/account.json` of a run.
pub(crate) fn write_account(
    run_dir: &Path,
    account: &Account,
) -> Result<(), crate::error::RunError> {
    let path = run_dir.join(ACCOUNT_FILE);
    let bytes = serde_json::to_vec_pretty(account).unwrap_or_default();
    write_atomic(&path, &bytes).map_err(|e| crate::error::RunError::io(&path, e))
}

/// A request checked against the run's instruments: what the engine is given.
pub(crate) struct Checked {
    pub instrument: InstrumentId,
    pub request: OrderRequest,
}

/// Checks `order` against `instruments`: the symbol must be one of them, the quantity positive
/// at its size precision, the limit (if any) positive at its price precision.
pub(crate) fn check(order: &ExternalOrder, instruments: &[Instrument]) -> Result<Checked, String> {
    let Some(inst) = instruments
        .iter()
        .find(|i| i.symbol.as_str() == order.symbol)
    else {
        let known: Vec<&str> = instruments.iter().map(|i| i.symbol.as_str()).collect();
        return Err(format!(
            "symbol: `{}` is not an instrument of this run ({})",
            order.symbol,
            known.join(", ")
        ));
    };
    let quantity = Quantity::parse(&order.quantity, inst.size_precision).map_err(|e| {
        format!(
            "quantity: `{}` is not a quantity of {} (size precision {}): {e}",
            order.quantity, inst.symbol, inst.size_precision
        )
    })?;
    if quantity.raw() <= 0 {
        return Err(format!(
            "quantity: must be positive, got `{}`",
            order.quantity
        ));
    }
    let request = match &order.limit {
        None => OrderRequest::market(order.side.into(), quantity),
        Some(text) => {
            let price = Price::parse(text, inst.price_precision).map_err(|e| {
                format!(
                    "limit: `{text}` is not a price of {} (price precision {}): {e}",
                    inst.symbol, inst.price_precision
                )
            })?;
            if !price.is_positive() {
                return Err(format!("limit: must be positive, got `{text}`"));
            }
            OrderRequest::limit(order.side.into(), quantity, price)
        }
    };
    Ok(Checked {
        instrument: inst.id,
        request,
    })
}

/// The inbox's requests, in file name order: each with its file and the request, or why it
/// cannot be read.
pub(crate) fn take_inbox(run_dir: &Path) -> Vec<(PathBuf, Result<ExternalOrder, String>)> {
    let dir = run_dir.join(INBOX_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let parsed = std::fs::read(&path)
                .map_err(|e| format!("the request could not be read: {e}"))
                .and_then(|bytes| {
                    serde_json::from_slice::<ExternalOrder>(&bytes)
                        .map_err(|e| format!("the request is not an order: {e}"))
                })
                .and_then(|order| {
                    if order.client_order_id == stem {
                        Ok(order)
                    } else {
                        Err(format!(
                            "client_order_id: `{}` differs from the file's name `{stem}.json`",
                            order.client_order_id
                        ))
                    }
                });
            (path, parsed)
        })
        .collect()
}

/// The external orders of a run and their replies, kept up to date from the engine's events.
#[derive(Debug, Default)]
pub(crate) struct Externals {
    /// By engine order id.
    orders: std::collections::BTreeMap<u64, OrderReply>,
    /// Every `client_order_id` the run recorded.
    ids: std::collections::BTreeSet<String>,
    /// Replies changed since they were last written.
    dirty: std::collections::BTreeSet<u64>,
}

impl Externals {
    /// Whether the run recorded a request with this id.
    pub fn knows(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Notes a request the run recorded (before it is submitted).
    pub fn recorded(&mut self, id: &str) {
        self.ids.insert(id.to_string());
    }

    /// Tracks order `order_id`, submitted for `request` at `ts`; its status comes from the
    /// events that follow.
    pub fn track(&mut self, run_id: &str, order_id: OrderId, ts: &str, request: ExternalOrder) {
        self.orders.insert(
            order_id.0,
            OrderReply {
                run_id: run_id.to_string(),
                client_order_id: request.client_order_id.clone(),
                source: request.source.clone(),
                status: OrderStatus::Accepted,
                order_id: Some(order_id.to_string()),
                submitted_ts: Some(ts.to_string()),
                code: None,
                reason: None,
                fills: Vec::new(),
                request,
            },
        );
        self.dirty.insert(order_id.0);
    }

    /// Updates the reply of the order an engine event is about, if it is an external one.
    #[inline]
    pub fn observe(&mut self, event: &Event) {
        if self.orders.is_empty() {
            return;
        }
        let id = match event {
            Event::OrderRejected { order_id, .. }
            | Event::OrderFilled { order_id, .. }
            | Event::OrderCancelled { order_id, .. }
            | Event::OrderExpired { order_id, .. } => order_id.0,
            _ => return,
        };
        let Some(reply) = self.orders.get_mut(&id) else {
            return;
        };
        match event {
            Event::OrderRejected { code, reason, .. } => {
                reply.status = OrderStatus::Refused;
                reply.code = Some((*code).to_string());
                reply.reason = Some(reason.clone());
            }
            Event::OrderFilled {
                ts,
                fill_id,
                quantity,
                price,
                fee,
                ..
            } => {
                reply.fills.push(ReplyFill {
                    fill_id: *fill_id,
                    ts: rfc3339(*ts),
                    price: price.to_string(),
                    quantity: quantity.to_string(),
                    fee: fee.to_string(),
                });
                let filled: i64 = reply
                    .fills
                    .iter()
                    .filter_map(|f| {
                        Quantity::parse(&f.quantity, quantity.precision())
                            .ok()
                            .map(Quantity::raw)
                    })
                    .sum();
                let wanted = Quantity::parse(&reply.request.quantity, quantity.precision())
                    .map(Quantity::raw)
                    .unwrap_or(i64::MAX);
                reply.status = if filled >= wanted {
                    OrderStatus::Filled
                } else {
                    OrderStatus::PartiallyFilled
                };
            }
            Event::OrderCancelled { reason, .. } => {
                reply.status = OrderStatus::Cancelled;
                reply.reason = Some((*reason).to_string());
            }
            Event::OrderExpired { .. } => reply.status = OrderStatus::Expired,
            _ => {}
        }
        self.dirty.insert(id);
    }

    /// Writes the replies that changed. Errors name the file.
    pub fn write(&mut self, run_dir: &Path) -> Result<(), crate::error::RunError> {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(reply) = self.orders.get(&id) {
                write_reply(run_dir, reply)?;
            }
        }
        Ok(())
    }
}

/// Writes a reply file.
pub(crate) fn write_reply(
    run_dir: &Path,
    reply: &OrderReply,
) -> Result<(), crate::error::RunError> {
    let path = reply_path(run_dir, &reply.client_order_id);
    let bytes = serde_json::to_vec_pretty(reply).unwrap_or_default();
    write_atomic(&path, &bytes).map_err(|e| crate::error::RunError::io(&path, e))
}

/// Answers a request the run could not use (`refused`, code `order.invalid`) and removes it.
pub(crate) fn refuse_unusable(
    run_dir: &Path,
    run_id: &str,
    path: &Path,
    request: Option<ExternalOrder>,
    reason: String,
) -> Result<(), crate::error::RunError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let request = request.unwrap_or(ExternalOrder {
        client_order_id: stem,
        source: String::new(),
        symbol: String::new(),
        side: Side::Buy,
        quantity: String::new(),
        limit: None,
    });
    if check_client_id(&request.client_order_id).is_ok() {
        let reply = OrderReply::refused(run_id, request, "order.invalid", reason);
        write_reply(run_dir, &reply)?;
    }
    std::fs::remove_file(path).map_err(|e| crate::error::RunError::io(path, e))
}

/// The request as a journal line's fields.
pub(crate) fn journal_line(order: &ExternalOrder, order_id: OrderId) -> Value {
    let mut line = serde_json::json!({
        "event": "external_order",
        "client_order_id": order.client_order_id,
        "source": order.source,
        "symbol": order.symbol,
        "side": order.side,
        "quantity": order.quantity,
    });
    if let Some(limit) = &order.limit {
        line["limit"] = Value::from(limit.as_str());
    }
    line["order_id"] = Value::from(order_id.to_string());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str) -> ExternalOrder {
        ExternalOrder {
            client_order_id: id.to_string(),
            source: "cli".to_string(),
            symbol: "AAA".to_string(),
            side: Side::Buy,
            quantity: "10".to_string(),
            limit: None,
        }
    }

    #[test]
    fn ids_name_files_safely() {
        assert!(check_client_id("wf-01J:order_1.a").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(check_client_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn submit_take_and_withdraw() {
        let dir = tempfile::tempdir().unwrap();
        submit(dir.path(), &order("b")).unwrap();
        submit(dir.path(), &order("a")).unwrap();
        assert!(matches!(
            submit(dir.path(), &order("a")),
            Err(SubmitError::Duplicate(_))
        ));
        assert!(matches!(
            submit(dir.path(), &order("../a")),
            Err(SubmitError::BadId(_))
        ));
        let taken = take_inbox(dir.path());
        let ids: Vec<String> = taken
            .iter()
            .map(|(_, o)| o.as_ref().unwrap().client_order_id.clone())
            .collect();
        assert_eq!(ids, ["a", "b"], "file name order");
        assert!(withdraw(dir.path(), "a"));
        assert!(!withdraw(dir.path(), "a"), "withdrawn once");
        assert_eq!(take_inbox(dir.path()).len(), 1);
        // A file whose name differs from its id is unusable.
        std::fs::write(
            dir.path().join(INBOX_DIR).join("c.json"),
            serde_json::to_vec(&order("d")).unwrap(),
        )
        .unwrap();
        let taken = take_inbox(dir.path());
        assert!(taken[1].1.as_ref().unwrap_err().contains("differs"));
    }
}
