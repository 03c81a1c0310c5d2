//! The mock's trading and fault policies, driven over HTTP by `OpenAiProvider`.

use serde_json::{Value, json};
use tradeloom_llm::{LlmProvider, Message, Role, ToolCallRequest};

use crate::support::{
    Broker, calls, opening, play_day, provider, request, start_mock, three_symbols,
};

fn observe_calls(with_news: bool) -> Vec<(String, Value)> {
    let mut expected = vec![
        ("get_portfolio".to_owned(), json!({})),
        ("get_price".to_owned(), json!({"symbol": "AAA"})),
        ("get_price".to_owned(), json!({"symbol": "BBB"})),
        ("get_price".to_owned(), json!({"symbol": "CCC"})),
    ];
    if with_news {
        expected.push((
            "search_news".to_owned(),
            json!({"query": "AAA", "limit": 3}),
        ));
    }
    expected
}

#[tokio::test]
async fn first_turn_asks_for_portfolio_prices_and_news() {
    let base = start_mock().await;
    for (model, with_news) in [
        ("momentum", true),
        ("mean_reversion", true),
        ("buy_and_hold", false),
        ("random-7", false),
        ("fault-slow-10", true),
    ] {
        let response = provider(&base, model)
            .chat(&request(opening("2025-01-03", &["AAA", "BBB", "CCC"])))
            .await
            .unwrap();
        assert_eq!(calls(&response), observe_calls(with_news), "{model}");
        let ids: Vec<&str> = response
            .message
            .tool_calls
            .iter()
            .map(|call| call.id.as_str())
            .collect();
        assert_eq!(ids[..3], ["call_0_0", "call_0_1", "call_0_2"], "{model}");
        assert_eq!(response.message.content, None, "{model}");
        assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(response.attempts, 1);
    }
}

#[tokio::test]
async fn momentum_day_by_hand() {
    let base = start_mock().await;
    let provider = provider(&base, "momentum");
    let mut messages = opening("2025-01-03", &["AAA", "BBB", "CCC"]);

    let first = provider.chat(&request(messages.clone())).await.unwrap();
    messages.push(first.message.clone());
    let results = [
        r#"{"date":"2025-01-03","cash":"10000.00","positions":[{"symbol":"BBB","quantity":"5","price":"50.00","value":"250.00"}],"portfolio_value":"10250.00"}"#,
        r#"{"symbol":"AAA","date":"2025-01-03","reference":"open","price":"101.20","open":"101.20","previous_close":"100.10"}"#,
        r#"{"symbol":"BBB","date":"2025-01-03","reference":"open","price":"50.00","open":"50.00","previous_close":"52.00"}"#,
        r#"{"symbol":"CCC","date":"2025-01-03","reference":"open","price":"20.00","open":"20.00"}"#,
        r#"{"results":[{"timestamp":"2025-01-02T21:00:00Z","symbols":["AAA"],"headline":"AAA beats"}]}"#,
    ];
    for (call, result) in first.message.tool_calls.iter().zip(results) {
        messages.push(Message::tool(&call.id, result));
    }

    // Sell the falling holding, buy the riser: floor(10000 × 0.9 / 101.20) = 88.
    let second = provider.chat(&request(messages.clone())).await.unwrap();
    assert_eq!(
        calls(&second),
        vec![
            ("sell".to_owned(), json!({"symbol": "BBB", "quantity": 5})),
            ("buy".to_owned(), json!({"symbol": "AAA", "quantity": 88})),
        ]
    );
    assert_eq!(second.message.tool_calls[0].id, "call_1_0");
    assert_eq!(second.message.tool_calls[1].id, "call_1_1");
    messages.push(second.message.clone());
    messages.push(Message::tool(
        "call_1_0",
        r#"{"status":"filled","symbol":"BBB","side":"sell","quantity":"5","price":"50.00","fee":"0.25","cash_after":"10249.75"}"#,
    ));
    messages.push(Message::tool(
        "call_1_1",
        r#"{"status":"filled","symbol":"AAA","side":"buy","quantity":"88","price":"101.20","fee":"8.91","cash_after":"1335.24"}"#,
    ));

    let third = provider.chat(&request(messages)).await.unwrap();
    assert!(third.message.tool_calls.is_empty());
    assert_eq!(
        third.message.content.as_deref(),
        Some("Sold 5 BBB; bought 88 AAA.")
    );
    assert_eq!(third.finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn trading_policies_play_whole_days() {
    let base = start_mock().await;

    let mut broker = three_symbols("2025-01-03", 10_000.0, &[("AAA", 10)]);
    let (_, responses) = play_day(&provider(&base, "mean_reversion"), &mut broker, 5).await;
    // Sell the rising holding, buy the faller: floor(10000 × 0.9 / 50) = 180.
    assert_eq!(
        calls(&responses[1]),
        vec![
            ("sell".to_owned(), json!({"symbol": "AAA", "quantity": 10})),
            ("buy".to_owned(), json!({"symbol": "BBB", "quantity": 180})),
        ]
    );
    assert_eq!(responses.len(), 3);
    assert_eq!(
        responses[2].message.content.as_deref(),
        Some("Sold 10 AAA; bought 180 BBB.")
    );
    assert_eq!(broker.positions.get("BBB"), Some(&180));

    let mut broker = three_symbols("2025-01-03", 3_000.0, &[]);
    let (_, responses) = play_day(&provider(&base, "buy_and_hold"), &mut broker, 5).await;
    // 3000 × 0.95 / 3 = 950 per symbol.
    assert_eq!(
        calls(&responses[1]),
        vec![
            ("buy".to_owned(), json!({"symbol": "AAA", "quantity": 9})),
            ("buy".to_owned(), json!({"symbol": "BBB", "quantity": 19})),
            ("buy".to_owned(), json!({"symbol": "CCC", "quantity": 47})),
        ]
    );
    // Next day it holds.
    broker.date = "2025-01-06";
    let (_, responses) = play_day(&provider(&base, "buy_and_hold"), &mut broker, 5).await;
    assert_eq!(responses.len(), 2);
    assert_eq!(
        responses[1].message.content.as_deref(),
        Some("No trades on 2025-01-06: holding the existing positions.")
    );
}

#[tokio::test]
async fn momentum_with_nothing_to_do_answers_at_once() {
    let base = start_mock().await;
    // Holding the riser already, the faller not held, CCC has no signal.
    let mut broker = three_symbols("2025-01-03", 1_000.0, &[("AAA", 1)]);
    let (_, responses) = play_day(&provider(&base, "momentum"), &mut broker, 5).await;
    assert_eq!(responses.len(), 2);
    assert!(
        responses[1]
            .message
            .content
            .as_deref()
            .unwrap()
            .starts_with("No trades on 2025-01-03"),
        "{:?}",
        responses[1].message.content
    );
}

#[tokio::test]
async fn random_policy_is_repeatable_valid_and_sometimes_calculates() {
    let base = start_mock().await;
    let dates = [
        "2025-01-02",
        "2025-01-03",
        "2025-01-06",
        "2025-01-07",
        "2025-01-08",
        "2025-01-09",
        "2025-01-10",
        "2025-01-13",
    ];
    let mut calc_days = 0;
    let mut trade_days = 0;
    for date in dates {
        let start = three_symbols(date, 2_000.0, &[("BBB", 3)]);
        let mut broker = start.clone();
        let (messages, responses) = play_day(&provider(&base, "random-42"), &mut broker, 6).await;
        let mut again = start.clone();
        let (messages_again, _) = play_day(&provider(&base, "random-42"), &mut again, 6).await;
        assert_eq!(
            messages, messages_again,
            "{date}: same day, same conversation"
        );

        let issued: Vec<&ToolCallRequest> = responses
            .iter()
            .flat_map(|response| &response.message.tool_calls)
            .collect();
        if let Some(calc) = issued.iter().find(|call| call.name == "calc") {
            calc_days += 1;
            let arguments: Value = serde_json::from_str(&calc.arguments).unwrap();
            assert_eq!(
                arguments["expression"], "(101.20 - 100.10) / 100.10 * 100",
                "{date}"
            );
        }
        if issued
            .iter()
            .any(|call| call.name == "buy" || call.name == "sell")
        {
            trade_days += 1;
        }
        // Every trade was within cash and holdings: the broker rejected none.
        let rejected = messages.iter().filter(|m| {
            m.role == Role::Tool && m.content.as_deref().is_some_and(|c| c.contains("error"))
        });
        assert_eq!(rejected.count(), 0, "{date}: {messages:#?}");
        let last = responses.last().unwrap();
        assert_eq!(last.finish_reason.as_deref(), Some("stop"));
    }
    assert!(calc_days >= 1, "no day with a calc call");
    assert!(trade_days >= 3, "only {trade_days} days with trades");
}

#[tokio::test]
async fn random_seeds_differ() {
    let base = start_mock().await;
    let mut plans = std::collections::HashSet::new();
    for seed in 1..=6 {
        let mut broker = three_symbols("2025-01-03", 2_000.0, &[("BBB", 3)]);
        let (messages, _) =
            play_day(&provider(&base, &format!("random-{seed}")), &mut broker, 6).await;
        let calls: Vec<(String, String)> = messages
            .iter()
            .flat_map(|m| &m.tool_calls)
            .map(|call| (call.name.clone(), call.arguments.clone()))
            .collect();
        plans.insert(calls);
    }
    assert!(plans.len() >= 3, "{plans:#?}");
}

#[tokio::test]
async fn fault_policies_call_bad_tools_every_turn() {
    let base = start_mock().await;
    for (model, name, arguments) in [
        (
            "fault-malformed-json",
            "buy",
            r#"{"symbol": "AAA", "quantity": "#,
        ),
        (
            "fault-bad-args",
            "buy",
            r#"{"quantity":"lots","symbol":"AAA"}"#,
        ),
        ("fault-unknown-tool", "teleport_funds", "{}"),
    ] {
        let provider = provider(&base, model);
        let mut messages = opening("2025-01-03", &["AAA", "BBB"]);
        for step in 0..3 {
            let response = provider.chat(&request(messages.clone())).await.unwrap();
            let [call] = response.message.tool_calls.as_slice() else {
                panic!("{model}: {response:?}");
            };
            assert_eq!(call.name, name, "{model}");
            assert_eq!(call.id, format!("call_{step}_0"));
            if model == "fault-bad-args" {
                let parsed: Value = serde_json::from_str(&call.arguments).unwrap();
                assert_eq!(parsed, json!({"symbol": "AAA", "quantity": "lots"}));
            } else {
                assert_eq!(call.arguments, arguments, "{model}");
            }
            if model == "fault-malformed-json" {
                assert!(serde_json::from_str::<Value>(&call.arguments).is_err());
            }
            messages.push(response.message.clone());
            messages.push(Message::tool(&call.id, r#"{"error":"bad call"}"#));
        }
    }
}

#[tokio::test]
async fn same_request_same_response() {
    let base = start_mock().await;
    let mut broker: Broker = three_symbols("2025-01-03", 10_000.0, &[("BBB", 5)]);
    let (messages, _) = play_day(&provider(&base, "momentum"), &mut broker, 5).await;
    // Replay the conversation up to the trades: both answers must be identical.
    let upto_trades = messages[..messages.len() - 4].to_vec();
    let provider = provider(&base, "momentum");
    let one = provider.chat(&request(upto_trades.clone())).await.unwrap();
    let two = provider.chat(&request(upto_trades)).await.unwrap();
    assert_eq!(one.message, two.message);
    assert_eq!(one.usage, two.usage);
    assert_eq!(one.finish_reason, two.finish_reason);
    assert!(!one.message.tool_calls.is_empty());
}

#[tokio::test]
async fn usage_is_a_quarter_of_the_characters() {
    let base = start_mock().await;
    let messages = opening("2025-01-03", &["AAA", "BBB", "CCC"]);
    let prompt_chars: usize = messages
        .iter()
        .map(|m| m.content.as_deref().unwrap_or_default().chars().count())
        .sum();
    let response = provider(&base, "buy_and_hold")
        .chat(&request(messages))
        .await
        .unwrap();
    let completion_chars: usize = response
        .message
        .tool_calls
        .iter()
        .map(|call| call.arguments.chars().count())
        .sum();
    assert_eq!(
        response.usage.prompt_tokens,
        prompt_chars.div_ceil(4) as u64
    );
    assert_eq!(
        response.usage.completion_tokens,
        completion_chars.div_ceil(4) as u64
    );
    assert_eq!(
        response.usage.total_tokens,
        response.usage.prompt_tokens + response.usage.completion_tokens
    );
    assert!(response.usage.prompt_tokens > 20);
    assert_eq!(response.usage.cached_tokens, 0);
}

#[tokio::test]
async fn missing_universe_gets_a_final_answer() {
    let base = start_mock().await;
    let response = provider(&base, "momentum")
        .chat(&request(vec![Message::user("hello")]))
        .await
        .unwrap();
    assert!(response.message.tool_calls.is_empty());
    assert!(
        response
            .message
            .content
            .as_deref()
            .unwrap()
            .contains("Universe:")
    );
}
