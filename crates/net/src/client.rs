//! [`GuardedClient`]: HTTP requests that connect only to addresses [`check_url`] accepted.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Once};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderMap, LOCATION, PROXY_AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};

use crate::check::{CheckedTarget, check_url};
use crate::error::{SsrfError, SsrfErrorKind, redact_userinfo};
use crate::policy::{AllowHostError, SsrfPolicy};

/// A response read in full, within the policy's size and time bounds.
#[derive(Debug, Clone)]
pub struct GuardedResponse {
    /// The final status (never a followed redirect's).
    pub status: StatusCode,
    /// The final response's headers.
    pub headers: HeaderMap,
    /// The whole body, at most [`SsrfPolicy::max_response_bytes`] long.
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub final_url: Url,
    /// The address connected to, one of the checked target's.
    pub remote_addr: Option<SocketAddr>,
}

/// The outbound HTTP client of workflow nodes: every URL, the first and each redirect target,
/// goes through [`check_url`], and the connection goes to the addresses that check resolved and
/// accepted, never to a second lookup's.
///
/// How the checked address is the one connected to: each request gets its own reqwest client
/// whose DNS overrides ([`reqwest::ClientBuilder::resolve_to_addrs`]) map the URL's host to the
/// checked addresses, and whose resolver for every other name refuses to resolve. An IP-literal
/// host is connected to as written, and it is exactly what was checked. So DNS is asked once,
/// by the check, and a name that resolves to a public address for the check and to a private
/// one a moment later (DNS rebinding) cannot reach the private one. This was preferred to doing
/// the check inside a custom [`Resolve`]: reqwest never consults a resolver for IP-literal hosts
/// (they would need a second, separate check), and a refusal raised inside the resolver comes
/// back wrapped in reqwest's connect error instead of as an [`SsrfError`].
///
/// Those pinned clients are kept (in a small cache shared by the clones of one
/// `GuardedClient`) and reused by later requests whose check resolved the same host to the
/// same addresses, so their connections are pooled and kept alive: an agent's LLM calls reuse
/// one connection instead of building a client (which loads the system's root certificates)
/// and connecting for each call. The guarantee is unchanged: every request is still checked
/// first, and a cached client can only connect to the addresses its key names, which are the
/// ones this request's check accepted; an answer that changed gets a client of its own.
///
/// The clients ignore proxy environment variables (a proxy would connect on our behalf to
/// unchecked addresses), follow no redirects themselves ([`GuardedClient::send`] re-checks and
/// follows them, up to [`SsrfPolicy::max_redirects`]) and do not decompress bodies.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    policy: SsrfPolicy,
    /// Pinned clients by the host and addresses they may connect to.
    pinned: Arc<Mutex<HashMap<PinKey, reqwest::Client>>>,
}

/// Pinned clients kept at most; when full the cache starts over (the clients of requests in
/// flight live on in their requests).
const MAX_PINNED_CLIENTS: usize = 64;

/// What a pinned client is built from: the URL's host as reqwest looks it up, and the checked
/// addresses it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PinKey {
    host: Option<String>,
    addrs: Vec<SocketAddr>,
}

impl GuardedClient {
    /// A client under `policy`. Fails if an `allow_hosts` entry is malformed.
    ///
    /// Installs rustls' `ring` crypto provider as the process default if none is installed yet
    /// (as `tradeloom_llm::install_crypto_provider` does; reqwest is built without a provider
    /// of its own and would otherwise panic on the first HTTPS client).
    pub fn new(policy: SsrfPolicy) -> Result<Self, AllowHostError> {
        policy.validate()?;
        install_crypto_provider();
        Ok(Self {
            policy,
            pinned: Arc::default(),
        })
    }

    /// A client under the default policy (public addresses only), which cannot fail.
    pub fn strict() -> Self {
        install_crypto_provider();
        Self {
            policy: SsrfPolicy::default(),
            pinned: Arc::default(),
        }
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &SsrfPolicy {
        &self.policy
    }

    /// This client with another limit for a whole exchange (e.g. an LLM call's timeout, or a
    /// short health probe); everything else in the policy stays, and so do the pinned clients
    /// (the limit is applied around each exchange, not by the clients).
    pub fn with_timeout(&self, timeout: std::time::Duration) -> Self {
        let mut policy = self.policy.clone();
        policy.timeout = timeout;
        Self {
            policy,
            pinned: Arc::clone(&self.pinned),
        }
    }

    /// Applies the guard to `url` without connecting (see [`check_url`]): to refuse a
    /// configuration before anything runs.
    pub async fn check(&self, url: &str) -> Result<CheckedTarget, SsrfError> {
        check_url(&self.policy, url).await
    }

    /// Sends `method url` with `headers` and `body`, following redirects (each target checked
    /// again), and reads the whole response body.
    ///
    /// Redirects (301, 302, 303, 307, 308 with a `Location`) are followed up to
    /// `max_redirects` times; 303, and 301/302 after a method other than GET or HEAD, continue
    /// as GET without body (as browsers do); 307/308 keep the method and body. `Authorization`,
    /// `Cookie` and `Proxy-Authorization` are dropped when a redirect leaves the origin. The
    /// whole exchange, DNS and redirects included, must finish within the policy's timeout.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<GuardedResponse, SsrfError> {
        let after = self.policy.timeout;
        let exchange = self.follow(method, url, headers, body);
        let result = match tokio::time::timeout(after, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SsrfError::new(url, SsrfErrorKind::Timeout { after })),
        };
        match &result {
            Err(e) if e.is_refusal() => tracing::warn!(error = %e, "SSRF guard refused a URL"),
            Err(e) => tracing::debug!(error = %e, "outbound HTTP request failed"),
            Ok(_) => {}
        }
        result
    }

    async fn follow(
        &self,
        mut method: Method,
        url: &str,
        mut headers: HeaderMap,
        mut body: Option<Vec<u8>>,
    ) -> Result<GuardedResponse, SsrfError> {
        let mut current = url.to_owned();
        let mut redirected_from: Option<String> = None;
        let mut redirects = 0u32;
        loop {
            let with_context = |mut e: SsrfError| {
                e.redirected_from = redirected_from.clone().map(redact_userinfo);
                e
            };
            let target = check_url(&self.policy, &current)
                .await
                .map_err(with_context)?;
            let response = self
                .exchange(&target, method.clone(), headers.clone(), body.clone())
                .await
                .map_err(with_context)?;
            let status = response.status();
            let location = response.headers().get(LOCATION).cloned();
            let location = match location {
                Some(l) if is_followed_redirect(status) => l,
                _ => return self.read(target, response).await.map_err(with_context),
            };
            if redirects == self.policy.max_redirects {
                let max = self.policy.max_redirects;
                let e = SsrfError::new(&current, SsrfErrorKind::TooManyRedirects { max });
                return Err(with_context(e));
            }
            redirects += 1;
            let next = location
                .to_str()
                .ok()
                .and_then(|l| target.url.join(l).ok())
                .ok_or_else(|| {
                    let shown = String::from_utf8_lossy(location.as_bytes()).into_owned();
                    with_context(SsrfError::new(&current, SsrfErrorKind::BadRedirect(shown)))
                })?;
            if status == StatusCode::SEE_OTHER && method != Method::HEAD
                || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method != Method::GET
                    && method != Method::HEAD
            {
                method = Method::GET;
                body = None;
            }
            if next.origin() != target.url.origin() {
                for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
                    headers.remove(name);
                }
            }
            redirected_from = Some(std::mem::replace(&mut current, next.to_string()));
        }
    }

    /// One request to a checked target, over a client pinned to its addresses.
    async fn exchange(
        &self,
        target: &CheckedTarget,
        method: Method,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, SsrfError> {
        let url = target.url.as_str();
        let client = self.pinned_client(target).map_err(|e| http_error(url, e))?;
        let mut request = client.request(method, target.url.clone()).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await.map_err(|e| http_error(url, e))
    }

    /// The client pinned to `target`'s checked addresses: a cached one, or a new one.
    fn pinned_client(&self, target: &CheckedTarget) -> Result<reqwest::Client, reqwest::Error> {
        let key = PinKey {
            // The host as the URL spells it (a trailing dot included): that is the name
            // reqwest looks the override up by.
            host: target.url.host_str().map(str::to_owned),
            addrs: target.addrs.clone(),
        };
        if let Some(client) = self.lock_pinned().get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(RefuseResolver));
        if let Some(host) = &key.host {
            builder = builder.resolve_to_addrs(host, &key.addrs);
        }
        let client = builder.build()?;
        let mut pinned = self.lock_pinned();
        if pinned.len() >= MAX_PINNED_CLIENTS {
            pinned.clear();
        }
        pinned.insert(key, client.clone());
        Ok(client)
    }

    fn lock_pinned(&self) -> std::sync::MutexGuard<'_, HashMap<PinKey, reqwest::Client>> {
        // A poisoned lock only means a thread panicked between two map operations; the map
        // itself is still whole.
        self.pinned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads `response`'s body within `max_response_bytes`.
    async fn read(
        &self,
        target: CheckedTarget,
        mut response: reqwest::Response,
    ) -> Result<GuardedResponse, SsrfError> {
        let limit = self.policy.max_response_bytes;
        let url = target.url.as_str();
        let too_large = || SsrfError::new(url, SsrfErrorKind::TooLarge { limit });
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| http_error(url, e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(GuardedResponse {
            status: response.status(),
            headers: response.headers().clone(),
            body,
            remote_addr: response.remote_addr(),
            final_url: target.url,
        })
    }
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed: that one is used, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// A reqwest error with its causes ("connection refused" is only in the chain); the URL is
/// already in the [`SsrfError`].
fn http_error(url: &str, e: reqwest::Error) -> SsrfError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    SsrfError::new(url, SsrfErrorKind::Http(text))
}

/// The resolver behind the per-request overrides: every name not pinned to checked addresses
/// is refused, so nothing reaches an address the guard did not see.
struct RefuseResolver;

impl Resolve for RefuseResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let message = format!("`{}` was not checked by the SSRF guard", name.as_str());
        let refused: Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(async move { Err::<Addrs, _>(message.into()) });
        refused
    }
}
