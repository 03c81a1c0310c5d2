//! llm: the [`LlmProvider`] trait with an OpenAI-compatible chat-completions client (tool
//! calling, retries with backoff and jitter, `Retry-After`, token usage and latency), and the
//! `mock-llm` server whose deterministic policies answer with tool calls. It knows nothing of
//! trading state, the store or the engine: the agents crate builds on it.

mod backoff;
pub mod call_metrics;
pub mod mock;
mod openai;
mod provider;
mod types;
mod wire;

pub use mock::{mock_router, serve_mock};
pub use openai::{OpenAiProvider, ProviderConfig, install_crypto_provider};
pub use provider::{LlmError, LlmProvider};
pub use types::{ChatRequest, ChatResponse, Message, Role, ToolCallRequest, ToolSpec, Usage};
