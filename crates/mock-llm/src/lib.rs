//! mock-llm: the `mock-llm` server, an OpenAI-compatible chat-completions endpoint whose
//! "models" are deterministic trading policies and fault injectors, for testing agents without a
//! real model (`tradeloom mock-llm`, and the tests of agents, orchestrator, ops and the CLI). It
//! speaks the wire format of `tradeloom-llm`, which knows nothing of trading; the knowledge of
//! the trading tools lives here. Never used by a production run.
//!
//! - `POST /v1/chat/completions`: the policy is the request's `model`, or the `X-Mock-Policy`
//!   header when present;
//! - `GET /v1/models`: the policy names (`<...>` marks a parameter, e.g. `random-<seed>`);
//! - `GET /health`: `{"status":"ok"}`.
//!
//! Trading policies (`momentum`, `mean_reversion`, `buy_and_hold`, `random-<seed>`) are
//! stateless: the same request gets the same response bytes. So are the policies for workflow
//! `agent` nodes (`workflow.rs`): `analyst`, `trader` and `risk_manager` answer one JSON object
//! derived from the prompt, `patcher` calls `patch_workflow` with the prompt's ```` ```json ````
//! block and `calculator` calls `calc` with its `calc:` line. `no-tools` answers a summary at
//! once and never calls a tool (a model that ignores its tools). Fault policies:
//! `fault-malformed-json`, `fault-bad-args`, `fault-unknown-tool` (bad tool calls every turn),
//! `fault-http-500`, `fault-http-429` (with `Retry-After: 1`), `fault-malformed-body` (200, not
//! JSON), `fault-truncated` (a reply cut off by the token limit, `finish_reason: "length"`),
//! `fault-slow-<ms>` (then momentum) and `flaky-<n>-<policy>`, whose first `n` requests
//! per conversation step fail with 500 (the only state the server keeps);
//! `content-<bare|fenced|tagged>-<policy>` writes `policy`'s tool calls in the reply's text
//! (the whole reply, a ```` ```json ```` fence, or `<tool_call>` blocks) as small local models do. Answer styles of
//! real small models: `fenced-<role>` (the role's JSON in a ```` ```json ```` fence between
//! sentences) and `prose-<role>` (a sentence, no JSON); `prose` answers every request, of any
//! role, with that sentence and never calls a tool. `echo-params` answers with the request's
//! `model`, `temperature` and `max_tokens` (and `tool_choice` when it was sent); `echo-request`
//! with its `model`, system message (`system`) and offered tool names (`tools`).
//!
//! A reflection request of a model with memory (its user message starts `Reflection on session
//! date:`) gets a lesson from the trading policies, `fault-slow-*` and `no-tools`, derived from the
//! request alone (`reflection.rs`).

mod completion;
mod conversation;
mod hash;
mod policy;
mod reflection;
mod strategy;
mod workflow;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::completion::Reply;
use crate::conversation::Conversation;
use crate::hash::fnv1a;
use crate::policy::{AnswerStyle, ExpectedNames, POLICY_NAMES, Policy};
use crate::strategy::Strategy;
use tradeloom_llm::wire::InMessage;
use tradeloom_llm::{Message, Role};

/// The header that overrides the request's `model` as the policy name.
pub const POLICY_HEADER: &str = "x-mock-policy";

/// Requests larger than this are refused (long agent conversations stay far below).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Conversations the flaky counters remember before starting over.
const MAX_FLAKY_KEYS: usize = 100_000;

/// The mock server's routes. The router keeps only the `flaky-*` counters as state.
pub fn mock_router() -> Router {
    let state = Arc::new(MockState::default());
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`mock_router`] on `listener` until the process ends or the server fails.
pub async fn serve_mock(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "mock-llm listening");
    }
    axum::serve(listener, mock_router()).await
}

#[derive(Debug, Default)]
struct MockState {
    /// Requests seen per flaky conversation step.
    flaky: Mutex<HashMap<u64, u32>>,
}

impl MockState {
    /// Counts a request for `key` and says whether it is within the first `failures`.
    fn should_fail(&self, key: u64, failures: u32) -> bool {
        // A poisoned lock only means another request panicked mid-update of a counter.
        let mut counters = self
            .flaky
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if counters.len() >= MAX_FLAKY_KEYS {
            counters.clear();
        }
        let seen = counters.entry(key).or_insert(0);
        *seen = seen.saturating_add(1);
        *seen <= failures
    }
}

/// The part of a chat-completions request the mock reads; other fields are ignored.
#[derive(Debug, Deserialize)]
struct MockRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: Option<bool>,
    /// Offered tools; only `function.name` is read (the rest is skipped, not built).
    #[serde(default)]
    tools: Option<Vec<OfferedTool>>,
    /// Read only by `echo-params`.
    #[serde(default)]
    temperature: Option<f64>,
    /// Read only by `echo-params`.
    #[serde(default)]
    max_tokens: Option<u64>,
    /// Read only by `echo-params`.
    #[serde(default)]
    tool_choice: Option<Value>,
}

/// An offered tool as the mock reads it: its `function.name` when that is a string, else
/// nothing; any other JSON value is accepted and skipped, as a lenient server would.
#[derive(Debug)]
struct OfferedTool(Option<String>);

impl<'de> Deserialize<'de> for OfferedTool {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(FieldOf {
                key: "function",
                then: FieldOf {
                    key: "name",
                    then: StringValue,
                },
            })
            .map(OfferedTool)
    }
}

/// A visitor of any JSON value yielding what `then` makes of the value at `key` when it is an
/// object that has it (the last such key wins, as in `serde_json::Value`), else `None`.
#[derive(Clone, Copy)]
struct FieldOf<V> {
    key: &'static str,
    then: V,
}

/// A visitor of any JSON value yielding it when it is a string.
#[derive(Clone, Copy)]
struct StringValue;

/// What a lenient seed makes of a value: `None` for a value of another shape.
trait Lenient<'de>: serde::de::DeserializeSeed<'de, Value = Option<String>> + Copy {}

impl<'de> Lenient<'de> for StringValue {}

impl<'de, V: Lenient<'de>> Lenient<'de> for FieldOf<V> {}

impl<'de, V: Lenient<'de>> serde::de::DeserializeSeed<'de> for FieldOf<V> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for StringValue {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// The visitor methods of a value that is not the shape looked for.
macro_rules! skip_other_shapes {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

impl<'de, V: Lenient<'de>> serde::de::Visitor<'de> for FieldOf<V> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "any JSON value")
    }

    skip_other_shapes!();

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_key) = map.next_key_seed(KeyIs(self.key))? {
            if is_key {
                found = map.next_value_seed(self.then)?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether an object's key is the one looked for (compared in place, not allocated).
#[derive(Clone, Copy)]
struct KeyIs(&'static str);

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

impl<'de> serde::de::Visitor<'de> for StringValue {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "any JSON value")
    }

    skip_other_shapes!();

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(text.to_owned()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

async fn chat_completions(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: MockRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return ApiError::invalid_request(format!(
                "invalid chat-completions request body: {error}"
            ))
            .into_response();
        }
    };
    if request.stream == Some(true) {
        return ApiError::invalid_request(
            "`stream: true` is not supported by the mock; send `stream: false` or omit it",
        )
        .into_response();
    }
    let header_policy = headers
        .get(POLICY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|name| !name.is_empty());
    let Some(name) = header_policy.or(request.model.as_deref()) else {
        return ApiError::invalid_request(format!(
            "missing `model`; expected one of {ExpectedNames}"
        ))
        .into_response();
    };
    let Some(policy) = Policy::parse(name) else {
        return ApiError::unknown_model(name).into_response();
    };
    let tools: Vec<String> = request
        .tools
        .into_iter()
        .flatten()
        .filter_map(|tool| tool.0)
        .collect();
    let messages: Vec<Message> = request
        .messages
        .into_iter()
        .map(|message| message.into_message(Role::User))
        .collect();

    // Unwrap `flaky-*` layers (each fails the first n requests of a conversation step) and
    // `content-*` ones (the calls go in the text).
    let mut policy = &policy;
    let mut depth = 0u8;
    let mut in_content = None;
    loop {
        match policy {
            Policy::Flaky { failures, then } => {
                let key = flaky_key(name, depth, &messages);
                if state.should_fail(key, *failures) {
                    return ApiError::server_error("mock fault: flaky server error, try again")
                        .into_response();
                }
                policy = then;
                depth = depth.saturating_add(1);
            }
            Policy::InContent { style, then } => {
                in_content = Some(*style);
                policy = then;
            }
            _ => break,
        }
    }

    let conversation = Conversation::read(&messages);
    let first_symbol = conversation
        .session
        .universe
        .first()
        .map_or("AAA", String::as_str)
        .to_owned();
    let reflection = reflection::request(&messages);
    let reply = match policy {
        // A reflection on a day (tradeloom-agents' memory): a lesson from the request alone.
        Policy::Trade(_) | Policy::Slow(_) | Policy::NoTools if reflection.is_some() => {
            Reply::answer(reflection::lesson(reflection.unwrap_or_default()))
        }
        Policy::Trade(strategy) => strategy.respond(&conversation),
        Policy::Workflow(role) => role.respond(&messages, &tools),
        Policy::StyledWorkflow(role, style) => match role.respond(&messages, &tools) {
            Reply::Answer(text) => Reply::answer(styled(&text, *style)),
            calls => calls,
        },
        Policy::EchoParams => {
            let mut echo = json!({"model": name, "temperature": request.temperature,
                                  "max_tokens": request.max_tokens});
            // Only when sent: requests without tools carry none.
            if let Some(choice) = &request.tool_choice {
                echo["tool_choice"] = choice.clone();
            }
            Reply::answer(echo.to_string())
        }
        Policy::EchoRequest => {
            let system: Vec<&str> = messages
                .iter()
                .filter(|m| m.role == Role::System)
                .filter_map(|m| m.content.as_deref())
                .collect();
            let echo = json!({"model": name, "system": system.join("\n\n"), "tools": &tools});
            Reply::answer(echo.to_string())
        }
        Policy::Prose => Reply::answer(PROSE_ANSWER),
        Policy::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Strategy::Momentum.respond(&conversation)
        }
        Policy::MalformedJson => Reply::Calls(vec![(
            "buy".to_owned(),
            format!(r#"{{"symbol": "{first_symbol}", "quantity": "#),
        )]),
        Policy::BadArgs => Reply::calls([(
            "buy".to_owned(),
            json!({ "symbol": first_symbol, "quantity": "lots" }),
        )]),
        Policy::UnknownTool => Reply::calls([("teleport_funds".to_owned(), json!({}))]),
        Policy::Truncated => {
            Reply::Truncated("Summary: I reviewed the portfolio and bought 10 shares of".to_owned())
        }
        Policy::NoTools => Reply::answer(
            "Summary: markets look steady today; I kept the portfolio as it is and placed no orders.",
        ),
        Policy::Http500 => {
            return ApiError::server_error("mock fault: internal server error").into_response();
        }
        Policy::Http429 => {
            let mut response = ApiError::rate_limited().into_response();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        Policy::MalformedBody => {
            return (
                StatusCode::OK,
                [(CONTENT_TYPE, "application/json")],
                "mock fault: this body is not JSON {\"choices\": [",
            )
                .into_response();
        }
        // Unwrapped by the loop above.
        Policy::Flaky { .. } | Policy::InContent { .. } => {
            return ApiError::server_error("mock: nested policy").into_response();
        }
    };
    let reply = match (in_content, reply) {
        (Some(style), Reply::Calls(calls)) => Reply::answer(style.write(&calls)),
        (_, reply) => reply,
    };
    match completion::render(name, &body, &messages, conversation.step, reply) {
        Ok(text) => json_response(StatusCode::OK, text),
        Err(error) => {
            ApiError::server_error(format!("cannot encode the completion: {error}")).into_response()
        }
    }
}

/// A role's JSON answer as `fenced-*` and `prose-*` write it.
fn styled(json_answer: &str, style: AnswerStyle) -> String {
    match style {
        AnswerStyle::Fenced => {
            let pretty = serde_json::from_str::<Value>(json_answer)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| json_answer.to_owned());
            format!(
                "Here is my assessment:\n\n```json\n{pretty}\n```\n\nLet me know if you need more detail."
            )
        }
        AnswerStyle::Prose => PROSE_ANSWER.to_owned(),
    }
}

/// The answer of `prose` and `prose-<role>`: a sentence, no JSON.
const PROSE_ANSWER: &str = "I have looked at the request carefully and I think it is reasonable.";

/// Conversation-step identity for `flaky-*`: policy name, first user message, assistant turns.
fn flaky_key(name: &str, depth: u8, messages: &[Message]) -> u64 {
    let first_user = messages
        .iter()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_deref())
        .unwrap_or_default();
    let turns = messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .count();
    let mut bytes = Vec::with_capacity(name.len() + first_user.len() + 16);
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(first_user.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&(turns as u64).to_le_bytes());
    bytes.push(depth);
    fnv1a(&bytes)
}

async fn models() -> Response {
    let data: Vec<_> = POLICY_NAMES
        .iter()
        .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "tradeloom-mock"}))
        .collect();
    json_response(
        StatusCode::OK,
        json!({"object": "list", "data": data}).to_string(),
    )
}

async fn health() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
}

async fn not_found() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: Some("not_found"),
        message: "unknown path; the mock serves POST /v1/chat/completions, GET /v1/models and GET /health"
            .to_owned(),
    }
    .into_response()
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
}

impl ApiError {
    fn invalid_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
        }
    }

    fn unknown_model(name: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            message: format!("unknown model `{name}`; expected one of {ExpectedNames}"),
        }
    }

    fn server_error(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            code: None,
            message: message.into(),
        }
    }

    fn rate_limited() -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: Some("rate_limit_exceeded"),
            message: "mock fault: rate limit reached; retry after 1 s".to_owned(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: None,
                code: self.code,
            },
        };
        // Serializing plain strings cannot fail; fall back to a fixed body all the same.
        let text = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"message":"mock error","type":"server_error"}}"#.to_owned()
        });
        json_response(self.status, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_tools_are_read_leniently() {
        let tools: Vec<OfferedTool> = serde_json::from_str(
            r#"[{"type": "function", "function": {"name": "buy", "parameters": {"properties": [1, {"name": "x"}]}}},
                "text", 3, null, true, [{"function": {"name": "nested"}}],
                {"function": {"name": 5}}, {"function": "f"}, {"name": "top"},
                {"function": {"description": "d", "name": "calc", "strict": false}},
                {"function": {"name": "first"}, "function": {"name": "last"}}]"#,
        )
        .expect("any JSON values");
        let names: Vec<Option<&str>> = tools.iter().map(|t| t.0.as_deref()).collect();
        assert_eq!(
            names,
            [
                Some("buy"),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some("calc"),
                Some("last")
            ]
        );
    }
}
