//! The dead-letter consumer: records every message the broker gave up on,
//! and fails the job it names with the reason.
//!
//! A job lands here when a worker could not read it, or when it was
//! delivered as many times as the queue's delivery limit allows: it kept
//! ending its worker (a crash, an out-of-memory kill). A result that could
//! never be applied lands here too. Each is kept in `dead_letters` for the
//! operators (see deploy/RUNBOOK.md); the row and the job's new state are
//! written together before the message is acked.

use std::sync::Arc;

use scheduler::messages::now_ms;
use scheduler::{JobMessage, ResultMessage};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::store::DeadLetter;

pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let queue = state.services.topology.dead_letters.clone();
    crate::consume::forever(&state, &shutdown, &queue, 8, "dead-letter consumer", |delivery| {
        let state = state.clone();
        async move {
            let payload = String::from_utf8_lossy(&delivery.payload).into_owned();
            let header = |name: &str| delivery.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            // The broker says why in `x-death`; the intake, which moves a
            // message here itself, in the headers it sets.
            let (mut reason, from) = match &delivery.death {
                Some(death) => (death.reason.clone(), death.queue.clone()),
                None => (
                    header("x-first-death-reason").unwrap_or_else(|| "unknown".into()),
                    header("x-first-death-queue").unwrap_or_default(),
                ),
            };
            // The intake refuses a message with its own words for why.
            if let Some(why) = header("x-farm-reason") {
                reason = format!("{reason}: {why}");
            }
            let job_id = serde_json::from_slice::<JobMessage>(&delivery.payload)
                .map(|job| job.job_id)
                .or_else(|_| serde_json::from_slice::<ResultMessage>(&delivery.payload).map(|r| r.job_id))
                .ok()
                .or_else(|| delivery.message_id.clone());
            let lane = state.services.topology.lane_of(&from).map_or("none", |lane| lane.as_str());
            // A dead result is only a lost report: its job stays as it is,
            // and is not failed for it.
            let letter = DeadLetter {
                job_id: if lane == "none" { None } else { job_id.clone() },
                queue: from.clone(),
                reason: reason.clone(),
                payload,
            };
            let applied = state.services.store.record_dead_letter(&letter, now_ms()).await.map_err(|e| e.to_string())?;
            if applied == crate::store::Applied::Changed
                && let Some(job_id) = &letter.job_id
            {
                for order in state.services.store.orders_of_job(job_id).await.map_err(|e| e.to_string())? {
                    crate::orders::changed(&state, &order).await;
                }
            }
            let reason_label = reason.split(':').next().unwrap_or("unknown").to_string();
            metrics::counter!("farm_dead_letters_total", "lane" => lane, "reason" => reason_label).increment(1);
            tracing::error!(job_id = job_id.as_deref().unwrap_or("unknown"), queue = %from, %reason, "a message was dead-lettered");
            delivery.ack().await.map_err(|e| e.to_string())
        }
    })
    .await;
}
