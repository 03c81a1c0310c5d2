//! Jobs and model-day outcomes shared by the tests.

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;
use tradeloom_core::{Currency, Decimal, Money};
use tradeloom_store::{
    Holding, Job, ModelDayKey, ModelDayOutcome, NewJob, ReasoningMessage, Store, ToolCall, Trade,
    TradeAction,
};

pub fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, day).expect("valid test date")
}

pub fn usd(text: &str) -> Money {
    Money::parse(text, Currency::USD).expect("valid test amount")
}

pub fn dec(text: &str) -> Decimal {
    Decimal::parse(text).expect("valid test decimal")
}

pub fn new_job(tag: &str, models: &[&str], days: &[u32]) -> NewJob {
    NewJob {
        config: json!({"tag": tag, "initial_cash": "10000", "agent": {"max_steps": 30}}),
        currency: Currency::USD,
        models: models.iter().map(|m| m.to_string()).collect(),
        dates: days.iter().map(|&d| date(d)).collect(),
    }
}

pub async fn create(store: &dyn Store, tag: &str, models: &[&str], days: &[u32]) -> Job {
    store
        .create_job(new_job(tag, models, days))
        .await
        .expect("create job")
}

/// An outcome ending with `value` in the portfolio: one buy, one hold, two holdings, a short
/// session with two tool calls (one failed).
pub fn outcome(value: &str, messages: usize) -> ModelDayOutcome {
    let at = Utc
        .with_ymd_and_hms(2025, 1, 2, 14, 30, 0)
        .single()
        .expect("valid test time");
    ModelDayOutcome {
        steps: 3,
        cash: usd("2500.5"),
        portfolio_value: usd(value),
        trades: vec![
            Trade {
                step: 1,
                action: TradeAction::Buy,
                symbol: Some("AAPL".into()),
                quantity: dec("10"),
                price: dec("180.40"),
                fee: usd("0.1"),
                cash_after: usd("7995.9"),
            },
            Trade {
                step: 2,
                action: TradeAction::Hold,
                symbol: None,
                quantity: dec("0"),
                price: dec("0"),
                fee: usd("0"),
                cash_after: usd("7995.9"),
            },
        ],
        holdings: vec![
            Holding {
                symbol: "AAPL".into(),
                quantity: dec("10"),
                price: dec("181.25"),
                value: usd("1812.5"),
            },
            Holding {
                symbol: "MSFT".into(),
                quantity: dec("0.5"),
                price: dec("410.123456789"),
                value: usd("205.0617283945"),
            },
        ],
        reasoning: (0..messages)
            .map(|i| ReasoningMessage {
                step: i as u32,
                role: if i % 2 == 0 { "assistant" } else { "tool" }.into(),
                content: format!("message {i}"),
                tool_calls: (i % 2 == 0).then(|| json!([{"name": "get_price", "id": i}])),
                created_at: at,
            })
            .collect(),
        tool_calls: vec![
            ToolCall {
                step: 1,
                tool: "get_price".into(),
                args: json!({"symbol": "AAPL"}),
                result: Some(json!({"price": "180.40"})),
                latency_ms: 12,
                error: None,
                created_at: at,
            },
            ToolCall {
                step: 2,
                tool: "place_order".into(),
                args: json!({"symbol": "TSLA", "qty": -1}),
                result: None,
                latency_ms: 3,
                error: Some("quantity must be positive".into()),
                created_at: at,
            },
        ],
        memory: None,
    }
}

/// Claims and completes a model-day.
pub async fn finish(store: &dyn Store, key: &ModelDayKey, value: &str) {
    store
        .claim_model_day(key, std::time::Duration::from_secs(600))
        .await
        .expect("claim")
        .expect("claimable");
    store
        .complete_model_day(key, &outcome(value, 4))
        .await
        .expect("complete");
}
