//! The connectivity files of a run ([`READINESS_FILE`], [`PROBE_FILE`]): what the caller found
//! out about the spec's providers before the run, written into the folder before it is sealed,
//! so `metadata.json` hashes them like every other artifact.

use std::path::Path;

use serde::Serialize;
use tradeloom_core::connectivity::{Connectivity, PROBE_FILE, READINESS_FILE};
use tradeloom_safety::{Durability, write_atomic};

use crate::hashing::sha256_bytes;
use crate::metadata::FileHash;

/// Writes both files into `dir` and returns their hashes. A file that cannot be written is
/// logged and left out, never fatal to the run (as the probe itself is advisory).
pub(crate) fn write_files(dir: &Path, connectivity: &Connectivity) -> Vec<(String, FileHash)> {
    let mut hashes = Vec::with_capacity(2);
    for (name, bytes) in [
        (READINESS_FILE, pretty(&connectivity.readiness)),
        (PROBE_FILE, pretty(&connectivity.probe)),
    ] {
        let written = bytes.and_then(|bytes| {
            write_atomic(&dir.join(name), &bytes, Durability::Renamed)?;
            Ok(bytes)
        });
        match written {
            Ok(bytes) => hashes.push((
                name.to_string(),
                FileHash {
                    sha256: sha256_bytes(&bytes),
                    bytes: bytes.len() as u64,
                },
            )),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot write a connectivity file");
            }
        }
    }
    let readiness = &connectivity.readiness;
    if !readiness.ready {
        let missing: Vec<String> = readiness
            .missing()
            .iter()
            .map(|(p, v)| format!("{v} ({p})"))
            .collect();
        tracing::warn!(missing = %missing.join(", "), "required environment variables are not set");
    }
    hashes
}

/// Why one connectivity file was not written.
#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error("cannot serialise: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Write(#[from] tradeloom_safety::WriteError),
}

/// Pretty JSON and a final newline, as every JSON file of a run folder.
fn pretty<T: Serialize>(value: &T) -> Result<Vec<u8>, FileError> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}
