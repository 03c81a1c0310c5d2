//! `tradeloom flow validate`: parse and compile a workflow definition without running it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_flow::{FlowError, compile_text};

use crate::table;

/// Prints the compiled workflow (topological order, IR hash, warnings) or every problem.
/// Exit 0 when it compiles, 2 when it does not.
pub fn validate(file: &Path, json_out: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the workflow {}", file.display()))?;
    let origin = file.display().to_string();
    match compile_text(&text, &origin) {
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
