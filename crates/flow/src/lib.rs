//! flow: workflow definitions, compiled to a validated, content-addressed IR.
//!
//! A workflow is a DAG of typed nodes written in YAML or JSON ([`definition`]). [`compile`]
//! checks it completely — reporting every problem with its path and line — and produces an
//! [`Ir`]: nodes in a deterministic topological order with parsed [templates](template) and
//! [predicates](predicate), whose [`Ir::hash`] identifies the workflow's content. The IR also
//! carries the pure scheduling rules a coordinator applies ([`Ir::ready_nodes`],
//! [`Ir::nodes_to_skip`]), and [`patch`] applies and vets RFC 6902 patches to running workflows.
//!
//! Plain data and pure functions: no I/O, no clocks, no async. Running nodes is the
//! coordinator's job.

pub mod agent_definition;
pub mod compile;
pub mod context;
pub mod cron;
pub mod definition;
pub mod document;
pub mod duration;
pub mod error;
pub mod field_path;
pub mod ir;
pub mod limits;
pub mod node_config;
pub mod patch;
pub mod predicate;
pub mod source;
pub mod template;
pub mod value_path;

pub use agent_definition::AgentDefinition;
pub use compile::{Compiled, compile, compile_text, compile_text_with, compile_with};
pub use context::{Context, RunInfo};
pub use definition::{Definition, NodeDef, NodeType, from_json_value, parse_definition};
pub use error::{CompileError, CompileErrorKind, FlowError};
pub use field_path::FieldPath;
pub use ir::{HitlNotify, Ir, IrNode, NodeIdSet, NodeKind, RetryPolicy, WebhookUrl};
pub use limits::FlowLimits;
pub use patch::{
    PatchError, PatchOp, Patched, RunState, apply_patch, parse_patch, validate_patch,
    validate_patch_with,
};
pub use predicate::Predicate;
pub use template::{JsonTemplate, Template};
