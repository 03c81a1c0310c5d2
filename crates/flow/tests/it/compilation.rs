use tradeloom_flow::ir::NodeKind;
use tradeloom_flow::{CompileErrorKind as Kind, FlowError, compile_text};

use crate::{EXAMPLE, compiled, errors_of, lines};

fn ids(c: &tradeloom_flow::Compiled) -> Vec<&str> {
    c.ir.nodes().iter().map(|n| n.id()).collect()
}

#[test]
fn the_contract_example_compiles() {
    let c = compiled(EXAMPLE);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(ids(&c), ["a", "b", "c", "review", "go", "notify", "stop"]);
    let review = c.ir.node("review").unwrap();
    assert_eq!(review.needs(), [1, 2]);
    let NodeKind::Hitl(hitl) = review.kind() else {
        panic!("review is a hitl node")
    };
    assert_eq!(hitl.expires_after_ms, 3_600_000);
    let NodeKind::Wait(wait) = c.ir.node("b").unwrap().kind() else {
        panic!("b is a wait node")
    };
    assert_eq!(wait.duration_ms, 200);
    assert_eq!(
        c.ir.node("go").unwrap().when().unwrap().to_string(),
        r#"review.decision == "approve""#
    );
    assert_eq!(c.ir.node("notify").unwrap().retry().max_attempts, 1);
    // Every node comes after the nodes it needs.
    for node in c.ir.nodes() {
        assert!(
            node.needs().iter().all(|&k| k < node.index()),
            "{}",
            node.id()
        );
    }
}

#[test]
fn diamond_order_is_topological_with_ids_breaking_ties() {
    let text = "name: diamond
nodes:
  - {id: bottom, type: transform, needs: [right, left]}
  - {id: right, type: transform, needs: [top]}
  - {id: left, type: transform, needs: [top]}
  - {id: top, type: transform}
";
    let c = compiled(text);
    assert_eq!(ids(&c), ["top", "left", "right", "bottom"]);
    assert_eq!(c.ir.node("bottom").unwrap().needs(), [1, 2]);
    assert_eq!(c.ir.node("left").unwrap().needs(), [0]);
    assert_eq!(c.ir.node("bottom").unwrap().definition_index(), 0);
}

const BROKEN: &str = r#"name: broken
inputs: {symbol: {}}
schedule: {cron: "0 25 * * *"}
nodes:
  - {id: a, type: transform, config: {output: {x: 1}}}
  - {id: a, type: wait, config: {duration_ms: 0}}
  - {id: c, type: transform, needs: [a, zz], config: {output: {y: "abc {{ a.x"}}}
  - {id: Bad Id, type: transform}
  - {id: d, type: transform, needs: [a], config: {output: "{{ c.y }} {{ inputs.nope }}"}}
  - {id: e, type: hitl, needs: [a], config: {prompt: "ok?", expires_after: 1 hour, default: reject}}
  - {id: f, type: http, needs: [a], config: {method: FETCH, url: "https://x"}}
  - {id: g, type: transform, needs: [a], when: 'a.x = 1'}
  - {id: h, type: transform, needs: [a], when: 'false'}
  - {id: i, type: transform, needs: [h]}
  - {id: j, type: http, needs: [a], config: {method: GET, url: "ftp://x/{{ a.x }}"}}
  - {id: k, type: agent, needs: [a], config: {model: {base_url: "127.0.0.1:8080", model: m, api_key_env: sk-123}, prompt: "{{ inputs.symbol }}", max_steps: 0}}
  - {id: l, type: transform, needs: [a], config: {output: "{{ l.x }} {{ run.nope }} {{ zz.x }}"}, retries: {max_attempts: 0}, timeout_ms: 0}
  - {id: m, type: transform, needs: [a, a]}
"#;

/// `(kind, path, line)` of every error.
fn summary(errors: &[tradeloom_flow::CompileError]) -> Vec<(Kind, String, usize)> {
    errors
        .iter()
        .map(|e| {
            let line = e.location.as_ref().map_or(0, |l| l.line);
            (e.kind, e.path.to_string(), line)
        })
        .collect()
}

#[test]
fn every_problem_is_reported_with_its_path_and_line() {
    let errors = errors_of(BROKEN);
    let got = summary(&errors);
    let expected: Vec<(Kind, &str, usize)> = vec![
        (Kind::Schedule, "schedule.cron", 3),
        (Kind::DuplicateId, "nodes[1].id", 6),
        (Kind::Config, "nodes[1].config.duration_ms", 6),
        (Kind::UnknownNeed, "nodes[2].needs[1]", 7),
        (Kind::Template, "nodes[2].config.output.y", 7),
        (Kind::InvalidName, "nodes[3].id", 8),
        (Kind::UnknownReference, "nodes[4].config.output", 9),
        (Kind::UndeclaredInput, "nodes[4].config.output", 9),
        (Kind::Duration, "nodes[5].config.expires_after", 10),
        (Kind::Config, "nodes[6].config.method", 11),
        (Kind::Predicate, "nodes[7].when", 12),
        (Kind::Unreachable, "nodes[8].when", 13),
        (Kind::Unreachable, "nodes[9].needs", 14),
        (Kind::Config, "nodes[10].config.url", 15),
        (Kind::Config, "nodes[11].config.model.base_url", 16),
        (Kind::Config, "nodes[11].config.model.api_key_env", 16),
        (Kind::Config, "nodes[11].config.max_steps", 16),
        (Kind::UnknownReference, "nodes[12].config.output", 17),
        (Kind::UndeclaredInput, "nodes[12].config.output", 17),
        (Kind::UnknownReference, "nodes[12].config.output", 17),
        (Kind::Config, "nodes[12].retries.max_attempts", 17),
        (Kind::Config, "nodes[12].timeout_ms", 17),
        (Kind::UnknownNeed, "nodes[13].needs[1]", 18),
    ];
    let expected: Vec<(Kind, String, usize)> = expected
        .into_iter()
        .map(|(k, p, l)| (k, p.to_string(), l))
        .collect();
    assert_eq!(got, expected, "\n{}", lines(&errors));

    let text = lines(&errors);
    for needle in [
        "wf.yaml:3:18: schedule.cron: cron field hour `25`: 25 is out of range 0-23",
        "nodes[1].id: duplicate node id `a` (first used by nodes[0])",
        "nodes[3].id: node id `Bad Id` may only contain a-z, 0-9, `_` and `-` (try `bad_id`)",
        "nodes[2].needs[1]: unknown node `zz`",
        "nodes[2].config.output.y: unclosed {{ at column 5",
        "nodes[4].config.output: `c.y` reads node `c`, which is not among the needs of `d`",
        "`inputs.nope` reads input `nope`, which is not declared",
        "nodes[5].config.expires_after: invalid duration `1 hour`",
        "nodes[6].config.method: unknown variant `FETCH`, expected one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`",
        "nodes[7].when: unexpected `=`; write `==` to compare at column 5",
        "nodes[10].config.url: `ftp://x/{{ a.x }}` must start with http:// or https://",
        "nodes[11].config.model.base_url: `127.0.0.1:8080` must start with http:// or https://",
        "nodes[12].config.output: `l.x` reads the output of `l` itself",
        "`run.nope` reads an unknown run field; `run` has id, workflow, hash, started_at",
        "`zz.x` reads unknown node `zz`",
        "nodes[13].needs[1]: `a` is listed twice",
        "nodes[8].when: node `h` can never run: its `when` is always false",
        "nodes[9].needs: node `i` can never run: none of the nodes it needs can run (`h`)",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
}

#[test]
fn errors_in_json_text_have_lines_too_and_values_have_paths_only() {
    let text = r#"{
  "name": "j",
  "nodes": [
    {"id": "a", "type": "wait", "config": {"duration_ms": 0}}
  ]
}"#;
    let Err(FlowError::Compile(errors)) = compile_text(text, "wf.json") else {
        panic!("expected compile errors")
    };
    assert_eq!(
        errors[0].to_string(),
        "wf.json:4:59: nodes[0].config.duration_ms: must be more than zero"
    );
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let definition = tradeloom_flow::from_json_value(&value).unwrap();
    let errors = tradeloom_flow::compile(&definition).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "nodes[0].config.duration_ms: must be more than zero"
    );
}

#[test]
fn a_cycle_is_named() {
    let text = "name: loop
nodes:
  - {id: a, type: transform, needs: [c]}
  - {id: b, type: transform, needs: [a]}
  - {id: c, type: transform, needs: [b]}
  - {id: d, type: transform, needs: [d]}
  - {id: e, type: transform, needs: [a]}
";
    let errors = errors_of(text);
    let text = lines(&errors);
    assert_eq!(
        text,
        "wf.yaml:3:37: nodes[0].needs: dependency cycle: a → c → b → a (each node needs the next)\n\
         wf.yaml:6:37: nodes[3].needs: dependency cycle: d → d (each node needs the next)"
    );
    assert!(errors.iter().all(|e| e.kind == Kind::Cycle));
}

#[test]
fn agent_nodes_are_checked_and_limited() {
    let agent = |id: &str| {
        format!(
            "  - {{id: {id}, type: agent, config: {{model: {{base_url: \"http://127.0.0.1:8080/v1\", model: m}}, prompt: \"think about {{{{ inputs.symbol }}}}\", tools: [calc]}}}}\n"
        )
    };
    let mut text =
        "name: agents\ninputs: {symbol: {default: GOOG}}\nlimits: {max_agent_nodes: 2}\nnodes:\n"
            .to_string();
    for id in ["x", "y"] {
        text.push_str(&agent(id));
    }
    let c = compiled(&text);
    assert_eq!(c.ir.agent_node_count(), 2);
    let NodeKind::Agent(x) = c.ir.node("x").unwrap().kind() else {
        panic!("x is an agent")
    };
    assert_eq!(x.max_steps, 10);
    assert_eq!(x.tools, ["calc"]);

    text.push_str(&agent("z"));
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{}", lines(&errors));
    assert_eq!(errors[0].kind, Kind::AgentLimit);
    assert_eq!(
        errors[0].to_string(),
        "wf.yaml:7:5: nodes[2]: 3 agent nodes, but limits.max_agent_nodes is 2; node `z` is one too many"
    );
}

#[test]
fn max_concurrent_runs_is_kept_and_must_admit_a_run() {
    let text =
        "name: limited\nlimits: {max_concurrent_runs: 2}\nnodes:\n  - {id: a, type: transform}\n";
    let c = compiled(text);
    assert_eq!(c.ir.limits().max_concurrent_runs, Some(2));
    assert_eq!(
        compiled("name: free\nnodes:\n  - {id: a, type: transform}\n")
            .ir
            .limits()
            .max_concurrent_runs,
        None
    );
    let errors = errors_of(
        "name: stuck\nlimits: {max_concurrent_runs: 0}\nnodes:\n  - {id: a, type: transform}\n",
    );
    assert_eq!(errors.len(), 1, "{}", lines(&errors));
    assert_eq!(errors[0].kind, Kind::Limit);
    let message = errors[0].to_string();
    assert!(
        message.starts_with("wf.yaml:2:") && message.contains("limits.max_concurrent_runs is 0"),
        "{message}"
    );
    let negative = tradeloom_flow::parse_definition(
        "name: neg\nlimits: {max_concurrent_runs: -1}\nnodes:\n  - {id: a, type: transform}\n",
        "wf.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(negative.contains("max_concurrent_runs"), "{negative}");
}

#[test]
fn config_shapes_per_type() {
    let node = |config: &str| format!("name: t\nnodes:\n  - {{id: n, {config}}}\n");
    let error = |config: &str| lines(&errors_of(&node(config)));
    assert!(
        error("type: http, config: {method: GET}").contains("nodes[0].config: missing field `url`")
    );
    assert!(
        error("type: http, config: {method: GET, url: \"https://x\", verb: 1}")
            .contains("nodes[0].config.verb: unknown field `verb`")
    );
    assert!(
        error("type: hitl, config: {prompt: p, expires_after: 1h, default: maybe}").contains(
            "nodes[0].config.default: unknown variant `maybe`, expected `approve` or `reject`"
        )
    );
    assert!(
        error("type: simulate, config: {config_path: a.yaml, config: {}}")
            .contains("give `config_path` or `config`, not both")
    );
    assert!(error("type: simulate").contains("needs `config_path` (a file) or `config` (inline)"));
    assert!(error("type: backtest, config: {}").contains("missing field `spec_path`"));
    assert!(error("type: paper, config: {}").contains("missing field `spec_path`"));
    assert!(error("type: paper, config: {spec_path: \" \"}").contains("must not be empty"));
    assert!(
        error("type: paper, config: {spec_path: a.yaml, speed: 2}")
            .contains("unknown field `speed`")
    );
    assert!(error("type: wait").contains("missing field `duration_ms`"));
    // A registered agent instead of `model`; skills as tools.
    let agent = "type: agent, config: {prompt: p, ";
    assert!(
        error(&format!("{agent}agent: analyst, model: {{base_url: \"http://x\", model: m}}}}"))
            .contains("nodes[0].config.agent: give `model` (an endpoint) or `agent` (a registered agent), not both")
    );
    assert!(error(&format!("{agent}tools: []}}")).contains("nodes[0].config: needs `model`"));
    assert!(
        error(&format!("{agent}agent: \"Analyst@0\"}}"))
            .contains("nodes[0].config.agent: `Analyst@0`")
    );
    assert!(
        error(&format!(
            "{agent}agent: a@2, tools: [\"skill:Bad\", \"skill:ok@1\", \"skill:ok@1\"]}}"
        ))
        .contains("nodes[0].config.tools[0]: `Bad`")
    );
    assert!(
        error(&format!(
            "{agent}agent: a@2, tools: [\"skill:ok@1\", \"skill:ok@1\"]}}"
        ))
        .contains("nodes[0].config.tools[1]: `skill:ok@1` is listed twice")
    );
    let ok = compiled(&node(&format!(
        "{agent}agent: a, tools: [calc, \"skill:momentum\"]}}"
    )));
    let NodeKind::Agent(a) = ok.ir.node("n").unwrap().kind() else {
        panic!("n is an agent")
    };
    assert_eq!((a.agent.as_deref(), a.model.is_none()), (Some("a"), true));
    assert!(
        error(
            "type: http, config: {method: GET, url: \"https://x\", headers: {\"bad header\": v}}"
        )
        .contains("`bad header` is not a valid header name")
    );
    assert!(
        error("type: transform, retries: {backoff_ms: 500, max_backoff_ms: 100}")
            .contains("nodes[0].retries.max_backoff_ms: 100 is below backoff_ms (500)")
    );
    for ok in [
        "type: simulate, config: {config_path: \"sims/{{ run.id }}.yaml\"}",
        "type: simulate, config: {config: {days: 5}}",
        "type: backtest, config: {spec_path: specs/goog.yaml}",
        "type: paper, config: {spec_path: \"specs/{{ run.id }}.yaml\"}",
        "type: http, config: {method: DELETE, url: \"{{ run.id }}\"}",
        "type: http, config: {method: PUT, url: \"https://x/{{ run.id }}\", headers: {X-Run: \"{{ run.id }}\"}, body: {a: [\"{{ run.hash }}\"]}}",
        "type: transform, retries: {max_attempts: 3, backoff_ms: 100, backoff_multiplier: 1.5, max_backoff_ms: 200}, timeout_ms: 5",
    ] {
        compiled(&node(ok));
    }
}

#[test]
fn unknown_types_compile_with_warnings() {
    let text = "name: future
nodes:
  - {id: a, type: transform}
  - {id: t, type: teleport, needs: [a], config: {to: mars}}
  - {id: after, type: transform, needs: [t]}
";
    let c = compiled(text);
    assert_eq!(
        c.warnings,
        [
            "wf.yaml:4:19: nodes[1].type: unknown node type `teleport` (known: agent, http, hitl, simulate, backtest, paper, order, script, transform, wait); the runtime will skip node `t`",
            "wf.yaml:5:41: nodes[2].needs: node `after` will always be skipped: every node it needs (`t`) is skipped",
        ]
    );
    let NodeKind::Unknown { type_name, config } = c.ir.node("t").unwrap().kind() else {
        panic!("t is unknown")
    };
    assert_eq!(type_name, "teleport");
    assert_eq!(config["to"], "mars");
}

#[test]
fn inputs_semantics() {
    let text = "name: in
inputs: {symbol: {}, qty: {default: 10}}
nodes:
  - {id: a, type: transform, config: {output: {s: \"{{ inputs.symbol }}\", q: \"{{ inputs.qty }}\", all: \"{{ inputs }}\"}}, inputs: {who: \"{{ run.id }}\"}}
";
    let c = compiled(text);
    let given = serde_json::json!({"symbol": "GOOG"});
    let resolved = c.ir.resolve_inputs(given.as_object().unwrap()).unwrap();
    assert_eq!(
        serde_json::Value::Object(resolved),
        serde_json::json!({"symbol": "GOOG", "qty": 10})
    );
    let problems =
        c.ir.resolve_inputs(serde_json::json!({"sym": 1}).as_object().unwrap())
            .unwrap_err();
    assert_eq!(
        problems,
        [
            "input `symbol` is required (it has no default)",
            "unknown input `sym`; declared: qty, symbol"
        ]
    );
}

#[test]
fn secret_headers_are_references_never_values() {
    let node = |headers: &str| {
        format!(
            "name: t\nnodes:\n  - {{id: post, type: http, config: {{method: POST, url: \"https://x\", headers: {headers}}}}}\n"
        )
    };
    // A literal (or templated) value under a sensitive name is refused, naming node and header,
    // and never echoing the value.
    for (header, value) in [
        ("Authorization", "Bearer xyz-secret-1"),
        ("proxy-authorization", "Basic xyz-secret-1"),
        ("Cookie", "session=xyz-secret-1"),
        ("X-Api-Key", "xyz-secret-1"),
        ("X-Auth-Token", "xyz-secret-1"),
        ("X-Client-Secret", "{{ run.id }}xyz-secret-1"),
    ] {
        let errors = lines(&errors_of(&node(&format!("{{{header}: \"{value}\"}}"))));
        assert!(
            errors.contains(&format!("nodes[0].config.headers.{header}"))
                && errors.contains("node `post`")
                && errors.contains("{env: NAME"),
            "{header}: {errors}"
        );
        assert!(!errors.contains("xyz-secret-1"), "{errors}");
    }
    // A reference to an environment variable compiles; so do ordinary headers.
    let c = compiled(&node(
        "{Authorization: {env: TRADELOOM_SECRET_HOOK, prefix: \"Bearer \"}, X-Api-Key: {env: TRADELOOM_SECRET_KEY}, X-Run: \"{{ run.id }}\"}",
    ));
    let NodeKind::Http(http) = c.ir.node("post").unwrap().kind() else {
        panic!("post is an http node")
    };
    assert_eq!(http.headers.len(), 3);
    // The IR, which viewers may read, holds the variable's name only.
    let ir = c.ir.canonical_json();
    assert!(
        ir.contains("TRADELOOM_SECRET_HOOK") && ir.contains("Bearer "),
        "{ir}"
    );
    // A bad reference is refused: not a variable name, unknown fields, a value not a string.
    for (bad, expected) in [
        (
            "{Authorization: {env: \"not a name\"}}",
            "not an environment variable name",
        ),
        (
            "{Authorization: {env: A, value: b}}",
            "headers.Authorization",
        ),
        ("{X-Run: {env: A, prefix: 1}}", "headers.X-Run"),
    ] {
        let errors = lines(&errors_of(&node(bad)));
        assert!(errors.contains(expected), "{bad}: {errors}");
    }
}

#[test]
fn hitl_notify_blocks_compile_and_bad_ones_name_the_field() {
    let hitl = |notify: &str| {
        format!(
            "name: t\nnodes:\n  - {{id: review, type: hitl, config: {{prompt: p, expires_after: 1h, default: reject, approvers: [alice, bob], notify: {notify}}}}}\n"
        )
    };
    let c = compiled(&hitl(
        "{webhook: {url: {env: TRADELOOM_SECRET_HOOK}, format: telegram, chat_id: -100123}, approver: bob, link_base: \"http://127.0.0.1:8080/\", link_expires_after: 30m, forwardable: true}",
    ));
    let NodeKind::Hitl(h) = c.ir.node("review").unwrap().kind() else {
        panic!("review is a hitl node")
    };
    let n = h.notify.as_ref().unwrap();
    assert_eq!(n.approver, "bob");
    assert_eq!(n.link_base.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(n.link_expires_after_ms, 1_800_000);
    assert!(n.forwardable);
    // Defaults: the approval's expiry, not forwardable, the server's public URL.
    let c = compiled(&hitl(
        "{webhook: {url: \"https://hooks.example.com/x\", format: slack}, approver: alice}",
    ));
    let NodeKind::Hitl(h) = c.ir.node("review").unwrap().kind() else {
        panic!("review is a hitl node")
    };
    let n = h.notify.as_ref().unwrap();
    assert_eq!(
        (
            n.link_expires_after_ms,
            n.forwardable,
            n.link_base.as_deref()
        ),
        (3_600_000, false, None)
    );

    let error = |notify: &str| lines(&errors_of(&hitl(notify)));
    let cases = [
        (
            "{webhook: {url: \"https://h.example/x\", format: slack}, approver: carol}",
            "nodes[0].config.notify.approver: node `review`: `carol` is not one of the node's approvers (alice, bob)",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: telegram}, approver: bob}",
            "nodes[0].config.notify.webhook.chat_id: node `review`: format `telegram` needs the chat",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: slack, chat_id: 5}, approver: bob}",
            "nodes[0].config.notify.webhook.chat_id: node `review`: `chat_id` is for format `telegram`",
        ),
        (
            "{webhook: {url: \"ftp://h.example/secret-token\", format: slack}, approver: bob}",
            "nodes[0].config.notify.webhook.url: node `review`: the webhook URL must be an http:// or https:// URL",
        ),
        (
            "{webhook: {url: {env: \"not a name\"}, format: slack}, approver: bob}",
            "nodes[0].config.notify.webhook.url.env: is not an environment variable name",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: teams}, approver: bob}",
            "nodes[0].config.notify.webhook.format: unknown variant `teams`, expected `slack` or `telegram`",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: slack}, approver: bob, link_expires_after: 2h}",
            "nodes[0].config.notify.link_expires_after: node `review`: 2h (7200000 ms) is longer than the approval's expires_after (3600000 ms)",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: slack}, approver: bob, link_expires_after: soon}",
            "nodes[0].config.notify.link_expires_after: invalid duration `soon`",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: slack}, approver: bob, link_base: \"tradeloom.example\"}",
            "nodes[0].config.notify.link_base: node `review`: `tradeloom.example` is not a base URL",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: slack}, approver: \" \"}",
            "nodes[0].config.notify.approver: must not be empty",
        ),
        (
            "{webhook: {url: \"https://h.example/x\", format: slack}, approver: bob, sign: true}",
            "nodes[0].config.notify.sign: unknown field `sign`",
        ),
    ];
    for (notify, expected) in cases {
        let e = error(notify);
        assert!(
            e.contains(expected),
            "{notify}\n  gave: {e}\n  expected: {expected}"
        );
    }
    // A webhook URL is never echoed: it may carry its credential in the path.
    assert!(
        !error("{webhook: {url: \"ftp://h.example/secret-token\", format: slack}, approver: bob}")
            .contains("secret-token")
    );
}

#[test]
fn script_nodes_are_checked_as_text_with_limits_in_range() {
    let c = compiled(
        "name: s\nnodes:\n  - {id: a, type: transform, config: {output: {x: 1}}}\n  \
         - {id: b, type: script, needs: [a], config: {script: skills/x.py, input: {v: \"{{ a.x }}\"}, limits: {memory_mb: 256}}}\n",
    );
    let NodeKind::Script(script) = c.ir.node("b").unwrap().kind() else {
        panic!("b is a script node")
    };
    assert_eq!(script.script, "skills/x.py");
    assert_eq!(script.function, "main");
    assert_eq!(script.limits.memory_mb, Some(256));
    for (config, expected) in [
        (
            "{script: ../x.py}",
            "nodes[0].config.script: `../x.py` may not contain `..`",
        ),
        (
            "{script: /etc/x.py}",
            "nodes[0].config.script: `/etc/x.py` is absolute",
        ),
        (
            "{script: skills/x.sh}",
            "nodes[0].config.script: `skills/x.sh` is not a Python file",
        ),
        (
            "{script: skills/x.py, function: 'do it'}",
            "nodes[0].config.function: `do it` is not a Python function name",
        ),
        (
            "{script: skills/x.py, limits: {memory_mb: 1}}",
            "nodes[0].config.limits.memory_mb: limits.memory_mb: 1 is outside 64–16384",
        ),
        (
            "{script: skills/x.py, limits: {memory: 1}}",
            "unknown field `memory`",
        ),
    ] {
        let text = format!("name: s\nnodes:\n  - {{id: a, type: script, config: {config}}}\n");
        let errors = errors_of(&text);
        let got = lines(&errors);
        assert!(got.contains(expected), "{config}: {got}");
        assert!(
            got.starts_with("wf.yaml:3:"),
            "{config}: names the line: {got}"
        );
    }
}
