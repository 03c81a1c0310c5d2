//! Who may call what: API keys with roles, checked by one middleware ([`guard`]) in front of
//! every route, together with the global and per-key rate limits.
//!
//! Requests carry `Authorization: Bearer <key>`; `GET /ws` also takes `?api_key=<key>` because
//! browsers cannot set headers on a WebSocket upgrade. The key's sha256 is looked up in the
//! store and remembered under the store's read version (see [`tradeloom_store::ReadVersion`]):
//! a key revoked through this server (a commit) stops working with the next request; one
//! revoked by another process (`tradeloom keys revoke`, another server on the same database)
//! within [`tradeloom_store::EXTERNAL_CHECK_EVERY`] (100 ms). Which role
//! a request needs is [`required_role`]: reads need `viewer`, writes `operator`, deleting a
//! workflow and anything under `/keys` `admin`; `/health`, `/openapi.json` and `/docs` are
//! public. The caller is put in the request's extensions as a [`Principal`] (an extractor).
//!
//! With [`AuthMode::Off`] (the default on a loopback address) every request is an anonymous
//! admin.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{
    ConnectInfo, FromRequestParts, OptionalFromRequestParts, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tradeloom_store::{ReadVersion, Role, api_key_hash};

use crate::AppState;
use crate::error::ApiError;

/// How often a key's `last_used_at` is written at most (a write per request would make every
/// read a write).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Whether requests need an API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Every route but the public ones needs a valid key with the required role.
    Required,
    /// No keys: every request is an anonymous admin. Only sensible on a loopback address.
    Off,
}

impl AuthMode {
    /// The default for a server listening on `ip`: [`AuthMode::Off`] on a loopback address
    /// (`127.0.0.0/8`, `::1`, also IPv4-mapped), [`AuthMode::Required`] anywhere else,
    /// including the unspecified `0.0.0.0` and `::`.
    pub fn default_for(ip: IpAddr) -> Self {
        if ip.to_canonical().is_loopback() {
            AuthMode::Off
        } else {
            AuthMode::Required
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMode::Required => "required",
            AuthMode::Off => "off",
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(AuthMode::Required),
            "off" => Ok(AuthMode::Off),
            other => Err(format!(
                "unknown auth mode `{other}`; expected required or off"
            )),
        }
    }
}

/// Who made a request: an API key, or the anonymous admin when auth is off. Handlers take it
/// as an extractor (`principal: Principal`) to record who did something (e.g. the `by` of an
/// approval is `principal.name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The key's id; `None` for the anonymous admin.
    pub key_id: Option<String>,
    /// The key's name, or `anonymous`.
    pub name: String,
    pub role: Role,
    /// The key's `max_concurrent_runs` (workflow runs it may have active at once).
    pub max_concurrent_runs: Option<u32>,
}

impl Principal {
    /// The caller of every request when auth is off.
    pub fn anonymous() -> Self {
        Principal {
            key_id: None,
            name: "anonymous".into(),
            role: Role::Admin,
            max_concurrent_runs: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            // Only a public route (which the guard lets through unauthenticated) can get here.
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "principal_missing",
                "this route is public and has no authenticated caller",
            )
        })
    }
}

/// `Option<Principal>`: `None` only on the public routes.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// The role a request needs, or `None` for the public routes (`/health`, `/metrics`,
/// `/openapi.json`, `/docs…`, the dashboard's `/` and `/ui/…`, and approval links
/// `/approvals/links/{token}`, whose token is their credential). Paths are compared as the
/// router sees them (undecoded).
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if path == "/health"
        || path == "/metrics"
        || path == "/openapi.json"
        || path == "/docs"
        || path.starts_with("/docs/")
        || crate::dashboard::is_dashboard_path(path)
        || crate::approval_links::is_link(path)
    {
        return None;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = *method == Method::GET || *method == Method::HEAD;
    Some(match segments.as_slice() {
        ["keys", ..] => Role::Admin,
        ["workflows", _] if *method == Method::DELETE => Role::Admin,
        _ if read => Role::Viewer,
        _ => Role::Operator,
    })
}

/// Whether the key may come in the query string (`?api_key=`): only for `GET /ws`, whose
/// browser clients cannot set headers. Elsewhere a query key would end up in logs and
/// histories for nothing.
pub fn accepts_query_key(method: &Method, path: &str) -> bool {
    *method == Method::GET && path == "/ws"
}

/// At most this many keys are remembered; past it the memory starts again.
const MAX_CACHED_KEYS: usize = 10_000;

/// The authentication state of a server.
#[derive(Debug)]
pub(crate) struct Auth {
    mode: AuthMode,
    /// When each key's use was last written to the store.
    touched: Mutex<HashMap<String, Instant>>,
    /// Valid keys by the sha256 of their secret (never the secret), each with the store's read
    /// version it was looked up under: used while the version is unchanged, so a revocation
    /// (a commit) in this process is honoured by the next request, and one by another process
    /// within [`tradeloom_store::EXTERNAL_CHECK_EVERY`].
    keys: RwLock<HashMap<String, (ReadVersion, Principal)>>,
}

impl Auth {
    pub(crate) fn new(mode: AuthMode) -> Self {
        Auth {
            mode,
            touched: Mutex::new(HashMap::new()),
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// The caller whose key hashes to `hash`, if it was valid under `version`.
    fn cached_key(&self, hash: &str, version: ReadVersion) -> Option<Principal> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        match keys.get(hash) {
            Some((v, principal)) if *v == version => Some(principal.clone()),
            _ => None,
        }
    }

    fn remember_key(&self, hash: String, version: ReadVersion, principal: Principal) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(hash, (version, principal));
    }

    /// Forgets every remembered key (a key was revoked through this server).
    pub(crate) fn forget_keys(&self) {
        self.keys.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn touched(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        // A poisoned map of timestamps is still a usable map of timestamps.
        self.touched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether to write `last_used_at` of `key_id` now (then records that it was).
    fn should_touch(&self, key_id: &str, now: Instant) -> bool {
        let mut touched = self.touched();
        match touched.get(key_id) {
            Some(t) if now.saturating_duration_since(*t) < TOUCH_EVERY => false,
            _ => {
                if touched.len() >= 10_000 {
                    touched.retain(|_, t| now.saturating_duration_since(*t) < TOUCH_EVERY);
                }
                touched.insert(key_id.to_string(), now);
                true
            }
        }
    }
}

impl AppState {
    /// Sets the authentication mode (the default of [`AppState::new`] is [`AuthMode::Off`];
    /// `tradeloom serve` picks [`AuthMode::default_for`] its address unless told).
    pub fn with_auth(mut self, mode: AuthMode) -> Self {
        self.auth = std::sync::Arc::new(Auth::new(mode));
        self
    }

    pub fn auth_mode(&self) -> AuthMode {
        self.auth.mode
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }
}

fn unauthorized(reason: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        .with_details(json!({"reason": reason}))
}

/// 403 for `principal` lacking `required` on `method path`.
pub(crate) fn forbidden(
    method: &Method,
    path: &str,
    required: Role,
    principal: &Principal,
) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "`{method} {path}` needs the {required} role; API key `{}` has {}",
            principal.name, principal.role
        ),
    )
    .with_details(json!({
        "required_role": required.as_str(),
        "role": principal.role.as_str(),
        "key": principal.name,
    }))
}

/// The key of the `Authorization` header: `None` without one, 401 if it is not `Bearer <key>`.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        unauthorized(
            "malformed_header",
            "the Authorization header must be `Bearer <key>`",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, key) = value.split_once(' ').ok_or_else(malformed)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(malformed());
    }
    Ok(Some(key.to_string()))
}

/// The `api_key` query parameter (for [`accepts_query_key`] routes).
fn query_key(req: &Request) -> Option<String> {
    Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .ok()
        .and_then(|Query(mut q)| q.remove("api_key"))
        .filter(|k| !k.is_empty())
}

/// The key `req` presents: the bearer token, or on [`accepts_query_key`] routes `?api_key=`;
/// `None` without one, 401 when the header is malformed.
fn presented_key(req: &Request) -> Result<Option<String>, ApiError> {
    let mut key = bearer(req.headers())?;
    if key.is_none() && accepts_query_key(req.method(), req.uri().path()) {
        key = query_key(req);
    }
    Ok(key)
}

/// 401 for a request to a guarded route without a key.
fn missing_key(req: &Request) -> ApiError {
    let how = if accepts_query_key(req.method(), req.uri().path()) {
        "send `Authorization: Bearer <key>` or `?api_key=<key>`"
    } else {
        "send `Authorization: Bearer <key>`"
    };
    unauthorized(
        "missing_key",
        format!(
            "this route needs an API key: {how} (an admin creates keys with \
             `tradeloom keys create --name NAME --role viewer|operator|admin`)"
        ),
    )
}

/// The caller presenting `key` when auth is required: 401 unless it is a valid, unrevoked key.
async fn authenticate(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let store = state.simulator.store();
    let hash = api_key_hash(key);
    // Taken before the look-up: a revocation committed after it changes the version.
    let version = store.read_version().await?;
    let principal = match state.auth.cached_key(&hash, version) {
        Some(principal) => principal,
        None => {
            let Some(found) = store.api_key_by_hash(&hash).await? else {
                return Err(unauthorized(
                    "invalid_key",
                    "the API key is unknown or revoked",
                ));
            };
            let principal = Principal {
                key_id: Some(found.id),
                name: found.name,
                role: found.role,
                max_concurrent_runs: found.max_concurrent_runs,
            };
            state.auth.remember_key(hash, version, principal.clone());
            principal
        }
    };
    if let Some(id) = &principal.key_id
        && state.auth.should_touch(id, Instant::now())
    {
        let store = std::sync::Arc::clone(store);
        let id = id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&id).await {
                tracing::warn!(key_id = %id, error = %e, "cannot record an API key's use");
            }
        });
    }
    Ok(principal)
}

/// The client address of `req` (from the connection), `unknown` when served without one.
fn client_address(req: &Request) -> String {
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => addr.ip().to_canonical().to_string(),
        None => "unknown".to_string(),
    }
}

/// The middleware in front of every route.
///
/// With auth off every request is the anonymous admin, against the global limit (and the
/// per-client one on guarded routes). With auth required, a request with a valid key spends
/// the global and its key's budget and is checked for the route's role; any other request
/// (public routes, a missing, malformed or unknown key) spends the unauthenticated budgets
/// only (see [`RateLimiter::check_unauthenticated`](crate::RateLimiter::check_unauthenticated)),
/// so a flood of those never locks out valid keys. Public routes are served either way, with
/// the [`Principal`] in the extensions when a valid key came along.
pub(crate) async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let required = required_role(&method, &path);
    let authenticated = match state.auth.mode {
        AuthMode::Off => Ok(Principal::anonymous()),
        AuthMode::Required => match presented_key(&req) {
            Ok(Some(key)) => authenticate(&state, &key).await,
            Ok(None) => Err(missing_key(&req)),
            Err(e) => Err(e),
        },
    };
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(refusal) => {
            if let Err(e) = state
                .limiter()
                .check_unauthenticated(&client_address(&req))
                .await
            {
                return e.into_response();
            }
            return match required {
                // Public routes answer unauthenticated callers too (with less, see /health).
                None => next.run(req).await,
                Some(_) => refusal.into_response(),
            };
        }
    };
    if let Err(e) = state.limiter().check_global().await {
        return e.into_response();
    }
    // Approval links are public but spend the caller's budget like a guarded route, so a
    // client cannot try tokens (or keys, on links that need one) at the global rate.
    if required.is_some() || crate::approval_links::is_link(&path) {
        let client = match &principal.key_id {
            Some(id) => format!("key:{id}"),
            None => format!("ip:{}", client_address(&req)),
        };
        if let Err(e) = state.limiter().check_client(&client).await {
            return e.into_response();
        }
    }
    if let Some(required) = required
        && !principal.role.allows(required)
    {
        return forbidden(&method, &path, required, &principal).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_default_mode_follows_the_listen_address() {
        let cases: [(IpAddr, AuthMode); 7] = [
            (Ipv4Addr::LOCALHOST.into(), AuthMode::Off),
            (Ipv4Addr::new(127, 0, 0, 2).into(), AuthMode::Off),
            (Ipv6Addr::LOCALHOST.into(), AuthMode::Off),
            (Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), AuthMode::Off),
            (Ipv4Addr::UNSPECIFIED.into(), AuthMode::Required),
            (Ipv6Addr::UNSPECIFIED.into(), AuthMode::Required),
            (Ipv4Addr::new(192, 168, 1, 5).into(), AuthMode::Required),
        ];
        for (ip, mode) in cases {
            assert_eq!(AuthMode::default_for(ip), mode, "{ip}");
        }
    }

    #[test]
    fn modes_parse() {
        assert_eq!("required".parse(), Ok(AuthMode::Required));
        assert_eq!("off".parse(), Ok(AuthMode::Off));
        assert_eq!(
            "none".parse::<AuthMode>(),
            Err("unknown auth mode `none`; expected required or off".to_string())
        );
    }

    #[test]
    fn the_role_table() {
        let (get, head, post, put, patch, delete) = (
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        );
        let cases = [
            (&get, "/health", None),
            (&get, "/openapi.json", None),
            (&get, "/docs", None),
            (&get, "/docs/", None),
            (&get, "/docs/swagger-ui.css", None),
            (&post, "/health", None),
            (&get, "/docsx", Some(Role::Viewer)),
            (&get, "/healthz", Some(Role::Viewer)),
            (&get, "/workflows", Some(Role::Viewer)),
            (&head, "/workflows/w1", Some(Role::Viewer)),
            (&get, "/ws", Some(Role::Viewer)),
            (&get, "/results/leaderboard", Some(Role::Viewer)),
            (&post, "/workflows", Some(Role::Operator)),
            (&put, "/workflows/w1", Some(Role::Operator)),
            (&patch, "/workflows/w1", Some(Role::Operator)),
            (&post, "/workflows/w1/runs", Some(Role::Operator)),
            (&post, "/approvals/a1/decide", Some(Role::Operator)),
            (&post, "/simulate/trigger", Some(Role::Operator)),
            (&post, "/simulate/j1/pause", Some(Role::Operator)),
            (&post, "/simulate/j1/resume", Some(Role::Operator)),
            (&post, "/simulate/j1/cancel", Some(Role::Operator)),
            (&get, "/simulate/j1/explain", Some(Role::Viewer)),
            (&get, "/news", Some(Role::Viewer)),
            (&delete, "/workflow-runs/r1", Some(Role::Operator)),
            (&delete, "/workflows/w1", Some(Role::Admin)),
            (&delete, "/workflows/w1/versions/2", Some(Role::Operator)),
            (&get, "/keys", Some(Role::Admin)),
            (&post, "/keys", Some(Role::Admin)),
            (&delete, "/keys/k1", Some(Role::Admin)),
            (&get, "/keys/k1", Some(Role::Admin)),
            (&get, "/approvals/links/abc.def", None),
            (&post, "/approvals/links/abc.def", None),
            (&post, "/approvals/links/abc/def", Some(Role::Operator)),
            (&get, "/approvals/links", Some(Role::Viewer)),
        ];
        for (method, path, role) in cases {
            assert_eq!(required_role(method, path), role, "{method} {path}");
        }
    }

    #[test]
    fn only_get_ws_takes_a_query_key() {
        assert!(accepts_query_key(&Method::GET, "/ws"));
        assert!(!accepts_query_key(&Method::POST, "/ws"));
        assert!(!accepts_query_key(&Method::GET, "/ws/x"));
        assert!(!accepts_query_key(&Method::GET, "/workflows"));
    }

    #[test]
    fn bearer_headers() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            bearer(&h)
        };
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
        assert_eq!(with("Bearer tl_abc").unwrap(), Some("tl_abc".into()));
        assert_eq!(with("bearer  tl_abc ").unwrap(), Some("tl_abc".into()));
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "tl_abc"] {
            let e = with(bad).unwrap_err();
            assert_eq!(
                (e.status, e.details["reason"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("malformed_header")),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_use_is_written_at_most_once_a_minute() {
        let auth = Auth::new(AuthMode::Required);
        let t0 = Instant::now();
        assert!(auth.should_touch("a", t0));
        assert!(!auth.should_touch("a", t0 + Duration::from_secs(59)));
        assert!(auth.should_touch("b", t0));
        assert!(auth.should_touch("a", t0 + TOUCH_EVERY));
    }
}
