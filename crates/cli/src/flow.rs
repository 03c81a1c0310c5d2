//! `tradeloom flow validate`: parse and compile a workflow definition without running it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::RangedU64ValueParser;
use serde_json::json;
use tradeloom_flow::{FlowError, FlowLimits, compile_text_with};

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
