//! The dead letters table: the messages the broker gave up on, as the
//! operators list and show them (replaying one is a unit of work in
//! `settle.rs`).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

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
}
