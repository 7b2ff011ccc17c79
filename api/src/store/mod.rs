//! The storage seam: one SQL store over PostgreSQL (production) or SQLite
//! (embedded default), through sqlx's `Any` driver.
//!
//! The queries are written once in the SQL both engines share (`$n`
//! parameters, `ON CONFLICT`, `RETURNING`). The one place they differ is the
//! outbox claim, where PostgreSQL uses `FOR UPDATE SKIP LOCKED` so several API
//! replicas can relay at once without publishing the same row twice.

use std::collections::HashMap;
use std::path::Path;

use scheduler::{FailureKind, JobFailure, JobMessage, Lane};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use self::column::Text;

pub mod column;
mod settle;

/// The columns `job_from_row` reads, in every query that loads a job.
const JOB_COLUMNS: &str = "job_id, model_id, material, colour, quantity, lane, status, quote, error_kind, \
                           error_message, stage, percent, heartbeat_at_ms, worker, deliveries, owner_key_id, \
                           created_at_ms, updated_at_ms, started_at_ms, finished_at_ms";

/// Outbox destination for control broadcasts; job rows use
/// [`jobs_destination`].
pub const CONTROL_DESTINATION: &str = "control";

/// The outbox destination of a lane's job queue.
pub fn jobs_destination(lane: Lane) -> &'static str {
    match lane {
        Lane::Fast => "jobs.fast",
        Lane::Slow => "jobs.slow",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An optimistic update (read, then write only if nothing changed)
    /// lost to concurrent changes every time it was tried.
    #[error("{what} kept changing under {attempts} attempts to update it")]
    Contended { what: String, attempts: u32 },
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Database(sqlx::Error::Migrate(Box::new(e)))
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    engine: Engine,
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub job_id: String,
    pub model_id: String,
    pub material: String,
    pub colour: Option<String>,
    pub quantity: i64,
    pub lane: Lane,
    pub status: JobStatus,
    pub quote: Option<String>,
    pub error: Option<JobFailure>,
    /// Where a running job is, as its worker last reported.
    pub stage: Option<String>,
    pub percent: Option<i64>,
    pub heartbeat_at_ms: Option<i64>,
    pub worker: Option<String>,
    /// Deliveries to a worker so far.
    pub deliveries: i64,
    /// The key that submitted it; a seller sees only its own jobs.
    pub owner_key_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// Where a pricing job is. It only moves forward: queued, running, then
/// one of the three ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled];

    /// As stored and shown: `queued`, `running`, `succeeded`, `failed`,
    /// `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Succeeded, failed or cancelled: nothing moves it any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

impl JobRow {
    /// A new job, queued now.
    pub fn queued(job_id: String, model_id: String, material: String, quantity: i64, lane: Lane, now_ms: i64) -> Self {
        Self {
            job_id,
            model_id,
            material,
            colour: None,
            quantity,
            lane,
            status: JobStatus::Queued,
            quote: None,
            error: None,
            stage: None,
            percent: None,
            heartbeat_at_ms: None,
            worker: None,
            deliveries: 0,
            owner_key_id: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            started_at_ms: None,
            finished_at_ms: None,
        }
    }

    /// The queue message that asks a worker to price this job.
    pub fn message(&self) -> String {
        let message = JobMessage {
            job_id: self.job_id.clone(),
            model_id: self.model_id.clone(),
            material: self.material.clone(),
            quantity: u32::try_from(self.quantity).unwrap_or(u32::MAX),
            colour: self.colour.clone(),
            lane: self.lane,
            submitted_at_ms: self.created_at_ms,
        };
        serde_json::to_string(&message).expect("job messages always serialize")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub destination: String,
    pub job_id: String,
    pub payload: String,
    /// The trace context of the request that wrote the row; empty while
    /// tracing is off.
    pub trace_headers: Vec<(String, String)>,
}

/// What applying a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The job's row changed.
    Changed,
    /// The job was already past this event (a redelivered or late message).
    Stale,
    /// A worker started a job that had been cancelled: it must be told again.
    StartedCancelled,
    /// A worker started a job that has finished: it must give it up.
    StartedFinished,
    /// A worker started a job already running (a redelivery after a worker
    /// died or lost its connection, or a message sent twice): recorded.
    StartedAgain,
}

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The job was queued or running, and is now cancelled.
    Now {
        was: String,
    },
    /// It had already ended with this status.
    AlreadyEnded {
        status: String,
    },
    NotFound,
}

/// A message the broker dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub job_id: Option<String>,
    pub queue: String,
    pub reason: String,
    pub payload: String,
}

/// A recorded dead letter, as the operators see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct DeadLetterRow {
    pub id: i64,
    /// The job it failed; none for a result that could not be applied.
    pub job_id: Option<String>,
    /// The queue the broker gave up on it in.
    pub queue: String,
    /// `delivery_limit`, `rejected`, or the intake's reason.
    pub reason: String,
    /// The message as it was sent.
    pub payload: String,
    pub received_at_ms: i64,
    pub replayed_at_ms: Option<i64>,
    /// The job its replay queued.
    pub replay_job_id: Option<String>,
}

/// What replaying a dead letter did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// A new job with the dead job's inputs was queued through the outbox.
    Queued { job_id: String },
    /// It was replayed before: the job that replay queued (none for a
    /// letter marked replayed by hand before replays were recorded).
    AlreadyReplayed { job_id: Option<String> },
    /// No dead letter has this id.
    NotFound,
    /// The letter names no job that can be priced again (a result that
    /// could not be applied, or a message no job came from).
    NoJob,
}

const DEAD_LETTER_COLUMNS: &str = "id, job_id, queue, reason, payload, received_at_ms, replayed_at_ms, replay_job_id";

fn dead_letter_from_row(r: &AnyRow) -> Result<DeadLetterRow, sqlx::Error> {
    Ok(DeadLetterRow {
        id: r.try_get("id")?,
        job_id: r.try_get("job_id")?,
        queue: r.try_get("queue")?,
        reason: r.try_get("reason")?,
        payload: r.try_get("payload")?,
        received_at_ms: r.try_get("received_at_ms")?,
        replayed_at_ms: r.try_get("replayed_at_ms")?,
        replay_job_id: r.try_get("replay_job_id")?,
    })
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

    /// Whether the database at `url` holds a farm's tables, creating and
    /// changing nothing. The commands that read an existing farm (`farm
    /// orders audit`, `farm keys list` and `revoke`) ask first, so a wrong
    /// database URL is refused instead of answered from a new, empty farm.
    pub async fn holds_a_farm(url: &str) -> Result<bool, StoreError> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(url).await?;
        let applied = sqlx::query("SELECT 1 FROM _sqlx_migrations LIMIT 1").fetch_optional(&mut connection).await;
        let _ = connection.close().await;
        Ok(matches!(applied, Ok(Some(_))))
    }

    /// The embedded database file inside `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("farm.db").display())
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), waiting up to the busy timeout for it: a
    /// deferred transaction that read first and then writes fails at once
    /// with "database is locked" when another connection wrote in between,
    /// because SQLite cannot wait on that upgrade.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        }
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

    /// Jobs `key_id` created that are queued or running.
    pub async fn jobs_in_flight(&self, key_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM pricing_jobs WHERE owner_key_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(key_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Writes a queued job and its outbox row in one transaction: either both
    /// exist, or neither does.
    pub async fn create_job(&self, job: &JobRow, payload: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_job_tx(&mut tx, job, payload).await?;
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

    pub async fn job(&self, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM pricing_jobs WHERE job_id = $1")))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose().map_err(StoreError::Database)
    }

    /// Cancels a queued or running job. In the same transaction its unsent
    /// outbox row is dropped (a job not yet relayed never reaches a worker)
    /// and a cancellation for the workers is queued.
    pub async fn cancel_job(&self, job_id: &str, control_payload: &str, now_ms: i64) -> Result<Cancelled, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT status FROM pricing_jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Cancelled::NotFound);
        };
        let was: String = row.try_get("status")?;
        let done = sqlx::query(
            "UPDATE pricing_jobs SET status = 'cancelled', stage = NULL, finished_at_ms = $2, updated_at_ms = $2 \
             WHERE job_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(job_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(Cancelled::AlreadyEnded { status: was });
        }
        let dropped = sqlx::query(
            "UPDATE outbox SET sent_at_ms = $2 WHERE job_id = $1 AND sent_at_ms IS NULL AND destination <> $3",
        )
        .bind(job_id)
        .bind(now_ms)
        .bind(CONTROL_DESTINATION)
        .execute(&mut *tx)
        .await?;
        // Only a job that may be in some worker's hands needs the broadcast.
        if dropped.rows_affected() == 0 {
            insert_outbox(&mut tx, CONTROL_DESTINATION, job_id, control_payload, now_ms).await?;
        }
        insert_event(&mut tx, job_id, "cancelled", now_ms).await?;
        tx.commit().await?;
        Ok(Cancelled::Now { was })
    }

    /// Claims up to `limit` unsent outbox rows, oldest first, inside a
    /// transaction. The relay publishes them, marks each one sent, and
    /// commits. A row whose publish fails stays unsent for the next pass; a
    /// crash after a publish but before the commit publishes the row again,
    /// which consumers tolerate (delivery is at least once).
    pub async fn claim_outbox(&self, limit: i64) -> Result<OutboxBatch, StoreError> {
        let mut tx = self.begin_write().await?;
        let claim = match self.engine {
            Engine::Postgres => {
                "SELECT id, destination, job_id, payload, trace_context FROM outbox WHERE sent_at_ms IS NULL \
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
            }
            Engine::Sqlite => {
                "SELECT id, destination, job_id, payload, trace_context FROM outbox WHERE sent_at_ms IS NULL ORDER BY id LIMIT $1"
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
                    job_id: row.try_get("job_id")?,
                    payload: row.try_get("payload")?,
                    trace_headers: row
                        .try_get::<Option<String>, _>("trace_context")?
                        .and_then(|json| serde_json::from_str::<HashMap<String, String>>(&json).ok())
                        .map(|headers| headers.into_iter().collect())
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(OutboxBatch { tx, rows })
    }

    /// Unsent outbox rows, and the age of the oldest one (ms): the relay's
    /// backlog and lag.
    pub async fn outbox_backlog(&self, now_ms: i64) -> Result<(i64, i64), StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM outbox WHERE sent_at_ms IS NULL")
                .fetch_one(&self.pool)
                .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok((row.try_get("n")?, oldest.map_or(0, |t| (now_ms - t).max(0))))
    }

    /// How long the oldest queued job of `lane` has waited, ms (0 when none).
    pub async fn oldest_queued_age(&self, lane: Lane, now_ms: i64) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT MIN(created_at_ms) AS oldest FROM pricing_jobs WHERE status = 'queued' AND lane = $1")
                .bind(Text(lane))
                .fetch_one(&self.pool)
                .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok(oldest.map_or(0, |t| (now_ms - t).max(0)))
    }

    /// Running jobs whose worker has not reported since `stale_before_ms`:
    /// the worker is probably dead, and the broker will hand the job on.
    pub async fn stale_running(&self, stale_before_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM pricing_jobs WHERE status = 'running' \
             AND COALESCE(heartbeat_at_ms, started_at_ms, updated_at_ms) < $1",
        )
        .bind(stale_before_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Dead letters, oldest first: those not replayed yet, or all of them;
    /// at most `limit`.
    pub async fn dead_letters(&self, include_replayed: bool, limit: i64) -> Result<Vec<DeadLetterRow>, StoreError> {
        let filter = if include_replayed { "" } else { "WHERE replayed_at_ms IS NULL" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters {filter} ORDER BY id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dead_letter_from_row).collect::<Result<_, _>>().map_err(StoreError::Database)
    }

    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterRow>, StoreError> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(dead_letter_from_row).transpose().map_err(StoreError::Database)
    }

    /// Dead letters recorded, by reason.
    pub async fn dead_letter_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT reason, COUNT(*) AS n FROM dead_letters GROUP BY reason ORDER BY reason")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("reason")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

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

    /// The events a job went through, oldest first.
    pub async fn job_events(&self, job_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT event FROM job_events WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get("event")).collect::<Result<_, sqlx::Error>>().map_err(StoreError::Database)
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

/// A queued job with its outbox row and first event, in `tx`.
pub(crate) async fn insert_job_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &JobRow,
    payload: &str,
) -> Result<(), StoreError> {
    insert_job(tx, job, None).await?;
    insert_outbox(tx, jobs_destination(job.lane), &job.job_id, payload, job.created_at_ms).await?;
    insert_event(tx, &job.job_id, "queued", job.created_at_ms).await
}

/// A job a cached quote already answers, in `tx`.
pub(crate) async fn insert_answered_job_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &JobRow,
    quote: &str,
    quote_key: &str,
) -> Result<(), StoreError> {
    insert_job(tx, job, Some((quote, quote_key))).await?;
    insert_event(tx, &job.job_id, "succeeded_from_cache", job.created_at_ms).await
}

async fn insert_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &JobRow,
    answered: Option<(&str, &str)>,
) -> Result<(), StoreError> {
    let (status, quote, quote_key, finished) = match answered {
        Some((quote, key)) => ("succeeded", Some(quote), Some(key), Some(job.created_at_ms)),
        None => (job.status.as_str(), None, None, None),
    };
    sqlx::query(
        "INSERT INTO pricing_jobs (job_id, model_id, material, colour, quantity, lane, status, quote, quote_key, \
                                   created_at_ms, updated_at_ms, finished_at_ms, owner_key_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12)",
    )
    .bind(&job.job_id)
    .bind(&job.model_id)
    .bind(&job.material)
    .bind(&job.colour)
    .bind(job.quantity)
    .bind(Text(job.lane))
    .bind(status)
    .bind(quote)
    .bind(quote_key)
    .bind(job.created_at_ms)
    .bind(finished)
    .bind(&job.owner_key_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_outbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    destination: &str,
    job_id: &str,
    payload: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    // Rows are written inside the request (or the consumer's event) that
    // caused them: its trace goes on with the message.
    let trace = scheduler::trace::current_headers();
    let trace = (!trace.is_empty())
        .then(|| serde_json::to_string(&trace.into_iter().collect::<HashMap<_, _>>()).expect("strings serialize"));
    sqlx::query(
        "INSERT INTO outbox (destination, job_id, payload, created_at_ms, trace_context) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(destination)
    .bind(job_id)
    .bind(payload)
    .bind(now_ms)
    .bind(trace)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    event: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_events (job_id, event, at_ms) VALUES ($1, $2, $3)")
        .bind(job_id)
        .bind(event)
        .bind(at_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
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

fn job_from_row(r: &AnyRow) -> Result<JobRow, sqlx::Error> {
    let error_kind: Option<Text<FailureKind>> = r.try_get("error_kind")?;
    let error_message: Option<String> = r.try_get("error_message")?;
    let Text(lane) = r.try_get("lane")?;
    let Text(status) = r.try_get("status")?;
    Ok(JobRow {
        job_id: r.try_get("job_id")?,
        model_id: r.try_get("model_id")?,
        material: r.try_get("material")?,
        colour: r.try_get("colour")?,
        quantity: r.try_get("quantity")?,
        lane,
        status,
        quote: r.try_get("quote")?,
        error: error_kind.map(|Text(kind)| JobFailure::new(kind, error_message.unwrap_or_default())),
        stage: r.try_get("stage")?,
        percent: r.try_get("percent")?,
        heartbeat_at_ms: r.try_get("heartbeat_at_ms")?,
        worker: r.try_get("worker")?,
        deliveries: r.try_get("deliveries")?,
        owner_key_id: r.try_get("owner_key_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        started_at_ms: r.try_get("started_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
    })
}
