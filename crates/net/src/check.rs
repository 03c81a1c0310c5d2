//! [`check_url`]: the guard itself. Parses a URL, resolves its host and judges every address,
//! without connecting anywhere.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use reqwest::Url;

use crate::address::blocked_range;
use crate::error::{SsrfError, SsrfErrorKind};
use crate::host::{blocked_name, legacy_ipv4, normalize};
use crate::policy::SsrfPolicy;

/// A URL the guard accepted, with the only addresses a request to it may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTarget {
    /// The parsed URL, normalised by the WHATWG URL parser: `http://0x7f.1/` reads
    /// `http://127.0.0.1/`, `http://[::ffff:127.0.0.1]/` reads `http://[::ffff:7f00:1]/`.
    pub url: Url,
    /// The URL's host, normalised (lowercase, no trailing dot; IPv6 in brackets).
    pub host: String,
    /// Every address the host resolved to, with the URL's port (deduplicated, in resolver
    /// order); each one passed the check unless `allow_listed`.
    pub addrs: Vec<SocketAddr>,
    /// True when an `allow_hosts` entry let the host through: its name and addresses were not
    /// judged.
    pub allow_listed: bool,
}

/// Applies the guard to `url_text` under `policy`, resolving the host but never connecting.
///
/// Refused, in this order: text that is not a URL; a scheme other than `http`/`https`; a URL
/// without host; then, unless an `allow_hosts` entry matches the host (and port), a blocked name
/// (localhost, cloud metadata hosts, `*.internal`) and any resolved address in a blocked range
/// (see [`crate::address`]) that `allow_cidrs` does not cover; last, on every host
/// (allow-listed ones included), a path under one of the policy's `deny_paths`. A host is resolved through
/// `policy.resolve` when it has an entry there, else through the system resolver
/// (`getaddrinfo`); a name that does not resolve is refused. Userinfo (`http://user@host/`) is
/// allowed: the host after `@` is the one judged.
///
/// Numeric hosts are judged as the address they denote: the URL parser reads decimal
/// (`2130706433`), octal (`0177.0.0.1`), hex (`0x7f.1`) and short (`127.1`) forms as IPv4, and
/// every remaining name is also read the way `inet_aton(3)` would, so no resolver can see an
/// address the guard did not.
pub async fn check_url(policy: &SsrfPolicy, url_text: &str) -> Result<CheckedTarget, SsrfError> {
    check_target(policy, url_text, Schemes::Http).await
}

/// [`check_url`] for WebSocket URLs: `ws`/`wss` instead of `http`/`https`, everything else the
/// same (allow-list, resolved addresses, deny paths); `ws` defaults to port 80, `wss` to 443.
pub async fn check_websocket_url(
    policy: &SsrfPolicy,
    url_text: &str,
) -> Result<CheckedTarget, SsrfError> {
    check_target(policy, url_text, Schemes::WebSocket).await
}

/// The URL schemes a check accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schemes {
    /// `http`, `https`.
    Http,
    /// `ws`, `wss`.
    WebSocket,
}

async fn check_target(
    policy: &SsrfPolicy,
    url_text: &str,
    schemes: Schemes,
) -> Result<CheckedTarget, SsrfError> {
    let fail = |kind| SsrfError::new(url_text, kind);
    let rules = policy
        .host_rules()
        .map_err(|e| fail(SsrfErrorKind::Policy(e)))?;
    let url =
        Url::parse(url_text.trim()).map_err(|e| fail(SsrfErrorKind::InvalidUrl(e.to_string())))?;
    match (schemes, url.scheme()) {
        (Schemes::Http, "http" | "https") | (Schemes::WebSocket, "ws" | "wss") => {}
        (Schemes::Http, other) => return Err(fail(SsrfErrorKind::BadScheme(other.to_owned()))),
        (Schemes::WebSocket, other) => {
            return Err(fail(SsrfErrorKind::BadWebSocketScheme(other.to_owned())));
        }
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => normalize(h),
        _ => return Err(fail(SsrfErrorKind::NoHost)),
    };
    // Known for http, https, ws and wss; 0 never happens.
    let port = url.port_or_known_default().unwrap_or(0);
    let allow_listed = rules.iter().any(|r| r.matches(&host, &url));

    let ips = match literal_address(&host) {
        Some(ip) => vec![ip],
        None => {
            if !allow_listed && let Some(reason) = blocked_name(&host) {
                return Err(fail(SsrfErrorKind::BlockedHost { host, reason }));
            }
            match policy.static_resolution(&host) {
                Some(ips) => ips.to_vec(),
                None => resolve(policy, &host, port).await.map_err(|e| {
                    fail(SsrfErrorKind::Dns {
                        host: host.clone(),
                        reason: e.to_string(),
                    })
                })?,
            }
        }
    };
    if ips.is_empty() {
        let reason = "no address".to_owned();
        return Err(fail(SsrfErrorKind::Dns { host, reason }));
    }
    if !allow_listed {
        for &addr in &ips {
            if policy.allows_addr(addr) {
                continue;
            }
            if let Some(block) = blocked_range(addr) {
                return Err(fail(SsrfErrorKind::Blocked { host, addr, block }));
            }
        }
    }
    // Last: a refused address is the more telling reason; allow-listed hosts get here too.
    if let Some(rule) = policy.denied_path(url.path()) {
        return Err(fail(SsrfErrorKind::BlockedPath {
            path: url.path().to_owned(),
            rule: rule.to_owned(),
        }));
    }
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(ips.len());
    for ip in ips {
        let addr = SocketAddr::new(ip, port);
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(CheckedTarget {
        url,
        host,
        addrs,
        allow_listed,
    })
}

/// The address a (normalised) host denotes by itself: a bracketed IPv6 address, or an IPv4
/// address in any form `inet_aton` accepts (the URL parser has already turned those into dotted
/// decimal, this is the second opinion).
fn literal_address(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    legacy_ipv4(host).map(IpAddr::V4)
}

/// Why the system resolver gave no address.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("{0}")]
    Lookup(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Every address the system resolver gives for `host`, within the policy's timeout.
async fn resolve(policy: &SsrfPolicy, host: &str, port: u16) -> Result<Vec<IpAddr>, ResolveError> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(policy.timeout, lookup).await {
        Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
        Ok(Err(e)) => Err(ResolveError::Lookup(e)),
        Err(_) => Err(ResolveError::Timeout(policy.timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL parser turns every numeric host form into a dotted-decimal IPv4 (or compressed
    /// IPv6) host; the guard relies on it, [`literal_address`] being the second opinion.
    #[test]
    fn the_url_parser_normalises_numeric_hosts() {
        let cases = [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0x7f.0.0.1/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://0/", "0.0.0.0"),
            ("http://user:pw@127.0.0.1/", "127.0.0.1"),
            ("http://example.com@127.0.0.1/", "127.0.0.1"),
            ("http://127.0.0.1\\@example.com/", "127.0.0.1"),
            ("http://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]"),
            (
                "http://[0:0:0:0:0:ffff:169.254.169.254]/",
                "[::ffff:a9fe:a9fe]",
            ),
            ("http://[::127.0.0.1]/", "[::7f00:1]"),
            ("http://LOCALHOST./", "localhost."),
            ("http://%6c%6f%63%61%6c%68%6f%73%74/", "localhost"),
            ("http://①②⑦.0.0.1/", "127.0.0.1"),
        ];
        for (text, host) in cases {
            let url = Url::parse(text).unwrap();
            assert_eq!(url.host_str(), Some(host), "{text}");
        }
        assert!(literal_address("example.com").is_none());
        assert_eq!(
            literal_address("[::1]"),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
    }
}
