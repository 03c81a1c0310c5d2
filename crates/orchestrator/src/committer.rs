//! [`Committer`]: group commit of run writes. Every transition (and run creation) of this
//! process is handed to one writer task, which commits whatever has queued up meanwhile in one
//! store transaction ([`RunStore::commit_batch`](tradeloom_store::RunStore::commit_batch)) and
//! only then answers each submitter. So a signal's effects (its tasks emitted, its delivery
//! acknowledged) still follow its commit, while concurrent runs share one write lock
//! acquisition, one transaction and one wake-up of the listeners per batch instead of one each.
//!
//! Writes are committed in submission order, so a caller may submit a run's next transition,
//! planned on top of one not yet committed, right away. Such transitions carry the
//! [lineage](tradeloom_store::Transition::lineage) of the state they were planned on: once one
//! of a lineage is refused, the later ones are refused as conflicts too, here across batches
//! and by the store within one. The revision alone would not do: a transition planned on a
//! refused one expects the revision after it, which another write (another process, a patch,
//! a cancel planned elsewhere) may have moved the run to with different content.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, mpsc, oneshot};
use tradeloom_store::{RunWrite, Store, StoreError, TransitionOutcome};

/// Writes one batch commits at most (what queued while the previous batch was committing).
const MAX_BATCH: usize = 1_024;
/// Refused lineages remembered; the oldest are forgotten beyond this. A lineage's writes are
/// planned only until its refusal reaches the coordinator (which then reads the run again), so
/// late ones come within a few batches of the refusal.
const DEAD_LINEAGES: usize = 65_536;

type Reply = oneshot::Sender<Result<TransitionOutcome, StoreError>>;

/// The submitting side of the writer task (started on first use, inside the async runtime).
#[derive(Debug)]
pub(crate) struct Committer {
    store: Arc<dyn Store>,
    notify: Arc<Notify>,
    sender: OnceLock<mpsc::UnboundedSender<Vec<(RunWrite, Reply)>>>,
}

/// The outcome of a submitted write, once its batch is committed.
pub(crate) type Pending = oneshot::Receiver<Result<TransitionOutcome, StoreError>>;

impl Committer {
    pub(crate) fn new(store: Arc<dyn Store>, notify: Arc<Notify>) -> Self {
        Committer {
            store,
            notify,
            sender: OnceLock::new(),
        }
    }

    /// Queues `write` behind the writes submitted before it; await the answer.
    pub(crate) fn submit(&self, write: RunWrite) -> Pending {
        let (reply, answer) = oneshot::channel();
        self.send(vec![(write, reply)]);
        answer
    }

    /// Queues `first` and `second` together (so they share a batch, `second` after `first`):
    /// a run's creation and its start, one commit instead of two in a row.
    pub(crate) fn submit_pair(&self, first: RunWrite, second: RunWrite) -> (Pending, Pending) {
        let (reply_first, answer_first) = oneshot::channel();
        let (reply_second, answer_second) = oneshot::channel();
        self.send(vec![(first, reply_first), (second, reply_second)]);
        (answer_first, answer_second)
    }

    fn send(&self, writes: Vec<(RunWrite, Reply)>) {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(writer(self.store.clone(), self.notify.clone(), receiver));
            sender
        });
        if let Err(mpsc::error::SendError(writes)) = sender.send(writes) {
            for (_, reply) in writes {
                let _ = reply.send(Err(StoreError::Invalid(
                    "the workflow store writer has stopped".into(),
                )));
            }
        }
    }
}

/// Commits batches until every sender is gone.
async fn writer(
    store: Arc<dyn Store>,
    notify: Arc<Notify>,
    mut receiver: mpsc::UnboundedReceiver<Vec<(RunWrite, Reply)>>,
) {
    let mut batch: Vec<RunWrite> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    let mut dead = DeadLineages::default();
    while let Some(writes) = receiver.recv().await {
        let mut next = Some(writes);
        while let Some(writes) = next.take() {
            // Writes submitted together stay together (a batch may go a little over).
            for (write, reply) in writes {
                match dead.refusal(&write) {
                    Some(refused) => {
                        let _ = reply.send(Err(refused));
                    }
                    None => {
                        batch.push(write);
                        replies.push(reply);
                    }
                }
            }
            if batch.len() < MAX_BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let outcomes = match store.commit_batch(&batch).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // One bad write must not fail the others: commit them one by one.
                tracing::warn!(error = %e, writes = batch.len(), "a batch of run writes failed; committing them one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for write in &batch {
                    // The lineage rule the store applies within a batch, across these.
                    let outcome = match dead.refusal(write) {
                        Some(refused) => Err(refused),
                        None => match store.commit_batch(std::slice::from_ref(write)).await {
                            // One write, one outcome.
                            Ok(mut one) => {
                                one.pop().unwrap_or(Ok(TransitionOutcome::AlreadyApplied))
                            }
                            Err(e) => Err(e),
                        },
                    };
                    dead.note(write, &outcome);
                    outcomes.push(outcome);
                }
                outcomes
            }
        };
        for (write, outcome) in batch.iter().zip(&outcomes) {
            dead.note(write, outcome);
        }
        notify.notify_waiters();
        for (reply, outcome) in replies.drain(..).zip(outcomes) {
            // A submitter that went away (its task was aborted) needs no answer.
            let _ = reply.send(outcome);
        }
        batch.clear();
    }
}

/// Lineages with a refused transition (see the module docs), the newest [`DEAD_LINEAGES`].
#[derive(Default)]
struct DeadLineages {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl DeadLineages {
    /// Remembers the lineage of `write` if it was refused.
    fn note(&mut self, write: &RunWrite, outcome: &Result<TransitionOutcome, StoreError>) {
        if let RunWrite::Transition(t) = write
            && !matches!(outcome, Ok(TransitionOutcome::Applied { .. }))
            && let Some(lineage) = t.lineage
        {
            self.insert(lineage);
        }
    }

    fn insert(&mut self, lineage: u64) {
        if self.set.insert(lineage) {
            self.order.push_back(lineage);
            if self.order.len() > DEAD_LINEAGES
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// The conflict `write` is refused with, when it was planned on a refused transition.
    fn refusal(&self, write: &RunWrite) -> Option<StoreError> {
        let RunWrite::Transition(t) = write else {
            return None;
        };
        let lineage = t.lineage.filter(|l| self.set.contains(l))?;
        Some(StoreError::Conflict(format!(
            "workflow run {}: signal `{}` was planned on a refused transition (lineage {lineage}); read it again",
            t.run_id, t.signal_id
        )))
    }
}
