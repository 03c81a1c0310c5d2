//! The process registry of a cluster: every `serve`, `coordinator` and `worker` process writes
//! a [`ProcessEntry`] (its roles, pools, in-flight count) on a heartbeat, and removes it when
//! it stops. `GET /cluster` and the health monitor read [`Registry::list`]; an entry whose
//! heartbeat is older than its time-to-live is gone (Redis expires it), so a process killed with
//! `kill -9` disappears from the list without anyone cleaning up.
//!
//! [`InMemoryRegistry`] is the embedded default (one process: the list holds it alone);
//! `RedisRegistry` (feature `redis`) is shared by every process on one Redis and key prefix.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::QueueError;

/// How often a process writes its entry.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// How long an entry lives without a heartbeat; a process silent this long is gone.
pub const ENTRY_TTL: Duration = Duration::from_secs(10);

/// One process of the cluster as it last described itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    /// Unique per process start: `<host>-<pid>-<random>`.
    pub id: String,
    /// The roles it runs: `api`, `coordinator`, `worker`.
    pub roles: Vec<String>,
    /// The node-type pools its workers take tasks from (empty without the `worker` role).
    pub pools: Vec<String>,
    /// Consume loops per pool.
    pub concurrency: usize,
    pub host: String,
    pub pid: u32,
    /// The API address, for a process with the `api` role.
    pub addr: Option<String>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Tasks (node attempts, signals, timers) it holds a lease on now.
    pub in_flight: usize,
    /// `running`, or `draining` once it was told to stop and is finishing what it holds.
    pub state: String,
    /// The tradeloom version it runs.
    pub version: String,
}

impl ProcessEntry {
    /// An id for a process starting now on this host.
    pub fn new_id(host: &str) -> String {
        // The last hex digits of a v7 uuid are random.
        let random = uuid::Uuid::now_v7().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &random[24..])
    }
}

/// Where the processes of a cluster register.
#[async_trait]
pub trait Registry: Send + Sync + std::fmt::Debug {
    /// Writes (or refreshes) `entry`; it lives [`ENTRY_TTL`] unless written again.
    async fn heartbeat(&self, entry: &ProcessEntry) -> Result<(), QueueError>;

    /// Removes the entry of process `id` (a graceful stop).
    async fn remove(&self, id: &str) -> Result<(), QueueError>;

    /// Every live entry, ordered by id.
    async fn list(&self) -> Result<Vec<ProcessEntry>, QueueError>;

    /// `embedded` or `redis`.
    fn kind(&self) -> &'static str;
}

/// The registry of a single process.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    entries: Mutex<BTreeMap<String, ProcessEntry>>,
}

impl InMemoryRegistry {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Registry for InMemoryRegistry {
    async fn heartbeat(&self, entry: &ProcessEntry) -> Result<(), QueueError> {
        lock(&self.entries).insert(entry.id.clone(), entry.clone());
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), QueueError> {
        lock(&self.entries).remove(id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ProcessEntry>, QueueError> {
        let ttl = chrono::Duration::from_std(ENTRY_TTL).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        Ok(lock(&self.entries)
            .values()
            .filter(|e| now - e.heartbeat_at <= ttl)
            .cloned()
            .collect())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(feature = "redis")]
pub use redis_registry::RedisRegistry;

#[cfg(feature = "redis")]
mod redis_registry {
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use redis::{AsyncCommands, Client};

    use super::*;

    /// The registry on Redis: each entry is a JSON string `<prefix>cluster:proc:<id>` with a
    /// time-to-live of [`ENTRY_TTL`], and its id is in the set `<prefix>cluster:procs`, from
    /// which [`Registry::list`] drops the ids whose entry expired.
    #[derive(Clone)]
    pub struct RedisRegistry {
        manager: ConnectionManager,
        prefix: String,
    }

    impl std::fmt::Debug for RedisRegistry {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisRegistry")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    fn backend(e: redis::RedisError) -> QueueError {
        QueueError::Backend {
            backend: "redis",
            detail: e.to_string(),
        }
    }

    fn client(url: &str) -> Result<Client, QueueError> {
        Client::open(url).map_err(|e| QueueError::Invalid {
            what: "Redis URL",
            detail: e.to_string(),
        })
    }

    fn manager_config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2))
    }

    impl RedisRegistry {
        /// Connects to the Redis at `url`, with the keys under `prefix` (the queue's).
        pub async fn connect(url: &str, prefix: &str) -> Result<Self, QueueError> {
            let manager = client(url)?
                .get_connection_manager_with_config(manager_config())
                .await
                .map_err(backend)?;
            Ok(Self {
                manager,
                prefix: prefix.to_string(),
            })
        }

        /// A registry that connects at its first command rather than now, and again at the
        /// next command after a failed connection (one retry each time): only a malformed
        /// `url` fails here. For a reader such as the health monitor, which must report a Redis
        /// that is down when it starts — each [`Registry::list`] fails fast with the reason —
        /// and see it come back. Call it inside a tokio runtime.
        pub fn connect_lazily(url: &str, prefix: &str) -> Result<Self, QueueError> {
            let config = manager_config().set_number_of_retries(1);
            let manager =
                ConnectionManager::new_lazy_with_config(client(url)?, config).map_err(backend)?;
            Ok(Self {
                manager,
                prefix: prefix.to_string(),
            })
        }

        fn entry_key(&self, id: &str) -> String {
            format!("{}cluster:proc:{id}", self.prefix)
        }

        fn set_key(&self) -> String {
            format!("{}cluster:procs", self.prefix)
        }
    }

    #[async_trait]
    impl Registry for RedisRegistry {
        async fn heartbeat(&self, entry: &ProcessEntry) -> Result<(), QueueError> {
            let json = serde_json::to_string(entry).map_err(|e| QueueError::Backend {
                backend: "redis",
                detail: format!("process entry: {e}"),
            })?;
            let ttl_ms = ENTRY_TTL.as_millis() as u64;
            let mut con = self.manager.clone();
            redis::pipe()
                .atomic()
                .pset_ex(self.entry_key(&entry.id), json, ttl_ms)
                .ignore()
                .sadd(self.set_key(), &entry.id)
                .ignore()
                .query_async::<()>(&mut con)
                .await
                .map_err(backend)
        }

        async fn remove(&self, id: &str) -> Result<(), QueueError> {
            let mut con = self.manager.clone();
            redis::pipe()
                .atomic()
                .del(self.entry_key(id))
                .ignore()
                .srem(self.set_key(), id)
                .ignore()
                .query_async::<()>(&mut con)
                .await
                .map_err(backend)
        }

        async fn list(&self) -> Result<Vec<ProcessEntry>, QueueError> {
            let mut con = self.manager.clone();
            let mut ids: Vec<String> = con.smembers(self.set_key()).await.map_err(backend)?;
            ids.sort();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| self.entry_key(id)).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut con)
                .await
                .map_err(backend)?;
            let mut entries = Vec::new();
            let mut gone = Vec::new();
            for (id, value) in ids.iter().zip(values) {
                match value.and_then(|v| serde_json::from_str::<ProcessEntry>(&v).ok()) {
                    Some(entry) => entries.push(entry),
                    None => gone.push(id.clone()),
                }
            }
            if !gone.is_empty() {
                let _: Result<(), _> = con.srem(self.set_key(), &gone).await;
            }
            Ok(entries)
        }

        fn kind(&self) -> &'static str {
            "redis"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, heartbeat_at: DateTime<Utc>) -> ProcessEntry {
        ProcessEntry {
            id: id.into(),
            roles: vec!["worker".into()],
            pools: vec!["transform".into()],
            concurrency: 2,
            host: "h".into(),
            pid: 1,
            addr: None,
            started_at: heartbeat_at,
            heartbeat_at,
            in_flight: 0,
            state: "running".into(),
            version: "0".into(),
        }
    }

    #[tokio::test]
    async fn the_in_memory_registry_lists_live_entries_and_forgets_removed_and_silent_ones() {
        let r = InMemoryRegistry::new();
        let now = Utc::now();
        r.heartbeat(&entry("b", now)).await.unwrap();
        r.heartbeat(&entry("a", now)).await.unwrap();
        r.heartbeat(&entry("old", now - chrono::Duration::seconds(60)))
            .await
            .unwrap();
        let ids: Vec<String> = r.list().await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "b"]);
        r.remove("a").await.unwrap();
        let ids: Vec<String> = r.list().await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn ids_are_unique_per_start() {
        assert_ne!(ProcessEntry::new_id("h"), ProcessEntry::new_id("h"));
        assert!(ProcessEntry::new_id("h").starts_with(&format!("h-{}-", std::process::id())));
    }
}
