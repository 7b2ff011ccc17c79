//! The sender: fans new events out into deliveries, then POSTs the due
//! ones, signed, each attempt a task of its own within bounds (in all and
//! per webhook), and records every attempt.
//!
//! The client follows no redirect (a 3xx is a failed attempt: a redirect
//! could point anywhere), uses no proxy from the environment, and resolves
//! names through `target::PublicOnly`, so the address check holds at
//! connect time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scheduler::messages::now_ms;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::WebhookSettings;
use super::store::{AttemptOutcome, ClaimedDelivery, NextStep};
use crate::state::AppState;
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
    let mut sender = Sender {
        store: state.services.store.clone(),
        client,
        permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
        in_flight: Arc::default(),
        attempts: JoinSet::new(),
        settings,
    };
    let mut failures = 0u32;
    let mut last_prune = Instant::now();
    loop {
        let pause = match sender.pass().await {
            Ok(busy) => {
                failures = 0;
                if busy { Duration::ZERO } else { sender.settings.poll }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "webhook pass failed; its deliveries stay pending");
                (sender.settings.poll * 2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(30))
            }
        };
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let before = now_ms() - i64::try_from(state.settings.events.retention.as_millis()).unwrap_or(i64::MAX);
            match sender.store.prune_events(before).await {
                Ok(pruned) if pruned > 0 => tracing::info!(pruned, "forgot old events"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning old events failed"),
            }
        }
        // A finished attempt frees a slot: look for more work at once.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
            Some(_) = sender.attempts.join_next(), if !sender.attempts.is_empty() => {}
        }
    }
    // Attempts under way are dropped, not awaited: a receiver that hangs
    // must not hold the shutdown. Their claims run out and they are made
    // again later, which at-least-once delivery allows.
    sender.attempts.abort_all();
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

/// The attempts in flight: at most `concurrency` in all,
/// `per_webhook_concurrency` for one webhook and `per_key_concurrency` for
/// one key's webhooks, so receivers that hang hold a few slots, never all
/// of them.
struct Sender {
    store: Store,
    client: reqwest::Client,
    settings: WebhookSettings,
    permits: Arc<Semaphore>,
    in_flight: Arc<Mutex<InFlight>>,
    attempts: JoinSet<()>,
}

impl Sender {
    /// Fans new events out, then starts attempts for as many due
    /// deliveries as there are free slots. True when there may be more to
    /// do at once.
    async fn pass(&mut self) -> Result<bool, String> {
        let settings = &self.settings;
        let fanned = self.store.fan_out_events(settings.batch, now_ms()).await.map_err(|e| e.to_string())?;
        let free = self.permits.available_permits().min(usize::try_from(settings.batch).unwrap_or(usize::MAX));
        if free == 0 {
            return Ok(fanned as i64 >= settings.batch);
        }
        let caps = (settings.per_webhook_concurrency.max(1), settings.per_key_concurrency.max(1));
        // Webhooks and keys at their caps are not claimed for: a delivery
        // claimed and put back would stay first in line and starve the rest.
        let (busy_webhooks, busy_keys) = {
            let in_flight = self.in_flight.lock().expect("the in-flight map is never poisoned");
            let at_cap = |counts: &HashMap<String, usize>, cap: usize| -> Vec<String> {
                counts.iter().filter(|(_, n)| **n >= cap).map(|(id, _)| id.clone()).collect()
            };
            (at_cap(&in_flight.by_webhook, caps.0), at_cap(&in_flight.by_key, caps.1))
        };
        let lease_ms = i64::try_from((settings.timeout + Duration::from_secs(30)).as_millis()).unwrap_or(i64::MAX);
        let claimed = self
            .store
            .claim_due_deliveries(free as i64, now_ms(), lease_ms, &busy_webhooks, &busy_keys)
            .await
            .map_err(|e| e.to_string())?;
        let started = claimed.len();
        let mut put_back = Vec::new();
        for delivery in claimed {
            let Some(slot) = Slot::take(&self.in_flight, &delivery, caps) else {
                put_back.push(delivery.delivery_id);
                continue;
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                put_back.push(delivery.delivery_id);
                continue;
            };
            let (store, client, settings) = (self.store.clone(), self.client.clone(), self.settings.clone());
            self.attempts.spawn(async move {
                // Both are given back when the task ends, however it ends.
                let _held = (slot, permit);
                let outcome = attempt(&client, &settings, &delivery).await;
                record_metrics(&outcome);
                if let Err(e) = store.record_attempt(&delivery, &outcome).await {
                    // The claim runs out and the delivery is tried again.
                    tracing::warn!(error = %e, delivery_id = delivery.delivery_id, "cannot record a webhook attempt");
                }
            });
        }
        if !put_back.is_empty() {
            self.store.release_claims(&put_back).await.map_err(|e| e.to_string())?;
        }
        Ok(fanned as i64 >= settings.batch || (started == free && put_back.is_empty()))
    }
}

/// Attempts in flight, by webhook and by the key that owns it.
#[derive(Default)]
struct InFlight {
    by_webhook: HashMap<String, usize>,
    by_key: HashMap<String, usize>,
}

/// One attempt in flight, counted against its webhook and its key while it
/// lives.
struct Slot {
    in_flight: Arc<Mutex<InFlight>>,
    webhook_id: String,
    key_id: String,
}

impl Slot {
    /// A slot for `delivery`, unless its webhook or its key has all it may
    /// have in flight already.
    fn take(in_flight: &Arc<Mutex<InFlight>>, delivery: &ClaimedDelivery, caps: (usize, usize)) -> Option<Self> {
        let mut counts = in_flight.lock().expect("the in-flight map is never poisoned");
        let webhook = counts.by_webhook.get(&delivery.webhook_id).copied().unwrap_or(0);
        let key = counts.by_key.get(&delivery.key_id).copied().unwrap_or(0);
        if webhook >= caps.0 || key >= caps.1 {
            return None;
        }
        *counts.by_webhook.entry(delivery.webhook_id.clone()).or_default() += 1;
        *counts.by_key.entry(delivery.key_id.clone()).or_default() += 1;
        Some(Self {
            in_flight: in_flight.clone(),
            webhook_id: delivery.webhook_id.clone(),
            key_id: delivery.key_id.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.in_flight.lock().expect("the in-flight map is never poisoned");
        release(&mut counts.by_webhook, &self.webhook_id);
        release(&mut counts.by_key, &self.key_id);
    }
}

fn release(counts: &mut HashMap<String, usize>, id: &str) {
    if let Some(count) = counts.get_mut(id) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(id);
        }
    }
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
