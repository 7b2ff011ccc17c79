//! The RabbitMQ side of the order API: orders from the old integration, and
//! the CRM's status events, each on its own durable quorum queue.
//!
//! A message is acked only after its effect is committed. A repeated order
//! (the same external id) or event (the same event id) changes nothing. A
//! message that can never be used (not JSON, an unknown material, a model
//! that is not there) goes to the dead-letter queue with its reason in a
//! header, is logged and counted, and never blocks the queue. A database
//! outage holds the message and retries; it is not handed back in a loop.

use std::sync::Arc;
use std::time::Duration;

use scheduler::{Delivery, Outgoing};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::service::{CreateOrder, CrmEventBody, OrderInput, apply_crm, place_order};
use super::store::{Created, CrmOutcome};
use crate::state::AppState;

/// An order from the old integration.
#[derive(Debug, Deserialize)]
struct IncomingOrder {
    /// The sender's id of the order: a repeated one is ignored.
    external_id: String,
    /// The seller the order belongs to.
    seller: String,
    #[serde(flatten)]
    order: CreateOrder,
}

pub(crate) async fn orders(state: Arc<AppState>, shutdown: CancellationToken) {
    let queue = state.services.topology.orders_incoming.clone();
    crate::consume::forever(&state, &shutdown, &queue, 16, "order intake", |delivery| {
        let (state, shutdown, queue) = (state.clone(), shutdown.clone(), queue.clone());
        async move {
            let incoming: IncomingOrder = match serde_json::from_slice(&delivery.payload) {
                Ok(order) => order,
                Err(e) => return refuse(&state, delivery, &queue, "queue", &format!("not an order: {e}")).await,
            };
            if incoming.external_id.trim().is_empty() || incoming.seller.trim().is_empty() {
                return refuse(&state, delivery, &queue, "queue", "`external_id` and `seller` must not be empty").await;
            }
            let external_id = incoming.external_id.clone();
            let mut backoff = Duration::from_millis(100);
            loop {
                let input = OrderInput {
                    source: "queue",
                    seller: incoming.seller.clone(),
                    seller_key_id: None,
                    external_id: Some(external_id.clone()),
                    idempotency_key: None,
                    request: incoming.order.clone(),
                };
                match place_order(&state, input).await {
                    Ok(Created::New(order)) => {
                        tracing::info!(order_id = %order.order_id, %external_id, "order received from the queue");
                        return delivery.ack().await.map_err(|e| e.to_string());
                    }
                    Ok(Created::Existing(order) | Created::KeyReused(order)) => {
                        tracing::info!(order_id = %order.order_id, %external_id, "a repeated order was ignored");
                        metrics::counter!("farm_order_intake_duplicates_total").increment(1);
                        return delivery.ack().await.map_err(|e| e.to_string());
                    }
                    Err(e) if e.is_transient() => {
                        tracing::warn!(%external_id, error = %e, "could not store an order; retrying");
                        tokio::select! {
                            // Unacked, it goes back to the queue with the connection.
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => return refuse(&state, delivery, &queue, "queue", &e.to_string()).await,
                }
            }
        }
    })
    .await;
}

pub(crate) async fn crm(state: Arc<AppState>, shutdown: CancellationToken) {
    let queue = state.services.topology.crm_events.clone();
    crate::consume::forever(&state, &shutdown, &queue, 16, "CRM events", |delivery| {
        let (state, shutdown, queue) = (state.clone(), shutdown.clone(), queue.clone());
        async move {
            let event = match serde_json::from_slice::<CrmEventBody>(&delivery.payload)
                .map_err(|e| format!("not a CRM event: {e}"))
                .and_then(|body| body.to_event())
            {
                Ok(event) => event,
                Err(reason) => return refuse(&state, delivery, &queue, "crm", &reason).await,
            };
            let mut backoff = Duration::from_millis(100);
            loop {
                match apply_crm(&state, &event).await {
                    // Refused events are not remembered by the store; on the
                    // queue they go to the dead letters with their reason,
                    // where an operator sees them and can send them again.
                    Ok(CrmOutcome::Illegal { current, error }) => {
                        let reason = format!("order `{}` is {}: {error}", event.order_id, current.status.as_str());
                        return refuse(&state, delivery, &queue, "crm", &reason).await;
                    }
                    Ok(CrmOutcome::UnknownOrder) => {
                        let reason = format!("no order `{}`", event.order_id);
                        return refuse(&state, delivery, &queue, "crm", &reason).await;
                    }
                    Ok(CrmOutcome::Reused) => {
                        let reason = format!("event `{}` was received before with another body", event.event_id);
                        return refuse(&state, delivery, &queue, "crm", &reason).await;
                    }
                    // Applied, duplicate or stale: final, and counted.
                    Ok(outcome) => {
                        tracing::info!(event_id = %event.event_id, order_id = %event.order_id, ?outcome, "CRM event");
                        return delivery.ack().await.map_err(|e| e.to_string());
                    }
                    Err(e) => {
                        tracing::warn!(event_id = %event.event_id, error = %e, "could not apply a CRM event; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    })
    .await;
}

/// Moves a message that can never be used to the dead-letter queue, with
/// its reason, then acks it: confirmed there first, so it is never lost.
async fn refuse(
    state: &AppState,
    delivery: Delivery,
    queue: &str,
    source: &'static str,
    reason: &str,
) -> Result<(), String> {
    tracing::error!(%queue, %reason, "an unusable message was dead-lettered");
    metrics::counter!("farm_order_intake_dead_letters_total", "source" => source).increment(1);
    let letter = Outgoing::new(delivery.payload.clone()).with_headers(vec![
        ("x-first-death-reason".into(), "rejected".into()),
        ("x-first-death-queue".into(), queue.to_string()),
        ("x-farm-reason".into(), reason.to_string()),
    ]);
    let letter = match &delivery.message_id {
        Some(id) => letter.with_id(id.clone()),
        None => letter,
    };
    state.services.broker.publish(&state.services.topology.dead_letters, &letter).await.map_err(|e| e.to_string())?;
    delivery.ack().await.map_err(|e| e.to_string())
}
