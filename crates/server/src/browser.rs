//! Requests a browser was tricked into sending: the checks against DNS rebinding and
//! cross-site requests, in front of everything else.
//!
//! - **Host.** A web page whose name the attacker makes resolve to 127.0.0.1 reaches a
//!   loopback server with its own name in `Host`. So the server answers only an IP address
//!   (a page can only be served from an IP address by the server itself), `localhost` and
//!   `*.localhost` (never resolved through DNS by browsers), and the names given with
//!   `serve --allowed-host NAME` (`*`: any). Anything else is 421 `host_not_allowed`. The check
//!   applies once [`crate::serve`] knows the address it is bound to.
//! - **Origin.** A request with an `Origin` other than the server's own (its `Host`), or
//!   `Sec-Fetch-Site: cross-site` without an `Origin`, is 403 `cross_origin_refused`, unless
//!   the origin is one of `serve --allow-origin ORIGIN`; those get CORS answers (preflights
//!   included) so a dashboard there can call the API. A cross-site top-level navigation (a
//!   `GET` link to `/docs`) is let through: its answer goes to the user, not to the page.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// The Host and Origin rules of a server.
#[derive(Clone, Debug, Default)]
pub(crate) struct BrowserPolicy {
    /// The address [`crate::serve`] listens on; the Host check applies once it is known.
    bound: Option<SocketAddr>,
    /// Extra names for `Host` (lowercase, no port); `*` allows any.
    hosts: Vec<String>,
    /// Origins allowed to call cross-origin (`scheme://host[:port]`, lowercase).
    origins: Vec<String>,
}

impl AppState {
    /// Also answers requests whose `Host` is one of `names` (a name, or `*` for any host) —
    /// e.g. the name a reverse proxy or the LAN uses for this server.
    pub fn with_allowed_hosts(mut self, names: impl IntoIterator<Item = String>) -> Self {
        let policy = Arc::make_mut(&mut self.browser);
        policy.hosts = names
            .into_iter()
            .map(|n| normalize_host(&n))
            .filter(|n| !n.is_empty())
            .collect();
        self
    }

    /// Lets web pages of `origins` (`https://dashboard.example:8443`) call the API from a
    /// browser, with CORS answers.
    pub fn with_allowed_origins(mut self, origins: impl IntoIterator<Item = String>) -> Self {
        let policy = Arc::make_mut(&mut self.browser);
        policy.origins = origins
            .into_iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        self
    }

    /// The address the server is bound to (set by [`crate::serve`]).
    pub(crate) fn with_bound_addr(mut self, addr: SocketAddr) -> Self {
        Arc::make_mut(&mut self.browser).bound = Some(addr);
        self
    }
}

/// `Host` without its port, lowercase, without a trailing dot; IPv6 without brackets.
/// Whether `text` is a web origin `--allow-origin` accepts: `http(s)://host[:port]`, no path,
/// query, userinfo or wildcard (a trailing `/` is ignored).
pub fn is_origin(text: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        text.strip_prefix(scheme).is_some_and(|rest| {
            let rest = rest.trim_end_matches('/');
            !rest.is_empty() && !rest.contains(['/', '?', '#', '@', '*'])
        })
    })
}

fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default().to_string()
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or_default().to_string()
    } else {
        host
    };
    name.trim_end_matches('.').to_string()
}

/// `host[:port]` with the default port of `scheme` dropped, lowercase.
fn authority(scheme: &str, hostport: &str) -> String {
    let hostport = hostport.trim().to_ascii_lowercase();
    let default = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    hostport
        .strip_suffix(default)
        .map_or(hostport.clone(), str::to_string)
}

impl BrowserPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let name = normalize_host(host);
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.hosts.iter().any(|h| h == "*" || *h == name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        self.origins.contains(&origin)
    }
}

/// The `Host` of a request (HTTP/2 carries it in the URI).
fn host_of(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

/// Whether `origin` is the server's own: same host and port as the request's `Host`.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let Some((scheme, rest)) = origin.trim().split_once("://") else {
        return false;
    };
    let scheme = scheme.to_ascii_lowercase();
    authority(&scheme, rest.trim_end_matches('/')) == authority(&scheme, host)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn cross_origin(what: String) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin_refused",
        format!(
            "{what}: cross-origin browser requests are refused; start `tradeloom serve \
             --allow-origin ORIGIN` to let a web page of ORIGIN call the API"
        ),
    )
}

/// CORS answer headers for an allowed `origin`.
fn allow_origin(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The middleware: Host, then Origin / `Sec-Fetch-Site`; CORS for allowed origins.
pub(crate) async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let policy = &state.browser;
    let host = host_of(&req);
    if policy.bound.is_some()
        && let Some(h) = &host
        && !policy.host_allowed(h)
    {
        let name = normalize_host(h);
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            format!(
                "this server does not answer for host `{name}`; start `tradeloom serve \
                 --allowed-host {name}` if it is this server's name"
            ),
        )
        .with_details(json!({"host": name}))
        .into_response();
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let fetch_site = header_str(req.headers(), "sec-fetch-site").map(str::to_ascii_lowercase);
    let allowed = match &origin {
        Some(o) => {
            let text = o.to_str().unwrap_or("null");
            if policy.origin_allowed(text) {
                true
            } else if same_origin(text, host.as_deref()) {
                false
            } else {
                return cross_origin(format!("origin `{text}`"))
                    .with_details(json!({"origin": text}))
                    .into_response();
            }
        }
        None => {
            let navigation = header_str(req.headers(), "sec-fetch-mode") == Some("navigate")
                && (req.method() == Method::GET || req.method() == Method::HEAD);
            if fetch_site.as_deref() == Some("cross-site") && !navigation {
                return cross_origin("a cross-site request (Sec-Fetch-Site)".to_string())
                    .with_details(json!({"sec_fetch_site": "cross-site"}))
                    .into_response();
            }
            false
        }
    };
    let Some(origin) = origin.filter(|_| allowed) else {
        return next.run(req).await;
    };
    // A CORS preflight of an allowed origin: answered here, as it carries no key.
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        allow_origin(headers, &origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-request-id, traceparent"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return response;
    }
    let mut response = next.run(req).await;
    allow_origin(response.headers_mut(), &origin);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let policy = BrowserPolicy {
            bound: None,
            hosts: vec!["tradeloom.lan".into()],
            origins: vec![],
        };
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "10.1.2.3:80",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:1",
            "tradeloom.lan:8080",
            "TradeLoom.LAN",
        ] {
            assert!(policy.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example:8080",
            "127.0.0.1.nip.io",
            "localhost.evil",
            "lan",
        ] {
            assert!(!policy.host_allowed(refused), "{refused}");
        }
        let any = BrowserPolicy {
            hosts: vec!["*".into()],
            ..BrowserPolicy::default()
        };
        assert!(any.host_allowed("whatever.example"));
    }

    #[test]
    fn own_origins() {
        assert!(same_origin("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(same_origin(
            "http://LOCALHOST:8080/",
            Some("localhost:8080")
        ));
        assert!(same_origin("http://api.lan", Some("api.lan:80")));
        assert!(same_origin("https://api.lan", Some("api.lan:443")));
        assert!(!same_origin(
            "http://localhost:8081",
            Some("localhost:8080")
        ));
        assert!(!same_origin("null", Some("localhost:8080")));
        assert!(!same_origin("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!same_origin("http://127.0.0.1:8080", None));
    }
}
