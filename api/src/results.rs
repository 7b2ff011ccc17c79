//! The result consumer: applies workers' events to job rows, then acks.
//!
//! Acking after the database write means a crash between the two replays the
//! event, and `Store::apply_result` ignores an event the job is already past
//! (and counts it as a duplicate). When the broker goes away, the consumer
//! waits for it and consumes again; when the database is down, it holds the
//! event and retries the write rather than handing it back in a loop.

use std::sync::Arc;
use std::time::Duration;

use scheduler::{Control, ResultMessage};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::store::Applied;

/// How many results are applied at once; they are small, single-row writes.
const RESULTS_PREFETCH: u16 = 32;

pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let queue = state.services.topology.results.clone();
    crate::consume::forever(&state, &shutdown, &queue, RESULTS_PREFETCH, "result consumer", |delivery| {
        let state = state.clone();
        let shutdown = shutdown.clone();
        async move {
            let message: ResultMessage = match serde_json::from_slice(&delivery.payload) {
                Ok(message) => message,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable result message; dead-lettering it");
                    metrics::counter!("farm_results_total", "outcome" => "unreadable").increment(1);
                    return delivery.reject().await.map_err(|e| e.to_string());
                }
            };
            let mut backoff = Duration::from_millis(100);
            let applied = loop {
                match state.services.store.apply_result(&message).await {
                    Ok(applied) => break applied,
                    Err(e) => {
                        tracing::warn!(job_id = %message.job_id, error = %e, "could not store a result; retrying");
                        tokio::select! {
                            // Unacked, it goes back to the queue with the connection.
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            };
            let outcome = match applied {
                Applied::Changed => {
                    if matches!(
                        message.event,
                        scheduler::ResultEvent::Succeeded { .. } | scheduler::ResultEvent::Failed { .. }
                    ) {
                        let orders =
                            state.services.store.orders_of_job(&message.job_id).await.map_err(|e| e.to_string())?;
                        for order in &orders {
                            crate::orders::changed(&state, order).await;
                        }
                        if matches!(message.event, scheduler::ResultEvent::Succeeded { .. }) && !orders.is_empty() {
                            // From the order's creation to its price: what the
                            // pricing SLO (deploy/prometheus) is about.
                            let job = state.services.store.job(&message.job_id).await.ok().flatten();
                            let lane = job.map_or(scheduler::Lane::Fast, |j| j.lane);
                            for order in &orders {
                                let waited = (message.at_ms - order.created_at_ms).max(0) as f64 / 1000.0;
                                metrics::histogram!("farm_pricing_latency_seconds", "lane" => lane.as_str()).record(waited);
                            }
                        }
                    }
                    "applied"
                }
                Applied::Stale => "duplicate",
                Applied::StartedCancelled => {
                    // A worker that missed the cancellation broadcast picked
                    // the job up: say it again; it stops within a second.
                    let cancel = serde_json::to_vec(&Control::Cancel { job_id: message.job_id.clone() })
                        .expect("control messages always serialize");
                    if let Err(e) = state.services.broker.broadcast(&cancel).await {
                        tracing::warn!(job_id = %message.job_id, error = %e, "could not repeat a cancellation");
                    }
                    "cancelled_job_started"
                }
                Applied::StartedFinished => {
                    // A worker picked up a job whose result is in: tell that
                    // worker alone to give it up, so it is not computed again.
                    if let scheduler::ResultEvent::Started { worker, .. } = &message.event {
                        let give_up = Control::Yield { job_id: message.job_id.clone(), worker: worker.clone() };
                        let give_up = serde_json::to_vec(&give_up).expect("control messages always serialize");
                        if let Err(e) = state.services.broker.broadcast(&give_up).await {
                            tracing::warn!(job_id = %message.job_id, error = %e, "could not tell a worker to give up a finished job");
                        }
                    }
                    metrics::counter!("farm_jobs_started_again_total", "while" => "finished").increment(1);
                    "finished_job_started"
                }
                Applied::StartedAgain => {
                    tracing::warn!(job_id = %message.job_id, "a job was started while it was running: a redelivery or a message sent twice");
                    metrics::counter!("farm_jobs_started_again_total", "while" => "running").increment(1);
                    "running_job_started"
                }
            };
            metrics::counter!("farm_results_total", "outcome" => outcome).increment(1);
            tracing::debug!(job_id = %message.job_id, outcome, "result applied");
            delivery.ack().await.map_err(|e| e.to_string())
        }
    })
    .await;
}
