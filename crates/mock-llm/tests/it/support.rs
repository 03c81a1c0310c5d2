//! A mock server on a random loopback port, providers for it, and a tiny broker that answers
//! the mock's tool calls the way the agents' tools do.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tradeloom_llm::{
    ChatRequest, ChatResponse, LlmProvider, Message, OpenAiProvider, ProviderConfig, Role, ToolSpec,
};
use tradeloom_mock_llm::serve_mock;

/// Starts `serve_mock` on 127.0.0.1:0 and returns its API root (`http://127.0.0.1:port/v1`).
pub async fn start_mock() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_mock(listener));
    format!("http://{address}/v1")
}

/// A config with a generous timeout and millisecond back-off, so retry tests stay fast.
pub fn config(base_url: &str, model: &str) -> ProviderConfig {
    let mut config = ProviderConfig::new(base_url, model);
    config.timeout = Duration::from_secs(10);
    config.max_retries = 0;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(5);
    config
}

/// The guarded client the tests' providers send through: loopback (where the mock and the
/// scripted servers listen) allowed, as `serve --http-allow 127.0.0.1` allows it.
pub fn loopback() -> tradeloom_net::GuardedClient {
    tradeloom_net::GuardedClient::new(tradeloom_net::SsrfPolicy {
        allow_hosts: vec!["127.0.0.1".into()],
        ..tradeloom_net::SsrfPolicy::default()
    })
    .unwrap()
}

pub fn provider(base_url: &str, model: &str) -> OpenAiProvider {
    OpenAiProvider::new(config(base_url, model), &crate::support::loopback()).unwrap()
}

/// The six tools the agent offers.
pub fn tools() -> Vec<ToolSpec> {
    let tool = |name: &str, description: &str, properties: Value, required: &[&str]| ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    };
    vec![
        tool(
            "get_price",
            "Price of a symbol on the session date.",
            json!({"symbol": {"type": "string"}, "date": {"type": "string"}}),
            &["symbol"],
        ),
        tool("get_portfolio", "Cash and positions.", json!({}), &[]),
        tool(
            "buy",
            "Buy whole units at the reference price.",
            json!({"symbol": {"type": "string"}, "quantity": {"type": "number"}}),
            &["symbol", "quantity"],
        ),
        tool(
            "sell",
            "Sell whole units at the reference price.",
            json!({"symbol": {"type": "string"}, "quantity": {"type": "number"}}),
            &["symbol", "quantity"],
        ),
        tool(
            "calc",
            "Evaluate an arithmetic expression.",
            json!({"expression": {"type": "string"}}),
            &["expression"],
        ),
        tool(
            "search_news",
            "Headlines up to the session date.",
            json!({"query": {"type": "string"}, "limit": {"type": "integer"}}),
            &["query", "limit"],
        ),
    ]
}

/// The system and user messages that open a session day.
pub fn opening(date: &str, universe: &[&str]) -> Vec<Message> {
    vec![
        Message::system("You are a disciplined trader. Use the tools; quantities are whole units."),
        Message::user(format!(
            "Trade for one session.\nSession date: {date}\nReference price: open\nUniverse: {}\nEnd with a short summary.",
            universe.join(", ")
        )),
    ]
}

pub fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        messages,
        tools: tools(),
    }
}

/// Tool calls of a response as (name, parsed arguments).
pub fn calls(response: &ChatResponse) -> Vec<(String, Value)> {
    response
        .message
        .tool_calls
        .iter()
        .map(|call| {
            let arguments: Value = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|error| panic!("{}: {error}", call.arguments));
            (call.name.clone(), arguments)
        })
        .collect()
}

/// One symbol's prices on the session date.
#[derive(Clone, Debug)]
pub struct Bar {
    pub open: &'static str,
    pub previous_close: Option<&'static str>,
}

/// A broker answering tool calls like the agent's tools: decimal strings, fills at the open,
/// a 0.1 % fee, errors as `{"error": ...}`.
#[derive(Clone, Debug)]
pub struct Broker {
    pub date: &'static str,
    pub cash: f64,
    pub positions: BTreeMap<String, u64>,
    pub bars: BTreeMap<String, Bar>,
}

impl Broker {
    pub fn execute(&mut self, name: &str, arguments: &str) -> String {
        let Ok(arguments) = serde_json::from_str::<Value>(arguments) else {
            return json!({"error": format!("arguments are not valid JSON: {arguments}")})
                .to_string();
        };
        let symbol = arguments["symbol"].as_str().unwrap_or_default().to_owned();
        match name {
            "get_portfolio" => {
                let positions: Vec<Value> = self
                    .positions
                    .iter()
                    .map(|(symbol, quantity)| {
                        let price = self.price(symbol);
                        json!({"symbol": symbol, "quantity": quantity.to_string(),
                               "price": format!("{price:.2}"),
                               "value": format!("{:.2}", price * *quantity as f64)})
                    })
                    .collect();
                let value: f64 = self.cash
                    + self
                        .positions
                        .iter()
                        .map(|(s, q)| self.price(s) * *q as f64)
                        .sum::<f64>();
                json!({"date": self.date, "cash": format!("{:.2}", self.cash),
                       "positions": positions, "portfolio_value": format!("{value:.2}")})
                .to_string()
            }
            "get_price" => match self.bars.get(&symbol) {
                Some(bar) => {
                    let mut quote = json!({"symbol": symbol, "date": self.date,
                        "reference": "open", "price": bar.open, "open": bar.open});
                    if let Some(close) = bar.previous_close {
                        quote["previous_close"] = json!(close);
                    }
                    quote.to_string()
                }
                None => json!({"error": format!("unknown symbol `{symbol}`")}).to_string(),
            },
            "buy" | "sell" => {
                let Some(quantity) = arguments["quantity"].as_u64().filter(|q| *q > 0) else {
                    return json!({"error": "quantity must be a positive whole number"})
                        .to_string();
                };
                if !self.bars.contains_key(&symbol) {
                    return json!({"error": format!("unknown symbol `{symbol}`")}).to_string();
                }
                let price = self.price(&symbol);
                let notional = price * quantity as f64;
                let fee = (notional * 0.001 * 100.0).round() / 100.0;
                if name == "buy" {
                    if notional + fee > self.cash {
                        return json!({"error": "insufficient cash"}).to_string();
                    }
                    self.cash -= notional + fee;
                    *self.positions.entry(symbol.clone()).or_default() += quantity;
                } else {
                    let held = self.positions.get(&symbol).copied().unwrap_or(0);
                    if quantity > held {
                        return json!({"error": format!("holding only {held} {symbol}")})
                            .to_string();
                    }
                    self.cash += notional - fee;
                    self.positions.insert(symbol.clone(), held - quantity);
                    self.positions.retain(|_, quantity| *quantity > 0);
                }
                json!({"status": "filled", "symbol": symbol, "side": name,
                       "quantity": quantity.to_string(), "price": format!("{price:.2}"),
                       "fee": format!("{fee:.2}"), "cash_after": format!("{:.2}", self.cash)})
                .to_string()
            }
            "calc" => json!({"result": "1.0989"}).to_string(),
            "search_news" => json!({"results": [{"timestamp": "2025-01-02T21:00:00Z",
                "symbols": [arguments["query"]], "headline": "Quiet day"}]})
            .to_string(),
            other => json!({"error": format!("unknown tool `{other}`")}).to_string(),
        }
    }

    fn price(&self, symbol: &str) -> f64 {
        self.bars
            .get(symbol)
            .and_then(|bar| bar.open.parse().ok())
            .unwrap_or(0.0)
    }
}

/// Plays a day to the final answer (at most `max_turns`), returning every response.
pub async fn play_day(
    provider: &OpenAiProvider,
    broker: &mut Broker,
    max_turns: usize,
) -> (Vec<Message>, Vec<ChatResponse>) {
    let universe: Vec<&str> = broker.bars.keys().map(String::as_str).collect();
    let mut messages = opening(broker.date, &universe);
    let mut responses = Vec::new();
    for _ in 0..max_turns {
        let response = provider.chat(&request(messages.clone())).await.unwrap();
        assert_eq!(response.message.role, Role::Assistant);
        messages.push(response.message.clone());
        let done = response.message.tool_calls.is_empty();
        for call in &response.message.tool_calls {
            let result = broker.execute(&call.name, &call.arguments);
            messages.push(Message::tool(&call.id, result));
        }
        responses.push(response);
        if done {
            return (messages, responses);
        }
    }
    panic!("no final answer within {max_turns} turns: {messages:#?}");
}

/// AAA rises, BBB falls, CCC trades for the first time (no previous close).
pub fn three_symbols(date: &'static str, cash: f64, positions: &[(&str, u64)]) -> Broker {
    Broker {
        date,
        cash,
        positions: positions
            .iter()
            .map(|(symbol, quantity)| ((*symbol).to_owned(), *quantity))
            .collect(),
        bars: BTreeMap::from([
            (
                "AAA".to_owned(),
                Bar {
                    open: "101.20",
                    previous_close: Some("100.10"),
                },
            ),
            (
                "BBB".to_owned(),
                Bar {
                    open: "50.00",
                    previous_close: Some("52.00"),
                },
            ),
            (
                "CCC".to_owned(),
                Bar {
                    open: "20.00",
                    previous_close: None,
                },
            ),
        ]),
    }
}
