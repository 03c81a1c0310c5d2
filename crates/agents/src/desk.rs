//! The desk of a workflow: what its `agent` and `order` nodes trade against. A [`Market`] (a
//! universe of daily bars and a news corpus, loaded from files as a simulation loads them) seen
//! as of one date at its reference price, and a simulated [`Book`]. The tools and the order
//! path are a simulation's own ([`ToolBox`]): the same argument schemas, the same
//! no-look-ahead rules, the same cash and short-sale checks and the same kill switch.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde_json::{Value, json};
use tradeloom_core::{Decimal, Price};
use tradeloom_data::{NewsCorpus, Universe};

use crate::book::{Book, BookError, Execution, exact};
use crate::config::ReferencePrice;
use crate::error::AgentError;
use crate::order_gate::OrderGate;
use crate::tools::{MAX_ORDER_QUANTITY, SessionView, ToolBox, ToolError};

/// A universe and its news, loaded from files.
#[derive(Debug)]
pub struct Market {
    pub universe: Universe,
    pub news: NewsCorpus,
    /// The folder the bars were read from (absolute when given so).
    pub universe_dir: PathBuf,
    /// The news file read, if any.
    pub news_path: Option<PathBuf>,
}

impl Market {
    /// Loads the bar files of `universe_dir` (restricted to `symbols` when given) and the news
    /// of `news` — by default `<universe_dir>/news.jsonl` when that file exists, as
    /// simulations do; no news otherwise.
    pub fn load(
        universe_dir: &Path,
        news: Option<&Path>,
        symbols: Option<&[String]>,
    ) -> Result<Market, AgentError> {
        let mut universe = Universe::load(universe_dir)?;
        if let Some(symbols) = symbols {
            universe = universe.restrict(symbols)?;
        }
        let news_path = match news {
            Some(path) => Some(path.to_path_buf()),
            None => Some(universe_dir.join("news.jsonl")).filter(|p| p.is_file()),
        };
        let news = match &news_path {
            Some(path) => NewsCorpus::load(path)?,
            None => NewsCorpus::empty(),
        };
        Ok(Market {
            universe,
            news,
            universe_dir: universe_dir.to_path_buf(),
            news_path,
        })
    }

    /// The market as one session sees it: on `as_of`, at the `reference` price.
    pub fn view(&self, as_of: NaiveDate, reference: ReferencePrice) -> SessionView<'_> {
        SessionView {
            universe: &self.universe,
            news: &self.news,
            date: as_of,
            reference,
        }
    }

    /// The bar file of `symbol` in the universe folder (`SYMBOL.csv`, `.parquet`, …), for
    /// hashing what an order was priced from.
    pub fn bar_file(&self, symbol: &str) -> Option<PathBuf> {
        let entries = std::fs::read_dir(&self.universe_dir).ok()?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_stem().and_then(|s| s.to_str()) == Some(symbol)
                    && tradeloom_data::DataFormat::from_path(p).is_some()
            })
            .collect();
        found.sort();
        found.into_iter().next()
    }
}

/// A side of a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// An approved order proposal: buy or sell whole shares of a symbol, at the reference price
/// or better than `limit`.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub symbol: String,
    pub side: Side,
    /// Whole shares, 1 to [`MAX_ORDER_QUANTITY`].
    pub quantity: u64,
    /// A buy fills only at a reference price at or below it, a sell at or above it.
    pub limit: Option<Decimal>,
}

impl Proposal {
    /// Reads a proposal object: `symbol`, `side` (`buy` or `sell`; `action` is read when
    /// `side` is absent, as a trader agent answers), `quantity` (whole shares, a number or
    /// integer text) and an optional `limit` (a number or decimal text). `Ok(None)`: the
    /// proposal holds (`hold`, or a quantity of 0), so there is nothing to execute. The error
    /// names the field and the value.
    pub fn from_value(value: &Value) -> Result<Option<Proposal>, String> {
        let Value::Object(map) = value else {
            return Err(format!(
                "the proposal must be a JSON object with symbol, side and quantity, got {}",
                short(value)
            ));
        };
        let side_field = if map.contains_key("side") {
            "side"
        } else {
            "action"
        };
        let side = match map.get(side_field).and_then(Value::as_str) {
            Some(s) => match s.trim().to_ascii_lowercase().as_str() {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                "hold" | "none" => return Ok(None),
                other => {
                    return Err(format!(
                        "proposal.{side_field}: `{other}` is not a side; expected buy, sell or hold"
                    ));
                }
            },
            None => {
                return Err(format!(
                    "proposal.side: required (buy, sell or hold), got {}",
                    map.get(side_field).map_or_else(|| "nothing".into(), short)
                ));
            }
        };
        let quantity = match map.get("quantity") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let Some(quantity) = quantity else {
            return Err(format!(
                "proposal.quantity: whole shares (a non-negative integer) required, got {}",
                map.get("quantity").map_or_else(|| "nothing".into(), short)
            ));
        };
        if quantity == 0 {
            return Ok(None);
        }
        if quantity > MAX_ORDER_QUANTITY {
            return Err(format!(
                "proposal.quantity: {quantity} is more than the maximum of {MAX_ORDER_QUANTITY}"
            ));
        }
        let symbol = match map.get("symbol").and_then(Value::as_str).map(str::trim) {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => {
                return Err(format!(
                    "proposal.symbol: a symbol is required, got {}",
                    map.get("symbol").map_or_else(|| "nothing".into(), short)
                ));
            }
        };
        let limit = match map.get("limit") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let text = match v {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.trim().to_string(),
                    other => {
                        return Err(format!(
                            "proposal.limit: a price is required, got {}",
                            short(other)
                        ));
                    }
                };
                let limit = Decimal::parse(&text)
                    .map_err(|e| format!("proposal.limit: `{text}` is not a price: {e}"))?;
                if limit.is_negative() || limit.is_zero() {
                    return Err(format!("proposal.limit: must be positive, got {text}"));
                }
                Some(limit)
            }
        };
        Ok(Some(Proposal {
            symbol,
            side,
            quantity,
            limit,
        }))
    }

    /// As JSON, for the run's spec and the node's output.
    pub fn to_value(&self) -> Value {
        json!({
            "symbol": self.symbol,
            "side": self.side.as_str(),
            "quantity": self.quantity,
            "limit": self.limit.map(|l| l.to_string()),
        })
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 80 {
        return text;
    }
    let mut end = 80;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// How an order ended.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderOutcome {
    /// Executed at the reference price.
    Filled(Execution),
    /// Not executed: `code` is stable (`order.limit_not_reached`, `account.insufficient_cash`,
    /// `account.no_shorting`, `market.no_bar`, `order.unknown_symbol`), `reason` says why.
    NotFilled { code: &'static str, reason: String },
    /// The kill switch refused it; `reason` starts with
    /// [`KILL_SWITCH_CODE`](crate::KILL_SWITCH_CODE).
    Refused { reason: String },
}

/// Executes `proposal` on `book` as a simulation's `buy`/`sell` tool does — at `view`'s
/// reference price plus the fee, the kill switch of `gate` looked at first — after checking
/// its `limit` against that price. Returns the outcome, the reference price when there was
/// one, and the book after it.
pub fn execute_proposal(
    view: SessionView<'_>,
    book: Book,
    gate: Option<OrderGate>,
    proposal: &Proposal,
) -> (OrderOutcome, Option<Price>, Book) {
    let price = view.reference_price(&proposal.symbol).ok();
    let engaged = gate.as_ref().and_then(OrderGate::engaged_now);
    if engaged.is_none()
        && let (Some(limit), Some(price)) = (proposal.limit, price)
    {
        let px = exact(price);
        let reached = match proposal.side {
            Side::Buy => px <= limit,
            Side::Sell => px >= limit,
        };
        if !reached {
            let reason = format!(
                "{} {} {} limit {limit}: the {} reference price on {} is {price}",
                proposal.side.as_str(),
                proposal.quantity,
                proposal.symbol,
                view.reference.as_str(),
                view.date
            );
            return (
                OrderOutcome::NotFilled {
                    code: "order.limit_not_reached",
                    reason,
                },
                Some(price),
                book,
            );
        }
    }
    let args = json!({"symbol": proposal.symbol, "quantity": proposal.quantity}).to_string();
    let mut tools = ToolBox::new(view, book).with_gate(gate);
    let (_, result) = tools.call(1, proposal.side.as_str(), &args);
    let outcome = match result {
        Ok(_) => match tools.executions().first() {
            Some((_, execution)) => OrderOutcome::Filled(execution.clone()),
            // The tool answers Ok only after recording the execution.
            None => OrderOutcome::NotFilled {
                code: "order.invalid",
                reason: "the order was not executed".into(),
            },
        },
        Err(e) if e.is_refusal() => OrderOutcome::Refused {
            reason: e.to_string(),
        },
        Err(e) => OrderOutcome::NotFilled {
            code: not_filled_code(&e),
            reason: e.to_string(),
        },
    };
    (outcome, price, tools.book().clone())
}

fn not_filled_code(e: &ToolError) -> &'static str {
    match e {
        ToolError::Book(BookError::InsufficientCash(_)) => "account.insufficient_cash",
        ToolError::Book(BookError::ShortSale { .. }) => "account.no_shorting",
        ToolError::NotTrading { .. } | ToolError::NoBar { .. } => "market.no_bar",
        ToolError::UnknownSymbol { .. } => "order.unknown_symbol",
        _ => "order.invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_read_side_or_action_and_hold_means_nothing() {
        let p = Proposal::from_value(&json!({"symbol": "AAA", "action": "buy", "quantity": "20"}))
            .unwrap()
            .unwrap();
        assert_eq!((p.side, p.quantity, p.limit), (Side::Buy, 20, None));
        let p = Proposal::from_value(
            &json!({"symbol": "AAA", "side": "SELL", "quantity": 5, "limit": "101.5"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.side, Side::Sell);
        assert_eq!(p.limit, Some(Decimal::parse("101.5").unwrap()));
        assert_eq!(
            Proposal::from_value(&json!({"symbol": "AAA", "action": "hold", "quantity": 0})),
            Ok(None)
        );
        let e = Proposal::from_value(&json!({"symbol": "AAA", "side": "short", "quantity": 1}))
            .unwrap_err();
        assert!(e.contains("proposal.side") && e.contains("short"), "{e}");
        let e = Proposal::from_value(&json!({"symbol": "AAA", "side": "buy", "quantity": 1.5}))
            .unwrap_err();
        assert!(e.contains("proposal.quantity") && e.contains("1.5"), "{e}");
        let e = Proposal::from_value(&json!({"side": "buy", "quantity": 1})).unwrap_err();
        assert!(e.contains("proposal.symbol"), "{e}");
        let e = Proposal::from_value(&json!("buy 10")).unwrap_err();
        assert!(e.contains("JSON object"), "{e}");
    }
}
