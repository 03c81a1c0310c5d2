//! The pure rules a coordinator applies, driven the way a coordinator would.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tradeloom_flow::ir::NodeKind;
use tradeloom_flow::{Context, Ir, RunInfo};

use crate::{EXAMPLE, compiled};

/// Runs a workflow with fake executors: transforms render their output, hitl nodes return
/// `decision` (none when it is empty), everything else returns `{}`. Returns the completed and skipped ids in the order
/// they settled.
fn drive(ir: &Ir, decision: &str) -> (Vec<String>, Vec<String>) {
    let run = RunInfo {
        id: "run-1".into(),
        workflow: ir.name().into(),
        hash: ir.hash(),
        started_at: "2026-11-23T06:00:00Z".into(),
    };
    let inputs = ir.resolve_inputs(&serde_json::Map::new()).unwrap();
    let mut ctx = Context::new(&run, inputs);
    let mut completed = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    let (mut done, mut skip) = (Vec::new(), Vec::new());
    loop {
        let to_skip: Vec<String> = ir
            .nodes_to_skip(&completed, &skipped)
            .iter()
            .map(|n| n.id().to_string())
            .collect();
        for id in to_skip {
            skip.push(id.clone());
            skipped.insert(id);
        }
        let ready: Vec<_> = ir.ready_nodes(&completed, &skipped);
        if ready.is_empty() {
            break;
        }
        let mut settled = Vec::new();
        for node in ready {
            if !node.should_run(ctx.as_value()) || node.kind().is_unknown() {
                settled.push((node.id().to_string(), None));
                continue;
            }
            let output = match node.kind() {
                NodeKind::Transform(t) => t.output.render(ctx.as_value()).unwrap(),
                NodeKind::Hitl(_) if decision.is_empty() => json!({}),
                NodeKind::Hitl(_) => json!({"decision": decision}),
                _ => json!({}),
            };
            settled.push((node.id().to_string(), Some(output)));
        }
        for (id, output) in settled {
            match output {
                Some(output) => {
                    ctx.set_output(&id, output);
                    done.push(id.clone());
                    completed.insert(id);
                }
                None => {
                    skip.push(id.clone());
                    skipped.insert(id);
                }
            }
        }
    }
    assert_eq!(
        completed.len() + skipped.len(),
        ir.nodes().len(),
        "every node settles"
    );
    (done, skip)
}

#[test]
fn approval_runs_go_and_notify_and_skips_stop() {
    let ir = compiled(EXAMPLE).ir;
    let (done, skipped) = drive(&ir, "approve");
    assert_eq!(done, ["a", "b", "c", "review", "go", "notify"]);
    assert_eq!(skipped, ["stop"]);
}

#[test]
fn rejection_skips_go_and_propagates_to_notify() {
    let ir = compiled(EXAMPLE).ir;
    let (done, skipped) = drive(&ir, "reject");
    assert_eq!(done, ["a", "b", "c", "review", "stop"]);
    assert_eq!(skipped, ["go", "notify"]);
}

#[test]
fn a_missing_decision_takes_neither_branch() {
    let ir = compiled(EXAMPLE).ir;
    let (done, skipped) = drive(&ir, "");
    assert_eq!(done, ["a", "b", "c", "review"]);
    assert_eq!(skipped, ["go", "stop", "notify"]);
}

#[test]
fn skips_propagate_through_chains_but_not_past_a_completed_need() {
    let text = "name: chain
nodes:
  - {id: root, type: transform}
  - {id: off, type: transform, needs: [root], when: 'root.flag'}
  - {id: x, type: transform, needs: [off]}
  - {id: y, type: transform, needs: [x]}
  - {id: join, type: transform, needs: [y, root]}
";
    let ir = compiled(text).ir;
    let completed: BTreeSet<String> = ["root".to_string()].into();
    let skipped: BTreeSet<String> = ["off".to_string()].into();
    let to_skip: Vec<&str> = ir
        .nodes_to_skip(&completed, &skipped)
        .iter()
        .map(|n| n.id())
        .collect();
    assert_eq!(to_skip, ["x", "y"]);
    // `join` needs a completed node, so once `y` is skipped it is ready, not skipped.
    let skipped: BTreeSet<String> = ["off", "x", "y"].map(String::from).into();
    let ready: Vec<&str> = ir
        .ready_nodes(&completed, &skipped)
        .iter()
        .map(|n| n.id())
        .collect();
    assert_eq!(ready, ["join"]);
    assert!(ir.nodes_to_skip(&completed, &skipped).is_empty());
}

#[test]
fn ready_nodes_accept_hash_sets_of_str() {
    let ir = compiled(EXAMPLE).ir;
    let completed: std::collections::HashSet<&str> = ["a"].into();
    let skipped = std::collections::HashSet::new();
    let ready: Vec<&str> = ir
        .ready_nodes(&completed, &skipped)
        .iter()
        .map(|n| n.id())
        .collect();
    assert_eq!(ready, ["b", "c"]);
}

#[test]
fn templates_render_against_the_run_context() {
    let text = r#"name: render
inputs: {symbol: {default: GOOG}}
nodes:
  - {id: a, type: transform, config: {output: {x: 1, items: [{name: first}]}}}
  - id: b
    type: transform
    needs: [a]
    inputs: {label: "{{ inputs.symbol }}-{{ run.id }}"}
    config: {output: {raw: "{{ a.x }}", text: "x={{ a.x }}", name: "{{ a.items[0].name }}", missing: "{{ a.items[1].name }}"}}
"#;
    let ir = compiled(text).ir;
    let run = RunInfo {
        id: "r9".into(),
        workflow: "render".into(),
        hash: ir.hash(),
        started_at: "2026-11-23T06:00:00Z".into(),
    };
    let mut ctx = Context::new(&run, ir.resolve_inputs(&serde_json::Map::new()).unwrap());
    ctx.set_output("a", json!({"x": 1, "items": [{"name": "first"}]}));
    let b = ir.node("b").unwrap();
    assert_eq!(
        Value::Object(b.render_inputs(ctx.as_value()).unwrap()),
        json!({"label": "GOOG-r9"})
    );
    let NodeKind::Transform(t) = b.kind() else {
        panic!("b is a transform")
    };
    let e = t.output.render(ctx.as_value()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "{{ a.items[1].name }}: `a.items` has 1 element(s); index 1 is out of range"
    );
    ctx.set_output(
        "a",
        json!({"x": 1, "items": [{"name": "first"}, {"name": "second"}]}),
    );
    assert_eq!(
        t.output.render(ctx.as_value()).unwrap(),
        json!({"raw": 1, "text": "x=1", "name": "first", "missing": "second"})
    );
}
