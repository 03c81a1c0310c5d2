//! Approval links sent to chat by a `hitl` node's `notify`: `GET /approvals/links/{token}`
//! shows a confirmation page and decides nothing (chat apps and mail scanners fetch links on
//! their own); `POST` to the same URL (the page's button) decides, once, as the approver the
//! link names.
//!
//! The routes are public: the token is the credential ([`tradeloom_orchestrator::approval_link`]:
//! HMAC-signed with the store's link key, expiring, with a nonce recorded at its one use). A
//! link made with `forwardable: false` also needs the approver's own API key on the `POST`
//! (`Authorization: Bearer`, or the page's key field), whose name must be the approver's. No
//! answer, log line or error shows the token; pages are `no-store` and send no `Referer`.
//!
//! Answers are JSON (the API's error shape) unless the request accepts `text/html` (a
//! browser), which gets the same status with a small page.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tradeloom_orchestrator::OrchestratorError;
use tradeloom_orchestrator::approval_link::{LinkClaims, LinkError, verify};
use tradeloom_store::{Approval, ApprovalStatus, Role, StoreError, api_key_hash};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The path prefix of approval links.
const PREFIX: &str = "/approvals/links/";

/// `path` with an approval link's token replaced by `{token}`: what logs and errors show.
pub(crate) fn redacted_path(path: &str) -> Cow<'_, str> {
    match path.strip_prefix(PREFIX) {
        Some(rest) if !rest.is_empty() => Cow::Owned(format!("{PREFIX}{{token}}")),
        _ => Cow::Borrowed(path),
    }
}

/// Whether `path` is an approval link (public, rate limited per client).
pub(crate) fn is_link(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// The optional body of `POST /approvals/links/{token}`: JSON, or the confirmation page's form
/// (`application/x-www-form-urlencoded`); an empty body is allowed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkDecision {
    /// Kept with the decision.
    pub comment: Option<String>,
    /// The approver's own API key, for links made with `forwardable: false` when it is not
    /// sent as `Authorization: Bearer` (a browser form cannot set that header).
    pub api_key: Option<String>,
}

/// A refusal as the caller wants it: JSON, or a page for a browser.
pub struct Refusal {
    error: ApiError,
    html: bool,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if !self.html {
            return self.error.into_response();
        }
        let title = match self.error.status {
            StatusCode::GONE => "This link has expired",
            StatusCode::CONFLICT => "Nothing to decide",
            StatusCode::FORBIDDEN => "This link cannot decide",
            _ => "Something went wrong",
        };
        let body = format!(
            "<h1>{}</h1><p>{}</p>",
            escape(title),
            escape(&self.error.message)
        );
        html_page(self.error.status, title, &body)
    }
}

/// Whether the request prefers a page: it accepts `text/html` (browsers do; API clients
/// seldom).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn refused(html: bool) -> impl Fn(ApiError) -> Refusal {
    move |error| Refusal { error, html }
}

fn link_error(e: LinkError) -> ApiError {
    match e {
        LinkError::Invalid => ApiError::new(StatusCode::FORBIDDEN, "link_invalid", e.to_string()),
        LinkError::Expired(at) => ApiError::new(StatusCode::GONE, "link_expired", e.to_string())
            .with_details(json!({"expired_at": at})),
    }
}

/// The claims of `token`, checked against the store's link key, and the approval it names.
async fn open(state: &AppState, token: &str) -> Result<(LinkClaims, Approval), ApiError> {
    let store = state.simulator.store();
    let key = store.approval_link_key().await?;
    let claims = verify(&key, token, Utc::now()).map_err(link_error)?;
    let approval = match store.approval(&claims.approval_id).await {
        Ok(a) => a,
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(
                "approval_not_found",
                format!(
                    "approval {} no longer exists (its run was deleted)",
                    claims.approval_id
                ),
            )
            .with_details(json!({"approval_id": claims.approval_id})));
        }
        Err(e) => return Err(e.into()),
    };
    if approval.run_id != claims.run_id {
        return Err(link_error(LinkError::Invalid));
    }
    Ok((claims, approval))
}

fn closed(approval: &Approval) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "approval_closed",
        format!(
            "approval {} is already {}{}",
            approval.id,
            approval.status,
            approval
                .decided_by
                .as_ref()
                .map(|by| format!(" (by {by})"))
                .unwrap_or_default()
        ),
    )
    .with_details(json!({"approval_id": approval.id, "status": approval.status}))
}

/// Shows what an approval link would decide, with a button that decides. Decides nothing.
#[utoipa::path(
    get, path = "/approvals/links/{token}", tag = "approvals", operation_id = "approval_link_page",
    params(("token" = String, Path, description = "The link's signed token (the credential; never shown back)")),
    responses(
        (status = 200, description = "A page showing the approval and the decision, with a button that `POST`s it (the same facts as JSON for a client that does not accept `text/html`); nothing is decided", content((String = "text/html"), (Object = "application/json"))),
        (status = 403, description = "The token is not valid: altered, cut short, or not made by this server's store", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "The approval no longer exists", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "The approval is already decided, expired or cancelled", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 410, description = "The link expired", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
) -> Result<Response, Refusal> {
    let html = wants_html(&headers);
    let refuse = refused(html);
    let Ok(Path(token)) = token else {
        return Err(refuse(link_error(LinkError::Invalid)));
    };
    let (claims, approval) = open(&state, &token).await.map_err(&refuse)?;
    if approval.status != ApprovalStatus::Pending {
        return Err(refuse(closed(&approval)));
    }
    let verb = match claims.decision {
        tradeloom_store::Decision::Approve => "Approve",
        tradeloom_store::Decision::Reject => "Reject",
    };
    let key_field = if claims.forwardable {
        String::new()
    } else {
        format!(
            "<p><label>API key of <b>{}</b> (this link decides only with it)<br>\
             <input type=\"password\" name=\"api_key\" autocomplete=\"off\" required></label></p>",
            escape(&claims.approver)
        )
    };
    let body = format!(
        "<h1>{verb}?</h1>\
         <blockquote>{prompt}</blockquote>\
         <p>Run <code>{run}</code>, node <code>{node}</code>. You decide as <b>{approver}</b>. \
         This link works once, until {link_expires}; without a decision the approval takes \
         <b>{default}</b> at {expires}.</p>\
         <form method=\"post\">\
         <p><label>Comment (optional)<br><textarea name=\"comment\" rows=\"3\" cols=\"60\"></textarea></label></p>\
         {key_field}\
         <p><button type=\"submit\">{verb} as {approver}</button></p>\
         </form>",
        prompt = escape(&approval.prompt),
        run = escape(&approval.run_id),
        node = escape(&approval.node_id),
        approver = escape(&claims.approver),
        link_expires = claims.expires_at().format("%Y-%m-%d %H:%M:%S UTC"),
        default = approval.default_decision,
        expires = approval.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    if html {
        return Ok(html_page(StatusCode::OK, &format!("{verb}?"), &body));
    }
    // An API client asked: the same facts as JSON (still deciding nothing).
    Ok(axum::Json(json!({
        "approval": approval,
        "decision": claims.decision,
        "approver": claims.approver,
        "forwardable": claims.forwardable,
        "link_expires_at": claims.expires_at(),
    }))
    .into_response())
}

/// Reads the body: JSON, a form, or nothing.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<LinkDecision, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        _ if body.is_empty() => Ok(LinkDecision::default()),
        Some("application/json") => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("the JSON body is not valid: {e}"))
        }),
        Some("application/x-www-form-urlencoded") => {
            serde_urlencoded::from_bytes(body).map_err(|e| {
                ApiError::bad_request("invalid_body", format!("the form is not valid: {e}"))
            })
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the body is {}; send `application/json` or `application/x-www-form-urlencoded` (or no body)",
                other.map_or("without a content type".to_string(), |t| format!("`{t}`"))
            ),
        )),
    }
}

/// The key `POST` carries: `Authorization: Bearer`, else the form's `api_key`.
fn presented_key(headers: &HeaderMap, form: &LinkDecision) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim().to_string());
    bearer
        .or_else(|| form.api_key.clone())
        .filter(|k| !k.trim().is_empty())
}

/// For a link that may not be forwarded: the approver's own key, with a role that decides.
async fn check_key(
    state: &AppState,
    headers: &HeaderMap,
    form: &LinkDecision,
    claims: &LinkClaims,
) -> Result<(), ApiError> {
    let forbidden = |code: &'static str, message: String| {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
            .with_details(json!({"approver": claims.approver}))
    };
    let Some(key) = presented_key(headers, form) else {
        return Err(forbidden(
            "link_key_required",
            format!(
                "this link was sent to `{}` and may not be forwarded: it decides only with `{}`'s own API key (`Authorization: Bearer <key>`, or the key field of the page)",
                claims.approver, claims.approver
            ),
        ));
    };
    let found = state
        .simulator
        .store()
        .api_key_by_hash(&api_key_hash(key.trim()))
        .await?;
    match found {
        None => Err(forbidden(
            "link_key_invalid",
            "the API key is unknown or revoked".to_string(),
        )),
        Some(k) if k.name != claims.approver => Err(forbidden(
            "link_key_mismatch",
            format!(
                "this link was sent to `{}`; API key `{}` cannot use it (links are bound to their approver and this one may not be forwarded)",
                claims.approver, k.name
            ),
        )),
        Some(k) if !k.role.allows(Role::Operator) => Err(forbidden(
            "link_key_role",
            format!(
                "API key `{}` has the {} role; deciding needs operator",
                k.name, k.role
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Decides an approval as the link's approver, once.
#[utoipa::path(
    post, path = "/approvals/links/{token}", tag = "approvals", operation_id = "decide_approval_link",
    params(("token" = String, Path, description = "The link's signed token (the credential; never shown back)")),
    request_body(
        description = "Optional: a comment, and the approver's API key for links that may not be forwarded (or send it as `Authorization: Bearer`)",
        content((LinkDecision = "application/json"), (LinkDecision = "application/x-www-form-urlencoded"))
    ),
    responses(
        (status = 200, description = "Decided as the link's approver: the approval (a page for browsers)", content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 403, description = "The token is not valid, or the link may not be forwarded and the approver's own key did not come with it; `error` says which", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "The approval no longer exists", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "The link was used already, or the approval is already decided, expired or cancelled", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 410, description = "The link expired", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is neither JSON nor a form", body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let html = wants_html(&headers);
    let refuse = refused(html);
    let body = body.map_err(|e| {
        refuse(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::error::payload_too_large()
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        })
    })?;
    let form = parse_body(&headers, &body).map_err(&refuse)?;
    let Ok(Path(token)) = token else {
        return Err(refuse(link_error(LinkError::Invalid)));
    };
    let (claims, approval) = open(&state, &token).await.map_err(&refuse)?;
    if !claims.forwardable {
        check_key(&state, &headers, &form, &claims)
            .await
            .map_err(&refuse)?;
    }
    // Recorded before deciding: of two uses, one decides and the other is told it was used.
    let first = state
        .simulator
        .store()
        .use_approval_link(&claims.nonce, &approval.id)
        .await
        .map_err(|e| refuse(e.into()))?;
    if !first {
        return Err(refuse(
            ApiError::new(
                StatusCode::CONFLICT,
                "link_used",
                "this link was used already; each link decides once",
            )
            .with_details(json!({"approval_id": approval.id})),
        ));
    }
    if approval.status != ApprovalStatus::Pending {
        return Err(refuse(closed(&approval)));
    }
    let runtime = state.runtime.as_ref().ok_or_else(|| {
        refuse(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "workflows_disabled",
            "this server runs no workflow runtime",
        ))
    })?;
    let comment = match form.comment.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => format!("{c} (via approval link)"),
        _ => "(via approval link)".to_string(),
    };
    let decided = runtime
        .decide(
            &approval.id,
            claims.decision,
            Some(comment),
            &claims.approver,
        )
        .await
        .map_err(|e| {
            refuse(match e {
                OrchestratorError::Conflict(m) => {
                    ApiError::new(StatusCode::CONFLICT, "approval_closed", m)
                }
                other => other.into(),
            })
        })?;
    if html {
        let verb = match claims.decision {
            tradeloom_store::Decision::Approve => "Approved",
            tradeloom_store::Decision::Reject => "Rejected",
        };
        let body = format!(
            "<h1>{verb}</h1><p>Recorded as decided by <b>{}</b>. The run goes on; you can close this page.</p>",
            escape(&claims.approver)
        );
        return Ok(html_page(StatusCode::OK, verb, &body));
    }
    Ok(axum::Json(serde_json::to_value(decided).unwrap_or(Value::Null)).into_response())
}

/// A complete page: no caching, no `Referer` (the URL holds the token), no framing, no
/// scripts, forms only to this server.
fn html_page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{} · tradeloom</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}\
         blockquote{{border-left:4px solid #ccc;margin:1em 0;padding:.5em 1em;white-space:pre-wrap}}\
         button{{font-size:1.1em;padding:.4em 1.2em}}</style></head><body>{body}</body></html>",
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Text for HTML (the run report's escaping).
fn escape(text: &str) -> String {
    tradeloom_runs::report::html_escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_paths() {
        assert_eq!(
            redacted_path("/approvals/links/eyJzZWNyZXQ.abc"),
            "/approvals/links/{token}"
        );
        assert_eq!(
            redacted_path("/approvals/links/a/b"),
            "/approvals/links/{token}"
        );
        assert_eq!(redacted_path("/approvals/apr_1"), "/approvals/apr_1");
        assert!(is_link("/approvals/links/x.y"));
        assert!(!is_link("/approvals/links/"));
        assert!(!is_link("/approvals/links/x/y"));
        assert!(!is_link("/approvals/apr_1/decide"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn bodies_are_json_forms_or_nothing() {
        let with = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
            h
        };
        let form = parse_body(
            &with("application/x-www-form-urlencoded"),
            b"comment=ok+then&api_key=tl_x",
        )
        .unwrap();
        assert_eq!(
            (form.comment.as_deref(), form.api_key.as_deref()),
            (Some("ok then"), Some("tl_x"))
        );
        let json = parse_body(
            &with("application/json; charset=utf-8"),
            br#"{"comment": "c"}"#,
        )
        .unwrap();
        assert_eq!(json.comment.as_deref(), Some("c"));
        assert!(
            parse_body(&HeaderMap::new(), b"")
                .unwrap()
                .comment
                .is_none()
        );
        assert_eq!(
            parse_body(&with("application/json"), br#"{"by": "x"}"#)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_body(&with("text/plain"), b"x").unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
