//! Providers for scripted servers on a random loopback port, and the tools an agent offers.

use std::time::Duration;

use serde_json::{Value, json};
use tradeloom_llm::{ProviderConfig, ToolSpec};

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
