//! [`ScriptLimits`]: the resource budget of one sandboxed script, as a run spec or a workflow
//! node writes it (`limits: {memory_mb: 512, call_timeout_ms: 2000}`), checked against hard
//! ranges. Plain data: the sandbox crate enforces it.

use serde::{Deserialize, Serialize};

/// `limits:` of a script strategy or a workflow `script` node. Every field is optional; the
/// defaults are the documented constants below, and each field has a range (a value outside it
/// is an error naming the field).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ScriptLimits {
    /// Address space of the child in MiB (RLIMIT_AS): default 1024, 64–16384.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPU time of the child in seconds (RLIMIT_CPU): default 300, 1–86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
    /// Wall-clock budget of one call (a batch of bars, a fill, a skill call) in milliseconds:
    /// default 5000, 10–600000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
    /// Wall-clock budget of the whole script (a run, a node) in seconds: default 3600,
    /// 1–86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_timeout_seconds: Option<u64>,
    /// Open files (RLIMIT_NOFILE): default 64, 16–1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// Largest file the script may write in its scratch folder, in MiB (RLIMIT_FSIZE): default
    /// 64, 1–4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_mb: Option<u64>,
}

/// One field's default and range.
struct Bound {
    field: &'static str,
    default: u64,
    min: u64,
    max: u64,
}

const MEMORY_MB: Bound = Bound {
    field: "memory_mb",
    default: 1024,
    min: 64,
    max: 16384,
};
const CPU_SECONDS: Bound = Bound {
    field: "cpu_seconds",
    default: 300,
    min: 1,
    max: 86400,
};
const CALL_TIMEOUT_MS: Bound = Bound {
    field: "call_timeout_ms",
    default: 5000,
    min: 10,
    max: 600_000,
};
const RUN_TIMEOUT_SECONDS: Bound = Bound {
    field: "run_timeout_seconds",
    default: 3600,
    min: 1,
    max: 86400,
};
const OPEN_FILES: Bound = Bound {
    field: "open_files",
    default: 64,
    min: 16,
    max: 1024,
};
const FILE_SIZE_MB: Bound = Bound {
    field: "file_size_mb",
    default: 64,
    min: 1,
    max: 4096,
};

/// [`ScriptLimits`] with every default filled in and every value checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EffectiveScriptLimits {
    /// MiB of address space.
    pub memory_mb: u64,
    /// Seconds of CPU time.
    pub cpu_seconds: u64,
    /// Milliseconds of wall time per call.
    pub call_timeout_ms: u64,
    /// Seconds of wall time in all; `None`: no budget for the whole script (a paper run's
    /// script, which runs as long as the run: its calls and its CPU time are still bounded).
    pub run_timeout_seconds: Option<u64>,
    /// Open files at most.
    pub open_files: u64,
    /// MiB of the largest file written.
    pub file_size_mb: u64,
}

impl Default for EffectiveScriptLimits {
    fn default() -> Self {
        // The defaults are in range by construction.
        ScriptLimits::default().effective().unwrap_or(Self {
            memory_mb: MEMORY_MB.default,
            cpu_seconds: CPU_SECONDS.default,
            call_timeout_ms: CALL_TIMEOUT_MS.default,
            run_timeout_seconds: Some(RUN_TIMEOUT_SECONDS.default),
            open_files: OPEN_FILES.default,
            file_size_mb: FILE_SIZE_MB.default,
        })
    }
}

impl ScriptLimits {
    /// Fills in the defaults and checks the ranges; the error names the field
    /// (`limits.memory_mb: 10 is outside 64–16384`).
    pub fn effective(&self) -> Result<EffectiveScriptLimits, String> {
        let pick = |value: Option<u64>, b: &Bound| -> Result<u64, String> {
            let v = value.unwrap_or(b.default);
            if v < b.min || v > b.max {
                return Err(format!(
                    "limits.{}: {v} is outside {}–{}",
                    b.field, b.min, b.max
                ));
            }
            Ok(v)
        };
        Ok(EffectiveScriptLimits {
            memory_mb: pick(self.memory_mb, &MEMORY_MB)?,
            cpu_seconds: pick(self.cpu_seconds, &CPU_SECONDS)?,
            call_timeout_ms: pick(self.call_timeout_ms, &CALL_TIMEOUT_MS)?,
            run_timeout_seconds: Some(pick(self.run_timeout_seconds, &RUN_TIMEOUT_SECONDS)?),
            open_files: pick(self.open_files, &OPEN_FILES)?,
            file_size_mb: pick(self.file_size_mb, &FILE_SIZE_MB)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let e = ScriptLimits::default().effective().unwrap();
        assert_eq!(e.memory_mb, 1024);
        assert_eq!(e.call_timeout_ms, 5000);
        let bad = ScriptLimits {
            memory_mb: Some(10),
            ..ScriptLimits::default()
        };
        assert_eq!(
            bad.effective().unwrap_err(),
            "limits.memory_mb: 10 is outside 64–16384"
        );
        let bad = ScriptLimits {
            open_files: Some(100_000),
            ..ScriptLimits::default()
        };
        assert!(
            bad.effective()
                .unwrap_err()
                .starts_with("limits.open_files")
        );
    }
}
