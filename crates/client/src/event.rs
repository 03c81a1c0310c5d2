//! A run's events (`GET /workflow-runs/{id}/events`), and each as one line of text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Error};

/// Events asked for per request by [`Client::run_events_after`].
const EVENT_PAGE: u32 = 1000;

/// One event of a run's stream. `seq` increases across the whole store, in commit order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub seq: i64,
    pub run_id: Option<String>,
    /// Set on events of simulation jobs, never on a run's.
    pub job_id: Option<String>,
    /// Set on events of engine runs (paper runs' `order`, `fill`, `equity`), never on others.
    #[serde(default)]
    pub engine_run_id: Option<String>,
    /// e.g. `node_queued`, `node_completed`, `approval_requested`, `run_finished`.
    pub kind: String,
    pub node_id: Option<String>,
    pub payload: Value,
    pub at: String,
}

/// `GET /workflow-runs/{id}/events`: one page of events, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub run_id: String,
    pub events: Vec<RunEvent>,
}

impl Client {
    /// At most `limit` events of a run with `seq` above `after_seq`, oldest first.
    pub async fn run_events(
        &self,
        run_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<EventPage, Error> {
        let query = [
            ("after_seq", after_seq.to_string()),
            ("limit", limit.to_string()),
        ];
        self.get(
            &["workflow-runs", run_id, "events"],
            &query,
            "a page of run events",
        )
        .await
    }

    /// Every event of a run with `seq` above `after_seq`, oldest first (page by page).
    pub async fn run_events_after(
        &self,
        run_id: &str,
        after_seq: i64,
    ) -> Result<Vec<RunEvent>, Error> {
        let mut all = Vec::new();
        let mut after = after_seq;
        loop {
            let events = self.run_events(run_id, after, EVENT_PAGE).await?.events;
            let n = events.len();
            if let Some(last) = events.last() {
                after = last.seq;
            }
            all.extend(events);
            if n < EVENT_PAGE as usize {
                return Ok(all);
            }
        }
    }
}

/// The text of a JSON value: a string as is, nothing for `null` or absent, else JSON.
fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `HH:MM:SS.mmm` of an RFC 3339 time (the text itself when it is not one).
fn clock(at: &str) -> String {
    at.split_once('T')
        .map_or(at, |(_, t)| t.get(..12).unwrap_or(t))
        .to_string()
}

impl RunEvent {
    /// The event as one line: `HH:MM:SS.mmm  subject: what happened` (the subject is
    /// `node <id>` or `run`), as `tradeloom flow status --watch` prints it.
    pub fn summary(&self) -> String {
        let at = clock(&self.at);
        let p = &self.payload;
        let s = |k: &str| shown(p.get(k));
        let what = match self.kind.as_str() {
            "run_created" => format!("created (workflow version {})", s("version")),
            "run_started" => "started".to_string(),
            "node_queued" => match p.get("not_before").filter(|v| !v.is_null()) {
                Some(t) => format!(
                    "queued ({}, not before {})",
                    s("type"),
                    clock(&shown(Some(t)))
                ),
                None => format!("queued ({})", s("type")),
            },
            "node_started" => format!("running (attempt {})", s("attempt")),
            "node_completed" if p.get("fallback") == Some(&Value::Bool(true)) => {
                format!("completed with its fallback: {}", s("fallback_reason"))
            }
            "node_completed" => "completed".to_string(),
            "node_retrying" => format!(
                "attempt {} failed: {}; retrying in {} ms (attempt {} of {})",
                s("attempt"),
                s("error"),
                s("delay_ms"),
                s("next_attempt"),
                s("max_attempts")
            ),
            "node_failed" => format!("failed (attempt {}): {}", s("attempt"), s("error")),
            "node_skipped" => format!("skipped: {}", s("reason")),
            "approval_requested" => {
                format!("waiting for approval {}: {}", s("approval_id"), s("prompt"))
            }
            "approval_decided" => {
                let mut line = if p.get("expired") == Some(&Value::Bool(true)) {
                    format!(
                        "approval {} expired; default {}",
                        s("approval_id"),
                        s("decision")
                    )
                } else {
                    format!(
                        "{} by {} (approval {})",
                        s("decision"),
                        s("by"),
                        s("approval_id")
                    )
                };
                let comment = s("comment");
                if !comment.is_empty() {
                    line.push_str(&format!(": {comment}"));
                }
                line
            }
            "approval_notified" => format!(
                "approval {} posted to {} for {} (attempt {})",
                s("approval_id"),
                s("format"),
                s("approver"),
                s("attempt")
            ),
            "approval_notify_failed" => {
                let retry = match p.get("retry_in_ms").and_then(Value::as_u64) {
                    Some(ms) => format!("; retrying in {ms} ms"),
                    None => "; not retried (decide over the API or CLI)".to_string(),
                };
                format!(
                    "cannot post approval {} to chat (attempt {}): {}{retry}",
                    s("approval_id"),
                    s("attempt"),
                    s("reason")
                )
            }
            "patch_applied" => {
                let removed = p
                    .get("removed")
                    .and_then(Value::as_array)
                    .filter(|r| !r.is_empty())
                    .map(|r| {
                        let ids: Vec<String> = r.iter().map(|v| shown(Some(v))).collect();
                        format!("; removed {}", ids.join(", "))
                    })
                    .unwrap_or_default();
                format!(
                    "patched by {}: IR version {}{removed}",
                    s("by"),
                    s("ir_version")
                )
            }
            "run_cancelled" => {
                let reason = s("reason");
                if reason.is_empty() {
                    format!("cancelled by {}", s("by"))
                } else {
                    format!("cancelled by {}: {reason}", s("by"))
                }
            }
            "run_paused" => format!("paused by {} (was {})", s("by"), s("was")),
            "run_resumed" => format!("resumed by {}", s("by")),
            "run_queued" => format!(
                "queued: the {} limit of {} concurrent run(s) is reached",
                s("limit"),
                s("max_concurrent_runs")
            ),
            "run_admitted" => "admitted: a concurrency slot freed".to_string(),
            "run_finished" => {
                let error = s("error");
                if error.is_empty() {
                    s("status")
                } else {
                    format!("{}: {error}", s("status"))
                }
            }
            "warning" => format!("warning: {}", s("message")),
            other => format!("{other} {p}"),
        };
        let subject = self
            .node_id
            .as_ref()
            .map_or_else(|| "run".to_string(), |n| format!("node {n}"));
        format!("{at}  {subject}: {what}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn describe_event(e: &Value) -> String {
        serde_json::from_value::<RunEvent>(e.clone())
            .unwrap()
            .summary()
    }

    #[test]
    fn events_read_as_one_line() {
        let e = json!({"seq": 3, "kind": "approval_requested", "node_id": "review",
            "payload": {"approval_id": "ap1", "prompt": "Trade?"}, "at": "2026-01-02T03:04:05.678901Z"});
        assert_eq!(
            describe_event(&e),
            "03:04:05.678  node review: waiting for approval ap1: Trade?"
        );
        let e = json!({"seq": 9, "kind": "run_finished", "node_id": null,
            "payload": {"status": "failed", "error": "boom"}, "at": "2026-01-02T03:04:05Z"});
        assert_eq!(describe_event(&e), "03:04:05Z  run: failed: boom");
        let e = json!({"seq": 4, "kind": "approval_notify_failed", "node_id": "review",
            "payload": {"approval_id": "ap1", "attempt": 1, "status": 500,
                        "reason": "the webhook answered 500 Internal Server Error",
                        "will_retry": true, "retry_in_ms": 2000},
            "at": "2026-01-02T03:04:05Z"});
        assert_eq!(
            describe_event(&e),
            "03:04:05Z  node review: cannot post approval ap1 to chat (attempt 1): the webhook answered 500 Internal Server Error; retrying in 2000 ms"
        );
        let e = json!({"seq": 5, "kind": "node_completed", "node_id": "risk",
            "payload": {"attempt": 3, "output": "h", "fallback": true,
                        "fallback_reason": "agent answer has no JSON object: I think so"},
            "at": "2026-01-02T03:04:05Z"});
        assert_eq!(
            describe_event(&e),
            "03:04:05Z  node risk: completed with its fallback: agent answer has no JSON object: I think so"
        );
    }
}
