//! The webhooks' SQL: subscriptions, the fan-out of events into deliveries,
//! claiming due deliveries, and recording each attempt.
//!
//! A delivery is claimed by setting `claimed_until_ms`, not by holding a
//! transaction: a receiver may take seconds to answer, and SQLite has one
//! writer. A sender that dies mid-attempt leaves the claim to run out, and
//! the delivery is tried again.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::store::{Store, StoreError};

/// A subscription, as listed (never with its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookRow {
    pub webhook_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_ms: i64,
}

/// A new subscription.
#[derive(Debug, Clone)]
pub struct NewWebhook<'a> {
    pub webhook_id: &'a str,
    pub key_id: &'a str,
    pub url: &'a str,
    pub events: &'a [String],
    pub secret: &'a str,
    pub now_ms: i64,
}

/// One event for one webhook, with its attempts, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    pub delivery_id: i64,
    pub event_id: String,
    pub event_type: String,
    /// `pending` (waiting for its next attempt), `delivered` or `failed`
    /// (given up on).
    pub status: String,
    pub attempts: i64,
    /// When the next attempt is due, while pending.
    pub next_attempt_ms: Option<i64>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    pub attempt_log: Vec<AttemptRow>,
}

/// What one attempt got back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at_ms: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// Why there was no 2xx answer (a timeout, a refused connection, a
    /// refused address), when there was none.
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery a sender holds, with what it needs to send it.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedDelivery {
    pub(crate) delivery_id: i64,
    pub(crate) webhook_id: String,
    /// The key the webhook belongs to.
    pub(crate) key_id: String,
    pub(crate) event_id: String,
    pub(crate) attempt: i64,
    pub(crate) created_ms: i64,
    pub(crate) url: String,
    pub(crate) secret: String,
    pub(crate) body: String,
    /// The webhook was deleted or its key revoked: give up, do not send.
    pub(crate) withdrawn: bool,
}

/// How an attempt ended, and what happens next.
#[derive(Debug, Clone)]
pub(crate) struct AttemptOutcome {
    pub(crate) at_ms: i64,
    pub(crate) status_code: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) duration_ms: i64,
    pub(crate) next: NextStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NextStep {
    Delivered,
    RetryAt(i64),
    GiveUp,
}

/// Attempts listed per delivery at most.
const ATTEMPTS_LISTED: i64 = 20;

impl Store {
    /// Writes the webhook unless its key already has `max_per_key`; false
    /// when it has. The count and the insert are one transaction, with the
    /// key's row locked on PostgreSQL (SQLite has one writer), so requests
    /// at once cannot pass the limit together.
    pub async fn create_webhook(&self, webhook: &NewWebhook<'_>, max_per_key: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.engine() == crate::store::Engine::Postgres {
            sqlx::query("SELECT key_id FROM api_keys WHERE key_id = $1 FOR UPDATE")
                .bind(webhook.key_id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query(
            "INSERT INTO webhooks (webhook_id, key_id, url, events, secret, created_at_ms) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE (SELECT COUNT(*) FROM webhooks WHERE key_id = $2 AND deleted_at_ms IS NULL) < $7",
        )
        .bind(webhook.webhook_id)
        .bind(webhook.key_id)
        .bind(webhook.url)
        .bind(webhook.events.join(","))
        .bind(webhook.secret)
        .bind(webhook.now_ms)
        .bind(max_per_key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn webhooks_of(&self, key_id: &str) -> Result<Vec<WebhookRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT webhook_id, url, events, created_at_ms FROM webhooks \
             WHERE key_id = $1 AND deleted_at_ms IS NULL ORDER BY created_at_ms, webhook_id",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect::<Result<_, sqlx::Error>>().map_err(StoreError::Database)
    }

    /// The key's webhook `webhook_id`, deleted or not (its deliveries stay
    /// readable), or `None` when it is another key's or does not exist.
    pub async fn webhook_of(&self, key_id: &str, webhook_id: &str) -> Result<Option<WebhookRow>, StoreError> {
        let row = sqlx::query(
            "SELECT webhook_id, url, events, created_at_ms FROM webhooks WHERE key_id = $1 AND webhook_id = $2",
        )
        .bind(key_id)
        .bind(webhook_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(webhook_from_row).transpose().map_err(StoreError::Database)
    }

    /// Deletes the key's webhook and gives up its pending deliveries, in one
    /// transaction. False when the key has no such webhook.
    pub async fn delete_webhook(&self, key_id: &str, webhook_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhooks SET deleted_at_ms = $3 WHERE key_id = $1 AND webhook_id = $2 AND deleted_at_ms IS NULL",
        )
        .bind(key_id)
        .bind(webhook_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', finished_at_ms = $2 \
             WHERE webhook_id = $1 AND status = 'pending'",
        )
        .bind(webhook_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Turns up to `limit` events not fanned out yet into deliveries for
    /// every live webhook that asked for their type and may hear of them,
    /// and marks them fanned out, in one transaction. A webhook hears of an
    /// event about a job or an order its own key made, of its seller's
    /// (by name) when it is a seller's, and of every order's status when
    /// it is the CRM's. A webhook made after an event does not get it.
    /// Returns how many events it took.
    pub(crate) async fn fan_out_events(&self, limit: i64, now_ms: i64) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let seqs: Vec<i64> =
            sqlx::query("SELECT seq FROM farm_events WHERE fanned_out_at_ms IS NULL ORDER BY seq LIMIT $1")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("seq"))
                .collect::<Result<_, _>>()?;
        if seqs.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        // Exactly the events that SELECT saw, by their numbers, not by the
        // range between the first and the last. On PostgreSQL each
        // statement takes its own snapshot, and a sequence number is taken
        // before its transaction commits: an event numbered inside the range
        // that committed after the INSERT and before the UPDATE was marked
        // fanned out with no delivery made, and lost. Such an event is now
        // left for the next pass.
        let listed = (2..seqs.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let insert = format!(
            "INSERT INTO webhook_deliveries (webhook_id, event_seq, event_id, event_type, status, attempts, \
                                             next_attempt_at_ms, created_at_ms) \
             SELECT w.webhook_id, e.seq, e.event_id, e.event_type, 'pending', 0, $1, $1 \
             FROM farm_events e \
             JOIN webhooks w ON w.deleted_at_ms IS NULL AND w.created_at_ms <= e.created_at_ms \
             JOIN api_keys k ON k.key_id = w.key_id AND k.revoked_at_ms IS NULL \
             WHERE e.seq IN ({listed}) AND e.fanned_out_at_ms IS NULL \
               AND (',' || w.events || ',') LIKE ('%,' || e.event_type || ',%') \
               AND (e.owner_key_id = w.key_id \
                    OR (k.kind = 'seller' AND e.seller = k.name) \
                    OR (k.kind = 'crm' AND e.event_type = 'order.status_changed')) \
             ON CONFLICT (webhook_id, event_id) DO NOTHING"
        );
        let mark = format!(
            "UPDATE farm_events SET fanned_out_at_ms = $1 WHERE seq IN ({listed}) AND fanned_out_at_ms IS NULL"
        );
        for statement in [insert, mark] {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(now_ms);
            for seq in &seqs {
                query = query.bind(*seq);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(seqs.len())
    }

    /// Claims up to `limit` deliveries that are due, for `lease_ms`, and
    /// counts the attempt about to be made. Deliveries of the webhooks in
    /// `busy_webhooks`, or of any webhook of the keys in `busy_keys` (those
    /// with all the attempts in flight they may have), are left for later;
    /// first attempts go before retries, so a receiver that keeps failing
    /// does not hold back everyone else's new events.
    pub(crate) async fn claim_due_deliveries(
        &self,
        limit: i64,
        now_ms: i64,
        lease_ms: i64,
        busy_webhooks: &[String],
        busy_keys: &[String],
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let placeholders = |from: usize, count: usize| -> String {
            (from..from + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        };
        let mut excluded = String::new();
        if !busy_webhooks.is_empty() {
            excluded.push_str(&format!("AND webhook_id NOT IN ({}) ", placeholders(4, busy_webhooks.len())));
        }
        if !busy_keys.is_empty() {
            excluded.push_str(&format!(
                "AND webhook_id NOT IN (SELECT webhook_id FROM webhooks WHERE key_id IN ({})) ",
                placeholders(4 + busy_webhooks.len(), busy_keys.len())
            ));
        }
        let claim = format!(
            "UPDATE webhook_deliveries SET claimed_until_ms = $2, attempts = attempts + 1 \
             WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries \
                                   WHERE status = 'pending' AND next_attempt_at_ms <= $1 \
                                     AND (claimed_until_ms IS NULL OR claimed_until_ms < $1) {excluded} \
                                   ORDER BY attempts, next_attempt_at_ms LIMIT $3) \
               AND status = 'pending' AND (claimed_until_ms IS NULL OR claimed_until_ms < $1) \
             RETURNING delivery_id"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(claim)).bind(now_ms).bind(now_ms + lease_ms).bind(limit);
        for id in busy_webhooks.iter().chain(busy_keys) {
            query = query.bind(id.as_str());
        }
        let ids: Vec<i64> =
            query.fetch_all(&self.pool).await?.iter().map(|r| r.try_get("delivery_id")).collect::<Result<_, _>>()?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT d.delivery_id, d.webhook_id, w.key_id, d.event_id, d.attempts, d.created_at_ms, e.body, w.url, \
                        w.secret, w.deleted_at_ms, k.revoked_at_ms \
                 FROM webhook_deliveries d JOIN farm_events e ON e.seq = d.event_seq \
                 JOIN webhooks w ON w.webhook_id = d.webhook_id JOIN api_keys k ON k.key_id = w.key_id \
                 WHERE d.delivery_id = $1",
            )
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
            let deleted: Option<i64> = row.try_get("deleted_at_ms")?;
            let revoked: Option<i64> = row.try_get("revoked_at_ms")?;
            claimed.push(ClaimedDelivery {
                delivery_id: row.try_get("delivery_id")?,
                webhook_id: row.try_get("webhook_id")?,
                key_id: row.try_get("key_id")?,
                event_id: row.try_get("event_id")?,
                attempt: row.try_get("attempts")?,
                created_ms: row.try_get("created_at_ms")?,
                url: row.try_get("url")?,
                secret: row.try_get("secret")?,
                body: row.try_get("body")?,
                withdrawn: deleted.is_some() || revoked.is_some(),
            });
        }
        Ok(claimed)
    }

    /// Hands back claimed deliveries not attempted after all: due again at
    /// once, their attempt not counted.
    pub(crate) async fn release_claims(&self, delivery_ids: &[i64]) -> Result<(), StoreError> {
        for id in delivery_ids {
            sqlx::query(
                "UPDATE webhook_deliveries SET claimed_until_ms = NULL, attempts = attempts - 1 \
                 WHERE delivery_id = $1 AND status = 'pending'",
            )
            .bind(id)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Records an attempt and moves its delivery on, in one transaction.
    pub(crate) async fn record_attempt(
        &self,
        delivery: &ClaimedDelivery,
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at_ms, status_code, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind(delivery.delivery_id)
        .bind(delivery.attempt)
        .bind(outcome.at_ms)
        .bind(outcome.status_code)
        .bind(outcome.error.as_deref())
        .bind(outcome.duration_ms)
        .execute(&mut *tx)
        .await?;
        let (status, next_at, finished) = match outcome.next {
            NextStep::Delivered => ("delivered", outcome.at_ms, Some(outcome.at_ms)),
            NextStep::GiveUp => ("failed", outcome.at_ms, Some(outcome.at_ms)),
            NextStep::RetryAt(at) => ("pending", at, None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, next_attempt_at_ms = $3, finished_at_ms = $4, \
                    claimed_until_ms = NULL \
             WHERE delivery_id = $1 AND status = 'pending'",
        )
        .bind(delivery.delivery_id)
        .bind(status)
        .bind(next_at)
        .bind(finished)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A webhook's deliveries, newest first, each with its latest attempts.
    pub async fn deliveries_of(&self, webhook_id: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT delivery_id, event_id, event_type, status, attempts, next_attempt_at_ms, created_at_ms, \
                    finished_at_ms \
             FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY delivery_id DESC LIMIT $2",
        )
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let delivery_id: i64 = row.try_get("delivery_id")?;
            let status: String = row.try_get("status")?;
            let attempts = sqlx::query(
                "SELECT attempt, at_ms, status_code, error, duration_ms FROM webhook_attempts \
                 WHERE delivery_id = $1 ORDER BY attempt DESC LIMIT $2",
            )
            .bind(delivery_id)
            .bind(ATTEMPTS_LISTED)
            .fetch_all(&self.pool)
            .await?;
            deliveries.push(DeliveryRow {
                delivery_id,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                next_attempt_ms: (status == "pending").then(|| row.try_get("next_attempt_at_ms")).transpose()?,
                status,
                attempts: row.try_get("attempts")?,
                created_ms: row.try_get("created_at_ms")?,
                finished_ms: row.try_get("finished_at_ms")?,
                attempt_log: attempts
                    .iter()
                    .map(|a| {
                        Ok(AttemptRow {
                            attempt: a.try_get("attempt")?,
                            at_ms: a.try_get("at_ms")?,
                            status_code: a.try_get("status_code")?,
                            error: a.try_get("error")?,
                            duration_ms: a.try_get("duration_ms")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?,
            });
        }
        Ok(deliveries)
    }

    /// Pending deliveries and failed ones, for the metrics.
    pub(crate) async fn delivery_backlog(&self, now_ms: i64) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM webhook_deliveries WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok((row.try_get("n")?, oldest.map_or(0, |t| (now_ms - t).max(0))))
    }
}

fn webhook_from_row(row: &AnyRow) -> Result<WebhookRow, sqlx::Error> {
    let events: String = row.try_get("events")?;
    Ok(WebhookRow {
        webhook_id: row.try_get("webhook_id")?,
        url: row.try_get("url")?,
        events: events.split(',').map(str::to_string).collect(),
        created_ms: row.try_get("created_at_ms")?,
    })
}
