//! Connectivity of a run or job as plain data: the providers it needs (LLM endpoints, data
//! sources, venues, the API), which environment variables they read, and the records of their
//! readiness and of a probe of their endpoints.
//!
//! Two files record them in a run or job folder:
//!
//! - [`READINESS_FILE`] (`connectivity_readiness.json`): `{"generated_at", "ready", "providers":
//!   [{"name", "kind", "ready", "env": [{"var", "set", "required"}]}]}`. A provider is ready
//!   when every required variable is set (non-empty); the whole is ready when every provider is.
//! - [`PROBE_FILE`] (`connectivity_probe.json`): `{"generated_at", "ok", "probes": [{"name",
//!   "url", "ok", "status", "latency_ms", "error", "skipped"}]}`. `ok` is true when every probe
//!   that ran got a 2xx answer.
//!
//! Nothing here reads the environment or the network: [`readiness`] takes the environment as a
//! function, and the probe itself lives in `tradeloom-net`.

use serde::{Deserialize, Serialize};

/// The file name of the readiness record.
pub const READINESS_FILE: &str = "connectivity_readiness.json";
/// The file name of the probe record.
pub const PROBE_FILE: &str = "connectivity_probe.json";

/// What a provider is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// An OpenAI-compatible LLM endpoint.
    Llm,
    /// A source of market data or news.
    Data,
    /// Where orders go (the simulated venue of a backtest).
    Venue,
    /// The tradeloom REST API.
    Api,
}

/// An environment variable a provider reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvRequirement {
    /// The variable's name.
    pub var: String,
    /// Without it the provider cannot work (e.g. a model's `api_key_env`).
    pub required: bool,
}

/// A read-only URL that shows whether an endpoint answers (`GET`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The provider's name, shown in the probe record.
    pub name: String,
    /// The URL to `GET`, without credentials.
    pub url: String,
}

/// A provider of a run spec or simulation config, as the readiness check and probe see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// A name unique within the run or job (a model's name, a data file's symbol).
    pub name: String,
    /// What it is.
    pub kind: ProviderKind,
    /// The environment variables it reads.
    pub env: Vec<EnvRequirement>,
    /// The endpoint to probe, for providers reached over HTTP.
    pub endpoint: Option<Endpoint>,
}

impl Provider {
    /// A provider that needs no variable and has no endpoint (local files, the simulated venue).
    pub fn local(name: impl Into<String>, kind: ProviderKind) -> Self {
        Self {
            name: name.into(),
            kind,
            env: Vec::new(),
            endpoint: None,
        }
    }
}

/// `connectivity_readiness.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// When it was assessed, RFC 3339.
    pub generated_at: String,
    /// Every provider is ready.
    pub ready: bool,
    /// Each provider, in the order of the spec or config.
    pub providers: Vec<ProviderReadiness>,
}

/// One provider of [`Readiness`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderReadiness {
    /// The provider's name.
    pub name: String,
    /// What it is.
    pub kind: ProviderKind,
    /// Every required variable is set.
    pub ready: bool,
    /// Each variable it reads.
    pub env: Vec<EnvStatus>,
}

/// Whether one variable is set; its value is never recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvStatus {
    /// The variable's name.
    pub var: String,
    /// Set to a non-empty value.
    pub set: bool,
    /// Without it the provider cannot work.
    pub required: bool,
}

impl Readiness {
    /// `(provider, variable)` of every required variable that is not set.
    pub fn missing(&self) -> Vec<(&str, &str)> {
        self.providers
            .iter()
            .flat_map(|p| {
                p.env
                    .iter()
                    .filter(|e| e.required && !e.set)
                    .map(move |e| (p.name.as_str(), e.var.as_str()))
            })
            .collect()
    }
}

/// Readiness of `providers`; `is_set(var)` says whether a variable is set to a non-empty value
/// (the caller reads the environment).
pub fn readiness(
    providers: &[Provider],
    generated_at: String,
    is_set: impl Fn(&str) -> bool,
) -> Readiness {
    let providers: Vec<ProviderReadiness> = providers
        .iter()
        .map(|p| {
            let env: Vec<EnvStatus> = p
                .env
                .iter()
                .map(|e| EnvStatus {
                    var: e.var.clone(),
                    set: is_set(&e.var),
                    required: e.required,
                })
                .collect();
            ProviderReadiness {
                name: p.name.clone(),
                kind: p.kind,
                ready: env.iter().all(|e| e.set || !e.required),
                env,
            }
        })
        .collect();
    Readiness {
        generated_at,
        ready: providers.iter().all(|p| p.ready),
        providers,
    }
}

/// `connectivity_probe.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// When the probe started, RFC 3339.
    pub generated_at: String,
    /// Every probe that ran got a 2xx answer.
    pub ok: bool,
    /// Each endpoint, in the order of the providers.
    pub probes: Vec<ProbeResult>,
}

/// One endpoint of a [`ProbeReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The provider's name.
    pub name: String,
    /// The URL probed (or not).
    pub url: String,
    /// A 2xx answer; false when the probe failed or was skipped.
    pub ok: bool,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Time to the response head, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Why the probe failed, or why it was skipped.
    pub error: Option<String>,
    /// Not contacted: the endpoint is not on this host (or its URL is unusable).
    #[serde(default)]
    pub skipped: bool,
}

impl ProbeReport {
    /// A report of no endpoints (nothing to probe): `ok`.
    pub fn empty(generated_at: String) -> Self {
        Self {
            generated_at,
            ok: true,
            probes: Vec::new(),
        }
    }

    /// The probes that ran and failed.
    pub fn failures(&self) -> impl Iterator<Item = &ProbeResult> {
        self.probes.iter().filter(|p| !p.skipped && !p.ok)
    }
}

/// The endpoints of `providers`, in order.
pub fn endpoints(providers: &[Provider]) -> Vec<Endpoint> {
    providers
        .iter()
        .filter_map(|p| p.endpoint.clone())
        .collect()
}

/// What a run or job found out about its providers before it started: written into its folder
/// as [`READINESS_FILE`] and [`PROBE_FILE`].
#[derive(Clone, Debug, PartialEq)]
pub struct Connectivity {
    /// Which variables are set.
    pub readiness: Readiness,
    /// What the endpoints answered.
    pub probe: ProbeReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llm(name: &str, var: Option<&str>, url: &str) -> Provider {
        Provider {
            name: name.into(),
            kind: ProviderKind::Llm,
            env: var
                .map(|v| EnvRequirement {
                    var: v.into(),
                    required: true,
                })
                .into_iter()
                .collect(),
            endpoint: Some(Endpoint {
                name: name.into(),
                url: url.into(),
            }),
        }
    }

    #[test]
    fn readiness_lists_required_and_optional_variables() {
        let mut api = Provider::local("api", ProviderKind::Api);
        api.env.push(EnvRequirement {
            var: "TL_KEY".into(),
            required: false,
        });
        let providers = vec![
            llm("gpt", Some("TL_OPENAI"), "https://api.openai.com/v1/models"),
            llm("mock", None, "http://127.0.0.1:1/v1/models"),
            Provider::local("sim", ProviderKind::Venue),
            api,
        ];
        let set = |v: &str| v == "TL_OPENAI";
        let r = readiness(&providers, "t".into(), set);
        assert!(r.ready);
        assert!(r.missing().is_empty());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["providers"][0]["kind"], "llm");
        assert_eq!(
            json["providers"][0]["env"][0],
            serde_json::json!({"var": "TL_OPENAI", "set": true, "required": true})
        );
        assert_eq!(json["providers"][3]["env"][0]["set"], false);
        assert_eq!(json["providers"][3]["ready"], true);

        let r = readiness(&providers, "t".into(), |_| false);
        assert!(!r.ready);
        assert!(!r.providers[0].ready);
        assert!(r.providers[1].ready && r.providers[2].ready && r.providers[3].ready);
        assert_eq!(r.missing(), vec![("gpt", "TL_OPENAI")]);
        assert_eq!(endpoints(&providers).len(), 2);
    }
}
