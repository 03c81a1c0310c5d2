//! Trace ids: the 32-hex-digit id (W3C `traceparent` trace-id format) that every log line about
//! one run, simulation job or workflow run carries, so a single query finds all of them whichever
//! process or node wrote them.
//!
//! The id is derived from the run's own id, never drawn at random, so a worker that picks up a
//! node of a workflow run in another process logs under the same trace id as the coordinator.

/// The trace id of the run, job or workflow run `id`.
///
/// tradeloom ids are UUIDs, whose 32 hex digits are exactly a W3C trace-id: the id without its
/// dashes, lowercased. Any other id (or the all-zero UUID, which W3C forbids as a trace-id) is
/// hashed into 32 hex digits with 128-bit FNV-1a, which is stable across builds and machines.
///
/// ```
/// use tradeloom_core::trace_id;
/// assert_eq!(
///     trace_id("0198a3c2-7f10-7c3e-9d2a-5b6c7d8e9f01"),
///     "0198a3c27f107c3e9d2a5b6c7d8e9f01"
/// );
/// assert_eq!(trace_id("job-1").len(), 32);
/// ```
pub fn trace_id(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let is_uuid = id.len() == 36
        && hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && hex.chars().any(|c| c != '0');
    if is_uuid {
        return hex.to_ascii_lowercase();
    }
    format!("{:032x}", fnv1a_128(id.as_bytes()))
}

/// Whether `text` is a valid W3C trace-id: 32 lowercase hex digits, not all zero.
pub fn is_trace_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && text.bytes().any(|b| b != b'0')
}

fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
    // A zero trace-id is invalid; FNV-1a of real input practically never yields it.
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_keep_their_digits() {
        assert_eq!(
            trace_id("0198A3C2-7F10-7C3E-9D2A-5B6C7D8E9F01"),
            "0198a3c27f107c3e9d2a5b6c7d8e9f01"
        );
        assert!(is_trace_id(&trace_id(
            "0198a3c2-7f10-7c3e-9d2a-5b6c7d8e9f01"
        )));
    }

    #[test]
    fn other_ids_hash_stably() {
        let a = trace_id("job-1");
        assert_eq!(a, trace_id("job-1"));
        assert_ne!(a, trace_id("job-2"));
        assert!(is_trace_id(&a), "{a}");
        // Not a UUID: 32 hex digits without the dashes are hashed, not copied.
        let bare = "0198a3c27f107c3e9d2a5b6c7d8e9f01";
        assert_ne!(trace_id(bare), bare);
        assert!(is_trace_id(&trace_id(
            "00000000-0000-0000-0000-000000000000"
        )));
        assert_ne!(
            trace_id("00000000-0000-0000-0000-000000000000"),
            "00000000000000000000000000000000"
        );
    }

    #[test]
    fn trace_id_syntax() {
        assert!(!is_trace_id("0198A3C27F107C3E9D2A5B6C7D8E9F01"));
        assert!(!is_trace_id("00000000000000000000000000000000"));
        assert!(!is_trace_id("0198a3c27f107c3e"));
        assert!(!is_trace_id("0198a3c27f107c3e9d2a5b6c7d8e9f0g"));
    }
}
