//! The chat-completions wire format, shared by the client and the mock server.
//!
//! Requests are written strictly (as OpenAI documents them) and read leniently, because
//! OpenAI-compatible servers differ: llama.cpp, vLLM and Ollama omit tool-call ids or usage,
//! send `arguments` as a JSON object, or send `content` as an array of text parts.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::types::{ChatRequest, Message, Role, ToolCallRequest, ToolChoice, ToolSpec, Usage};

// ---- requests ----------------------------------------------------------------------------

/// The JSON body of `POST /chat/completions` as the client sends it.
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    pub model: &'a str,
    pub messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl<'a> RequestBody<'a> {
    pub fn new(
        model: &'a str,
        request: &'a ChatRequest,
        temperature: Option<f64>,
        max_tokens: Option<u32>,
        tool_choice: ToolChoice,
    ) -> Self {
        // `required` forces the conversation's first tool call only: once a tool has answered,
        // the model may answer in text (else it could never end its turn).
        let called = request.messages.iter().any(|m| m.role == Role::Tool);
        let tool_choice = match tool_choice {
            ToolChoice::Required if called => ToolChoice::Auto,
            other => other,
        };
        RequestBody {
            model,
            messages: request.messages.iter().map(OutMessage::from).collect(),
            tools: request.tools.iter().map(OutTool::from).collect(),
            tool_choice: (!request.tools.is_empty()).then_some(tool_choice.as_str()),
            temperature,
            max_tokens,
        }
    }
}

/// One message in OpenAI's spelling. `content` is always present: `null` for an assistant
/// message that only calls tools, `""` for any other message without text (some servers reject
/// a `null` user or tool content).
#[derive(Debug, Serialize)]
pub struct OutMessage<'a> {
    pub role: Role,
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OutToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
}

impl<'a> From<&'a Message> for OutMessage<'a> {
    fn from(message: &'a Message) -> Self {
        let content = match (&message.content, message.role) {
            (Some(text), _) => Some(text.as_str()),
            (None, Role::Assistant) => None,
            (None, _) => Some(""),
        };
        OutMessage {
            role: message.role,
            content,
            tool_calls: message.tool_calls.iter().map(OutToolCall::from).collect(),
            tool_call_id: message.tool_call_id.as_deref(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OutToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunctionCall<'a>,
}

impl<'a> From<&'a ToolCallRequest> for OutToolCall<'a> {
    fn from(call: &'a ToolCallRequest) -> Self {
        OutToolCall {
            id: &call.id,
            kind: "function",
            function: OutFunctionCall {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OutFunctionCall<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

#[derive(Debug, Serialize)]
pub struct OutTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunction<'a>,
}

impl<'a> From<&'a ToolSpec> for OutTool<'a> {
    fn from(tool: &'a ToolSpec) -> Self {
        OutTool {
            kind: "function",
            function: OutFunction {
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OutFunction<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters: &'a Value,
}

// ---- lenient reading (responses, and requests on the mock server) ---------------------------

/// A chat-completions response, read leniently.
#[derive(Debug, Deserialize)]
pub struct ResponseBody {
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<InChoice>,
    #[serde(default)]
    pub usage: Option<InUsage>,
    /// Some proxies answer 200 with an error object instead of choices.
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct InChoice {
    #[serde(default)]
    pub message: Option<InMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A message as a server (or, on the mock, a client) wrote it.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    #[serde(default, deserialize_with = "lenient_role")]
    pub role: Option<Role>,
    #[serde(default, deserialize_with = "content_text")]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tool_calls: Vec<InToolCall>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// The pre-tools spelling of a single call, still produced by some servers.
    #[serde(default)]
    pub function_call: Option<InFunctionCall>,
}

impl InMessage {
    /// Our [`Message`], with missing tool-call ids synthesized as `call_<index>`.
    pub fn into_message(self, default_role: Role) -> Message {
        let mut tool_calls: Vec<ToolCallRequest> = self
            .tool_calls
            .into_iter()
            .enumerate()
            .map(|(position, call)| call.into_request(position))
            .collect();
        if tool_calls.is_empty()
            && let Some(function) = self.function_call
        {
            tool_calls.push(ToolCallRequest {
                id: "call_0".to_owned(),
                name: function.name,
                arguments: function.arguments,
            });
        }
        Message {
            role: self.role.unwrap_or(default_role),
            content: self.content,
            tool_calls,
            tool_call_id: self.tool_call_id,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InToolCall {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub index: Option<u64>,
    pub function: InFunctionCall,
}

impl InToolCall {
    fn into_request(self, position: usize) -> ToolCallRequest {
        let id = match self.id {
            Some(id) if !id.is_empty() => id,
            _ => format!("call_{}", self.index.unwrap_or(position as u64)),
        };
        ToolCallRequest {
            id,
            name: self.function.name,
            arguments: self.function.arguments,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InFunctionCall {
    #[serde(default)]
    pub name: String,
    /// Raw JSON text; a JSON object is serialized back to text, `null` or absent is `{}`.
    #[serde(default = "empty_object", deserialize_with = "arguments_text")]
    pub arguments: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct InUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<InPromptDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct InPromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl From<Option<InUsage>> for Usage {
    fn from(usage: Option<InUsage>) -> Self {
        let usage = usage.unwrap_or_default();
        let prompt_tokens = usage.prompt_tokens.unwrap_or(0);
        let completion_tokens = usage.completion_tokens.unwrap_or(0);
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: usage
                .total_tokens
                .unwrap_or(prompt_tokens + completion_tokens),
            cached_tokens: usage
                .prompt_tokens_details
                .and_then(|details| details.cached_tokens)
                .unwrap_or(0),
        }
    }
}

/// A role, reading OpenAI's newer `developer` as `system`.
fn lenient_role<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Role>, D::Error> {
    let Some(role) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    match role.as_str() {
        "system" | "developer" => Ok(Some(Role::System)),
        "user" => Ok(Some(Role::User)),
        "assistant" => Ok(Some(Role::Assistant)),
        "tool" => Ok(Some(Role::Tool)),
        other => Err(serde::de::Error::unknown_variant(
            other,
            &["system", "developer", "user", "assistant", "tool"],
        )),
    }
}

fn empty_object() -> String {
    "{}".to_owned()
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `content` as a string, `null`, or an array of parts whose `text` fields are concatenated.
fn content_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => None,
        Value::String(text) => Some(text),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|part| match part {
                    Value::String(text) => Some(text.as_str()),
                    part => part.get("text").and_then(Value::as_str),
                })
                .collect(),
        ),
        other => Some(other.to_string()),
    })
}

fn arguments_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => empty_object(),
        Value::String(text) => text,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(body: Value) -> ResponseBody {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn request_is_written_in_openai_spelling() {
        let request = ChatRequest {
            messages: vec![
                Message::system("rules"),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCallRequest {
                        id: "call_1".into(),
                        name: "get_price".into(),
                        arguments: r#"{"symbol":"AAA"}"#.into(),
                    }],
                    tool_call_id: None,
                },
                Message::tool("call_1", r#"{"price":"1.00"}"#),
            ],
            tools: vec![ToolSpec {
                name: "get_price".into(),
                description: "price of a symbol".into(),
                parameters: json!({"type": "object"}),
            }],
        };
        let body = serde_json::to_value(RequestBody::new(
            "m",
            &request,
            Some(0.0),
            None,
            ToolChoice::Auto,
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "rules"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "get_price", "arguments": "{\"symbol\":\"AAA\"}"}}
                    ]},
                    {"role": "tool", "content": "{\"price\":\"1.00\"}", "tool_call_id": "call_1"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "get_price", "description": "price of a symbol",
                    "parameters": {"type": "object"}}}],
                "tool_choice": "auto",
                "temperature": 0.0
            })
        );
    }

    #[test]
    fn tool_choice_is_the_configured_one() {
        let request = ChatRequest {
            messages: vec![Message::user("hi")],
            tools: vec![ToolSpec {
                name: "get_price".into(),
                description: "price".into(),
                parameters: json!({"type": "object"}),
            }],
        };
        for (choice, text) in [
            (ToolChoice::Auto, "auto"),
            (ToolChoice::Required, "required"),
            (ToolChoice::None, "none"),
        ] {
            let body =
                serde_json::to_value(RequestBody::new("m", &request, None, None, choice)).unwrap();
            assert_eq!(body["tool_choice"], text);
        }
        // After a tool has answered, `required` becomes `auto`: the model may end its turn.
        let mut later = request.clone();
        later.messages.push(Message::tool("call_1", "{}"));
        for (choice, text) in [
            (ToolChoice::Auto, "auto"),
            (ToolChoice::Required, "auto"),
            (ToolChoice::None, "none"),
        ] {
            let body =
                serde_json::to_value(RequestBody::new("m", &later, None, None, choice)).unwrap();
            assert_eq!(body["tool_choice"], text);
        }
        let parsed: ToolChoice = serde_json::from_value(json!("required")).unwrap();
        assert_eq!(parsed, ToolChoice::Required);
        assert!(serde_json::from_value::<ToolChoice>(json!("always")).is_err());
    }

    #[test]
    fn request_without_tools_has_no_tool_choice() {
        let request = ChatRequest {
            messages: vec![Message::user("hi")],
            tools: vec![],
        };
        let body = serde_json::to_value(RequestBody::new(
            "m",
            &request,
            None,
            Some(5),
            ToolChoice::Required,
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        );
    }

    #[test]
    fn ollama_style_tool_calls_are_accepted() {
        let body = decode(json!({
            "choices": [{"message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "buy", "arguments": {"symbol": "AAA", "quantity": 3}}},
                    {"id": "", "index": 7, "function": {"name": "sell", "arguments": null}}
                ]
            }, "finish_reason": "tool_calls"}]
        }));
        let choice = body.choices.into_iter().next().unwrap();
        let message = choice.message.unwrap().into_message(Role::Assistant);
        assert_eq!(message.tool_calls[0].id, "call_0");
        assert_eq!(
            serde_json::from_str::<Value>(&message.tool_calls[0].arguments).unwrap(),
            json!({"symbol": "AAA", "quantity": 3})
        );
        assert_eq!(message.tool_calls[1].id, "call_7");
        assert_eq!(message.tool_calls[1].arguments, "{}");
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn missing_usage_is_zero_and_cached_tokens_are_read() {
        assert_eq!(
            Usage::from(decode(json!({"choices": []})).usage),
            Usage::default()
        );
        let usage = Usage::from(
            decode(json!({"choices": [], "usage": {
                "prompt_tokens": 10, "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 6}
            }}))
            .usage,
        );
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 4,
                total_tokens: 14,
                cached_tokens: 6
            }
        );
    }

    #[test]
    fn content_may_be_null_missing_or_parts() {
        let body = decode(json!({"choices": [
            {"message": {"content": null}},
            {"message": {}},
            {"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}
        ], "usage": null}));
        let contents: Vec<Option<String>> = body
            .choices
            .into_iter()
            .map(|choice| {
                choice
                    .message
                    .unwrap()
                    .into_message(Role::Assistant)
                    .content
            })
            .collect();
        assert_eq!(contents, vec![None, None, Some("ab".to_owned())]);
    }

    #[test]
    fn legacy_function_call_becomes_a_tool_call() {
        let body = decode(json!({"choices": [{"message": {
            "function_call": {"name": "get_portfolio", "arguments": "{}"}
        }}]}));
        let message = body.choices.into_iter().next().unwrap().message.unwrap();
        let message = message.into_message(Role::Assistant);
        assert_eq!(
            message.tool_calls,
            vec![ToolCallRequest {
                id: "call_0".into(),
                name: "get_portfolio".into(),
                arguments: "{}".into()
            }]
        );
    }
}
