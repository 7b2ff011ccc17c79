//! The units of work that cross aggregates, each in one transaction: a job
//! that ends settles the orders it was pricing and records the farm's
//! event; a replayed dead letter moves its failed orders to the new job; a
//! job answered from the quote cache records its event too.
//!
//! They are here, named, rather than hidden in the jobs' SQL: whoever reads
//! `apply_result` sees every table it writes.

use std::time::Duration;

use scheduler::{FailureKind, ResultEvent, ResultMessage};
use sqlx::Row;

use super::column::Text;

use super::{
    Applied, DeadLetter, JOB_COLUMNS, JobRow, JobStatus, Replay, Store, StoreError, insert_answered_job_tx,
    insert_event, insert_job_tx, insert_outbox, job_from_row, jobs_destination,
};
use crate::events::PricingOutcome;

impl Store {
    /// For a broker that forgets on restart (the in-process queue): gives
    /// every unfinished job that has no unsent outbox row a fresh one, so the
    /// relay publishes it again. A job that has already been delivered
    /// `delivery_limit` times (it keeps killing the process) is failed
    /// instead, as RabbitMQ would dead-letter it. Returns (requeued, failed).
    pub async fn requeue_unfinished(
        &self,
        payload_of: impl Fn(&JobRow) -> String,
        delivery_limit: u32,
        now_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM pricing_jobs j WHERE status IN ('queued', 'running') \
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.job_id AND o.sent_at_ms IS NULL)"
        )))
        .fetch_all(&mut *tx)
        .await?;
        let (mut requeued, mut failed) = (0, 0);
        for row in &rows {
            let job = job_from_row(row)?;
            if job.deliveries >= i64::from(delivery_limit) {
                let message = format!(
                    "dead-lettered: delivered {} times, and each time the farm stopped before it ended",
                    job.deliveries
                );
                fail_job(&mut tx, &job.job_id, FailureKind::DeadLettered, &message, now_ms).await?;
                failed += 1;
            } else {
                insert_outbox(&mut tx, jobs_destination(job.lane), &job.job_id, &payload_of(&job), now_ms).await?;
                // Its runner was in the process that stopped: the next start
                // takes it over at once instead of waiting for it to go stale.
                sqlx::query("UPDATE pricing_jobs SET worker = NULL WHERE job_id = $1 AND status = 'running'")
                    .bind(&job.job_id)
                    .execute(&mut *tx)
                    .await?;
                requeued += 1;
            }
        }
        tx.commit().await?;
        Ok((requeued, failed))
    }

    /// Writes a job that a cached quote already answers: succeeded at once,
    /// under the same key, with nothing for the queue.
    pub async fn create_answered_job(&self, job: &JobRow, quote: &str, quote_key: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_answered_job_tx(&mut tx, job, quote, quote_key).await?;
        crate::events::priced_from_cache(&mut tx, &job.job_id, quote, job.created_at_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies a worker's event to its job. Idempotent: a job only moves
    /// forward (queued, running, then succeeded, failed or cancelled), so a
    /// redelivered or out-of-order event changes nothing. Each change is
    /// written to the job's events in the same transaction.
    ///
    /// A job has one runner at a time. A start from another worker while the
    /// runner has reported within `stale_after` (judged at the start's own
    /// time) changes nothing and is answered [`Applied::RunningElsewhere`];
    /// once the runner is silent that long, the start takes the job over.
    pub async fn apply_result(&self, message: &ResultMessage, stale_after: Duration) -> Result<Applied, StoreError> {
        let at = message.at_ms;
        let job_id = &message.job_id;
        let mut tx = self.begin_write().await?;
        let (done, event) = match &message.event {
            ResultEvent::Started { worker, deliveries, .. } => {
                let deliveries = i64::try_from(*deliveries).unwrap_or(i64::MAX).saturating_add(1);
                let before = sqlx::query(
                    "SELECT status, worker, deliveries, \
                            COALESCE(heartbeat_at_ms, started_at_ms, updated_at_ms) AS heard_at_ms \
                     FROM pricing_jobs WHERE job_id = $1",
                )
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| -> Result<_, sqlx::Error> {
                    let Text(status) = r.try_get::<Text<JobStatus>, _>("status")?;
                    let runner: Option<String> = r.try_get("worker")?;
                    let heard_at_ms: Option<i64> = r.try_get("heard_at_ms")?;
                    let counted: i64 = r.try_get("deliveries")?;
                    Ok((status, runner.unwrap_or_default(), heard_at_ms.unwrap_or(0), counted))
                })
                .transpose()?;
                if let Some((JobStatus::Running, runner, heard_at_ms, counted)) = &before {
                    if runner == worker && deliveries <= *counted {
                        // The runner asking again (its answer was lost): it
                        // is alive, and nothing else changes. (A later
                        // delivery under the same name is a process that
                        // restarted in its place: a start like any other.)
                        sqlx::query(
                            "UPDATE pricing_jobs SET heartbeat_at_ms = $2 \
                             WHERE job_id = $1 AND (heartbeat_at_ms IS NULL OR heartbeat_at_ms < $2)",
                        )
                        .bind(job_id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        return Ok(Applied::Changed);
                    }
                    // No runner named: the farm that ran it restarted (see
                    // `requeue_unfinished`), so nobody is at it.
                    let silent_since = at.saturating_sub(stale_after.as_millis() as i64);
                    if !runner.is_empty() && runner != worker && *heard_at_ms >= silent_since {
                        tx.commit().await?;
                        return Ok(Applied::RunningElsewhere { runner: runner.clone() });
                    }
                }
                let done = sqlx::query(
                    "UPDATE pricing_jobs SET status = 'running', started_at_ms = COALESCE(started_at_ms, $2), \
                            heartbeat_at_ms = $2, updated_at_ms = $2, worker = $3, stage = 'fetching', percent = 0, \
                            deliveries = CASE WHEN deliveries < $4 THEN $4 ELSE deliveries + 1 END \
                     WHERE job_id = $1 AND status IN ('queued', 'running')",
                )
                .bind(job_id)
                .bind(at)
                .bind(worker)
                .bind(deliveries)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    tx.commit().await?;
                    return Ok(match before.map(|(status, ..)| status) {
                        Some(JobStatus::Cancelled) => Applied::StartedCancelled,
                        Some(JobStatus::Succeeded | JobStatus::Failed) => Applied::StartedFinished,
                        _ => Applied::Stale,
                    });
                }
                if matches!(before, Some((JobStatus::Running, ..))) {
                    // Taken over from a runner gone silent (a worker that
                    // died): recorded like any start, and counted.
                    insert_event(&mut tx, job_id, "started", at).await?;
                    tx.commit().await?;
                    return Ok(Applied::StartedAgain);
                }
                (done, "started")
            }
            ResultEvent::Progress { stage, percent, worker } => {
                // Progress is not an event worth a row of its own. Only the
                // runner's keeps the job alive; an older worker's (no name)
                // is taken for the runner's.
                let done = sqlx::query(
                    "UPDATE pricing_jobs SET stage = $2, percent = $3, heartbeat_at_ms = $4 \
                     WHERE job_id = $1 AND status = 'running' AND (heartbeat_at_ms IS NULL OR heartbeat_at_ms <= $4) \
                       AND ($5 = '' OR worker IS NULL OR worker = $5)",
                )
                .bind(job_id)
                .bind(stage.as_str())
                .bind(i64::from(*percent))
                .bind(at)
                .bind(worker)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    tx.commit().await?;
                    return Ok(Applied::Changed);
                }
                // A worker still computing a job another has taken over, or
                // one whose result is in.
                let now = sqlx::query("SELECT status, worker FROM pricing_jobs WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| -> Result<_, sqlx::Error> {
                        let Text(status) = r.try_get::<Text<JobStatus>, _>("status")?;
                        Ok((status, r.try_get::<Option<String>, _>("worker")?.unwrap_or_default()))
                    })
                    .transpose()?;
                tx.commit().await?;
                return Ok(match now {
                    _ if worker.is_empty() => Applied::Stale,
                    Some((JobStatus::Running, runner)) if runner != *worker => Applied::NotTheRunner { runner },
                    Some((JobStatus::Succeeded | JobStatus::Failed, _)) => Applied::ProgressAfterEnd,
                    _ => Applied::Stale,
                });
            }
            ResultEvent::Succeeded { quote, quote_key } => {
                let document = serde_json::to_string(quote).expect("quote documents always serialize");
                let done = sqlx::query(
                    "UPDATE pricing_jobs SET status = 'succeeded', quote = $2, quote_key = $4, finished_at_ms = $3, \
                            updated_at_ms = $3, stage = NULL, percent = 100 \
                     WHERE job_id = $1 AND status IN ('queued', 'running')",
                )
                .bind(job_id)
                .bind(&document)
                .bind(at)
                .bind(quote_key.clone())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    let priced = Ok((document.as_str(), quote.total, quote.currency.as_str()));
                    crate::orders::settle_job(&mut tx, job_id, priced, at).await?;
                    let outcome = PricingOutcome::Succeeded { total: quote.total, currency: &quote.currency };
                    crate::events::pricing_ended(&mut tx, job_id, outcome, at).await?;
                }
                (done, "succeeded")
            }
            ResultEvent::Failed { error } => {
                (fail_job(&mut tx, job_id, error.kind, &error.message, at).await?, "failed")
            }
            ResultEvent::Released { worker } => {
                let done = sqlx::query(
                    "UPDATE pricing_jobs SET worker = NULL WHERE job_id = $1 AND status = 'running' AND worker = $2",
                )
                .bind(job_id)
                .bind(worker)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(if done.rows_affected() == 1 { Applied::Changed } else { Applied::Stale });
            }
            // The API cancels; a worker's word only confirms it.
            ResultEvent::Cancelled => {
                tx.commit().await?;
                return Ok(Applied::Stale);
            }
        };
        let applied = if done.rows_affected() == 1 {
            insert_event(&mut tx, job_id, event, at).await?;
            Applied::Changed
        } else {
            Applied::Stale
        };
        tx.commit().await?;
        Ok(applied)
    }

    /// Records a dead letter and, when it names a job that is still open,
    /// fails the job with the reason, in one transaction.
    pub async fn record_dead_letter(&self, letter: &DeadLetter, now_ms: i64) -> Result<Applied, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO dead_letters (job_id, queue, reason, payload, received_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&letter.job_id)
        .bind(&letter.queue)
        .bind(&letter.reason)
        .bind(&letter.payload)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let mut applied = Applied::Stale;
        if let Some(job_id) = &letter.job_id {
            let message = match letter.reason.as_str() {
                "delivery_limit" => "dead-lettered: the job ended its worker on every delivery (a crash or out of \
                                     memory) until the queue's delivery limit"
                    .to_string(),
                "rejected" => "dead-lettered: a worker could not read the job message".to_string(),
                other => format!("dead-lettered ({other})"),
            };
            let done = fail_job(&mut tx, job_id, FailureKind::DeadLettered, &message, now_ms).await?;
            if done.rows_affected() == 1 {
                insert_event(&mut tx, job_id, "dead_lettered", now_ms).await?;
                applied = Applied::Changed;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// Replays dead letter `id`: queues a new job with the dead job's inputs
    /// (through the outbox, like any job) and marks the letter replayed by
    /// it, in one transaction. A letter is replayed once: a second replay, or
    /// two at once, answer with the job the first queued.
    pub async fn replay_dead_letter(&self, id: i64, now_ms: i64) -> Result<Replay, StoreError> {
        let new_job_id = uuid::Uuid::now_v7().to_string();
        let new_job_id = new_job_id.as_str();
        let Some(letter) = self.dead_letter(id).await? else { return Ok(Replay::NotFound) };
        if letter.replayed_at_ms.is_some() {
            return Ok(Replay::AlreadyReplayed { job_id: letter.replay_job_id });
        }
        let Some(job_id) = &letter.job_id else { return Ok(Replay::NoJob) };
        let Some(dead) = self.job(job_id).await? else { return Ok(Replay::NoJob) };
        let mut job =
            JobRow::queued(new_job_id.to_string(), dead.model_id, dead.material, dead.quantity, dead.lane, now_ms);
        job.colour = dead.colour;
        job.owner_key_id = dead.owner_key_id;
        let mut tx = self.begin_write().await?;
        // The guard on `replayed_at_ms` makes the replay happen once, however
        // many run at the same time.
        let marked = sqlx::query(
            "UPDATE dead_letters SET replayed_at_ms = $1, replay_job_id = $2 WHERE id = $3 AND replayed_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(new_job_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            drop(tx);
            let replayed = self.dead_letter(id).await?.and_then(|l| l.replay_job_id);
            return Ok(Replay::AlreadyReplayed { job_id: replayed });
        }
        insert_job_tx(&mut tx, &job, &job.message()).await?;
        crate::orders::hand_to_replay(&mut tx, job_id, new_job_id, now_ms).await?;
        tx.commit().await?;
        Ok(Replay::Queued { job_id: job.job_id })
    }
}

async fn fail_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    kind: FailureKind,
    message: &str,
    at: i64,
) -> Result<sqlx::any::AnyQueryResult, StoreError> {
    let done = sqlx::query(
        "UPDATE pricing_jobs SET status = 'failed', error_kind = $2, error_message = $3, stage = NULL, \
                finished_at_ms = $4, updated_at_ms = $4 \
         WHERE job_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(job_id)
    .bind(Text(kind))
    .bind(message)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    // The orders it was pricing fail with it.
    if done.rows_affected() == 1 {
        crate::orders::settle_job(tx, job_id, Err(message), at).await?;
        crate::events::pricing_ended(tx, job_id, PricingOutcome::Failed { kind: kind.as_str(), message }, at).await?;
    }
    Ok(done)
}
