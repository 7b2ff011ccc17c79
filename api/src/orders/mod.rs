//! The MES order API: orders from sellers (HTTP) and the old integration
//! (RabbitMQ), priced by the farm, approved or cancelled by the CRM, taken
//! into production by exactly one operator, and accounted for.
//!
//! - [`status`]: the state machine.
//! - [`store`]: the SQL.
//! - [`cache`]: the operators' list cache.
//! - [`facets`]: what the list shows of a quote, and its filters.
//! - [`service`]: placing an order, applying a CRM event, cancelling an
//!   order's pricing: the operations both adapters below call.
//! - [`accounts`]: the counts by source and state.
//! - [`routes`]: the HTTP routes (an adapter).
//! - [`intake`]: the RabbitMQ consumers (incoming orders, CRM events; an
//!   adapter).
//! - [`reprice`]: pricing orders again under the current price book.
//! - [`parts`]: orders of several parts, each priced by its own job.

pub mod accounts;
pub mod cache;
pub mod facets;
pub(crate) mod intake;
pub mod list_facts;
pub(crate) mod moves;
pub mod parts;
pub mod reprice;
pub(crate) mod routes;
pub(crate) mod service;
pub mod status;
pub mod store;

use crate::state::AppState;
use crate::store::{Store, StoreError};
pub use accounts::{OrderStats, SourceStats};
use store::OrderRow;

/// Orders the audit lists by id, at most, per kind.
pub const AUDIT_ID_LIMIT: i64 = 1000;

/// The accounts, as `GET /v1/orders/stats` shows them (all time), plus what
/// the audit checks: orders still pricing whose job has ended (a lost
/// result), as JSON. The API's monitor keeps its gauge from this.
pub async fn audit_counts(store: &Store, intake_queue: &str) -> Result<serde_json::Value, StoreError> {
    let stats = accounts::stats(store, intake_queue).await?;
    let stuck = store.orders_pricing_after_their_job().await?;
    let mut document = serde_json::to_value(&stats).expect("stats always serialize");
    document["pricing_with_ended_job"] = serde_json::json!(stuck);
    Ok(document)
}

/// [`audit_counts`], and the ids of the stuck and the unaccounted orders
/// created in `[since_ms, until_ms)` (`farm orders audit`).
pub async fn audit(
    store: &Store,
    intake_queue: &str,
    since_ms: i64,
    until_ms: i64,
) -> Result<serde_json::Value, StoreError> {
    let mut document = audit_counts(store, intake_queue).await?;
    let listed = store.audit_order_ids(since_ms, until_ms, AUDIT_ID_LIMIT).await?;
    document["window"] = serde_json::json!({ "since_ms": since_ms, "until_ms": until_ms });
    document["ids"] = serde_json::to_value(&listed).expect("ids always serialize");
    document["ids_limit"] = serde_json::json!(AUDIT_ID_LIMIT);
    Ok(document)
}

/// After a pricing job ends (its quote, total and currency when it
/// succeeded, its failure when not), settles what it prices inside the
/// job's transaction: the orders it prices itself, and the parts it prices
/// with their orders.
pub(crate) async fn settle_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    outcome: Result<(&str, f64, &str), &str>,
    at: i64,
) -> Result<(), StoreError> {
    store::settle_orders_of_job(tx, job_id, outcome, at).await?;
    parts::settle_parts_of_job(tx, job_id, outcome, at).await
}

/// Hands what the dead job `dead_job_id` failed (its orders, or its part of
/// an order) to `new_job_id`, its dead letter's replay, inside the replay's
/// transaction.
pub(crate) async fn hand_to_replay(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dead_job_id: &str,
    new_job_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    store::reprice_failed_orders_of_job(tx, dead_job_id, new_job_id, at).await?;
    parts::replay_parts_of_job(tx, dead_job_id, new_job_id, at).await
}

/// After a committed change: keep the operators' cache current, count, and
/// log it. The log line is how an order's history is found in the logs
/// (RUNBOOK, "find a lost order"), so it names the order, its job and source.
pub(crate) async fn changed(state: &AppState, order: &OrderRow) {
    tracing::info!(
        order_id = %order.order_id,
        job_id = order.job_id.as_deref().unwrap_or_default(),
        source = %order.source,
        status = order.status.as_str(),
        version = order.version,
        assignee = order.assignee.as_deref().unwrap_or_default(),
        "order changed"
    );
    state.services.cache.apply(order).await;
    state.web.live.publish(&cache::OrderSummary::from(order)).await;
    metrics::counter!("farm_order_changes_total", "status" => order.status.as_str()).increment(1);
}
