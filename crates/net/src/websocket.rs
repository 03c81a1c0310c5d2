//! [`connect_websocket`]: a WebSocket client connection that reaches only an address the SSRF
//! guard accepted.
//!
//! The URL (`ws://` or `wss://`) goes through [`check_websocket_url`] — the same policy as
//! HTTP: allow-list, every resolved address judged, deny paths — then a TCP connection is made
//! to one of the checked addresses (in resolver order, the first that accepts), never to a
//! second lookup's. For `wss://` TLS runs over that connection with the certificate verifier
//! reqwest uses (the platform's roots, rustls with the ring provider), the URL's host as the
//! server name. Last comes the WebSocket handshake; a server answering a redirect or anything
//! but `101 Switching Protocols` fails it (redirects are not followed, so no target escapes
//! the check). Messages larger than [`SsrfPolicy::max_response_bytes`] are refused by the
//! stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::check::{CheckedTarget, check_websocket_url};
use crate::error::{SsrfError, SsrfErrorKind};
use crate::policy::SsrfPolicy;

/// The transport under a guarded WebSocket: plain TCP (`ws://`) or TLS over TCP (`wss://`).
#[derive(Debug)]
pub enum WebSocketTransport {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A WebSocket connected through the guard.
pub type GuardedWebSocket = WebSocketStream<WebSocketTransport>;

/// A connection made by [`connect_websocket`]: the stream, the URL it was made to (as checked)
/// and the address connected to.
#[derive(Debug)]
pub struct WebSocketConnection {
    pub socket: GuardedWebSocket,
    pub target: CheckedTarget,
    /// One of `target.addrs`.
    pub remote_addr: std::net::SocketAddr,
}

/// Checks `url` under `policy` and opens a WebSocket to a checked address (see the module
/// documentation). The whole of it — DNS, TCP, TLS and the handshake — must finish within the
/// policy's `timeout`. Errors name the URL (without userinfo) and say which step failed; a
/// refusal by the guard is [`SsrfError::is_refusal`].
pub async fn connect_websocket(
    policy: &SsrfPolicy,
    url: &str,
) -> Result<WebSocketConnection, SsrfError> {
    let after = policy.timeout;
    let result = match tokio::time::timeout(after, connect(policy, url)).await {
        Ok(result) => result,
        Err(_) => Err(SsrfError::new(url, SsrfErrorKind::Timeout { after })),
    };
    match &result {
        Err(e) if e.is_refusal() => tracing::warn!(error = %e, "SSRF guard refused a URL"),
        Err(e) => tracing::debug!(error = %e, "WebSocket connection failed"),
        Ok(_) => {}
    }
    result
}

async fn connect(policy: &SsrfPolicy, url: &str) -> Result<WebSocketConnection, SsrfError> {
    let target = check_websocket_url(policy, url).await?;
    let fail = |kind| SsrfError::new(target.url.as_str(), kind);
    let mut errors = Vec::new();
    let mut connected = None;
    for addr in &target.addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                connected = Some((stream, *addr));
                break;
            }
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    let Some((stream, remote_addr)) = connected else {
        return Err(fail(SsrfErrorKind::Connect(errors.join("; "))));
    };
    // Frames are small; without it a bar stream waits for the next packet's ACK.
    let _ = stream.set_nodelay(true);
    let transport = if target.url.scheme() == "wss" {
        WebSocketTransport::Tls(Box::new(tls(&target, stream).await.map_err(fail)?))
    } else {
        WebSocketTransport::Plain(stream)
    };
    let limit = usize::try_from(policy.max_response_bytes).unwrap_or(usize::MAX);
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(target.url.as_str(), transport, Some(config))
            .await
            .map_err(|e| fail(SsrfErrorKind::Handshake(e.to_string())))?;
    Ok(WebSocketConnection {
        socket,
        target,
        remote_addr,
    })
}

/// TLS over `stream` to `target`'s host, verified with the platform's roots.
async fn tls(
    target: &CheckedTarget,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SsrfErrorKind> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SsrfErrorKind::Tls(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| SsrfErrorKind::Tls(e.to_string()))?
        .with_no_client_auth();
    // The URL's host as the server name: a name, or an address literal (brackets removed).
    let host = target.url.host_str().unwrap_or_default();
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|e| SsrfErrorKind::Tls(format!("server name `{name}`: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
        .map_err(|e| SsrfErrorKind::Tls(e.to_string()))
}

impl AsyncRead for WebSocketTransport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WebSocketTransport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            WebSocketTransport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WebSocketTransport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WebSocketTransport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            WebSocketTransport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WebSocketTransport::Plain(s) => Pin::new(s).poll_flush(cx),
            WebSocketTransport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WebSocketTransport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            WebSocketTransport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    /// A WebSocket echo server on a fresh loopback port; answers each text message with
    /// `echo: <text>`.
    async fn echo_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(Message::Text(t))) = ws.next().await {
                        let _ = ws.send(Message::text(format!("echo: {t}"))).await;
                    }
                });
            }
        });
        addr
    }

    fn allowing(entry: String) -> SsrfPolicy {
        SsrfPolicy {
            allow_hosts: vec![entry],
            ..SsrfPolicy::default()
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_without_the_allow_list() {
        let addr = echo_server().await;
        let url = format!("ws://{addr}/stream");
        let e = connect_websocket(&SsrfPolicy::default(), &url)
            .await
            .unwrap_err();
        assert!(e.is_refusal(), "{e}");
        assert!(matches!(e.kind, SsrfErrorKind::Blocked { .. }), "{e}");
        assert!(
            e.to_string().contains("127.0.0.1 is blocked (loopback"),
            "{e}"
        );
        // By name too.
        let url = format!("ws://localhost:{}/stream", addr.port());
        let e = connect_websocket(&SsrfPolicy::default(), &url)
            .await
            .unwrap_err();
        assert!(matches!(e.kind, SsrfErrorKind::BlockedHost { .. }), "{e}");
        // Another port of an allow-listed host is still refused.
        let e = connect_websocket(&allowing("127.0.0.1:1".into()), &format!("ws://{addr}/"))
            .await
            .unwrap_err();
        assert!(e.is_refusal(), "{e}");
    }

    #[tokio::test]
    async fn allow_listed_loopback_connects_and_exchanges_messages() {
        let addr = echo_server().await;
        let policy = allowing(format!("127.0.0.1:{}", addr.port()));
        let mut conn = connect_websocket(&policy, &format!("ws://{addr}/stream?x=1"))
            .await
            .unwrap();
        assert_eq!(conn.remote_addr, addr);
        assert!(conn.target.allow_listed);
        conn.socket.send(Message::text("hi")).await.unwrap();
        let reply = conn.socket.next().await.unwrap().unwrap();
        assert_eq!(reply, Message::text("echo: hi"));
        // allow_cidrs lets the address through as well.
        let by_range = SsrfPolicy {
            allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
            ..SsrfPolicy::default()
        };
        connect_websocket(&by_range, &format!("ws://{addr}/"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn deny_paths_and_schemes_are_refused_on_allowed_hosts() {
        let addr = echo_server().await;
        let mut policy = allowing(format!("127.0.0.1:{}", addr.port()));
        for path in ["/latest/meta-data/iam", "/L%61TEST//meta-data", "/.env"] {
            let e = connect_websocket(&policy, &format!("ws://{addr}{path}"))
                .await
                .unwrap_err();
            assert!(
                matches!(e.kind, SsrfErrorKind::BlockedPath { .. }),
                "{path}: {e}"
            );
        }
        policy.deny_paths.push("/admin".into());
        let e = connect_websocket(&policy, &format!("ws://{addr}/admin/ws"))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("path `/admin/ws` is blocked (under `/admin`)"),
            "{e}"
        );
        for scheme in ["http", "https", "ftp"] {
            let e = connect_websocket(&policy, &format!("{scheme}://{addr}/"))
                .await
                .unwrap_err();
            assert!(
                matches!(e.kind, SsrfErrorKind::BadWebSocketScheme(_)),
                "{scheme}: {e}"
            );
            assert!(e.to_string().contains("only ws and wss"), "{e}");
        }
        // And http checks refuse ws URLs.
        let e = crate::check_url(&policy, &format!("ws://{addr}/"))
            .await
            .unwrap_err();
        assert!(matches!(e.kind, SsrfErrorKind::BadScheme(_)), "{e}");
    }

    /// A `wss://` URL runs TLS over the checked connection: a plain WebSocket server does not
    /// speak TLS, so the handshake fails at the TLS step (not silently in plain text).
    #[tokio::test]
    async fn wss_runs_tls_over_the_checked_connection() {
        let addr = echo_server().await;
        let policy = allowing(format!("127.0.0.1:{}", addr.port()));
        let e = connect_websocket(&policy, &format!("wss://{addr}/"))
            .await
            .unwrap_err();
        assert!(matches!(e.kind, SsrfErrorKind::Tls(_)), "{e}");
        assert!(!e.is_refusal());
    }

    #[tokio::test]
    async fn a_closed_port_and_a_non_websocket_server_fail_clearly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let policy = allowing("127.0.0.1".into());
        let e = connect_websocket(&policy, &format!("ws://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert!(matches!(e.kind, SsrfErrorKind::Connect(_)), "{e}");
        // An HTTP server that answers 200 (not 101) to the upgrade request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "plain" }));
            axum::serve(listener, app).await
        });
        let e = connect_websocket(&policy, &format!("ws://{addr}/"))
            .await
            .unwrap_err();
        assert!(matches!(e.kind, SsrfErrorKind::Handshake(_)), "{e}");
    }
}
