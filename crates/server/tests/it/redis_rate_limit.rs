//! Rate limits shared through Redis ([`RateLimiter::redis`]), when `TRADELOOM_TEST_REDIS_URL`
//! is set (skipped with a note otherwise; set and unreachable, the tests fail), each under a
//! key prefix of its own: limiters on one prefix are servers sharing one budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header;
use serde_json::Value;
use tradeloom_server::{ApiError, Principal, RateLimiter, RateLimits};
use tradeloom_store::Role;

use crate::harness::{read, serve};
use crate::redis_proxy::Proxy;
use crate::redis_scratch::{ENV, Scratch, url};

fn query<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> T {
    let mut conn = redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("{ENV}: cannot connect to {url}: {e}"));
    cmd.query(&mut conn).unwrap()
}

fn get(url: &str, key: &str) -> Option<String> {
    query(url, redis::cmd("GET").arg(key))
}

async fn limiter(url: &str, prefix: &str, limits: RateLimits) -> RateLimiter {
    RateLimiter::redis(limits, url, prefix)
        .await
        .unwrap_or_else(|e| panic!("{ENV}={url} is set but the limiter cannot connect: {e}"))
}

fn key(id: &str) -> Principal {
    Principal {
        key_id: Some(id.into()),
        name: id.into(),
        role: Role::Operator,
        max_concurrent_runs: None,
    }
}

/// `(details.limit, details.retry_after_s)` of a 429.
fn refusal(e: ApiError) -> (String, u64) {
    assert_eq!(e.status, 429, "{e:?}");
    assert_eq!(e.code, "rate_limited");
    (
        e.details["limit"].as_str().unwrap().to_string(),
        e.details["retry_after_s"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limiters_on_one_prefix_share_one_budget() {
    let Some(url) = url("rate limit") else { return };
    let scratch = Scratch::new(&url);
    let limits = RateLimits {
        per_key_per_s: 2,
        runs_light_per_min: 4,
        ..RateLimits::unlimited()
    };
    let a = limiter(&url, &scratch.prefix, limits).await;
    let b = limiter(&url, &scratch.prefix, limits).await;
    assert!(a.is_shared());

    // 4 light runs a minute for key k, taken through either server, then a 5th is refused
    // with the wait for the next token (one every 15 s).
    for limiter in [&a, &b, &a, &b] {
        limiter.check_workflow_run(&key("k"), 0).await.unwrap();
    }
    for limiter in [&a, &b] {
        let e = limiter.check_workflow_run(&key("k"), 0).await.unwrap_err();
        assert_eq!(e.details["tier"], "light");
        assert_eq!(e.details["limit_per_min"], 4);
        let (limit, retry) = refusal(e);
        assert_eq!(limit, "runs_light");
        assert!((14..=15).contains(&retry), "retry after {retry} s");
    }
    // 2 requests a second per key, across both.
    b.check_client("key:k").await.unwrap();
    a.check_client("key:k").await.unwrap();
    let e = b.check_client("key:k").await.unwrap_err();
    assert_eq!(refusal(e), ("per_key".to_string(), 1));

    // Another prefix is another deployment with budgets of its own.
    let other = Scratch::new(&url);
    let stranger = limiter(&url, &other.prefix, limits).await;
    stranger.check_workflow_run(&key("k"), 0).await.unwrap();

    let mut keys = scratch.keys();
    keys.sort();
    let p = &scratch.prefix;
    assert_eq!(
        keys,
        [
            format!("{p}rate:client:key:k"),
            format!("{p}rate:runs:light:key:k")
        ]
    );
    assert_eq!(a.local_fallbacks() + b.local_fallbacks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_run_tiers_are_limited_per_key() {
    let Some(url) = url("rate limit") else { return };
    let scratch = Scratch::new(&url);
    let limits = RateLimits {
        runs_light_per_min: 2,
        runs_standard_per_min: 1,
        runs_heavy_per_min: 1,
        ..RateLimits::unlimited()
    };
    let a = limiter(&url, &scratch.prefix, limits).await;
    let b = limiter(&url, &scratch.prefix, limits).await;
    let (x, y) = (key("x"), key("y"));

    a.check_workflow_run(&x, 4).await.unwrap();
    let e = b.check_workflow_run(&x, 7).await.unwrap_err();
    assert_eq!(
        (e.details["tier"].clone(), e.details["agent_nodes"].clone()),
        ("heavy".into(), 7.into())
    );
    let (limit, retry) = refusal(e);
    assert_eq!(limit, "runs_heavy");
    assert!((59..=60).contains(&retry), "retry after {retry} s");
    // Other keys and other tiers have budgets of their own.
    b.check_workflow_run(&y, 4).await.unwrap();
    a.check_workflow_run(&x, 1).await.unwrap();
    let (limit, _) = refusal(b.check_workflow_run(&x, 3).await.unwrap_err());
    assert_eq!(limit, "runs_standard");
    a.check_workflow_run(&x, 0).await.unwrap();
    b.check_workflow_run(&x, 0).await.unwrap();
    let (limit, retry) = refusal(a.check_workflow_run(&x, 0).await.unwrap_err());
    assert_eq!(limit, "runs_light");
    assert!((29..=30).contains(&retry), "retry after {retry} s");
    // Anonymous callers (auth off) share one budget in every process.
    a.check_workflow_run(&Principal::anonymous(), 5)
        .await
        .unwrap();
    let (limit, _) = refusal(
        b.check_workflow_run(&Principal::anonymous(), 5)
            .await
            .unwrap_err(),
    );
    assert_eq!(limit, "runs_heavy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_refused_requests_leave_the_budget_unchanged() {
    let Some(url) = url("rate limit") else { return };
    let scratch = Scratch::new(&url);
    let limits = RateLimits {
        runs_light_per_min: 2,
        ..RateLimits::unlimited()
    };
    let a = limiter(&url, &scratch.prefix, limits).await;
    let b = limiter(&url, &scratch.prefix, limits).await;
    let k = key("k");
    a.check_workflow_run(&k, 0).await.unwrap();
    b.check_workflow_run(&k, 0).await.unwrap();
    let bucket = format!("{}rate:runs:light:key:k", scratch.prefix);
    let tat = get(&url, &bucket).expect("the bucket's arrival time");
    let ttl: i64 = query(&url, redis::cmd("PTTL").arg(&bucket));
    assert!(
        (55_000..=60_000).contains(&ttl),
        "the bucket lives until it is full again, 60 s: {ttl} ms"
    );
    for i in 0..50 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        let (_, retry) = refusal(limiter.check_workflow_run(&k, 0).await.unwrap_err());
        assert!(retry <= 30, "a refusal spent budget: retry after {retry} s");
    }
    assert_eq!(
        get(&url, &bucket),
        Some(tat),
        "refusals do not touch the bucket"
    );
}

/// Redis goes away under a running limiter: checks fail open to the process's own buckets
/// (which still limit), are counted, and the shared budget is used again once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_to_local_budgets_then_recovers() {
    let Some(url) = url("rate limit") else { return };
    let scratch = Scratch::new(&url);
    let proxy = Proxy::start(&url).await;
    let limits = RateLimits {
        per_key_per_s: 1000,
        runs_light_per_min: 2,
        ..RateLimits::unlimited()
    };
    let through_proxy = limiter(&proxy.url(), &scratch.prefix, limits).await;
    let direct = limiter(&url, &scratch.prefix, limits).await;
    let k = key("k");
    direct.check_workflow_run(&k, 0).await.unwrap();
    direct.check_workflow_run(&k, 0).await.unwrap();
    let (limit, _) = refusal(through_proxy.check_workflow_run(&k, 0).await.unwrap_err());
    assert_eq!(limit, "runs_light", "the shared budget is spent");

    proxy.cut();
    let started = Instant::now();
    through_proxy
        .check_workflow_run(&k, 0)
        .await
        .expect("fails open to the local bucket");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a check waits for an absent Redis at most briefly: {:?}",
        started.elapsed()
    );
    through_proxy.check_workflow_run(&k, 0).await.unwrap();
    let (limit, _) = refusal(through_proxy.check_workflow_run(&k, 0).await.unwrap_err());
    assert_eq!(limit, "runs_light", "the local bucket still limits");
    assert!(through_proxy.local_fallbacks() >= 3);

    proxy.restore();
    // Once Redis answers (the fallback is not counted), its verdict is the shared one.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = through_proxy.local_fallbacks();
        let verdict = through_proxy.check_client("key:probe").await;
        if through_proxy.local_fallbacks() == before {
            verdict.expect("a fresh bucket");
            break;
        }
        assert!(Instant::now() < deadline, "Redis was not used again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = through_proxy.local_fallbacks();
    let (limit, _) = refusal(through_proxy.check_workflow_run(&k, 0).await.unwrap_err());
    assert_eq!(limit, "runs_light", "the shared bucket is still spent");
    assert_eq!(through_proxy.local_fallbacks(), before, "decided by Redis");
}

/// Two servers on one Redis prefix: the third request of a global budget of 2/s is refused by
/// whichever server gets it, with the same 429 body and `Retry-After` as in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shared_limits_answer_429_across_servers() {
    let Some(url) = url("rate limit") else { return };
    let scratch = Scratch::new(&url);
    let limits = RateLimits {
        global_per_s: 2,
        ..RateLimits::unlimited()
    };
    let first = Arc::new(limiter(&url, &scratch.prefix, limits).await);
    let second = Arc::new(limiter(&url, &scratch.prefix, limits).await);
    let one = serve(|s| s.with_rate_limiter(first)).await;
    let two = serve(|s| s.with_rate_limiter(second)).await;
    let c = reqwest::Client::new();
    for base in [&one.base, &two.base] {
        let (status, _, body) =
            read(c.get(format!("{base}/workflows")).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) = read(
        c.get(format!("{}/workflows", one.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "rate_limited", "{v}");
    assert_eq!(v["details"]["limit"], "global", "{v}");
    assert_eq!(v["details"]["limit_per_s"], 2, "{v}");
    assert_eq!(v["details"]["retry_after_s"], 1, "{v}");
}
