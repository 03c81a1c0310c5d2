//! Following a run: poll it and its events until it finishes, waits for an approval, or a
//! deadline passes.

use std::time::{Duration, Instant};

use crate::event::RunEvent;
use crate::run::{RunStatus, RunView};
use crate::{Client, Error};

/// How following a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowEnd {
    /// Completed, failed or cancelled.
    Finished,
    /// Waiting for at least one pending approval.
    Waiting,
    /// The deadline passed first.
    TimedOut,
}

impl Client {
    /// Polls the run every `poll` and hands each new event (`seq` above `after_seq`, oldest
    /// first) to `on_event`, until the run finishes, waits for an approval, or `deadline`
    /// passes; the run as last read and how it ended.
    pub async fn follow_run(
        &self,
        run_id: &str,
        mut after_seq: i64,
        poll: Duration,
        deadline: Option<Instant>,
        mut on_event: impl FnMut(&RunEvent),
    ) -> Result<(RunView, FollowEnd), Error> {
        loop {
            // The run first, then its events: when the run is seen finished, the events read
            // afterwards include everything up to its end.
            let view = self.run(run_id).await?;
            for event in self.run_events_after(run_id, after_seq).await? {
                after_seq = after_seq.max(event.seq);
                on_event(&event);
            }
            if view.status.is_terminal() {
                return Ok((view, FollowEnd::Finished));
            }
            if view.status == RunStatus::Waiting && view.pending_approvals().next().is_some() {
                return Ok((view, FollowEnd::Waiting));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((view, FollowEnd::TimedOut));
            }
            tokio::time::sleep(poll).await;
        }
    }
}
