//! `tradeloom verify`: recompute every hash recorded in `metadata.json`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::RunError;
use crate::hashing::sha256_file;
use crate::metadata::Metadata;

/// One checked file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub file: String,
    pub expected: String,
    /// `None` when the file could not be read.
    pub actual: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every check of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub run_id: String,
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

fn check(file: String, path: &Path, expected: &str) -> Check {
    match sha256_file(path) {
        Ok((actual, _)) => Check {
            ok: actual == expected,
            file,
            expected: expected.to_string(),
            actual: Some(actual),
            error: None,
        },
        Err(e) => Check {
            file,
            expected: expected.to_string(),
            actual: None,
            ok: false,
            error: Some(e.to_string()),
        },
    }
}

/// Recomputes the sha256 of the normalised spec, every data file and every artifact.
pub fn verify_run(run_dir: &Path) -> Result<VerifyReport, RunError> {
    let meta = Metadata::read(run_dir)?;
    let mut checks = vec![check(
        "run_spec.yaml".to_string(),
        &run_dir.join("run_spec.yaml"),
        &meta.spec.sha256,
    )];
    for d in &meta.data {
        if let Some(expected) = &d.sha256 {
            checks.push(check(
                format!("data:{}", d.path),
                &PathBuf::from(&d.resolved_path),
                expected,
            ));
        }
    }
    for (name, hash) in &meta.artifacts {
        checks.push(check(name.clone(), &run_dir.join(name), &hash.sha256));
    }
    Ok(VerifyReport {
        run_id: meta.run_id,
        checks,
    })
}
