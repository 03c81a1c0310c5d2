//! [`DefinitionStore`]: named, versioned agents and skills. Versions never change once written;
//! a delete is soft, so version numbers are never reused.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::definition::{
    Author, Definition, DefinitionKind, DefinitionVersion, check_definition_name,
};
use crate::error::StoreError;
use crate::sql::{Db, now, page, sql, sql_offset};

#[derive(FromRow)]
struct DefinitionRow {
    name: String,
    latest_version: i32,
    owner_key_id: Option<String>,
    owner_name: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl DefinitionRow {
    fn into_definition(self, kind: DefinitionKind) -> Definition {
        Definition {
            kind,
            name: self.name,
            latest_version: u32::try_from(self.latest_version).unwrap_or(0),
            owner_key_id: self.owner_key_id,
            owner_name: self.owner_name,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(FromRow)]
struct VersionRow {
    name: String,
    version: i32,
    body: String,
    body_hash: String,
    by_name: String,
    created_at: DateTime<Utc>,
}

impl VersionRow {
    fn into_version(self, kind: DefinitionKind) -> DefinitionVersion {
        DefinitionVersion {
            kind,
            name: self.name,
            version: u32::try_from(self.version).unwrap_or(0),
            body: self.body,
            created_by: self.by_name,
            created_at: self.created_at,
        }
    }
}

const DEFINITION_COLUMNS: &str =
    "name, latest_version, owner_key_id, owner_name, created_at, updated_at, deleted_at";
const VERSION_COLUMNS: &str = "name, version, body, body_hash, by_name, created_at";

fn absent(kind: DefinitionKind, name: &str) -> StoreError {
    StoreError::not_found(format!("{kind} `{name}`"))
}

/// Agents and skills.
#[async_trait]
pub trait DefinitionStore: Send + Sync {
    /// Version 1 of a new definition written by `by`, who owns it.
    /// [`StoreError::Conflict`] if a definition of this kind has the name;
    /// [`StoreError::Invalid`] for a bad name. A deleted name comes back with its next version
    /// number (numbers are never reused) and `by` as its owner.
    async fn create_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        body: &str,
        by: &Author,
    ) -> Result<DefinitionVersion, StoreError>;

    /// The next version, or the latest unchanged (`false`) when `body` is the same text.
    /// [`StoreError::NotFound`] if absent or deleted.
    async fn update_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        body: &str,
        by: &Author,
    ) -> Result<(DefinitionVersion, bool), StoreError>;

    /// [`StoreError::NotFound`] if absent or deleted.
    async fn definition(&self, kind: DefinitionKind, name: &str) -> Result<Definition, StoreError>;

    /// Definitions of `kind` by name, deleted ones left out.
    async fn list_definitions(
        &self,
        kind: DefinitionKind,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Definition>, StoreError>;

    /// One version (the latest when `None`). [`StoreError::NotFound`] if the definition is
    /// absent or deleted or has no such version.
    async fn definition_version(
        &self,
        kind: DefinitionKind,
        name: &str,
        version: Option<u32>,
    ) -> Result<DefinitionVersion, StoreError>;

    /// Every version, oldest first.
    async fn definition_versions(
        &self,
        kind: DefinitionKind,
        name: &str,
    ) -> Result<Vec<DefinitionVersion>, StoreError>;

    /// Marks a definition deleted; its versions stay. [`StoreError::NotFound`] if absent or
    /// already deleted.
    async fn delete_definition(&self, kind: DefinitionKind, name: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl<D: Db> DefinitionStore for D {
    async fn create_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        body: &str,
        by: &Author,
    ) -> Result<DefinitionVersion, StoreError> {
        check_definition_name(kind, name)?;
        let at = now();
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin creating a definition"))?;
        let existing: Option<DefinitionRow> = sql(format!(
            "SELECT {DEFINITION_COLUMNS} FROM definitions WHERE kind = $1 AND name = $2"
        ))
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(&mut tx)
        .await
        .map_err(StoreError::db("read a definition"))?;
        let version = match existing {
            Some(row) if row.deleted_at.is_none() => {
                return Err(StoreError::Conflict(format!(
                    "{kind} `{name}` exists; update it instead"
                )));
            }
            Some(row) => {
                // A deleted name comes back: the next number, a new owner. The WHERE makes a
                // concurrent revival of the same name update nothing here.
                let version = row.latest_version + 1;
                let revived = sql(
                    "UPDATE definitions SET latest_version = $3, owner_key_id = $4, \
                     owner_name = $5, created_at = $6, updated_at = $6, deleted_at = NULL \
                     WHERE kind = $1 AND name = $2 AND deleted_at IS NOT NULL \
                     AND latest_version = $7",
                )
                .bind(kind.as_str())
                .bind(name)
                .bind(version)
                .bind(by.key_id.clone())
                .bind(&by.name)
                .bind(at)
                .bind(row.latest_version)
                .execute(&mut tx)
                .await
                .map_err(StoreError::db("revive a definition"))?;
                if revived.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!(
                        "{kind} `{name}` was created meanwhile; update it instead"
                    )));
                }
                version
            }
            None => {
                sql(
                    "INSERT INTO definitions (kind, name, latest_version, owner_key_id, \
                     owner_name, created_at, updated_at) VALUES ($1, $2, 1, $3, $4, $5, $5)",
                )
                .bind(kind.as_str())
                .bind(name)
                .bind(by.key_id.clone())
                .bind(&by.name)
                .bind(at)
                .execute(&mut tx)
                .await
                .map_err(|e| match StoreError::db("create a definition")(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("{kind} `{name}` exists; update it instead"))
                    }
                    other => other,
                })?;
                1
            }
        };
        insert_version(&mut tx, kind, name, version, body, by, at).await?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a new definition"))?;
        Ok(DefinitionVersion {
            kind,
            name: name.to_string(),
            version: u32::try_from(version).unwrap_or(0),
            body: body.to_string(),
            created_by: by.name.clone(),
            created_at: at,
        })
    }

    async fn update_definition(
        &self,
        kind: DefinitionKind,
        name: &str,
        body: &str,
        by: &Author,
    ) -> Result<(DefinitionVersion, bool), StoreError> {
        let at = now();
        let mut tx = self
            .begin()
            .await
            .map_err(StoreError::db("begin updating a definition"))?;
        // Takes the row lock on PostgreSQL first, so concurrent updates get distinct numbers.
        let locked = sql("UPDATE definitions SET updated_at = updated_at \
             WHERE kind = $1 AND name = $2 AND deleted_at IS NULL")
        .bind(kind.as_str())
        .bind(name)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("lock a definition"))?;
        if locked.rows_affected() == 0 {
            return Err(absent(kind, name));
        }
        let latest: VersionRow = sql(format!(
            "SELECT {VERSION_COLUMNS} FROM definition_versions \
             WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
        ))
        .bind(kind.as_str())
        .bind(name)
        .fetch_one(&mut tx)
        .await
        .map_err(StoreError::db("read a definition's latest version"))?;
        if latest.body_hash == crate::blob_hash(body) {
            return Ok((latest.into_version(kind), false));
        }
        let version = latest.version + 1;
        insert_version(&mut tx, kind, name, version, body, by, at).await?;
        sql(
            "UPDATE definitions SET latest_version = $3, updated_at = $4 \
             WHERE kind = $1 AND name = $2",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(version)
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(StoreError::db("update a definition"))?;
        tx.commit()
            .await
            .map_err(StoreError::db("commit a definition version"))?;
        Ok((
            DefinitionVersion {
                kind,
                name: name.to_string(),
                version: u32::try_from(version).unwrap_or(0),
                body: body.to_string(),
                created_by: by.name.clone(),
                created_at: at,
            },
            true,
        ))
    }

    async fn definition(&self, kind: DefinitionKind, name: &str) -> Result<Definition, StoreError> {
        let row: Option<DefinitionRow> = sql(format!(
            "SELECT {DEFINITION_COLUMNS} FROM definitions \
             WHERE kind = $1 AND name = $2 AND deleted_at IS NULL"
        ))
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read a definition"))?;
        row.map(|r| r.into_definition(kind))
            .ok_or_else(|| absent(kind, name))
    }

    async fn list_definitions(
        &self,
        kind: DefinitionKind,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Definition>, StoreError> {
        let rows: Vec<DefinitionRow> = sql(format!(
            "SELECT {DEFINITION_COLUMNS} FROM definitions \
             WHERE kind = $1 AND deleted_at IS NULL ORDER BY name LIMIT $2 OFFSET $3"
        ))
        .bind(kind.as_str())
        .bind(page(limit))
        .bind(sql_offset(offset))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list definitions"))?;
        Ok(rows.into_iter().map(|r| r.into_definition(kind)).collect())
    }

    async fn definition_version(
        &self,
        kind: DefinitionKind,
        name: &str,
        version: Option<u32>,
    ) -> Result<DefinitionVersion, StoreError> {
        let definition = self.definition(kind, name).await?;
        let wanted = version.unwrap_or(definition.latest_version);
        let row: Option<VersionRow> = sql(format!(
            "SELECT {VERSION_COLUMNS} FROM definition_versions \
             WHERE kind = $1 AND name = $2 AND version = $3"
        ))
        .bind(kind.as_str())
        .bind(name)
        .bind(i32::try_from(wanted).unwrap_or(i32::MAX))
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::db("read a definition version"))?;
        row.map(|r| r.into_version(kind)).ok_or_else(|| {
            StoreError::not_found(format!(
                "version {wanted} of {kind} `{name}` (its latest is {})",
                definition.latest_version
            ))
        })
    }

    async fn definition_versions(
        &self,
        kind: DefinitionKind,
        name: &str,
    ) -> Result<Vec<DefinitionVersion>, StoreError> {
        self.definition(kind, name).await?;
        let rows: Vec<VersionRow> = sql(format!(
            "SELECT {VERSION_COLUMNS} FROM definition_versions \
             WHERE kind = $1 AND name = $2 ORDER BY version"
        ))
        .bind(kind.as_str())
        .bind(name)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::db("list definition versions"))?;
        Ok(rows.into_iter().map(|r| r.into_version(kind)).collect())
    }

    async fn delete_definition(&self, kind: DefinitionKind, name: &str) -> Result<(), StoreError> {
        let done = sql("UPDATE definitions SET deleted_at = $3 \
             WHERE kind = $1 AND name = $2 AND deleted_at IS NULL")
        .bind(kind.as_str())
        .bind(name)
        .bind(now())
        .execute(self.pool())
        .await
        .map_err(StoreError::db("delete a definition"))?;
        if done.rows_affected() == 0 {
            return Err(absent(kind, name));
        }
        Ok(())
    }
}

async fn insert_version<DB: crate::sql::Driver>(
    tx: &mut crate::sql::Tx<DB>,
    kind: DefinitionKind,
    name: &str,
    version: i32,
    body: &str,
    by: &Author,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sql(
        "INSERT INTO definition_versions (kind, name, version, body, body_hash, by_key_id, \
         by_name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(kind.as_str())
    .bind(name)
    .bind(version)
    .bind(body)
    .bind(crate::blob_hash(body))
    .bind(by.key_id.clone())
    .bind(&by.name)
    .bind(at)
    .execute(tx)
    .await
    .map_err(StoreError::db("store a definition version"))?;
    Ok(())
}
