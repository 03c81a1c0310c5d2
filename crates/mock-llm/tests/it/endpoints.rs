//! The mock server's HTTP surface, with a plain HTTP client.

use serde_json::{Value, json};

use crate::support::start_mock;

fn client() -> reqwest::Client {
    tradeloom_llm::install_crypto_provider();
    reqwest::Client::new()
}

async fn post(base: &str, body: &str) -> (u16, String) {
    let response = client()
        .post(format!("{base}/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn health_and_models() {
    let base = start_mock().await;
    let root = base.trim_end_matches("/v1");
    let health = client().get(format!("{root}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let models: Value = client()
        .get(format!("{base}/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    for name in [
        "momentum",
        "mean_reversion",
        "buy_and_hold",
        "random-<seed>",
        "fault-http-500",
        "fault-slow-<ms>",
        "flaky-<n>-<policy>",
    ] {
        assert!(ids.contains(&name), "{name} missing from {ids:?}");
    }
}

#[tokio::test]
async fn same_request_same_bytes() {
    let base = start_mock().await;
    let body = json!({
        "model": "momentum",
        "messages": [
            {"role": "system", "content": "rules"},
            {"role": "user", "content": "Session date: 2025-01-03\nReference price: open\nUniverse: AAA, BBB"}
        ]
    })
    .to_string();
    let (status, first) = post(&base, &body).await;
    assert_eq!(status, 200);
    let (_, second) = post(&base, &body).await;
    assert_eq!(first, second);
    // A fresh server answers the same bytes too.
    let (_, third) = post(&start_mock().await, &body).await;
    assert_eq!(first, third);

    let value: Value = serde_json::from_str(&first).unwrap();
    assert!(value["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(value["object"], "chat.completion");
    assert_eq!(value["created"], 0);
    assert_eq!(value["model"], "momentum");
    assert_eq!(value["choices"][0]["message"]["role"], "assistant");
    assert_eq!(value["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        value["choices"][0]["message"]["tool_calls"][1],
        json!({"id": "call_0_1", "type": "function",
               "function": {"name": "get_price", "arguments": "{\"symbol\":\"AAA\"}"}})
    );
}

#[tokio::test]
async fn bad_requests_get_openai_style_errors() {
    let base = start_mock().await;
    for (body, status, needle) in [
        ("{not json", 400, "invalid chat-completions request body"),
        (r#"{"model":"momentum"}"#, 400, "missing field `messages`"),
        (r#"{"messages":[]}"#, 400, "missing `model`"),
        (
            r#"{"model":"momentum","stream":true,"messages":[]}"#,
            400,
            "`stream: true` is not supported",
        ),
        (
            r#"{"model":"momentum","messages":[{"role":"wizard","content":"x"}]}"#,
            400,
            "unknown variant `wizard`",
        ),
        (
            r#"{"model":"claude","messages":[]}"#,
            404,
            "unknown model `claude`; expected one of `momentum`, `mean_reversion`",
        ),
    ] {
        let (got, text) = post(&base, body).await;
        assert_eq!(got, status, "{body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn fault_http_statuses_and_bodies() {
    let base = start_mock().await;
    let body = |model: &str| json!({"model": model, "messages": []}).to_string();

    let response = client()
        .post(format!("{base}/chat/completions"))
        .body(body("fault-http-429"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");

    let (status, text) = post(&base, &body("fault-http-500")).await;
    assert_eq!(status, 500);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["type"], "server_error");

    let (status, text) = post(&base, &body("fault-malformed-body")).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn unknown_path_is_a_json_404() {
    let base = start_mock().await;
    let response = client()
        .get(format!("{base}/engines"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/chat/completions")
    );
}
