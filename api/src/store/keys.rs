//! The API keys table: credentials as stored (the secret only as its
//! hash), listed, found and revoked.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// A credential, as stored (the secret only as its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub key_id: String,
    pub kind: String,
    pub name: String,
    pub secret_sha256: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

fn key_from_row(r: &AnyRow) -> Result<KeyRow, sqlx::Error> {
    Ok(KeyRow {
        key_id: r.try_get("key_id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        secret_sha256: r.try_get("secret_sha256")?,
        created_at_ms: r.try_get("created_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
    })
}

impl Store {
    pub async fn insert_key(&self, key: &KeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, kind, name, secret_sha256, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.key_id)
        .bind(&key.kind)
        .bind(&key.name)
        .bind(&key.secret_sha256)
        .bind(key.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn key(&self, key_id: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, kind, name, secret_sha256, created_at_ms, revoked_at_ms FROM api_keys WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose().map_err(StoreError::Database)
    }

    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_id, kind, name, secret_sha256, created_at_ms, revoked_at_ms FROM api_keys \
             ORDER BY created_at_ms, key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect::<Result<_, _>>().map_err(StoreError::Database)
    }

    /// Revokes a key; false when there is no such key, or it was revoked before.
    pub async fn revoke_key(&self, key_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at_ms = $2 WHERE key_id = $1 AND revoked_at_ms IS NULL")
            .bind(key_id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
