//! The webhook routes: a seller's or the CRM's key makes, lists and deletes
//! its webhooks and reads each one's deliveries. Another key's webhook does
//! not exist to it (404).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use scheduler::messages::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{DeliveryRow, NewWebhook, WebhookRow};
use crate::auth::{KeyKind, Principal};
use crate::error::json_rejection;
use crate::error::{AppError, ErrorBody};
use crate::events::EventType;
use crate::state::AppState;

/// Who may have webhooks: those the farm has something to tell.
const SUBSCRIBERS: &[KeyKind] = &[KeyKind::Seller, KeyKind::Crm];

/// Deliveries one page lists at most: a page, as everywhere.
const MAX_DELIVERIES_LISTED: i64 = crate::text::MAX_PAGE as i64;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    /// Where to POST: `http` or `https`, a public address (unless the farm
    /// runs with `FARM_WEBHOOK_ALLOW_PRIVATE=true`), no redirect followed.
    #[schema(format = "uri", pattern = "^https?://", max_length = 2048)]
    url: String,
    /// The event types to hear of; a repeat counts once.
    #[schema(min_items = 1)]
    events: Vec<EventType>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedWebhook {
    webhook_id: String,
    /// Signs every delivery (`Farm-Signature`); shown only now, keep it.
    secret: String,
    url: String,
    events: Vec<String>,
    created_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
struct WebhookList {
    webhooks: Vec<WebhookRow>,
}

/// Makes a webhook: every event of the asked types about the key's own jobs
/// and orders (a seller's: all of its seller's; the CRM's: every order's
/// status too) is POSTed to `url` as `{"id", "type", "created_ms", "data"}`,
/// signed with `Farm-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret,
/// "<t>.<body>")>`. A non-2xx answer or a timeout is retried with backoff
/// for a day.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn create_webhook(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<CreateWebhook>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedWebhook>), AppError> {
    principal.require(SUBSCRIBERS)?;
    let Json(request) = body.map_err(|r| json_rejection(r, state.settings.max_json_bytes as u64))?;
    let settings = &state.settings.webhooks;
    let events = event_types(&request.events)?;
    if let Some(refusal) = crate::text::refusal("url", &request.url, settings.max_url_chars) {
        return Err(AppError::Unprocessable(refusal));
    }
    let url = super::target::parse(&request.url, settings.max_url_chars, settings.allow_private)
        .map_err(|e| AppError::Unprocessable(e.to_string()))?;
    super::target::resolve(&url, settings.allow_private).await.map_err(|e| AppError::Unprocessable(e.to_string()))?;
    // uuid v4 draws from the operating system's CSPRNG: 122 random bits each.
    let webhook_id = format!("wh_{}", uuid::Uuid::new_v4().simple());
    let secret = format!("whsec_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let now = now_ms();
    let url = url.to_string();
    let new = NewWebhook {
        webhook_id: &webhook_id,
        key_id: &principal.key_id,
        url: &url,
        events: &events,
        secret: &secret,
        now_ms: now,
    };
    // Counted and written in one transaction: parallel requests cannot
    // pass the limit together.
    if !state.services.store.create_webhook(&new, settings.max_per_key).await? {
        return Err(AppError::conflict(format!(
            "this key has {} webhooks, the most it may have (FARM_MAX_WEBHOOKS_PER_KEY); delete one first",
            settings.max_per_key
        )));
    }
    tracing::info!(webhook_id, key_id = %principal.key_id, "webhook created");
    Ok((StatusCode::CREATED, Json(CreatedWebhook { webhook_id, secret, url, events, created_ms: now })))
}

/// The asked event types without repeats, in the order asked.
fn event_types(asked: &[EventType]) -> Result<Vec<String>, AppError> {
    if asked.is_empty() {
        return Err(AppError::Unprocessable("`events` is empty; ask for at least one event type".into()));
    }
    let mut events: Vec<String> = Vec::new();
    for event in asked {
        if !events.iter().any(|e| e == event.as_str()) {
            events.push(event.as_str().to_string());
        }
    }
    Ok(events)
}

/// The key's webhooks (without their secrets).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_webhooks(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<WebhookList>, AppError> {
    principal.require(SUBSCRIBERS)?;
    Ok(Json(WebhookList { webhooks: state.services.store.webhooks_of(&principal.key_id).await? }))
}

/// Deletes a webhook; its pending deliveries are given up.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{webhook_id}",
    tag = "webhooks",
    params(("webhook_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(webhook_id): Path<String>,
) -> Result<StatusCode, AppError> {
    principal.require(SUBSCRIBERS)?;
    let id = checked_id(&webhook_id)?;
    if state.services.store.delete_webhook(&principal.key_id, id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound { what: "webhook", id: id.to_string() })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// Deliveries to list, newest first (1 to 500; 50 by default).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct DeliveryPage {
    webhook_id: String,
    deliveries: Vec<DeliveryRow>,
}

/// A webhook's deliveries, newest first, each with its latest attempts
/// (the receiver's status, or why there was none).
#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhook_id}/deliveries",
    tag = "webhooks",
    params(("webhook_id" = String, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(webhook_id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>, AppError> {
    principal.require(SUBSCRIBERS)?;
    let id = checked_id(&webhook_id)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_DELIVERIES_LISTED).contains(&limit) {
        return Err(AppError::BadRequest(format!("`limit` must be 1 to {MAX_DELIVERIES_LISTED}")));
    }
    let store = &state.services.store;
    if store.webhook_of(&principal.key_id, id).await?.is_none() {
        return Err(AppError::NotFound { what: "webhook", id: id.to_string() });
    }
    let deliveries = store.deliveries_of(id, limit).await?;
    Ok(Json(DeliveryPage { webhook_id: id.to_string(), deliveries }))
}

/// A path id that could be a webhook's; any other is simply not found.
fn checked_id(id: &str) -> Result<&str, AppError> {
    match crate::text::refusal("webhook_id", id, crate::text::MAX_ID_CHARS) {
        None => Ok(id),
        // Not echoed whole: an id of megabytes would make a reply as big.
        Some(_) => Err(AppError::NotFound {
            what: "webhook",
            id: id.chars().take(64).collect::<String>().escape_default().to_string(),
        }),
    }
}
