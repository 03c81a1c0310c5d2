//! [`ApprovalLinkStore`]: what approval links sent to chat need from the store — the one key
//! they are signed with, and the record of links already used.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::sql::{Db, corrupt, now, sql};

/// Bytes of the links' HMAC key.
pub const APPROVAL_LINK_KEY_BYTES: usize = 32;

/// The signing key of approval links and their single use.
#[async_trait]
pub trait ApprovalLinkStore: Send + Sync {
    /// The HMAC key approval links are signed with: made once (32 bytes of the operating
    /// system's random source) by the first caller, then the same for every process using this
    /// store. Never shown by any API.
    async fn approval_link_key(&self) -> Result<Vec<u8>, StoreError>;

    /// Records that the link with `nonce` (of approval `approval_id`) is used: `true` the first
    /// time, `false` when it was used before (atomically: of two concurrent calls with one
    /// nonce, exactly one gets `true`). [`StoreError::Invalid`] for an empty nonce; an unknown
    /// approval is [`StoreError::NotFound`].
    async fn use_approval_link(&self, nonce: &str, approval_id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
impl<D: Db> ApprovalLinkStore for D {
    async fn approval_link_key(&self) -> Result<Vec<u8>, StoreError> {
        let read = || async {
            let row: Option<(String,)> = sql("SELECT secret FROM approval_link_keys WHERE id = 1")
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::db("read the approval link key"))?;
            row.map(|(hex_key,)| hex::decode(hex_key).map_err(corrupt("approval_link_keys.secret")))
                .transpose()
        };
        if let Some(key) = read().await? {
            return Ok(key);
        }
        let mut bytes = [0u8; APPROVAL_LINK_KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| {
            StoreError::Invalid(format!(
                "cannot read the operating system's random source for the approval link key: {e}"
            ))
        })?;
        // Two processes may both get here: the first insert wins and both read its key.
        sql(
            "INSERT INTO approval_link_keys (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(hex::encode(bytes))
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(StoreError::db("store the approval link key"))?;
        read().await?.ok_or_else(|| StoreError::Corrupt {
            what: "approval_link_keys",
            detail: "the key just stored cannot be read back".into(),
        })
    }

    async fn use_approval_link(&self, nonce: &str, approval_id: &str) -> Result<bool, StoreError> {
        if nonce.trim().is_empty() {
            return Err(StoreError::Invalid(
                "an approval link's nonce is empty".into(),
            ));
        }
        // Through `workflow_approvals`, so an unknown approval is NotFound rather than a
        // foreign-key error.
        let inserted = sql(
            "INSERT INTO approval_link_uses (nonce, approval_id, used_at) \
             SELECT $1, id, $3 FROM workflow_approvals WHERE id = $2 \
             ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(approval_id)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(StoreError::db("record an approval link's use"))?;
        if inserted.rows_affected() == 1 {
            return Ok(true);
        }
        let used: Option<(String,)> = sql("SELECT nonce FROM approval_link_uses WHERE nonce = $1")
            .bind(nonce)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::db("look up an approval link's use"))?;
        match used {
            Some(_) => Ok(false),
            None => Err(StoreError::not_found(format!("approval {approval_id}"))),
        }
    }
}
