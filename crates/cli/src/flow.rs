//! The workflow documents of this machine, before anything talks to an API: `tradeloom flow
//! validate` (parse and compile a definition without running it), run inputs from
//! `--input`/`--inputs-json`, and patch documents (`flow patch`).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::builder::RangedU64ValueParser;
use serde_json::{Map, Value, json};
use tradeloom_flow::{FlowError, FlowLimits, compile, compile_text_with, parse_definition};

use crate::table;

/// The size limits of workflow definitions and patches (`serve`, `flow validate`); each at
/// least 1, defaults those of [`FlowLimits::DEFAULT`].
#[derive(clap::Args, Debug, Clone)]
pub struct FlowLimitOptions {
    /// Most nodes in a workflow (patches included).
    #[arg(long, env = "TRADELOOM_MAX_WORKFLOW_NODES", value_name = "N",
          default_value_t = FlowLimits::DEFAULT.max_nodes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_workflow_nodes: usize,
    /// Most nodes on the longest chain of `needs`.
    #[arg(long, env = "TRADELOOM_MAX_WORKFLOW_DEPTH", value_name = "N",
          default_value_t = FlowLimits::DEFAULT.max_depth,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_workflow_depth: usize,
    /// Most entries in one node's `needs`.
    #[arg(long, env = "TRADELOOM_MAX_NODE_NEEDS", value_name = "N",
          default_value_t = FlowLimits::DEFAULT.max_needs,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_node_needs: usize,
    /// Most bytes in one template or `when` predicate.
    #[arg(long, env = "TRADELOOM_MAX_TEMPLATE_BYTES", value_name = "BYTES",
          default_value_t = FlowLimits::DEFAULT.max_template_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_template_bytes: usize,
    /// Most bytes in a definition, as compact JSON.
    #[arg(long, env = "TRADELOOM_MAX_WORKFLOW_BYTES", value_name = "BYTES",
          default_value_t = FlowLimits::DEFAULT.max_definition_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_workflow_bytes: usize,
    /// Most operations in one JSON patch of a run.
    #[arg(long, env = "TRADELOOM_MAX_PATCH_OPERATIONS", value_name = "N",
          default_value_t = FlowLimits::DEFAULT.max_patch_operations,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_patch_operations: usize,
    /// Most bytes in one JSON patch of a run, as compact JSON.
    #[arg(long, env = "TRADELOOM_MAX_PATCH_BYTES", value_name = "BYTES",
          default_value_t = FlowLimits::DEFAULT.max_patch_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_patch_bytes: usize,
}

impl FlowLimitOptions {
    pub fn limits(&self) -> FlowLimits {
        FlowLimits {
            max_nodes: self.max_workflow_nodes,
            max_depth: self.max_workflow_depth,
            max_needs: self.max_node_needs,
            max_template_bytes: self.max_template_bytes,
            max_definition_bytes: self.max_workflow_bytes,
            max_patch_operations: self.max_patch_operations,
            max_patch_bytes: self.max_patch_bytes,
        }
    }
}

/// Prints the compiled workflow (topological order, IR hash, warnings) or every problem.
/// Exit 0 when it compiles, 2 when it does not.
pub fn validate(file: &Path, json_out: bool, limits: &FlowLimitOptions) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the workflow {}", file.display()))?;
    let origin = file.display().to_string();
    match compile_text_with(&text, &origin, &limits.limits()) {
        Ok(compiled) => {
            let ir = &compiled.ir;
            if json_out {
                let nodes: Vec<_> = ir
                    .nodes()
                    .iter()
                    .map(|n| {
                        let needs: Vec<&str> =
                            n.needs().iter().map(|i| ir.nodes()[*i].id()).collect();
                        json!({"id": n.id(), "type": n.kind().type_name(), "needs": needs})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({
                        "valid": true, "name": ir.name(), "ir_hash": ir.hash(),
                        "nodes": nodes, "warnings": compiled.warnings, "errors": [],
                    })
                );
            } else {
                println!(
                    "{}: workflow `{}` compiles: {} nodes, IR sha256 {}",
                    origin,
                    ir.name(),
                    ir.nodes().len(),
                    ir.hash()
                );
                let rows: Vec<Vec<String>> = ir
                    .nodes()
                    .iter()
                    .map(|n| {
                        let needs: Vec<&str> =
                            n.needs().iter().map(|i| ir.nodes()[*i].id()).collect();
                        vec![
                            n.id().to_string(),
                            n.kind().type_name().to_string(),
                            needs.join(", "),
                            n.when().map(ToString::to_string).unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(&["node", "type", "needs", "when"], &rows)
                );
                for w in &compiled.warnings {
                    println!("warning: {w}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let errors: Vec<serde_json::Value> = match &e {
                FlowError::Compile(list) => list
                    .iter()
                    .map(|c| {
                        json!({
                            "code": c.kind.code(), "path": c.path.to_string(),
                            "line": c.location.as_ref().map(|l| l.line),
                            "column": c.location.as_ref().map(|l| l.column),
                            "message": c.message,
                        })
                    })
                    .collect(),
                other => vec![json!({"code": "parse", "message": other.to_string()})],
            };
            if json_out {
                println!("{}", json!({"valid": false, "errors": errors}));
            } else {
                eprintln!("{e}");
                eprintln!("{}: {} problem(s); nothing was run", origin, errors.len());
            }
            Ok(ExitCode::from(2))
        }
    }
}

/// A definition to submit, compiled here first so that one that does not compile is never sent.
pub struct Submission {
    pub name: String,
    /// The definition as JSON (the body of `POST /workflows`).
    pub definition: Value,
    /// The IR hash this tradeloom compiles (the server's should match).
    pub ir_hash: String,
}

/// Reads and compiles the definition `file`; `None` when it does not compile (every problem
/// printed, and that nothing was submitted).
pub fn prepare_submission(file: &Path) -> Result<Option<Submission>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the workflow {}", file.display()))?;
    let origin = file.display().to_string();
    let compiled = parse_definition(&text, &origin)
        .and_then(|d| compile(&d).map(|c| (d, c)).map_err(FlowError::Compile));
    match compiled {
        Ok((definition, compiled)) => Ok(Some(Submission {
            name: definition.name.clone(),
            definition: definition.to_json_value(),
            ir_hash: compiled.ir.hash().to_string(),
        })),
        Err(e) => {
            let count = match &e {
                FlowError::Compile(list) => list.len(),
                _ => 1,
            };
            eprintln!("{e}");
            eprintln!("{origin}: {count} problem(s); nothing was submitted");
            Ok(None)
        }
    }
}

/// Reads `--inputs-json` and `--input NAME=VALUE` into one object.
pub fn parse_inputs(pairs: &[String], inputs_json: Option<&str>) -> Result<Map<String, Value>> {
    let mut inputs = match inputs_json {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(other) => bail!(
                "--inputs-json must be a JSON object like {{\"symbol\": \"AAA\"}}, not {other}"
            ),
            Err(e) => bail!("--inputs-json is not valid JSON: {e}"),
        },
    };
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--input `{pair}` must be NAME=VALUE (e.g. --input symbol=AAA)");
        };
        let name = name.trim();
        if name.is_empty() {
            bail!("--input `{pair}` has no name before `=`");
        }
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        inputs.insert(name.to_string(), value);
    }
    Ok(inputs)
}

/// Reads a patch document: JSON, or YAML; `-` is stdin. Must be an array of operations.
pub fn read_patch(path: &Path) -> Result<Value> {
    let (origin, text) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the patch from stdin")?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the patch {}", path.display()))?;
        (path.display().to_string(), text)
    };
    // JSON first; YAML (a superset) for the rest, with the JSON error when it looked like JSON.
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(json_error) => match yaml_serde::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(_) if text.trim_start().starts_with(['[', '{']) => bail!(
                "{origin}:{}:{}: not valid JSON: {json_error}",
                json_error.line(),
                json_error.column()
            ),
            Err(e) => bail!("{origin}: neither JSON nor YAML: {e}"),
        },
    };
    match &value {
        Value::Array(ops) if !ops.is_empty() => Ok(value),
        Value::Array(_) => bail!("{origin}: the patch has no operations"),
        _ => bail!(
            "{origin}: a patch is an array of RFC 6902 operations, e.g. \
             [{{\"op\": \"add\", \"path\": \"/nodes/-\", \"value\": {{...}}}}]"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_json_when_they_parse_else_strings() {
        let m = parse_inputs(
            &[
                "n=5".into(),
                "s=AAA".into(),
                "b=true".into(),
                "l=[1,2]".into(),
                "q=\"5\"".into(),
                "e=".into(),
                "x=a=b".into(),
            ],
            Some(r#"{"n": 1, "keep": "k"}"#),
        )
        .unwrap();
        assert_eq!(m["n"], json!(5));
        assert_eq!(m["s"], json!("AAA"));
        assert_eq!(m["b"], json!(true));
        assert_eq!(m["l"], json!([1, 2]));
        assert_eq!(m["q"], json!("5"));
        assert_eq!(m["e"], json!(""));
        assert_eq!(m["x"], json!("a=b"));
        assert_eq!(m["keep"], json!("k"));
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let e = parse_inputs(&["novalue".into()], None).unwrap_err();
        assert!(e.to_string().contains("NAME=VALUE"), "{e}");
        let e = parse_inputs(&["=1".into()], None).unwrap_err();
        assert!(e.to_string().contains("no name"), "{e}");
        let e = parse_inputs(&[], Some("[1]")).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
        let e = parse_inputs(&[], Some("{")).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
