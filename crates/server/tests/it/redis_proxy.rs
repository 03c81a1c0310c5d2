//! A TCP proxy in front of the test Redis that can be cut (its connections closed, new ones
//! refused) and restored: a Redis outage for one client without touching the shared server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub struct Proxy {
    /// The Redis URL with the proxy's address in place of Redis's.
    url: String,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to the Redis of `url` (`redis://[user:pass@]host:port[/db]`).
    pub async fn start(url: &str) -> Proxy {
        let rest = url.strip_prefix("redis://").expect("a redis:// URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, upstream) = match authority.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host.to_string()),
            None => (String::new(), authority.to_string()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn({
            let (up, links) = (Arc::clone(&up), Arc::clone(&links));
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    links.lock().unwrap().spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            }
        });
        let path = if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        };
        let url = format!("redis://{userinfo}{addr}{path}");
        Proxy {
            url,
            up,
            links,
            accept,
        }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.links.lock().unwrap().abort_all();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.links.lock().unwrap().abort_all();
    }
}
