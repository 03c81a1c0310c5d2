//! [`compile`]: checks a [`Definition`] completely and turns it into an [`Ir`].
//!
//! Every problem is reported, each with its path in the document (`nodes[3].needs[1]`) and, when
//! the definition was parsed from text, its line and column; they are listed in file order (by path for definitions
//! that did not come from text). The checks:
//!
//! - names: the workflow name is not empty; node ids are unique, 1–64 characters of `a-z`,
//!   `0-9`, `_`, `-`, and not `inputs` or `run` (the other roots of the context); input names
//!   are 1–64 characters of `A-Z`, `a-z`, `0-9`, `_`, `-`.
//! - `needs` name existing nodes, once each; there are no cycles (each is named:
//!   `dependency cycle: a → b → c → a`, read "a needs b, b needs c, c needs a").
//! - templates and `when` predicates parse; every path they read is `run.<field>` (see
//!   [`crate::context::RUN_FIELDS`]), `inputs` or `inputs.<declared name>`, or a node in the
//!   node's transitive `needs` (not itself).
//! - inputs: reading an undeclared input is an error. A declared input without a default is
//!   *required*: every run must give it ([`Ir::resolve_inputs`]).
//! - each known type's `config` (see [`crate::node_config`]); agent `tools` are among
//!   [`AGENT_TOOLS`]; no more agent nodes than `limits.max_agent_nodes`; the schedule's cron and
//!   time zone.
//! - durations and retries within the bounds of [`crate::limits`]: `wait` and `hitl` expiry at
//!   most 366 days, `timeout_ms` at most 24 hours, `retries.max_attempts` at most 20, back-off
//!   between 100 ms and 1 hour, agent `max_steps` at most 100.
//! - size: the definition, its node count, each node's `needs`, each template and the longest
//!   chain of needs within the [`FlowLimits`] given ([`compile`] uses the defaults). A definition
//!   over the size or node-count limit is refused with that one error before anything else is
//!   checked.
//! - reachability: a node is **unreachable** when it can never run — its `when` reads nothing and
//!   is false (`when: "false"`, `when: 1 > 2`), or every node it needs is unreachable (it would
//!   always be skipped). Unreachable nodes are errors.
//!
//! Nodes of unknown types compile with a warning (the runtime skips them), as do nodes whose
//! needs are all unknown-type or otherwise always-skipped nodes.
//!
//! # Cost
//! Time and memory grow linearly with nodes + needs (the order's tie-break by id adds a log
//! factor), with one exception: checking that a template reads a node among its *transitive*
//! needs walks the graph once per 64 distinct nodes read that way (reads of direct needs are
//! checked on the spot). At most [`MAX_REPORTED`] errors and as many warnings are listed; the
//! rest are counted.

mod compiler;
mod graph;
mod names;
mod node;
mod node_kind;

use crate::definition::{Definition, parse_definition};
use crate::error::{CompileError, FlowError};
use crate::limits::FlowLimits;
use compiler::Compiler;

pub use compiler::{Compiled, MAX_REPORTED};
pub use names::{MAX_NAME_LEN, check_node_id};

/// Compiles a definition within the default [`FlowLimits`], or returns every problem found.
pub fn compile(definition: &Definition) -> Result<Compiled, Vec<CompileError>> {
    compile_with(definition, &FlowLimits::DEFAULT)
}

/// Compiles a definition within `limits`, or returns every problem found (at most
/// [`MAX_REPORTED`], then a count of the rest).
pub fn compile_with(
    definition: &Definition,
    limits: &FlowLimits,
) -> Result<Compiled, Vec<CompileError>> {
    Compiler::new(definition, limits).run()
}

/// Parses and compiles definition text (YAML or JSON) within the default [`FlowLimits`];
/// `origin` names it in errors.
pub fn compile_text(text: &str, origin: &str) -> Result<Compiled, FlowError> {
    compile_text_with(text, origin, &FlowLimits::DEFAULT)
}

/// Parses and compiles definition text (YAML or JSON) within `limits`.
pub fn compile_text_with(
    text: &str,
    origin: &str,
    limits: &FlowLimits,
) -> Result<Compiled, FlowError> {
    let definition = parse_definition(text, origin)?;
    compile_with(&definition, limits).map_err(FlowError::Compile)
}
