//! The mock's answer as a `chat.completion` object: fixed `created`, ids derived from the
//! request, and usage estimated at four characters per token, so the same request always gets
//! the same bytes.

use serde::Serialize;
use serde_json::Value;

use crate::hash::fnv1a;
use tradeloom_llm::wire::OutToolCall;
use tradeloom_llm::{Message, ToolCallRequest};

/// The next assistant turn: tool calls, or a final text answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reply {
    /// Tool name and arguments as JSON text (possibly malformed on purpose).
    Calls(Vec<(String, String)>),
    Answer(String),
    /// Text cut off by the token limit: `finish_reason: "length"`.
    Truncated(String),
}

impl Reply {
    /// Tool calls with well-formed arguments.
    pub fn calls(calls: impl IntoIterator<Item = (String, Value)>) -> Reply {
        Reply::Calls(
            calls
                .into_iter()
                .map(|(name, arguments)| (name, arguments.to_string()))
                .collect(),
        )
    }

    pub fn answer(text: impl Into<String>) -> Reply {
        Reply::Answer(text.into())
    }
}

/// Serializes the completion. `body` is the raw request, hashed into the id; `step` is the
/// number of assistant messages already in the conversation.
pub(crate) fn render(
    model: &str,
    body: &[u8],
    messages: &[Message],
    step: usize,
    reply: Reply,
) -> Result<String, serde_json::Error> {
    let truncated = matches!(reply, Reply::Truncated(_));
    let (content, tool_calls) = match reply {
        Reply::Answer(text) | Reply::Truncated(text) => (Some(text), Vec::new()),
        Reply::Calls(calls) => (
            None,
            calls
                .into_iter()
                .enumerate()
                .map(|(index, (name, arguments))| ToolCallRequest {
                    id: format!("call_{step}_{index}"),
                    name,
                    arguments,
                })
                .collect(),
        ),
    };
    let prompt_tokens = estimate_tokens(messages.iter().map(message_chars).sum());
    let completion_tokens = estimate_tokens(
        content.as_deref().map_or(0, char_count)
            + tool_calls
                .iter()
                .map(|call| char_count(&call.arguments))
                .sum::<usize>(),
    );
    let finish_reason = if truncated {
        "length"
    } else if tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    serde_json::to_string(&Completion {
        id: format!("chatcmpl-{:016x}", fnv1a(body)),
        object: "chat.completion",
        created: 0,
        model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
                tool_calls: tool_calls.iter().map(OutToolCall::from).collect(),
            },
            finish_reason,
        }],
        usage: UsageBody {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
    })
}

/// Characters of a message's content and tool-call arguments.
pub(crate) fn message_chars(message: &Message) -> usize {
    message.content.as_deref().map_or(0, char_count)
        + message
            .tool_calls
            .iter()
            .map(|call| char_count(&call.arguments))
            .sum::<usize>()
}

fn char_count(text: &str) -> usize {
    text.chars().count()
}

/// ⌈chars / 4⌉
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: UsageBody,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
}

#[derive(Serialize)]
struct UsageBody {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tool_call_completion_shape_and_usage() {
        let messages = vec![Message::system("12345"), Message::user("abc")];
        let reply = Reply::calls([("get_portfolio".to_owned(), json!({}))]);
        let text = render("momentum", b"{}", &messages, 0, reply).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({
                "id": format!("chatcmpl-{:016x}", fnv1a(b"{}")),
                "object": "chat.completion",
                "created": 0,
                "model": "momentum",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_0_0", "type": "function",
                         "function": {"name": "get_portfolio", "arguments": "{}"}}
                    ]},
                    "finish_reason": "tool_calls"
                }],
                // 8 chars → 2 tokens; "{}" → 1 token
                "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
            })
        );
    }

    #[test]
    fn truncated_completion_says_length() {
        let text = render("m", b"x", &[], 0, Reply::Truncated("I bought 10 sh".into())).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["choices"][0]["finish_reason"], "length");
        assert_eq!(value["choices"][0]["message"]["content"], "I bought 10 sh");
    }

    #[test]
    fn answer_completion_stops() {
        let text = render("m", b"x", &[], 3, Reply::answer("Done.")).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["choices"][0]["finish_reason"], "stop");
        assert_eq!(value["choices"][0]["message"]["content"], "Done.");
        assert!(value["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(value["usage"]["completion_tokens"], 2);
        assert_eq!(value["usage"]["prompt_tokens"], 0);
    }
}
