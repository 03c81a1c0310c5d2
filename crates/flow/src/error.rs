//! [`FlowError`] and [`CompileError`]: what is wrong with a definition, and where.

use std::fmt;

use crate::field_path::FieldPath;
use crate::source::Location;

/// A definition could not be read or compiled.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// Text that is not a definition; `place` is `origin:line:column` (or `origin`), `message`
    /// starts with the field path when there is one.
    #[error("{place}: {message}")]
    Parse { place: String, message: String },
    /// A JSON document that is not a definition; `path` is the field path (`.` for the root).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// The definition has the right shape but does not compile; every problem is listed.
    #[error("{}", lines(.0))]
    Compile(Vec<CompileError>),
}

fn lines(errors: &[CompileError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What kind of problem a [`CompileError`] is; [`CompileErrorKind::code`] is a stable name for
/// APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompileErrorKind {
    /// A workflow name, node id or input name that is empty, too long or has bad characters.
    InvalidName,
    /// Two nodes with the same id.
    DuplicateId,
    /// `needs` names a node that does not exist (or names one twice).
    UnknownNeed,
    /// Nodes that need each other.
    Cycle,
    /// A node that can never run.
    Unreachable,
    /// A template that does not parse.
    Template,
    /// A `when` predicate that does not parse.
    Predicate,
    /// A template or predicate reads a node that is unknown, itself, or not among its needs.
    UnknownReference,
    /// A template or predicate reads `inputs.x` for an undeclared `x` (or an unknown `run.x`).
    UndeclaredInput,
    /// A duration that does not parse or is out of bounds (see [`crate::limits`]).
    Duration,
    /// A node's `config` does not fit its type, or `retries`/`timeout_ms` are out of range.
    Config,
    /// More agent nodes than `limits.max_agent_nodes`.
    AgentLimit,
    /// A schedule that cannot be read.
    Schedule,
    /// Over a size limit of [`crate::limits::FlowLimits`] (or more problems than are listed).
    Limit,
}

impl CompileErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            CompileErrorKind::InvalidName => "invalid_name",
            CompileErrorKind::DuplicateId => "duplicate_id",
            CompileErrorKind::UnknownNeed => "unknown_need",
            CompileErrorKind::Cycle => "cycle",
            CompileErrorKind::Unreachable => "unreachable",
            CompileErrorKind::Template => "template",
            CompileErrorKind::Predicate => "predicate",
            CompileErrorKind::UnknownReference => "unknown_reference",
            CompileErrorKind::UndeclaredInput => "undeclared_input",
            CompileErrorKind::Duration => "duration",
            CompileErrorKind::Config => "config",
            CompileErrorKind::AgentLimit => "agent_limit",
            CompileErrorKind::Schedule => "schedule",
            CompileErrorKind::Limit => "limit",
        }
    }
}

/// One problem in a definition. Displays as `origin:line:column: path: message` when the
/// definition was parsed from text, `path: message` otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub kind: CompileErrorKind,
    /// Where in the document (`nodes[3].needs[1]`).
    pub path: FieldPath,
    /// Where in the text, when there is one.
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for CompileError {}
