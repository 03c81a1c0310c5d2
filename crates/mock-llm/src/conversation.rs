//! What the mock reads from a conversation: the session header of the user message, and the
//! tool calls and results since it. The mock keeps no state between requests; everything it
//! decides follows from these.

use std::collections::HashMap;

use serde_json::Value;

use tradeloom_llm::{Message, Role, ToolCallRequest};

/// The session header lines of the user message.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Session {
    /// `Session date: 2025-01-03`
    pub date: Option<String>,
    /// `Universe: AAA, BBB, CCC`, in the given order.
    pub universe: Vec<String>,
}

impl Session {
    /// Reads `Session date:` and `Universe:` lines (keys case-insensitive); ignores the rest.
    pub fn parse(text: &str) -> Session {
        let mut session = Session::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "session date" if !value.is_empty() => session.date = Some(value.to_owned()),
                "universe" => {
                    session.universe = value
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|symbol| !symbol.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                _ => {}
            }
        }
        session
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn tool(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    fn from_tool(name: &str) -> Option<Side> {
        match name {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// A `get_price` result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Quote {
    pub price: f64,
    /// The price as the tool wrote it, for `calc` expressions.
    pub price_text: String,
    /// Absent on a symbol's first day.
    pub previous_close: Option<(f64, String)>,
}

/// A `get_portfolio` result.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Portfolio {
    pub cash: f64,
    /// Symbol and quantity, in the tool's order.
    pub positions: Vec<(String, f64)>,
}

impl Portfolio {
    pub fn held(&self, symbol: &str) -> f64 {
        self.positions
            .iter()
            .filter(|(held, _)| held == symbol)
            .map(|(_, quantity)| *quantity)
            .sum()
    }
}

/// A buy or sell the mock asked for, and what came of it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct IssuedTrade {
    pub side: Side,
    pub symbol: String,
    /// The requested quantity as the arguments spelled it.
    pub requested: String,
    pub outcome: Option<TradeOutcome>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TradeOutcome {
    /// Quantity as the tool wrote it.
    Filled {
        quantity: String,
    },
    Rejected(String),
}

/// Everything since the last user message.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Observation {
    /// Assistant turns since the user message.
    pub turns: usize,
    /// The first `get_portfolio` result.
    pub portfolio: Option<Portfolio>,
    /// The first `get_price` result of each symbol.
    pub quotes: HashMap<String, Quote>,
    pub trades: Vec<IssuedTrade>,
    pub calc_issued: bool,
}

/// A request as the policies see it.
#[derive(Debug)]
pub(crate) struct Conversation {
    pub session: Session,
    /// Assistant messages in the whole conversation: the `<step>` of tool-call ids.
    pub step: usize,
    pub observation: Observation,
}

impl Conversation {
    pub fn read(messages: &[Message]) -> Conversation {
        let last_user = messages.iter().rposition(|m| m.role == Role::User);
        let session = messages[..last_user.map_or(0, |index| index + 1)]
            .iter()
            .rev()
            .filter(|m| m.role == Role::User)
            .map(|m| Session::parse(m.content.as_deref().unwrap_or_default()))
            .find(|session| !session.universe.is_empty())
            .unwrap_or_default();
        let tail = &messages[last_user.map_or(0, |index| index + 1)..];
        Conversation {
            session,
            step: messages
                .iter()
                .filter(|m| m.role == Role::Assistant)
                .count(),
            observation: Observation::read(tail),
        }
    }
}

impl Observation {
    fn read(tail: &[Message]) -> Observation {
        let mut observation = Observation::default();
        let mut calls: HashMap<&str, &ToolCallRequest> = HashMap::new();
        let mut trade_index: HashMap<&str, usize> = HashMap::new();
        for message in tail {
            match message.role {
                Role::Assistant => {
                    observation.turns += 1;
                    for call in &message.tool_calls {
                        calls.insert(call.id.as_str(), call);
                        if call.name == "calc" {
                            observation.calc_issued = true;
                        }
                        if let Some(side) = Side::from_tool(&call.name) {
                            let arguments: Value =
                                serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                            trade_index.insert(call.id.as_str(), observation.trades.len());
                            observation.trades.push(IssuedTrade {
                                side,
                                symbol: text(&arguments["symbol"]).unwrap_or_default(),
                                requested: text(&arguments["quantity"]).unwrap_or_default(),
                                outcome: None,
                            });
                        }
                    }
                }
                Role::Tool => {
                    let Ok(result) =
                        serde_json::from_str::<Value>(message.content.as_deref().unwrap_or("null"))
                    else {
                        continue;
                    };
                    let call_id = message.tool_call_id.as_deref().unwrap_or_default();
                    let call = calls.get(call_id).copied();
                    let tool = call.map_or_else(|| guess_tool(&result), |call| call.name.as_str());
                    observation.record(tool, call, &result, trade_index.get(call_id).copied());
                }
                Role::System | Role::User => {}
            }
        }
        observation
    }

    fn record(
        &mut self,
        tool: &str,
        call: Option<&ToolCallRequest>,
        result: &Value,
        trade: Option<usize>,
    ) {
        let error = result.get("error").map(|error| match error {
            Value::String(message) => message.clone(),
            other => other.to_string(),
        });
        match tool {
            "get_portfolio" if error.is_none() && self.portfolio.is_none() => {
                self.portfolio = Some(Portfolio {
                    cash: number(&result["cash"]).unwrap_or(0.0),
                    positions: result["positions"]
                        .as_array()
                        .map(|positions| {
                            positions
                                .iter()
                                .filter_map(|position| {
                                    Some((
                                        text(&position["symbol"])?,
                                        number(&position["quantity"])?,
                                    ))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            "get_price" if error.is_none() => {
                let symbol = text(&result["symbol"]).or_else(|| {
                    let arguments: Value = serde_json::from_str(&call?.arguments).ok()?;
                    text(&arguments["symbol"])
                });
                let price_text = text(&result["price"]);
                let (Some(symbol), Some(price_text)) = (symbol, price_text) else {
                    return;
                };
                let Ok(price) = price_text.parse::<f64>() else {
                    return;
                };
                let previous_close = text(&result["previous_close"])
                    .and_then(|close| Some((close.parse::<f64>().ok()?, close)));
                self.quotes.entry(symbol).or_insert(Quote {
                    price,
                    price_text,
                    previous_close,
                });
            }
            "buy" | "sell" => {
                let Some(trade) = trade.and_then(|index| self.trades.get_mut(index)) else {
                    return;
                };
                trade.outcome = Some(match error {
                    Some(message) => TradeOutcome::Rejected(message),
                    None => TradeOutcome::Filled {
                        quantity: text(&result["quantity"]).unwrap_or(trade.requested.clone()),
                    },
                });
            }
            _ => {}
        }
    }
}

/// The tool a result without a known call most likely came from, by its shape.
fn guess_tool(result: &Value) -> &'static str {
    if result.get("positions").is_some() && result.get("cash").is_some() {
        "get_portfolio"
    } else if result.get("side").is_some() {
        "trade"
    } else if result.get("price").is_some() && result.get("symbol").is_some() {
        "get_price"
    } else {
        "unknown"
    }
}

/// A string, or a number written as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A decimal string or a JSON number.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::String(text) => text.trim().parse().ok(),
        Value::Number(number) => number.as_f64(),
        _ => None,
    }
    .filter(|number: &f64| number.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_header_is_read_and_other_lines_ignored() {
        let session = Session::parse(
            "Trade well.\nSession date: 2025-01-03\nReference price: open\nUniverse: AAA, BBB,CCC\nNote: x",
        );
        assert_eq!(session.date.as_deref(), Some("2025-01-03"));
        assert_eq!(session.universe, vec!["AAA", "BBB", "CCC"]);
    }

    #[test]
    fn results_are_matched_to_their_calls() {
        let call = |id: &str, name: &str, arguments: &str| ToolCallRequest {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        };
        let assistant = |calls| Message {
            role: Role::Assistant,
            content: None,
            tool_calls: calls,
            tool_call_id: None,
        };
        let messages = vec![
            Message::system("rules"),
            Message::user("Session date: 2025-01-03\nUniverse: AAA, BBB"),
            assistant(vec![
                call("p", "get_portfolio", "{}"),
                call("a", "get_price", r#"{"symbol":"AAA"}"#),
                call("b", "get_price", r#"{"symbol":"BBB"}"#),
            ]),
            Message::tool(
                "p",
                r#"{"cash":"100.50","positions":[{"symbol":"BBB","quantity":"3"}]}"#,
            ),
            Message::tool(
                "a",
                r#"{"symbol":"AAA","price":"10.00","previous_close":"9.50"}"#,
            ),
            Message::tool("b", r#"{"error":"no data for BBB on 2025-01-03"}"#),
            assistant(vec![
                call("s", "sell", r#"{"symbol":"BBB","quantity":3}"#),
                call("x", "buy", r#"{"symbol":"AAA","quantity":9}"#),
            ]),
            Message::tool("s", r#"{"status":"filled","side":"sell","quantity":"3"}"#),
            Message::tool("x", r#"{"error":"insufficient cash"}"#),
        ];
        let conversation = Conversation::read(&messages);
        assert_eq!(conversation.step, 2);
        let observation = conversation.observation;
        assert_eq!(observation.turns, 2);
        assert_eq!(
            observation.portfolio,
            Some(Portfolio {
                cash: 100.5,
                positions: vec![("BBB".into(), 3.0)]
            })
        );
        assert_eq!(observation.quotes.len(), 1);
        assert_eq!(
            observation.quotes["AAA"].previous_close,
            Some((9.5, "9.50".into()))
        );
        assert_eq!(
            observation.trades,
            vec![
                IssuedTrade {
                    side: Side::Sell,
                    symbol: "BBB".into(),
                    requested: "3".into(),
                    outcome: Some(TradeOutcome::Filled {
                        quantity: "3".into()
                    })
                },
                IssuedTrade {
                    side: Side::Buy,
                    symbol: "AAA".into(),
                    requested: "9".into(),
                    outcome: Some(TradeOutcome::Rejected("insufficient cash".into()))
                },
            ]
        );
    }
}
