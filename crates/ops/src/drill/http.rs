//! The drills' HTTP client for `tradeloom serve`: JSON in, status and JSON out, every request
//! with a deadline so that a hanging server is an observation, not a hung drill.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

/// A response: status code, body as JSON (`null` when it is not JSON), and how long it took.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub elapsed: Duration,
}

pub struct Api {
    client: reqwest::Client,
    pub base: String,
}

impl Api {
    /// A client with a per-request deadline of `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(self.client.get(format!("{}{path}", self.base)), path)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(
            self.client.post(format!("{}{path}", self.base)).json(body),
            path,
        )
        .await
    }

    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Reply> {
        let started = Instant::now();
        let response = request
            .send()
            .await
            .with_context(|| format!("{}{path}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the body of {}{path}", self.base))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// Polls `GET path` until `done(body)` holds; an error naming the last body after `within`.
    pub async fn wait_for(
        &self,
        path: &str,
        within: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            if let Ok(reply) = self.get(path).await {
                if reply.status == 200 && done(&reply.body) {
                    return Ok(reply.body);
                }
                last = reply.body;
            }
            super::pause(50).await;
        }
        Err(anyhow!(
            "GET {path}: not there within {within:?}; last answer {last}"
        ))
    }
}
