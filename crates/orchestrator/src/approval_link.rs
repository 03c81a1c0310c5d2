//! Approval links: one-click approve/reject URLs sent to chat by a `hitl` node's `notify`.
//!
//! A link is `{base}/approvals/links/{token}` with `token = b64(claims) "." b64(mac)`:
//! `claims` the JSON of [`LinkClaims`] (run, approval, approver, decision, expiry, a random
//! nonce, whether it may be forwarded), `mac` its HMAC-SHA256 under the store's link key
//! ([`tradeloom_store::ApprovalLinkStore::approval_link_key`]), `b64` URL-safe base64 without
//! padding. The MAC covers the encoded claims exactly as sent, so nothing is re-serialised to
//! check it. Whoever holds the key can mint links; it never leaves the store.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tradeloom_store::Decision;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Bound into every MAC, so a MAC made with the same key for anything else can never pass as a
/// link's.
const DOMAIN: &[u8] = b"tradeloom approval link v1\n";

/// The longest token [`verify`] reads; real ones are a few hundred characters.
pub const MAX_TOKEN_LEN: usize = 4096;

/// What a link says, signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkClaims {
    pub run_id: String,
    pub approval_id: String,
    /// The API key name the link decides as.
    pub approver: String,
    pub decision: Decision,
    /// Unix seconds; the link works strictly before it.
    pub expires_at: i64,
    /// 32 hex digits of the operating system's random source: the link's identity for single
    /// use.
    pub nonce: String,
    /// Whether the link decides on its own, or needs the approver's API key too.
    pub forwardable: bool,
}

impl LinkClaims {
    /// When the link stops working.
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.expires_at, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Why a token is refused. None of them shows the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not `claims.mac`, not base64, too long, or the MAC does not match: forged or altered.
    #[error(
        "the approval link is not valid: it was altered, cut short, or not made by this server's store"
    )]
    Invalid,
    /// The MAC matches but the link's time is over.
    #[error("the approval link expired at {}", .0.to_rfc3339())]
    Expired(DateTime<Utc>),
}

/// A fresh nonce: 16 random bytes, hex.
pub fn new_nonce() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("cannot read the operating system's random source: {e}"))?;
    Ok(hex::encode(bytes))
}

fn mac(key: &[u8], encoded_claims: &str) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(DOMAIN);
    mac.update(encoded_claims.as_bytes());
    mac
}

/// The token of `claims` under `key`.
pub fn sign(key: &[u8], claims: &LinkClaims) -> String {
    // Serialising plain strings, integers and booleans cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let encoded = URL_SAFE_NO_PAD.encode(json);
    let tag = mac(key, &encoded).finalize().into_bytes();
    format!("{encoded}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The claims of `token` if `key` signed it and it has not expired at `now`. The MAC is checked
/// (in constant time) before the claims are parsed or the expiry looked at.
pub fn verify(key: &[u8], token: &str, now: DateTime<Utc>) -> Result<LinkClaims, LinkError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(LinkError::Invalid);
    }
    let (encoded, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| LinkError::Invalid)?;
    mac(key, encoded)
        .verify_slice(&tag)
        .map_err(|_| LinkError::Invalid)?;
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| LinkError::Invalid)?;
    let claims: LinkClaims = serde_json::from_slice(&json).map_err(|_| LinkError::Invalid)?;
    if now.timestamp() >= claims.expires_at {
        return Err(LinkError::Expired(claims.expires_at()));
    }
    Ok(claims)
}

/// The link's URL under `base` (without a trailing `/`).
pub fn link_url(base: &str, token: &str) -> String {
    format!("{}/approvals/links/{token}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_at: i64) -> LinkClaims {
        LinkClaims {
            run_id: "r1".into(),
            approval_id: "apr_1".into(),
            approver: "bob".into(),
            decision: Decision::Approve,
            expires_at,
            nonce: new_nonce().unwrap(),
            forwardable: false,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let key = [7u8; 32];
        let c = claims(1_000);
        let token = sign(&key, &c);
        assert_eq!(verify(&key, &token, at(999)), Ok(c));
        assert_eq!(
            verify(&key, &token, at(1_000)),
            Err(LinkError::Expired(at(1_000)))
        );
    }

    #[test]
    fn altered_tokens_and_other_keys_are_refused() {
        let key = [7u8; 32];
        let token = sign(&key, &claims(1_000));
        assert_eq!(verify(&[8u8; 32], &token, at(0)), Err(LinkError::Invalid));
        let (encoded, tag) = token.split_once('.').unwrap();
        // The same MAC over claims that name another approver or decision.
        let mut other = claims(1_000);
        other.approver = "mallory".into();
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        for bad in [
            format!("{forged_claims}.{tag}"),
            format!("{encoded}.{}", &tag[1..]),
            format!("{encoded}x.{tag}"),
            encoded.to_string(),
            String::new(),
            format!("{encoded}.{tag}.x"),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(verify(&key, &bad, at(0)), Err(LinkError::Invalid), "{bad}");
        }
        // An expired link is reported as expired only when its MAC holds.
        let expired = claims(10);
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&expired).unwrap())
        );
        assert_eq!(verify(&key, &forged, at(100)), Err(LinkError::Invalid));
    }

    #[test]
    fn errors_do_not_show_the_token() {
        let key = [7u8; 32];
        let token = sign(&key, &claims(10));
        for e in [
            verify(&key, &token, at(100)).unwrap_err(),
            verify(&[1u8; 32], &token, at(0)).unwrap_err(),
        ] {
            let text = e.to_string();
            assert!(!text.contains(&token[..20]), "{text}");
        }
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(new_nonce().unwrap(), new_nonce().unwrap());
        assert_eq!(new_nonce().unwrap().len(), 32);
    }
}
