//! Integration tests of tradeloom-flow: definitions compiled end to end, hashes, the runtime
//! rules driven like a coordinator would, and JSON patches.
#![allow(clippy::unwrap_used)]

mod agent_model;
mod compilation;
mod hash;
mod limits;
mod patch;
mod runtime;

use tradeloom_flow::{CompileError, Compiled, compile, parse_definition};

/// The contract example (`examples/workflows/review-and-trade.yaml` in the repository).
pub const EXAMPLE: &str = include_str!("../../../../examples/workflows/review-and-trade.yaml");

/// Parses and compiles YAML or JSON text, panicking on errors.
pub fn compiled(text: &str) -> Compiled {
    let definition = parse_definition(text, "wf.yaml").unwrap();
    match compile(&definition) {
        Ok(c) => c,
        Err(errors) => panic!("{}", lines(&errors)),
    }
}

/// Parses text and returns its compile errors, panicking if it compiles.
pub fn errors_of(text: &str) -> Vec<CompileError> {
    let definition = parse_definition(text, "wf.yaml").unwrap();
    match compile(&definition) {
        Ok(_) => panic!("expected compile errors"),
        Err(errors) => errors,
    }
}

pub fn lines(errors: &[CompileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
