//! The outbox relay: moves committed job rows from the database to the queue.
//!
//! The API never publishes inside a request. It commits the job and its
//! outbox row together, then wakes this relay, which publishes with a
//! publisher confirm and only then marks the row sent. A crash anywhere in
//! between leaves the row unsent, and the next pass publishes it.

use std::sync::Arc;
use std::time::Duration;

use scheduler::messages::now_ms;
use tokio_util::sync::CancellationToken;

use crate::startup::AppState;
use crate::store::JOBS_DESTINATION;

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
        let queue = match row.destination.as_str() {
            JOBS_DESTINATION => &services.topology.jobs,
            other => {
                failure = Some(format!("unknown outbox destination `{other}` in row {}", row.id));
                break;
            }
        };
        if let Err(e) = services.broker.publish(queue, row.payload.as_bytes()).await {
            failure = Some(e.to_string());
            break;
        }
        batch.mark_sent(row.id, now_ms()).await.map_err(|e| e.to_string())?;
        metrics::counter!("farm_outbox_published_total").increment(1);
        sent += 1;
    }
    batch.commit().await.map_err(|e| e.to_string())?;
    if let Ok(backlog) = services.store.outbox_backlog().await {
        metrics::gauge!("farm_outbox_backlog").set(backlog as f64);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(sent),
    }
}
