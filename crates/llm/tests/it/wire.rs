//! What `OpenAiProvider` sends, and how it reads quirky OpenAI-compatible servers, against a
//! scripted server that records each request.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tradeloom_llm::{
    ChatRequest, LlmError, LlmProvider, Message, OpenAiProvider, Role, ToolCallRequest, Usage,
};

use crate::support::{config, tools};

#[derive(Clone, Default)]
struct Recorder {
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    reply: Arc<(u16, String)>,
}

/// A server at `/v1/chat/completions` answering `status` and `body`; returns its API root.
async fn scripted(status: u16, body: Value) -> (String, Recorder) {
    let recorder = Recorder {
        requests: Arc::default(),
        reply: Arc::new((status, body.to_string())),
    };
    async fn handle(
        State(recorder): State<Recorder>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let body = serde_json::from_slice(&body).unwrap();
        recorder.requests.lock().unwrap().push((headers, body));
        let (status, text) = recorder.reply.as_ref();
        (StatusCode::from_u16(*status).unwrap(), text.clone())
    }
    let app = Router::new()
        .route("/v1/chat/completions", post(handle))
        .with_state(recorder.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/v1"), recorder)
}

fn conversation() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::system("rules"),
            Message::user("go"),
            Message {
                role: Role::Assistant,
                content: None,
                tool_calls: vec![ToolCallRequest {
                    id: "call_0_0".into(),
                    name: "get_portfolio".into(),
                    arguments: "{}".into(),
                }],
                tool_call_id: None,
            },
            Message::tool("call_0_0", r#"{"cash":"1.00"}"#),
        ],
        tools: tools(),
    }
}

#[tokio::test]
async fn request_body_and_headers() {
    let (base, recorder) = scripted(
        200,
        json!({"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    )
    .await;
    let mut config = config(&format!("{base}/"), "my-model");
    config.api_key = Some("sk-test-123".into());
    config.temperature = Some(0.2);
    config.max_tokens = Some(256);
    let provider = OpenAiProvider::new(config, &crate::support::loopback()).unwrap();
    let response = provider.chat(&conversation()).await.unwrap();
    assert_eq!(response.message, Message::assistant("ok"));
    assert_eq!(response.usage, Usage::default());

    let requests = recorder.requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert_eq!(headers["authorization"], "Bearer sk-test-123");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["model"], "my-model");
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["tools"].as_array().unwrap().len(), 6);
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "function": {
            "name": "get_price",
            "description": "Price of a symbol on the session date.",
            "parameters": tools()[0].parameters}})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_0_0", "type": "function",
             "function": {"name": "get_portfolio", "arguments": "{}"}}]})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "content": "{\"cash\":\"1.00\"}", "tool_call_id": "call_0_0"})
    );
}

#[tokio::test]
async fn ollama_style_response_is_accepted() {
    let (base, _) = scripted(
        200,
        json!({
            "model": "llama3",
            "choices": [{"index": 0, "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [
                    {"function": {"name": "buy", "arguments": {"symbol": "AAA", "quantity": 2}}},
                    {"type": "function", "function": {"name": "get_portfolio", "arguments": "{}"}}
                ]
            }, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 100}}
        }),
    )
    .await;
    let provider =
        OpenAiProvider::new(config(&base, "llama3"), &crate::support::loopback()).unwrap();
    let response = provider.chat(&conversation()).await.unwrap();
    let calls = &response.message.tool_calls;
    assert_eq!(calls[0].id, "call_0");
    assert_eq!(calls[0].name, "buy");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].arguments).unwrap(),
        json!({"symbol": "AAA", "quantity": 2})
    );
    assert_eq!(calls[1].id, "call_1");
    assert_eq!(calls[1].arguments, "{}");
    assert_eq!(
        response.usage,
        Usage {
            prompt_tokens: 120,
            completion_tokens: 30,
            total_tokens: 150,
            cached_tokens: 100
        }
    );
}

#[tokio::test]
async fn no_choices_is_a_decode_error() {
    let (base, recorder) = scripted(
        200,
        json!({"error": {"message": "model overloaded"}, "choices": []}),
    )
    .await;
    let mut config = config(&base, "m");
    config.max_retries = 3;
    let provider = OpenAiProvider::new(config, &crate::support::loopback()).unwrap();
    let error = provider.chat(&conversation()).await.unwrap_err();
    let LlmError::Decode { message, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("no choices"), "{message}");
    assert!(message.contains("model overloaded"), "{message}");
    assert_eq!(
        recorder.requests.lock().unwrap().len(),
        1,
        "decode errors are not retried"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried_and_long_bodies_are_cut() {
    let long = "x".repeat(5_000);
    let (base, recorder) = scripted(400, json!({"error": {"message": long}})).await;
    let mut config = config(&base, "m");
    config.max_retries = 3;
    config.api_key = Some("sk-secret-key".into());
    let provider = OpenAiProvider::new(config, &crate::support::loopback()).unwrap();
    let error = provider.chat(&conversation()).await.unwrap_err();
    let LlmError::Http { status, body, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 400);
    assert!(body.chars().count() < 600, "{} chars", body.chars().count());
    assert!(!error.to_string().contains("sk-secret-key"));
    assert_eq!(recorder.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let (base, recorder) = scripted(503, json!({"error": {"message": "busy"}})).await;
    let mut config = config(&base, "m");
    config.max_retries = 2;
    let provider = OpenAiProvider::new(config, &crate::support::loopback()).unwrap();
    let error = provider.chat(&conversation()).await.unwrap_err();
    assert!(
        matches!(&error, LlmError::RetriesExhausted { attempts: 3, last } if matches!(last.as_ref(), LlmError::Http { status: 503, .. })),
        "{error:?}"
    );
    assert_eq!(recorder.requests.lock().unwrap().len(), 3);
}

#[test]
fn bad_base_urls_are_config_errors() {
    for base in ["ftp://host/v1", "localhost:8089/v1", ""] {
        let error =
            OpenAiProvider::new(config(base, "m"), &crate::support::loopback()).unwrap_err();
        assert!(matches!(error, LlmError::Config(_)), "{base}: {error:?}");
    }
}

/// Every request goes through the SSRF guard's client: an endpoint its policy does not allow
/// (loopback, the metadata address, a blocked path) gets nothing, and the error says why.
#[tokio::test]
async fn the_guard_refuses_endpoints_its_policy_does_not_allow() {
    let (base, recorder) = scripted(
        200,
        json!({"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    )
    .await;
    let strict = tradeloom_net::GuardedClient::strict();
    for (base, expected) in [
        (base.as_str(), "127.0.0.1 is blocked (loopback"),
        ("http://169.254.169.254/v1", "169.254.169.254 is blocked"),
        ("http://metadata.google.internal/v1", "cloud metadata host"),
    ] {
        let mut config = config(base, "m");
        config.api_key = Some("sk-never-sent".into());
        config.max_retries = 3;
        let provider = OpenAiProvider::new(config, &strict).unwrap();
        let error = provider.chat(&conversation()).await.unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, LlmError::Refused { .. }),
            "{base}: {error:?}"
        );
        assert!(
            text.contains("refused by the SSRF guard") && text.contains(expected),
            "{base}: {text}"
        );
        assert!(!text.contains("sk-never-sent"), "{text}");
    }
    // A path under the guard's deny list is refused even on an allowed host.
    let provider = OpenAiProvider::new(
        config(&base.replace("/v1", "/latest/meta-data"), "m"),
        &crate::support::loopback(),
    )
    .unwrap();
    let text = provider
        .chat(&conversation())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("path") && text.contains("blocked"), "{text}");
    assert!(recorder.requests.lock().unwrap().is_empty());
    // Allowed, the same endpoint answers.
    let provider = OpenAiProvider::new(config(&base, "m"), &crate::support::loopback()).unwrap();
    provider.chat(&conversation()).await.unwrap();
    assert_eq!(recorder.requests.lock().unwrap().len(), 1);
}
