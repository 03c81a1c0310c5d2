//! The start-up log line of how the API is guarded.

use std::net::IpAddr;

use tradeloom_store::{ApiKey, Store};

use crate::{AuthMode, RateLimits};

/// Logs how the server is guarded, and warns about the two easy mistakes: no auth on a
/// public address, and auth required with no key to pass it.
pub(super) async fn log_access(store: &dyn Store, mode: AuthMode, ip: IpAddr, limits: &RateLimits) {
    let per = |n: u32, unit: &str| {
        if n == 0 {
            "unlimited".to_string()
        } else {
            format!("{n}/{unit}")
        }
    };
    tracing::info!(
        auth = %mode,
        global = %per(limits.global_per_s, "s"),
        per_key = %per(limits.per_key_per_s, "s"),
        runs_light = %per(limits.runs_light_per_min, "min"),
        runs_standard = %per(limits.runs_standard_per_min, "min"),
        runs_heavy = %per(limits.runs_heavy_per_min, "min"),
        "API access"
    );
    match mode {
        AuthMode::Off if !ip.to_canonical().is_loopback() => tracing::warn!(
            %ip,
            "auth is off on a non-loopback address: anyone who can reach it is an admin"
        ),
        AuthMode::Off => {}
        AuthMode::Required => match store.list_api_keys().await {
            Ok(keys) if keys.iter().all(ApiKey::is_revoked) => tracing::warn!(
                "auth is required but no API key is active; create one with \
                 `tradeloom keys create --name NAME --role admin`"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot list API keys"),
        },
    }
}
