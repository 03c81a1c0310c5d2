//! The [`LlmProvider`] trait and its error.

use async_trait::async_trait;

use crate::types::{ChatRequest, ChatResponse};

/// A chat model that can call tools.
#[async_trait]
pub trait LlmProvider: Send + Sync + std::fmt::Debug {
    /// The model name sent with each request.
    fn model(&self) -> &str;

    /// One chat-completions round trip (with the provider's retries).
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// Why a chat call failed, after any retries.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The server answered with an error status (4xx other than 429 are not retried).
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        status: u16,
        url: String,
        body: String,
    },
    /// No answer within the configured timeout.
    #[error("timed out after {timeout_ms} ms waiting for {url}")]
    Timeout { url: String, timeout_ms: u64 },
    /// Could not connect or the connection broke.
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    /// The SSRF guard refused the endpoint (or a redirect from it); nothing was sent there.
    #[error("refused by the SSRF guard: {url}: {message}")]
    Refused { url: String, message: String },
    /// The body was not a chat-completions response.
    #[error("unexpected response from {url}: {message}")]
    Decode { url: String, message: String },
    /// A retryable failure persisted through every attempt; `last` is the final one.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: Box<LlmError> },
    /// The provider settings are unusable (bad URL, missing API key variable, ...).
    #[error("invalid provider configuration: {0}")]
    Config(String),
}
