//! The dashboard's files at `/` and `/ui/…`: public, with strict headers and ETags, nothing else
//! of the API opened by them; and the read-only routes it uses (`/me`, `/simulate/jobs`,
//! `/health/history`, `/ops/drills`, `/ops/reconciliations`), with their roles and bad inputs.

use reqwest::StatusCode as Status;
use serde_json::Value;
use tradeloom_server::AuthMode;
use tradeloom_store::Role;

use crate::harness::{key, read, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_files_are_public_with_strict_headers_and_the_api_still_needs_a_key() {
    let s = serve(|s| s.with_auth(AuthMode::Required)).await;
    let http = reqwest::Client::new();

    let (status, headers, body) =
        read(http.get(format!("{}/", s.base)).send().await.unwrap()).await;
    assert_eq!(status, Status::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(body.contains(r#"<script src="/ui/app.js">"#), "{body}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers["etag"].to_str().unwrap().to_string();
    let again = http
        .get(format!("{}/", s.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), Status::NOT_MODIFIED);

    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("lightweight-charts.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let (status, headers, body) = read(
            http.get(format!("{}/ui/{file}", s.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, Status::OK, "{file}");
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{file}"
        );
        assert!(!body.is_empty());
    }
    // Only the embedded files: no path reaches anything else.
    for path in ["/ui/nope.js", "/ui/..%2Fkeys", "/ui/%2e%2e%2fCargo.toml"] {
        let (status, _, body) =
            read(http.get(format!("{}{path}", s.base)).send().await.unwrap()).await;
        assert_eq!(status, Status::NOT_FOUND, "{path}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "asset_not_found", "{path}: {v}");
    }
    // The files are public; the API behind them is not.
    let (status, _, _) = read(http.get(format!("{}/me", s.base)).send().await.unwrap()).await;
    assert_eq!(status, Status::UNAUTHORIZED);
    let viewer = key(s.store.as_ref(), "watcher", Role::Viewer).await;
    let (status, _, body) = read(
        http.get(format!("{}/me", s.base))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, Status::OK, "{body}");
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("watcher"), Some("viewer"))
    );
    assert!(me["key_id"].as_str().is_some());
}

async fn get(http: &reqwest::Client, base: &str, path: &str) -> (Status, Value) {
    let r = http.get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_reads_list_what_the_data_dir_holds() {
    let s = serve(|s| s).await;
    let http = reqwest::Client::new();
    let data = s.data_dir();

    let (status, v) = get(&http, &s.base, "/ops/drills").await;
    assert_eq!(
        (status, v["drills"].as_array().map(Vec::len)),
        (Status::OK, Some(0))
    );
    std::fs::create_dir_all(data.join("drills/work")).unwrap();
    std::fs::write(
        data.join("drills/kill_switch.json"),
        r#"{"drill":"kill_switch","passed":true}"#,
    )
    .unwrap();
    std::fs::write(data.join("drills/broken.json"), "{not json").unwrap();
    let (_, v) = get(&http, &s.base, "/ops/drills").await;
    let drills = v["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 1, "{v}");
    assert_eq!(drills[0]["name"], "kill_switch");
    assert_eq!(drills[0]["report"]["passed"], true);

    for (id, at, passed) in [
        ("run-a", "2026-12-01T00:00:00Z", true),
        ("run-b", "2026-12-02T00:00:00Z", false),
    ] {
        let dir = data.join("runs").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("reconciliation_result.json"),
            serde_json::json!({"passed": passed, "run_id": id, "checked_at": at, "checks": []})
                .to_string(),
        )
        .unwrap();
    }
    let (_, v) = get(&http, &s.base, "/ops/reconciliations").await;
    let ids: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["run-b", "run-a"], "newest check first");
    let (_, v) = get(&http, &s.base, "/ops/reconciliations?limit=1").await;
    assert_eq!(v["results"].as_array().unwrap().len(), 1);

    let (status, v) = get(&http, &s.base, "/health/history").await;
    assert_eq!(
        (status, v["entries"].as_array().map(Vec::len)),
        (Status::OK, Some(0))
    );
    let (status, v) = get(&http, &s.base, "/simulate/jobs").await;
    assert_eq!(status, Status::OK, "{v}");
    assert_eq!(v["jobs"], serde_json::json!([]));
    assert_eq!(v["next_offset"], Value::Null);

    for path in [
        "/health/history?limit=0",
        "/ops/reconciliations?limit=5001",
        "/simulate/jobs?limit=501",
    ] {
        let (status, v) = get(&http, &s.base, path).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (Status::BAD_REQUEST, Some("invalid_query")),
            "{path}: {v}"
        );
        assert_eq!(v["details"]["param"], "limit", "{path}");
    }
    let (status, v) = get(&http, &s.base, "/simulate/jobs?page=2").await;
    assert_eq!(status, Status::BAD_REQUEST, "an unknown parameter: {v}");
}
