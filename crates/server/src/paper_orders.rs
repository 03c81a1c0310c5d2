//! `POST /runs/{id}/orders`: one order sent to a running paper run whose spec accepts
//! `external_orders` (see [`tradeloom_runs::paper::orders`]), as `tradeloom order` sends it.
//! The order's `source` is the authenticated key (`api:<key id>`), never a name from the body.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use tradeloom_runs::paper::orders::{self, ExternalOrder, OrderStatus, SendError, SendWait, Side};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};

/// The longest `wait_ms`.
const MAX_WAIT_MS: u64 = 60_000;

/// `buy` or `sell`.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderSide {
    Buy,
    Sell,
}

/// One order for a paper run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// One of the run's instruments.
    pub symbol: String,
    pub side: OrderSide,
    /// An exact decimal at the instrument's size precision, e.g. `"10"`.
    pub quantity: String,
    /// A limit price (exact decimal); absent: a market order.
    #[serde(default)]
    pub limit: Option<String>,
    /// The order's id in the run: letters, digits, `.`, `_`, `-`, `:` (1–128). Sending an id
    /// again sends nothing and answers that order's state. Default: `api:` and the time.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// How long to wait for the fill, 0 to 60000 ms (default 10000).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

fn send_error(run_id: &str, e: SendError) -> ApiError {
    let details = json!({"run_id": run_id});
    if let SendError::Submit(orders::SubmitError::BadId(why)) = &e {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_order",
            format!("client_order_id: {why}"),
        )
        .with_details(json!({"run_id": run_id, "field": "client_order_id"}));
    }
    match e {
        SendError::NotFound(_) => ApiError::not_found(
            "run_not_found",
            format!("no paper run `{run_id}` (give the run's full id)"),
        ),
        SendError::NotPaper(..) => {
            ApiError::new(StatusCode::CONFLICT, "not_a_paper_run", e.to_string())
        }
        SendError::NotRunning(..) => {
            ApiError::new(StatusCode::CONFLICT, "run_finished", e.to_string())
        }
        SendError::NotAccepting(_) => {
            ApiError::new(StatusCode::CONFLICT, "orders_not_accepted", e.to_string())
        }
        SendError::NotTaken(..) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "order_not_taken",
            e.to_string(),
        ),
        // The run's folder could not be read or written: its path is not the API's to show.
        SendError::Submit(_) | SendError::Metadata(_) => {
            tracing::warn!(run_id, error = %e, "paper order");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("the folder of run `{run_id}` could not be read or written"),
            )
        }
    }
    .with_details(details)
}

/// Sends one order to a running paper run that accepts external orders and waits for its
/// fill. The run records it, journals an `external_order` line naming the key, checks it with
/// its kill switches and pre-trade risk, and fills it on a later bar.
#[utoipa::path(
    post, path = "/runs/{id}/orders", tag = "runs", operation_id = "place_paper_order",
    params(("id" = String, Path, description = "The paper run's full id")),
    request_body = PlaceOrderRequest,
    responses(
        (status = 200, description = "The order's final state: `{run_id, client_order_id, source, status (filled, refused, cancelled, expired), order_id, submitted_ts, code?, reason?, fills: [{fill_id, ts, price, quantity, fee}], request}`; a refusal by the run (an unknown symbol, a quantity finer than the instrument allows: `order.invalid`; the kill switch: `risk.kill_switch`; cash: `account.insufficient_cash`) is an answer too", body = Object),
        (status = 202, description = "Taken and still working (`accepted` or `partially_filled`) when `wait_ms` passed: it fills on a later bar; `GET /runs/{id}/journal` follows it, or send the same `client_order_id` again", body = Object),
        (status = 400, description = "A body that is not the request (`invalid_body`), or `wait_ms` over 60000 (`invalid_order`)", body = ErrorBody),
        (status = 404, description = "No run with this full id (`run_not_found`)", body = ErrorBody),
        (status = 409, description = "A backtest (`not_a_paper_run`), a run that is not running (`run_finished`), or one whose spec does not say `external_orders: true` (`orders_not_accepted`)", body = ErrorBody),
        (status = 422, description = "A `client_order_id` that cannot name an order (`invalid_order`, `details.field`)", body = ErrorBody),
        (status = 503, description = "The run did not take the order within 10 s (its process is gone: `order_not_taken`); the request was withdrawn", body = ErrorBody),
    )
)]
pub async fn place(
    State(state): State<AppState>,
    principal: Principal,
    id: Result<UrlPath<String>, PathRejection>,
    body: Result<Json<PlaceOrderRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let UrlPath(run_id) = id?;
    let Json(body) = body?;
    let wait_ms = body.wait_ms.unwrap_or(10_000);
    if wait_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            "invalid_order",
            format!("wait_ms: {wait_ms} is more than the maximum of {MAX_WAIT_MS}"),
        )
        .with_details(json!({"field": "wait_ms"})));
    }
    let client_order_id = body
        .client_order_id
        .unwrap_or_else(|| orders::timed_client_id("api"));
    let order = ExternalOrder {
        client_order_id,
        source: format!("api:{}", principal.key_id.as_deref().unwrap_or("anonymous")),
        symbol: body.symbol,
        side: match body.side {
            OrderSide::Buy => Side::Buy,
            OrderSide::Sell => Side::Sell,
        },
        quantity: body.quantity,
        limit: body.limit,
    };
    let wait = SendWait {
        fill: Duration::from_millis(wait_ms),
        ..SendWait::default()
    };
    let data_dir = crate::engine_runs::data_dir(&state);
    let run = run_id.clone();
    let sent = tokio::task::spawn_blocking(move || orders::send(&data_dir, &run, &order, wait))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("order task: {e}"),
            )
        })?;
    let reply = sent.map_err(|e| send_error(&run_id, e))?;
    let status = match reply.status {
        OrderStatus::Accepted | OrderStatus::PartiallyFilled => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    let value = serde_json::to_value(&reply).unwrap_or(Value::Null);
    Ok((status, Json(value)))
}
