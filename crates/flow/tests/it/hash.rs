use crate::{EXAMPLE, compiled};

/// The contract example rewritten: block style, keys and nodes in another order, `needs` lists
/// reordered, template spacing changed, defaults spelled out, a comment.
const REFORMATTED: &str = r#"
# the same workflow, written differently
nodes:
  - id: notify
    needs: [go]
    type: http
    config:
      url: "https://hooks.example.com/x"
      method: POST
    retries: {max_attempts: 1, backoff_ms: 1000}
  - type: transform
    id: stop
    needs: [review]
    when: '(review.decision=="reject")'
  - id: go
    type: transform
    needs: [review]
    when: review.decision   ==   "approve"
  - id: review
    type: hitl
    needs: [c, b]
    config: {default: reject, expires_after: 60m, prompt: "Trade?"}
  - {config: {output: {y: "{{a.x}}"}}, id: c, type: transform, needs: [a]}
  - {id: b, type: wait, needs: [a], config: {duration_ms: 200}}
  - {id: a, type: transform, config: {output: {x: 1}}}
limits: {max_agent_nodes: 5}
name: review-and-trade
"#;

#[test]
fn the_hash_ignores_formatting_order_and_syntax() {
    let original = compiled(EXAMPLE).ir;
    let reformatted = compiled(REFORMATTED).ir;
    assert_eq!(original.canonical_json(), reformatted.canonical_json());
    assert_eq!(original.hash(), reformatted.hash());
    assert_eq!(original.hash().len(), 64);
    assert!(original.hash().chars().all(|c| c.is_ascii_hexdigit()));

    // The same definition as JSON text.
    let definition = tradeloom_flow::parse_definition(EXAMPLE, "wf.yaml").unwrap();
    let json_text = serde_json::to_string_pretty(&definition.to_json_value()).unwrap();
    let from_json = compiled(&json_text).ir;
    assert_eq!(from_json.hash(), original.hash());
}

#[test]
fn the_hash_changes_with_meaning() {
    let original = compiled(EXAMPLE).ir.hash();
    for (from, to) in [
        ("duration_ms: 200", "duration_ms: 300"),
        ("expires_after: 1h", "expires_after: 2h"),
        (r#"== "approve""#, r#"!= "approve""#),
        ("{{ a.x }}", "{{ a.x }} "),
        ("name: review-and-trade", "name: review-and-trade-2"),
    ] {
        let changed = EXAMPLE.replace(from, to);
        assert_ne!(changed, EXAMPLE, "{from} not found");
        assert_ne!(compiled(&changed).ir.hash(), original, "{from} -> {to}");
    }
}

#[test]
fn canonical_json_is_compact_sorted_and_complete() {
    let json = compiled(EXAMPLE).ir.canonical_json();
    assert!(json.starts_with(r#"{"description":null,"inputs":{},"ir_version":1,"limits":{"max_agent_nodes":5,"max_patch_depth":10},"name":"review-and-trade","nodes":[{"config":{"output":{"x":1}},"id":"a","inputs":{},"needs":[],"retry":{"backoff_ms":1000,"backoff_multiplier":2.0,"max_attempts":1,"max_backoff_ms":null},"timeout_ms":null,"type":"transform","when":null}"#), "{json}");
    assert!(
        json.contains(r#""config":{"approvers":null,"default":"reject","expires_after_ms":3600000,"prompt":"Trade?"}"#),
        "{json}"
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["nodes"][3]["needs"], serde_json::json!(["b", "c"]));
    assert_eq!(value["nodes"][4]["when"], r#"review.decision == "approve""#);
}
