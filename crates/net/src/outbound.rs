//! [`Outbound`]: what a component that talks to the outside needs, in one value: the guarded
//! client and the allow-list of secret variables.

use crate::client::GuardedClient;
use crate::policy::{AllowHostError, SsrfPolicy};
use crate::secret_env::SecretEnv;

/// The guarded client every outbound request goes through, and the secret variables requests
/// may carry. `tradeloom serve` builds one from `--http-allow`, `--http-deny-path` and
/// `--llm-key-env` and hands it to the simulator and the workflow runtime.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub http: GuardedClient,
    pub secrets: SecretEnv,
}

impl Outbound {
    /// `policy` and `secrets`; fails if an `allow_hosts` entry is malformed.
    pub fn new(policy: SsrfPolicy, secrets: SecretEnv) -> Result<Self, AllowHostError> {
        Ok(Self {
            http: GuardedClient::new(policy)?,
            secrets,
        })
    }

    /// The default policy (public addresses only) and the default allow-list (the documented
    /// prefixes only).
    pub fn strict() -> Self {
        Self {
            // The default policy has no allow_hosts entry to be malformed.
            http: GuardedClient::strict(),
            secrets: SecretEnv::default(),
        }
    }
}
