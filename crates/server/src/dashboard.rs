//! The web dashboard: `GET /` and `GET /ui/<file>`, static files embedded in the binary (no
//! CDN, no Node at build time; sources in `assets/dashboard/`, shared charts in
//! `assets/common/`, TradingView lightweight-charts vendored in `assets/vendor/`).
//!
//! The files are public (they hold no data): the page asks for an API key once, keeps it in the
//! browser's `sessionStorage`, and sends it as `Authorization: Bearer` on every API call (and
//! `?api_key=` on `/ws`), so the dashboard sees and does exactly what the key's role allows.
//! Every answer carries a strict Content-Security-Policy (scripts and connections to this
//! origin only; inline styles allowed, which the chart library sets) and `X-Frame-Options: DENY`.

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../assets/dashboard/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/dashboard/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/dashboard/style.css"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/common/charts.js"),
    },
    Asset {
        name: "lightweight-charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!(
            "../../../assets/vendor/lightweight-charts/lightweight-charts.standalone.production.js"
        ),
    },
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether `path` is one of the dashboard's (public) paths.
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

/// The dashboard's routes (merged beside the API's).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(UrlPath(name): UrlPath<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(index) => serve(index, &headers),
        None => ApiError::not_found(
            "asset_not_found",
            "no such dashboard file; the dashboard is at /",
        )
        .into_response(),
    }
}

/// The ETag of `ASSETS[index]`, every asset hashed once on first use: the files are part of
/// the binary and never change while it runs.
fn etag(index: usize) -> &'static str {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12])))
            .collect()
    });
    &tags[index]
}

/// `ASSETS[index]` (a 304 when `If-None-Match` has its ETag), with the dashboard's headers.
fn serve(index: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let tag = etag(index);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load (cheap with the ETag), so an upgraded binary serves its own.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
