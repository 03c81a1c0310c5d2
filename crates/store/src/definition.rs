//! Definitions of the control plane as stored: named agents and skills, each a list of
//! immutable versions whose body is canonical JSON. The store checks names and keeps versions;
//! what a body means (an agent's model block, a skill's schemas) is the caller's to check.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StoreError;

pub use tradeloom_core::MAX_DEFINITION_NAME;

/// What a definition defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefinitionKind {
    /// An agent: an OpenAI-compatible model block, a system prompt, tools, memory settings.
    Agent,
    /// A skill: a sandboxed Python script with input and output JSON Schemas.
    Skill,
}

impl DefinitionKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Agent => "agent",
            DefinitionKind::Skill => "skill",
        }
    }
}

impl fmt::Display for DefinitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who writes a version: the authenticated API key (its id and name), or the anonymous admin of
/// a server without auth (`key_id` `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub key_id: Option<String>,
    pub name: String,
}

/// A definition and its newest version number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Definition {
    pub kind: DefinitionKind,
    pub name: String,
    pub latest_version: u32,
    /// The key that created it (`None`: the anonymous admin).
    pub owner_key_id: Option<String>,
    /// That key's name.
    pub owner_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One immutable version of a definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DefinitionVersion {
    pub kind: DefinitionKind,
    pub name: String,
    pub version: u32,
    /// Canonical JSON text of the definition.
    pub body: String,
    /// The name of the key that wrote it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Checks a definition name: 1 to [`MAX_DEFINITION_NAME`] characters of `a-z`, `0-9`, `_` and
/// `-` (it is written in configs as `agent: name@version` and `skill:name`).
pub fn check_definition_name(kind: DefinitionKind, name: &str) -> Result<(), StoreError> {
    if tradeloom_core::is_definition_name(name) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{kind} name `{name}` must be 1 to {MAX_DEFINITION_NAME} characters of a-z, 0-9, `_` \
             and `-`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words() {
        assert!(check_definition_name(DefinitionKind::Agent, "analyst_2-b").is_ok());
        for bad in ["", "Analyst", "a b", "a@1", "skill:x", &"a".repeat(65)] {
            let e = check_definition_name(DefinitionKind::Skill, bad).unwrap_err();
            assert!(e.to_string().contains("skill name"), "{e}");
        }
    }
}
