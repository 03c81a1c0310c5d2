//! The path rule: sensitive paths (cloud metadata APIs, dot-files) are refused on every host,
//! allow-listed ones included, on the first URL and on every redirect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest::Method;
use reqwest::header::HeaderMap;
use tradeloom_net::{GuardedClient, SsrfPolicy, check_url};

use crate::{refused, serve};

/// A policy under which 127.0.0.1 (any port) is allowed: only the path rule can refuse.
fn loopback_allowed() -> SsrfPolicy {
    SsrfPolicy {
        allow_hosts: vec!["127.0.0.1".into()],
        ..SsrfPolicy::default()
    }
}

#[tokio::test]
async fn metadata_paths_are_refused_even_on_allowed_hosts() {
    let policy = loopback_allowed();
    for url in [
        "http://127.0.0.1/latest/meta-data/iam/security-credentials/",
        "http://127.0.0.1:8080/latest/user-data",
        "http://127.0.0.1/latest/api/token",
        "http://127.0.0.1/computeMetadata/v1/instance/service-accounts/default/token",
        "http://127.0.0.1/metadata/identity/oauth2/token?resource=x",
        "http://127.0.0.1/metadata",
        "http://127.0.0.1/.env",
        "http://127.0.0.1/.git/config",
        // Spelling variants a server would read as the same path.
        "http://127.0.0.1/LATEST/Meta-Data/",
        "http://127.0.0.1//latest//meta-data",
        "http://127.0.0.1/l%61test/meta-data",
        "http://127.0.0.1/x/../latest/meta-data",
        "http://127.0.0.1/x/%2e%2e/computeMetadata/v1",
        "http://127.0.0.1/latest/meta-data%2fiam",
    ] {
        let e = refused(&policy, url).await;
        assert!(e.is_refusal(), "{url}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("path") && text.contains("blocked"),
            "{url}: {text}"
        );
    }
    // Neighbours of a blocked prefix are not blocked: the rule matches whole path segments.
    for url in [
        "http://127.0.0.1/v1/chat/completions",
        "http://127.0.0.1/metadatax",
        "http://127.0.0.1/api/latest/meta-data",
        "http://127.0.0.1/envelope",
    ] {
        check_url(&policy, url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[tokio::test]
async fn a_redirect_to_a_blocked_path_is_refused_before_it_is_followed() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/start",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [("location", "/latest/meta-data/iam/security-credentials/")],
                )
                    .into_response()
            }),
        )
        .fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "secret"
            }
        });
    let server = serve(app).await;
    let client = GuardedClient::new(loopback_allowed()).unwrap();
    let e = client
        .send(
            Method::GET,
            &format!("http://{server}/start"),
            HeaderMap::new(),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.is_refusal(), "{e}");
    assert!(
        e.redirected_from
            .as_deref()
            .is_some_and(|f| f.ends_with("/start")),
        "{e}"
    );
    assert!(e.to_string().contains("/latest/meta-data"), "{e}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the blocked path was fetched"
    );
}

#[tokio::test]
async fn the_path_list_is_configurable() {
    let mut policy = loopback_allowed();
    policy.deny_paths.push("/admin".into());
    let e = refused(&policy, "http://127.0.0.1/Admin/users").await;
    assert!(e.to_string().contains("(under `/admin`)"), "{e}");
    check_url(&policy, "http://127.0.0.1/administrator")
        .await
        .unwrap();
    // An empty list refuses no path.
    policy.deny_paths.clear();
    check_url(&policy, "http://127.0.0.1/latest/meta-data")
        .await
        .unwrap();
}
