//! One consumer loop for every queue the API reads: it survives broker
//! restarts without spinning, and stops cleanly on shutdown.

use std::future::Future;
use std::time::Duration;

use scheduler::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::state::AppState;

/// Consumes `queue` until `shutdown`, handing each delivery to `handle` in
/// turn. When the consumer ends (the connection is gone) or `handle` fails
/// (it could not settle a delivery), it waits for the broker and consumes
/// again, backing off while the broker stays away.
pub(crate) async fn forever<F, Fut>(
    state: &AppState,
    shutdown: &CancellationToken,
    queue: &str,
    prefetch: u16,
    name: &'static str,
    handle: F,
) where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let broker = &state.services.broker;
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match broker.consume(queue, prefetch).await {
            Ok(mut consumer) => {
                backoff = Duration::from_millis(200);
                loop {
                    let delivery = tokio::select! {
                        _ = shutdown.cancelled() => {
                            consumer.cancel().await;
                            tracing::info!(consumer = name, "stopped");
                            return;
                        }
                        delivery = consumer.next() => delivery,
                    };
                    match delivery {
                        Some(Ok(delivery)) => {
                            // One span per message, continuing the sender's
                            // trace (a worker's job, a seller's order).
                            let span = tracing::info_span!(
                                "consume",
                                "otel.name" = name,
                                "otel.kind" = "consumer",
                                consumer = name,
                                message_id = delivery.message_id.as_deref().unwrap_or(""),
                            );
                            scheduler::trace::continue_from(
                                &span,
                                delivery.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                            );
                            if let Err(e) = handle(delivery).instrument(span).await {
                                tracing::warn!(consumer = name, error = %e, "could not settle a delivery; consuming again");
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(consumer = name, error = %e, "the consumer failed; consuming again");
                            break;
                        }
                        None => {
                            tracing::warn!(consumer = name, "the consumer was closed; consuming again");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot consume")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = broker.wait_ready(Duration::from_secs(30)) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    tracing::info!(consumer = name, "stopped");
}
