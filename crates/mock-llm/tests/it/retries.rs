//! Retries, timeouts and error classification of `OpenAiProvider` against the mock's fault
//! policies.

use std::time::{Duration, Instant};

use tradeloom_llm::{LlmError, LlmProvider, OpenAiProvider};

use crate::support::{config, opening, request, start_mock};

fn provider_with(base: &str, model: &str, max_retries: u32) -> OpenAiProvider {
    let mut config = config(base, model);
    config.max_retries = max_retries;
    OpenAiProvider::new(config, &crate::support::loopback()).unwrap()
}

async fn chat(provider: &OpenAiProvider) -> Result<tradeloom_llm::ChatResponse, LlmError> {
    provider
        .chat(&request(opening("2025-01-03", &["AAA", "BBB"])))
        .await
}

#[tokio::test]
async fn unknown_model_is_a_404_and_not_retried() {
    let base = start_mock().await;
    let error = chat(&provider_with(&base, "gpt-x", 3)).await.unwrap_err();
    let LlmError::Http { status, url, body } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 404);
    assert_eq!(url, &format!("{base}/chat/completions"));
    assert!(
        body.contains("unknown model `gpt-x`; expected one of"),
        "{body}"
    );
    assert!(body.contains("`momentum`"), "{body}");
}

#[tokio::test]
async fn server_errors_exhaust_the_retries() {
    let base = start_mock().await;
    let error = chat(&provider_with(&base, "fault-http-500", 2))
        .await
        .unwrap_err();
    let LlmError::RetriesExhausted { attempts, last } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*attempts, 3);
    assert!(
        matches!(last.as_ref(), LlmError::Http { status: 500, body, .. } if body.contains("server_error")),
        "{last:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("gave up after 3 attempts: HTTP 500")
    );
}

#[tokio::test]
async fn flaky_server_succeeds_on_the_third_attempt() {
    let base = start_mock().await;
    let provider = provider_with(&base, "flaky-2-momentum", 4);
    let started = Instant::now();
    let response = chat(&provider).await.unwrap();
    assert_eq!(response.attempts, 3);
    assert!(!response.message.tool_calls.is_empty());
    assert!(response.latency <= started.elapsed());
    // The next step of the conversation is a new key: it fails twice again.
    let mut messages = opening("2025-01-03", &["AAA", "BBB"]);
    messages.push(response.message.clone());
    let next = provider.chat(&request(messages)).await.unwrap();
    assert_eq!(next.attempts, 3);
    // Without enough retries the flakiness shows.
    let error = chat(&provider_with(&base, "flaky-2-buy_and_hold", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LlmError::RetriesExhausted { attempts: 2, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let base = start_mock().await;
    let mut config = config(&base, "fault-http-429");
    config.max_retries = 1;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_secs(20);
    let provider = OpenAiProvider::new(config, &crate::support::loopback()).unwrap();
    let started = Instant::now();
    let error = chat(&provider).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let LlmError::RetriesExhausted { attempts, last } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(
        matches!(last.as_ref(), LlmError::Http { status: 429, .. }),
        "{last:?}"
    );
}

#[tokio::test]
async fn retry_after_is_capped_at_backoff_max() {
    let base = start_mock().await;
    let mut config = config(&base, "fault-http-429");
    config.max_retries = 2;
    config.backoff_max = Duration::from_millis(50);
    let provider = OpenAiProvider::new(config, &crate::support::loopback()).unwrap();
    let started = Instant::now();
    let error = chat(&provider).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, LlmError::RetriesExhausted { attempts: 3, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn slow_answer_times_out() {
    let base = start_mock().await;
    let mut config = config(&base, "fault-slow-3000");
    config.timeout = Duration::from_millis(200);
    config.max_retries = 0;
    let provider = OpenAiProvider::new(config, &crate::support::loopback()).unwrap();
    let started = Instant::now();
    let error = chat(&provider).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let LlmError::Timeout { timeout_ms, .. } = error else {
        panic!("{error:?}");
    };
    assert_eq!(timeout_ms, 200);
}

#[tokio::test]
async fn slow_answer_within_the_timeout_succeeds() {
    let base = start_mock().await;
    let provider = provider_with(&base, "fault-slow-100", 0);
    let response = chat(&provider).await.unwrap();
    assert!(response.latency >= Duration::from_millis(100));
    assert_eq!(response.attempts, 1);
}

#[tokio::test]
async fn malformed_body_is_a_decode_error_and_not_retried() {
    let base = start_mock().await;
    let error = chat(&provider_with(&base, "fault-malformed-body", 3))
        .await
        .unwrap_err();
    let LlmError::Decode { message, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        message.contains("not a chat-completions JSON body"),
        "{message}"
    );
    assert!(message.contains("this body is not JSON"), "{message}");
}

#[tokio::test]
async fn refused_connection_is_a_transport_error_after_retries() {
    // Bind and drop a listener so the port is (almost certainly) closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let provider = provider_with(&format!("http://{address}/v1"), "momentum", 1);
    let error = chat(&provider).await.unwrap_err();
    let LlmError::RetriesExhausted { attempts, last } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*attempts, 2);
    let LlmError::Transport { url, message } = last.as_ref() else {
        panic!("{last:?}");
    };
    assert_eq!(url, &format!("http://{address}/v1/chat/completions"));
    assert!(!message.contains("for url"), "{message}");
}

#[tokio::test]
async fn policy_header_overrides_the_model() {
    let base = start_mock().await;
    let provider = provider_with(&base, "gpt-4o", 0);
    // Through the provider the model is unknown...
    assert!(matches!(
        chat(&provider).await,
        Err(LlmError::Http { status: 404, .. })
    ));
    // ...but the header picks a policy.
    let body = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Session date: 2025-01-03\nUniverse: AAA"}]
    });
    let response = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .header("X-Mock-Policy", "fault-unknown-tool")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        value["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "teleport_funds"
    );
    assert_eq!(value["model"], "fault-unknown-tool");
}
