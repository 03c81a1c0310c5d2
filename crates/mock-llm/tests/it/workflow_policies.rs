//! The mock's policies for workflow agents, driven over HTTP by `OpenAiProvider` the way the
//! orchestrator's agent node drives them: a system message, the prompt with an `Inputs:` line,
//! and the node's `calc` / `patch_workflow` tools.

use serde_json::{Value, json};
use tradeloom_llm::{ChatRequest, ChatResponse, LlmProvider, Message, OpenAiProvider, ToolSpec};

use crate::support::{calls, provider, start_mock};

fn tool(name: &str, properties: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: format!("the workflow's {name} tool"),
        parameters: json!({"type": "object", "properties": properties}),
    }
}

fn workflow_tools(names: &[&str]) -> Vec<ToolSpec> {
    names
        .iter()
        .map(|name| match *name {
            "calc" => tool("calc", json!({"expression": {"type": "string"}})),
            "patch_workflow" => tool(
                "patch_workflow",
                json!({"operations": {"type": "array", "items": {"type": "object"}}}),
            ),
            other => panic!("{other}"),
        })
        .collect()
}

fn opening(prompt: &str) -> Vec<Message> {
    vec![
        Message::system("You are one step of a workflow. When asked for JSON, answer with JSON."),
        Message::user(prompt),
    ]
}

async fn chat(provider: &OpenAiProvider, messages: &[Message], tools: &[&str]) -> ChatResponse {
    provider
        .chat(&ChatRequest {
            messages: messages.to_vec(),
            tools: workflow_tools(tools),
        })
        .await
        .unwrap()
}

/// The final answer's content, parsed.
fn answer(response: &ChatResponse) -> Value {
    assert!(response.message.tool_calls.is_empty(), "{response:?}");
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    serde_json::from_str(response.message.content.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn a_trading_team_hands_its_views_down_the_line() {
    let base = start_mock().await;
    let analyst = provider(&base, "analyst");

    let bull = answer(
        &chat(
            &analyst,
            &opening("Argue the bull case.\nInputs: {\"symbol\":\"AAPL\"}"),
            &[],
        )
        .await,
    );
    assert_eq!(bull["stance"], "bull");
    assert_eq!(bull["symbol"], "AAPL");
    let bear = answer(
        &chat(
            &analyst,
            &opening(&format!(
                "Argue the bear case, answering the bull.\nInputs: {}",
                json!({"symbol": "AAPL", "bull": bull})
            )),
            &[],
        )
        .await,
    );
    assert_eq!(bear["stance"], "bear");
    assert!(
        bear["summary"]
            .as_str()
            .unwrap()
            .ends_with("Answers 1 bullish view."),
        "{bear}"
    );

    // Two bull views and one bear: buy 10.
    let views = json!({"symbol": "AAPL", "a": bull, "b": {"stance": "bull"}, "c": bear});
    let trade = answer(
        &chat(
            &provider(&base, "trader"),
            &opening(&format!("Decide one order.\nInputs: {views}")),
            &[],
        )
        .await,
    );
    assert_eq!(
        trade,
        json!({"action": "buy", "symbol": "AAPL", "quantity": 10, "bull": 2, "bear": 1,
               "rationale": "2 bull vs 1 bear views (0 neutral): buy 10 AAPL."})
    );

    let risk = provider(&base, "risk_manager");
    let verdict = answer(
        &chat(
            &risk,
            &opening(&format!(
                "Check the trade.\nInputs: {}",
                json!({"trade": trade, "limit": 10})
            )),
            &[],
        )
        .await,
    );
    assert_eq!(
        verdict,
        json!({"approved": true, "max_quantity": 10, "reason": "buy 10 AAPL is within the limit of 10"})
    );
    let verdict = answer(
        &chat(
            &risk,
            &opening(&format!(
                "Check the trade.\nlimit: 9\nInputs: {}",
                json!({"trade": trade})
            )),
            &[],
        )
        .await,
    );
    assert_eq!(verdict["approved"], false);
    assert_eq!(verdict["max_quantity"], 9);
}

#[tokio::test]
async fn patcher_and_calculator_use_their_tools_once() {
    let base = start_mock().await;

    let patcher = provider(&base, "patcher");
    let mut messages = opening(
        "Add a review step.\n```json\n[{\"op\": \"add\", \"path\": \"/nodes/-\", \"value\": {\"id\": \"extra\", \"type\": \"transform\", \"needs\": [\"a\"]}}]\n```",
    );
    let first = chat(&patcher, &messages, &["calc", "patch_workflow"]).await;
    assert_eq!(
        calls(&first),
        vec![(
            "patch_workflow".to_owned(),
            json!({"operations": [{"op": "add", "path": "/nodes/-",
                   "value": {"id": "extra", "type": "transform", "needs": ["a"]}}]})
        )]
    );
    assert_eq!(first.message.tool_calls[0].id, "call_0_0");
    messages.push(first.message.clone());
    messages.push(Message::tool("call_0_0", r#"{"ir_version": 3}"#));
    let done = chat(&patcher, &messages, &["calc", "patch_workflow"]).await;
    assert_eq!(
        answer(&done),
        json!({"patched": true, "result": {"ir_version": 3}})
    );
    // Without the tool there is nothing to call.
    let refused = chat(&patcher, &messages[..2], &["calc"]).await;
    assert_eq!(
        answer(&refused),
        json!({"patched": false, "reason": "no patch_workflow tool"})
    );

    let calculator = provider(&base, "calculator");
    let mut messages = opening("Size the order.\ncalc: 10000 * 0.9 / 101.2");
    let first = chat(&calculator, &messages, &["calc"]).await;
    assert_eq!(
        calls(&first),
        vec![(
            "calc".to_owned(),
            json!({"expression": "10000 * 0.9 / 101.2"})
        )]
    );
    messages.push(first.message.clone());
    messages.push(Message::tool("call_0_0", r#"{"value": "88.932806"}"#));
    let done = chat(&calculator, &messages, &["calc"]).await;
    assert_eq!(answer(&done), json!({"value": "88.932806"}));
    assert_eq!(done.message.tool_calls.len(), 0);
}

#[tokio::test]
async fn workflow_policies_answer_the_same_bytes_and_are_listed() {
    tradeloom_llm::install_crypto_provider();
    let base = start_mock().await;
    let client = reqwest::Client::new();
    for model in ["analyst", "trader", "risk_manager", "patcher", "calculator"] {
        let body = json!({
            "model": model,
            "messages": [
                {"role": "system", "content": "workflow"},
                {"role": "user", "content": "Assess it.\ncalc: 1 + 2\nInputs: {\"symbol\":\"MSFT\",\"quantity\":5}"}
            ],
            "tools": [{"type": "function", "function": {"name": "calc", "parameters": {}}}]
        })
        .to_string();
        let mut texts = Vec::new();
        for _ in 0..2 {
            let response = client
                .post(format!("{base}/chat/completions"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{model}");
            texts.push(response.text().await.unwrap());
        }
        assert_eq!(texts[0], texts[1], "{model}");
        let value: Value = serde_json::from_str(&texts[0]).unwrap();
        assert_eq!(value["model"], model);
    }

    let models: Value = client
        .get(format!("{base}/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    for name in ["analyst", "trader", "risk_manager", "patcher", "calculator"] {
        assert!(ids.contains(&name), "{name} missing from {ids:?}");
    }
}
