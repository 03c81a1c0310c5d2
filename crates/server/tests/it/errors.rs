//! Every error answer has the JSON shape `{error, message, details}`: extractor rejections
//! (JSON body, path, query), unknown routes, wrong methods, oversized and mistyped bodies.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::harness::{json_error, oneshot, state};

fn request(method: Method, uri: &str, content_type: Option<&str>, body: Body) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = content_type {
        r = r.header(header::CONTENT_TYPE, t);
    }
    r.body(body).unwrap()
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json() {
    let (state, _store, _dir) = state().await;
    // 20 MB of valid JSON: too large, not malformed.
    let big = format!(r#"{{"config": {{"pad": "{}"}}}}"#, "a".repeat(20 << 20));
    for uri in ["/simulate/trigger", "/workflows"] {
        let (status, content_type, body) = oneshot(
            state.clone(),
            request(
                Method::POST,
                uri,
                Some("application/json"),
                Body::from(big.clone()),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}: {body}");
        json_error(status, &content_type, &body, "payload_too_large");
    }
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_are_json() {
    let (state, _store, _dir) = state().await;
    for (method, uri) in [
        (Method::DELETE, "/simulate/trigger"),
        (Method::PUT, "/results"),
        (Method::POST, "/health"),
    ] {
        let response = tower::ServiceExt::oneshot(
            tradeloom_server::app(state.clone()),
            request(method.clone(), uri, None, Body::empty()),
        )
        .await
        .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert!(
            response.headers().contains_key(header::ALLOW),
            "405 keeps its Allow header"
        );
        let (status, content_type, body) = oneshot(
            state.clone(),
            request(method.clone(), uri, None, Body::empty()),
        )
        .await;
        let v = json_error(status, &content_type, &body, "method_not_allowed");
        assert!(
            v["message"].as_str().unwrap().contains(method.as_str()),
            "{v}"
        );
    }
    let (status, content_type, body) =
        oneshot(state, request(Method::GET, "/nowhere", None, Body::empty())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    json_error(status, &content_type, &body, "route_not_found");
}

#[tokio::test]
async fn extractor_rejections_are_json_on_every_route() {
    let (state, _store, _dir) = state().await;
    let cases = [
        // The cancel route's optional body: malformed, wrong type, unknown field.
        (
            request(
                Method::POST,
                "/workflow-runs/r1/cancel",
                Some("application/json"),
                Body::from("{oops"),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            request(
                Method::POST,
                "/workflow-runs/r1/cancel",
                Some("application/json"),
                Body::from(r#"{"reason": 5}"#),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            request(
                Method::POST,
                "/workflow-runs/r1/cancel",
                Some("text/plain"),
                Body::from(r#"{"reason": "x"}"#),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            request(
                Method::POST,
                "/simulate/trigger",
                Some("text/plain"),
                Body::from("{}"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            request(Method::GET, "/results?limit=many", None, Body::empty()),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            request(
                Method::GET,
                "/workflows/w1/versions/latest",
                None,
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
    ];
    for (req, expected, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, content_type, body) = oneshot(state.clone(), req).await;
        assert_eq!(status, expected, "{what}: {body}");
        json_error(status, &content_type, &body, code);
    }
}

#[tokio::test]
async fn a_workflow_with_an_unknown_agent_tool_is_422_naming_the_node_and_the_tool() {
    let (state, _store, _dir) = state().await;
    let definition = serde_json::json!({"name": "team", "nodes": [
        {"id": "analyst", "type": "agent", "config": {
            "model": {"base_url": "http://127.0.0.1:8089/v1", "model": "analyst"},
            "prompt": "Assess AAA.", "tools": ["get_bar"],
            "market": {"universe": "examples/universe", "as_of": "2025-03-05"}}},
        {"id": "trader", "type": "agent", "config": {
            "model": {"base_url": "http://127.0.0.1:8089/v1", "model": "trader"},
            "prompt": "Trade AAA.", "tools": ["get_price"]}}
    ]});
    let (status, content_type, body) = oneshot(
        state,
        request(
            Method::POST,
            "/workflows",
            Some("application/json"),
            Body::from(definition.to_string()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let v = json_error(status, &content_type, &body, "invalid_workflow");
    let errors = v["details"]["errors"].as_array().unwrap();
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["path"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "nodes[0].config.tools[0]: node `analyst`: unknown tool `get_bar` (did you mean `get_bars`?); workflow agents have: calc, get_bars, get_portfolio, get_price, patch_workflow, search_news, and registered skills as `skill:NAME`"
    );
    assert!(
        lines[1].starts_with(
            "nodes[1].config.market: node `trader`: tool `get_price` reads the market"
        ),
        "{lines:?}"
    );
}
