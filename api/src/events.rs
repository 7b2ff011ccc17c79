//! The events the farm tells others about: a price given, a price that
//! failed, an order's new status.
//!
//! Each is written to `farm_events` inside the transaction that made it
//! happen, so a process killed right after a commit still tells everyone:
//! the webhook fan-out (`webhooks::deliver`) and the broker relay
//! (`events_relay`) take the rows they have not handled yet. The delivered
//! document is fixed when the row is written, so every receiver, and every
//! retry, gets the same bytes under the same `id`.

use std::time::Duration;

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::store::StoreError;

/// How the events relay polls, and how long events are kept.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// How often the relay looks for new events when idle.
    pub poll: Duration,
    /// Events published per pass.
    pub batch: i64,
    /// Events published and fanned out are forgotten after this long (never
    /// while a webhook delivery still waits on them).
    pub retention: Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self { poll: Duration::from_millis(500), batch: 100, retention: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "pricing.succeeded")]
    PricingSucceeded,
    #[serde(rename = "pricing.failed")]
    PricingFailed,
    #[serde(rename = "order.status_changed")]
    OrderStatusChanged,
}

impl EventType {
    /// The name in documents, subscriptions and the broker's routing keys.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PricingSucceeded => "pricing.succeeded",
            EventType::PricingFailed => "pricing.failed",
            EventType::OrderStatusChanged => "order.status_changed",
        }
    }
}

/// An event about to be written, with who may hear of it.
struct NewEvent<'a> {
    event_type: EventType,
    /// The seller (by name) whose order or job it is about.
    seller: Option<&'a str>,
    /// The key that created the job or the order.
    owner_key_id: Option<&'a str>,
    data: serde_json::Value,
}

/// The delivered document: `{"id", "type", "created_ms", "data"}`.
#[derive(Serialize)]
struct Document<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'static str,
    created_ms: i64,
    data: &'a serde_json::Value,
}

async fn record(tx: &mut Transaction<'_, Any>, event: NewEvent<'_>, at: i64) -> Result<(), StoreError> {
    let event_id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    let document = Document { id: &event_id, event_type: event.event_type.as_str(), created_ms: at, data: &event.data };
    let body = serde_json::to_string(&document).expect("event documents always serialize");
    sqlx::query(
        "INSERT INTO farm_events (event_id, event_type, seller, owner_key_id, body, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&event_id)
    .bind(event.event_type.as_str())
    .bind(event.seller)
    .bind(event.owner_key_id)
    .bind(&body)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `order.status_changed`: the order's new status and the version it has
/// now, read inside the transaction that changed it, so consumers can put
/// events in order and drop a stale one.
pub(crate) async fn order_status_changed(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    from: Option<&str>,
    to: &str,
    at: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT seller, seller_key_id, source, external_id, job_id, version FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    let seller: String = row.try_get("seller")?;
    let owner: Option<String> = row.try_get("seller_key_id")?;
    let data = serde_json::json!({
        "order_id": order_id,
        "source": row.try_get::<String, _>("source")?,
        "external_id": row.try_get::<Option<String>, _>("external_id")?,
        "job_id": row.try_get::<Option<String>, _>("job_id")?,
        "from": from,
        "status": to,
        "version": row.try_get::<i64, _>("version")?,
    });
    let event = NewEvent {
        event_type: EventType::OrderStatusChanged,
        seller: Some(&seller),
        owner_key_id: owner.as_deref(),
        data,
    };
    record(tx, event, at).await
}

/// How a pricing job ended, for `pricing.succeeded` or `pricing.failed`.
pub(crate) enum PricingOutcome<'a> {
    Succeeded { total: f64, currency: &'a str },
    Failed { kind: &'a str, message: &'a str },
}

/// `pricing.succeeded` or `pricing.failed`, with the orders the job prices.
/// The job's seller is its order's, or its key's name when a seller's key
/// submitted it: a seller sees the jobs of every key of its own.
pub(crate) async fn pricing_ended(
    tx: &mut Transaction<'_, Any>,
    job_id: &str,
    outcome: PricingOutcome<'_>,
    at: i64,
) -> Result<(), StoreError> {
    let job = sqlx::query(
        "SELECT j.model_id, j.material, j.owner_key_id, k.name, k.kind FROM pricing_jobs j \
         LEFT JOIN api_keys k ON k.key_id = j.owner_key_id WHERE j.job_id = $1",
    )
    .bind(job_id)
    .fetch_one(&mut **tx)
    .await?;
    let owner: Option<String> = job.try_get("owner_key_id")?;
    let owner_name: Option<String> = job.try_get("name")?;
    let owner_kind: Option<String> = job.try_get("kind")?;
    // An order of one part names its job; one of several, each part's.
    let orders = sqlx::query(
        "SELECT order_id, seller FROM orders WHERE job_id = $1 \
         UNION SELECT o.order_id, o.seller FROM order_parts p JOIN orders o ON o.order_id = p.order_id \
         WHERE p.job_id = $1 ORDER BY order_id",
    )
    .bind(job_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut order_ids = Vec::with_capacity(orders.len());
    let mut seller = (owner_kind.as_deref() == Some("seller")).then_some(owner_name).flatten();
    for row in &orders {
        order_ids.push(row.try_get::<String, _>("order_id")?);
        seller = Some(row.try_get("seller")?);
    }
    let mut data = serde_json::json!({
        "job_id": job_id,
        "order_ids": order_ids,
        "model_id": job.try_get::<String, _>("model_id")?,
        "material": job.try_get::<String, _>("material")?,
    });
    let event_type = match outcome {
        PricingOutcome::Succeeded { total, currency } => {
            data["total"] = serde_json::json!(total);
            data["currency"] = serde_json::json!(currency);
            EventType::PricingSucceeded
        }
        PricingOutcome::Failed { kind, message } => {
            data["error"] = serde_json::json!({ "kind": kind, "message": message });
            EventType::PricingFailed
        }
    };
    let event = NewEvent { event_type, seller: seller.as_deref(), owner_key_id: owner.as_deref(), data };
    record(tx, event, at).await
}

/// `pricing.succeeded` for a job answered from the quote cache: no worker
/// priced it, but its owner hears of it as of any other price.
pub(crate) async fn priced_from_cache(
    tx: &mut Transaction<'_, Any>,
    job_id: &str,
    quote: &str,
    at: i64,
) -> Result<(), StoreError> {
    let document: serde_json::Value = serde_json::from_str(quote).unwrap_or_default();
    let total = document["total"].as_f64().unwrap_or_default();
    let currency = document["currency"].as_str().unwrap_or_default();
    pricing_ended(tx, job_id, PricingOutcome::Succeeded { total, currency }, at).await
}

/// An event as the relays read it back.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub(crate) seq: i64,
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    pub(crate) body: String,
}

/// Events not on the broker yet, oldest first, held by one relay pass: on
/// PostgreSQL other replicas skip the rows it holds.
pub(crate) struct Unpublished {
    tx: Transaction<'static, Any>,
    pub(crate) events: Vec<StoredEvent>,
}

impl Unpublished {
    pub(crate) async fn mark_published(&mut self, seq: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE farm_events SET published_at_ms = $1 WHERE seq = $2")
            .bind(now_ms)
            .bind(seq)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl crate::store::Store {
    pub(crate) async fn claim_unpublished_events(&self, limit: i64) -> Result<Unpublished, StoreError> {
        let mut tx = self.begin_write().await?;
        let claim = match self.engine() {
            crate::store::Engine::Postgres => {
                "SELECT seq, event_id, event_type, body FROM farm_events WHERE published_at_ms IS NULL \
                 ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"
            }
            crate::store::Engine::Sqlite => {
                "SELECT seq, event_id, event_type, body FROM farm_events WHERE published_at_ms IS NULL \
                 ORDER BY seq LIMIT $1"
            }
        };
        let rows = sqlx::query(claim).bind(limit).fetch_all(&mut *tx).await?;
        let events = rows.iter().map(stored_event).collect::<Result<_, sqlx::Error>>()?;
        Ok(Unpublished { tx, events })
    }

    /// Events not yet on the broker, and the age of the oldest (ms).
    pub(crate) async fn unpublished_events(&self, now_ms: i64) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM farm_events WHERE published_at_ms IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok((row.try_get("n")?, oldest.map_or(0, |t| (now_ms - t).max(0))))
    }

    /// Forgets events older than `before_ms` that both relays are done
    /// with and no webhook delivery still waits on.
    pub(crate) async fn prune_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM farm_events WHERE created_at_ms < $1 AND published_at_ms IS NOT NULL \
             AND fanned_out_at_ms IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = farm_events.seq \
                             AND d.status = 'pending')",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

fn stored_event(row: &sqlx::any::AnyRow) -> Result<StoredEvent, sqlx::Error> {
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        body: row.try_get("body")?,
    })
}
