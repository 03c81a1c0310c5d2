//! How big a workflow may be and how long its durations may run: [`FlowLimits`] (set by the
//! operator, e.g. `tradeloom serve --max-workflow-nodes`) and the fixed bounds on durations,
//! retries and agent steps that every definition is held to.
//!
//! The size limits keep one definition or patch from holding a core or gigabytes of memory: the
//! compiler refuses a definition over any of them before doing work proportional to its size
//! beyond reading it. The defaults are at least ten times what the largest shipped example
//! (`examples/workflows/trading-team.yaml`: 13 nodes, a longest chain of 9, 5 needs on one node,
//! templates under 400 bytes, 7 KB) needs.

use serde::{Deserialize, Serialize};

/// Size limits of workflow definitions and patches. Every field is at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowLimits {
    /// Nodes in a workflow, patches included (default 1,000).
    pub max_nodes: usize,
    /// Nodes on the longest chain of `needs`, both ends included (default 200).
    pub max_depth: usize,
    /// Entries in one node's `needs` (default 64).
    pub max_needs: usize,
    /// Bytes (UTF-8) of one template or `when` predicate (default 32 KiB).
    pub max_template_bytes: usize,
    /// Bytes of the whole definition written as compact JSON (default 1 MiB).
    pub max_definition_bytes: usize,
    /// Operations in one JSON patch (default 100).
    pub max_patch_operations: usize,
    /// Bytes of one JSON patch written as compact JSON (default 64 KiB).
    pub max_patch_bytes: usize,
}

impl FlowLimits {
    /// The documented defaults.
    pub const DEFAULT: FlowLimits = FlowLimits {
        max_nodes: 1_000,
        max_depth: 200,
        max_needs: 64,
        max_template_bytes: 32 * 1024,
        max_definition_bytes: 1024 * 1024,
        max_patch_operations: 100,
        max_patch_bytes: 64 * 1024,
    };
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits::DEFAULT
    }
}

const DAY_MS: u64 = 86_400_000;

/// Longest `wait` (`config.duration_ms`): 366 days.
pub const MAX_WAIT_MS: u64 = 366 * DAY_MS;
/// Longest `hitl` expiry (`config.expires_after`): 366 days.
pub const MAX_EXPIRY_MS: u64 = 366 * DAY_MS;
/// Longest per-attempt time limit (`timeout_ms`): 24 hours.
pub const MAX_TIMEOUT_MS: u64 = DAY_MS;
/// Shortest delay between attempts (`retries.backoff_ms`, `retries.max_backoff_ms`): 100 ms.
pub const MIN_BACKOFF_MS: u64 = 100;
/// Longest delay between attempts (`retries.backoff_ms`, `retries.max_backoff_ms`, and any delay
/// the multiplier reaches): 1 hour.
pub const MAX_BACKOFF_MS: u64 = 3_600_000;
/// Most attempts of one node (`retries.max_attempts`), the first included.
pub const MAX_ATTEMPTS: u32 = 20;
/// Most model turns of one agent node (`config.max_steps`).
pub const MAX_AGENT_STEPS: u32 = 100;

/// `31622400000 ms (366 days)`: a bound in milliseconds with its everyday reading.
pub fn describe_ms(ms: u64) -> String {
    // A day reads as 24 hours: time limits are thought of in hours.
    let plain = if ms.is_multiple_of(DAY_MS) && ms > DAY_MS {
        plural(ms / DAY_MS, "day")
    } else if ms.is_multiple_of(3_600_000) {
        plural(ms / 3_600_000, "hour")
    } else if ms.is_multiple_of(60_000) {
        plural(ms / 60_000, "minute")
    } else if ms.is_multiple_of(1_000) {
        plural(ms / 1_000, "second")
    } else {
        return format!("{ms} ms");
    };
    format!("{ms} ms ({plain})")
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Counts the bytes a value serialises to, without keeping them.
#[derive(Default)]
pub(crate) struct ByteCount(pub(crate) usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of `value` as compact JSON.
pub(crate) fn json_size<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut count = ByteCount::default();
    // Writing to a counter cannot fail, and every value we count serialises.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_in_plain_units() {
        assert_eq!(describe_ms(MAX_WAIT_MS), "31622400000 ms (366 days)");
        assert_eq!(describe_ms(MAX_TIMEOUT_MS), "86400000 ms (24 hours)");
        assert_eq!(describe_ms(MAX_BACKOFF_MS), "3600000 ms (1 hour)");
        assert_eq!(describe_ms(MIN_BACKOFF_MS), "100 ms");
    }

    #[test]
    fn sizes_are_those_of_compact_json() {
        assert_eq!(json_size(&serde_json::json!({"a": [1, 2]})), 11);
        let partial: FlowLimits = serde_json::from_str(r#"{"max_nodes": 5}"#).unwrap();
        assert_eq!(partial.max_nodes, 5);
        assert_eq!(partial.max_depth, FlowLimits::DEFAULT.max_depth);
    }
}
