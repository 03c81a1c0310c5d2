//! What the Redis suites share: the variable that enables them, a key prefix per test that is
//! deleted afterwards (also when the test panics), and killing a test's connections.

use std::time::Duration;

/// `redis://host:port` of a Redis the tests may write to (under `tl-test-<uuid>:` prefixes).
pub const ENV: &str = "TRADELOOM_TEST_REDIS_URL";

/// The Redis URL, or `None` with a note when the variable is unset: the suite is skipped. Set
/// and unreachable makes the test fail when it connects.
pub fn url(suite: &str) -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("note: {ENV} is not set; skipping the Redis {suite} test");
            None
        }
    }
}

/// The same server, database `db` (the connection-killing tests use a database of their own so
/// that they can find their connections in `CLIENT LIST` and leave the others alone).
pub fn with_db(url: &str, db: u8) -> String {
    let url = url.trim_end_matches('/');
    let base = match url.rsplit_once('/') {
        Some((base, last)) if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => url,
    };
    format!("{base}/{db}")
}

/// A fresh key prefix; its keys are deleted when this is dropped.
pub struct Scratch {
    pub url: String,
    pub prefix: String,
}

impl Scratch {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            prefix: format!("tl-test-{}:", uuid::Uuid::now_v7().simple()),
        }
    }

    /// Every key under the prefix.
    pub fn keys(&self) -> Vec<String> {
        let mut conn = connect(&self.url);
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .expect("KEYS")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(keys).exec(&mut conn);
        }
    }
}

fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("{ENV}: cannot connect to {url}: {e}"))
}

/// Closes, from another connection, every client connection to database `db` (`CLIENT KILL`):
/// what a network failure or a Redis restart does to the queue's connections. Returns how many.
pub fn kill_clients_of_db(url: &str, db: u8) -> usize {
    let mut conn = connect(url);
    let me: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(&mut conn)
        .expect("CLIENT ID");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut conn)
        .expect("CLIENT LIST");
    let db_field = format!("db={db}");
    let mut killed = 0;
    for line in list.lines() {
        let mut fields = line.split(' ');
        let id = fields
            .clone()
            .find_map(|f| f.strip_prefix("id="))
            .and_then(|id| id.parse::<i64>().ok());
        if let Some(id) = id
            && id != me
            && fields.any(|f| f == db_field)
        {
            let n: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query(&mut conn)
                .expect("CLIENT KILL");
            killed += n as usize;
        }
    }
    killed
}
