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
                match state.services.store.apply_result(&message, state.settings.heartbeat_stale_after).await {
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
            let claim = match &message.event {
                scheduler::ResultEvent::Started { worker, claim: true, .. } => Some(worker.as_str()),
                _ => None,
            };
            let outcome = match applied {
                Applied::Changed => {
                    if let Some(worker) = claim {
                        tell(&state, Control::Proceed { job_id: message.job_id.clone(), worker: worker.into() }).await;
                    }
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
                Applied::Stale => {
                    // A start of a job this API does not know, or one it is
                    // past in a way no answer changes: nothing to protect.
                    if let Some(worker) = claim {
                        tell(&state, Control::Proceed { job_id: message.job_id.clone(), worker: worker.into() }).await;
                    }
                    "duplicate"
                }
                Applied::StartedCancelled => {
                    // A worker that missed the cancellation broadcast picked
                    // the job up: say it again; it stops within a second.
                    tell(&state, Control::Cancel { job_id: message.job_id.clone() }).await;
                    "cancelled_job_started"
                }
                Applied::StartedFinished => {
                    // A worker picked up a job whose result is in: tell that
                    // worker alone to give it up, so it is not computed again.
                    if let scheduler::ResultEvent::Started { worker, .. } = &message.event {
                        tell(&state, Control::Yield { job_id: message.job_id.clone(), worker: worker.clone() }).await;
                    }
                    metrics::counter!("farm_jobs_started_again_total", "while" => "finished").increment(1);
                    "finished_job_started"
                }
                Applied::StartedAgain => {
                    tracing::warn!(job_id = %message.job_id, "a job was taken over from a worker that stopped reporting");
                    if let Some(worker) = claim {
                        tell(&state, Control::Proceed { job_id: message.job_id.clone(), worker: worker.into() }).await;
                    }
                    metrics::counter!("farm_jobs_started_again_total", "while" => "running").increment(1);
                    "running_job_started"
                }
                Applied::RunningElsewhere { runner } => {
                    // The runner is alive: the second delivery waits, held,
                    // instead of computing the job beside it. A start that
                    // did not claim (a message sent twice) is computing
                    // already; the same word stops it.
                    if let scheduler::ResultEvent::Started { worker, .. } = &message.event {
                        let wait = Control::Wait { job_id: message.job_id.clone(), worker: worker.clone(), runner };
                        tell(&state, wait).await;
                    }
                    let computing = if claim.is_some() { "no" } else { "yes" };
                    metrics::counter!("farm_jobs_held_back_total", "computing" => computing).increment(1);
                    "running_job_claimed"
                }
                Applied::NotTheRunner { runner } => {
                    if let scheduler::ResultEvent::Progress { worker, .. } = &message.event {
                        tracing::warn!(job_id = %message.job_id, %worker, %runner, "a worker still computes a job another took over; telling it to give up");
                        tell(&state, Control::Yield { job_id: message.job_id.clone(), worker: worker.clone() }).await;
                    }
                    "superseded_progress"
                }
                Applied::ProgressAfterEnd => {
                    if let scheduler::ResultEvent::Progress { worker, .. } = &message.event {
                        tell(&state, Control::Yield { job_id: message.job_id.clone(), worker: worker.clone() }).await;
                    }
                    "finished_job_progress"
                }
            };
            metrics::counter!("farm_results_total", "outcome" => outcome).increment(1);
            tracing::debug!(job_id = %message.job_id, outcome, "result applied");
            delivery.ack().await.map_err(|e| e.to_string())
        }
    })
    .await;
}

/// Sends `control` to the workers. A lost word is repeated by the worker's
/// next claim or progress report, so a failure is only logged.
async fn tell(state: &AppState, control: Control) {
    let payload = serde_json::to_vec(&control).expect("control messages always serialize");
    if let Err(e) = state.services.broker.broadcast(&payload).await {
        tracing::warn!(?control, error = %e, "could not send a control message to the workers");
    }
}
