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

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::hub::{Message, Open};
use crate::auth::{KeyKind, Principal};
use crate::error::{AppError, ErrorBody, ErrorDetail};
use crate::state::AppState;
pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(events))
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
