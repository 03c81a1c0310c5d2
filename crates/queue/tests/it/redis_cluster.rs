//! The process registry on Redis ([`RedisRegistry`]), when `TRADELOOM_TEST_REDIS_URL` is set:
//! two handles (processes) see each other's entries, a removed entry is gone at once, and an
//! entry whose process stopped writing disappears when its time-to-live runs out. A lazily
//! connected registry reports a Redis that is not there, without Redis.

use std::time::Duration;

use chrono::Utc;
use tradeloom_queue::cluster::ENTRY_TTL;
use tradeloom_queue::{ProcessEntry, RedisRegistry, Registry};

use crate::redis_scratch::{ENV, Scratch, url};

async fn registry(scratch: &Scratch) -> RedisRegistry {
    RedisRegistry::connect(&scratch.url, &scratch.prefix)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{ENV}={} is set but the registry cannot connect: {e}",
                scratch.url
            )
        })
}

fn entry(id: &str, roles: &[&str]) -> ProcessEntry {
    let now = Utc::now();
    ProcessEntry {
        id: id.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        pools: vec!["transform".into(), "http".into()],
        concurrency: 4,
        host: "test".into(),
        pid: 42,
        addr: None,
        started_at: now,
        heartbeat_at: now,
        in_flight: 3,
        state: "running".into(),
        version: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_registry_is_shared_by_processes_and_forgets_removed_entries() {
    let Some(url) = url("registry") else { return };
    let scratch = Scratch::new(&url);
    let (a, b) = (registry(&scratch).await, registry(&scratch).await);
    a.heartbeat(&entry("w1", &["worker"])).await.unwrap();
    b.heartbeat(&entry("c1", &["coordinator"])).await.unwrap();
    let listed = b.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["c1", "w1"]
    );
    assert_eq!(listed[1], entry_like(&listed[1], "w1"));
    assert_eq!(listed[1].in_flight, 3);
    a.remove("w1").await.unwrap();
    let listed = b.list().await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["c1"]
    );
    assert_eq!(a.kind(), "redis");
}

/// `e` with its id checked: the entry came back as written.
fn entry_like(e: &ProcessEntry, id: &str) -> ProcessEntry {
    assert_eq!(e.id, id);
    assert_eq!(e.roles, ["worker"]);
    assert_eq!(e.pools, ["transform", "http"]);
    e.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_registry_entries_of_silent_processes_expire() {
    let Some(url) = url("registry") else { return };
    let scratch = Scratch::new(&url);
    let r = registry(&scratch).await;
    r.heartbeat(&entry("dead", &["worker"])).await.unwrap();
    assert_eq!(r.list().await.unwrap().len(), 1);
    // As if the process was killed: nobody removes the entry; Redis expires it.
    let key = format!("{}cluster:proc:dead", scratch.prefix);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= ENTRY_TTL.as_millis() as i64, "ttl {ttl}");
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(50)
        .query_async(&mut con)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(r.list().await.unwrap().is_empty());
    // The stale id was dropped from the set too: nothing is left under the prefix.
    assert!(scratch.keys().is_empty(), "{:?}", scratch.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_registry_connected_lazily_lists_what_the_others_wrote() {
    let Some(url) = url("registry") else { return };
    let scratch = Scratch::new(&url);
    let writer = registry(&scratch).await;
    writer.heartbeat(&entry("w1", &["worker"])).await.unwrap();
    let reader = RedisRegistry::connect_lazily(&scratch.url, &scratch.prefix).unwrap();
    let ids: Vec<String> = reader
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["w1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazily_connected_registry_fails_each_listing_fast_while_nothing_listens() {
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = RedisRegistry::connect_lazily(&format!("redis://127.0.0.1:{port}"), "p:").unwrap();
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let error = r.list().await.unwrap_err().to_string();
        assert!(error.contains("redis"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(RedisRegistry::connect_lazily("http://127.0.0.1:6379", "p:").is_err());
}
