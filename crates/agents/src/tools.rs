//! The tools a model trades with: `get_price`, `get_bars`, `get_portfolio`, `buy`, `sell`,
//! `calc` and `search_news`. Simulations offer [`TOOL_NAMES`]; workflow agents offer the market
//! tools their node lists (see [`crate::desk`]). Every call is checked against its JSON schema;
//! an invalid call, an impossible trade or a look-ahead request comes back to the model as a
//! tool error (the text of `Err`), never as a crash.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use tradeloom_core::{Price, Quantity};
use tradeloom_data::{DailyBar, NewsCorpus, Universe};
use tradeloom_llm::ToolSpec;

use crate::book::{Book, BookError, Execution};
use crate::calc::{self, CalcError};
use crate::config::ReferencePrice;
use crate::order_gate::{OrderGate, refusal};
use crate::schema;

/// Names of the tools a simulation session offers, in the order they are offered.
pub const TOOL_NAMES: [&str; 6] = [
    "get_price",
    "get_portfolio",
    "buy",
    "sell",
    "calc",
    "search_news",
];

/// Every tool implemented here: [`TOOL_NAMES`] and `get_bars` (offered to workflow agents).
pub const ALL_TOOL_NAMES: [&str; 7] = [
    "get_price",
    "get_portfolio",
    "buy",
    "sell",
    "calc",
    "search_news",
    "get_bars",
];

/// Largest order size a tool accepts (shares).
pub const MAX_ORDER_QUANTITY: u64 = 100_000_000;

/// Most bars one `get_bars` call returns.
pub const MAX_BARS: u64 = 250;

/// Bars `get_bars` returns when the call does not say.
const DEFAULT_BARS: u64 = 20;

/// The tools' specs as offered to the model (stable order and text, part of the cached prefix).
pub fn tool_specs() -> Vec<ToolSpec> {
    shared_tool_specs().to_vec()
}

/// [`tool_specs`], built once per process: every session offers them and every tool call
/// checks its arguments against them.
pub fn shared_tool_specs() -> &'static [ToolSpec] {
    static SPECS: std::sync::LazyLock<Vec<ToolSpec>> = std::sync::LazyLock::new(|| {
        all_tool_specs()
            .iter()
            .filter(|t| TOOL_NAMES.contains(&t.name.as_str()))
            .cloned()
            .collect()
    });
    &SPECS
}

/// The specs of every tool in [`ALL_TOOL_NAMES`], built once per process.
pub fn all_tool_specs() -> &'static [ToolSpec] {
    static SPECS: std::sync::LazyLock<Vec<ToolSpec>> = std::sync::LazyLock::new(build_tool_specs);
    &SPECS
}

/// The spec of tool `name`, if it is one of [`ALL_TOOL_NAMES`].
pub fn tool_spec(name: &str) -> Option<&'static ToolSpec> {
    all_tool_specs().iter().find(|t| t.name == name)
}

fn build_tool_specs() -> Vec<ToolSpec> {
    let order = |verb: &str| {
        json!({
            "type": "object",
            "properties": {
                "symbol": {"type": "string", "minLength": 1, "maxLength": 31, "description": "A symbol of the session's universe"},
                "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_ORDER_QUANTITY, "description": format!("Whole shares to {verb}")}
            },
            "required": ["symbol", "quantity"],
            "additionalProperties": false
        })
    };
    vec![
        ToolSpec {
            name: "get_price".into(),
            description: "Daily bar of a symbol. Without `date`: the session's date, showing only what is known at the session's time (at the open: the open price and the previous close). With a past `date`: that day's full bar. Future dates are refused.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "symbol": {"type": "string", "minLength": 1, "maxLength": 31},
                    "date": {"type": "string", "format": "date", "description": "YYYY-MM-DD, at or before the session date"}
                },
                "required": ["symbol"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "get_portfolio".into(),
            description: "Cash, positions valued at the session's reference price, and total value.".into(),
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        },
        ToolSpec {
            name: "buy".into(),
            description: "Buy whole shares at the session's reference price plus the fee; refused if cash does not cover it.".into(),
            parameters: order("buy"),
        },
        ToolSpec {
            name: "sell".into(),
            description: "Sell whole shares you hold at the session's reference price less the fee; short selling is refused.".into(),
            parameters: order("sell"),
        },
        ToolSpec {
            name: "calc".into(),
            description: "Evaluate an arithmetic expression: numbers, + - * / % ^, parentheses, abs, sqrt, min, max, round(x, places).".into(),
            parameters: json!({
                "type": "object",
                "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": calc::MAX_EXPRESSION_LEN}},
                "required": ["expression"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "search_news".into(),
            description: "Search news published up to the session's time; newest and best matches first.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "maxLength": 200},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 20}
                },
                "required": ["query"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "get_bars".into(),
            description: format!("Daily bars (open, high, low, close, volume) of a symbol, oldest first: the last `days` complete trading days up to `end` (default and at most: the session's date when prices are taken at the close, the day before it when they are taken at the open). Future dates are refused. At most {MAX_BARS} bars."),
            parameters: json!({
                "type": "object",
                "properties": {
                    "symbol": {"type": "string", "minLength": 1, "maxLength": 31},
                    "days": {"type": "integer", "minimum": 1, "maximum": MAX_BARS, "description": format!("How many bars (default {DEFAULT_BARS})")},
                    "end": {"type": "string", "format": "date", "description": "YYYY-MM-DD, the last date wanted; at or before the session date"}
                },
                "required": ["symbol"],
                "additionalProperties": false
            }),
        },
    ]
}

/// Why a tool call failed; the text goes back to the model as the call's `error`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool `{name}`; available tools: {available}")]
    UnknownTool { name: String, available: String },
    #[error("arguments of `{name}` are not valid JSON ({reason}); send a JSON object")]
    NotJson { name: String, reason: String },
    #[error("invalid arguments for `{name}`: {problems}")]
    InvalidArguments { name: String, problems: String },
    #[error("unknown symbol `{symbol}`; the universe is {universe}")]
    UnknownSymbol { symbol: String, universe: String },
    #[error("{symbol} does not trade on {date}")]
    NotTrading { symbol: String, date: NaiveDate },
    /// A `date` argument that is not `YYYY-MM-DD` (the schema checks its shape).
    #[error("{0}")]
    BadDate(String),
    #[error(
        "{date} is after the session date {today}: prices from the future are not available (no look-ahead)"
    )]
    Future { date: NaiveDate, today: NaiveDate },
    #[error("{symbol} has no bar on {date} (not a trading day for it)")]
    NoBar { symbol: String, date: NaiveDate },
    /// An order the kill switch refused: the text starts with
    /// [`KILL_SWITCH_CODE`](crate::KILL_SWITCH_CODE).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Book(#[from] BookError),
    #[error(transparent)]
    Calc(#[from] CalcError),
}

impl ToolError {
    /// Whether this is a kill switch refusal (not the model's mistake).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ToolError::Refused(_))
    }
}

/// The clock of a session on `date` trading at `reference`: 14:30 UTC (the open) or 21:00 UTC
/// (the close). News published after it is not visible to the session.
pub fn session_clock(date: NaiveDate, reference: ReferencePrice) -> DateTime<Utc> {
    let (h, m) = match reference {
        ReferencePrice::Open => (14, 30),
        ReferencePrice::Close => (21, 0),
    };
    date.and_hms_opt(h, m, 0)
        .map_or_else(Utc::now, |t| t.and_utc())
}

/// What one session may see: its date, the time within it and the market data up to then.
#[derive(Clone, Copy, Debug)]
pub struct SessionView<'a> {
    pub universe: &'a Universe,
    pub news: &'a NewsCorpus,
    pub date: NaiveDate,
    pub reference: ReferencePrice,
}

impl SessionView<'_> {
    /// The session's clock: 14:30 UTC (the open) or 21:00 UTC (the close) of its date.
    pub fn as_of(&self) -> DateTime<Utc> {
        session_clock(self.date, self.reference)
    }

    /// The price trades execute at for `symbol` today.
    pub fn reference_price(&self, symbol: &str) -> Result<Price, ToolError> {
        let bar = self.today(symbol)?;
        Ok(match self.reference {
            ReferencePrice::Open => bar.open,
            ReferencePrice::Close => bar.close,
        })
    }

    /// The end-of-day mark: today's close, or the last close before today if it did not trade.
    pub fn closing_price(&self, symbol: &str) -> Option<Price> {
        self.universe
            .bar(symbol, self.date)
            .or_else(|| self.universe.last_bar_before(symbol, self.date))
            .map(|b| b.close)
    }

    fn known_symbol(&self, symbol: &str) -> Result<(), ToolError> {
        if self.universe.contains(symbol) {
            Ok(())
        } else {
            Err(ToolError::UnknownSymbol {
                symbol: symbol.to_string(),
                universe: self.universe.symbols().join(", "),
            })
        }
    }

    fn today(&self, symbol: &str) -> Result<&DailyBar, ToolError> {
        self.known_symbol(symbol)?;
        self.universe
            .bar(symbol, self.date)
            .ok_or_else(|| ToolError::NotTrading {
                symbol: symbol.to_string(),
                date: self.date,
            })
    }
}

/// The tools of one model-day: the view of the market and the model's book.
#[derive(Debug)]
pub struct ToolBox<'a> {
    view: SessionView<'a>,
    book: Book,
    executions: Vec<(u32, Execution)>,
    gate: Option<OrderGate>,
    /// The tools this box answers; `None`: a simulation's ([`TOOL_NAMES`]).
    offered: Option<Vec<&'static ToolSpec>>,
}

impl<'a> ToolBox<'a> {
    /// A simulation session's tools ([`TOOL_NAMES`]).
    pub fn new(view: SessionView<'a>, book: Book) -> Self {
        Self {
            view,
            book,
            executions: Vec::new(),
            gate: None,
            offered: None,
        }
    }

    /// Answers only the tools named in `names` (each of [`ALL_TOOL_NAMES`]; others are
    /// refused with the error listing the known tools).
    pub fn offering(mut self, names: &[&str]) -> Result<Self, ToolError> {
        let mut offered = Vec::with_capacity(names.len());
        for name in names {
            offered.push(tool_spec(name).ok_or_else(|| ToolError::UnknownTool {
                name: (*name).to_string(),
                available: ALL_TOOL_NAMES.join(", "),
            })?);
        }
        self.offered = Some(offered);
        Ok(self)
    }

    /// The specs of the tools this box answers, in the order they are offered.
    pub fn specs(&self) -> Vec<ToolSpec> {
        match &self.offered {
            Some(offered) => offered.iter().map(|t| (*t).clone()).collect(),
            None => shared_tool_specs().to_vec(),
        }
    }

    fn offered_spec(&self, name: &str) -> Option<&'static ToolSpec> {
        match &self.offered {
            Some(offered) => offered.iter().find(|t| t.name == name).copied(),
            None => shared_tool_specs().iter().find(|t| t.name == name),
        }
    }

    fn offered_names(&self) -> String {
        match &self.offered {
            Some(offered) => offered
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            None => TOOL_NAMES.join(", "),
        }
    }

    /// Puts the kill switch in front of every `buy` and `sell`.
    pub fn with_gate(mut self, gate: Option<OrderGate>) -> Self {
        self.gate = gate;
        self
    }

    /// If a kill switch covering this book is engaged and asks to flatten: sells every holding
    /// at the session's reference price (holdings without a price today stay). Returns the
    /// sales as JSON, empty when nothing was sold.
    pub fn flatten_if_asked(&mut self, step: u32) -> Vec<Value> {
        match self.gate.as_ref().and_then(OrderGate::engaged_now) {
            Some(e) if e.flatten => self.liquidate(step),
            _ => Vec::new(),
        }
    }

    fn liquidate(&mut self, step: u32) -> Vec<Value> {
        let held: Vec<(String, Quantity)> = self
            .book
            .holdings()
            .map(|(s, q)| (s.to_string(), q))
            .collect();
        let mut sold = Vec::new();
        for (symbol, quantity) in held {
            let Ok(price) = self.view.reference_price(&symbol) else {
                sold.push(json!({"symbol": symbol, "quantity": quantity.to_string(), "error": "no price today; kept"}));
                continue;
            };
            match self.book.sell(&symbol, quantity, price) {
                Ok(execution) => {
                    sold.push(json!({
                        "symbol": symbol,
                        "side": "sell",
                        "quantity": quantity.to_string(),
                        "price": price.to_string(),
                        "fee": execution.fee.to_string(),
                        "cash_after": execution.cash_after.to_string(),
                    }));
                    self.executions.push((step, execution));
                }
                Err(e) => sold.push(json!({"symbol": symbol, "error": e.to_string()})),
            }
        }
        sold
    }

    pub fn book(&self) -> &Book {
        &self.book
    }

    pub fn view(&self) -> &SessionView<'a> {
        &self.view
    }

    /// Trades executed so far, with the step that made each.
    pub fn executions(&self) -> &[(u32, Execution)] {
        &self.executions
    }

    /// Runs tool `name` with the model's raw `arguments` text at agent step `step`.
    /// Returns the parsed arguments (for the log) and the result or the error for the model.
    pub fn call(
        &mut self,
        step: u32,
        name: &str,
        arguments: &str,
    ) -> (Value, Result<Value, ToolError>) {
        let Some(spec) = self.offered_spec(name) else {
            let args = serde_json::from_str(arguments)
                .unwrap_or_else(|_| Value::String(arguments.to_string()));
            return (
                args,
                Err(ToolError::UnknownTool {
                    name: name.to_string(),
                    available: self.offered_names(),
                }),
            );
        };
        let args = match checked_arguments(spec, arguments) {
            Ok(args) => args,
            Err(failed) => return failed,
        };
        let result = match name {
            "get_price" => self.get_price(&args),
            "get_bars" => self.get_bars(&args),
            "get_portfolio" => self.get_portfolio(),
            "buy" | "sell" => self.trade(step, name == "buy", &args),
            "calc" => calc::evaluate(str_arg(&args, "expression"))
                .map(|v| json!({"result": calc::format_result(v)}))
                .map_err(ToolError::from),
            _ => Ok(self.search_news(&args)),
        };
        (args, result)
    }

    fn get_price(&self, args: &Value) -> Result<Value, ToolError> {
        let symbol = str_arg(args, "symbol");
        self.view.known_symbol(symbol)?;
        let date = match args.get("date").and_then(Value::as_str) {
            // The schema checked the format.
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|e| ToolError::BadDate(e.to_string()))?,
            None => self.view.date,
        };
        if date > self.view.date {
            return Err(ToolError::Future {
                date,
                today: self.view.date,
            });
        }
        let bar = self
            .view
            .universe
            .bar(symbol, date)
            .ok_or_else(|| ToolError::NoBar {
                symbol: symbol.to_string(),
                date,
            })?;
        if date < self.view.date {
            return Ok(full_bar(symbol, bar));
        }
        let mut out = json!({
            "symbol": symbol,
            "date": date.to_string(),
            "reference": self.view.reference.as_str(),
        });
        match self.view.reference {
            ReferencePrice::Open => {
                out["price"] = json!(bar.open.to_string());
                out["open"] = json!(bar.open.to_string());
            }
            ReferencePrice::Close => {
                out = full_bar(symbol, bar);
                out["reference"] = json!("close");
                out["price"] = json!(bar.close.to_string());
            }
        }
        if let Some(prev) = self.view.universe.last_bar_before(symbol, date) {
            out["previous_close"] = json!(prev.close.to_string());
        }
        Ok(out)
    }

    /// The last complete bars up to `end`: a bar is complete once its day closed, so with
    /// prices taken at the open the session's own bar is never among them.
    fn get_bars(&self, args: &Value) -> Result<Value, ToolError> {
        let symbol = str_arg(args, "symbol");
        self.view.known_symbol(symbol)?;
        let end = match args.get("end").and_then(Value::as_str) {
            // The schema checked the format.
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|e| ToolError::BadDate(e.to_string()))?,
            None => self.view.date,
        };
        if end > self.view.date {
            return Err(ToolError::Future {
                date: end,
                today: self.view.date,
            });
        }
        // The schema checked 1 ≤ days ≤ MAX_BARS.
        let days = args
            .get("days")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_BARS) as usize;
        let complete = |date: NaiveDate| match self.view.reference {
            ReferencePrice::Open => date < self.view.date,
            ReferencePrice::Close => date <= self.view.date,
        };
        let bars = self.view.universe.bars(symbol).unwrap_or_default();
        let upto = bars.partition_point(|b| b.date <= end && complete(b.date));
        let window = &bars[upto.saturating_sub(days)..upto];
        let rows: Vec<Value> = window
            .iter()
            .map(|bar| {
                json!({
                    "date": bar.date.to_string(),
                    "open": bar.open.to_string(),
                    "high": bar.high.to_string(),
                    "low": bar.low.to_string(),
                    "close": bar.close.to_string(),
                    "volume": bar.volume.to_string(),
                })
            })
            .collect();
        Ok(json!({"symbol": symbol, "count": rows.len(), "bars": rows}))
    }

    fn get_portfolio(&self) -> Result<Value, ToolError> {
        let (rows, total) = self.book.mark(|s| {
            self.view
                .reference_price(s)
                .ok()
                .or_else(|| self.view.closing_price(s))
        })?;
        let positions: Vec<Value> = rows
            .iter()
            .map(|h| {
                json!({"symbol": h.symbol, "quantity": h.quantity.to_string(), "price": h.price.to_string(), "value": h.value.to_string()})
            })
            .collect();
        Ok(json!({
            "date": self.view.date.to_string(),
            "cash": self.book.cash().to_string(),
            "positions": positions,
            "portfolio_value": total.to_string(),
        }))
    }

    fn trade(&mut self, step: u32, buy: bool, args: &Value) -> Result<Value, ToolError> {
        // A fresh look at the kill switch files before every order.
        if let Some(engagement) = self.gate.as_ref().and_then(OrderGate::engaged_now) {
            let mut message = refusal(&engagement);
            if engagement.flatten {
                let sold = self.liquidate(step);
                if !sold.is_empty() {
                    message.push_str(&format!(
                        "; positions flattened (kill switch liquidation): {}",
                        Value::Array(sold)
                    ));
                }
            }
            return Err(ToolError::Refused(message));
        }
        let symbol = str_arg(args, "symbol");
        let price = self.view.reference_price(symbol)?;
        // The schema checked 1 ≤ quantity ≤ MAX_ORDER_QUANTITY.
        let shares = args.get("quantity").and_then(Value::as_f64).unwrap_or(0.0) as u32;
        let quantity = Quantity::from_int(shares, 0);
        let execution = if buy {
            self.book.buy(symbol, quantity, price)?
        } else {
            self.book.sell(symbol, quantity, price)?
        };
        let out = json!({
            "status": "filled",
            "symbol": symbol,
            "side": if buy { "buy" } else { "sell" },
            "quantity": quantity.to_string(),
            "price": price.to_string(),
            "fee": execution.fee.to_string(),
            "cash_after": execution.cash_after.to_string(),
        });
        self.executions.push((step, execution));
        Ok(out)
    }

    fn search_news(&self, args: &Value) -> Value {
        let query = str_arg(args, "query");
        let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(5) as usize;
        let results: Vec<Value> = self
            .view
            .news
            .search(query, limit, self.view.as_of())
            .into_iter()
            .map(|item| {
                json!({
                    "timestamp": item.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "symbols": item.symbols,
                    "headline": item.headline,
                    "body": item.body,
                })
            })
            .collect();
        json!({"results": results})
    }
}

/// The model's raw `arguments` for tool `spec` parsed (empty text is `{}`) and checked against
/// its schema; on failure, what to log and the error for the model.
fn checked_arguments(
    spec: &ToolSpec,
    arguments: &str,
) -> Result<Value, (Value, Result<Value, ToolError>)> {
    let name = spec.name.as_str();
    let text = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    let args: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Err((
                Value::String(arguments.to_string()),
                Err(ToolError::NotJson {
                    name: name.to_string(),
                    reason: e.to_string(),
                }),
            ));
        }
    };
    let problems = schema::validate(&spec.parameters, &args);
    if !problems.is_empty() {
        return Err((
            args,
            Err(ToolError::InvalidArguments {
                name: name.to_string(),
                problems: problems.join("; "),
            }),
        ));
    }
    Ok(args)
}

/// The `calc` tool of an agent that has no market (a workflow agent without `market`): the
/// arguments checked against the same schema as in a session. Returns the parsed arguments
/// and the result (`{"result": ...}`) or the error for the model.
pub fn call_calc(arguments: &str) -> (Value, Result<Value, ToolError>) {
    let Some(spec) = tool_spec("calc") else {
        // Unreachable: `calc` is one of the specs built above.
        return (
            Value::Null,
            Err(ToolError::UnknownTool {
                name: "calc".into(),
                available: ALL_TOOL_NAMES.join(", "),
            }),
        );
    };
    match checked_arguments(spec, arguments) {
        Ok(args) => {
            let result = calc::evaluate(str_arg(&args, "expression"))
                .map(|v| json!({"result": calc::format_result(v)}))
                .map_err(ToolError::from);
            (args, result)
        }
        Err(failed) => failed,
    }
}

fn str_arg<'v>(args: &'v Value, name: &str) -> &'v str {
    args.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn full_bar(symbol: &str, bar: &DailyBar) -> Value {
    json!({
        "symbol": symbol,
        "date": bar.date.to_string(),
        "open": bar.open.to_string(),
        "high": bar.high.to_string(),
        "low": bar.low.to_string(),
        "close": bar.close.to_string(),
        "volume": bar.volume.to_string(),
    })
}
