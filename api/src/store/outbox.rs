//! The outbox: the messages a transaction decided to send (a job to its
//! lane, a cancellation to every worker), written with it and claimed by
//! the relay, which publishes them and marks them sent.

use std::collections::HashMap;

use scheduler::Lane;
use sqlx::Row;

use super::{Engine, Store, StoreError};

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

pub(super) async fn insert_outbox(
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

impl Store {
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
}
