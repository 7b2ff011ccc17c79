//! Pricing orders again under the current price book: every order priced
//! and not yet approved whose quote came from another book gets a new job
//! with its inputs (a job per part for an order of several), its old quote
//! kept in its history (`order_quotes`).
//! `farm reprice` and the operators' route both run this.

use calculator::order::OrderTerms;
use scheduler::Lane;

use super::status::OrderEvent;
use super::store::{OrderRow, Transitioned};
use crate::store::{JobRow, ModelRow, Store, StoreError};

/// Which models go to the slow lane: more triangles or bytes than these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowLane {
    pub triangles: u64,
    pub bytes: u64,
}

impl SlowLane {
    pub fn lane(&self, model: &ModelRow) -> Lane {
        let triangles = u64::try_from(model.triangles).unwrap_or(0);
        let bytes = u64::try_from(model.size_bytes).unwrap_or(0);
        if triangles > self.triangles || bytes > self.bytes { Lane::Slow } else { Lane::Fast }
    }
}

/// An order sent to be priced again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Repriced {
    pub order_id: String,
    /// The new job (for an order of several parts, the first part's).
    pub job_id: String,
    /// Every job queued: one, or one per part priced again.
    pub job_ids: Vec<String>,
}

/// Reprices up to `limit` orders priced under a book other than `terms`',
/// oldest first. An order approved or cancelled meanwhile is skipped, not
/// an error.
pub async fn reprice_under(
    store: &Store,
    terms: &OrderTerms,
    slow: SlowLane,
    limit: i64,
    actor: &str,
    now_ms: i64,
) -> Result<Vec<Repriced>, StoreError> {
    let mut repriced = Vec::new();
    for order in store.orders_priced_under_other_books(&terms.price_book_version, limit).await? {
        // A repricing of the whole book is the shop's, not a key's ask: no
        // key's quota of jobs in flight holds it back.
        let again = price_order_again(store, &order, OrderEvent::Reprice, terms, slow, None, actor, now_ms).await?;
        if let Some((Transitioned::Done(row), job_ids)) = again {
            let job_id = job_ids.first().cloned().unwrap_or_default();
            repriced.push(Repriced { order_id: row.order_id, job_id, job_ids });
        }
    }
    Ok(repriced)
}

/// Prices `order` again by `event` (a retry of failed pricing, or a
/// reprice) with new jobs: one for an order of one part; for an order of
/// several, one per part priced again, under `terms`. The move and the ids
/// of the jobs queued, or `None` when a model of the order is no longer
/// stored. With `in_flight_quota`, the jobs must fit the order's key's
/// quota of jobs in flight (`StoreError::OverQuota`).
#[allow(clippy::too_many_arguments)]
pub async fn price_order_again(
    store: &Store,
    order: &OrderRow,
    event: OrderEvent,
    terms: &OrderTerms,
    slow: SlowLane,
    in_flight_quota: Option<i64>,
    actor: &str,
    now_ms: i64,
) -> Result<Option<(Transitioned, Vec<String>)>, StoreError> {
    let new_job = |model: &ModelRow, material: &str, quantity: i64, colour: &Option<String>| {
        let mut job = JobRow::queued(
            uuid::Uuid::now_v7().to_string(),
            model.model_id.clone(),
            material.to_string(),
            quantity,
            slow.lane(model),
            now_ms,
        );
        job.colour = colour.clone();
        job.owner_key_id = order.seller_key_id.clone();
        job.in_flight_quota = in_flight_quota;
        job
    };
    if order.part_count > 1 {
        let mut jobs = Vec::new();
        for part in store.order_parts(&order.order_id).await? {
            let Some(model) = store.model(&part.model_id).await? else { return Ok(None) };
            jobs.push((part.position, new_job(&model, &part.material, part.quantity, &part.colour)));
        }
        let moved = store.price_parts_again(&order.order_id, event, terms, &jobs, actor, now_ms).await?;
        return Ok(Some(moved));
    }
    let Some(model) = store.model(&order.model_id).await? else { return Ok(None) };
    let job = new_job(&model, &order.material, order.quantity, &order.colour);
    let moved = match event {
        OrderEvent::Reprice => store.reprice_order(&order.order_id, &job, actor, now_ms).await?,
        _ => store.retry_order_pricing(&order.order_id, &job, actor, now_ms).await?,
    };
    Ok(Some((moved, vec![job.job_id])))
}
