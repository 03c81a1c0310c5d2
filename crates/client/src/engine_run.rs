//! Engine runs — backtests and paper runs — of the runs API: list, read, the equity curve, the
//! orders/fills/trades pages, start and stop (`/runs…`). Money and quantities stay the exact
//! decimal strings the API sends; times the RFC 3339 text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Error};

/// One run of `GET /runs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineRunSummary {
    pub run_id: String,
    pub name: String,
    /// `backtest` or `paper`.
    pub mode: String,
    /// `running`, `completed`, `failed` or `interrupted`.
    pub status: String,
    pub strategy: String,
    pub instruments: Vec<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// An exact decimal string, once the run has finished.
    pub final_equity: Option<String>,
    pub total_return_pct: Option<f64>,
    /// Whether the server started the run and it is still going.
    pub active: bool,
}

/// A page of `GET /runs`, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineRunList {
    pub runs: Vec<EngineRunSummary>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    pub next_offset: Option<u64>,
}

/// Which runs `GET /runs` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineRunFilter {
    /// `backtest`, `paper` or `all`.
    pub mode: Option<String>,
    /// `running`, `completed`, `failed`, `interrupted` or `all`.
    pub status: Option<String>,
    /// Runs whose name contains this (case-insensitive).
    pub name: Option<String>,
    /// Page size (the API's default 50, at most 500).
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// One point of `GET /runs/{id}/equity`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquityPoint {
    pub ts: String,
    pub cash: String,
    pub equity: String,
    pub gross_exposure: String,
}

/// `GET /runs/{id}/equity`: the curve, downsampled keeping every bucket's first, lowest,
/// highest and last point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquityCurve {
    pub run_id: String,
    pub currency: String,
    pub initial_cash: String,
    /// Rows in the run's `equity.parquet`.
    pub rows: u64,
    pub max_points: u64,
    pub downsampled: bool,
    pub points: Vec<EquityPoint>,
}

/// A page of `GET /runs/{id}/orders|fills|trades`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRows {
    pub run_id: String,
    pub artifact: String,
    pub columns: Vec<String>,
    /// Objects keyed by column; values are the file's text, `null` for an empty field.
    pub rows: Vec<Value>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub next_offset: Option<u64>,
    /// `false` while the run is running.
    pub complete: bool,
}

/// The answer of `POST /runs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineRunStarted {
    pub run_id: String,
    pub mode: String,
    pub status: String,
}

/// The answer of `POST /runs/{id}/stop`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineRunStopped {
    pub run_id: String,
    /// `completed` or `failed` once stopped; `stopping` if it had not ended within the
    /// server's wait.
    pub status: String,
    pub stop_reason: Option<String>,
}

/// Which artifact table to page through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunTable {
    Orders,
    Fills,
    Trades,
}

impl RunTable {
    fn segment(self) -> &'static str {
        match self {
            RunTable::Orders => "orders",
            RunTable::Fills => "fills",
            RunTable::Trades => "trades",
        }
    }
}

impl Client {
    /// One page of backtests and paper runs, newest first.
    pub async fn list_engine_runs(&self, filter: &EngineRunFilter) -> Result<EngineRunList, Error> {
        let mut query = Vec::new();
        for (name, value) in [
            ("mode", &filter.mode),
            ("status", &filter.status),
            ("name", &filter.name),
        ] {
            if let Some(v) = value {
                query.push((name, v.clone()));
            }
        }
        if let Some(limit) = filter.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = filter.offset {
            query.push(("offset", offset.to_string()));
        }
        self.get(&["runs"], &query, "a list of runs").await
    }

    /// One run (a full id, a unique prefix or `latest`): `{run_id, name, mode, status, error,
    /// stop_reason, spec: {yaml, …}, summary, metrics, artifacts, active, …}` as the API sends
    /// it.
    pub async fn engine_run(&self, run_id: &str) -> Result<Value, Error> {
        self.get(&["runs", run_id], &[], "a run").await
    }

    /// The run's equity curve with at most `max_points` points (the API's default 2000).
    pub async fn engine_run_equity(
        &self,
        run_id: &str,
        max_points: Option<u64>,
    ) -> Result<EquityCurve, Error> {
        let query: Vec<(&str, String)> = max_points
            .map(|n| ("max_points", n.to_string()))
            .into_iter()
            .collect();
        self.get(&["runs", run_id, "equity"], &query, "an equity curve")
            .await
    }

    /// One page of the run's orders, fills or trades.
    pub async fn engine_run_rows(
        &self,
        run_id: &str,
        table: RunTable,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> Result<ArtifactRows, Error> {
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = offset {
            query.push(("offset", offset.to_string()));
        }
        self.get(&["runs", run_id, table.segment()], &query, "a page of rows")
            .await
    }

    /// Starts a backtest or a paper run from spec YAML text (operator role); the run goes on in
    /// the server.
    pub async fn start_engine_run(&self, spec_yaml: &str) -> Result<EngineRunStarted, Error> {
        #[derive(Serialize)]
        struct Start<'a> {
            spec: &'a str,
        }
        self.post(&["runs"], &Start { spec: spec_yaml }, "a started run")
            .await
    }

    /// Stops a paper run of the server gracefully and waits (up to 30 s on the server) for it.
    pub async fn stop_engine_run(&self, run_id: &str) -> Result<EngineRunStopped, Error> {
        self.post(
            &["runs", run_id, "stop"],
            &serde_json::Map::new(),
            "a stopped run",
        )
        .await
    }
}
