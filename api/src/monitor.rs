//! Watches the queues and the jobs for the metrics that alerts and
//! autoscaling read: queue depth and consumers per lane, the age of the
//! oldest queued job, jobs whose worker stopped reporting, and the outbox
//! relay's backlog and lag.
//!
//! The broker counts ready messages and consumers; the age of the oldest
//! job comes from the database, which knows when each job was accepted
//! (RabbitMQ reports no message ages for quorum queues).

use std::sync::Arc;

use scheduler::Lane;
use scheduler::messages::now_ms;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        observe(&state).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.settings.monitor_interval) => {}
        }
    }
}

async fn observe(state: &AppState) {
    let services = &state.services;
    let now = now_ms();
    for lane in Lane::ALL {
        let queue = services.topology.jobs(lane);
        match services.broker.queue_stats(queue).await {
            Ok(stats) => {
                metrics::gauge!("farm_queue_messages", "lane" => lane.as_str()).set(stats.messages as f64);
                metrics::gauge!("farm_queue_consumers", "lane" => lane.as_str()).set(stats.consumers as f64);
            }
            Err(e) => tracing::debug!(error = %e, %queue, "cannot read the queue's depth"),
        }
        if let Ok(age) = services.store.oldest_queued_age(lane, now).await {
            metrics::gauge!("farm_queue_oldest_job_age_seconds", "lane" => lane.as_str()).set(age as f64 / 1000.0);
        }
    }
    if let Ok(stats) = services.broker.queue_stats(&services.topology.dead_letters).await {
        metrics::gauge!("farm_dead_letter_queue_messages").set(stats.messages as f64);
    }
    let stale_before = now - state.settings.heartbeat_stale_after.as_millis() as i64;
    if let Ok(stale) = services.store.stale_running(stale_before).await {
        metrics::gauge!("farm_jobs_stale").set(stale as f64);
    }
    if let Ok((backlog, lag_ms)) = services.store.outbox_backlog(now).await {
        metrics::gauge!("farm_outbox_backlog").set(backlog as f64);
        metrics::gauge!("farm_outbox_oldest_unsent_age_seconds").set(lag_ms as f64 / 1000.0);
    }
    if let Ok((backlog, lag_ms)) = services.store.unpublished_events(now).await {
        metrics::gauge!("farm_events_unpublished").set(backlog as f64);
        metrics::gauge!("farm_events_oldest_unpublished_age_seconds").set(lag_ms as f64 / 1000.0);
    }
    if let Ok((pending, age_ms)) = services.store.delivery_backlog(now).await {
        metrics::gauge!("farm_webhook_deliveries_pending").set(pending as f64);
        metrics::gauge!("farm_webhook_oldest_pending_age_seconds").set(age_ms as f64 / 1000.0);
    }
    if let Ok(waiting) = services.store.oldest_pricing_by_lane(now).await {
        for lane in Lane::ALL {
            let age = waiting.iter().find(|(l, _)| l == lane.as_str()).map_or(0, |(_, age)| *age);
            metrics::gauge!("farm_orders_pricing_oldest_age_seconds", "lane" => lane.as_str()).set(age as f64 / 1000.0);
        }
    }
    // Orders that vanished from the accounts, and orders left PRICING after
    // their job ended: either is an order lost, which `farm orders audit`
    // would also report.
    if let Ok(audit) = crate::orders::audit_counts(&services.store, &services.topology.orders_incoming).await {
        let lost = audit["unaccounted"].as_i64().unwrap_or(0) + audit["pricing_with_ended_job"].as_i64().unwrap_or(0);
        metrics::gauge!("farm_orders_unaccounted").set(lost as f64);
    }
    metrics::gauge!("farm_operator_cache_ready").set(if services.cache.is_ready() { 1.0 } else { 0.0 });
    let database = services.store.ping().await.is_ok();
    metrics::gauge!("farm_database_up").set(if database { 1.0 } else { 0.0 });
    metrics::gauge!("farm_broker_up").set(if services.broker.is_ready() { 1.0 } else { 0.0 });
}
