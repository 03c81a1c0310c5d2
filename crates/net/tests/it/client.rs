//! The guarded client against real local servers: it connects only to checked addresses,
//! re-checks every redirect and bounds the response's size and time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap as AxumHeaders, Method as AxumMethod, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use reqwest::Method;
use reqwest::header::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tradeloom_net::{GuardedClient, SsrfError, SsrfErrorKind, SsrfPolicy};

use crate::serve;

#[derive(serde::Deserialize)]
struct To {
    to: String,
    #[serde(default)]
    status: Option<u16>,
}

/// The server under test: `/hello`, `/big` (64 KiB), `/slow` (10 s), `/echo` (method, body,
/// whether an Authorization header came), `/go?to=URL[&status=N]` (redirect) and `/loop`.
fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/big", get(|| async { vec![b'x'; 64 * 1024] }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .route(
            "/echo",
            any(
                |method: AxumMethod, headers: AxumHeaders, body: String| async move {
                    let auth = headers.contains_key("authorization");
                    format!("{method} {body} auth={auth}")
                },
            ),
        )
        .route(
            "/go",
            get(|Query(q): Query<To>| async move { redirect(q.status.unwrap_or(302), &q.to) })
                .post(
                    |Query(q): Query<To>| async move { redirect(q.status.unwrap_or(302), &q.to) },
                ),
        )
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
}

fn redirect(status: u16, to: &str) -> axum::response::Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, [("location", to.to_owned())]).into_response()
}

/// A server that counts the requests it gets: it must get none.
async fn tripwire() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "secret"
        }
    });
    (serve(app).await, hits)
}

/// A policy allowing exactly `addr` (host:port).
fn allowing(addr: SocketAddr) -> SsrfPolicy {
    SsrfPolicy {
        allow_hosts: vec![addr.to_string()],
        timeout: Duration::from_secs(10),
        ..SsrfPolicy::default()
    }
}

async fn get_url(
    client: &GuardedClient,
    url: &str,
) -> Result<tradeloom_net::GuardedResponse, SsrfError> {
    client.send(Method::GET, url, HeaderMap::new(), None).await
}

fn go(server: SocketAddr, to: &str) -> String {
    format!(
        "http://{server}/go?to={}",
        to.replace('&', "%26").replace('?', "%3F")
    )
}

#[tokio::test]
async fn an_allowed_server_answers_from_the_checked_address() {
    let server = serve(app()).await;
    let client = GuardedClient::new(allowing(server)).unwrap();
    let response = get_url(&client, &format!("http://{server}/hello"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.remote_addr, Some(server));
    assert_eq!(
        response.final_url.as_str(),
        format!("http://{server}/hello")
    );

    // Not allowed without the allow-list entry; nothing is sent.
    let strict = GuardedClient::new(SsrfPolicy::default()).unwrap();
    let e = get_url(&strict, &format!("http://{server}/hello"))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, SsrfErrorKind::Blocked { .. }), "{e}");
}

/// A name that only the policy's static resolution knows is connected to at that address: the
/// client never asks DNS again.
#[tokio::test]
async fn the_connection_goes_to_the_checked_address() {
    let server = serve(app()).await;
    let mut policy = SsrfPolicy::default();
    policy.allow_hosts.push("pinned.example.test".into());
    policy
        .resolve
        .insert("pinned.example.test".into(), vec![server.ip()]);
    let client = GuardedClient::new(policy).unwrap();
    let url = format!("http://pinned.example.test:{}/hello", server.port());
    let response = get_url(&client, &url).await.unwrap();
    assert_eq!(response.body, b"hello");
    assert_eq!(response.remote_addr, Some(server));
}

#[tokio::test]
async fn redirects_to_blocked_addresses_are_refused_before_connecting() {
    let server = serve(app()).await;
    let (other, hits) = tripwire().await;
    let client = GuardedClient::new(allowing(server)).unwrap();
    let cases = [
        (
            format!("http://{other}/"),
            "address 127.0.0.1 is blocked (loopback",
        ),
        (
            format!("http://127.0.0.1:{}/", other.port()),
            "127.0.0.1 is blocked (loopback",
        ),
        (
            format!("http://0x7f.1:{}/", other.port()),
            "127.0.0.1 is blocked (loopback",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{}/", other.port()),
            "IPv4-mapped",
        ),
        (
            format!("http://[::1]:{}/", other.port()),
            "::1 is blocked (loopback",
        ),
        (
            format!("http://localhost:{}/", server.port()),
            "localhost name",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "cloud metadata service",
        ),
        (
            "http://metadata.google.internal/".into(),
            "cloud metadata host",
        ),
        ("http://10.0.0.1/".into(), "private 10.0.0.0/8"),
        ("file:///etc/passwd".into(), "scheme `file` is not allowed"),
        (
            "gopher://127.0.0.1/".into(),
            "scheme `gopher` is not allowed",
        ),
    ];
    for status in [301, 302, 303, 307, 308] {
        for (target, reason) in &cases {
            let from = format!("{}&status={status}", go(server, target));
            let e = get_url(&client, &from).await.unwrap_err();
            assert!(e.is_refusal(), "{e}");
            // The Location as resolved against the redirecting URL (so normalised).
            assert_eq!(e.url, reqwest::Url::parse(target).unwrap().as_str());
            assert_eq!(e.redirected_from.as_deref(), Some(from.as_str()));
            let text = e.to_string();
            assert!(
                text.contains(reason) && text.contains("redirected from"),
                "{text}"
            );
        }
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused target was contacted"
    );
}

#[tokio::test]
async fn redirects_within_the_allowed_host_are_followed() {
    let server = serve(app()).await;
    let client = GuardedClient::new(allowing(server)).unwrap();
    let response = get_url(&client, &go(server, "/hello")).await.unwrap();
    assert_eq!(response.body, b"hello");
    assert_eq!(
        response.final_url.as_str(),
        format!("http://{server}/hello")
    );

    // 307 keeps the method and body; 303 continues as GET without body.
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer t".parse().unwrap());
    for (status, expected) in [(307, "POST ping auth=true"), (303, "GET  auth=true")] {
        let url = format!("{}&status={status}", go(server, "/echo"));
        let response = client
            .send(Method::POST, &url, headers.clone(), Some(b"ping".to_vec()))
            .await
            .unwrap();
        assert_eq!(String::from_utf8(response.body).unwrap(), expected);
    }

    // A redirect to another origin (same server under another allowed name) drops credentials.
    let mut policy = allowing(server);
    policy
        .allow_hosts
        .push(format!("other.example.test:{}", server.port()));
    policy
        .resolve
        .insert("other.example.test".into(), vec![server.ip()]);
    let client = GuardedClient::new(policy).unwrap();
    let to = format!("http://other.example.test:{}/echo", server.port());
    let url = format!("{}&status=307", go(server, &to));
    let response = client
        .send(Method::POST, &url, headers, Some(b"ping".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(response.body).unwrap(),
        "POST ping auth=false"
    );
}

#[tokio::test]
async fn redirect_loops_stop_at_max_redirects() {
    let server = serve(app()).await;
    let policy = SsrfPolicy {
        max_redirects: 3,
        ..allowing(server)
    };
    let client = GuardedClient::new(policy).unwrap();
    let e = get_url(&client, &format!("http://{server}/loop"))
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, SsrfErrorKind::TooManyRedirects { max: 3 }),
        "{e}"
    );
    assert!(e.to_string().contains("more than 3 redirects"), "{e}");
}

#[tokio::test]
async fn a_body_over_the_limit_fails() {
    let server = serve(app()).await;
    let policy = SsrfPolicy {
        max_response_bytes: 1024,
        ..allowing(server)
    };
    let client = GuardedClient::new(policy).unwrap();
    let e = get_url(&client, &format!("http://{server}/big"))
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, SsrfErrorKind::TooLarge { limit: 1024 }),
        "{e}"
    );

    // Exactly at the limit is fine.
    let policy = SsrfPolicy {
        max_response_bytes: 64 * 1024,
        ..allowing(server)
    };
    let client = GuardedClient::new(policy).unwrap();
    let response = get_url(&client, &format!("http://{server}/big"))
        .await
        .unwrap();
    assert_eq!(response.body.len(), 64 * 1024);
}

/// A chunked body announces no length: the client stops reading once past the limit.
#[tokio::test]
async fn a_chunked_body_over_the_limit_fails_while_streaming() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await.unwrap();
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("400\r\n{}\r\n", "y".repeat(1024));
        // Up to 100 MiB, unless the client hangs up first.
        for _ in 0..100 * 1024 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            counter.fetch_add(1024, Ordering::SeqCst);
        }
    });
    let policy = SsrfPolicy {
        max_response_bytes: 10_000,
        ..allowing(server)
    };
    let client = GuardedClient::new(policy).unwrap();
    let e = get_url(&client, &format!("http://{server}/stream"))
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, SsrfErrorKind::TooLarge { limit: 10_000 }),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        written.load(Ordering::SeqCst) < 50 * 1024 * 1024,
        "the client kept reading"
    );
}

#[tokio::test]
async fn a_slow_server_trips_the_timeout() {
    let server = serve(app()).await;
    let policy = SsrfPolicy {
        timeout: Duration::from_millis(300),
        ..allowing(server)
    };
    let client = GuardedClient::new(policy).unwrap();
    let started = Instant::now();
    let e = get_url(&client, &format!("http://{server}/slow"))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, SsrfErrorKind::Timeout { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        e.to_string().contains("no complete response within 300ms"),
        "{e}"
    );
}

#[tokio::test]
async fn connection_failures_are_reported_with_the_url() {
    // A port nobody listens on (bound, then released).
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = GuardedClient::new(allowing(closed)).unwrap();
    let url = format!("http://{closed}/");
    let e = get_url(&client, &url).await.unwrap_err();
    assert!(matches!(e.kind, SsrfErrorKind::Http(_)), "{e}");
    assert!(!e.is_refusal());
    assert_eq!(e.url, url);
}
