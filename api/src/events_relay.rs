//! The events relay: moves the farm's events from `farm_events` to the
//! broker's events exchange, routed by type, for the CRM and the shop.
//!
//! Like the job outbox relay, it publishes with a publisher confirm and only
//! then marks the row published, in `seq` order; a crash in between
//! publishes the row again, so consumers see an event at least once and
//! tell repeats by its id (the AMQP message id) and order by its version.

use std::sync::Arc;
use std::time::Duration;

use scheduler::Outgoing;
use scheduler::messages::now_ms;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let settings = state.settings.events.clone();
    let mut failures = 0u32;
    loop {
        let pause = match relay_once(&state, settings.batch).await {
            Ok(sent) => {
                failures = 0;
                if sent as i64 >= settings.batch { Duration::ZERO } else { settings.poll }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "events relay pass failed; events stay unpublished");
                (settings.poll * 2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(30))
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("events relay stopped");
}

async fn relay_once(state: &AppState, batch: i64) -> Result<usize, String> {
    let services = &state.services;
    let mut claimed = services.store.claim_unpublished_events(batch).await.map_err(|e| e.to_string())?;
    let events = std::mem::take(&mut claimed.events);
    let mut sent = 0;
    let mut failure = None;
    for event in &events {
        let message = Outgoing::new(event.body.as_bytes())
            .with_id(event.event_id.clone())
            .with_headers(vec![("farm-event-type".into(), event.event_type.clone())]);
        // Stop at the first failure: a later event must not overtake it.
        if let Err(e) = services.broker.publish_event(&event.event_type, &message).await {
            failure = Some(e.to_string());
            break;
        }
        claimed.mark_published(event.seq, now_ms()).await.map_err(|e| e.to_string())?;
        metrics::counter!("farm_events_published_total", "type" => event.event_type.clone()).increment(1);
        sent += 1;
    }
    claimed.commit().await.map_err(|e| e.to_string())?;
    match failure {
        Some(e) => Err(e),
        None => Ok(sent),
    }
}
