//! Live order changes for every open console: `GET /v1/events`, a stream of
//! server-sent events fed by the same hook that keeps the operators' list
//! cache current (`orders::changed`, after each committed change).
//!
//! A change is sent at once to this process's streams. With Redis set
//! (production runs several API replicas behind a load balancer) it is also
//! published on a pub/sub channel, and every other replica relays it to its
//! own streams: a take on replica A reaches a console connected to replica
//! B. Each message names the replica it came from, so a replica never sends
//! its own change twice. A page drops a change whose version is not newer
//! than the one it shows, so order is not needed either.
//!
//! What can be missed is said, not hidden: a stream that falls behind, or a
//! replica whose subscription broke, sends `resync`, and the page reloads
//! its list. The number of streams is bounded (`max_event_streams`); they
//! end on shutdown, so the server can stop.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::WebSettings;
use crate::auth::{KeyKind, Principal};
use crate::error::{AppError, ErrorBody, ErrorDetail};
use crate::orders::cache::OrderSummary;
use crate::startup::AppState;

/// How long a publish to Redis may take before it is given up (the change
/// still reached this replica's consoles; the others resync on reconnect).
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(events))
}

/// What goes on a stream: an order's new state, or a request to reload.
#[derive(Debug, Clone)]
enum Message {
    Order(Arc<str>),
    Resync,
}

/// The fan-out of order changes to this process's streams, and its link to
/// the other replicas.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: broadcast::Sender<Message>,
    /// This replica's name on the channel.
    origin: String,
    redis: Option<RedisLink>,
    streams: Arc<Semaphore>,
    /// Open streams per key id.
    per_key: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    max_per_key: usize,
    keep_alive: Duration,
    recheck: Duration,
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
        let redis = settings.redis_url.as_deref().and_then(|url| match redis::Client::open(url) {
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
    fn admit(&self, key_id: &str) -> Option<Open> {
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

/// Order changes as they happen: `ready` once the stream is live, then an
/// `order` event (an operators'-list row, JSON) for every change, and
/// `resync` when changes may have been missed (reload the list). Needs an
/// operator's key or session.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "operators",
    responses(
        (status = 200, description = "a stream of server-sent events", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "too many open streams; retry later")
    ),
    security(("bearer" = []))
)]
async fn events(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let hub = &state.web.live;
    let Some(open) = hub.admit(&principal.key_id) else {
        metrics::counter!("farm_web_event_streams_refused_total").increment(1);
        let body = ErrorBody {
            error: ErrorDetail {
                code: "unavailable".into(),
                message: "too many open event streams on this server; retry later".into(),
                details: None,
            },
        };
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        response.headers_mut().insert("retry-after", HeaderValue::from_static("5"));
        return Ok(response);
    };
    let mut recheck = tokio::time::interval(hub.inner.recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = StreamState {
        receiver: hub.inner.sender.subscribe(),
        closing: state.web.closing.clone(),
        started: false,
        caller: Caller { state: state.clone(), headers },
        recheck,
        _open: open,
    };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        if !s.started {
            s.started = true;
            // The interval's first tick is at once: the caller was checked
            // a moment ago.
            s.recheck.tick().await;
            return Some((Ok::<_, Infallible>(Event::default().event("ready").data("{}")), s));
        }
        let next = loop {
            tokio::select! {
                _ = s.closing.cancelled() => return None,
                _ = s.recheck.tick() => {
                    // A revoked key, or a session signed out or expired,
                    // ends the stream: it must not outlive its credentials.
                    if !s.caller.still_an_operator().await {
                        metrics::counter!("farm_web_event_streams_ended_total", "reason" => "credentials").increment(1);
                        return None;
                    }
                }
                next = s.receiver.recv() => break next,
            }
        };
        let event = match next {
            Ok(Message::Order(json)) => Event::default().event("order").data(&*json),
            Ok(Message::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                Event::default().event("resync").data("{}")
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), s))
    });
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(hub.inner.keep_alive)).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer (nginx) would hold the events back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct StreamState {
    receiver: broadcast::Receiver<Message>,
    closing: CancellationToken,
    started: bool,
    caller: Caller,
    recheck: tokio::time::Interval,
    _open: Open,
}

/// Who opened a stream, as the request said it: checked again, the same
/// way (key or session cookie), while the stream lives.
struct Caller {
    state: Arc<AppState>,
    headers: HeaderMap,
}

impl Caller {
    async fn still_an_operator(&self) -> bool {
        let mut request = axum::http::Request::new(());
        *request.headers_mut() = self.headers.clone();
        let (mut parts, ()) = request.into_parts();
        matches!(
            <Principal as axum::extract::FromRequestParts<Arc<AppState>>>::from_request_parts(&mut parts, &self.state)
                .await,
            Ok(principal) if principal.kind == KeyKind::Operator
        )
    }
}

/// An open stream: holds its place under both bounds and counts itself in
/// the gauge while it lives.
struct Open {
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
