//! Tool calls written in a reply's text. Small local models often answer a tool call as JSON in
//! `content` instead of `tool_calls`, and llama.cpp drops `tools` without a word for chat
//! templates that lack tool support, so the model only ever sees them described in text. The
//! shapes recognised, each naming a tool the request declared:
//!
//! - `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks (Qwen2.5, Hermes);
//! - the whole reply, or a fenced block (```` ```json ````), holding one call object or an
//!   array of them.
//!
//! A call object is `{"name", "arguments"}`, with `parameters` or `args` accepted for
//! `arguments`, `tool` for `name`, or `{"function": {"name", "arguments"}}`. Its arguments are an
//! object, or a string holding one. Anything else is not a call, and the reply stays an answer.

use serde_json::Value;

use crate::types::{ToolCallRequest, ToolSpec};

/// Calls read from one reply at most (a reply listing more is not taken as calls).
const MAX_CALLS: usize = 16;

/// The tool calls `content` holds, each named by a tool of `declared` and accepted by `valid`
/// (the caller's check of the arguments against the tool's schema), with ids `content_call_<i>`.
/// Empty unless every call found qualifies: a reply with one bad call is an answer, not half a
/// step.
pub fn content_tool_calls(
    content: &str,
    declared: &[ToolSpec],
    valid: impl Fn(&ToolSpec, &Value) -> bool,
) -> Vec<ToolCallRequest> {
    let candidates = candidates(content);
    if candidates.is_empty() || candidates.len() > MAX_CALLS {
        return Vec::new();
    }
    let mut calls = Vec::with_capacity(candidates.len());
    for (index, candidate) in candidates.iter().enumerate() {
        let Some((name, arguments)) = call_parts(candidate) else {
            return Vec::new();
        };
        let Some(spec) = declared.iter().find(|t| t.name == name) else {
            return Vec::new();
        };
        if !valid(spec, &arguments) {
            return Vec::new();
        }
        calls.push(ToolCallRequest {
            id: format!("content_call_{index}"),
            name: name.to_string(),
            arguments: arguments.to_string(),
        });
    }
    calls
}

/// The JSON values that may be calls: the `<tool_call>` blocks if there are any; else the whole
/// reply; else its fenced blocks. Arrays are flattened.
fn candidates(content: &str) -> Vec<Value> {
    let tagged = tagged_blocks(content);
    let values: Vec<Value> = if !tagged.is_empty() {
        tagged
            .iter()
            .filter_map(|b| serde_json::from_str(b.trim()).ok())
            .collect()
    } else if let Ok(v) = serde_json::from_str::<Value>(content.trim()) {
        vec![v]
    } else {
        fenced_blocks(content)
            .iter()
            .filter_map(|b| serde_json::from_str(b.trim()).ok())
            .collect()
    };
    if !tagged.is_empty() && values.len() != tagged.len() {
        // A tagged block that is not JSON: not a clean call.
        return Vec::new();
    }
    values
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items,
            other => vec![other],
        })
        .collect()
}

fn tagged_blocks(content: &str) -> Vec<&str> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut blocks = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        // An unclosed last block runs to the end (models stop after the JSON).
        let end = after.find(CLOSE).unwrap_or(after.len());
        blocks.push(&after[..end]);
        rest = after.get(end + CLOSE.len()..).unwrap_or("");
    }
    blocks
}

fn fenced_blocks(content: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = content;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        // The opening line's language tag (`json`) is skipped.
        let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
        let body = &after[body_start..];
        let Some(close) = body.find("```") else { break };
        blocks.push(&body[..close]);
        rest = &body[close + 3..];
    }
    blocks
}

/// The tool name and arguments object of a call object; `None` if it is not one.
fn call_parts(value: &Value) -> Option<(&str, Value)> {
    let object = value.as_object()?;
    let object = match object.get("function").and_then(Value::as_object) {
        Some(function) => function,
        None => object,
    };
    let name = object
        .get("name")
        .or_else(|| object.get("tool"))
        .and_then(Value::as_str)?;
    let arguments = ["arguments", "parameters", "args"]
        .iter()
        .find_map(|k| object.get(*k))
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let arguments = match arguments {
        Value::String(text) => serde_json::from_str::<Value>(&text).ok()?,
        other => other,
    };
    arguments.is_object().then_some((name, arguments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        ["get_price", "buy"]
            .iter()
            .map(|n| ToolSpec {
                name: n.to_string(),
                description: String::new(),
                parameters: json!({"type": "object"}),
            })
            .collect()
    }

    fn read(content: &str) -> Vec<(String, Value)> {
        content_tool_calls(content, &tools(), |_, _| true)
            .into_iter()
            .map(|c| (c.name, serde_json::from_str(&c.arguments).unwrap()))
            .collect()
    }

    #[test]
    fn the_shapes_small_models_write_are_read() {
        let want = vec![("get_price".to_string(), json!({"symbol": "AAA"}))];
        assert_eq!(
            read(r#"{"name": "get_price", "arguments": {"symbol": "AAA"}}"#),
            want
        );
        assert_eq!(
            read(
                "Let me check.\n```json\n{\"name\": \"get_price\", \"parameters\": {\"symbol\": \"AAA\"}}\n```\n"
            ),
            want
        );
        assert_eq!(
            read(
                "<tool_call>\n{\"name\": \"get_price\", \"arguments\": \"{\\\"symbol\\\": \\\"AAA\\\"}\"}\n</tool_call>"
            ),
            want
        );
        assert_eq!(
            read(r#"{"function": {"name": "get_price", "arguments": {"symbol": "AAA"}}}"#),
            want
        );
        let two = read(
            "<tool_call>{\"name\": \"get_price\", \"arguments\": {\"symbol\": \"AAA\"}}</tool_call>\n<tool_call>{\"name\": \"buy\", \"arguments\": {\"symbol\": \"AAA\", \"quantity\": 3}}</tool_call>",
        );
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].0, "buy");
        let array = read(
            r#"[{"tool": "get_price", "args": {"symbol": "AAA"}}, {"name": "buy", "arguments": {}}]"#,
        );
        assert_eq!(array.len(), 2);
        let ids: Vec<String> = content_tool_calls(
            r#"[{"name": "get_price"}, {"name": "buy"}]"#,
            &tools(),
            |_, _| true,
        )
        .into_iter()
        .map(|c| c.id)
        .collect();
        assert_eq!(ids, ["content_call_0", "content_call_1"]);
    }

    #[test]
    fn answers_stay_answers() {
        // A final JSON answer, prose, an undeclared tool, a bad arguments value, a bad tagged block.
        assert!(read(r#"{"action": "buy", "symbol": "AAA", "quantity": 10}"#).is_empty());
        assert!(read("I bought 10 shares of AAA today.").is_empty());
        assert!(read(r#"{"name": "teleport_funds", "arguments": {}}"#).is_empty());
        assert!(read(r#"{"name": "get_price", "arguments": "not json"}"#).is_empty());
        assert!(read(r#"{"name": "get_price", "arguments": [1]}"#).is_empty());
        assert!(read("<tool_call>{\"name\": \"get_price\"</tool_call>").is_empty());
        // One undeclared call among good ones: none is taken.
        assert!(read(r#"[{"name": "get_price"}, {"name": "sell"}]"#).is_empty());
        // The caller's schema check decides.
        assert!(
            content_tool_calls(r#"{"name": "buy", "arguments": {}}"#, &tools(), |_, a| a
                .get("symbol")
                .is_some())
            .is_empty()
        );
    }
}
