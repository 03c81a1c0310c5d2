//! [`SsrfError`]: why a URL was refused or an exchange failed, naming the URL.

use std::net::IpAddr;
use std::time::Duration;

use crate::address::AddressBlock;
use crate::policy::AllowHostError;

/// A refused URL or a failed exchange: the URL concerned (for a redirect, its target), the URL
/// that redirected there if any, and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{url}{}: {kind}", redirect_note(.redirected_from))]
pub struct SsrfError {
    /// The URL refused or that failed, as given (or as the `Location` header resolved it).
    pub url: String,
    /// The URL whose redirect led to `url`, when `url` is a redirect target.
    pub redirected_from: Option<String>,
    /// What happened.
    pub kind: SsrfErrorKind,
}

/// `url` without its userinfo (`http://user:pw@h/` → `http://h/`), which may be a credential
/// that errors and logs must not show.
pub(crate) fn redact_userinfo(url: String) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            // Only fails for URLs that cannot have credentials, which then have none.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url,
        // Unparsable text may still hold `user:pw@`; cut everything up to the last `@`.
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => format!("…@{host}"),
            None => url,
        },
    }
}

fn redirect_note(from: &Option<String>) -> String {
    from.as_ref()
        .map(|f| format!(" (redirected from {f})"))
        .unwrap_or_default()
}

impl SsrfError {
    pub(crate) fn new(url: impl Into<String>, kind: SsrfErrorKind) -> Self {
        Self {
            url: redact_userinfo(url.into()),
            redirected_from: None,
            kind,
        }
    }

    /// Whether the guard refused the URL (as opposed to the exchange failing afterwards).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.kind,
            SsrfErrorKind::InvalidUrl(_)
                | SsrfErrorKind::BadScheme(_)
                | SsrfErrorKind::BadWebSocketScheme(_)
                | SsrfErrorKind::NoHost
                | SsrfErrorKind::BlockedHost { .. }
                | SsrfErrorKind::Blocked { .. }
                | SsrfErrorKind::BlockedPath { .. }
                | SsrfErrorKind::Dns { .. }
                | SsrfErrorKind::Policy(_)
        )
    }
}

/// What went wrong; shown after the URL in an [`SsrfError`].
#[derive(Debug, thiserror::Error)]
pub enum SsrfErrorKind {
    /// The text is not a URL.
    #[error("not a valid URL ({0})")]
    InvalidUrl(String),
    /// Only `http` and `https` are fetched.
    #[error("scheme `{0}` is not allowed; only http and https")]
    BadScheme(String),
    /// Only `ws` and `wss` are WebSocket URLs.
    #[error("scheme `{0}` is not allowed; only ws and wss")]
    BadWebSocketScheme(String),
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The host name itself is refused (localhost, cloud metadata names, `.internal`).
    #[error("host `{host}` is blocked ({reason})")]
    BlockedHost { host: String, reason: &'static str },
    /// The host is, or resolves to, an address in a blocked range. With several addresses, the
    /// first blocked one is named: one blocked answer refuses the URL.
    #[error("{}", blocked_text(.host, .addr, .block))]
    Blocked {
        host: String,
        addr: IpAddr,
        block: AddressBlock,
    },
    /// The path falls under a [`crate::SsrfPolicy::deny_paths`] entry (on any host).
    #[error("path `{path}` is blocked (under `{rule}`)")]
    BlockedPath { path: String, rule: String },
    /// The host name did not resolve (or resolved to nothing); such a URL is refused.
    #[error("cannot resolve `{host}`: {reason}")]
    Dns { host: String, reason: String },
    /// The policy itself is invalid.
    #[error("invalid SSRF policy: {0}")]
    Policy(#[from] AllowHostError),
    /// More redirects than [`crate::SsrfPolicy::max_redirects`].
    #[error("more than {max} redirects")]
    TooManyRedirects { max: u32 },
    /// A redirect without a usable `Location`.
    #[error("redirect with an invalid Location header: {0}")]
    BadRedirect(String),
    /// The body is longer than [`crate::SsrfPolicy::max_response_bytes`].
    #[error("response body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The exchange took longer than [`crate::SsrfPolicy::timeout`].
    #[error("no complete response within {after:?}")]
    Timeout { after: Duration },
    /// Connecting, sending or reading failed.
    #[error("request failed: {0}")]
    Http(String),
    /// No checked address accepted a TCP connection (each attempt's error, joined).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// TLS of a `wss://` connection failed (configuration, handshake or certificate).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The WebSocket handshake failed (the server answered something else than 101, or the
    /// connection broke).
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
}

fn blocked_text(host: &str, addr: &IpAddr, block: &AddressBlock) -> String {
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok();
    if literal {
        format!("address {addr} is blocked ({block})")
    } else {
        format!("`{host}` resolves to {addr} ({block})")
    }
}
