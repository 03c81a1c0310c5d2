//! Reconciliation of a simulation job: each model's completed model-days replayed, in date
//! order, from the job's starting cash with the stored trade rows, and compared with the stored
//! cash, holdings, portfolio values, tool calls and the leaderboard.

use std::collections::BTreeMap;

use serde_json::Value;
use tradeloom_core::{Bps, Currency, Decimal, Money, Price, Quantity};
use tradeloom_store::{
    Holding, ModelDay, ModelDayStatus, Store, StoreError, ToolCall, Trade, TradeAction,
};

use super::{Check, ReconcileError, Reconciliation, Subject};

/// A model's book as the replay builds it: exact cash and whole-share holdings (raw 10^-9).
struct Replay {
    cash: Money,
    holdings: BTreeMap<String, i64>,
}

fn fmt9(raw: i64) -> String {
    tradeloom_core::fixed::format_raw(i128::from(raw), 9, 0)
}

/// A stored number that is not a price or a quantity (the message says why).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotANumber(String);

fn price_of(d: Decimal) -> Result<Price, NotANumber> {
    d.to_price(d.decimals())
        .map_err(|e| NotANumber(e.to_string()))
}

fn quantity_of(d: Decimal) -> Result<Quantity, NotANumber> {
    d.to_quantity(d.decimals())
        .map_err(|e| NotANumber(e.to_string()))
}

/// The job's `initial_cash` and `fee_bps` from its stored config (defaults 10000 and 10 bps, as
/// the simulator applies them).
fn job_terms(config: &Value, currency: Currency) -> Result<(Money, Bps), ReconcileError> {
    let number = |key: &str, default: &str| -> Result<Decimal, ReconcileError> {
        let text = match config.get(key) {
            None | Some(Value::Null) => default.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "job config `{key}` is not a number: {other}"
                ))
                .into());
            }
        };
        Decimal::parse(&text)
            .map_err(|e| StoreError::Invalid(format!("job config `{key}` `{text}`: {e}")).into())
    };
    let initial = number("initial_cash", "10000")?.to_money(currency);
    let fee = Bps::fee_rate(number("fee_bps", "10")?)
        .map_err(|e| ReconcileError::Store(StoreError::Invalid(format!("job config: {e}"))))?;
    Ok((initial, fee))
}

/// Reconciles simulation job `job_id` in `store`.
pub async fn reconcile_job(
    store: &dyn Store,
    job_id: &str,
) -> Result<Reconciliation, ReconcileError> {
    let report = match store.job_report(job_id).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => {
            return Err(ReconcileError::NotFound(format!(
                "no simulation job `{job_id}` in the store (see `tradeloom jobs list`)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let currency = report.job.currency;
    let (initial, fee) = job_terms(&report.job.config, currency)?;
    let mut by_model: BTreeMap<String, Vec<&ModelDay>> = BTreeMap::new();
    for day in &report.model_days {
        by_model.entry(day.model.clone()).or_default().push(day);
    }
    let mut checks = Vec::new();
    // model → (final replayed value, buy/sell rows, completed days, failed days)
    let mut finals: BTreeMap<String, (Option<Money>, u64, u32, u32)> = BTreeMap::new();
    for (model, mut days) in by_model {
        days.sort_by_key(|d| d.date);
        let mut book = Replay {
            cash: initial,
            holdings: BTreeMap::new(),
        };
        let mut last_value = None;
        let (mut trades_total, mut completed, mut failed) = (0u64, 0u32, 0u32);
        for day in days {
            match day.status {
                ModelDayStatus::Completed => completed += 1,
                ModelDayStatus::Failed => {
                    failed += 1;
                    continue;
                }
                _ => continue,
            }
            let key = day.key();
            let trades = store.trades(&key).await?;
            let holdings = store.holdings(&key).await?;
            let calls = store.tool_usage(&key).await?;
            trades_total += trades
                .iter()
                .filter(|t| t.action != TradeAction::Hold)
                .count() as u64;
            let prefix = format!("{model}.{}", day.date);
            checks.push(replay_trades(&prefix, &mut book, &trades, fee, currency)?);
            checks.push(tool_calls_check(&prefix, &trades, &calls));
            checks.push(Check::money(
                format!("{prefix}.cash"),
                book.cash,
                day.cash.unwrap_or(Money::zero(currency)),
            ));
            checks.push(holdings_check(&prefix, &book, &holdings));
            let value = portfolio_value(&book, &holdings, currency)?;
            checks.push(holding_values_check(&prefix, &holdings, currency)?);
            checks.push(Check::money(
                format!("{prefix}.portfolio_value"),
                value,
                day.portfolio_value.unwrap_or(Money::zero(currency)),
            ));
            last_value = Some(value);
        }
        finals.insert(model, (last_value, trades_total, completed, failed));
    }

    // ---- the leaderboard --------------------------------------------------------------------
    let board = store.leaderboard(job_id, initial).await?;
    let mut listed = std::collections::BTreeSet::new();
    for entry in &board {
        listed.insert(entry.model.clone());
        let Some((value, trades, completed, failed)) = finals.get(&entry.model) else {
            checks.push(Check::verdict(
                format!("leaderboard.{}", entry.model),
                false,
                "a model of the job",
                "a model without model-days",
            ));
            continue;
        };
        match (value, entry.final_value) {
            (Some(v), Some(f)) => checks.push(Check::money(
                format!("leaderboard.{}.final_value", entry.model),
                *v,
                f,
            )),
            (v, f) => checks.push(Check::text(
                format!("leaderboard.{}.final_value", entry.model),
                v.map_or("none".to_string(), |m| m.to_string()),
                f.map_or("none".to_string(), |m| m.to_string()),
            )),
        }
        checks.push(Check::count(
            format!("leaderboard.{}.trades", entry.model),
            *trades,
            entry.trades,
        ));
        checks.push(Check::count(
            format!("leaderboard.{}.completed_days", entry.model),
            u64::from(*completed),
            u64::from(entry.completed_days),
        ));
        checks.push(Check::count(
            format!("leaderboard.{}.failed_days", entry.model),
            u64::from(*failed),
            u64::from(entry.failed_days),
        ));
    }
    let missing: Vec<&String> = finals.keys().filter(|m| !listed.contains(*m)).collect();
    checks.push(Check::verdict(
        "leaderboard.models",
        missing.is_empty(),
        format!("{} models", finals.len()),
        if missing.is_empty() {
            format!("{} models", finals.len())
        } else {
            format!(
                "missing: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    ));
    Ok(Reconciliation::new(
        Subject::JobId(report.job.id.clone()),
        checks,
    ))
}

/// Replays the day's trade rows on `book`: every fee must be the job's rate on the notional and
/// every `cash_after` the replayed cash. One check: all rows agree, or the first that does not.
fn replay_trades(
    prefix: &str,
    book: &mut Replay,
    trades: &[Trade],
    fee: Bps,
    currency: Currency,
) -> Result<Check, ReconcileError> {
    let name = format!("{prefix}.trades");
    let mut first_bad: Option<(String, String)> = None;
    for (i, t) in trades.iter().enumerate() {
        if t.action == TradeAction::Hold {
            continue;
        }
        let row = format!("trade row {} (step {})", i + 1, t.step);
        let symbol = t.symbol.clone().unwrap_or_default();
        let invalid =
            |m: String| ReconcileError::Store(StoreError::Invalid(format!("{name}: {row}: {m}")));
        let quantity = quantity_of(t.quantity).map_err(|e| invalid(e.0))?;
        let price = price_of(t.price).map_err(|e| invalid(e.0))?;
        let notional =
            Money::notional(price, quantity, currency).map_err(|e| invalid(e.to_string()))?;
        let expected_fee = fee.of_money(notional);
        let held = book.holdings.get(&symbol).copied().unwrap_or(0);
        let (cash, left) = match t.action {
            TradeAction::Buy => (
                book.cash.raw() - notional.raw() - expected_fee.raw(),
                held + quantity.raw(),
            ),
            _ => (
                book.cash.raw() + notional.raw() - expected_fee.raw(),
                held - quantity.raw(),
            ),
        };
        book.cash = Money::from_raw(cash, currency);
        if left == 0 {
            book.holdings.remove(&symbol);
        } else {
            book.holdings.insert(symbol.clone(), left);
        }
        if first_bad.is_some() {
            continue;
        }
        let what = format!(
            "{row}: {} {} {symbol} @ {}",
            t.action.as_str(),
            t.quantity,
            t.price
        );
        if left < 0 {
            first_bad = Some((
                format!("{what}: at most {} held", fmt9(held)),
                format!("{what}: sells beyond the holding"),
            ));
        } else if t.fee != expected_fee {
            first_bad = Some((
                format!("{what}: fee {expected_fee}"),
                format!("{what}: fee {}", t.fee),
            ));
        } else if t.cash_after != book.cash {
            first_bad = Some((
                format!("{what}: cash_after {}", book.cash),
                format!("{what}: cash_after {}", t.cash_after),
            ));
        }
    }
    let all = "every trade row replays (fee and cash_after)";
    Ok(match first_bad {
        None => Check::verdict(name, true, all, all),
        Some((expected, observed)) => Check::verdict(name, false, expected, observed),
    })
}

/// Successful `buy`/`sell` tool calls and the day's buy/sell rows must be the same trades.
fn tool_calls_check(prefix: &str, trades: &[Trade], calls: &[ToolCall]) -> Check {
    let from_calls: Vec<String> = calls
        .iter()
        .filter(|c| c.error.is_none() && (c.tool == "buy" || c.tool == "sell"))
        .map(|c| {
            let r = c.result.as_ref();
            let s = |k: &str| {
                r.and_then(|r| r.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            };
            let d = |k: &str| {
                let text = s(k);
                Decimal::parse(&text).map_or(text, |d| d.to_string())
            };
            format!(
                "step {} {} {} {} @ {} fee {} cash_after {}",
                c.step,
                c.tool,
                d("quantity"),
                s("symbol"),
                d("price"),
                d("fee"),
                d("cash_after")
            )
        })
        .collect();
    let from_rows: Vec<String> = trades
        .iter()
        .filter(|t| t.action != TradeAction::Hold)
        .map(|t| {
            format!(
                "step {} {} {} {} @ {} fee {} cash_after {}",
                t.step,
                t.action.as_str(),
                t.quantity,
                t.symbol.as_deref().unwrap_or("?"),
                t.price,
                Decimal::parse(&t.fee.to_string()).map_or(t.fee.to_string(), |d| d.to_string()),
                Decimal::parse(&t.cash_after.to_string())
                    .map_or(t.cash_after.to_string(), |d| d.to_string()),
            )
        })
        .collect();
    let name = format!("{prefix}.tool_calls");
    if from_calls == from_rows {
        let all = format!(
            "{} filled buy/sell tool calls = trade rows",
            from_rows.len()
        );
        return Check::verdict(name, true, all.clone(), all);
    }
    let i = from_calls
        .iter()
        .zip(&from_rows)
        .position(|(a, b)| a != b)
        .unwrap_or(from_calls.len().min(from_rows.len()));
    Check::verdict(
        name,
        false,
        format!(
            "tool call {} of {}: {}",
            i + 1,
            from_calls.len(),
            from_calls.get(i).map_or("none", String::as_str)
        ),
        format!(
            "trade row {} of {}: {}",
            i + 1,
            from_rows.len(),
            from_rows.get(i).map_or("none", String::as_str)
        ),
    )
}

/// The replayed holdings against the stored `holdings` rows (symbol and quantity).
fn holdings_check(prefix: &str, book: &Replay, rows: &[Holding]) -> Check {
    let replayed: Vec<String> = book
        .holdings
        .iter()
        .map(|(s, q)| format!("{s} {}", fmt9(*q)))
        .collect();
    let mut stored: Vec<(String, String)> = rows
        .iter()
        .map(|h| (h.symbol.clone(), h.quantity.to_string()))
        .collect();
    stored.sort();
    let stored: Vec<String> = stored
        .into_iter()
        .map(|(s, q)| format!("{s} {q}"))
        .collect();
    let show = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    Check::text(format!("{prefix}.holdings"), show(&replayed), show(&stored))
}

/// Every stored holding row's `value` must be `quantity × price`.
fn holding_values_check(
    prefix: &str,
    rows: &[Holding],
    currency: Currency,
) -> Result<Check, ReconcileError> {
    let name = format!("{prefix}.holding_values");
    for h in rows {
        let value = row_value(h, currency)?;
        if value != h.value {
            return Ok(Check::money(format!("{name}.{}", h.symbol), value, h.value));
        }
    }
    let all = "every holding value = quantity × price";
    Ok(Check::verdict(name, true, all, all))
}

fn row_value(h: &Holding, currency: Currency) -> Result<Money, ReconcileError> {
    let invalid = |m: String| {
        ReconcileError::Store(StoreError::Invalid(format!("holding {}: {m}", h.symbol)))
    };
    let q = quantity_of(h.quantity).map_err(|e| invalid(e.0))?;
    let p = price_of(h.price).map_err(|e| invalid(e.0))?;
    Money::notional(p, q, currency).map_err(|e| invalid(e.to_string()))
}

/// Replayed cash plus the replayed holdings valued at the stored prices of the day.
fn portfolio_value(
    book: &Replay,
    rows: &[Holding],
    currency: Currency,
) -> Result<Money, ReconcileError> {
    let mut total = book.cash.raw();
    for (symbol, q) in &book.holdings {
        if let Some(h) = rows.iter().find(|h| &h.symbol == symbol) {
            let price = price_of(h.price).map_err(|m| {
                ReconcileError::Store(StoreError::Invalid(format!("holding {symbol}: {m}")))
            })?;
            total += i128::from(*q) * i128::from(price.raw());
        }
    }
    Ok(Money::from_raw(total, currency))
}
