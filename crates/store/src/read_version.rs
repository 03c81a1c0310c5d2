//! [`ReadVersion`]: a cheap stamp of "what a store held", so a reader (the REST API) can keep
//! answers it built and serve them again without SQL while nothing changed.
//!
//! A version is two counters:
//! - commits of this process: bumped after every statement or transaction that may have written
//!   ends ([`note_commit`], called by the back ends and by `Tx::commit`), so a write through this
//!   process changes the version before the writer's call returns;
//! - changes seen from outside: the database is asked whether anything committed since the last
//!   check (SQLite: `PRAGMA data_version` on a connection of its own, which changes with every
//!   commit of any other connection, in any process; PostgreSQL: `pg_current_snapshot()`, which
//!   changes with every transaction that wrote, in any session) and the counter is bumped when it
//!   did. A commit made by another process is in the version of every read that starts
//!   [`EXTERNAL_CHECK_EVERY`] or more after it: a reader that finds the last check that old
//!   waits for a check. Under steady traffic nobody waits: the first reader that finds the last
//!   check [`REFRESH_AHEAD`] old runs the next check itself while the others go on with the
//!   version they have (still within the bound), so the check is paid by one request, not by
//!   every request in flight when it falls due.
//!
//! Whoever keeps something under a version must take the version *before* reading what it
//! keeps: a commit that lands in between then changes the version, and the kept answer is
//! dropped at the next look-up (never served stale).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::StoreError;

/// How often, at most, a store asks its database whether another process committed.
/// A change made by another process (another `serve` on the same database, `tradeloom keys
/// revoke`, a worker) is seen by reads that start this long after it commits.
pub const EXTERNAL_CHECK_EVERY: Duration = Duration::from_millis(100);

/// From this age of the last check on, one reader runs the next check while the others go on.
const REFRESH_AHEAD: Duration = Duration::from_millis(75);

/// Commits of this process (every store in it).
static LOCAL_COMMITS: AtomicU64 = AtomicU64::new(0);

/// Records that a statement or transaction that may have written has ended (committed, or
/// failed: the version moves either way, which is never wrong).
pub(crate) fn note_commit() {
    LOCAL_COMMITS.fetch_add(1, Ordering::SeqCst);
}

/// What a store held when it was taken: equal versions mean no commit in between (in this
/// process at once; in another within [`EXTERNAL_CHECK_EVERY`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadVersion {
    local: u64,
    external: u64,
}

/// The outside-change half of a store's [`ReadVersion`].
#[derive(Debug)]
pub(crate) struct Freshness {
    base: Instant,
    /// Nanoseconds after `base` of the last finished check; `u64::MAX`: never checked.
    checked_at: AtomicU64,
    epoch: AtomicU64,
    /// What the database answered last time; held while a check runs so that concurrent
    /// readers wait for it instead of asking too.
    last_seen: tokio::sync::Mutex<Option<String>>,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            base: Instant::now(),
            checked_at: AtomicU64::new(u64::MAX),
            epoch: AtomicU64::new(0),
            last_seen: tokio::sync::Mutex::new(None),
        }
    }
}

impl Freshness {
    fn since_base(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Whether the last check is `age` or more old at `now` (or there was none).
    fn older_than(&self, now: u64, age: Duration) -> bool {
        let at = self.checked_at.load(Ordering::SeqCst);
        at == u64::MAX || now.saturating_sub(at) >= age.as_nanos() as u64
    }

    /// The current version; asks the database (`probe`: an answer that changes whenever
    /// anything committed) when the last check is [`EXTERNAL_CHECK_EVERY`] old.
    pub(crate) async fn version<F, Fut>(&self, probe: F) -> Result<ReadVersion, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, StoreError>>,
    {
        // The local half first: taken before any check or read that follows.
        let local = LOCAL_COMMITS.load(Ordering::SeqCst);
        let started = self.since_base();
        if self.older_than(started, EXTERNAL_CHECK_EVERY) {
            let seen = self.last_seen.lock().await;
            // Another reader may have checked while this one waited: a check that began
            // after this read began is as good as its own.
            let at = self.checked_at.load(Ordering::SeqCst);
            if at == u64::MAX || at < started {
                self.check(seen, probe).await?;
            }
        } else if self.older_than(started, REFRESH_AHEAD) {
            // Still within the bound: check ahead if nobody else is, never wait for it.
            if let Ok(seen) = self.last_seen.try_lock()
                && self.older_than(self.since_base(), REFRESH_AHEAD)
            {
                self.check(seen, probe).await?;
            }
        }
        Ok(ReadVersion {
            local,
            external: self.epoch.load(Ordering::SeqCst),
        })
    }

    /// Asks the database and moves the outside epoch when its answer changed.
    async fn check<F, Fut>(
        &self,
        mut seen: tokio::sync::MutexGuard<'_, Option<String>>,
        probe: F,
    ) -> Result<(), StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, StoreError>>,
    {
        let begun = self.since_base();
        let answer = probe().await?;
        if seen.as_deref() != Some(answer.as_str()) {
            if seen.is_some() {
                self.epoch.fetch_add(1, Ordering::SeqCst);
            }
            *seen = Some(answer);
        }
        self.checked_at.store(begun, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_commits_and_outside_changes_move_the_version() {
        let f = Freshness::default();
        let v0 = f.version(|| async { Ok("a".to_string()) }).await.unwrap();
        // Not due yet: the probe is not asked (it would fail the test).
        let v1 = f
            .version(|| async { Err(StoreError::Invalid("asked too early".into())) })
            .await
            .unwrap();
        assert_eq!(v0.external, v1.external);
        note_commit();
        let v2 = f
            .version(|| async { Err(StoreError::Invalid("asked too early".into())) })
            .await
            .unwrap();
        assert_ne!(v1, v2, "a commit in this process moves the version at once");
        // Once due, a changed answer moves the external half; the same answer does not.
        f.checked_at.store(u64::MAX, Ordering::SeqCst);
        let v3 = f.version(|| async { Ok("a".to_string()) }).await.unwrap();
        assert_eq!(v3.external, v2.external);
        f.checked_at.store(u64::MAX, Ordering::SeqCst);
        let v4 = f.version(|| async { Ok("b".to_string()) }).await.unwrap();
        assert_eq!(v4.external, v3.external + 1);
    }

    /// A `Freshness` whose last check was `age` ago.
    fn checked_ago(age: Duration) -> Freshness {
        let f = Freshness {
            base: Instant::now() - Duration::from_secs(10),
            ..Freshness::default()
        };
        f.checked_at
            .store(f.since_base() - age.as_nanos() as u64, Ordering::SeqCst);
        f
    }

    #[tokio::test]
    async fn a_check_falling_due_is_run_by_one_reader_while_the_others_go_on() {
        // Between REFRESH_AHEAD and the bound: the reader that finds the lock free checks.
        let f = checked_ago(Duration::from_millis(85));
        *f.last_seen.lock().await = Some("a".into());
        let v = f.version(|| async { Ok("b".to_string()) }).await.unwrap();
        assert_eq!(v.external, 1, "the check ahead saw the outside commit");

        // While a check is in flight, a reader within the bound does not wait for it (a reader
        // that waited would hang here: the lock is held until the end of the test).
        let f = checked_ago(Duration::from_millis(85));
        let _in_flight = f.last_seen.lock().await;
        let v = tokio::time::timeout(
            Duration::from_secs(5),
            f.version(|| async { Err(StoreError::Invalid("not this reader's check".into())) }),
        )
        .await
        .expect("a reader within the bound never waits for another's check")
        .unwrap();
        assert_eq!(v.external, 0);

        // Past the bound, a reader waits for a check (here it runs it: the lock is free).
        let f = checked_ago(Duration::from_millis(150));
        *f.last_seen.lock().await = Some("a".into());
        let v = f.version(|| async { Ok("b".to_string()) }).await.unwrap();
        assert_eq!(
            v.external, 1,
            "past the bound the outside commit is always seen"
        );
    }
}
