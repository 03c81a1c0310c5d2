//! Workflow definitions as stored: content-addressed blobs (the sha256 of their exact text) and
//! versioned workflows whose versions point at a definition blob and a compiled-IR blob. The
//! store does not parse either: compiling is the flow crate's job.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The content address of `body`: lower-case hex sha256 of its UTF-8 bytes.
pub fn blob_hash(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// A stored blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blob {
    pub hash: String,
    /// What it holds, e.g. `workflow_definition`, `workflow_ir`, `node_output`.
    pub kind: String,
    pub body: String,
}

/// A workflow version to save: its name and the canonical texts of its definition and IR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWorkflowVersion {
    pub name: String,
    pub definition: String,
    pub ir: String,
}

/// A workflow and its newest version number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workflow {
    /// UUIDv7.
    pub id: String,
    pub name: String,
    pub latest_version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One version of a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkflowVersion {
    pub workflow_id: String,
    pub version: u32,
    pub definition_hash: String,
    pub ir_hash: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn check_name(name: &str) -> Result<(), crate::StoreError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(crate::StoreError::Invalid(format!(
            "workflow name `{name}` must be 1 to 200 characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn blob_hash_is_sha256_hex() {
        assert_eq!(
            super::blob_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
