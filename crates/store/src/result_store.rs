//! [`ResultStore`]: results pages and the leaderboard of a job.

use async_trait::async_trait;
use tradeloom_core::Money;

use crate::error::StoreError;
use crate::job_store::JobStore;
use crate::model_day::ModelDayStatus;
use crate::model_day_store::{MODEL_DAY_SELECT, ModelDayRow, PageRow, unpack_holdings};
use crate::results::{DailyValue, LeaderboardEntry, ModelDayResult, ResultsFilter, ResultsPage};
use crate::sql::{Db, page, sql, sql_offset};

/// Reading the results of simulation jobs.
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Model-days matching the filter with their holdings, paginated.
    async fn results(&self, filter: &ResultsFilter) -> Result<ResultsPage, StoreError>;

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
        const WHERE: &str = "WHERE ($1 IS NULL OR d.job_id = $1) \
             AND ($2 IS NULL OR d.model = $2) AND ($3 IS NULL OR d.date = $3) \
             AND (NOT $4 OR d.status = 'completed') ";
        let limit = page(filter.limit);
        // The page first (walking the (date, model, job_id) index and stopping at
        // LIMIT), then the holdings and trade count of those rows only. A window
        // `COUNT(*) OVER ()` here would cost more than the separate count below.
        let rows: Vec<PageRow> = sql(format!(
            "SELECT p.*, \
             (SELECT string_agg(h.symbol || ' ' || CAST(h.quantity AS TEXT) || ' ' || \
                CAST(h.price AS TEXT) || ' ' || CAST(h.value AS TEXT), '|' ORDER BY h.seq) \
              FROM holdings h WHERE h.job_id = p.job_id AND h.model = p.model \
              AND h.date = p.date) AS holdings_packed, \
             (SELECT COUNT(*) FROM positions t WHERE t.job_id = p.job_id \
              AND t.model = p.model AND t.date = p.date AND t.action <> 'hold') AS trade_count \
             FROM ({} {WHERE} ORDER BY d.date, d.model, d.job_id LIMIT $5 OFFSET $6) p \
             ORDER BY p.date, p.model, p.job_id",
            MODEL_DAY_SELECT
        ))
        .bind(filter.job_id.as_deref())
        .bind(filter.model.as_deref())
        .bind(filter.date)
        .bind(filter.completed_only)
        .bind(limit)
        .bind(sql_offset(filter.offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("read results"))?;
        let total = if filter.offset == 0 && (rows.len() as i64) < limit {
            // A short first page is everything.
            rows.len() as i64
        } else {
            let (n,): (i64,) = sql(format!("SELECT COUNT(*) FROM job_details d {WHERE}"))
                .bind(filter.job_id.as_deref())
                .bind(filter.model.as_deref())
                .bind(filter.date)
                .bind(filter.completed_only)
                .fetch_one(self.pool())
                .await
                .map_err(StoreError::db("count results"))?;
            n
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
            total: u64::try_from(total).unwrap_or(0),
            limit: limit as u32,
            offset: filter.offset,
        })
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
