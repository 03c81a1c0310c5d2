//! API keys of the REST API as stored: a unique name, a [`Role`], the display prefix of the
//! secret and the sha256 of the whole secret. The secret itself is never stored: it is made by
//! [`NewApiKey::generate`], shown to its owner once, and afterwards only its hash is compared.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::FromRow;

use crate::error::StoreError;
use crate::sql::corrupt;

/// What every secret starts with, so a leaked one is recognisable (e.g. by secret scanners).
pub const SECRET_PREFIX: &str = "tl_";

/// Random bytes in a secret (hex-encoded after [`SECRET_PREFIX`]).
const SECRET_BYTES: usize = 32;

/// Characters of the secret kept for display (`tl_` and 8 hex digits): enough to tell keys
/// apart in a listing, far too few to guess the rest.
const DISPLAY_PREFIX_LEN: usize = SECRET_PREFIX.len() + 8;

/// What a key may do. Ordered: a role allows everything a lower one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads (`GET`/`HEAD`).
    Viewer,
    /// Reads and writes: start runs, decide approvals, patch runs.
    Operator,
    /// Everything, including deleting workflows and managing API keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `required` may.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`; expected viewer, operator or admin"))
    }
}

/// A key to store: its hash and display prefix, never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    /// [`api_key_hash`] of the secret.
    pub key_hash: String,
    /// The first characters of the secret, for listings.
    pub prefix: String,
    /// Workflow runs the key may have active at once (pending, running, waiting or paused);
    /// a start beyond it is queued or refused. `None`: no limit.
    pub max_concurrent_runs: Option<u32>,
}

impl NewApiKey {
    /// A fresh secret (`tl_` + 64 hex digits from 32 bytes of the operating system's random
    /// source) and the key to store for it. Show the secret to its owner once and drop it.
    pub fn generate(name: &str, role: Role) -> Result<(NewApiKey, String), StoreError> {
        check_key_name(name)?;
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| {
            StoreError::Invalid(format!(
                "cannot read the operating system's random source for an API key: {e}"
            ))
        })?;
        let secret = format!("{SECRET_PREFIX}{}", hex::encode(bytes));
        let key = NewApiKey {
            name: name.to_string(),
            role,
            key_hash: api_key_hash(&secret),
            prefix: secret[..DISPLAY_PREFIX_LEN].to_string(),
            max_concurrent_runs: None,
        };
        Ok((key, secret))
    }

    /// This key limited to `max` active workflow runs at once (at least 1).
    pub fn with_max_concurrent_runs(mut self, max: Option<u32>) -> Result<Self, StoreError> {
        if max == Some(0) {
            return Err(StoreError::Invalid(
                "max_concurrent_runs must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        self.max_concurrent_runs = max;
        Ok(self)
    }
}

/// The stored form of a secret: lower-case hex sha256 of its UTF-8 bytes. The secret has 256
/// random bits, so a fast unsalted hash is enough (no password stretching needed).
pub fn api_key_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A stored API key (without its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// UUIDv7.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the secret (`tl_` and 8 hex digits).
    pub prefix: String,
    /// Workflow runs the key may have active at once; `None`: no limit.
    pub max_concurrent_runs: Option<u32>,
    pub created_at: DateTime<Utc>,
    /// Updated by the server at most about once a minute per key.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set when revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// Names are what handlers record as "who" (e.g. the `by` of an approval): 1 to 64 letters,
/// digits, `-`, `_`, `.` or `@`.
pub(crate) fn check_key_name(name: &str) -> Result<(), StoreError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(StoreError::Invalid(format!(
            "API key name `{name}` must be 1 to 64 characters of letters, digits, `-`, `_`, `.` or `@`"
        )));
    }
    Ok(())
}

pub(crate) const API_KEY_COLUMNS: &str =
    "id, name, role, prefix, max_concurrent_runs, created_at, last_used_at, revoked_at";

#[derive(FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    name: String,
    role: String,
    prefix: String,
    max_concurrent_runs: Option<i32>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    pub(crate) fn into_key(self) -> Result<ApiKey, StoreError> {
        Ok(ApiKey {
            role: self.role.parse().map_err(corrupt("api_keys.role"))?,
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            max_concurrent_runs: self.max_concurrent_runs.and_then(|n| u32::try_from(n).ok()),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_hex_and_only_their_hash_is_kept() {
        let (key, secret) = NewApiKey::generate("ci", Role::Operator).unwrap();
        assert!(secret.starts_with("tl_"), "{secret}");
        assert_eq!(secret.len(), 3 + 64);
        assert!(secret[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key.key_hash, api_key_hash(&secret));
        assert_ne!(key.key_hash, secret);
        assert_eq!(key.prefix, &secret[..11]);
        let (_, other) = NewApiKey::generate("ci", Role::Operator).unwrap();
        assert_ne!(secret, other, "two secrets never repeat");
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            api_key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_parse_print_and_order() {
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>(), Ok(r));
        }
        let e = "owner".parse::<Role>().unwrap_err();
        assert_eq!(
            e,
            "unknown role `owner`; expected viewer, operator or admin"
        );
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
    }

    #[test]
    fn names_are_checked() {
        for ok in ["ci", "alice@example.com", "deploy-bot_2.prod"] {
            assert!(check_key_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "new\nline", "ünï", &"x".repeat(65)] {
            let e = NewApiKey::generate(bad, Role::Viewer).unwrap_err();
            assert!(e.to_string().contains("must be 1 to 64"), "{bad}: {e}");
        }
    }
}
