//! [`run_skill`]: a workflow `script` node's skill — one JSON value in, one JSON value out — in
//! its own sandboxed child.

use crate::error::SandboxError;
use crate::interpreter::SandboxPolicy;
use crate::process::{Reply, ScriptProcess, ScriptSpec};

/// Runs `function(input)` of the skill script in a fresh sandbox and returns its output. The
/// child is gone (and its scratch folder removed) when this returns.
pub fn run_skill(
    policy: &SandboxPolicy,
    spec: &ScriptSpec<'_>,
    function: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value, SandboxError> {
    let mut process = ScriptProcess::spawn(policy, spec)?;
    let init = serde_json::json!({
        "type": "init",
        "kind": "skill",
        "script": spec.script,
        "display": spec.display,
        "function": function,
    });
    match process.request(init.to_string().as_bytes())? {
        Reply::Ready { .. } => {}
        other => {
            return Err(SandboxError::Protocol(format!(
                "expected ready, got {other:?}"
            )));
        }
    }
    let call = serde_json::json!({"type": "call", "input": input});
    let output = match process.request(call.to_string().as_bytes())? {
        Reply::Result { output } => output,
        other => {
            return Err(SandboxError::Protocol(format!(
                "expected result, got {other:?}"
            )));
        }
    };
    process.close();
    Ok(output)
}
