//! The outbox relay: moves committed rows from the database to the broker.
//!
//! The API never publishes inside a request. It commits the job (or the
//! cancellation) and its outbox row together, then wakes this relay, which
//! publishes with a publisher confirm and only then marks the row sent. A
//! crash anywhere in between leaves the row unsent, and the next pass
//! publishes it; so does a broker outage, with a growing pause between
//! passes rather than a spin.

use std::sync::Arc;
use std::time::Duration;

use scheduler::Outgoing;
use scheduler::messages::now_ms;
use tokio_util::sync::CancellationToken;

use tracing::Instrument;

use crate::state::{AppState, Services};
use crate::store::{CONTROL_DESTINATION, OutboxRow, jobs_destination};

pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let interval = state.settings.relay_interval;
    let mut failures = 0u32;
    loop {
        let pass = relay_once(&state).await;
        let pause = match pass {
            Ok(sent) => {
                failures = 0;
                // A full batch means more may be waiting: go again at once.
                if sent as i64 >= state.settings.relay_batch { Duration::ZERO } else { interval }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "outbox relay pass failed; rows stay unsent");
                (interval * 2u32.saturating_pow(failures.min(5))).min(Duration::from_secs(30))
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.relay_wakeup.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("outbox relay stopped");
}

async fn relay_once(state: &AppState) -> Result<usize, String> {
    let services = &state.services;
    let mut batch = services.store.claim_outbox(state.settings.relay_batch).await.map_err(|e| e.to_string())?;
    let rows = std::mem::take(&mut batch.rows);
    let mut sent = 0;
    let mut failure = None;
    for row in &rows {
        // The publish continues the trace of the request that wrote the row,
        // and the message carries it on to the worker.
        let span = tracing::info_span!(
            "outbox.publish",
            "otel.kind" = "producer",
            job_id = %row.job_id,
            destination = %row.destination
        );
        scheduler::trace::continue_from(&span, row.trace_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Err(e) = publish(services, row, &span).instrument(span.clone()).await {
            failure = Some(e);
            break;
        }
        batch.mark_sent(row.id, now_ms()).await.map_err(|e| e.to_string())?;
        metrics::counter!("farm_outbox_published_total").increment(1);
        sent += 1;
    }
    batch.commit().await.map_err(|e| e.to_string())?;
    match failure {
        Some(e) => Err(e),
        None => Ok(sent),
    }
}

/// Publishes one outbox row where its destination says, with a confirm.
async fn publish(services: &Services, row: &OutboxRow, span: &tracing::Span) -> Result<(), String> {
    if row.destination == CONTROL_DESTINATION {
        return services.broker.broadcast(row.payload.as_bytes()).await.map_err(|e| e.to_string());
    }
    // Rows written before lanes existed said `jobs`: the fast lane.
    let lane = scheduler::Lane::ALL
        .into_iter()
        .find(|&lane| jobs_destination(lane) == row.destination)
        .or((row.destination == "jobs").then_some(scheduler::Lane::Fast))
        .ok_or_else(|| format!("unknown outbox destination `{}` in row {}", row.destination, row.id))?;
    let message = Outgoing::new(row.payload.as_bytes().to_vec())
        .with_id(row.job_id.clone())
        .with_headers(scheduler::trace::headers_of(span));
    services.broker.publish(services.topology.jobs(lane), &message).await.map_err(|e| e.to_string())
}
