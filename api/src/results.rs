//! The result consumer: applies workers' events to job rows, then acks.
//!
//! Acking after the database write means a crash between the two replays the
//! event, and `Store::apply_result` ignores an event the job is already past.

use std::sync::Arc;
use std::time::Duration;

use scheduler::ResultMessage;
use tokio_util::sync::CancellationToken;

use crate::startup::AppState;
use crate::store::Applied;

/// How many results are applied at once; they are small, single-row writes.
const RESULTS_PREFETCH: u16 = 32;

pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match consume(&state, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "result consumer stopped; restarting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::info!("result consumer stopped");
}

async fn consume(state: &AppState, shutdown: &CancellationToken) -> Result<(), String> {
    let services = &state.services;
    let mut consumer =
        services.broker.consume(&services.topology.results, RESULTS_PREFETCH).await.map_err(|e| e.to_string())?;
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => {
                consumer.cancel().await;
                return Ok(());
            }
            delivery = consumer.next() => delivery,
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the broker closed the results consumer".into()),
        };
        let message: ResultMessage = match serde_json::from_slice(&delivery.payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(error = %e, "unreadable result message discarded");
                metrics::counter!("farm_results_total", "outcome" => "unreadable").increment(1);
                delivery.discard().await.map_err(|e| e.to_string())?;
                continue;
            }
        };
        match services.store.apply_result(&message).await {
            Ok(applied) => {
                let outcome = if applied == Applied::Changed { "applied" } else { "duplicate" };
                metrics::counter!("farm_results_total", "outcome" => outcome).increment(1);
                tracing::debug!(job_id = %message.job_id, outcome, "result applied");
                delivery.ack().await.map_err(|e| e.to_string())?;
            }
            Err(e) => {
                // Leave it to the broker: the write is retried on redelivery.
                tracing::warn!(job_id = %message.job_id, error = %e, "could not store a result; releasing it");
                delivery.release().await.map_err(|e| e.to_string())?;
                return Err(e.to_string());
            }
        }
    }
}
