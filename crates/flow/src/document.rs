//! The workflow documents a user hands over before anything runs: reports of a compiled (or
//! failed) definition, run inputs from `NAME=VALUE` pairs and a JSON object, and patch
//! documents. Pure functions of their text: the caller reads files and stdin.

use serde_json::{Map, Value, json};

use crate::compile::Compiled;
use crate::error::FlowError;

/// A run input or a patch document that cannot be used; the message names the flag or origin.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(String);

/// The JSON report of a definition that compiles: name, IR hash, nodes with their type and
/// needs, warnings, and no errors.
pub fn compiled_json(compiled: &Compiled) -> Value {
    let ir = &compiled.ir;
    let nodes: Vec<_> = ir
        .nodes()
        .iter()
        .map(|n| {
            let needs: Vec<&str> = n.needs().iter().map(|i| ir.nodes()[*i].id()).collect();
            json!({"id": n.id(), "type": n.kind().type_name(), "needs": needs})
        })
        .collect();
    json!({
        "valid": true, "name": ir.name(), "ir_hash": ir.hash(),
        "nodes": nodes, "warnings": compiled.warnings, "errors": [],
    })
}

/// The text report of a definition from `origin` that compiles: a summary line, a table of its
/// nodes in topological order, and one `warning: …` line per warning.
pub fn compiled_text(origin: &str, compiled: &Compiled) -> String {
    let ir = &compiled.ir;
    let mut out = format!(
        "{}: workflow `{}` compiles: {} nodes, IR sha256 {}\n",
        origin,
        ir.name(),
        ir.nodes().len(),
        ir.hash()
    );
    let rows: Vec<Vec<String>> = ir
        .nodes()
        .iter()
        .map(|n| {
            let needs: Vec<&str> = n.needs().iter().map(|i| ir.nodes()[*i].id()).collect();
            vec![
                n.id().to_string(),
                n.kind().type_name().to_string(),
                needs.join(", "),
                n.when().map(ToString::to_string).unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&tradeloom_core::table::render(
        &["node", "type", "needs", "when"],
        &rows,
    ));
    for w in &compiled.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// Every problem of a definition as JSON objects (`code`, `path`, `line`, `column`,
/// `message`); a definition that does not parse is one `parse` problem.
pub fn error_json(error: &FlowError) -> Vec<Value> {
    match error {
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
    }
}

/// How many problems `error` lists (one unless the definition parsed but did not compile).
pub fn problem_count(error: &FlowError) -> usize {
    match error {
        FlowError::Compile(list) => list.len(),
        _ => 1,
    }
}

/// `--inputs-json` and `--input NAME=VALUE` as one object: a value is JSON when it parses, else
/// a string; the pairs override the object.
pub fn parse_inputs(
    pairs: &[String],
    inputs_json: Option<&str>,
) -> Result<Map<String, Value>, DocumentError> {
    let fail = |m: String| Err(DocumentError(m));
    let mut inputs = match inputs_json {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return fail(format!(
                    "--inputs-json must be a JSON object like {{\"symbol\": \"AAA\"}}, not {other}"
                ));
            }
            Err(e) => return fail(format!("--inputs-json is not valid JSON: {e}")),
        },
    };
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return fail(format!(
                "--input `{pair}` must be NAME=VALUE (e.g. --input symbol=AAA)"
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return fail(format!("--input `{pair}` has no name before `=`"));
        }
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        inputs.insert(name.to_string(), value);
    }
    Ok(inputs)
}

/// A patch document from `origin`: JSON, or YAML; it must be a non-empty array of operations.
pub fn parse_patch(origin: &str, text: &str) -> Result<Value, DocumentError> {
    let fail = |m: String| Err(DocumentError(m));
    // JSON first; YAML (a superset) for the rest, with the JSON error when it looked like JSON.
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(json_error) => match yaml_serde::from_str::<Value>(text) {
            Ok(v) => v,
            Err(_) if text.trim_start().starts_with(['[', '{']) => {
                return fail(format!(
                    "{origin}:{}:{}: not valid JSON: {json_error}",
                    json_error.line(),
                    json_error.column()
                ));
            }
            Err(e) => return fail(format!("{origin}: neither JSON nor YAML: {e}")),
        },
    };
    match &value {
        Value::Array(ops) if !ops.is_empty() => Ok(value),
        Value::Array(_) => fail(format!("{origin}: the patch has no operations")),
        _ => fail(format!(
            "{origin}: a patch is an array of RFC 6902 operations, e.g. \
             [{{\"op\": \"add\", \"path\": \"/nodes/-\", \"value\": {{...}}}}]"
        )),
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
