//! The readiness and probe of a set of providers from this process, and their text for a
//! terminal.

use super::{
    DEFAULT_PROBE_TIMEOUT, Endpoint, EnvRequirement, ProbeReport, Provider, ProviderKind,
    Readiness, endpoints, env_is_set, now_rfc3339, probe, readiness,
};

/// The tradeloom API at `url` as a provider: `TRADELOOM_API_KEY` (optional, needed only when
/// the API runs with `--auth on`) and its `/health` endpoint, without any credentials the URL
/// carries.
pub fn api_provider(url: &str) -> Provider {
    Provider {
        name: "tradeloom-api".to_string(),
        kind: ProviderKind::Api,
        env: vec![EnvRequirement {
            var: "TRADELOOM_API_KEY".to_string(),
            // Only when the API runs with --auth on.
            required: false,
        }],
        endpoint: Some(Endpoint {
            name: "tradeloom-api".to_string(),
            // Written to connectivity files: without the credentials a URL may carry.
            url: tradeloom_core::redact_userinfo(&format!("{}/health", url.trim_end_matches('/'))),
        }),
    }
}

/// Probes the endpoints of `providers` on a runtime of its own (for callers outside one);
/// `Err` when that runtime cannot start.
pub fn probe_blocking(providers: &[Provider]) -> std::io::Result<ProbeReport> {
    let endpoints = endpoints(providers);
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(probe(&endpoints, now_rfc3339(), DEFAULT_PROBE_TIMEOUT)))
}

/// Readiness of `providers` from this process's environment, and the probe of their endpoints
/// (an empty report when they have none).
pub fn assess(providers: &[Provider]) -> std::io::Result<(Readiness, ProbeReport)> {
    let readiness = readiness(providers, now_rfc3339(), env_is_set);
    let probe = if endpoints(providers).is_empty() {
        ProbeReport::empty(now_rfc3339())
    } else {
        probe_blocking(providers)?
    };
    Ok((readiness, probe))
}

/// One block per provider (its state and environment variables), one line per probe, and a
/// final `connectivity: …` verdict.
pub fn render_text(readiness: &Readiness, probe: Option<&ProbeReport>) -> String {
    let mut out = String::new();
    for p in &readiness.providers {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let state = if p.ready { "ready" } else { "NOT READY" };
        out.push_str(&format!("{state:>9}  {kind:<5}  {}\n", p.name));
        for e in &p.env {
            let set = if e.set { "set" } else { "not set" };
            let need = if e.required { "required" } else { "optional" };
            out.push_str(&format!("           {} {set} ({need})\n", e.var));
        }
    }
    if let Some(report) = probe {
        for p in &report.probes {
            let state = if p.skipped {
                "skipped"
            } else if p.ok {
                "up"
            } else {
                "DOWN"
            };
            let detail = match (&p.status, &p.latency_ms, &p.error) {
                (Some(s), Some(ms), None) => format!("HTTP {s}, {ms:.1} ms"),
                (_, _, Some(e)) => e.clone(),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{state:>9}  probe  {} {}  {detail}\n",
                p.name, p.url
            ));
        }
    }
    out.push_str(&format!(
        "connectivity: {}{}\n",
        if readiness.ready {
            "ready"
        } else {
            "not ready"
        },
        match probe {
            Some(r) if r.failures().next().is_some() => ", probe failed",
            Some(_) => ", probe ok",
            None => "",
        }
    ));
    out
}
