//! Untyped requests with a deadline, for drills and probes: any status is an answer, the body
//! is JSON or `null`, and the time it took is measured. A server that hangs is an observation
//! (an [`Error::Unreachable`] after the client's timeout), not a hung caller.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::{Client, Error, unreachable_at};

/// An answer: status code, body as JSON (`null` when it is not JSON), and how long it took.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub elapsed: Duration,
}

impl Client {
    /// Sends `method` to `path` (with its query, e.g. `/workflow-runs?limit=5`) under the base
    /// URL, with `body` as JSON; any status is returned. Errors only when nothing answered in
    /// time ([`Error::Unreachable`] naming the whole URL).
    pub async fn request_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.base_url());
        let started = Instant::now();
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| unreachable_at(&url, &e))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| unreachable_at(&url, &e))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// `GET path` as [`Client::request_json`].
    pub async fn get_json(&self, path: &str) -> Result<Reply, Error> {
        self.request_json(Method::GET, path, None).await
    }

    /// `POST path` with `body` as [`Client::request_json`].
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Reply, Error> {
        self.request_json(Method::POST, path, Some(body)).await
    }

    /// Polls `GET path` every 50 ms until it answers 200 with a body for which `done` holds;
    /// that body, or [`Error::NotWithin`] naming the last body after `within`.
    pub async fn wait_for(
        &self,
        path: &str,
        within: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Value, Error> {
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            if let Ok(reply) = self.get_json(path).await {
                if reply.status == 200 && done(&reply.body) {
                    return Ok(reply.body);
                }
                last = reply.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::NotWithin {
            path: path.to_string(),
            within,
            last,
        })
    }
}
