//! Integration tests of tradeloom-agents. Every model talks to a real `mock-llm` server over
//! loopback HTTP; the store is a real SQLite file.
#![allow(clippy::unwrap_used)]

mod agent_refs;
mod job_control;
mod memory;
mod session;
mod simulation;
mod trust;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use tempfile::TempDir;
use tradeloom_data::news::{synth_news, write_news};
use tradeloom_data::universe::{Universe, UniverseSpec, synth_universe, write_universe};
use tradeloom_llm::{LlmProvider, OpenAiProvider, ProviderConfig};

/// Starts mock-llm on a free loopback port; returns its `/v1` base URL.
pub async fn start_mock() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tradeloom_mock_llm::serve_mock(listener));
    format!("http://{addr}/v1")
}

pub fn provider(base_url: &str, model: &str) -> Arc<dyn LlmProvider> {
    let mut config = ProviderConfig::new(base_url, model);
    config.max_retries = 1;
    config.backoff_base = std::time::Duration::from_millis(5);
    config.backoff_max = std::time::Duration::from_millis(20);
    Arc::new(OpenAiProvider::new(config, &loopback().http).unwrap())
}

/// Outbound access for tests: loopback (where the mock listens) allowed, as `serve
/// --http-allow 127.0.0.1` allows it; the default key variables.
pub fn loopback() -> tradeloom_net::Outbound {
    tradeloom_net::Outbound::new(
        tradeloom_net::SsrfPolicy {
            allow_hosts: vec!["127.0.0.1".into()],
            ..tradeloom_net::SsrfPolicy::default()
        },
        tradeloom_net::SecretEnv::default(),
    )
    .unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A 4-symbol, 10-day universe with news in `<tmp>/universe`.
pub struct Market {
    pub dir: TempDir,
    pub universe: Universe,
}

impl Market {
    pub fn create() -> Self {
        let dir = TempDir::new().unwrap();
        let spec = UniverseSpec {
            symbols: 4,
            days: 10,
            seed: 7,
            start: date("2025-01-02"),
        };
        let universe = synth_universe(&spec).unwrap();
        let udir = dir.path().join("universe");
        write_universe(&universe, &udir).unwrap();
        write_news(&udir.join("news.jsonl"), &synth_news(&universe, 7)).unwrap();
        Self { dir, universe }
    }

    pub fn universe_dir(&self) -> PathBuf {
        self.dir.path().join("universe")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}
