//! The accounts of the orders: how many were received, priced, failed,
//! made and shipped, per source, and whether any went missing.

use serde::Serialize;
use utoipa::ToSchema;

use super::status::OrderStatus;
use crate::store::{Store, StoreError};

/// The accounts of one source of orders.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SourceStats {
    /// Orders that entered the system.
    pub received: i64,
    /// Waiting for a price (CREATED, PRICING).
    pub pricing: i64,
    pub priced: i64,
    pub pricing_failed: i64,
    /// Approved, in manufacturing or completed.
    pub in_production: i64,
    pub shipped: i64,
    pub cancelled: i64,
    /// Messages refused at intake and dead-lettered (the queue source only):
    /// they never became orders.
    pub dead_lettered: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderStats {
    pub api: SourceStats,
    pub queue: SourceStats,
    /// Orders whose current status does not add up to what was received:
    /// 0 unless an order vanished.
    pub unaccounted: i64,
}

/// Counts every order by source and state.
pub(crate) async fn stats(state: &Store, intake_queue: &str) -> Result<OrderStats, StoreError> {
    let mut api = SourceStats::default();
    let mut queue = SourceStats::default();
    for c in state.order_counts().await? {
        let s = if c.source == "queue" { &mut queue } else { &mut api };
        use OrderStatus as S;
        let bucket = match c.status {
            S::Created | S::Pricing => &mut s.pricing,
            S::Priced => &mut s.priced,
            S::PricingFailed => &mut s.pricing_failed,
            S::ManufacturingApproved | S::ManufacturingStarted | S::ManufacturingCompleted => &mut s.in_production,
            S::Shipped => &mut s.shipped,
            S::Cancelled => &mut s.cancelled,
        };
        *bucket += c.count;
    }
    for (source, received) in state.orders_received().await? {
        if source == "queue" {
            queue.received = received;
        } else {
            api.received = received;
        }
    }
    queue.dead_lettered = state.dead_letters_of(intake_queue).await?;
    let held = |s: &SourceStats| s.pricing + s.priced + s.pricing_failed + s.in_production + s.shipped + s.cancelled;
    let unaccounted = (api.received - held(&api)) + (queue.received - held(&queue));
    Ok(OrderStats { api, queue, unaccounted })
}
