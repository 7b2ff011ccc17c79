//! The moves people make on an order that exists: cancel it, take it,
//! complete or release it, ship it. Each checks who may make it, moves the
//! order through the status machine, and answers an [`OrderError`]; the
//! HTTP routes are thin adapters over these.

use scheduler::messages::now_ms;

use super::service::{OrderError, cancel_pricing};
use super::status::{OrderEvent, OrderStatus};
use super::store::{OrderRow, Transitioned};
use crate::auth::{KeyKind, Principal};
use crate::state::AppState;
use crate::text;

/// An order the caller may see: a seller only its own. Another seller's
/// order is answered as if there were none, so an id says nothing.
pub(crate) async fn visible_order(
    state: &AppState,
    principal: &Principal,
    order_id: &str,
) -> Result<OrderRow, OrderError> {
    // No order has an id like that: answered without asking the database.
    if text::refusal("order_id", order_id, text::MAX_ID_CHARS).is_some() {
        return Err(OrderError::NotFound { order_id: order_id.escape_default().to_string() });
    }
    match state.services.store.order(order_id).await? {
        Some(o) if principal.kind != KeyKind::Seller || o.seller == principal.name => Ok(o),
        _ => Err(OrderError::NotFound { order_id: order_id.to_string() }),
    }
}

/// Moves an order by `event` for `actor`, and tells whoever listens. A
/// move its status does not allow says why (and who took it, for a lost
/// race to take it).
async fn move_order(state: &AppState, order_id: &str, event: OrderEvent, actor: &str) -> Result<OrderRow, OrderError> {
    match state.services.store.transition_order(order_id, event, actor, now_ms()).await? {
        Transitioned::Done(row) => {
            super::changed(state, &row).await;
            Ok(*row)
        }
        Transitioned::Illegal { current, error } => {
            let mut message = error.to_string();
            if let Some(by) = current.assignee.as_deref().filter(|_| event == OrderEvent::Take) {
                message = format!("order `{order_id}` was taken by {by}");
            }
            Err(OrderError::Refused { message, status: current.status, assignee: current.assignee })
        }
        Transitioned::NotFound => Err(OrderError::NotFound { order_id: order_id.to_string() }),
    }
}

/// Cancels an order before manufacturing starts (its seller or an
/// operator); the pricing jobs still running for it are cancelled with it.
pub(crate) async fn cancel(state: &AppState, principal: &Principal, order_id: &str) -> Result<OrderRow, OrderError> {
    visible_order(state, principal, order_id).await?;
    let row = move_order(state, order_id, OrderEvent::Cancel, &principal.name).await?;
    cancel_pricing(state, &row).await?;
    Ok(row)
}

/// An operator takes an approved order to make it; of two at once, one
/// wins and the other learns who has it.
pub(crate) async fn take(state: &AppState, principal: &Principal, order_id: &str) -> Result<OrderRow, OrderError> {
    let row = move_order(state, order_id, OrderEvent::Take, &principal.name).await?;
    metrics::counter!("farm_orders_taken_total").increment(1);
    Ok(row)
}

/// Moves a taken order by `event` (complete, release) for the operator who
/// took it; another operator is refused with who has it.
pub(crate) async fn takers_move(
    state: &AppState,
    principal: &Principal,
    order_id: &str,
    event: OrderEvent,
) -> Result<OrderRow, OrderError> {
    let current = visible_order(state, principal, order_id).await?;
    if current.status == OrderStatus::ManufacturingStarted
        && current.assignee.as_deref() != Some(principal.name.as_str())
    {
        let verb = if event == OrderEvent::Release { "release" } else { "complete" };
        return Err(OrderError::NotTheTaker(format!(
            "order `{order_id}` is {}'s; only the operator who took it may {verb} it",
            current.assignee.unwrap_or_default()
        )));
    }
    move_order(state, order_id, event, &principal.name).await
}

/// Marks a completed order shipped.
pub(crate) async fn ship(state: &AppState, principal: &Principal, order_id: &str) -> Result<OrderRow, OrderError> {
    move_order(state, order_id, OrderEvent::Ship, &principal.name).await
}
