//! `agent.model` options beyond the endpoint: sampling, token limit, request timeout, retries.

use crate::{compiled, errors_of, lines};

#[test]
fn model_options_compile_into_the_ir() {
    let c = compiled(
        r#"
name: opts
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://127.0.0.1:8080/v1", model: m, temperature: 0.2, max_tokens: 512, timeout_ms: 30000, max_retries: 2}, prompt: "hi"}}
"#,
    );
    let json = c.ir.canonical_json();
    for needle in [
        r#""temperature":0.2"#,
        r#""max_tokens":512"#,
        r#""timeout_ms":30000"#,
        r#""max_retries":2"#,
    ] {
        assert!(json.contains(needle), "{needle} missing from {json}");
    }
    // Without them the IR (and so its hash) is what it was before they existed.
    let plain = compiled(
        r#"
name: opts
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://127.0.0.1:8080/v1", model: m}, prompt: "hi"}}
"#,
    );
    assert!(!plain.ir.canonical_json().contains("temperature"));
}

#[test]
fn bad_model_options_name_their_field() {
    let errors = errors_of(
        r#"
name: opts
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://x/v1", model: m, temperature: 2.5, max_tokens: 0, timeout_ms: 0, max_retries: 99}, prompt: "hi"}}
  - {id: b, type: agent, config: {model: {base_url: "http://x/v1", model: m, timeout_ms: 3600001}, prompt: "hi"}}
"#,
    );
    let text = lines(&errors);
    for needle in [
        "nodes[0].config.model.temperature: must be between 0 and 2, got 2.5",
        "nodes[0].config.model.max_tokens: must be 1 to 1000000, got 0",
        "nodes[0].config.model.timeout_ms: must be 1 to 3600000 (one hour), got 0",
        "nodes[0].config.model.max_retries: must be 0 to 10, got 99",
        "nodes[1].config.model.timeout_ms: must be 1 to 3600000 (one hour), got 3600001",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    // An unknown option is still an error.
    let errors = errors_of(
        r#"
name: opts
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://x/v1", model: m, top_k: 3}, prompt: "hi"}}
"#,
    );
    assert!(lines(&errors).contains("top_k"), "{}", lines(&errors));
}

#[test]
fn tool_choice_compiles_and_a_bad_one_names_its_field() {
    let c = compiled(
        r#"
name: opts
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://127.0.0.1:8080/v1", model: m, tool_choice: required}, tools: [calc], prompt: "hi"}}
"#,
    );
    let json = c.ir.canonical_json();
    assert!(json.contains(r#""tool_choice":"required""#), "{json}");
    let errors = errors_of(
        r#"
name: opts
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://x/v1", model: m, tool_choice: always}, prompt: "hi"}}
"#,
    );
    let text = lines(&errors);
    assert!(
        text.contains("tool_choice") && text.contains("always"),
        "{text}"
    );
}

#[test]
fn a_fallback_compiles_as_a_template_and_bad_ones_name_their_field() {
    let c = compiled(
        r#"
name: fb
inputs: {symbol: {}}
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://127.0.0.1:8080/v1", model: m}, prompt: "Answer in JSON",
     fallback: {stance: neutral, symbol: "{{ inputs.symbol }}", confidence: "0"}}}
"#,
    );
    let json = c.ir.canonical_json();
    assert!(json.contains(r#""fallback":{"#), "{json}");
    assert!(json.contains(r#""stance":"neutral""#), "{json}");
    // Without it the IR (and so its hash) is what it was before the field existed.
    let plain = compiled(
        r#"
name: fb
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://127.0.0.1:8080/v1", model: m}, prompt: "hi"}}
"#,
    );
    assert!(!plain.ir.canonical_json().contains("fallback"));

    let errors = errors_of(
        r#"
name: fb
nodes:
  - {id: a, type: agent, config: {model: {base_url: "http://x/v1", model: m}, prompt: "hi",
     fallback: {reason: "{{ nobody.json }}"}}}
  - {id: b, type: agent, config: {model: {base_url: "http://x/v1", model: m}, prompt: "hi",
     fallback: {reason: "{{ inputs.missing }}"}}}
  - {id: c, type: agent, config: {model: {base_url: "http://x/v1", model: m}, prompt: "hi",
     fallback: "{{ unclosed"}}
  - {id: d, type: agent, config: {model: {base_url: "http://x/v1", model: m}, prompt: "hi",
     fallback: {summary: "{{ d.json }}"}}}
"#,
    );
    let text = lines(&errors);
    for needle in [
        "nodes[0].config.fallback.reason: `nobody.json` reads unknown node `nobody`",
        "nodes[1].config.fallback.reason: `inputs.missing` reads input `missing`",
        "nodes[2].config.fallback:",
        "nodes[3].config.fallback.summary: `d.json` reads the output of `d` itself",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}
