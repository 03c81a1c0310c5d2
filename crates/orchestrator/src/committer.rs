//! [`Committer`]: group commit of run writes. Every transition (and run creation) of this
//! process is handed to one writer task, which commits whatever has queued up meanwhile in one
//! store transaction ([`RunStore::commit_batch`](tradeloom_store::RunStore::commit_batch)) and
//! only then answers each submitter. So a signal's effects (its tasks emitted, its delivery
//! acknowledged) still follow its commit, while concurrent runs share one write lock
//! acquisition, one transaction and one wake-up of the listeners per batch instead of one each.
//!
//! Writes are committed in submission order, so a caller may submit a run's next transition,
//! planned on top of one not yet committed, right away: if the earlier one is refused, the later
//! one no longer matches the run's revision and is refused as a conflict too.

use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, mpsc, oneshot};
use tradeloom_store::{RunWrite, Store, StoreError, TransitionOutcome};

/// Writes one batch commits at most (what queued while the previous batch was committing).
const MAX_BATCH: usize = 1_024;

type Reply = oneshot::Sender<Result<TransitionOutcome, StoreError>>;

/// The submitting side of the writer task (started on first use, inside the async runtime).
#[derive(Debug)]
pub(crate) struct Committer {
    store: Arc<dyn Store>,
    notify: Arc<Notify>,
    sender: OnceLock<mpsc::UnboundedSender<(RunWrite, Reply)>>,
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
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(writer(self.store.clone(), self.notify.clone(), receiver));
            sender
        });
        if let Err(mpsc::error::SendError((_, reply))) = sender.send((write, reply)) {
            let _ = reply.send(Err(StoreError::Invalid(
                "the workflow store writer has stopped".into(),
            )));
        }
        answer
    }
}

/// Commits batches until every sender is gone.
async fn writer(
    store: Arc<dyn Store>,
    notify: Arc<Notify>,
    mut receiver: mpsc::UnboundedReceiver<(RunWrite, Reply)>,
) {
    let mut batch: Vec<RunWrite> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    while let Some((write, reply)) = receiver.recv().await {
        batch.push(write);
        replies.push(reply);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok((write, reply)) => {
                    batch.push(write);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let outcomes = match store.commit_batch(&batch).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // One bad write must not fail the others: commit them one by one.
                tracing::warn!(error = %e, writes = batch.len(), "a batch of run writes failed; committing them one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for write in &batch {
                    outcomes.push(
                        match store.commit_batch(std::slice::from_ref(write)).await {
                            // One write, one outcome.
                            Ok(mut one) => {
                                one.pop().unwrap_or(Ok(TransitionOutcome::AlreadyApplied))
                            }
                            Err(e) => Err(e),
                        },
                    );
                }
                outcomes
            }
        };
        notify.notify_waiters();
        for (reply, outcome) in replies.drain(..).zip(outcomes) {
            // A submitter that went away (its task was aborted) needs no answer.
            let _ = reply.send(outcome);
        }
        batch.clear();
    }
}
