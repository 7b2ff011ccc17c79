//! The models table: uploaded files' facts, their owners, and what one key
//! uploaded lately (for its quotas).

use sqlx::Row;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub model_id: String,
    pub size_bytes: i64,
    pub triangles: i64,
    pub format: String,
    pub created_at_ms: i64,
    /// Who may use it (a seller's name, or `operator:<name>`, `crm:<name>`);
    /// `None` for models uploaded before models had owners.
    pub owner: Option<String>,
    /// The key that uploaded it, for the per-key quotas.
    pub uploader_key_id: Option<String>,
}

impl Store {
    pub async fn model(&self, model_id: &str) -> Result<Option<ModelRow>, StoreError> {
        let row = sqlx::query(
            "SELECT model_id, size_bytes, triangles, format, created_at_ms, owner, uploader_key_id \
             FROM models WHERE model_id = $1",
        )
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ModelRow {
                model_id: r.try_get("model_id")?,
                size_bytes: r.try_get("size_bytes")?,
                triangles: r.try_get("triangles")?,
                format: r.try_get("format")?,
                created_at_ms: r.try_get("created_at_ms")?,
                owner: r.try_get("owner")?,
                uploader_key_id: r.try_get("uploader_key_id")?,
            })
        })
        .transpose()
    }

    /// The quote document of the latest job that priced `model_id`, if one has.
    pub async fn latest_quote_of_model(&self, model_id: &str) -> Result<Option<String>, StoreError> {
        let quote = sqlx::query_scalar(
            "SELECT quote FROM pricing_jobs WHERE model_id = $1 AND status = 'succeeded' \
             ORDER BY finished_at_ms DESC LIMIT 1",
        )
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(quote.flatten())
    }

    /// Records a model; returns false when it was already known.
    pub async fn insert_model(&self, model: &ModelRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO models (model_id, size_bytes, triangles, format, created_at_ms, owner, uploader_key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (model_id) DO NOTHING",
        )
        .bind(&model.model_id)
        .bind(model.size_bytes)
        .bind(model.triangles)
        .bind(&model.format)
        .bind(model.created_at_ms)
        .bind(&model.owner)
        .bind(&model.uploader_key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What `key_id` uploaded since `since_ms`: new models and their bytes.
    pub async fn uploads_since(&self, key_id: &str, since_ms: i64) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS bytes FROM models \
             WHERE uploader_key_id = $1 AND created_at_ms > $2",
        )
        .bind(key_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("bytes")?))
    }
}
