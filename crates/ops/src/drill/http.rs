//! The drills' HTTP client for `tradeloom serve`: JSON in, status and JSON out, every request
//! with a deadline so that a hanging server is an observation, not a hung drill.
//!
//! Its surface is what the drills use — [`Api::new`], [`Api::get`], [`Api::post`],
//! [`Api::wait_for`], [`Reply`] and [`HttpError`] — so that the typed REST client can take its
//! place without touching the drills.

use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A response: status code, body as JSON (`null` when it is not JSON), and how long it took.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The body parsed as JSON, `null` when it is not JSON.
    pub body: Value,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

/// A request that got no answer (or no readable body), or an answer that never came.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The client could not be built (TLS set-up).
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The request failed: no connection, a reset, a timeout.
    #[error("{url}")]
    Request {
        /// The full URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The answer's body could not be read.
    #[error("reading the body of {url}")]
    Body {
        /// The full URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// [`Api::wait_for`] gave up.
    #[error("GET {path}: not there within {within:?}; last answer {last}")]
    NotThere {
        /// The polled path.
        path: String,
        /// How long it polled.
        within: Duration,
        /// The last body it got (`null` if none).
        last: Value,
    },
}

/// A client of one `tradeloom serve`.
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// A client of the server at `base` (`http://127.0.0.1:PORT`) with a per-request deadline
    /// of `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, HttpError> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(HttpError::Client)?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, HttpError> {
        self.send(self.client.get(format!("{}{path}", self.base)), path)
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, HttpError> {
        self.send(
            self.client.post(format!("{}{path}", self.base)).json(body),
            path,
        )
        .await
    }

    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Reply, HttpError> {
        let url = || format!("{}{path}", self.base);
        let started = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|source| HttpError::Request { url: url(), source })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| HttpError::Body { url: url(), source })?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// Polls `GET path` until `done(body)` holds on a 200; [`HttpError::NotThere`] naming the
    /// last body after `within`.
    pub async fn wait_for(
        &self,
        path: &str,
        within: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Value, HttpError> {
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            if let Ok(reply) = self.get(path).await {
                if reply.status == 200 && done(&reply.body) {
                    return Ok(reply.body);
                }
                last = reply.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(HttpError::NotThere {
            path: path.to_string(),
            within,
            last,
        })
    }
}

/// reqwest is built without a default TLS crypto provider; the drills only speak plain HTTP
/// over loopback, but building a client needs one installed.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err: another provider is already the default, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
