//! Registered agents and skills (`/agents…`, `/skills…`): named definitions with immutable,
//! numbered versions, owned by the API key that created them. Both registries have the same
//! routes and answers, so one set of calls serves both, chosen by [`DefinitionKind`].

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Error};

/// Which registry: agents or skills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefinitionKind {
    Agent,
    Skill,
}

impl DefinitionKind {
    /// The collection's path segment (`agents`, `skills`).
    pub fn collection(self) -> &'static str {
        match self {
            DefinitionKind::Agent => "agents",
            DefinitionKind::Skill => "skills",
        }
    }
}

impl fmt::Display for DefinitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefinitionKind::Agent => "agent",
            DefinitionKind::Skill => "skill",
        })
    }
}

/// The answer of a create or an update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDefinition {
    pub name: String,
    pub version: u32,
    /// `false` when an update was the same as the latest version (no new version).
    pub changed: bool,
}

/// An agent or skill in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionInfo {
    pub name: String,
    pub latest_version: u32,
    /// The name of the API key that created it (`anonymous` without auth).
    pub owner: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /agents` or `GET /skills`: one page, by name (deleted ones left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionList {
    pub items: Vec<DefinitionInfo>,
}

/// One version in [`DefinitionDetail::versions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionVersionInfo {
    pub version: u32,
    /// The name of the API key that wrote it.
    pub created_by: String,
    pub created_at: String,
}

/// One version of an agent or skill with its definition, and every version's number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefinitionDetail {
    #[serde(flatten)]
    pub info: DefinitionInfo,
    /// The version shown.
    pub version: u32,
    /// That version's definition (as the server normalised it).
    pub definition: Value,
    pub created_by: String,
    /// Oldest first.
    pub versions: Vec<DefinitionVersionInfo>,
}

impl Client {
    /// Registers a new agent or skill (version 1) owned by this client's key; 409
    /// `agent_exists`/`skill_exists` when the name is taken, 422 `invalid_agent`/`invalid_skill`
    /// with every problem in `details`.
    pub async fn create_definition(
        &self,
        kind: DefinitionKind,
        definition: &Value,
    ) -> Result<SavedDefinition, Error> {
        self.post(&[kind.collection()], definition, "a saved definition")
            .await
    }

    /// Stores the next version of `name` (none when the definition is the latest's); 403
    /// `not_owner` unless this key created it or is an admin.
    pub async fn update_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        definition: &Value,
    ) -> Result<SavedDefinition, Error> {
        self.call(
            Method::PUT,
            &[kind.collection(), name],
            &[],
            Some(definition),
            "a saved definition",
        )
        .await
    }

    /// Deletes `name` (softly: its versions stay and their numbers are never reused); 403
    /// `not_owner` unless this key created it or is an admin.
    pub async fn delete_definition(&self, kind: DefinitionKind, name: &str) -> Result<(), Error> {
        let _: Value = self
            .call(
                Method::DELETE,
                &[kind.collection(), name],
                &[],
                None::<&Value>,
                "an empty answer",
            )
            .await?;
        Ok(())
    }

    /// One page of agents or skills, by name.
    pub async fn list_definitions(
        &self,
        kind: DefinitionKind,
        limit: u32,
        offset: u64,
    ) -> Result<DefinitionList, Error> {
        let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
        self.get(&[kind.collection()], &query, "a list of definitions")
            .await
    }

    /// Every agent or skill, read page by page, by name.
    pub async fn all_definitions(&self, kind: DefinitionKind) -> Result<DefinitionList, Error> {
        const PAGE: u32 = 1000;
        let mut all = Vec::new();
        loop {
            let page = self
                .list_definitions(kind, PAGE, all.len() as u64)
                .await?
                .items;
            let n = page.len();
            all.extend(page);
            if n < PAGE as usize {
                return Ok(DefinitionList { items: all });
            }
        }
    }

    /// Version `version` of `name` (the latest when `None`), with every version's number; 404
    /// `agent_not_found`/`skill_not_found` when there is no such definition or version.
    pub async fn definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        version: Option<u32>,
    ) -> Result<DefinitionDetail, Error> {
        match version {
            None => {
                self.get(&[kind.collection(), name], &[], "a definition")
                    .await
            }
            Some(v) => {
                let v = v.to_string();
                self.get(
                    &[kind.collection(), name, "versions", &v],
                    &[],
                    "a definition",
                )
                .await
            }
        }
    }
}
