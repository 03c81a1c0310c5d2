//! Integration tests of the SSRF guard and the guarded client, one test binary.
#![allow(clippy::unwrap_used)] // tests fail loudly on an unexpected error

mod allow_list;
mod client;
mod hostile;
mod paths;

use std::net::SocketAddr;

use tradeloom_net::{SsrfError, SsrfPolicy, check_url};

/// Serves `app` on a fresh 127.0.0.1 port until the test's runtime ends.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `check_url` under `policy`, which must refuse `url`.
pub async fn refused(policy: &SsrfPolicy, url: &str) -> SsrfError {
    match check_url(policy, url).await {
        Ok(target) => panic!("{url} was allowed: {target:?}"),
        Err(e) => e,
    }
}
