//! Kept answers of the read routes (`GET /results`, `GET /simulate/status/{id}`) and kept API
//! keys: byte-equal to what SQL gives, dropped by any change (a re-trigger), and a key revoked
//! in this process refused by the next request.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use tradeloom_core::{Currency, Decimal, Money};
use tradeloom_server::{AppState, AuthMode};
use tradeloom_store::{
    Holding, ModelDayKey, ModelDayOutcome, NewJob, ReasoningMessage, Role, Store, ToolCall, Trade,
    TradeAction,
};

use crate::harness::{json_error, key, oneshot, state};

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, day).unwrap()
}

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::USD).unwrap()
}

fn outcome(value: &str) -> ModelDayOutcome {
    let at = Utc
        .with_ymd_and_hms(2025, 1, 2, 14, 30, 0)
        .single()
        .unwrap();
    ModelDayOutcome {
        steps: 2,
        cash: usd("2500.5"),
        portfolio_value: usd(value),
        trades: vec![Trade {
            step: 1,
            action: TradeAction::Buy,
            symbol: Some("AAPL".into()),
            quantity: Decimal::parse("10").unwrap(),
            price: Decimal::parse("180.40").unwrap(),
            fee: usd("0.1"),
            cash_after: usd("7995.9"),
        }],
        holdings: vec![
            Holding {
                symbol: "MSFT".into(),
                quantity: Decimal::parse("0.5").unwrap(),
                price: Decimal::parse("410.12").unwrap(),
                value: usd("205.06"),
            },
            Holding {
                symbol: "AAPL".into(),
                quantity: Decimal::parse("10").unwrap(),
                price: Decimal::parse("181.25").unwrap(),
                value: usd("1812.5"),
            },
        ],
        reasoning: vec![ReasoningMessage {
            step: 0,
            role: "assistant".into(),
            content: "buy".into(),
            tool_calls: None,
            created_at: at,
        }],
        tool_calls: vec![ToolCall {
            step: 1,
            tool: "get_price".into(),
            args: json!({"symbol": "AAPL"}),
            result: Some(json!({"price": "180.40"})),
            latency_ms: 3,
            error: None,
            created_at: at,
        }],
        memory: None,
    }
}

/// A job of models a and b over days 2, 3 and 6: every model-day of a completed, b's days
/// failed (the job ends `partial`). Returns its id.
async fn partial_job(store: &dyn Store) -> String {
    let job = store
        .create_job(NewJob {
            config: json!({"models": [{"name": "a"}, {"name": "b"}],
                           "start_date": "2025-01-02", "end_date": "2025-01-06"}),
            currency: Currency::USD,
            models: vec!["a".into(), "b".into()],
            dates: vec![date(2), date(3), date(6)],
        })
        .await
        .unwrap();
    store.mark_job_running(&job.id).await.unwrap();
    for (day, value) in [(2, "10100"), (3, "10210.5"), (6, "9999.99")] {
        let key = ModelDayKey {
            job_id: job.id.clone(),
            model: "a".into(),
            date: date(day),
        };
        store
            .claim_model_day(&key, std::time::Duration::from_secs(600))
            .await
            .unwrap()
            .unwrap();
        store
            .complete_model_day(&key, &outcome(value))
            .await
            .unwrap();
    }
    store.fail_job(&job.id, "model b is down").await.unwrap();
    job.id
}

fn get(uri: &str, bearer: Option<&str>) -> Request<Body> {
    let mut r = Request::builder().method(Method::GET).uri(uri);
    if let Some(k) = bearer {
        r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    r.body(Body::empty()).unwrap()
}

/// Status, content type and body of `GET uri` through `state`'s router.
async fn read(state: &AppState, uri: &str) -> (StatusCode, String, String) {
    oneshot(state.clone(), get(uri, None)).await
}

fn uris(job: &str) -> Vec<String> {
    vec![
        "/results?detail=minimal".into(),
        "/results".into(),
        format!("/results?job_id={job}&detail=minimal"),
        format!("/results?job_id={job}&limit=2"),
        format!("/results?job_id={job}&limit=2&offset=2"),
        format!("/results?job_id={job}&limit=1&offset=1"),
        format!("/results?job_id={job}&limit=2&offset=9"),
        format!("/results?job_id={job}&model=a&date=2025-01-03&detail=full"),
        format!("/simulate/status/{job}"),
    ]
}

#[tokio::test]
async fn kept_answers_are_byte_equal_to_fresh_reads() {
    let (kept, store, _dir) = state().await;
    let job = partial_job(store.as_ref()).await;
    for uri in uris(&job) {
        // The first answer is read through SQL and kept; the second is the kept one.
        let first = read(&kept, &uri).await;
        let again = read(&kept, &uri).await;
        // A server that never kept anything reads the same rows through SQL.
        let fresh = read(&AppState::new(Arc::clone(&kept.simulator)), &uri).await;
        assert_eq!(first.0, StatusCode::OK, "{uri}: {}", first.2);
        assert_eq!(first.1, "application/json", "{uri}");
        assert_eq!(again, first, "{uri}: the kept answer");
        assert_eq!(fresh, first, "{uri}: the kept answer is what SQL gives");
    }
    // The shapes are the documented ones.
    let (_, _, body) = read(&kept, &format!("/results?job_id={job}&limit=2")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["total"].as_u64(), v["next_offset"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        v["results"][0]["holdings"],
        json!({"AAPL": "10", "MSFT": "0.5"})
    );
    assert_eq!(v["results"][0]["cash"], "2500.50");
    assert!(v["results"][0].get("full").is_none());
    let (_, _, body) = read(&kept, &format!("/results?job_id={job}&limit=2&offset=2")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["total"].as_u64(), v["results"].as_array().map(Vec::len)),
        (Some(3), Some(1))
    );
    assert!(v["next_offset"].is_null());
}

#[tokio::test]
async fn a_retrigger_or_a_deleted_job_changes_what_is_served() {
    let (kept, store, _dir) = state().await;
    let job = partial_job(store.as_ref()).await;
    let before: Vec<_> = {
        let mut out = Vec::new();
        for uri in uris(&job) {
            out.push(read(&kept, &uri).await);
        }
        out
    };
    let (_, _, status) = read(&kept, &format!("/simulate/status/{job}")).await;
    assert!(status.contains(r#""status":"partial""#), "{status}");
    // What a trigger of the same config does to a partial job: its failed days run again.
    assert_eq!(store.retry_failed_model_days(&job).await.unwrap(), 3);
    let (_, _, status) = read(&kept, &format!("/simulate/status/{job}")).await;
    assert!(!status.contains(r#""failed":3"#), "{status}");
    // Model b completes a day: the pages show it at once.
    let key_b = ModelDayKey {
        job_id: job.clone(),
        model: "b".into(),
        date: date(2),
    };
    store
        .claim_model_day(&key_b, std::time::Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    store
        .complete_model_day(&key_b, &outcome("10001"))
        .await
        .unwrap();
    let fresh_state = AppState::new(Arc::clone(&kept.simulator));
    for uri in &uris(&job) {
        let (mut now, mut fresh) = (read(&kept, uri).await, read(&fresh_state, uri).await);
        // The re-opened job runs on the clock (never kept): compare all but its duration.
        for (_, _, body) in [&mut now, &mut fresh] {
            let mut v: Value = serde_json::from_str(body).unwrap();
            if let Some(d) = v.get_mut("total_duration_seconds") {
                *d = Value::Null;
            }
            *body = v.to_string();
        }
        assert_eq!(now, fresh, "{uri}: after the change, what SQL gives");
    }
    let (_, _, page) = read(&kept, &format!("/results?job_id={job}")).await;
    let v: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(v["total"], 4, "{v}");
    assert_ne!(
        read(&kept, &format!("/results?job_id={job}")).await,
        before[2],
        "the kept page of the job is not served after a change"
    );
    // A deleted job is gone from the kept answers too.
    store.delete_job(&job).await.unwrap();
    let (code, ct, body) = read(&kept, &format!("/simulate/status/{job}")).await;
    json_error(code, &ct, &body, "job_not_found");
    let (code, ct, body) = read(&kept, &format!("/results?job_id={job}")).await;
    json_error(code, &ct, &body, "job_not_found");
    let (code, _, body) = read(&kept, "/results?detail=minimal").await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.starts_with(r#"{"results":[],"total":0"#), "{body}");
}

#[tokio::test]
async fn a_key_revoked_in_this_process_is_refused_by_the_next_request() {
    let (state, store, _dir) = state().await;
    let state = state.with_auth(AuthMode::Required);
    let admin = key(store.as_ref(), "root", Role::Admin).await;
    let viewer = key(store.as_ref(), "reader", Role::Viewer).await;
    let doomed = key(store.as_ref(), "doomed", Role::Viewer).await;
    let send = |uri: &str, k: Option<&str>, method: Method| {
        let mut r = Request::builder().method(method).uri(uri);
        if let Some(k) = k {
            r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        oneshot(state.clone(), r.body(Body::empty()).unwrap())
    };
    for k in [&viewer, &doomed] {
        for _ in 0..2 {
            let (code, _, body) = send("/results", Some(k), Method::GET).await;
            assert_eq!(code, StatusCode::OK, "{body}");
        }
    }
    // Refusals are unchanged with a remembered key.
    let (code, ct, body) = send("/keys", Some(&viewer), Method::GET).await;
    let e = json_error(code, &ct, &body, "forbidden");
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        e["details"]["key"], "reader",
        "bound to the key that called"
    );
    let (code, ct, body) = send("/results", None, Method::GET).await;
    let e = json_error(code, &ct, &body, "unauthorized");
    assert_eq!(e["details"]["reason"], "missing_key");
    let (code, ct, body) = send("/results", Some("tl_not_a_key"), Method::GET).await;
    let e = json_error(code, &ct, &body, "unauthorized");
    assert_eq!(e["details"]["reason"], "invalid_key");
    assert!(!body.contains("tl_not_a_key"), "a key is never echoed");
    // Revoked over the API: the next request is refused.
    let (code, _, body) = send("/keys/reader", Some(&admin), Method::DELETE).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, ct, body) = send("/results", Some(&viewer), Method::GET).await;
    let e = json_error(code, &ct, &body, "unauthorized");
    assert_eq!(e["details"]["reason"], "invalid_key");
    // Revoked through the store of this process (not the route): refused as well.
    store.revoke_api_key("doomed").await.unwrap();
    let (code, _, _) = send("/results", Some(&doomed), Method::GET).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _, _) = send("/results", Some(&admin), Method::GET).await;
    assert_eq!(code, StatusCode::OK, "other keys still work");
}
