//! Connectivity of a run or job: which environment variables its providers (LLM endpoints, data
//! sources, venues, the API) need and whether they are set — readiness, never the values — and a
//! read-only probe of the endpoints that are on this host.
//!
//! Two files record them in a run or job folder:
//!
//! - `connectivity_readiness.json`: `{"generated_at", "ready", "providers": [{"name", "kind",
//!   "ready", "env": [{"var", "set", "required"}]}]}`. A provider is ready when every required
//!   variable is set (non-empty); the whole is ready when every provider is.
//! - `connectivity_probe.json`: `{"generated_at", "ok", "probes": [{"name", "url", "ok",
//!   "status", "latency_ms", "error", "skipped"}]}`. Only loopback endpoints are contacted (one
//!   `GET`, no redirects, no credentials); any other endpoint is recorded with `skipped: true` and
//!   the reason in `error`. `ok` is true when every probe that ran got a 2xx answer.
//!
//! The records and the providers are plain data of `tradeloom-core` ([`tradeloom_core::connectivity`],
//! re-exported here); [`readiness`] is pure (the environment comes in as a function); [`probe`]
//! does the I/O.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use tradeloom_core::connectivity::{
    Connectivity, Endpoint, EnvRequirement, EnvStatus, PROBE_FILE, ProbeReport, ProbeResult,
    Provider, ProviderKind, ProviderReadiness, READINESS_FILE, Readiness, endpoints, readiness,
};

use crate::address::is_loopback;

mod assess;

pub use assess::{api_provider, assess, probe_blocking, render_text};

/// How long one probe may take, connection included.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the process environment has `var` set to a non-empty value.
pub fn env_is_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// Probes each endpoint in turn (loopback only, see the module documentation).
pub async fn probe(endpoints: &[Endpoint], generated_at: String, timeout: Duration) -> ProbeReport {
    let mut probes = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        probes.push(probe_one(endpoint, timeout).await);
    }
    ProbeReport {
        generated_at,
        ok: probes.iter().all(|p| p.skipped || p.ok),
        probes,
    }
}

/// Where a probe may connect: the host's addresses when every one of them is loopback.
enum Target {
    Loopback {
        host: String,
        addrs: Vec<SocketAddr>,
    },
    Skip(String),
}

async fn target_of(url: &reqwest::Url) -> Target {
    if !matches!(url.scheme(), "http" | "https") {
        return Target::Skip(format!(
            "not probed: scheme `{}` (only http and https)",
            url.scheme()
        ));
    }
    let Some(port) = url.port_or_known_default() else {
        return Target::Skip("not probed: no port".to_string());
    };
    let Some(host) = url.host_str() else {
        return Target::Skip("not probed: the URL has no host".to_string());
    };
    // IPv6 literals come bracketed; the URL parser has already normalised IPv4 forms.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let (host, addrs): (String, Vec<SocketAddr>) = match literal.parse::<IpAddr>() {
        Ok(ip) => (host.to_string(), vec![SocketAddr::new(ip, port)]),
        // Only `localhost` names are resolved (no DNS query leaves the host for other names),
        // and probed only when every address they have is loopback.
        Err(_) if !is_localhost_name(host) => {
            return Target::Skip(format!(
                "not probed: `{host}` is not a loopback address; only endpoints on this host \
                 (127.0.0.0/8, ::1, localhost) are probed"
            ));
        }
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => (host.to_string(), addrs.collect()),
            Err(e) => {
                return Target::Skip(format!("not probed: cannot resolve `{host}`: {e}"));
            }
        },
    };
    match addrs.iter().find(|a| !is_loopback(a.ip())) {
        None if !addrs.is_empty() => Target::Loopback { host, addrs },
        None => Target::Skip(format!("not probed: `{host}` resolves to no address")),
        Some(a) => Target::Skip(format!(
            "not probed: `{host}` is not a loopback address ({}); only endpoints on this host are probed",
            a.ip()
        )),
    }
}

fn is_localhost_name(host: &str) -> bool {
    let host = crate::host::normalize(host);
    host == "localhost" || host.ends_with(".localhost")
}

async fn probe_one(endpoint: &Endpoint, timeout: Duration) -> ProbeResult {
    let mut result = ProbeResult {
        name: endpoint.name.clone(),
        url: endpoint.url.clone(),
        ok: false,
        status: None,
        latency_ms: None,
        error: None,
        skipped: false,
    };
    let url = match reqwest::Url::parse(&endpoint.url) {
        Ok(url) => url,
        Err(e) => {
            result.skipped = true;
            result.error = Some(format!("not probed: invalid URL: {e}"));
            return result;
        }
    };
    let (host, addrs) = match target_of(&url).await {
        Target::Loopback { host, addrs } => (host, addrs),
        Target::Skip(reason) => {
            result.skipped = true;
            result.error = Some(reason);
            return result;
        }
    };
    install_crypto_provider();
    // Pinned to the checked addresses, no redirects, no proxy: the probe cannot leave the host.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .resolve_to_addrs(&host, &addrs)
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(format!("cannot build the HTTP client: {e}"));
            return result;
        }
    };
    let started = Instant::now();
    match client.get(url).send().await {
        Ok(response) => {
            let status = response.status();
            result.latency_ms = Some((started.elapsed().as_secs_f64() * 1e6).round() / 1e3);
            result.status = Some(status.as_u16());
            result.ok = status.is_success();
            if !result.ok {
                result.error = Some(format!("HTTP {status}"));
            }
        }
        Err(e) => {
            let reason = if e.is_timeout() {
                format!("timed out after {} ms", timeout.as_millis())
            } else if e.is_connect() {
                "connection refused or unreachable".to_string()
            } else {
                "request failed".to_string()
            };
            result.error = Some(format!("{reason}: {}", error_chain(&e)));
        }
    }
    result
}

/// reqwest is built without a crypto provider of its own (see [`crate::GuardedClient::new`]).
fn install_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed: that one is used, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Now, RFC 3339 in UTC with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
    fn no_values_in_the_record() {
        let providers = vec![llm("gpt", Some("PATH"), "http://127.0.0.1:1/v1/models")];
        let r = readiness(&providers, "t".into(), env_is_set);
        assert!(r.ready, "PATH is set in any test environment");
        let text = serde_json::to_string(&r).unwrap();
        let path = std::env::var("PATH").unwrap();
        assert!(!text.contains(&path), "{text}");
    }

    #[tokio::test]
    async fn non_loopback_and_bad_urls_are_skipped_without_contact() {
        let eps = [
            Endpoint {
                name: "public".into(),
                url: "http://93.184.216.34/v1/models".into(),
            },
            Endpoint {
                name: "named".into(),
                url: "https://api.openai.com/v1/models".into(),
            },
            Endpoint {
                name: "private".into(),
                url: "http://10.1.2.3:8080/health".into(),
            },
            Endpoint {
                name: "nat64".into(),
                url: "http://[64:ff9b::7f00:1]:8080/health".into(),
            },
            Endpoint {
                name: "bad".into(),
                url: "not a url".into(),
            },
            Endpoint {
                name: "ftp".into(),
                url: "ftp://127.0.0.1/x".into(),
            },
        ];
        let report = probe(&eps, "t".into(), Duration::from_millis(200)).await;
        assert!(report.ok, "skipped probes do not fail the report");
        for p in &report.probes {
            assert!(p.skipped && !p.ok && p.status.is_none(), "{p:?}");
            assert!(
                p.error.as_deref().unwrap().starts_with("not probed"),
                "{p:?}"
            );
        }
        assert!(
            report.probes[1]
                .error
                .as_deref()
                .unwrap()
                .contains("not a loopback address"),
            "{:?}",
            report.probes[1]
        );
        assert!(
            report.probes[0]
                .error
                .as_deref()
                .unwrap()
                .contains("not a loopback address"),
            "{:?}",
            report.probes[0]
        );
    }
}
