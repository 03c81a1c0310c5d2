//! client: a typed async client of the tradeloom REST API (`tradeloom serve`): workflows,
//! workflow runs (submit, follow, patch, cancel), approvals, and registered agents and skills,
//! with the API's JSON errors as a typed [`Error`]. The `tradeloom` CLI's client commands and
//! the drills use it; it depends on no server-side crate (only `tradeloom-core` for id
//! prefixes), so a program that drives a tradeloom server can depend on it alone.
//!
//! ```no_run
//! # async fn example() -> Result<(), tradeloom_client::Error> {
//! use tradeloom_client::{Client, StartRun};
//!
//! let client = Client::builder("http://127.0.0.1:8080")
//!     .api_key(std::env::var("TRADELOOM_API_KEY").ok())
//!     .build()?;
//! let definition = serde_json::json!({"name": "hello", "nodes": [
//!     {"id": "greet", "type": "transform", "config": {"template": "hi"}}]});
//! let (saved, _) = client.save_workflow("hello", &definition).await?;
//! let started = client.start_run(&saved.id, &StartRun::default()).await?;
//! let view = client.run(&started.run_id).await?;
//! println!("{} is {}", view.run_id, view.status);
//! # Ok(())
//! # }
//! ```
//!
//! Every request but [`Client::request_json`] turns an answer with an error status into
//! [`Error::Api`] (status, code, message, the details and the whole JSON body). The API key is
//! sent as `Authorization: Bearer` and never appears in an error or in `Debug`.

mod approval;
mod definition;
mod engine_run;
mod error;
mod event;
mod follow;
mod reply;
mod run;
mod status;
mod text;
mod workflow;

use std::fmt;
use std::sync::Once;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use approval::{
    Approval, ApprovalFilter, ApprovalList, ApprovalStatus, DecideRequest, Decision,
};
pub use definition::{
    DefinitionDetail, DefinitionInfo, DefinitionKind, DefinitionList, DefinitionVersionInfo,
    SavedDefinition,
};
pub use engine_run::{
    ArtifactRows, EngineRunFilter, EngineRunList, EngineRunStarted, EngineRunStopped,
    EngineRunSummary, EquityCurve, EquityPoint, RunTable,
};
pub use error::{ApiError, Error, UrlParseError, detail_lines};
pub use event::{EventPage, RunEvent};
pub use follow::FollowEnd;
pub use reply::Reply;
pub use reqwest::Method as HttpMethod;
pub use run::{
    NodeStatus, NodeView, Patch, PatchApplied, RunFilter, RunList, RunStarted, RunStatus,
    RunSummary, RunView, StartRun,
};
pub use workflow::{SaveOutcome, SavedWorkflow, WorkflowInfo, WorkflowList};

/// The request deadline of [`ClientBuilder`] unless set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The connect deadline of [`ClientBuilder`] unless set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to build a [`Client`]: [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    api_key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    no_proxy: bool,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ClientBuilder {
    /// The API key, sent as `Authorization: Bearer KEY`; `None` or an empty key sends none.
    pub fn api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key.filter(|k| !k.is_empty());
        self
    }

    /// The deadline of each request, connecting to reading the whole body (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline of connecting (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects directly, ignoring `HTTP_PROXY`/`HTTPS_PROXY` (by default they are honoured).
    pub fn no_proxy(mut self) -> Self {
        self.no_proxy = true;
        self
    }

    /// The client; fails when the URL is not an `http://` or `https://` base URL.
    pub fn build(self) -> Result<Client, Error> {
        let base = Url::parse(self.url.trim()).map_err(|source| Error::InvalidUrl {
            url: self.url.clone(),
            source,
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::UnsupportedUrl { url: self.url });
        }
        install_crypto_provider();
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout);
        if self.no_proxy {
            http = http.no_proxy();
        }
        let http = http.build().map_err(Error::Build)?;
        Ok(Client {
            shown: base.as_str().trim_end_matches('/').to_string(),
            base,
            key: self.api_key,
            http,
        })
    }
}

/// reqwest is built without a default TLS crypto provider (so that only `ring` is compiled);
/// install it once for `https://` URLs.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another provider is already the default: that one is used, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A connection to one tradeloom API. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    base: Url,
    /// The base URL without a trailing `/`, for messages and [`Client::request_json`].
    shown: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.shown)
            .field("api_key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A parsed answer: status, JSON body (`null` when empty) and the `Retry-After` header.
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<String>,
}

impl Client {
    /// A builder for the API at `url` (e.g. `http://127.0.0.1:8080`), with the defaults: no
    /// API key, 60 s per request, 5 s to connect, proxies from the environment.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            no_proxy: false,
        }
    }

    /// The base URL as given, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.shown
    }

    /// The URL of the path `segments` (each percent-encoded) under the base, with `query`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        // The base was checked to be able to be a base in `build`.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends a request; any status is returned with its body (JSON, or `null` when empty).
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<Answer, Error> {
        let mut request = self.request(method.clone(), url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| Error::NotJson {
                method: method.to_string(),
                path: url.path().to_string(),
                status: status.as_u16(),
                reason: e.to_string(),
                snippet: text.chars().take(200).collect(),
            })?
        };
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        unreachable_at(&self.shown, e)
    }

    /// Sends a request and reads a 2xx answer as `T`; any other status is [`Error::Api`].
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
        expected: &'static str,
    ) -> Result<T, Error> {
        let url = self.url(segments, query);
        let path = url.path().to_string();
        let answer = self.send(method.clone(), url, body).await?;
        if !answer.status.is_success() {
            return Err(ApiError::new(answer.status, answer.body, answer.retry_after).into());
        }
        serde_json::from_value(answer.body).map_err(|e| Error::UnexpectedBody {
            method: method.to_string(),
            path,
            status: answer.status.as_u16(),
            expected,
            reason: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        expected: &'static str,
    ) -> Result<T, Error> {
        self.call(Method::GET, segments, query, None::<&Value>, expected)
            .await
    }

    async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: &B,
        expected: &'static str,
    ) -> Result<T, Error> {
        self.call(Method::POST, segments, &[], Some(body), expected)
            .await
    }
}

/// [`Error::Unreachable`] for a transport error talking to `url`.
fn unreachable_at(url: &str, e: &reqwest::Error) -> Error {
    let reason = if e.is_connect() {
        "connection refused or host unreachable".to_string()
    } else if e.is_timeout() {
        "no answer in time".to_string()
    } else {
        // The full chain names the cause (DNS, TLS, a reset connection).
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    };
    Error::Unreachable {
        url: url.to_string(),
        reason,
    }
}

/// A whole id (a UUID, 8-4-4-4-12 hex digits, or an approval's `apr_` and 20 hex digits): used
/// as given, without listing anything.
pub fn is_full_id(given: &str) -> bool {
    if let Some(hex) = given.strip_prefix("apr_") {
        return hex.len() == 20 && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    let parts: Vec<&str> = given.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Client {
    /// Every id a list endpoint returns (`path`'s array `list_key` of objects with `id_key`),
    /// page by page, in the endpoint's order.
    async fn all_ids(
        &self,
        path: &str,
        list_key: &str,
        id_key: &str,
    ) -> Result<Vec<String>, Error> {
        const PAGE: usize = 500;
        let mut ids = Vec::new();
        loop {
            let query = [
                ("limit", PAGE.to_string()),
                ("offset", ids.len().to_string()),
            ];
            let page: Value = self.get(&[path], &query, "a list").await?;
            let items = page.get(list_key).and_then(Value::as_array);
            let n = items.map_or(0, Vec::len);
            ids.extend(items.into_iter().flatten().map(|i| {
                i.get(id_key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            }));
            if n < PAGE {
                return Ok(ids);
            }
        }
    }

    /// A workflow run id as given: the full id, a unique prefix, or `latest` (the newest run).
    pub async fn resolve_run(&self, given: &str) -> Result<String, Error> {
        if is_full_id(given) {
            return Ok(given.to_string());
        }
        let mut ids = self.all_ids("workflow-runs", "runs", "run_id").await?;
        ids.reverse(); // listed newest first
        Ok(tradeloom_core::resolve_id(
            "workflow run",
            given,
            ids.iter().map(String::as_str),
        )?)
    }

    /// An approval id as given: the full id, a unique prefix, or `latest` (the newest).
    pub async fn resolve_approval(&self, given: &str) -> Result<String, Error> {
        if is_full_id(given) {
            return Ok(given.to_string());
        }
        // Listed oldest first.
        let ids = self.all_ids("approvals", "approvals", "id").await?;
        Ok(tradeloom_core::resolve_id(
            "approval",
            given,
            ids.iter().map(String::as_str),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_http_and_the_key_stays_hidden() {
        let e = Client::builder("localhost:8080").build().unwrap_err();
        assert!(matches!(e, Error::UnsupportedUrl { .. }), "{e}");
        let e = Client::builder("not a url").build().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`not a url` is not a URL: relative URL without a base"
        );
        let client = Client::builder("http://127.0.0.1:9/api/")
            .api_key(Some("tl_secret".into()))
            .build()
            .unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9/api");
        assert!(!format!("{client:?}").contains("tl_secret"));
        assert_eq!(
            client
                .url(&["workflow-runs", "a b"], &[("limit", "5".into())])
                .as_str(),
            "http://127.0.0.1:9/api/workflow-runs/a%20b?limit=5"
        );
    }

    #[test]
    fn full_ids_are_uuids_and_approval_ids() {
        assert!(is_full_id("0190a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b"));
        assert!(is_full_id("apr_0123456789abcdef0123"));
        assert!(!is_full_id("0190a3b2"));
        assert!(!is_full_id("latest"));
        assert!(!is_full_id("apr_0123"));
    }
}
