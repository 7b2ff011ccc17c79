//! The storage seam: one SQL store over PostgreSQL (production) or SQLite
//! (embedded default), through sqlx's `Any` driver.
//!
//! The queries are written once in the SQL both engines share (`$n`
//! parameters, `ON CONFLICT`, `RETURNING`). The one place they differ is the
//! outbox claim, where PostgreSQL uses `FOR UPDATE SKIP LOCKED` so several API
//! replicas can relay at once without publishing the same row twice.

use std::path::Path;

use scheduler::{JobFailure, ResultEvent, ResultMessage};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// The columns `job_from_row` reads, in every query that loads a job.
const JOB_COLUMNS: &str = "job_id, model_id, material, colour, quantity, status, quote, error_kind, error_message, \
                           created_at_ms, updated_at_ms";

/// Outbox destination for pricing jobs; the relay maps it to a queue name.
pub const JOBS_DESTINATION: &str = "jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
#[error("database error: {0}")]
pub struct StoreError(#[from] sqlx::Error);

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self(sqlx::Error::Migrate(Box::new(e)))
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub model_id: String,
    pub size_bytes: i64,
    pub triangles: i64,
    pub format: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub job_id: String,
    pub model_id: String,
    pub material: String,
    pub colour: Option<String>,
    pub quantity: i64,
    pub status: String,
    pub quote: Option<String>,
    pub error: Option<JobFailure>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub destination: String,
    pub payload: String,
}

/// What applying a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The job's row changed.
    Changed,
    /// The job was already past this event (a redelivered or late message).
    Stale,
}

impl Store {
    /// Connects to a `postgres://` or `sqlite://` URL and runs the engine's
    /// migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") { Engine::Sqlite } else { Engine::Postgres };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        let store = Self { pool, engine };
        match engine {
            Engine::Postgres => sqlx::migrate!("./migrations/postgres").run(&store.pool).await?,
            Engine::Sqlite => {
                // WAL lets readers run while the relay or result consumer writes.
                sqlx::query("PRAGMA journal_mode = WAL").execute(&store.pool).await?;
                sqlx::migrate!("./migrations/sqlite").run(&store.pool).await?;
            }
        }
        Ok(store)
    }

    /// The embedded database file inside `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("farm.db").display())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn model(&self, model_id: &str) -> Result<Option<ModelRow>, StoreError> {
        let row = sqlx::query(
            "SELECT model_id, size_bytes, triangles, format, created_at_ms FROM models WHERE model_id = $1",
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
            })
        })
        .transpose()
    }

    /// Records a model; returns false when it was already known.
    pub async fn insert_model(&self, model: &ModelRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO models (model_id, size_bytes, triangles, format, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model_id) DO NOTHING",
        )
        .bind(&model.model_id)
        .bind(model.size_bytes)
        .bind(model.triangles)
        .bind(&model.format)
        .bind(model.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a queued job and its outbox row in one transaction: either both
    /// exist, or neither does.
    pub async fn create_job(&self, job: &JobRow, payload: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO pricing_jobs (job_id, model_id, material, colour, quantity, status, created_at_ms, \
                                       updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&job.job_id)
        .bind(&job.model_id)
        .bind(&job.material)
        .bind(&job.colour)
        .bind(job.quantity)
        .bind(&job.status)
        .bind(job.created_at_ms)
        .execute(&mut *tx)
        .await?;
        insert_outbox(&mut tx, &job.job_id, payload, job.created_at_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The quote of a succeeded job priced under `quote_key`, if any.
    pub async fn cached_quote(&self, quote_key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT quote FROM pricing_jobs WHERE quote_key = $1 AND status = 'succeeded' \
             ORDER BY finished_at_ms DESC LIMIT 1",
        )
        .bind(quote_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("quote")).transpose()?)
    }

    /// Writes a job that a cached quote already answers: succeeded at once,
    /// under the same key, with nothing for the queue.
    pub async fn create_answered_job(&self, job: &JobRow, quote: &str, quote_key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pricing_jobs (job_id, model_id, material, colour, quantity, status, quote, quote_key, \
                                       created_at_ms, updated_at_ms, finished_at_ms) \
             VALUES ($1, $2, $3, $4, $5, 'succeeded', $6, $7, $8, $8, $8)",
        )
        .bind(&job.job_id)
        .bind(&job.model_id)
        .bind(&job.material)
        .bind(&job.colour)
        .bind(job.quantity)
        .bind(quote)
        .bind(quote_key)
        .bind(job.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn job(&self, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM pricing_jobs WHERE job_id = $1")))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose().map_err(StoreError)
    }

    /// Claims up to `limit` unsent outbox rows, oldest first, inside a
    /// transaction. The relay publishes them, marks each one sent, and
    /// commits. A row whose publish fails stays unsent for the next pass; a
    /// crash after a publish but before the commit publishes the row again,
    /// which consumers tolerate (delivery is at least once).
    pub async fn claim_outbox(&self, limit: i64) -> Result<OutboxBatch, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claim = match self.engine {
            Engine::Postgres => {
                "SELECT id, destination, payload FROM outbox WHERE sent_at_ms IS NULL \
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
            }
            Engine::Sqlite => {
                "SELECT id, destination, payload FROM outbox WHERE sent_at_ms IS NULL ORDER BY id LIMIT $1"
            }
        };
        let rows = sqlx::query(claim)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(OutboxRow {
                    id: row.try_get("id")?,
                    destination: row.try_get("destination")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(OutboxBatch { tx, rows })
    }

    /// Unsent outbox rows; the relay's backlog.
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at_ms IS NULL").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// For a broker that forgets on restart (the in-process queue): gives
    /// every unfinished job that has no unsent outbox row a fresh one, so the
    /// relay publishes it again. Returns how many were re-queued.
    pub async fn requeue_unfinished(
        &self,
        payload_of: impl Fn(&JobRow) -> String,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM pricing_jobs j WHERE status IN ('queued', 'running') \
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.job_id AND o.sent_at_ms IS NULL)"
        )))
        .fetch_all(&mut *tx)
        .await?;
        let mut requeued = 0;
        for row in &rows {
            let job = job_from_row(row)?;
            insert_outbox(&mut tx, &job.job_id, &payload_of(&job), now_ms).await?;
            requeued += 1;
        }
        tx.commit().await?;
        Ok(requeued)
    }

    /// Applies a worker's event to its job. Idempotent: a job only moves
    /// forward (queued, running, then succeeded or failed), so a redelivered
    /// or out-of-order event changes nothing.
    pub async fn apply_result(&self, message: &ResultMessage) -> Result<Applied, StoreError> {
        let at = message.at_ms;
        let query = match &message.event {
            ResultEvent::Started => sqlx::query(
                "UPDATE pricing_jobs SET status = 'running', started_at_ms = $2, updated_at_ms = $2 \
                 WHERE job_id = $1 AND status = 'queued'",
            )
            .bind(&message.job_id)
            .bind(at),
            ResultEvent::Succeeded { quote, quote_key } => sqlx::query(
                "UPDATE pricing_jobs SET status = 'succeeded', quote = $2, quote_key = $4, finished_at_ms = $3, \
                        updated_at_ms = $3 \
                 WHERE job_id = $1 AND status IN ('queued', 'running')",
            )
            .bind(&message.job_id)
            .bind(serde_json::to_string(quote).expect("quote documents always serialize"))
            .bind(at)
            .bind(quote_key.clone()),
            ResultEvent::Failed { error } => sqlx::query(
                "UPDATE pricing_jobs SET status = 'failed', error_kind = $2, error_message = $3, \
                        finished_at_ms = $4, updated_at_ms = $4 \
                 WHERE job_id = $1 AND status IN ('queued', 'running')",
            )
            .bind(&message.job_id)
            .bind(&error.kind)
            .bind(&error.message)
            .bind(at),
        };
        let done = query.execute(&self.pool).await?;
        Ok(if done.rows_affected() == 1 { Applied::Changed } else { Applied::Stale })
    }
}

/// Outbox rows claimed by one relay pass; see [`Store::claim_outbox`].
#[derive(Debug)]
pub struct OutboxBatch {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    pub rows: Vec<OutboxRow>,
}

impl OutboxBatch {
    pub async fn mark_sent(&mut self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET sent_at_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

async fn insert_outbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    payload: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO outbox (destination, job_id, payload, created_at_ms) VALUES ($1, $2, $3, $4)")
        .bind(JOBS_DESTINATION)
        .bind(job_id)
        .bind(payload)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn job_from_row(r: &AnyRow) -> Result<JobRow, sqlx::Error> {
    let error_kind: Option<String> = r.try_get("error_kind")?;
    let error_message: Option<String> = r.try_get("error_message")?;
    Ok(JobRow {
        job_id: r.try_get("job_id")?,
        model_id: r.try_get("model_id")?,
        material: r.try_get("material")?,
        colour: r.try_get("colour")?,
        quantity: r.try_get("quantity")?,
        status: r.try_get("status")?,
        quote: r.try_get("quote")?,
        error: error_kind.map(|kind| JobFailure { kind, message: error_message.unwrap_or_default() }),
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}
