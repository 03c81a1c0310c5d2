//! The one way an id given by a user is resolved, for every kind of id (runs, simulation jobs,
//! workflow runs, approvals): the full id, a unique prefix of one, or `latest` (the newest). A
//! prefix that matches several ids is an error that lists them.

use std::fmt;

/// Ambiguous prefixes list at most this many candidates.
pub const MAX_CANDIDATES: usize = 10;

/// Why an id could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdRefError {
    /// Nothing has this id or prefix (`latest`: there is nothing at all).
    NotFound {
        /// What was looked up (`run`, `job`, …).
        kind: String,
        /// The id or prefix given.
        given: String,
    },
    /// The prefix matches several ids: `count` in all, the newest up to [`MAX_CANDIDATES`] of
    /// them in `candidates` (newest first).
    Ambiguous {
        /// What was looked up (`run`, `job`, …).
        kind: String,
        /// The id or prefix given.
        given: String,
        /// How many ids match.
        count: usize,
        /// The newest matching ids, newest first.
        candidates: Vec<String>,
    },
}

impl fmt::Display for IdRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdRefError::NotFound { kind, given } if given == "latest" => {
                write!(f, "there is no {kind} yet, so no `latest`")
            }
            IdRefError::NotFound { kind, given } if given.is_empty() => {
                write!(
                    f,
                    "an empty {kind} id; give a full id, a prefix or `latest`"
                )
            }
            IdRefError::NotFound { kind, given } => write!(f, "no {kind} `{given}`"),
            IdRefError::Ambiguous {
                kind,
                given,
                count,
                candidates,
            } => {
                write!(
                    f,
                    "`{given}` matches {count} {kind}s; give more of the id: {}",
                    candidates.join(", ")
                )?;
                if *count > candidates.len() {
                    write!(f, ", … ({} more)", count - candidates.len())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for IdRefError {}

/// Resolves `given` among `ids`, listed oldest first: an exact id, `latest` (the last one), or
/// the one id that starts with `given`. `kind` names the ids in errors (`run`, `job`, …).
pub fn resolve_id<'a, I>(kind: &str, given: &str, ids: I) -> Result<String, IdRefError>
where
    I: IntoIterator<Item = &'a str>,
{
    let given = given.trim();
    let not_found = || IdRefError::NotFound {
        kind: kind.to_string(),
        given: given.to_string(),
    };
    if given.is_empty() {
        return Err(not_found());
    }
    let mut matches: Vec<&str> = Vec::new();
    let mut newest: Option<&str> = None;
    for id in ids {
        if id == given {
            return Ok(id.to_string());
        }
        newest = Some(id);
        if id.starts_with(given) && !matches.contains(&id) {
            matches.push(id);
        }
    }
    if given == "latest" {
        return newest.map(str::to_string).ok_or_else(not_found);
    }
    match matches.as_slice() {
        [] => Err(not_found()),
        [one] => Ok(one.to_string()),
        _ => Err(IdRefError::Ambiguous {
            kind: kind.to_string(),
            given: given.to_string(),
            count: matches.len(),
            candidates: matches
                .iter()
                .rev()
                .take(MAX_CANDIDATES)
                .map(|s| s.to_string())
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 3] = [
        "0193a1b2-0000-7000-8000-000000000001",
        "0193a1b2-0000-7000-8000-000000000002",
        "0193a1c9-0000-7000-8000-000000000003",
    ];

    #[test]
    fn full_prefix_latest() {
        assert_eq!(resolve_id("run", IDS[1], IDS).unwrap(), IDS[1]);
        assert_eq!(resolve_id("run", "0193a1c", IDS).unwrap(), IDS[2]);
        assert_eq!(resolve_id("run", "latest", IDS).unwrap(), IDS[2]);
        assert_eq!(resolve_id("run", " 0193a1c9 ", IDS).unwrap(), IDS[2]);
    }

    #[test]
    fn ambiguous_lists_candidates_newest_first() {
        let e = resolve_id("job", "0193a1b2", IDS).unwrap_err();
        assert_eq!(
            e,
            IdRefError::Ambiguous {
                kind: "job".into(),
                given: "0193a1b2".into(),
                count: 2,
                candidates: vec![IDS[1].into(), IDS[0].into()],
            }
        );
        let text = e.to_string();
        assert!(text.contains("matches 2 jobs"), "{text}");
        assert!(text.contains(IDS[0]) && text.contains(IDS[1]), "{text}");
    }

    #[test]
    fn not_found_and_empty() {
        assert_eq!(
            resolve_id("approval", "ffff", IDS).unwrap_err().to_string(),
            "no approval `ffff`"
        );
        assert!(resolve_id("run", "latest", []).is_err());
        assert!(resolve_id("run", "", IDS).is_err());
        let many: Vec<String> = (0..15).map(|i| format!("ab{i:02}")).collect();
        let e = resolve_id("run", "ab", many.iter().map(String::as_str)).unwrap_err();
        assert!(e.to_string().ends_with(", … (5 more)"), "{e}");
    }
}
