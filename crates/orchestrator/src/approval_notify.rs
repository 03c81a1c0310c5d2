//! Posting a new approval to chat: a `hitl` node with `notify` gets an `approval_notify` task
//! on the timer pool when its approval is created; a coordinator process takes it, signs an
//! approve and a reject link ([`crate::approval_link`]) and posts them to the webhook through
//! the guarded outbound client.
//!
//! Delivery never fails the run: each failed attempt is an `approval_notify_failed` event on the
//! run (the status or the kind of failure, never the webhook's URL, which may carry its
//! credential), retried with back-off up to [`NOTIFY_ATTEMPTS`] attempts when another may
//! succeed (5xx, 429, 408, timeouts, connection errors); a delivered message is an
//! `approval_notified` event. The approval waits for a decision either way.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tradeloom_flow::ir::NodeKind;
use tradeloom_flow::node_config::{ChatId, WebhookFormat};
use tradeloom_flow::{HitlNotify, WebhookUrl};
use tradeloom_net::{GuardedClient, SecretEnv, SsrfError, SsrfErrorKind};
use tradeloom_store::{Approval, ApprovalStatus, Decision};

use crate::approval_link::{LinkClaims, link_url, new_nonce, sign};
use crate::coordinator::Coordinator;

/// Attempts to deliver one approval's message at most.
pub const NOTIFY_ATTEMPTS: u32 = 4;

/// The default wait before the second attempt; each later one waits four times longer.
pub const DEFAULT_NOTIFY_BACKOFF: Duration = Duration::from_secs(2);

/// The longest one attempt to post may take (less when the outbound policy's timeout is
/// shorter).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Characters of the prompt a message carries at most (chat APIs cap a message's text).
const MAX_PROMPT_CHARS: usize = 2000;

/// What the delivery of chat messages needs: the guarded client, the secret allow-list (for
/// `url: {env: NAME}`), the links' default base URL and the retry back-off.
#[derive(Debug)]
pub struct ApprovalNotifier {
    http: GuardedClient,
    secrets: SecretEnv,
    public_url: Option<String>,
    backoff: Duration,
    /// The store's link key, read once.
    key: tokio::sync::OnceCell<Vec<u8>>,
}

/// What to do with a notify task after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Delivered, given up, or nothing to send: ack.
    Done,
    /// Try again after this long: nack with this delay.
    Retry(Duration),
}

impl ApprovalNotifier {
    pub fn new(
        http: GuardedClient,
        secrets: SecretEnv,
        public_url: Option<String>,
        backoff: Duration,
    ) -> Self {
        // Well within a timer task's lease, so a slow webhook is not posted to twice.
        let timeout = WEBHOOK_TIMEOUT.min(http.policy().timeout);
        ApprovalNotifier {
            http: http.with_timeout(timeout),
            secrets,
            public_url: public_url.map(|u| u.trim().trim_end_matches('/').to_string()),
            backoff,
            key: tokio::sync::OnceCell::new(),
        }
    }

    /// The wait after failed attempt `attempt` (1-based): `backoff × 4^(attempt−1)`.
    fn backoff_after(&self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(4u32.saturating_pow(attempt.saturating_sub(1)))
    }

    /// Attempt `attempt` to post approval `approval_id`'s message.
    pub async fn deliver(
        &self,
        coordinator: &Arc<Coordinator>,
        run_id: &str,
        approval_id: &str,
        attempt: u32,
    ) -> Result<NotifyOutcome, crate::OrchestratorError> {
        let store = coordinator.store();
        let approval = store.approval(approval_id).await?;
        if approval.status != ApprovalStatus::Pending {
            // Decided (or expired, cancelled) before its message went out: nothing to ask.
            return Ok(NotifyOutcome::Done);
        }
        let run = store.workflow_run(run_id).await?;
        let ir = coordinator.ir(&run).await?;
        let notify = match ir.node(&approval.node_id).map(|n| n.kind()) {
            Some(NodeKind::Hitl(h)) => h.notify.clone(),
            _ => None,
        };
        let Some(notify) = notify else {
            // A patch removed the node or its notify since.
            return Ok(NotifyOutcome::Done);
        };
        let record = Recorder {
            coordinator,
            approval: &approval,
            attempt,
        };
        let Some(base) = notify.link_base.clone().or_else(|| self.public_url.clone()) else {
            record
                .failed(
                    None,
                    "no base URL for the links: set `notify.link_base` on the node, or start the server with --public-url",
                    None,
                )
                .await;
            return Ok(NotifyOutcome::Done);
        };
        let link_expires = link_expiry(&approval, &notify);
        if link_expires <= Utc::now() {
            record
                .failed(None, "the links expired before they could be sent", None)
                .await;
            return Ok(NotifyOutcome::Done);
        }
        let url = match &notify.url {
            WebhookUrl::Text(url) => url.clone(),
            WebhookUrl::Secret(secret) => match self.secrets.read(&secret.env) {
                Ok(value) => format!("{}{value}", secret.prefix),
                Err(e) => {
                    record.failed(None, &e.to_string(), None).await;
                    return Ok(NotifyOutcome::Done);
                }
            },
        };
        let key = self
            .key
            .get_or_try_init(|| async { store.approval_link_key().await })
            .await?;
        let mut links = Vec::with_capacity(2);
        for decision in [Decision::Approve, Decision::Reject] {
            let nonce = new_nonce().map_err(|message| crate::OrchestratorError::Invalid {
                errors: vec![message.clone()],
                message,
            })?;
            let claims = LinkClaims {
                run_id: approval.run_id.clone(),
                approval_id: approval.id.clone(),
                approver: notify.approver.clone(),
                decision,
                expires_at: link_expires.timestamp(),
                nonce,
                forwardable: notify.forwardable,
            };
            links.push(link_url(&base, &sign(key, &claims)));
        }
        let message = Message {
            workflow: ir.name(),
            approval: &approval,
            approver: &notify.approver,
            link_expires,
            approve: &links[0],
            reject: &links[1],
        };
        let body = match notify.format {
            WebhookFormat::Slack => message.slack(),
            WebhookFormat::Telegram => message.telegram(notify.chat_id.as_ref()),
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let sent = self
            .http
            .send(
                Method::POST,
                &url,
                headers,
                Some(serde_json::to_vec(&body).unwrap_or_default()),
            )
            .await;
        let (status, reason, retriable) = match sent {
            Ok(r) if r.status.is_success() => {
                record
                    .notified(&notify, r.status.as_u16(), link_expires)
                    .await;
                return Ok(NotifyOutcome::Done);
            }
            Ok(r) => {
                let code = r.status.as_u16();
                let retriable = r.status.is_server_error() || code == 429 || code == 408;
                (
                    Some(code),
                    format!("the webhook answered {}", r.status),
                    retriable,
                )
            }
            Err(e) => {
                let retriable = !e.is_refusal();
                (None, failure_text(&e), retriable)
            }
        };
        let retry = (retriable && attempt < NOTIFY_ATTEMPTS).then(|| self.backoff_after(attempt));
        record.failed(status, &reason, retry).await;
        Ok(match retry {
            Some(after) => NotifyOutcome::Retry(after),
            None => NotifyOutcome::Done,
        })
    }
}

/// When an approval's links expire: `link_expires_after` after the approval was created, and
/// never after the approval itself.
fn link_expiry(approval: &Approval, notify: &HitlNotify) -> DateTime<Utc> {
    let after = i64::try_from(notify.link_expires_after_ms)
        .ok()
        .and_then(TimeDelta::try_milliseconds)
        .and_then(|d| approval.created_at.checked_add_signed(d))
        .unwrap_or(approval.expires_at);
    after.min(approval.expires_at)
}

/// Why an exchange failed, without the URL (its path may be the webhook's credential).
fn failure_text(e: &SsrfError) -> String {
    match &e.kind {
        SsrfErrorKind::BlockedPath { rule, .. } => {
            format!("the outbound guard refused the webhook's path (under `{rule}`)")
        }
        kind @ (SsrfErrorKind::BlockedHost { .. }
        | SsrfErrorKind::Blocked { .. }
        | SsrfErrorKind::Dns { .. }) => format!(
            "the outbound guard refused the webhook: {kind} (let a local receiver through with serve --http-allow HOST:PORT)"
        ),
        kind @ (SsrfErrorKind::Timeout { .. }
        | SsrfErrorKind::TooManyRedirects { .. }
        | SsrfErrorKind::TooLarge { .. }
        | SsrfErrorKind::BadScheme(_)
        | SsrfErrorKind::NoHost) => kind.to_string(),
        SsrfErrorKind::InvalidUrl(_) => "the webhook URL is not a valid URL".into(),
        SsrfErrorKind::Connect(_) => "cannot connect to the webhook".into(),
        _ => "sending to the webhook failed".into(),
    }
}

/// Writes the delivery's events on the run and wakes `/ws`.
struct Recorder<'a> {
    coordinator: &'a Arc<Coordinator>,
    approval: &'a Approval,
    attempt: u32,
}

impl Recorder<'_> {
    async fn failed(&self, status: Option<u16>, reason: &str, retry: Option<Duration>) {
        tracing::warn!(
            run_id = %self.approval.run_id,
            approval_id = %self.approval.id,
            attempt = self.attempt,
            status,
            reason,
            "cannot post an approval to its webhook"
        );
        let payload = json!({
            "approval_id": self.approval.id,
            "attempt": self.attempt,
            "status": status,
            "reason": reason,
            "will_retry": retry.is_some(),
            "retry_in_ms": retry.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        });
        self.append("approval_notify_failed", payload).await;
    }

    async fn notified(&self, notify: &HitlNotify, status: u16, link_expires: DateTime<Utc>) {
        let payload = json!({
            "approval_id": self.approval.id,
            "attempt": self.attempt,
            "status": status,
            "format": notify.format,
            "approver": notify.approver,
            "forwardable": notify.forwardable,
            "links_expire_at": link_expires,
        });
        self.append("approval_notified", payload).await;
    }

    async fn append(&self, kind: &str, payload: Value) {
        let store = self.coordinator.store();
        match store
            .append_run_event(
                &self.approval.run_id,
                kind,
                Some(&self.approval.node_id),
                &payload,
            )
            .await
        {
            Ok(_) => self.coordinator.notify().notify_waiters(),
            Err(e) => tracing::error!(
                run_id = %self.approval.run_id,
                error = %e,
                kind,
                "cannot record an approval notification event"
            ),
        }
    }
}

/// One approval's chat message.
struct Message<'a> {
    workflow: &'a str,
    approval: &'a Approval,
    approver: &'a str,
    link_expires: DateTime<Utc>,
    approve: &'a str,
    reject: &'a str,
}

impl Message<'_> {
    /// The prompt, cut to [`MAX_PROMPT_CHARS`].
    fn prompt(&self) -> String {
        let prompt = &self.approval.prompt;
        match prompt.char_indices().nth(MAX_PROMPT_CHARS) {
            Some((cut, _)) => format!("{}…", &prompt[..cut]),
            None => prompt.clone(),
        }
    }

    /// What the message says, in plain text.
    fn details(&self) -> String {
        format!(
            "Workflow `{}`, run {}, node `{}`. For {}: the links work once, until {}; without a decision the approval takes `{}` at {}.",
            self.workflow,
            self.approval.run_id,
            self.approval.node_id,
            self.approver,
            self.link_expires.format("%Y-%m-%d %H:%M UTC"),
            self.approval.default_decision,
            self.approval.expires_at.format("%Y-%m-%d %H:%M UTC"),
        )
    }

    /// Slack's incoming-webhook shape: a text fallback and blocks with two URL buttons.
    fn slack(&self) -> Value {
        let text = format!(
            "*Approval requested:* {}\n{}",
            slack_escape(&self.prompt()),
            slack_escape(&self.details())
        );
        json!({
            "text": format!("Approval requested: {}\nApprove: {}\nReject: {}", self.prompt(), self.approve, self.reject),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {"type": "actions", "elements": [
                    {"type": "button", "action_id": "approve", "style": "primary",
                     "text": {"type": "plain_text", "text": "Approve"}, "url": self.approve},
                    {"type": "button", "action_id": "reject", "style": "danger",
                     "text": {"type": "plain_text", "text": "Reject"}, "url": self.reject},
                ]},
            ],
        })
    }

    /// The Telegram Bot API's `sendMessage` shape: plain text and an inline keyboard of two
    /// URL buttons.
    fn telegram(&self, chat_id: Option<&ChatId>) -> Value {
        json!({
            "chat_id": chat_id,
            "text": format!("Approval requested: {}\n{}", self.prompt(), self.details()),
            "reply_markup": {"inline_keyboard": [[
                {"text": "Approve", "url": self.approve},
                {"text": "Reject", "url": self.reject},
            ]]},
        })
    }
}

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped, as Slack asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval() -> Approval {
        let created = Utc::now();
        Approval {
            id: "apr_1".into(),
            run_id: "r1".into(),
            node_id: "review".into(),
            attempt: 1,
            prompt: "Buy <AAPL> & hold?".into(),
            status: ApprovalStatus::Pending,
            default_decision: Decision::Reject,
            approvers: None,
            expires_at: created + TimeDelta::hours(1),
            decision: None,
            decided_by: None,
            comment: None,
            decided_at: None,
            created_at: created,
        }
    }

    fn notify(link_ms: u64) -> HitlNotify {
        HitlNotify {
            url: WebhookUrl::Text("https://hooks.example/x".into()),
            format: WebhookFormat::Slack,
            chat_id: None,
            approver: "bob".into(),
            link_base: None,
            link_expires_after_ms: link_ms,
            forwardable: false,
        }
    }

    #[test]
    fn links_expire_with_their_setting_or_the_approval() {
        let a = approval();
        assert_eq!(
            link_expiry(&a, &notify(60_000)),
            a.created_at + TimeDelta::minutes(1)
        );
        assert_eq!(link_expiry(&a, &notify(7_200_000)), a.expires_at);
        assert_eq!(link_expiry(&a, &notify(u64::MAX)), a.expires_at);
    }

    #[test]
    fn messages_carry_both_links() {
        let a = approval();
        let m = Message {
            workflow: "gate",
            approval: &a,
            approver: "bob",
            link_expires: a.expires_at,
            approve: "http://h/approvals/links/A",
            reject: "http://h/approvals/links/R",
        };
        let slack = m.slack();
        let buttons = &slack["blocks"][1]["elements"];
        assert_eq!(buttons[0]["url"], "http://h/approvals/links/A");
        assert_eq!(buttons[1]["url"], "http://h/approvals/links/R");
        let section = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            section.contains("Buy &lt;AAPL&gt; &amp; hold?"),
            "{section}"
        );
        let tg = m.telegram(Some(&ChatId::Number(-100)));
        assert_eq!(tg["chat_id"], -100);
        assert_eq!(
            tg["reply_markup"]["inline_keyboard"][0][1]["url"],
            "http://h/approvals/links/R"
        );
        assert!(tg["text"].as_str().unwrap().contains("Buy <AAPL> & hold?"));
    }

    #[test]
    fn back_off_grows_fourfold() {
        let n = ApprovalNotifier::new(
            GuardedClient::strict(),
            SecretEnv::default(),
            None,
            Duration::from_secs(2),
        );
        assert_eq!(n.backoff_after(1), Duration::from_secs(2));
        assert_eq!(n.backoff_after(2), Duration::from_secs(8));
        assert_eq!(n.backoff_after(3), Duration::from_secs(32));
    }
}
