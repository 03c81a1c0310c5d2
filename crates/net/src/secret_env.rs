//! [`SecretEnv`]: which environment variables API callers and workflow definitions may name as
//! the source of a secret (an LLM API key, a secret HTTP header). The server's environment holds
//! more than the keys meant for models (database passwords, cloud credentials, other services'
//! tokens); naming any variable next to an endpoint of one's choosing would send its value
//! there. Only the variables the operator allow-lists can be named.

use std::collections::BTreeSet;

/// Name prefixes allowed without being listed: the operator opts a variable in by its name.
/// `TRADELOOM_LLM_KEY_` for model API keys, `TRADELOOM_SECRET_` for other secrets (HTTP headers).
pub const SECRET_ENV_PREFIXES: [&str; 2] = ["TRADELOOM_LLM_KEY_", "TRADELOOM_SECRET_"];

/// The allow-list of secret environment variables: names listed explicitly (`serve
/// --llm-key-env NAME`) plus every name with one of [`SECRET_ENV_PREFIXES`]. The default
/// allows the prefixes only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEnv {
    names: BTreeSet<String>,
    prefixes: Vec<String>,
}

impl Default for SecretEnv {
    fn default() -> Self {
        Self::new(std::iter::empty::<String>())
    }
}

/// Why a secret could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretEnvError {
    /// The variable is not on the allow-list. The message names the variable and how to allow
    /// it; the value is never read.
    #[error(
        "environment variable `{name}` is not on this server's allow-list of secret variables; the operator allows it with `serve --llm-key-env {name}`, or names it with a prefix {}",
        prefixes_text()
    )]
    NotAllowed { name: String },
    /// The variable is allowed but not set (or not valid Unicode).
    #[error("environment variable `{name}` is not set")]
    NotSet { name: String },
}

fn prefixes_text() -> String {
    SECRET_ENV_PREFIXES
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl SecretEnv {
    /// The allow-list of `names` plus the documented prefixes.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            names: names
                .into_iter()
                .map(Into::into)
                .map(|n: String| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
            prefixes: SECRET_ENV_PREFIXES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        }
    }

    /// The names listed explicitly (the prefixes aside).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Whether `name` may be named by API callers and workflows.
    pub fn allows(&self, name: &str) -> bool {
        self.names.contains(name)
            || self
                .prefixes
                .iter()
                .any(|p| name.len() > p.len() && name.starts_with(p.as_str()))
    }

    /// `Ok` when `name` is allowed, without reading it.
    pub fn check(&self, name: &str) -> Result<(), SecretEnvError> {
        if self.allows(name) {
            Ok(())
        } else {
            Err(SecretEnvError::NotAllowed {
                name: name.to_owned(),
            })
        }
    }

    /// The value of `name`, if it is allowed and set. The only way tradeloom reads a secret
    /// named by a caller.
    pub fn read(&self, name: &str) -> Result<String, SecretEnvError> {
        self.check(name)?;
        std::env::var(name).map_err(|_| SecretEnvError::NotSet {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_and_prefixed_names_only() {
        let secrets = SecretEnv::new(["OPENAI_API_KEY", " "]);
        assert!(secrets.allows("OPENAI_API_KEY"));
        assert!(secrets.allows("TRADELOOM_LLM_KEY_LOCAL"));
        assert!(secrets.allows("TRADELOOM_SECRET_HOOK"));
        for refused in [
            "HOME",
            "DATABASE_URL",
            "OPENAI_API_KEY2",
            "TRADELOOM_LLM_KEY_",
            "",
        ] {
            assert!(!secrets.allows(refused), "{refused}");
        }
        assert_eq!(secrets.names().collect::<Vec<_>>(), ["OPENAI_API_KEY"]);
        let e = SecretEnv::default().read("PATH").unwrap_err().to_string();
        assert!(
            e.contains("`PATH`")
                && e.contains("--llm-key-env PATH")
                && e.contains("TRADELOOM_LLM_KEY_"),
            "{e}"
        );
        assert!(!e.contains('/'), "the value is never read: {e}");
        assert_eq!(
            SecretEnv::default().read("TRADELOOM_LLM_KEY_SURELY_UNSET_41"),
            Err(SecretEnvError::NotSet {
                name: "TRADELOOM_LLM_KEY_SURELY_UNSET_41".into()
            })
        );
    }
}
