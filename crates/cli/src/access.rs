//! API access from the command line: `tradeloom keys create|list|revoke` (straight on the
//! store) and the auth and rate-limit flags of `tradeloom serve`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use tradeloom_server::{AuthMode, RateLimits};
use tradeloom_store::{ApiKey, NewApiKey, Role, api_keys_table};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print its secret, once: only its hash is stored.
    Create {
        /// A unique name (1 to 64 letters, digits, `-`, `_`, `.`, `@`); recorded as who acted.
        #[arg(long)]
        name: String,
        /// viewer (reads), operator (reads and writes) or admin (everything, and /keys).
        #[arg(long)]
        role: Role,
        /// Workflow runs the key may have active at once (at least 1; default: no limit); a
        /// start beyond it is queued, or refused with `"on_limit": "reject"`.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_concurrent_runs: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Every key (never the secrets), revoked ones included.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name; it stops working at once, also in a running server.
    Revoke {
        /// The key's id or name.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// The access flags of `tradeloom serve`.
#[derive(Args, Debug)]
pub struct ServeAccess {
    /// `required`: every route but /health, /openapi.json and /docs needs
    /// `Authorization: Bearer <key>`; `off`: every request is an anonymous admin.
    /// [default: off on a loopback --addr, required anywhere else]
    #[arg(long, env = "TRADELOOM_AUTH", value_name = "required|off")]
    pub auth: Option<AuthMode>,
    /// Requests per second over all clients (0 = unlimited).
    #[arg(long, env = "TRADELOOM_RATE_LIMIT_GLOBAL", value_name = "N",
          default_value_t = RateLimits::default().global_per_s)]
    pub rate_limit_global: u32,
    /// Requests per second per API key, or per client address when auth is off (0 = unlimited).
    #[arg(long, env = "TRADELOOM_RATE_LIMIT_PER_KEY", value_name = "N",
          default_value_t = RateLimits::default().per_key_per_s)]
    pub rate_limit_per_key: u32,
    /// Workflow runs per minute per key for workflows without agent nodes (0 = unlimited).
    #[arg(long, env = "TRADELOOM_RATE_LIMIT_RUNS_LIGHT", value_name = "N",
          default_value_t = RateLimits::default().runs_light_per_min)]
    pub rate_limit_runs_light: u32,
    /// Workflow runs per minute per key for workflows with 1 to 3 agent nodes (0 = unlimited).
    #[arg(long, env = "TRADELOOM_RATE_LIMIT_RUNS_STANDARD", value_name = "N",
          default_value_t = RateLimits::default().runs_standard_per_min)]
    pub rate_limit_runs_standard: u32,
    /// Workflow runs per minute per key for workflows with 4 or more agent nodes
    /// (0 = unlimited).
    #[arg(long, env = "TRADELOOM_RATE_LIMIT_RUNS_HEAVY", value_name = "N",
          default_value_t = RateLimits::default().runs_heavy_per_min)]
    pub rate_limit_runs_heavy: u32,
    /// A name (besides IP addresses and `localhost`) the server answers for in the `Host`
    /// header, e.g. the name a proxy or the LAN uses; `*` accepts any. Repeatable or
    /// comma-separated. Other hosts get 421: the check that stops DNS rebinding.
    #[arg(
        long = "allowed-host",
        env = "TRADELOOM_ALLOWED_HOSTS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// A web origin (`https://dashboard.example:8443`) whose pages may call the API from a
    /// browser (CORS). Repeatable or comma-separated; other cross-origin browser requests get
    /// 403.
    #[arg(
        long = "allow-origin",
        env = "TRADELOOM_ALLOW_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,
    /// The folder whose simulation configs (and workflow run specs) API callers and workflows
    /// may name with `config_path`/`spec_path`. Without it those paths are refused.
    #[arg(long, env = "TRADELOOM_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<std::path::PathBuf>,
}

impl ServeAccess {
    /// `--config-dir`, checked (it must be an existing folder).
    pub fn config_dir(&self) -> Result<Option<tradeloom_agents::ConfigDir>> {
        self.config_dir
            .as_deref()
            .map(|dir| {
                tradeloom_agents::ConfigDir::new(dir)
                    .map_err(|e| anyhow::anyhow!("--config-dir {}: {e}", dir.display()))
            })
            .transpose()
    }

    /// `--allowed-host` entries, trimmed, without empty ones.
    pub fn allowed_hosts(&self) -> Vec<String> {
        trimmed(&self.allowed_hosts)
    }

    /// `--allow-origin` entries, checked to be `http(s)://host[:port]`.
    pub fn allow_origins(&self) -> Result<Vec<String>> {
        let origins = trimmed(&self.allow_origins);
        for o in &origins {
            if !tradeloom_server::is_origin(o) {
                anyhow::bail!(
                    "--allow-origin `{o}` is not an origin; expected `http(s)://host[:port]` \
                     (no path, no wildcard)"
                );
            }
        }
        Ok(origins)
    }

    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            global_per_s: self.rate_limit_global,
            per_key_per_s: self.rate_limit_per_key,
            runs_light_per_min: self.rate_limit_runs_light,
            runs_standard_per_min: self.rate_limit_runs_standard,
            runs_heavy_per_min: self.rate_limit_runs_heavy,
        }
    }
}

fn trimmed(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// `tradeloom keys …`.
pub fn keys(data_dir: &Path, database_url: Option<&str>, command: KeysCommand) -> Result<ExitCode> {
    crate::store::runtime()?.block_on(async {
        let store = crate::store::open(data_dir, database_url).await?;
        match command {
            KeysCommand::Create {
                name,
                role,
                max_concurrent_runs,
                json,
            } => {
                let (new, secret) = NewApiKey::generate(&name, role)?;
                let new = new.with_max_concurrent_runs(max_concurrent_runs)?;
                let key = store.create_api_key(&new).await?;
                if json {
                    let mut out = key.summary_json();
                    out["key"] = json!(secret);
                    println!("{out}");
                } else {
                    println!("created API key `{}` ({}), id {}", key.name, key.role, key.id);
                    println!("key: {secret}");
                    println!(
                        "Store the key now: only its hash is kept and it cannot be shown again. \
                         Send it as `Authorization: Bearer <key>`."
                    );
                }
            }
            KeysCommand::List { json } => {
                let keys = store.list_api_keys().await?;
                if json {
                    let list: Vec<_> = keys.iter().map(ApiKey::summary_json).collect();
                    println!("{}", json!({"keys": list}));
                } else if keys.is_empty() {
                    println!(
                        "no API keys; create one with `tradeloom keys create --name NAME --role admin`"
                    );
                } else {
                    print!("{}", api_keys_table(&keys));
                }
            }
            KeysCommand::Revoke { id, json } => {
                let key = store.revoke_api_key(&id).await?;
                if json {
                    println!("{}", key.summary_json());
                } else {
                    println!("revoked API key `{}` ({}), id {}", key.name, key.role, key.id);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
