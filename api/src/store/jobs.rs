//! The pricing jobs table: a job's row, status and events, how one is
//! written with its outbox row, cancelled, and read back.

use scheduler::{FailureKind, JobFailure, JobMessage, Lane};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::column::Text;
use super::outbox::{CONTROL_DESTINATION, insert_outbox, jobs_destination};
use super::{Store, StoreError};

/// The columns `job_from_row` reads, in every query that loads a job.
pub(super) const JOB_COLUMNS: &str = "job_id, model_id, material, colour, quantity, lane, status, quote, error_kind, \
                           error_message, stage, percent, heartbeat_at_ms, worker, deliveries, owner_key_id, \
                           created_at_ms, updated_at_ms, started_at_ms, finished_at_ms";

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
    /// Not a column: the quota of jobs in flight that `owner_key_id` must
    /// stay within when this job is written, checked in the writing
    /// transaction. `None` for a job no key asked for (a replay, a bulk
    /// reprice) and for every job read back.
    pub in_flight_quota: Option<i64>,
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
            in_flight_quota: None,
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

/// What applying a result did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The job's row changed.
    Changed,
    /// The job was already past this event (a redelivered or late message).
    Stale,
    /// A worker started a job that had been cancelled: it must be told again.
    StartedCancelled,
    /// A worker started a job that has finished: it must give it up.
    StartedFinished,
    /// A worker took over a job whose runner had gone silent (a worker that
    /// died, or lost its connection for longer than the stale limit):
    /// recorded as a second start.
    StartedAgain,
    /// A worker started a job that `runner` is running and reporting on (a
    /// redelivery after a lost connection, or a message sent twice):
    /// nothing changed, and the worker must wait.
    RunningElsewhere { runner: String },
    /// Progress from a worker that is not the job's runner (another took the
    /// job over): it must give the job up.
    NotTheRunner { runner: String },
    /// Progress from a worker on a job whose result is in (another worker's
    /// that had taken it over): it must give the job up.
    ProgressAfterEnd,
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

/// A queued job with its outbox row and first event, in `tx`.
pub(crate) async fn insert_job_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &JobRow,
    payload: &str,
) -> Result<(), StoreError> {
    admit_within_quota(tx, job).await?;
    insert_job(tx, job, None).await?;
    insert_outbox(tx, jobs_destination(job.lane), &job.job_id, payload, job.created_at_ms).await?;
    insert_event(tx, &job.job_id, "queued", job.created_at_ms).await
}

/// A key's jobs queued or running (`n`), along the partial index of
/// migration 0014, whose condition this repeats word for word.
const IN_FLIGHT_OF_KEY: &str =
    "SELECT COUNT(*) AS n FROM pricing_jobs WHERE owner_key_id = $1 AND status IN ('queued', 'running')";

/// Refuses `job` when its key already has its quota of jobs queued or
/// running, counted inside `tx`. The count and the insert that follows are
/// one step for every transaction that adds jobs for the key: a quick check
/// before the transaction (`quota::check_jobs`) alone would let a burst of
/// concurrent requests all see room for one more.
async fn admit_within_quota(tx: &mut sqlx::Transaction<'_, sqlx::Any>, job: &JobRow) -> Result<(), StoreError> {
    let (Some(key_id), Some(quota)) = (job.owner_key_id.as_deref(), job.in_flight_quota) else { return Ok(()) };
    if tx.backend_name() == "PostgreSQL" {
        // Under READ COMMITTED two transactions would count the same rows.
        // This lock, held to commit, queues the key's writers, so each one
        // counts what the one before it committed. Other keys' writers hash
        // elsewhere (a collision only makes two keys wait for each other).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("farm.jobs_in_flight.{key_id}"))
            .execute(&mut **tx)
            .await?;
    }
    // SQLite needs no lock: a writing transaction begins IMMEDIATE and so
    // holds the database's one write lock already.
    let row = sqlx::query(IN_FLIGHT_OF_KEY).bind(key_id).fetch_one(&mut **tx).await?;
    let in_flight: i64 = row.try_get("n")?;
    if in_flight >= quota {
        return Err(StoreError::OverQuota { in_flight, quota });
    }
    Ok(())
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

pub(super) async fn insert_event(
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

pub(super) fn job_from_row(r: &AnyRow) -> Result<JobRow, sqlx::Error> {
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
        in_flight_quota: None,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        started_at_ms: r.try_get("started_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
    })
}

impl Store {
    /// Jobs `key_id` created that are queued or running.
    pub async fn jobs_in_flight(&self, key_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(IN_FLIGHT_OF_KEY).bind(key_id).fetch_one(&self.pool).await?;
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

    /// The events a job went through, oldest first.
    pub async fn job_events(&self, job_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT event FROM job_events WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get("event")).collect::<Result<_, sqlx::Error>>().map_err(StoreError::Database)
    }
}
