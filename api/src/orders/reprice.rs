//! Pricing orders again under the current price book: every order priced
//! and not yet approved whose quote came from another book gets a new job
//! with its inputs, its old quote kept in its history (`order_quotes`).
//! `farm reprice` and the operators' route both run this.

use scheduler::Lane;

use super::store::Transitioned;
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
    pub job_id: String,
}

/// Reprices up to `limit` orders priced under a book other than
/// `current_version`, oldest first. An order approved or cancelled
/// meanwhile is skipped, not an error.
pub async fn reprice_under(
    store: &Store,
    current_version: &str,
    slow: SlowLane,
    limit: i64,
    actor: &str,
    now_ms: i64,
) -> Result<Vec<Repriced>, StoreError> {
    let mut repriced = Vec::new();
    for order in store.orders_priced_under_other_books(current_version, limit).await? {
        let Some(model) = store.model(&order.model_id).await? else { continue };
        let mut job = JobRow::queued(
            uuid::Uuid::now_v7().to_string(),
            order.model_id,
            order.material,
            order.quantity,
            slow.lane(&model),
            now_ms,
        );
        job.colour = order.colour;
        job.owner_key_id = order.seller_key_id;
        if let Transitioned::Done(row) = store.reprice_order(&order.order_id, &job, actor, now_ms).await? {
            repriced.push(Repriced { order_id: row.order_id, job_id: job.job_id });
        }
    }
    Ok(repriced)
}
