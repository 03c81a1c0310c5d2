//! References to named, versioned definitions of the control plane (agents and skills), as
//! configs write them: `analyst` (the latest version when a job or run is created) or
//! `analyst@3` (that version). Plain data: the store resolves them.

use std::fmt;

/// The longest definition name.
pub const MAX_DEFINITION_NAME: usize = 64;

/// Whether `name` is a definition name: 1 to [`MAX_DEFINITION_NAME`] characters of `a-z`,
/// `0-9`, `_` and `-`.
pub fn is_definition_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DEFINITION_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `name` or `name@version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DefinitionRef {
    /// The definition's name.
    pub name: String,
    /// `None`: the latest version at the time the reference is resolved.
    pub version: Option<u32>,
}

impl DefinitionRef {
    /// Parses `name` or `name@N` (N from 1). The error says what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, version) = match text.split_once('@') {
            Some((name, v)) => {
                let n = v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("`{text}`: the version after `@` must be a whole number from 1")
                })?;
                (name, Some(n))
            }
            None => (text, None),
        };
        if !is_definition_name(name) {
            return Err(format!(
                "`{text}`: a name is 1 to {MAX_DEFINITION_NAME} characters of a-z, 0-9, `_` and \
                 `-`, optionally followed by `@VERSION`"
            ));
        }
        Ok(DefinitionRef {
            name: name.to_string(),
            version,
        })
    }

    /// This reference pinned to `version`.
    pub fn pinned(&self, version: u32) -> Self {
        DefinitionRef {
            name: self.name.clone(),
            version: Some(version),
        }
    }
}

impl fmt::Display for DefinitionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_versions() {
        let r = DefinitionRef::parse("analyst@3").unwrap();
        assert_eq!((r.name.as_str(), r.version), ("analyst", Some(3)));
        assert_eq!(r.to_string(), "analyst@3");
        let latest = DefinitionRef::parse("risk-desk_2").unwrap();
        assert_eq!(latest.version, None);
        assert_eq!(latest.pinned(7).to_string(), "risk-desk_2@7");
        for bad in [
            "",
            "Analyst",
            "a@0",
            "a@",
            "a@x",
            "@2",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(DefinitionRef::parse(bad).is_err(), "{bad}");
        }
        assert!(DefinitionRef::parse("a@0").unwrap_err().contains("from 1"));
    }
}
