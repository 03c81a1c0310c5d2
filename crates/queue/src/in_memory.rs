//! [`InMemoryQueue`]: the in-process implementation of [`Queue`], for the embedded mode and tests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

use crate::error::QueueError;
use crate::queue::{PoolStats, Queue, check_visibility, validate_dequeue, validate_pool};
use crate::task::{DeadLetter, DeadReason, Delivery, Lease, NewTask, NotBefore, Priority, TaskId};

/// Durations beyond this (about 30 years) are cut to it, so that no deadline overflows the
/// clock; for a queue that is as good as never.
const LONGEST: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// A position in a pool's time-ordered maps: the instant, then a per-pool sequence number that
/// keeps insertion order among equal instants (and makes every key unique).
type Slot = (Instant, u64);

fn later(now: Instant, d: Duration) -> Instant {
    now + d.min(LONGEST)
}

/// The in-process [`Queue`]: all pools in one map behind a tokio mutex, with one [`Notify`] per
/// pool to wake waiting consumers.
///
/// Cheap to clone: clones share the same queue, so the workers of one process each hold a clone.
/// Nothing survives the process; that is what the embedded mode accepts (the coordinator
/// re-emits the tasks of unfinished nodes when it starts).
///
/// Waiting consumers sleep until an enqueue, nack, ack or limit change in their pool, or until
/// the earliest instant at which something could become deliverable there (a delayed task's
/// due time, a lease's expiry); nothing polls. Time is tokio's clock, so tests on a paused
/// clock control every timeout.
///
/// Dead letters: built [`with_max_attempts`](InMemoryQueue::with_max_attempts), a task whose
/// last allowed attempt is nacked or whose lease runs out moves to its pool's dead-letter list
/// ([`Queue::dead_letters`], counted in [`PoolStats::dead`]) instead of being delivered again.
/// The list lives as long as the queue. Without a maximum, tasks are redelivered forever.
#[derive(Clone)]
pub struct InMemoryQueue {
    inner: Arc<Inner>,
}

struct Inner {
    max_attempts: Option<NonZeroU32>,
    pools: Mutex<HashMap<String, Pool>>,
}

impl InMemoryQueue {
    /// An empty queue without an attempt limit.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// An empty queue that dead-letters a task after `max_attempts` deliveries without an ack.
    pub fn with_max_attempts(max_attempts: NonZeroU32) -> Self {
        Self::build(Some(max_attempts))
    }

    fn build(max_attempts: Option<NonZeroU32>) -> Self {
        InMemoryQueue {
            inner: Arc::new(Inner {
                max_attempts,
                pools: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Default for InMemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryQueue")
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Queue for InMemoryQueue {
    async fn enqueue(&self, task: NewTask) -> Result<TaskId, QueueError> {
        validate_pool(&task.pool)?;
        let mut pools = self.inner.pools.lock().await;
        let now = Instant::now();
        let pool = pools
            .entry(task.pool.clone())
            .or_insert_with(|| Pool::new(&task.pool));
        // Reap first: a task whose last lease ran out may be dead-lettered, freeing its key.
        pool.reap(now, self.inner.max_attempts);
        Ok(pool.enqueue(task, now))
    }

    async fn dequeue(
        &self,
        pool: &str,
        consumer: &str,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        validate_dequeue(pool, consumer, visibility)?;
        let deadline = later(Instant::now(), wait);
        loop {
            let mut pools = self.inner.pools.lock().await;
            let now = Instant::now();
            let p = pools
                .entry(pool.to_owned())
                .or_insert_with(|| Pool::new(pool));
            p.reap(now, self.inner.max_attempts);
            if let Some(delivery) = p.take(now, consumer, visibility) {
                return Ok(Some(delivery));
            }
            if now >= deadline {
                return Ok(None);
            }
            let wake = p.next_change().map_or(deadline, |t| t.min(deadline));
            let notify = Arc::clone(&p.notify);
            // Registered as a waiter before the lock is released, so a wake-up from an
            // enqueue that gets the lock right after us reaches this future (and, being
            // registered, each of several such consumers gets its own).
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            drop(pools);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, lease: &Lease) -> Result<(), QueueError> {
        let mut pools = self.inner.pools.lock().await;
        let pool = pools.get_mut(&lease.pool).ok_or_else(|| lost(lease))?;
        pool.reap(Instant::now(), self.inner.max_attempts);
        pool.ack(lease)
    }

    async fn nack(&self, lease: &Lease, retry_after: Option<Duration>) -> Result<(), QueueError> {
        let mut pools = self.inner.pools.lock().await;
        let pool = pools.get_mut(&lease.pool).ok_or_else(|| lost(lease))?;
        let now = Instant::now();
        pool.reap(now, self.inner.max_attempts);
        let due = later(now, retry_after.unwrap_or(Duration::ZERO));
        pool.nack(lease, due, self.inner.max_attempts)
    }

    async fn extend(&self, lease: &Lease, visibility: Duration) -> Result<(), QueueError> {
        check_visibility(visibility)?;
        let mut pools = self.inner.pools.lock().await;
        let pool = pools.get_mut(&lease.pool).ok_or_else(|| lost(lease))?;
        let now = Instant::now();
        pool.reap(now, self.inner.max_attempts);
        pool.extend(lease, later(now, visibility))
    }

    async fn set_pool_limit(&self, pool: &str, limit: Option<usize>) -> Result<(), QueueError> {
        validate_pool(pool)?;
        let mut pools = self.inner.pools.lock().await;
        let p = pools
            .entry(pool.to_owned())
            .or_insert_with(|| Pool::new(pool));
        p.limit = limit;
        p.notify.notify_waiters();
        Ok(())
    }

    async fn stats(&self, pool: &str) -> Result<PoolStats, QueueError> {
        validate_pool(pool)?;
        let mut pools = self.inner.pools.lock().await;
        let Some(p) = pools.get_mut(pool) else {
            return Ok(PoolStats::default());
        };
        let now = Instant::now();
        p.reap(now, self.inner.max_attempts);
        Ok(p.stats(now))
    }

    async fn requeue_expired(&self, pool: &str) -> Result<usize, QueueError> {
        validate_pool(pool)?;
        let mut pools = self.inner.pools.lock().await;
        let Some(p) = pools.get_mut(pool) else {
            return Ok(0);
        };
        let reaped = p.reap(Instant::now(), self.inner.max_attempts);
        if reaped > 0 {
            p.notify.notify_waiters();
        }
        Ok(reaped)
    }

    async fn dead_letters(&self, pool: &str) -> Result<Vec<DeadLetter>, QueueError> {
        validate_pool(pool)?;
        let mut pools = self.inner.pools.lock().await;
        let Some(p) = pools.get_mut(pool) else {
            return Ok(Vec::new());
        };
        p.reap(Instant::now(), self.inner.max_attempts);
        Ok(p.dead.clone())
    }
}

fn lost(lease: &Lease) -> QueueError {
    QueueError::LeaseLost {
        pool: lease.pool.clone(),
        task: lease.task.clone(),
        consumer: lease.consumer.clone(),
        attempt: lease.attempt,
    }
}

/// The waiting tasks of a pool: per [`Priority`], by the instant they become (or became)
/// deliverable. The first deliverable task is the first due one of the most urgent priority
/// that has one.
#[derive(Default)]
struct Waiting {
    by_priority: [BTreeMap<Slot, TaskId>; 3],
}

impl Waiting {
    fn insert(&mut self, priority: Priority, slot: Slot, id: TaskId) {
        self.by_priority[priority.rank()].insert(slot, id);
    }

    fn len(&self) -> usize {
        self.by_priority.iter().map(BTreeMap::len).sum()
    }

    /// Tasks deliverable at `now`.
    fn due(&self, now: Instant) -> usize {
        self.by_priority
            .iter()
            .map(|q| q.range(..=(now, u64::MAX)).count())
            .sum()
    }

    /// The earliest instant any waiting task is (or was) due.
    fn first_due(&self) -> Option<Instant> {
        self.by_priority
            .iter()
            .filter_map(|q| q.first_key_value().map(|(slot, _)| slot.0))
            .min()
    }

    /// Removes and returns the task to deliver at `now`, if any is due.
    fn take_due(&mut self, now: Instant) -> Option<TaskId> {
        self.by_priority.iter_mut().find_map(|q| {
            let entry = q.first_entry()?;
            (entry.key().0 <= now).then(|| entry.remove())
        })
    }

    #[cfg(test)]
    fn ids(&self) -> impl Iterator<Item = &TaskId> {
        self.by_priority.iter().flat_map(BTreeMap::values)
    }
}

/// One pool. Invariant: every task is in exactly one of `queued` and `leased`, and its `state`
/// says which (a leased task's state holds its slot in `leased`).
struct Pool {
    name: String,
    tasks: HashMap<TaskId, Task>,
    /// Waiting tasks, by priority and due instant.
    queued: Waiting,
    /// Leased tasks by the instant their lease runs out.
    leased: BTreeMap<Slot, TaskId>,
    /// Dedup key → the pending task that holds it.
    dedup: HashMap<String, TaskId>,
    dead: Vec<DeadLetter>,
    limit: Option<usize>,
    next_seq: u64,
    acked_total: u64,
    redelivered_total: u64,
    notify: Arc<Notify>,
}

struct Task {
    payload: Value,
    dedup_key: Option<String>,
    priority: Priority,
    /// Deliveries so far.
    attempt: u32,
    state: TaskState,
}

enum TaskState {
    Queued,
    Leased { expiry: Slot, consumer: String },
}

impl Pool {
    fn new(name: &str) -> Self {
        Pool {
            name: name.to_owned(),
            tasks: HashMap::new(),
            queued: Waiting::default(),
            leased: BTreeMap::new(),
            dedup: HashMap::new(),
            dead: Vec::new(),
            limit: None,
            next_seq: 0,
            acked_total: 0,
            redelivered_total: 0,
            notify: Arc::new(Notify::new()),
        }
    }

    fn slot(&mut self, at: Instant) -> Slot {
        let slot = (at, self.next_seq);
        self.next_seq += 1;
        slot
    }

    fn enqueue(&mut self, task: NewTask, now: Instant) -> TaskId {
        if let Some(id) = task.dedup_key.as_ref().and_then(|k| self.dedup.get(k)) {
            return id.clone();
        }
        let due = match task.not_before {
            None => now,
            Some(NotBefore::After(delay)) => later(now, delay),
            // A time in the past fails `to_std` and means at once.
            Some(NotBefore::At(at)) => later(now, (at - Utc::now()).to_std().unwrap_or_default()),
        };
        let id = TaskId::generate();
        let slot = self.slot(due);
        self.queued.insert(task.priority, slot, id.clone());
        if let Some(key) = &task.dedup_key {
            self.dedup.insert(key.clone(), id.clone());
        }
        self.tasks.insert(
            id.clone(),
            Task {
                payload: task.payload,
                dedup_key: task.dedup_key,
                priority: task.priority,
                attempt: 0,
                state: TaskState::Queued,
            },
        );
        // One task, one consumer to wake (a woken consumer that drops its wait passes the
        // wake-up on): waking every idle consumer of the pool for each task made all but one
        // lock the queue to find nothing.
        self.notify.notify_one();
        id
    }

    /// Turns every lease that ran out by `now` back into a waiting task (or a dead letter);
    /// returns how many.
    fn reap(&mut self, now: Instant, max_attempts: Option<NonZeroU32>) -> usize {
        let mut reaped = 0;
        while let Some(entry) = self.leased.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (expiry, id) = entry.remove_entry();
            tracing::debug!(pool = %self.name, task = %id, "lease expired; the task is deliverable again");
            self.release(id, expiry.0, DeadReason::LeaseExpired, max_attempts);
            reaped += 1;
        }
        reaped
    }

    /// Queues a task that just left `leased` to be deliverable at `due`, or dead-letters it if
    /// it has had its last attempt.
    fn release(
        &mut self,
        id: TaskId,
        due: Instant,
        reason: DeadReason,
        max_attempts: Option<NonZeroU32>,
    ) {
        let slot = self.slot(due);
        let Some(task) = self.tasks.get_mut(&id) else {
            return; // unreachable by the pool invariant
        };
        if max_attempts.is_some_and(|max| task.attempt >= max.get()) {
            let Some(task) = self.tasks.remove(&id) else {
                return; // present: just looked up
            };
            if let Some(key) = &task.dedup_key {
                self.dedup.remove(key);
            }
            let last_consumer = match task.state {
                TaskState::Leased { consumer, .. } => consumer,
                TaskState::Queued => String::new(),
            };
            tracing::warn!(
                pool = %self.name, task = %id, attempts = task.attempt, ?reason, consumer = %last_consumer,
                "task dead-lettered after its last allowed attempt"
            );
            self.dead.push(DeadLetter {
                pool: self.name.clone(),
                task: id,
                payload: task.payload,
                attempts: task.attempt,
                reason,
                last_consumer,
                dead_at: Utc::now(),
            });
        } else {
            task.state = TaskState::Queued;
            let priority = task.priority;
            self.queued.insert(priority, slot, id);
        }
    }

    fn has_room(&self) -> bool {
        self.limit.is_none_or(|limit| self.leased.len() < limit)
    }

    /// Leases the first deliverable task, if the limit leaves room.
    fn take(&mut self, now: Instant, consumer: &str, visibility: Duration) -> Option<Delivery> {
        if !self.has_room() {
            return None;
        }
        loop {
            let id = self.queued.take_due(now)?;
            let expiry = self.slot(later(now, visibility));
            let Some(task) = self.tasks.get_mut(&id) else {
                continue; // unreachable by the pool invariant
            };
            task.attempt += 1;
            task.state = TaskState::Leased {
                expiry,
                consumer: consumer.to_owned(),
            };
            if task.attempt > 1 {
                self.redelivered_total += 1;
            }
            let delivery = Delivery {
                lease: Lease {
                    pool: self.name.clone(),
                    task: id.clone(),
                    consumer: consumer.to_owned(),
                    attempt: task.attempt,
                },
                payload: task.payload.clone(),
                lease_until: expiry.0,
            };
            self.leased.insert(expiry, id);
            return Some(delivery);
        }
    }

    /// The earliest instant at which a waiting consumer could get something without being
    /// notified: a delayed task falls due (if the limit leaves room) or a lease runs out.
    fn next_change(&self) -> Option<Instant> {
        let expiry = self.leased.first_key_value().map(|(slot, _)| slot.0);
        let due = if self.has_room() {
            self.queued.first_due()
        } else {
            None
        };
        match (expiry, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The expiry slot of `lease` if it is still the task's current lease.
    fn held(&self, lease: &Lease) -> Result<Slot, QueueError> {
        match self.tasks.get(&lease.task) {
            Some(Task {
                attempt,
                state: TaskState::Leased { expiry, consumer },
                ..
            }) if *attempt == lease.attempt && *consumer == lease.consumer => Ok(*expiry),
            _ => Err(lost(lease)),
        }
    }

    fn ack(&mut self, lease: &Lease) -> Result<(), QueueError> {
        let expiry = self.held(lease)?;
        self.leased.remove(&expiry);
        if let Some(key) = self.tasks.remove(&lease.task).and_then(|t| t.dedup_key) {
            self.dedup.remove(&key);
        }
        self.acked_total += 1;
        if self.limit.is_some() {
            // The lease freed room under the limit. Without a limit an ack makes nothing
            // deliverable, and a consumer waiting for a lease to run out wakes up early at
            // worst.
            self.notify.notify_waiters();
        }
        Ok(())
    }

    fn nack(
        &mut self,
        lease: &Lease,
        due: Instant,
        max_attempts: Option<NonZeroU32>,
    ) -> Result<(), QueueError> {
        let expiry = self.held(lease)?;
        self.leased.remove(&expiry);
        self.release(lease.task.clone(), due, DeadReason::Nacked, max_attempts);
        self.notify.notify_waiters();
        Ok(())
    }

    fn extend(&mut self, lease: &Lease, until: Instant) -> Result<(), QueueError> {
        let old = self.held(lease)?;
        let new = self.slot(until);
        self.leased.remove(&old);
        self.leased.insert(new, lease.task.clone());
        if let Some(task) = self.tasks.get_mut(&lease.task) {
            task.state = TaskState::Leased {
                expiry: new,
                consumer: lease.consumer.clone(),
            };
        }
        Ok(())
    }

    fn stats(&self, now: Instant) -> PoolStats {
        let ready = self.queued.due(now);
        PoolStats {
            ready,
            delayed: self.queued.len() - ready,
            leased: self.leased.len(),
            dead: self.dead.len(),
            limit: self.limit,
            acked_total: self.acked_total,
            redelivered_total: self.redelivered_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VIS: Duration = Duration::from_secs(10);

    /// Checks the pool invariant stated on [`Pool`].
    fn assert_consistent(pool: &Pool) {
        assert_eq!(pool.tasks.len(), pool.queued.len() + pool.leased.len());
        for id in pool.queued.ids() {
            assert!(matches!(pool.tasks[id].state, TaskState::Queued));
        }
        for (slot, id) in &pool.leased {
            assert!(
                matches!(&pool.tasks[id].state, TaskState::Leased { expiry, .. } if expiry == slot)
            );
        }
        for (key, id) in &pool.dedup {
            assert_eq!(pool.tasks[id].dedup_key.as_deref(), Some(key.as_str()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_transition_keeps_the_pool_consistent() {
        let max = NonZeroU32::new(2);
        let mut pool = Pool::new("p");
        let now = Instant::now();
        for i in 0..4 {
            let task = NewTask::new("p", json!(i)).with_dedup_key(format!("k{i}"));
            pool.enqueue(task, now);
        }
        pool.enqueue(NewTask::new("p", json!(9)).with_delay(VIS), now);
        assert_consistent(&pool);

        let a = pool.take(now, "c", VIS).unwrap();
        let b = pool.take(now, "c", VIS).unwrap();
        let c = pool.take(now, "c", Duration::from_secs(1)).unwrap();
        assert_eq!(
            [a.payload, b.payload, c.payload.clone()],
            [json!(0), json!(1), json!(2)]
        );
        assert_consistent(&pool);

        pool.ack(&a.lease).unwrap();
        pool.nack(&b.lease, now, max).unwrap();
        pool.extend(&c.lease, later(now, Duration::from_secs(2)))
            .unwrap();
        assert_consistent(&pool);
        assert_eq!(pool.dedup.len(), 3, "the acked task's key is free");

        // c's extended lease (2 s) runs out; it is queued again behind what was ready.
        let t = now + Duration::from_secs(3);
        pool.reap(t, max);
        assert_consistent(&pool);
        assert_eq!(pool.stats(t).leased, 0);
        let order: Vec<Value> = std::iter::from_fn(|| pool.take(t, "c", VIS))
            .map(|d| d.payload)
            .collect();
        // b was nacked at `now`, task 3 was enqueued at `now` before it, c expired at now + 2 s.
        assert_eq!(order, [json!(3), json!(1), json!(2)]);
        assert_consistent(&pool);

        // Second attempts of 1 and 2 run out: dead letters (max 2), keys freed.
        pool.reap(t + VIS, max);
        assert_consistent(&pool);
        let dead: Vec<Value> = pool.dead.iter().map(|d| d.payload.clone()).collect();
        assert_eq!(dead, [json!(1), json!(2)]);
        assert!(!pool.dedup.contains_key("k1") && !pool.dedup.contains_key("k2"));
        assert_eq!(
            pool.dedup.len(),
            1,
            "k3 is still pending (its first attempt)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn not_before_in_the_past_is_due_at_once_in_enqueue_order() {
        let mut pool = Pool::new("p");
        let now = Instant::now();
        pool.enqueue(NewTask::new("p", json!("first")), now);
        let past = Utc::now() - chrono::TimeDelta::hours(1);
        pool.enqueue(NewTask::new("p", json!("past")).with_not_before(past), now);
        let future = Utc::now() + chrono::TimeDelta::hours(1);
        pool.enqueue(
            NewTask::new("p", json!("future")).with_not_before(future),
            now,
        );
        let stats = pool.stats(now);
        assert_eq!((stats.ready, stats.delayed), (2, 1));
        assert_eq!(pool.take(now, "c", VIS).unwrap().payload, json!("first"));
        assert_eq!(pool.take(now, "c", VIS).unwrap().payload, json!("past"));
        assert!(pool.take(now, "c", VIS).is_none());
        let due = pool.queued.first_due().unwrap();
        assert!(due > now + Duration::from_secs(3599) && due <= now + Duration::from_secs(3600));
    }

    #[tokio::test(start_paused = true)]
    async fn requeue_expired_frees_tasks_of_a_dead_consumer_at_once() {
        let q = InMemoryQueue::new();
        q.enqueue(NewTask::new("p", json!("a"))).await.unwrap();
        q.enqueue(NewTask::new("p", json!("b"))).await.unwrap();
        let lease = q.dequeue("p", "dead", VIS, Duration::ZERO).await.unwrap();
        assert!(lease.is_some());
        // Still leased: nothing to requeue; a pool never used has nothing either.
        assert_eq!(q.requeue_expired("p").await.unwrap(), 0);
        assert_eq!(q.requeue_expired("unused").await.unwrap(), 0);
        tokio::time::advance(VIS + Duration::from_millis(1)).await;
        assert_eq!(q.requeue_expired("p").await.unwrap(), 1);
        assert_eq!(q.requeue_expired("p").await.unwrap(), 0);
        let stats = q.stats("p").await.unwrap();
        assert_eq!((stats.ready, stats.leased), (2, 0));
        assert!(q.requeue_expired("bad pool").await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priorities_go_first_and_fifo_within_one() {
        let mut pool = Pool::new("p");
        let now = Instant::now();
        let task = |name: &str, priority| NewTask::new("p", json!(name)).with_priority(priority);
        pool.enqueue(task("low-1", Priority::Low), now);
        pool.enqueue(task("normal-1", Priority::Normal), now);
        pool.enqueue(task("high-1", Priority::High), now);
        pool.enqueue(task("normal-2", Priority::Normal), now);
        pool.enqueue(task("high-2", Priority::High), now);
        // Due later: a high task waits for its time, whatever its priority.
        pool.enqueue(task("high-later", Priority::High).with_delay(VIS), now);
        assert_eq!(pool.stats(now).ready, 5);
        let first = pool.take(now, "c", VIS).unwrap();
        let order: Vec<Value> = std::iter::from_fn(|| pool.take(now, "c", VIS))
            .map(|d| d.payload)
            .collect();
        assert_eq!(first.payload, json!("high-1"));
        assert_eq!(
            order,
            [
                json!("high-2"),
                json!("normal-1"),
                json!("normal-2"),
                json!("low-1")
            ]
        );
        assert_consistent(&pool);
        // A nacked task keeps its priority.
        pool.nack(&first.lease, now, None).unwrap();
        pool.enqueue(task("normal-3", Priority::Normal), now);
        assert_eq!(pool.take(now, "c", VIS).unwrap().payload, json!("high-1"));
        assert_eq!(pool.take(now, "c", VIS).unwrap().payload, json!("normal-3"));
        assert_eq!(
            pool.take(now + VIS, "c", VIS).unwrap().payload,
            json!("high-later")
        );
        assert_consistent(&pool);
    }

    #[test]
    fn huge_durations_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::MAX), now + LONGEST);
    }
}
