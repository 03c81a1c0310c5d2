//! Size limits on definitions and patches (the defaults), bounds on durations and retries, and
//! agent tool names: each refused with an error naming the node, the field or limit, and the
//! value.

use serde_json::{Value, json};
use tradeloom_flow::{CompileError, RunState, compile, from_json_value, validate_patch};

use crate::{EXAMPLE, lines};

fn transform(id: &str, needs: &[String]) -> Value {
    json!({"id": id, "type": "transform", "needs": needs, "config": {"output": {"id": id}}})
}

/// `n0 ← n1 ← … ← n(len-1)`, each reading the output of the node it needs.
fn chain(len: usize) -> Value {
    let nodes: Vec<Value> = (0..len)
        .map(|i| {
            let needs = if i == 0 {
                vec![]
            } else {
                vec![format!("n{}", i - 1)]
            };
            let mut node = transform(&format!("n{i}"), &needs);
            if i > 0 {
                node["config"]["output"]["previous"] = json!(format!("{{{{ n{}.id }}}}", i - 1));
            }
            node
        })
        .collect();
    json!({"name": "chain", "nodes": nodes})
}

/// One root and `len - 1` nodes that each need it and read it.
fn fan_out(len: usize) -> Value {
    let mut nodes = vec![transform("root", &[])];
    for i in 1..len {
        let mut node = transform(&format!("n{i}"), &["root".to_string()]);
        node["config"]["output"]["root"] = json!("{{ root.id }}");
        nodes.push(node);
    }
    json!({"name": "fan-out", "nodes": nodes})
}

fn compile_value(value: &Value) -> Result<usize, Vec<CompileError>> {
    compile(&from_json_value(value).unwrap()).map(|c| c.ir.nodes().len())
}

fn errors(value: &Value) -> Vec<CompileError> {
    match compile_value(value) {
        Ok(n) => panic!("compiled ({n} nodes); expected errors"),
        Err(e) => e,
    }
}

/// Asserts that the only problem is one `limit` error whose message has every needle.
fn assert_limit(errors: &[CompileError], path: &str, needles: &[&str]) {
    assert_eq!(errors.len(), 1, "{}", lines(errors));
    let e = &errors[0];
    assert_eq!(
        (e.kind.code(), e.path.to_string().as_str()),
        ("limit", path),
        "{e}"
    );
    for needle in needles {
        assert!(e.message.contains(needle), "`{needle}` not in: {e}");
    }
}

#[test]
fn the_largest_chain_and_fan_out_allowed_compile() {
    // Defaults: 1,000 nodes, a longest chain of 200 nodes.
    assert_eq!(compile_value(&chain(200)), Ok(200));
    assert_eq!(compile_value(&fan_out(1_000)), Ok(1_000));
}

#[test]
fn ten_times_the_largest_allowed_is_refused_by_the_limits() {
    let e = errors(&fan_out(10_000));
    assert_limit(&e, "nodes", &["10000 nodes", "max_nodes", "1000"]);
    // The node limit is checked first: a 2,000-node chain is refused for its size alone.
    let e = errors(&chain(2_000));
    assert_limit(&e, "nodes", &["2000 nodes", "max_nodes"]);
}

#[test]
fn a_chain_one_node_deeper_than_allowed_is_refused_naming_its_end() {
    let e = errors(&chain(201));
    assert_limit(
        &e,
        "nodes[200].needs",
        &["n200", "201 nodes", "max_depth", "200"],
    );
}

#[test]
fn needs_per_node_are_bounded() {
    let mut v = fan_out(70);
    let needs: Vec<String> = (1..70).map(|i| format!("n{i}")).collect();
    v["nodes"]
        .as_array_mut()
        .unwrap()
        .push(transform("join", &needs));
    let e = errors(&v);
    assert_limit(
        &e,
        "nodes[70].needs",
        &["join", "69 needs", "max_needs", "64"],
    );
}

#[test]
fn templates_are_bounded() {
    let long = "x".repeat(40_000);
    let v = json!({"name": "t", "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"text": long}}},
        {"id": "b", "type": "hitl", "needs": ["a"], "config": {"prompt": long, "expires_after": "1h", "default": "reject"}},
        {"id": "c", "type": "transform", "needs": ["a"], "when": long},
    ]});
    let e = errors(&v);
    assert_eq!(e.len(), 3, "{}", lines(&e));
    for (e, path) in e.iter().zip([
        "nodes[0].config.output.text",
        "nodes[1].config.prompt",
        "nodes[2].when",
    ]) {
        assert_eq!(
            (e.kind.code(), e.path.to_string().as_str()),
            ("limit", path),
            "{e}"
        );
        assert!(
            e.message.contains("40000 bytes") && e.message.contains("max_template_bytes"),
            "{e}"
        );
    }
}

#[test]
fn the_definition_size_is_bounded() {
    // No single string is long, but the whole is 2 MB.
    let big: Vec<u32> = (0..300_000).collect();
    let v = json!({"name": "big", "nodes": [
        {"id": "a", "type": "transform", "config": {"output": big}},
    ]});
    let e = errors(&v);
    assert_eq!(e.len(), 1, "{}", lines(&e));
    assert_eq!(e[0].kind.code(), "limit", "{}", e[0]);
    assert!(
        e[0].message.contains("max_definition_bytes") && e[0].message.contains("bytes"),
        "{}",
        e[0]
    );
}

fn example() -> tradeloom_flow::Definition {
    tradeloom_flow::parse_definition(EXAMPLE, "wf.yaml").unwrap()
}

fn patch_reasons(patch: &Value) -> Vec<String> {
    let ops = tradeloom_flow::patch::patch_from_value(patch).unwrap();
    match validate_patch(&example(), &ops, &RunState::default()) {
        Ok(d) => panic!("patch accepted ({} nodes)", d.nodes.len()),
        Err(reasons) => reasons,
    }
}

fn add_wait(id: &str) -> Value {
    json!({"op": "add", "path": "/nodes/-", "value": {"id": id, "type": "wait", "needs": ["a"], "config": {"duration_ms": 5}}})
}

#[test]
fn patches_are_bounded_in_operations_and_bytes() {
    let many: Vec<Value> = (0..101).map(|i| add_wait(&format!("w{i}"))).collect();
    let r = patch_reasons(&Value::Array(many));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].contains("101 operations") && r[0].contains("max_patch_operations (100)"),
        "{r:?}"
    );
    // 10,000 nodes in one patch are refused without being applied.
    let huge: Vec<Value> = (0..10_000).map(|i| add_wait(&format!("w{i}"))).collect();
    let r = patch_reasons(&Value::Array(huge));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].contains("10000 operations"), "{r:?}");
    assert!(r[1].contains("max_patch_bytes"), "{r:?}");

    let text = "x".repeat(70_000);
    let one = json!([{"op": "add", "path": "/nodes/-", "value": {"id": "t", "type": "transform", "needs": ["a"], "config": {"output": {"text": text}}}}]);
    let r = patch_reasons(&one);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].contains("bytes") && r[0].contains("max_patch_bytes (65536)"),
        "{r:?}"
    );
    // Within the limits, the same kind of patch applies.
    let fine: Vec<Value> = (0..100).map(|i| add_wait(&format!("w{i}"))).collect();
    let ops = tradeloom_flow::patch::patch_from_value(&Value::Array(fine)).unwrap();
    let patched = validate_patch(&example(), &ops, &RunState::default()).unwrap();
    assert_eq!(patched.nodes.len(), 107);
}

/// Compiles a one-node workflow and returns its errors as `path: message` lines.
fn node_errors(node: Value) -> Vec<String> {
    let v = json!({"name": "t", "nodes": [node]});
    errors(&v)
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

#[test]
fn every_duration_is_bounded() {
    let r = node_errors(
        json!({"id": "pause", "type": "wait", "config": {"duration_ms": 18446744073709551615u64}}),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].config.duration_ms: node `pause`: 18446744073709551615 ms is more than the maximum of 31622400000 ms (366 days)"),
        "{r:?}"
    );
    let r = node_errors(
        json!({"id": "ask", "type": "hitl", "config": {"prompt": "?", "expires_after": "367d", "default": "reject"}}),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].config.expires_after: node `ask`: 367d")
            && r[0].contains("366 days"),
        "{r:?}"
    );
    let r = node_errors(json!({"id": "slow", "type": "transform", "timeout_ms": 86_400_001u64}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].timeout_ms: node `slow`: 86400001 ms")
            && r[0].contains("(24 hours)"),
        "{r:?}"
    );
    let r = node_errors(json!({"id": "call", "type": "transform",
        "retries": {"max_attempts": 3, "backoff_ms": 3_600_001u64, "max_backoff_ms": 18446744073709551615u64}}));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].retries.backoff_ms: node `call`: 3600001 ms")
            && r[0].contains("(1 hour)"),
        "{r:?}"
    );
    assert!(
        r[1].starts_with("nodes[0].retries.max_backoff_ms: node `call`: 18446744073709551615 ms"),
        "{r:?}"
    );
    // At the maxima, everything compiles.
    let v = json!({"name": "t", "nodes": [
        {"id": "pause", "type": "wait", "config": {"duration_ms": 31_622_400_000u64}, "timeout_ms": 86_400_000u64},
        {"id": "ask", "type": "hitl", "config": {"prompt": "?", "expires_after": "366d", "default": "reject"},
         "retries": {"max_attempts": 20, "backoff_ms": 3_600_000u64, "max_backoff_ms": 3_600_000u64}},
    ]});
    assert_eq!(compile_value(&v), Ok(2));
}

#[test]
fn retries_are_bounded_in_attempts_and_back_off() {
    let r = node_errors(json!({"id": "call", "type": "http",
        "config": {"method": "GET", "url": "https://example.com"},
        "retries": {"max_attempts": 1_000_000, "backoff_ms": 0}}));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r[0].starts_with(
            "nodes[0].retries.backoff_ms: node `call`: 0 ms is less than the minimum of 100 ms"
        ),
        "{r:?}"
    );
    assert!(
        r[1].starts_with("nodes[0].retries.max_attempts: node `call`: 1000000 attempts is more than the maximum of 20"),
        "{r:?}"
    );
    let r = node_errors(json!({"id": "call", "type": "transform",
        "retries": {"max_attempts": 3, "max_backoff_ms": 50}}));
    assert!(
        r.iter().any(|l| l.starts_with(
            "nodes[0].retries.max_backoff_ms: node `call`: 50 ms is less than the minimum of 100 ms"
        )),
        "{r:?}"
    );
}

#[test]
fn market_tools_need_a_market_and_typos_get_a_suggestion() {
    let model = json!({"base_url": "http://127.0.0.1:8080/v1", "model": "m"});
    let r = node_errors(json!({"id": "analyst", "type": "agent", "config": {
        "model": model, "prompt": "go", "tools": ["get_bar"]}}));
    assert_eq!(
        r,
        [
            "nodes[0].config.tools[0]: node `analyst`: unknown tool `get_bar` (did you mean `get_bars`?); workflow agents have: calc, get_bars, get_portfolio, get_price, patch_workflow, search_news, and registered skills as `skill:NAME`"
        ]
    );
    let r = node_errors(json!({"id": "analyst", "type": "agent", "config": {
        "model": model, "prompt": "go", "tools": ["calc", "get_bars"]}}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].config.market: node `analyst`: tool `get_bars` reads the market; give `market`"),
        "{r:?}"
    );
    // calc alone needs no market; a market with its tools compiles.
    let compiles = |node: Value| compile_value(&json!({"name": "t", "nodes": [node]})).is_ok();
    assert!(compiles(json!({"id": "a", "type": "agent", "config": {
        "model": model, "prompt": "go", "tools": ["calc"]}})));
    assert!(compiles(json!({"id": "a", "type": "agent", "config": {
        "model": model, "prompt": "go", "tools": ["get_bars", "search_news", "get_price", "get_portfolio"],
        "market": {"universe": "u", "as_of": "2025-01-02"}}})));
    let r = node_errors(json!({"id": "a", "type": "agent", "config": {
        "model": model, "prompt": "go", "tools": ["get_bars"],
        "market": {"universe": " ", "as_of": "2025-01-02", "initial_cash": 0, "currency": "XX", "fee_bps": 10000, "reference_price": "noon"}}}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].config.market.reference_price: unknown variant `noon`"),
        "{r:?}"
    );
    let r = node_errors(json!({"id": "a", "type": "agent", "config": {
        "model": model, "prompt": "go", "tools": ["get_bars"],
        "market": {"universe": " ", "as_of": "2025-01-02", "initial_cash": 0, "currency": "usd"}}}));
    let mut fields: Vec<&str> = r.iter().map(|l| l.split(':').next().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "nodes[0].config.market.currency",
            "nodes[0].config.market.initial_cash",
            "nodes[0].config.market.universe",
        ],
        "{r:?}"
    );
}

#[test]
fn order_nodes_need_a_market_and_a_proposal() {
    let r = node_errors(json!({"id": "buy", "type": "order", "config": {"proposal": {}}}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].config.market: an order node needs `market`"),
        "{r:?}"
    );
    // A paper run instead of a market; waiting for a fill only with one; at most 10 minutes.
    let r = node_errors(json!({"id": "buy", "type": "order", "config": {
        "paper_run": "run-1", "wait_fill_ms": 600001,
        "proposal": {"symbol": "AAA", "side": "buy", "quantity": 1}}}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("nodes[0].config.wait_fill_ms: 600001 is more than the maximum of 600000"),
        "{r:?}"
    );
    let r = node_errors(json!({"id": "buy", "type": "order", "config": {
        "market": {"universe": "u", "as_of": "2025-01-02"}, "wait_fill_ms": 5,
        "proposal": {"symbol": "AAA", "side": "buy", "quantity": 1}}}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].contains("only an order sent to a paper run"), "{r:?}");
    let v = json!({"name": "t", "inputs": {"paper": {}}, "nodes": [
        {"id": "buy", "type": "order", "config": {
            "paper_run": "{{ inputs.paper }}", "wait_fill_ms": 0,
            "proposal": {"symbol": "AAA", "side": "buy", "quantity": 1}}}]});
    assert!(compile_value(&v).is_ok());
    let r = node_errors(json!({"id": "buy", "type": "order", "config": {
        "market": {"universe": "u", "as_of": "{{ inputs.as_of }}"},
        "proposal": {"symbol": "AAA", "side": "buy", "quantity": 1}}}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("nodes[0].config.market.as_of"), "{r:?}");
    assert!(r[0].contains("as_of"), "{r:?}");
    let v = json!({"name": "t", "inputs": {"as_of": {}}, "nodes": [
        {"id": "buy", "type": "order", "config": {
            "market": {"universe": "u", "as_of": "{{ inputs.as_of }}"},
            "proposal": {"symbol": "AAA", "side": "buy", "quantity": 1}}}]});
    assert!(compile_value(&v).is_ok());
}

#[test]
fn agent_tools_must_exist() {
    let r = node_errors(json!({"id": "think", "type": "agent", "config": {
        "model": {"base_url": "http://127.0.0.1:8080/v1", "model": "m"},
        "prompt": "go", "tools": ["calc", "shell"]}}));
    assert_eq!(
        r,
        [
            "nodes[0].config.tools[1]: node `think`: unknown tool `shell`; workflow agents have: calc, get_bars, get_portfolio, get_price, patch_workflow, search_news, and registered skills as `skill:NAME`"
        ]
    );
    let r = node_errors(json!({"id": "think", "type": "agent", "config": {
        "model": {"base_url": "http://127.0.0.1:8080/v1", "model": "m"},
        "prompt": "go", "max_steps": 1000}}));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with(
            "nodes[0].config.max_steps: node `think`: 1000 steps is more than the maximum of 100"
        ),
        "{r:?}"
    );
}
