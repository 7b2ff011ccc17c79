//! The fan-out of live order changes: every change goes to this process's
//! open streams and, with Redis set, over pub/sub to the other replicas,
//! which relay it to theirs. The streams themselves are `live`'s; here is
//! what they are fed from, and how many may be open.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use super::settings::WebSettings;
use crate::orders::cache::OrderSummary;

/// How long a publish to Redis may take before it is given up (the change
/// still reached this replica's consoles; the others resync on reconnect).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

/// What goes on a stream: an order's new state, or a request to reload.
#[derive(Debug, Clone)]
pub(super) enum Message {
    Order(Arc<str>),
    Resync,
}

/// The fan-out of order changes to this process's streams, and its link to
/// the other replicas.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) sender: broadcast::Sender<Message>,
    /// This replica's name on the channel.
    origin: String,
    redis: Option<RedisLink>,
    streams: Arc<Semaphore>,
    /// Open streams per key id.
    per_key: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    max_per_key: usize,
    pub(super) keep_alive: Duration,
    pub(super) recheck: Duration,
}

struct RedisLink {
    client: redis::Client,
    channel: String,
    publisher: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(settings: &WebSettings) -> Self {
        let (sender, _) = broadcast::channel(settings.event_buffer.max(16));
        let redis = settings.redis_url.as_deref().and_then(|url| match crate::redis_client::open(url) {
            Ok(client) => {
                Some(RedisLink { client, channel: settings.channel.clone(), publisher: tokio::sync::OnceCell::new() })
            }
            Err(e) => {
                // The URL was already checked by the order cache; a bad one
                // here leaves live updates to this replica alone.
                tracing::error!(error = %e, "cannot use Redis for live order updates");
                None
            }
        });
        Self {
            inner: Arc::new(Inner {
                sender,
                origin: uuid::Uuid::new_v4().simple().to_string(),
                redis,
                streams: Arc::new(Semaphore::new(settings.max_event_streams)),
                per_key: std::sync::Mutex::new(std::collections::HashMap::new()),
                max_per_key: settings.max_event_streams_per_key.max(1),
                keep_alive: settings.event_keep_alive,
                recheck: settings.event_recheck.max(Duration::from_millis(100)),
            }),
        }
    }

    /// Sends a committed change to every stream here and, with Redis, to
    /// the other replicas.
    pub(crate) async fn publish(&self, order: &OrderSummary) {
        let json = serde_json::to_string(order).expect("summaries always serialize");
        // No receiver is not an error: nobody has a console open.
        let _ = self.inner.sender.send(Message::Order(Arc::from(json.as_str())));
        let Some(redis) = &self.inner.redis else { return };
        let payload = format!("{{\"origin\":\"{}\",\"order\":{json}}}", self.inner.origin);
        let sent = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let publisher =
                redis.publisher.get_or_try_init(|| redis::aio::ConnectionManager::new(redis.client.clone())).await?;
            let mut connection = publisher.clone();
            redis::cmd("PUBLISH").arg(&redis.channel).arg(payload).query_async::<i64>(&mut connection).await
        })
        .await;
        if !matches!(sent, Ok(Ok(_))) {
            let error = match sent {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            metrics::counter!("farm_web_live_publish_errors_total").increment(1);
            tracing::warn!(order_id = %order.order_id, error, "could not share an order change with other replicas");
        }
    }

    /// Relays the other replicas' changes to this one's streams, until
    /// `shutdown`; reconnects after a Redis error, and then tells every
    /// stream to reload (it may have missed changes). Without Redis there
    /// is nothing to relay.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let Some(redis) = &self.inner.redis else { return };
        let mut connected_before = false;
        loop {
            let subscribed = async {
                let mut pubsub = redis.client.get_async_pubsub().await?;
                pubsub.subscribe(&redis.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
                Ok(Ok(pubsub)) => {
                    if connected_before {
                        let _ = self.inner.sender.send(Message::Resync);
                    }
                    connected_before = true;
                    tracing::info!(channel = %redis.channel, "relaying order changes from other replicas");
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            message = messages.next() => match message {
                                Some(message) => self.relay(message.get_payload_bytes()),
                                None => break,
                            },
                        }
                    }
                    tracing::warn!("the Redis subscription for live order updates ended; reconnecting");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot subscribe to live order updates in Redis"),
                Err(_) => tracing::warn!("no answer from Redis for live order updates"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn relay(&self, payload: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Shared {
            origin: String,
            order: Box<serde_json::value::RawValue>,
        }
        match serde_json::from_slice::<Shared>(payload) {
            Ok(shared) if shared.origin == self.inner.origin => {}
            Ok(shared) => {
                let _ = self.inner.sender.send(Message::Order(Arc::from(shared.order.get())));
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a message on the live-updates channel"),
        }
    }

    /// A place for one more stream of `key_id`, if both bounds allow it.
    pub(super) fn admit(&self, key_id: &str) -> Option<Open> {
        let permit = self.inner.streams.clone().try_acquire_owned().ok()?;
        let mut per_key = self.inner.per_key.lock().expect("stream count lock");
        let open = per_key.entry(key_id.to_string()).or_insert(0);
        if *open >= self.inner.max_per_key {
            return None;
        }
        *open += 1;
        Some(Open::new(permit, self.inner.clone(), key_id.to_string()))
    }
}

/// An open stream: holds its place under both bounds and counts itself in
/// the gauge while it lives.
pub(super) struct Open {
    _permit: OwnedSemaphorePermit,
    hub: Arc<Inner>,
    key_id: String,
}

impl Open {
    fn new(permit: OwnedSemaphorePermit, hub: Arc<Inner>, key_id: String) -> Self {
        metrics::gauge!("farm_web_event_streams").increment(1.0);
        Self { _permit: permit, hub, key_id }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("farm_web_event_streams").decrement(1.0);
        let mut per_key = self.hub.per_key.lock().expect("stream count lock");
        if let Some(open) = per_key.get_mut(&self.key_id) {
            *open -= 1;
            if *open == 0 {
                per_key.remove(&self.key_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> OrderSummary {
        serde_json::from_value(serde_json::json!({
            "order_id": "o1", "source": "api", "seller": "s", "customer": null, "material": "pla",
            "colour": null, "quantity": 1, "status": "MANUFACTURING_STARTED", "total": 1.0, "currency": "EUR",
            "assignee": "Ada", "created_at_ms": 1, "updated_at_ms": 2, "version": 5
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_change_reaches_local_streams_and_a_replica_ignores_its_own_echo() {
        let hub = Hub::new(&WebSettings::default());
        let mut receiver = hub.inner.sender.subscribe();
        hub.publish(&summary()).await;
        let Ok(Message::Order(json)) = receiver.try_recv() else { panic!("no change arrived") };
        assert!(json.contains("\"assignee\":\"Ada\""), "{json}");
        // Its own message coming back from Redis is not sent again...
        let own = format!("{{\"origin\":\"{}\",\"order\":{json}}}", hub.inner.origin);
        hub.relay(own.as_bytes());
        assert!(receiver.try_recv().is_err());
        // ...another replica's is, as the bare order.
        hub.relay(format!("{{\"origin\":\"elsewhere\",\"order\":{json}}}").as_bytes());
        let Ok(Message::Order(relayed)) = receiver.try_recv() else { panic!("the other replica's change is lost") };
        assert_eq!(&*relayed, &*json);
        hub.relay(b"not json");
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn streams_are_bounded_in_all_and_per_key() {
        let hub =
            Hub::new(&WebSettings { max_event_streams: 3, max_event_streams_per_key: 2, ..WebSettings::default() });
        let first = hub.admit("ada").unwrap();
        let _second = hub.admit("ada").unwrap();
        assert!(hub.admit("ada").is_none(), "a third stream of one key");
        let bob = hub.admit("bob").unwrap();
        assert!(hub.admit("carol").is_none(), "past the bound of all streams");
        drop(first);
        assert!(hub.admit("ada").is_some());
        drop(bob);
        assert!(hub.inner.per_key.lock().unwrap().get("bob").is_none(), "a key with no stream is forgotten");
    }
}
