//! The guard in front of the routes, over real HTTP: Host and Origin checks against DNS
//! rebinding and cross-site requests, separate rate-limit budgets for unauthenticated callers,
//! a minimal public `/health` without credentials in URLs, and `config_path` confinement.

use reqwest::header;
use serde_json::{Value, json};
use tradeloom_core::Currency;
use tradeloom_server::{AuthMode, RateLimits};
use tradeloom_store::{NewJob, Role};

use crate::harness::{key, read, serve};

#[tokio::test]
async fn a_foreign_host_or_a_cross_site_request_is_refused() {
    // The loopback default: auth off, so only the Host and Origin checks stand between a web
    // page the local user opens and the API.
    let server = serve(|s| s).await;
    let port = server.addr.port();
    let c = reqwest::Client::new();
    let url = format!("{}/workflows", server.base);

    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, _, body) = read(
            c.get(&url)
                .header(header::HOST, &host)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    // A rebinding attacker's name resolving to 127.0.0.1.
    for host in [format!("evil.example:{port}"), "evil.example".to_string()] {
        let (status, headers, body) = read(
            c.get(&url)
                .header(header::HOST, &host)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 421, "{host}: {body}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "host_not_allowed", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("--allowed-host"),
            "{v}"
        );
    }
    // Cross-origin browser requests: a foreign Origin, or Sec-Fetch-Site: cross-site.
    for (name, value) in [
        ("origin", "http://evil.example".to_string()),
        ("origin", "null".to_string()),
        ("origin", format!("http://localhost:{}", port + 1)),
        ("sec-fetch-site", "cross-site".to_string()),
    ] {
        for req in [
            c.get(&url),
            c.post(&url).json(&json!({"name": "x", "nodes": []})),
        ] {
            let (status, _, body) = read(req.header(name, &value).send().await.unwrap()).await;
            assert_eq!(status, 403, "{name}: {value}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "cross_origin_refused", "{v}");
        }
    }
    // The server's own origin and same-origin fetches pass.
    let (status, _, body) = read(
        c.get(&url)
            .header("origin", server.base.clone())
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn unauthenticated_floods_do_not_lock_out_keys() {
    let server = serve(|s| {
        s.with_auth(AuthMode::Required)
            .with_rate_limits(RateLimits {
                global_per_s: 10,
                per_key_per_s: 10,
                ..RateLimits::unlimited()
            })
    })
    .await;
    let admin = key(server.store.as_ref(), "root", Role::Admin).await;
    let c = reqwest::Client::new();
    let url = format!("{}/workflows", server.base);
    let mut limited = 0;
    for _ in 0..40 {
        let (status, _, body) = read(c.get(&url).send().await.unwrap()).await;
        match status.as_u16() {
            401 => {}
            429 => {
                limited += 1;
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["error"], "rate_limited", "{v}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(limited >= 20, "the flood is limited: {limited} of 40");
    for _ in 0..5 {
        let (status, _, body) = read(c.get(&url).bearer_auth(&admin).send().await.unwrap()).await;
        assert_eq!(status, 200, "the admin key keeps its own budget: {body}");
    }
}

#[tokio::test]
async fn public_health_is_minimal_and_no_url_shows_credentials() {
    let server = serve(|s| s.with_auth(AuthMode::Required)).await;
    let viewer = key(server.store.as_ref(), "watcher", Role::Viewer).await;
    server
        .store
        .create_job(NewJob {
            config: json!({"models": [
                {"name": "a", "base_url": "http://admin:S3cretPass@127.0.0.1:9/v1", "model": "m"}
            ]}),
            currency: Currency::USD,
            models: vec!["a".into()],
            dates: vec![chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()],
        })
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let url = format!("{}/health", server.base);

    let (status, _, body) = read(c.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"status": v["status"]}),
        "public health is the status only"
    );
    assert!(
        !body.contains("S3cretPass") && !body.contains("127.0.0.1:9"),
        "{body}"
    );

    let (status, _, body) = read(c.get(&url).bearer_auth(&viewer).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("S3cretPass") && !body.contains("admin:"),
        "{body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["providers"][0]["base_url"], "http://127.0.0.1:9/v1",
        "{v}"
    );
    assert_eq!(v["store"]["ok"], true, "{v}");
}

#[tokio::test]
async fn config_path_is_disabled_without_a_config_dir_and_never_echoes_a_file() {
    let server = serve(|s| s).await;
    let c = reqwest::Client::new();
    let url = format!("{}/simulate/trigger", server.base);
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "TOP_SECRET_LINE=hunter2\n").unwrap();
    for path in [
        "/etc/passwd".to_string(),
        secret_file.path().display().to_string(),
        "../../../../etc/passwd".to_string(),
    ] {
        let (status, _, body) = read(
            c.post(&url)
                .json(&json!({"config_path": path}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "config_path_disabled", "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("config_path is disabled"),
            "{v}"
        );
        assert!(
            !body.contains("root:") && !body.contains("hunter2") && !body.contains("TOP_SECRET"),
            "{body}"
        );
    }
}
