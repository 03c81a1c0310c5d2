//! JSON Patch: the RFC 6902 appendix A examples, then the rules for running workflows.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tradeloom_flow::patch::{PatchError, added_agent_nodes};
use tradeloom_flow::{
    Definition, RunState, apply_patch, parse_definition, parse_patch, validate_patch,
};

use crate::EXAMPLE;

/// Applies a patch given as text to a document given as text.
fn apply(doc: &str, patch: &str) -> Result<Value, PatchError> {
    let doc: Value = serde_json::from_str(doc).unwrap();
    apply_patch(&doc, &parse_patch(patch)?)
}

fn applies_to(doc: &str, patch: &str, expected: &str) {
    let expected: Value = serde_json::from_str(expected).unwrap();
    assert_eq!(apply(doc, patch).unwrap(), expected, "{patch}");
}

fn fails(doc: &str, patch: &str) -> PatchError {
    match apply(doc, patch) {
        Ok(v) => panic!("{patch} applied: {v}"),
        Err(e) => e,
    }
}

#[test]
fn rfc6902_a1_adding_an_object_member() {
    applies_to(
        r#"{"foo": "bar"}"#,
        r#"[{"op": "add", "path": "/baz", "value": "qux"}]"#,
        r#"{"baz": "qux", "foo": "bar"}"#,
    );
}

#[test]
fn rfc6902_a2_adding_an_array_element() {
    applies_to(
        r#"{"foo": ["bar", "baz"]}"#,
        r#"[{"op": "add", "path": "/foo/1", "value": "qux"}]"#,
        r#"{"foo": ["bar", "qux", "baz"]}"#,
    );
}

#[test]
fn rfc6902_a3_removing_an_object_member() {
    applies_to(
        r#"{"baz": "qux", "foo": "bar"}"#,
        r#"[{"op": "remove", "path": "/baz"}]"#,
        r#"{"foo": "bar"}"#,
    );
}

#[test]
fn rfc6902_a4_removing_an_array_element() {
    applies_to(
        r#"{"foo": ["bar", "qux", "baz"]}"#,
        r#"[{"op": "remove", "path": "/foo/1"}]"#,
        r#"{"foo": ["bar", "baz"]}"#,
    );
}

#[test]
fn rfc6902_a5_replacing_a_value() {
    applies_to(
        r#"{"baz": "qux", "foo": "bar"}"#,
        r#"[{"op": "replace", "path": "/baz", "value": "boo"}]"#,
        r#"{"baz": "boo", "foo": "bar"}"#,
    );
}

#[test]
fn rfc6902_a6_moving_a_value() {
    applies_to(
        r#"{"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}"#,
        r#"[{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]"#,
        r#"{"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}"#,
    );
}

#[test]
fn rfc6902_a7_moving_an_array_element() {
    applies_to(
        r#"{"foo": ["all", "grass", "cows", "eat"]}"#,
        r#"[{"op": "move", "from": "/foo/1", "path": "/foo/3"}]"#,
        r#"{"foo": ["all", "cows", "eat", "grass"]}"#,
    );
}

#[test]
fn rfc6902_a8_testing_a_value_success() {
    applies_to(
        r#"{"baz": "qux", "foo": ["a", 2, "c"]}"#,
        r#"[{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]"#,
        r#"{"baz": "qux", "foo": ["a", 2, "c"]}"#,
    );
}

#[test]
fn rfc6902_a9_testing_a_value_error() {
    let e = fails(
        r#"{"baz": "qux"}"#,
        r#"[{"op": "test", "path": "/baz", "value": "bar"}]"#,
    );
    assert_eq!(
        e.to_string(),
        r#"patch operation 0 (test): `/baz` is "qux", not "bar""#
    );
}

#[test]
fn rfc6902_a10_adding_a_nested_member_object() {
    applies_to(
        r#"{"foo": "bar"}"#,
        r#"[{"op": "add", "path": "/child", "value": {"grandchild": {}}}]"#,
        r#"{"foo": "bar", "child": {"grandchild": {}}}"#,
    );
}

#[test]
fn rfc6902_a11_ignoring_unrecognized_elements() {
    applies_to(
        r#"{"foo": "bar"}"#,
        r#"[{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]"#,
        r#"{"foo": "bar", "baz": "qux"}"#,
    );
}

#[test]
fn rfc6902_a12_adding_to_a_nonexistent_target() {
    let e = fails(
        r#"{"foo": "bar"}"#,
        r#"[{"op": "add", "path": "/baz/bat", "value": "qux"}]"#,
    );
    assert_eq!(
        e.to_string(),
        "patch operation 0 (add): cannot add at `/baz/bat`: `/baz` does not exist"
    );
}

#[test]
fn rfc6902_a13_invalid_json_patch_document() {
    let e = fails(
        r#"{"foo": "bar"}"#,
        r#"[{"op": "add", "path": "/baz", "value": "qux", "op": "remove"}]"#,
    );
    assert!(
        matches!(&e, PatchError::Invalid(m) if m.contains("duplicate field `op`")),
        "{e}"
    );
}

#[test]
fn rfc6902_a14_escape_ordering() {
    applies_to(
        r#"{"/": 9, "~1": 10}"#,
        r#"[{"op": "test", "path": "/~01", "value": 10}]"#,
        r#"{"/": 9, "~1": 10}"#,
    );
}

#[test]
fn rfc6902_a15_comparing_strings_and_numbers() {
    let e = fails(
        r#"{"/": 9, "~1": 10}"#,
        r#"[{"op": "test", "path": "/~01", "value": "10"}]"#,
    );
    assert!(
        matches!(
            e,
            PatchError::Failed {
                index: 0,
                op: "test",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn rfc6902_a16_adding_an_array_value() {
    applies_to(
        r#"{"foo": ["bar"]}"#,
        r#"[{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]"#,
        r#"{"foo": ["bar", ["abc", "def"]]}"#,
    );
}

#[test]
fn more_operations_and_atomicity() {
    // Whole-document add and replace, copy, numeric equality in test, `~1` in keys.
    applies_to(
        r#"{"a": 1}"#,
        r#"[{"op": "add", "path": "", "value": [1]}]"#,
        "[1]",
    );
    applies_to(
        r#"{"a": 1}"#,
        r#"[{"op": "replace", "path": "", "value": {}}]"#,
        "{}",
    );
    applies_to(
        r#"{"a": {"b": [1, 2]}}"#,
        r#"[{"op": "copy", "from": "/a/b", "path": "/c"}, {"op": "test", "path": "/c/1", "value": 2.0}]"#,
        r#"{"a": {"b": [1, 2]}, "c": [1, 2]}"#,
    );
    applies_to(
        r#"{"a/b": {"~": 1}}"#,
        r#"[{"op": "remove", "path": "/a~1b/~0"}]"#,
        r#"{"a/b": {}}"#,
    );
    // A failing operation leaves nothing applied and names itself.
    let doc = json!({"a": 1});
    let ops = parse_patch(
        r#"[{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/zz"}]"#,
    )
    .unwrap();
    let e = apply_patch(&doc, &ops).unwrap_err();
    assert_eq!(
        e.to_string(),
        "patch operation 1 (remove): `/zz` does not exist"
    );
    assert_eq!(doc, json!({"a": 1}));
    for (patch, needle) in [
        (
            r#"[{"op": "move", "from": "/a", "path": "/a/b"}]"#,
            "into its own child",
        ),
        (
            r#"[{"op": "replace", "path": "/nope", "value": 1}]"#,
            "`/nope` does not exist",
        ),
        (
            r#"[{"op": "remove", "path": ""}]"#,
            "cannot remove the whole document",
        ),
        (
            r#"[{"op": "add", "path": "nope", "value": 1}]"#,
            "must be empty or start with `/`",
        ),
        (
            r#"[{"op": "add", "path": "/a/0", "value": 1}]"#,
            "neither an object nor an array",
        ),
    ] {
        let e = fails(r#"{"a": 1}"#, patch).to_string();
        assert!(e.contains(needle), "{patch}: {e}");
    }
    assert!(matches!(
        fails("{}", r#"[{"op": "add", "path": "/a"}]"#),
        PatchError::Invalid(m) if m.contains("missing field `value`")
    ));
    assert!(matches!(
        fails("{}", r#"[{"op": "frobnicate", "path": "/a"}]"#),
        PatchError::Invalid(m) if m.contains("unknown variant `frobnicate`")
    ));
}

// ---- patches to running workflows ---------------------------------------------------------

fn current() -> Definition {
    parse_definition(EXAMPLE, "wf.yaml").unwrap()
}

fn state(completed: &[&str]) -> RunState {
    RunState {
        completed: completed
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        patch_depth: 0,
        agent_nodes_spawned: 0,
    }
}

fn ops(value: Value) -> Vec<tradeloom_flow::PatchOp> {
    tradeloom_flow::patch::patch_from_value(&value).unwrap()
}

fn reasons(patch: Value, state: &RunState) -> Vec<String> {
    match validate_patch(&current(), &ops(patch), state) {
        Ok(_) => panic!("patch accepted"),
        Err(reasons) => reasons,
    }
}

fn agent(id: &str, needs: &str) -> Value {
    json!({"id": id, "type": "agent", "needs": [needs], "config": {
        "model": {"base_url": "http://127.0.0.1:8080/v1", "model": "m"}, "prompt": "decide"}})
}

#[test]
fn a_valid_patch_gives_the_new_definition() {
    // Node 6 is `notify`; the patch appends a node after it and changes its URL.
    let patch = json!([
        {"op": "test", "path": "/nodes/6/id", "value": "notify"},
        {"op": "replace", "path": "/nodes/6/config/url", "value": "https://hooks.example.com/y"},
        {"op": "add", "path": "/nodes/-", "value": {"id": "log", "type": "wait", "needs": ["notify"], "config": {"duration_ms": 5}}},
        agent_add("think"),
    ]);
    let patched = validate_patch(&current(), &ops(patch), &state(&["a", "b", "c"])).unwrap();
    assert_eq!(patched.nodes.len(), 9);
    assert_eq!(
        patched.nodes[6].config["url"],
        "https://hooks.example.com/y"
    );
    assert_eq!(added_agent_nodes(&current(), &patched), 1);
    tradeloom_flow::compile(&patched).unwrap();
}

fn agent_add(id: &str) -> Value {
    json!({"op": "add", "path": "/nodes/-", "value": agent(id, "review")})
}

#[test]
fn completed_nodes_are_immutable() {
    let r = reasons(
        json!([
            {"op": "replace", "path": "/nodes/1/config/duration_ms", "value": 1},
            {"op": "remove", "path": "/nodes/2"},
        ]),
        &state(&["a", "b", "c"]),
    );
    assert!(
        r.contains(&"node `b` has completed and may not be changed".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"node `c` has completed and may not be removed".to_string()),
        "{r:?}"
    );
    // The same changes to nodes that have not completed are fine.
    let fine = json!([{"op": "replace", "path": "/nodes/1/config/duration_ms", "value": 1}]);
    validate_patch(&current(), &ops(fine), &state(&["a"])).unwrap();
}

#[test]
fn unknown_types_may_not_be_introduced() {
    let r = reasons(
        json!([{"op": "add", "path": "/nodes/-", "value": {"id": "t", "type": "teleport", "needs": ["go"]}}]),
        &state(&[]),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("nodes[7]: node `t` has unknown type `teleport`; a patch may not introduce unknown node types"), "{r:?}");
}

#[test]
fn cycles_are_refused_and_named() {
    let r = reasons(
        json!([{"op": "add", "path": "/nodes/0/needs", "value": ["notify"]}]),
        &state(&[]),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0],
        "nodes[0].needs: dependency cycle: a → notify → go → review → b → a (each node needs the next)"
    );
}

#[test]
fn schema_and_compile_errors_are_refused() {
    let r = reasons(
        json!([{"op": "add", "path": "/nodes/0/colour", "value": "red"}]),
        &state(&[]),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with(
            "the patched definition is invalid: nodes[0].colour: unknown field `colour`"
        ),
        "{r:?}"
    );
    let r = reasons(
        json!([{"op": "add", "path": "/nodes/-", "value": {"id": "w", "type": "wait", "needs": ["ghost"], "config": {"duration_ms": 0}}}]),
        &state(&[]),
    );
    assert_eq!(
        r,
        [
            "nodes[7].config.duration_ms: must be more than zero",
            "nodes[7].needs[0]: unknown node `ghost`"
        ]
    );
    let r = reasons(json!([{"op": "remove", "path": "/nodes/99"}]), &state(&[]));
    assert_eq!(
        r,
        ["patch operation 0 (remove): `/nodes/99` does not exist"]
    );
}

#[test]
fn agent_spawns_are_limited_per_run() {
    // Three spawned so far; the default limit is 5: two more fit, three do not.
    let mut s = state(&[]);
    s.agent_nodes_spawned = 3;
    let two = json!([agent_add("x1"), agent_add("x2")]);
    validate_patch(&current(), &ops(two), &s).unwrap();
    let three = json!([agent_add("x1"), agent_add("x2"), agent_add("x3")]);
    let r = reasons(three, &s);
    assert_eq!(
        r,
        ["the patch adds 3 agent node(s) to the 3 this run has had; limits.max_agent_nodes is 5"]
    );
    // Raising the limit in the same patch does not help.
    let sneaky = json!([
        {"op": "add", "path": "/limits", "value": {"max_agent_nodes": 50, "max_patch_depth": 10}},
        agent_add("x1"), agent_add("x2"), agent_add("x3"),
    ]);
    let r = reasons(sneaky, &s);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0], "a patch may not change `limits`");
}

#[test]
fn patch_depth_is_limited_and_every_reason_is_given() {
    let s = RunState {
        completed: ["a".to_string()].into(),
        patch_depth: 10,
        agent_nodes_spawned: 5,
    };
    let r = reasons(
        json!([
            {"op": "remove", "path": "/nodes/0"},
            agent_add("x1"),
            {"op": "add", "path": "/nodes/-", "value": {"id": "t", "type": "teleport", "needs": ["go"]}},
        ]),
        &s,
    );
    let text = r.join("\n");
    for needle in [
        "the run has accepted 10 patch(es), the most limits.max_patch_depth (10) allows",
        "node `a` has completed and may not be removed",
        "unknown type `teleport`",
        "the patch adds 1 agent node(s) to the 5 this run has had",
        "unknown node `a`",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
}

#[test]
fn patches_may_not_create_or_redirect_orders() {
    let market = json!({"universe": "examples/universe", "as_of": "2025-03-05"});
    let trading = from_json(json!({"name": "t", "nodes": [
        {"id": "propose", "type": "transform", "config": {"output": {"symbol": "AAA", "side": "buy", "quantity": 5}}},
        {"id": "check", "type": "transform", "needs": ["propose"]},
        {"id": "review", "type": "hitl", "needs": ["check"], "config": {"prompt": "Buy?", "expires_after": "1h", "default": "reject"}},
        {"id": "order", "type": "order", "needs": ["review"], "when": "review.decision == \"approve\"",
         "config": {"market": market, "proposal": "{{ propose }}"}}
    ]}));
    let refused = |patch: Value| match validate_patch(&trading, &ops(patch), &state(&[])) {
        Ok(_) => panic!("patch accepted"),
        Err(reasons) => reasons,
    };
    // A new order node, even behind its own approval.
    let r = refused(json!([{"op": "add", "path": "/nodes/-", "value":
        {"id": "more", "type": "order", "needs": ["review"], "config": {"market": market,
         "proposal": {"symbol": "AAA", "side": "buy", "quantity": 500}}}}]));
    assert_eq!(
        r,
        [
            "nodes[4]: node `more` is an order node; a patch may not add one (orders come from the stored definition)"
        ]
    );
    // A bigger quantity, or an order that no longer waits for the approval.
    let r = refused(
        json!([{"op": "replace", "path": "/nodes/3/config/proposal", "value":
        {"symbol": "AAA", "side": "buy", "quantity": 500}}]),
    );
    assert_eq!(
        r,
        ["nodes[3]: node `order` is an order node; a patch may not change it"]
    );
    let r = refused(json!([{"op": "remove", "path": "/nodes/3/when"}]));
    assert_eq!(
        r,
        ["nodes[3]: node `order` is an order node; a patch may not change it"]
    );
    // The approval it waits for may not be turned into something that always approves.
    let r = refused(json!([{"op": "replace", "path": "/nodes/2", "value":
        {"id": "review", "type": "transform", "needs": ["check"], "config": {"output": {"decision": "approve"}}}}]));
    assert_eq!(
        r,
        ["node `review` is an approval an order node needs; a patch may not change or remove it"]
    );
    // Other nodes upstream may change, and an order node may be removed.
    validate_patch(
        &trading,
        &ops(json!([{"op": "add", "path": "/nodes/1/config", "value": {"output": {"ok": true}}}])),
        &state(&[]),
    )
    .unwrap();
    let without = validate_patch(
        &trading,
        &ops(json!([{"op": "remove", "path": "/nodes/3"}])),
        &state(&[]),
    )
    .unwrap();
    assert_eq!(without.nodes.len(), 3);
}

fn from_json(value: Value) -> Definition {
    tradeloom_flow::from_json_value(&value).unwrap()
}
