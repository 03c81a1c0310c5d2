//! llm: the [`LlmProvider`] trait with an OpenAI-compatible chat-completions client (tool
//! calling, retries with backoff and jitter, `Retry-After`, token usage and latency), and the
//! chat-completions wire format ([`wire`]). It knows nothing of trading, the store or the
//! engine and runs no server: the agents crate builds on it, and the `mock-llm` server lives in
//! `tradeloom-mock-llm`.

mod backoff;
pub mod call_metrics;
mod content_calls;
mod openai;
mod provider;
mod types;
pub mod wire;

pub use content_calls::content_tool_calls;
pub use openai::{OpenAiProvider, ProviderConfig, install_crypto_provider};
pub use provider::{LlmError, LlmProvider};
pub use types::{
    ChatRequest, ChatResponse, Message, Role, ToolCallRequest, ToolChoice, ToolSpec, Usage,
};
