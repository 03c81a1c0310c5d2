//! The workflow documents of this machine, before anything talks to an API: `tradeloom flow
//! validate` (parse and compile a definition without running it), run inputs from
//! `--input`/`--inputs-json`, and patch documents (`flow patch`).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::RangedU64ValueParser;
use serde_json::{Value, json};
use tradeloom_flow::{
    FlowError, FlowLimits, compile, compile_text_with, document, parse_definition,
};

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
pub fn validate(
    file: &Path,
    json_out: bool,
    limits: &FlowLimitOptions,
    config_dir: Option<&Path>,
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the workflow {}", file.display()))?;
    let origin = file.display().to_string();
    match compile_text_with(&text, &origin, &limits.limits()) {
        Ok(compiled) => {
            // With the server's config folder, the skills of `script` nodes must be in it.
            if let Some(dir) = config_dir {
                let dir = tradeloom_agents::ConfigDir::new(dir)
                    .with_context(|| format!("cannot use the config folder {}", dir.display()))?;
                let problems =
                    tradeloom_orchestrator::nodes::script_file_problems(&compiled.ir, Some(&dir));
                if !problems.is_empty() {
                    if json_out {
                        let errors: Vec<_> = problems
                            .iter()
                            .map(|(path, message)| {
                                json!({"code": "script_path", "path": path, "message": message})
                            })
                            .collect();
                        println!("{}", json!({"valid": false, "errors": errors}));
                    } else {
                        for (path, message) in &problems {
                            eprintln!("{origin}: {path}: {message}");
                        }
                        eprintln!("{}: {} problem(s); nothing was run", origin, problems.len());
                    }
                    return Ok(ExitCode::from(2));
                }
            }
            if json_out {
                println!("{}", document::compiled_json(&compiled));
            } else {
                print!("{}", document::compiled_text(&origin, &compiled));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let errors = document::error_json(&e);
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
            let count = document::problem_count(&e);
            eprintln!("{e}");
            eprintln!("{origin}: {count} problem(s); nothing was submitted");
            Ok(None)
        }
    }
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
    Ok(document::parse_patch(&origin, &text)?)
}
