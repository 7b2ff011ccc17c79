//! The sender: fans new events out into deliveries, then POSTs the due
//! ones, signed, a bounded number at a time, and records every attempt.
//!
//! The client follows no redirect (a 3xx is a failed attempt: a redirect
//! could point anywhere), uses no proxy from the environment, and resolves
//! names through `target::PublicOnly`, so the address check holds at
//! connect time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use scheduler::messages::now_ms;
use tokio_util::sync::CancellationToken;

use super::WebhookSettings;
use super::store::{AttemptOutcome, ClaimedDelivery, NextStep};
use crate::startup::AppState;
use crate::store::Store;

/// Longest error text kept for an attempt.
const MAX_ERROR_CHARS: usize = 300;

/// How often events old enough are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let settings = state.settings.webhooks.clone();
    let client = match client(&settings) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; no webhook will be delivered");
            return;
        }
    };
    let store = &state.services.store;
    let mut failures = 0u32;
    let mut last_prune = Instant::now();
    loop {
        let pause = match pass(store, &client, &settings).await {
            Ok(busy) => {
                failures = 0;
                if busy { Duration::ZERO } else { settings.poll }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "webhook pass failed; its deliveries stay pending");
                (settings.poll * 2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(30))
            }
        };
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let before = now_ms() - i64::try_from(state.settings.events.retention.as_millis()).unwrap_or(i64::MAX);
            match store.prune_events(before).await {
                Ok(pruned) if pruned > 0 => tracing::info!(pruned, "forgot old events"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning old events failed"),
            }
        }
        // Attempts under way finish (each is bounded by the timeout) before
        // shutdown is noticed: the pass above has returned by now.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("webhook sender stopped");
}

fn client(settings: &WebhookSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("pricing-farm-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(super::target::PublicOnly::shared(settings.allow_private))
        .build()
}

/// One pass: fan out, then send what is due. True when a batch was full
/// (more may be waiting).
async fn pass(store: &Store, client: &reqwest::Client, settings: &WebhookSettings) -> Result<bool, String> {
    let fanned = store.fan_out_events(settings.batch, now_ms()).await.map_err(|e| e.to_string())?;
    let lease_ms = i64::try_from((settings.timeout * 2 + Duration::from_secs(30)).as_millis()).unwrap_or(i64::MAX);
    let claimed = store.claim_due_deliveries(settings.batch, now_ms(), lease_ms).await.map_err(|e| e.to_string())?;
    let count = claimed.len();
    let recorded = futures_util::stream::iter(claimed)
        .map(|delivery| async move {
            let outcome = attempt(client, settings, &delivery).await;
            record_metrics(&outcome);
            store.record_attempt(&delivery, &outcome).await
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    if let Some(Err(e)) = recorded.into_iter().find(Result::is_err) {
        return Err(e.to_string());
    }
    Ok(fanned as i64 >= settings.batch || count as i64 >= settings.batch)
}

async fn attempt(client: &reqwest::Client, settings: &WebhookSettings, delivery: &ClaimedDelivery) -> AttemptOutcome {
    let started = Instant::now();
    let at_ms = now_ms();
    let result = if delivery.withdrawn {
        Err("the webhook was deleted or its key revoked".to_string())
    } else {
        send(client, settings, delivery).await
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status_code, error) = match &result {
        Ok(status) => (Some(i64::from(*status)), None),
        Err(e) => (None, Some(e.chars().take(MAX_ERROR_CHARS).collect::<String>())),
    };
    let next = match result {
        Ok(status) if (200..300).contains(&status) => NextStep::Delivered,
        _ if delivery.withdrawn => NextStep::GiveUp,
        _ => {
            let pause = super::backoff(settings, delivery.attempt, jitter());
            let next_at = now_ms().saturating_add(i64::try_from(pause.as_millis()).unwrap_or(i64::MAX));
            let deadline =
                delivery.created_ms.saturating_add(i64::try_from(settings.retry_for.as_millis()).unwrap_or(i64::MAX));
            if next_at > deadline { NextStep::GiveUp } else { NextStep::RetryAt(next_at) }
        }
    };
    if next == NextStep::GiveUp {
        tracing::warn!(
            delivery_id = delivery.delivery_id,
            webhook_id = %delivery.webhook_id,
            event_id = %delivery.event_id,
            attempts = delivery.attempt,
            "webhook delivery failed for good"
        );
    }
    AttemptOutcome { at_ms, status_code, error, duration_ms, next }
}

/// POSTs the event; the receiver's status, or why there was none.
async fn send(client: &reqwest::Client, settings: &WebhookSettings, delivery: &ClaimedDelivery) -> Result<u16, String> {
    // An address written in the URL never reaches the resolver: check it
    // here, under the settings in force now.
    let url = super::target::parse(&delivery.url, settings.max_url_chars, settings.allow_private)
        .map_err(|e| e.to_string())?;
    let signature = super::signature::sign(&delivery.secret, now_ms() / 1000, delivery.body.as_bytes());
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(super::signature::HEADER, signature)
        .header("Farm-Event-Id", &delivery.event_id)
        .header("Farm-Delivery-Attempt", delivery.attempt.to_string())
        .body(delivery.body.clone())
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(response.status().as_u16())
}

/// The error and its causes, on one line: reqwest's own text alone says
/// only "error sending request".
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_string() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn record_metrics(outcome: &AttemptOutcome) {
    let label = match outcome.next {
        NextStep::Delivered => "delivered",
        NextStep::RetryAt(_) => "retry",
        NextStep::GiveUp => "failed",
    };
    metrics::counter!("farm_webhook_attempts_total", "outcome" => label).increment(1);
    // A delivery's end: what the FarmWebhookDeliveriesFailing alert reads.
    if !matches!(outcome.next, NextStep::RetryAt(_)) {
        metrics::counter!("farm_webhook_deliveries_total", "outcome" => label).increment(1);
    }
}

/// A draw in [0, 1) for the backoff's jitter (not a secret: any spread
/// will do).
fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}
