//! [`KeyStore`]: API keys (only their hashes are stored).

use async_trait::async_trait;

use crate::api_key::{ApiKey, NewApiKey, Role};
use crate::error::StoreError;
use crate::sql::{Db, now, sql};

/// API keys of the REST API.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key made by [`NewApiKey::generate`]. [`StoreError::Conflict`] if the name (of
    /// any key, revoked ones included) or the hash is taken; [`StoreError::Invalid`] for a bad
    /// name.
    async fn create_api_key(&self, new: &NewApiKey) -> Result<ApiKey, StoreError>;

    /// The key whose secret hashes to `key_hash` ([`crate::api_key_hash`]), if it exists and is
    /// not revoked.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key with this id, else the one with this name; a key already revoked is
    /// returned unchanged. [`StoreError::NotFound`] if there is neither.
    async fn revoke_api_key(&self, id_or_name: &str) -> Result<ApiKey, StoreError>;

    /// Sets the key's `last_used_at` to now. [`StoreError::NotFound`] if absent.
    async fn touch_api_key(&self, id: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl<D: Db> KeyStore for D {
    async fn create_api_key(&self, new: &NewApiKey) -> Result<ApiKey, StoreError> {
        crate::api_key::check_key_name(&new.name)?;
        let key = ApiKey {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name.clone(),
            role: new.role,
            prefix: new.prefix.clone(),
            max_concurrent_runs: new.max_concurrent_runs,
            created_at: now(),
            last_used_at: None,
            revoked_at: None,
        };
        let inserted = sql(
            "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, \
             max_concurrent_runs) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&new.key_hash)
        .bind(&key.prefix)
        .bind(key.created_at)
        .bind(
            key.max_concurrent_runs
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        )
        .execute(self.pool())
        .await
        .map_err(StoreError::db("create an API key"));
        match inserted {
            Ok(_) => Ok(key),
            Err(StoreError::Conflict(_)) => {
                let taken: Option<(String,)> = sql("SELECT id FROM api_keys WHERE name = $1")
                    .bind(&new.name)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(StoreError::db("look up an API key name"))?;
                Err(StoreError::Conflict(if taken.is_some() {
                    format!(
                        "an API key named `{}` exists (revoked keys keep their names); \
                         choose another name",
                        new.name
                    )
                } else {
                    "an API key with this secret exists; generate a new secret".into()
                }))
            }
            Err(e) => Err(e),
        }
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        use crate::api_key::{API_KEY_COLUMNS, ApiKeyRow};
        let row: Option<ApiKeyRow> = sql(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(key_hash)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("look up an API key"))?;
        row.map(ApiKeyRow::into_key).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        use crate::api_key::{API_KEY_COLUMNS, ApiKeyRow};
        let rows: Vec<ApiKeyRow> = sql(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list API keys"))?;
        rows.into_iter().map(ApiKeyRow::into_key).collect()
    }

    async fn revoke_api_key(&self, id_or_name: &str) -> Result<ApiKey, StoreError> {
        use crate::api_key::{API_KEY_COLUMNS, ApiKeyRow};
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin revoking an API key"))?;
        // An id first: a name can never shadow another key's id.
        let mut row: Option<ApiKeyRow> = None;
        for column in ["id", "name"] {
            row = sql(format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE {column} = $1"
            ))
            .bind(id_or_name)
            .fetch_optional(&mut tx)
            .await
            .map_err(StoreError::db("look up an API key"))?;
            if row.is_some() {
                break;
            }
        }
        let Some(row) = row else {
            return Err(StoreError::not_found(format!(
                "API key `{id_or_name}` (no key has this id or name)"
            )));
        };
        let mut key = row.into_key()?;
        if key.revoked_at.is_none() && key.role == Role::Admin {
            // Without an active admin key nobody could manage keys over the API any
            // more. The no-op UPDATE locks the active admin rows (PostgreSQL; SQLite
            // holds the write lock already), so two admins revoking each other at once
            // cannot both succeed.
            sql("UPDATE api_keys SET role = role WHERE role = 'admin' AND revoked_at IS NULL")
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("lock the active admin keys"))?;
            let (others,): (i64,) = sql("SELECT COUNT(*) FROM api_keys \
                 WHERE role = 'admin' AND revoked_at IS NULL AND id <> $1")
            .bind(&key.id)
            .fetch_one(&mut tx)
            .await
            .map_err(StoreError::db("count the active admin keys"))?;
            if others == 0 {
                return Err(StoreError::Conflict(format!(
                    "`{}` is the last active admin key; create another admin key \
                     first (`tradeloom keys create --name NAME --role admin`)",
                    key.name
                )));
            }
        }
        if key.revoked_at.is_none() {
            let at = now();
            sql("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
                .bind(&key.id)
                .bind(at)
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("revoke an API key"))?;
            key.revoked_at = Some(at);
        }
        tx.commit()
            .await
            .map_err(StoreError::db("commit an API key revocation"))?;
        Ok(key)
    }

    async fn touch_api_key(&self, id: &str) -> Result<(), StoreError> {
        let done = sql("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now())
            .execute(self.pool())
            .await
            .map_err(StoreError::db("record an API key's use"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("API key {id}")));
        }
        Ok(())
    }
}
