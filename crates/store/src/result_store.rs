//! [`ResultStore`]: results pages and the leaderboard of a job.

use async_trait::async_trait;
use tradeloom_core::Money;

use crate::error::StoreError;
use crate::job_store::JobStore;
use crate::model_day::ModelDayStatus;
use crate::model_day_store::{MODEL_DAY_SELECT, ModelDayRow, PageRow, unpack_holdings};
use crate::read_version::ReadVersion;
use crate::results::{DailyValue, LeaderboardEntry, ModelDayResult, ResultsFilter, ResultsPage};
use crate::sql::{Db, page, sql, sql_offset};

/// Reading the results of simulation jobs.
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Model-days matching the filter with their holdings, paginated.
    async fn results(&self, filter: &ResultsFilter) -> Result<ResultsPage, StoreError>;

    /// [`results`](ResultStore::results), counting each model-day's trades only when
    /// `count_trades` (otherwise [`ModelDayResult::trades`] is 0: not counted).
    async fn results_page(
        &self,
        filter: &ResultsFilter,
        count_trades: bool,
    ) -> Result<ResultsPage, StoreError>;

    /// What the store holds now, as a [`ReadVersion`]: keep an answer under the version taken
    /// before reading it, and serve it again while the version is unchanged (see
    /// [`crate::EXTERNAL_CHECK_EVERY`] for changes made by other processes).
    async fn read_version(&self) -> Result<ReadVersion, StoreError>;

    /// Per-model standings of a job, by model name; returns and drawdowns are measured from
    /// `initial_value`.
    async fn leaderboard(
        &self,
        job_id: &str,
        initial_value: Money,
    ) -> Result<Vec<LeaderboardEntry>, StoreError>;
}

#[async_trait]
impl<D: Db> ResultStore for D {
    async fn results(&self, filter: &ResultsFilter) -> Result<ResultsPage, StoreError> {
        self.results_page(filter, true).await
    }

    async fn results_page(
        &self,
        filter: &ResultsFilter,
        count_trades: bool,
    ) -> Result<ResultsPage, StoreError> {
        // Only the filters that are set, each a plain `column = $n`: a `($1 IS NULL OR
        // d.job_id = $1)` would make SQLite walk an index across every job.
        let mut conditions: Vec<String> = Vec::new();
        let mut next = 0;
        let mut placeholder = || {
            next += 1;
            format!("${next}")
        };
        if filter.job_id.is_some() {
            conditions.push(format!("d.job_id = {}", placeholder()));
        }
        if filter.model.is_some() {
            conditions.push(format!("d.model = {}", placeholder()));
        }
        if filter.date.is_some() {
            conditions.push(format!("d.date = {}", placeholder()));
        }
        if filter.completed_only {
            conditions.push("d.status = 'completed'".into());
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {} ", conditions.join(" AND "))
        };
        let (limit_at, offset_at) = (placeholder(), placeholder());
        let bind = |mut statement: crate::sql::Statement| {
            if let Some(job) = &filter.job_id {
                statement = statement.bind(job);
            }
            if let Some(model) = &filter.model {
                statement = statement.bind(model);
            }
            if let Some(date) = filter.date {
                statement = statement.bind(date);
            }
            statement
        };
        let limit = page(filter.limit);
        let trade_count = if count_trades {
            "(SELECT COUNT(*) FROM positions t WHERE t.job_id = p.job_id \
              AND t.model = p.model AND t.date = p.date AND t.action <> 'hold')"
        } else {
            "CAST(0 AS BIGINT)"
        };
        // The page first (walking the (date, model, job_id) index and stopping at
        // LIMIT), then the holdings (and trade count, if asked) of those rows only. A window
        // `COUNT(*) OVER ()` here would cost more than the separate count below.
        let rows: Vec<PageRow> = bind(sql(format!(
            "SELECT p.*, \
             (SELECT string_agg(h.symbol || ' ' || CAST(h.quantity AS TEXT) || ' ' || \
                CAST(h.price AS TEXT) || ' ' || CAST(h.value AS TEXT), '|' ORDER BY h.seq) \
              FROM holdings h WHERE h.job_id = p.job_id AND h.model = p.model \
              AND h.date = p.date) AS holdings_packed, \
             {trade_count} AS trade_count \
             FROM ({MODEL_DAY_SELECT}{where_clause}\
             ORDER BY d.date, d.model, d.job_id LIMIT {limit_at} OFFSET {offset_at}) p \
             ORDER BY p.date, p.model, p.job_id"
        )))
        .bind(limit)
        .bind(sql_offset(filter.offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read results"))?;
        let total = if (filter.offset == 0 || !rows.is_empty()) && (rows.len() as i64) < limit {
            // A short page that is not past the end ends the matches.
            filter.offset.saturating_add(rows.len() as u64)
        } else {
            let (n,): (i64,) = bind(sql(format!(
                "SELECT COUNT(*) FROM job_details d {where_clause}"
            )))
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::db("count results"))?;
            u64::try_from(n).unwrap_or(0)
        };
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let ccy = row.day.currency()?;
            let holdings = unpack_holdings(row.holdings_packed.as_deref(), ccy)?;
            items.push(ModelDayResult {
                model_day: row.day.into_model_day()?,
                trades: u32::try_from(row.trade_count).unwrap_or(u32::MAX),
                holdings,
            });
        }
        Ok(ResultsPage {
            items,
            total,
            limit: limit as u32,
            offset: filter.offset,
        })
    }

    async fn read_version(&self) -> Result<ReadVersion, StoreError> {
        self.freshness().version(|| self.change_probe()).await
    }

    async fn leaderboard(
        &self,
        job_id: &str,
        initial_value: tradeloom_core::Money,
    ) -> Result<Vec<LeaderboardEntry>, StoreError> {
        let job = self.job(job_id).await?;
        if initial_value.currency() != job.currency {
            return Err(StoreError::Invalid(format!(
                "initial value is in {}, but job {job_id} is in {}",
                initial_value.currency(),
                job.currency
            )));
        }
        let rows: Vec<ModelDayRow> = sql(format!(
            "{MODEL_DAY_SELECT}WHERE d.job_id = $1 ORDER BY d.model, d.date"
        ))
        .bind(job_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read a job's model-days"))?;
        let counts = |text: &'static str, context: &'static str| {
            let pool = self.pool();
            async move {
                let rows: Vec<(String, i64)> = sql(text)
                    .bind(job_id)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::db(context))?;
                Ok::<_, StoreError>(
                    rows.into_iter()
                        .collect::<std::collections::HashMap<String, i64>>(),
                )
            }
        };
        let trades = counts(
            "SELECT model, COUNT(*) FROM positions WHERE job_id = $1 \
             AND action <> 'hold' GROUP BY model",
            "count trades per model",
        )
        .await?;
        let mut entries: Vec<LeaderboardEntry> = Vec::new();
        for row in rows {
            let day = row.into_model_day()?;
            if entries.last().is_none_or(|e| e.model != day.model) {
                entries.push(LeaderboardEntry {
                    trades: trades.get(&day.model).copied().unwrap_or(0) as u64,
                    tool_calls: 0,
                    tool_errors: 0,
                    model: day.model.clone(),
                    daily: Vec::new(),
                    completed_days: 0,
                    failed_days: 0,
                    refused_days: 0,
                    final_value: None,
                    total_return: None,
                    max_drawdown: None,
                    sharpe: None,
                });
            }
            // Invariant: an entry was pushed just above if none existed.
            let Some(entry) = entries.last_mut() else {
                continue;
            };
            // Every day that ran a session counts, failed ones included: a model
            // whose days fail on tool errors has made those errors.
            entry.tool_calls += u64::from(day.tool_calls.unwrap_or(0));
            entry.tool_errors += u64::from(day.tool_errors.unwrap_or(0));
            match (day.status, day.portfolio_value) {
                (ModelDayStatus::Completed, Some(value)) => {
                    entry.completed_days += 1;
                    entry.daily.push(DailyValue {
                        date: day.date,
                        value,
                    });
                }
                (ModelDayStatus::Failed, _) => entry.failed_days += 1,
                (ModelDayStatus::Refused, _) => entry.refused_days += 1,
                _ => {}
            }
        }
        for e in &mut entries {
            let stats = crate::results::statistics(initial_value, &e.daily);
            e.final_value = e.daily.last().map(|d| d.value);
            e.total_return = stats.total_return;
            e.max_drawdown = stats.max_drawdown;
            e.sharpe = stats.sharpe;
        }
        Ok(entries)
    }
}
