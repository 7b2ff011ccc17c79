//! The order routes: sellers create and follow their orders; operators see
//! the list, take an order and finish it; the CRM approves and cancels.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use scheduler::messages::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::accounts::{OrderStats, stats};
use super::cache::{OrderSummary, Served};
use super::facets::{ListFacets, filtered_page};
use super::moves::{self, visible_order};
use super::parts::PartRow;
use super::reprice::price_order_again;
use super::service::{CreateOrder, CrmEventBody, OrderError, OrderInput, apply_crm, place_order};
use super::status::{OrderEvent, OrderStatus};
use super::store::{Created, CrmOutcome, Cursor, OrderFilter, OrderRow, Transitioned};
use crate::auth::{KeyKind, Principal};
use crate::error::{AppError, ErrorBody, json_rejection};
use crate::state::AppState;
use crate::text;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_order, list_orders))
        .routes(routes!(order_stats))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(retry_pricing))
        .routes(routes!(reprice))
        .routes(routes!(reprice_all))
        .routes(routes!(quote_history))
        .routes(routes!(operator_orders))
        .routes(routes!(take_order))
        .routes(routes!(complete_order))
        .routes(routes!(ship_order))
        .routes(routes!(release_order))
        .routes(routes!(crm_event))
}

const DEFAULT_PAGE: usize = 50;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderView {
    order_id: String,
    /// `api` (a seller over HTTP) or `queue` (the RabbitMQ intake).
    source: String,
    seller: String,
    customer: Option<String>,
    external_id: Option<String>,
    model_id: String,
    material: String,
    colour: Option<String>,
    quantity: i64,
    status: OrderStatus,
    job_id: Option<String>,
    /// The quote, once priced.
    #[schema(value_type = Option<Object>)]
    quote: Option<serde_json::Value>,
    total: Option<f64>,
    currency: Option<String>,
    /// Why pricing failed.
    failure: Option<String>,
    /// The operator who took it.
    assignee: Option<String>,
    /// When the quote's price stops holding: the CRM's approval is refused
    /// after it, until the order is repriced.
    quote_valid_until_ms: Option<i64>,
    created_at_ms: i64,
    updated_at_ms: i64,
    version: i64,
    /// 1, or the number of parts of an order of several.
    part_count: i64,
    /// An order of several parts: each part with its own job, status and
    /// quote (in a list, and for an order of one part, absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<Vec<PartView>>,
}

/// A part of an order of several.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PartView {
    /// From 1, in the order given.
    position: i64,
    model_id: String,
    material: String,
    colour: Option<String>,
    quantity: i64,
    /// The job that prices it (a retry replaces it).
    job_id: Option<String>,
    /// `pricing`, `priced`, `failed`, or `cancelled` (with its order,
    /// before it was priced).
    status: &'static str,
    /// Its own quote, as if ordered alone; the order's quote charges the
    /// setup fee and the minimum order once for all parts.
    #[schema(value_type = Option<Object>)]
    quote: Option<serde_json::Value>,
    total: Option<f64>,
    failure: Option<String>,
}

impl PartView {
    fn of(p: PartRow, order: OrderStatus) -> Result<Self, AppError> {
        let quote = p.quote.as_deref().map(serde_json::from_str).transpose().map_err(AppError::internal)?;
        let status = match (&quote, &p.failure) {
            (_, Some(_)) => "failed",
            (Some(_), None) => "priced",
            // Its job was cancelled with the order.
            (None, None) if order == OrderStatus::Cancelled => "cancelled",
            (None, None) => "pricing",
        };
        Ok(Self {
            position: p.position,
            model_id: p.model_id,
            material: p.material,
            colour: p.colour,
            quantity: p.quantity,
            job_id: p.job_id,
            status,
            quote,
            total: p.total,
            failure: p.failure,
        })
    }
}

impl OrderView {
    /// The order with its parts, when it has several.
    async fn with_parts(state: &AppState, o: OrderRow) -> Result<Self, AppError> {
        let parts = if o.part_count > 1 {
            let rows = state.services.store.order_parts(&o.order_id).await?;
            Some(rows.into_iter().map(|p| PartView::of(p, o.status)).collect::<Result<Vec<_>, _>>()?)
        } else {
            None
        };
        Ok(Self { parts, ..Self::of(o)? })
    }

    fn of(o: OrderRow) -> Result<Self, AppError> {
        let quote = o.quote.as_deref().map(serde_json::from_str).transpose().map_err(AppError::internal)?;
        Ok(Self {
            order_id: o.order_id,
            source: o.source,
            seller: o.seller,
            customer: o.customer,
            external_id: o.external_id,
            model_id: o.model_id,
            material: o.material,
            colour: o.colour,
            quantity: o.quantity,
            status: o.status,
            job_id: o.job_id,
            quote,
            total: o.total,
            currency: o.currency,
            failure: o.failure,
            assignee: o.assignee,
            quote_valid_until_ms: o.quote_valid_until_ms,
            created_at_ms: o.created_at_ms,
            updated_at_ms: o.updated_at_ms,
            version: o.version,
            part_count: o.part_count,
            parts: None,
        })
    }
}

/// Creates an order; its pricing starts on its own. The same
/// `Idempotency-Key` returns the same order (200) and creates nothing.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and body returns the same order")),
    responses(
        (status = 201, body = OrderView, description = "created"),
        (status = 200, body = OrderView, description = "a retry of an earlier request"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the key was used for another request"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "the key has its quota of jobs in flight: see Retry-After"), (status = 500, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn create_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Json<CreateOrder>, JsonRejection>,
) -> Result<(StatusCode, Json<OrderView>), AppError> {
    principal.require(&[KeyKind::Seller])?;
    let Json(request) = body.map_err(|r| json_rejection(r, state.settings.max_json_bytes as u64))?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value.to_str().map_err(|_| AppError::BadRequest("`Idempotency-Key` must be text".into()))?.trim();
            if key.is_empty() || key.len() > text::MAX_IDEMPOTENCY_KEY {
                return Err(AppError::BadRequest(format!(
                    "`Idempotency-Key` must be 1 to {} characters",
                    text::MAX_IDEMPOTENCY_KEY
                )));
            }
            Some(key.to_string())
        }
    };
    let input = OrderInput {
        source: "api",
        seller: principal.name.clone(),
        seller_key_id: Some(principal.key_id.clone()),
        external_id: None,
        idempotency_key,
        request,
    };
    match place_order(&state, input).await? {
        Created::New(row) => Ok((StatusCode::CREATED, Json(OrderView::with_parts(&state, row).await?))),
        Created::Existing(row) => Ok((StatusCode::OK, Json(OrderView::with_parts(&state, row).await?))),
        Created::KeyReused(row) => Err(AppError::Conflict {
            message: "this `Idempotency-Key` was used for a different order; use a new key for a new order".into(),
            details: Some(serde_json::json!({ "order_id": row.order_id })),
        }),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only orders with this status.
    status: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl ListQuery {
    fn parse(&self) -> Result<(Option<OrderStatus>, Option<Cursor>, usize), AppError> {
        let status = self
            .status
            .as_deref()
            .map(|s| OrderStatus::parse(s).ok_or_else(|| AppError::BadRequest(format!("unknown order status `{s}`"))))
            .transpose()?;
        let cursor = self
            .cursor
            .as_deref()
            .map(|c| {
                if let Some(why) = text::refusal("cursor", c, text::MAX_ID_CHARS) {
                    return Err(AppError::BadRequest(why));
                }
                Cursor::decode(c).ok_or_else(|| AppError::BadRequest(format!("`{c}` is not a cursor of this list")))
            })
            .transpose()?;
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > text::MAX_PAGE {
            return Err(AppError::BadRequest(format!("`limit` must be 1 to {}, got {limit}", text::MAX_PAGE)));
        }
        Ok((status, cursor, limit))
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct OrderPage {
    orders: Vec<OrderView>,
    /// Pass back as `cursor` for the next page; absent on the last one.
    next_cursor: Option<String>,
}

/// The caller's own orders, newest first (a seller sees only its own).
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    params(ListQuery),
    responses((status = 200, body = OrderPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_orders(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<OrderPage>, AppError> {
    principal.require(&[KeyKind::Seller, KeyKind::Operator])?;
    let (status, cursor, limit) = query.parse()?;
    let seller = (principal.kind == KeyKind::Seller).then(|| principal.name.clone());
    let rows = state.services.store.orders_page(&OrderFilter { status, seller }, cursor.as_ref(), limit as i64).await?;
    let next_cursor = (rows.len() == limit).then(|| rows.last().map(cursor_of)).flatten();
    let orders = rows.into_iter().map(OrderView::of).collect::<Result<_, _>>()?;
    Ok(Json(OrderPage { orders, next_cursor }))
}

fn cursor_of(o: &OrderRow) -> String {
    Cursor { created_at_ms: o.created_at_ms, order_id: o.order_id.clone() }.encode()
}

/// An order, with its quote once priced.
#[utoipa::path(
    get,
    path = "/v1/orders/{order_id}",
    tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, AppError> {
    principal.require(&[KeyKind::Seller, KeyKind::Operator, KeyKind::Crm])?;
    let order = visible_order(&state, &principal, &order_id).await?;
    Ok(Json(OrderView::with_parts(&state, order).await?))
}

/// Cancels an order before manufacturing starts (its seller or an
/// operator); a pricing job still running is cancelled with it.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/cancel",
    tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn cancel_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, AppError> {
    principal.require(&[KeyKind::Seller, KeyKind::Operator])?;
    let row = moves::cancel(&state, &principal, &order_id).await?;
    Ok(Json(OrderView::with_parts(&state, row).await?))
}

/// Prices an order whose pricing failed again, with a new job (its seller
/// or an operator), once the cause is fixed: the order goes back to
/// `PRICING` and settles as any other. Its failure stays in its history.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/retry-pricing",
    tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 202, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn retry_pricing(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<(StatusCode, Json<OrderView>), AppError> {
    price_again(&state, &principal, order_id, OrderEvent::RetryPricing).await
}

/// Prices a `PRICED` order, not yet approved, again under the current price
/// book (its seller or an operator): its quote expired, or the book
/// changed. The old quote is kept (`GET /v1/orders/{id}/quotes`); the
/// order goes back to `PRICING` and settles as any other.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/reprice",
    tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 202, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn reprice(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<(StatusCode, Json<OrderView>), AppError> {
    price_again(&state, &principal, order_id, OrderEvent::Reprice).await
}

/// A retry of failed pricing or a reprice: a new job with the order's
/// inputs, queued with the order's move back to `PRICING`.
async fn price_again(
    state: &Arc<AppState>,
    principal: &Principal,
    order_id: String,
    event: OrderEvent,
) -> Result<(StatusCode, Json<OrderView>), AppError> {
    principal.require(&[KeyKind::Seller, KeyKind::Operator])?;
    let order = visible_order(state, principal, &order_id).await?;
    let store = &state.services.store;
    if let Some(key_id) = &order.seller_key_id {
        // The jobs this will queue: one, or a reprice's every part, or a
        // retry's failed parts.
        let jobs = if order.part_count > 1 && event == OrderEvent::RetryPricing {
            store.order_parts(&order_id).await?.iter().filter(|p| p.failure.is_some()).count().max(1)
        } else {
            usize::try_from(order.part_count).unwrap_or(usize::MAX)
        };
        let jobs = u32::try_from(jobs).unwrap_or(u32::MAX);
        crate::quota::check_jobs(store, &state.settings.quotas, key_id, jobs).await?;
    }
    let terms = calculator::order::OrderTerms::of(&state.services.pricing.book);
    let slow = crate::pricing::slow_lane(&state.settings);
    let quota = Some(state.settings.quotas.jobs_in_flight);
    let again = price_order_again(store, &order, event, &terms, slow, quota, &principal.name, now_ms()).await?;
    let Some((moved, _)) = again else {
        return Err(AppError::internal(format!("order {order_id} names a model that is not stored")));
    };
    let row = match moved {
        Transitioned::Done(row) => *row,
        Transitioned::Illegal { current, error } => {
            return Err(AppError::Conflict {
                message: error.to_string(),
                details: Some(serde_json::json!({ "status": current.status })),
            });
        }
        Transitioned::NotFound => return Err(AppError::NotFound { what: "order", id: order_id }),
    };
    state.relay_wakeup.notify_one();
    super::changed(state, &row).await;
    Ok((StatusCode::ACCEPTED, Json(OrderView::with_parts(state, row).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RepriceAll {
    /// The current price book's version: orders priced under any other are
    /// priced again under it. Naming it guards against repricing under a
    /// book other than the one meant.
    before_version: String,
    /// Orders to reprice at most in this call; call again for more.
    #[serde(default = "default_reprice_limit", deserialize_with = "crate::numbers::whole_number")]
    #[schema(minimum = 1, maximum = 5000, default = 500)]
    limit: u32,
}

fn default_reprice_limit() -> u32 {
    500
}

#[derive(Serialize, ToSchema)]
struct RepricedAll {
    price_book_version: String,
    repriced: Vec<crate::orders::reprice::Repriced>,
}

/// Prices again every order priced and not yet approved whose quote came
/// from a price book other than the current one (operators), oldest first,
/// up to `limit`; each keeps its old quote in its history.
#[utoipa::path(
    post,
    path = "/v1/operator/orders/reprice",
    tag = "operators",
    request_body = RepriceAll,
    responses((status = 202, body = RepricedAll), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn reprice_all(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<RepriceAll>, JsonRejection>,
) -> Result<(StatusCode, Json<RepricedAll>), AppError> {
    principal.require(&[KeyKind::Operator])?;
    let Json(request) = body.map_err(|r| json_rejection(r, state.settings.max_json_bytes as u64))?;
    let current = state.services.pricing.book.version.clone();
    if request.before_version != current {
        return Err(AppError::Conflict {
            message: format!(
                "the farm prices under price book `{current}`, not `{}`; name the current version",
                request.before_version.escape_default()
            ),
            details: Some(serde_json::json!({ "price_book_version": current })),
        });
    }
    let limit = i64::from(request.limit);
    if !(1..=5000).contains(&limit) {
        return Err(AppError::Unprocessable("`limit` must be 1 to 5000".into()));
    }
    let slow = crate::pricing::slow_lane(&state.settings);
    let store = &state.services.store;
    let terms = calculator::order::OrderTerms::of(&state.services.pricing.book);
    let repriced = crate::orders::reprice::reprice_under(store, &terms, slow, limit, &principal.name, now_ms()).await?;
    state.relay_wakeup.notify_one();
    for done in &repriced {
        if let Some(order) = store.order(&done.order_id).await? {
            super::changed(&state, &order).await;
        }
    }
    Ok((StatusCode::ACCEPTED, Json(RepricedAll { price_book_version: current, repriced })))
}

#[derive(Serialize, ToSchema)]
struct QuoteHistory {
    order_id: String,
    /// The quote the order has now, if it is priced.
    #[schema(value_type = Option<Object>)]
    current: Option<serde_json::Value>,
    /// The quotes it had before it was priced again, oldest first.
    previous: Vec<PreviousQuote>,
}

#[derive(Serialize, ToSchema)]
struct PreviousQuote {
    job_id: Option<String>,
    #[schema(value_type = Object)]
    quote: serde_json::Value,
    replaced_at_ms: i64,
}

/// An order's quote and the ones it had before (its seller or an operator).
#[utoipa::path(
    get,
    path = "/v1/orders/{order_id}/quotes",
    tag = "orders",
    params(("order_id" = String, Path)),
    responses((status = 200, body = QuoteHistory), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn quote_history(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<Json<QuoteHistory>, AppError> {
    principal.require(&[KeyKind::Seller, KeyKind::Operator])?;
    let order = visible_order(&state, &principal, &order_id).await?;
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).map_err(AppError::internal);
    let previous = state
        .services
        .store
        .order_quote_history(&order_id)
        .await?
        .into_iter()
        .map(|(job_id, quote, replaced_at_ms)| Ok(PreviousQuote { job_id, quote: parse(&quote)?, replaced_at_ms }))
        .collect::<Result<_, AppError>>()?;
    let current = order.quote.as_deref().map(parse).transpose()?;
    Ok(Json(QuoteHistory { order_id, current, previous }))
}

#[derive(Debug, Serialize, ToSchema)]
struct OperatorPage {
    orders: Vec<OrderSummary>,
    next_cursor: Option<String>,
    /// `cache`, or `database` while the cache is cold or off.
    served_from: &'static str,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OperatorListQuery {
    /// Only orders with this status (default `MANUFACTURING_APPROVED`).
    status: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only orders of this material.
    material: Option<String>,
    /// Only orders priced for this machine.
    machine: Option<String>,
    /// Only orders this operator took.
    assignee: Option<String>,
}

/// A page of one status, from the cache when it can answer, else from the
/// database.
async fn list_page(
    state: &AppState,
    status: OrderStatus,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<(Vec<OrderSummary>, Served), AppError> {
    let cached =
        if state.settings.operator_cache { state.services.cache.page(status, cursor, limit).await } else { None };
    match cached {
        Some(orders) => Ok((orders, Served::Cache)),
        None => {
            let rows = state
                .services
                .store
                .list_page(&OrderFilter { status: Some(status), seller: None }, cursor, limit as i64)
                .await?;
            Ok((rows.iter().map(OrderSummary::from).collect(), Served::Database))
        }
    }
}

/// The operators' list, newest first: served from the cache every status
/// change keeps current (the database while it is cold or unavailable).
/// Filters by material, machine and assignee look through at most a bounded
/// number of orders per request; a page may then be short, with a
/// `next_cursor` to go on from.
#[utoipa::path(
    get,
    path = "/v1/operator/orders",
    tag = "operators",
    params(OperatorListQuery),
    responses((status = 200, body = OperatorPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn operator_orders(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(query): Query<OperatorListQuery>,
) -> Result<Json<OperatorPage>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let list = ListQuery { status: query.status, limit: query.limit, cursor: query.cursor };
    let (status, cursor, limit) = list.parse()?;
    let status = status.unwrap_or(OrderStatus::ManufacturingApproved);
    let facets = ListFacets { material: query.material, machine: query.machine, assignee: query.assignee };
    let (orders, next, served) = if facets.is_empty() {
        let (orders, served) = list_page(&state, status, cursor.as_ref(), limit).await?;
        let next = (orders.len() == limit)
            .then(|| orders.last().map(|o| Cursor { created_at_ms: o.created_at_ms, order_id: o.order_id.clone() }))
            .flatten();
        (orders, next, served)
    } else {
        let from_database = AtomicBool::new(false);
        let max_scan = state.settings.web.max_filter_scan.max(1);
        let page = filtered_page(&facets, cursor, limit, max_scan, text::MAX_PAGE, |cursor, batch| {
            let (state, from_database) = (&state, &from_database);
            async move {
                let (rows, served) = list_page(state, status, cursor.as_ref(), batch).await?;
                if served == Served::Database {
                    from_database.store(true, Ordering::Relaxed);
                }
                Ok::<_, AppError>(rows)
            }
        })
        .await?;
        let served = if from_database.load(Ordering::Relaxed) { Served::Database } else { Served::Cache };
        (page.orders, page.next, served)
    };
    let result = match (served, state.settings.operator_cache) {
        (Served::Cache, _) => "hit",
        (Served::Database, true) => "miss",
        (Served::Database, false) => "bypass",
    };
    metrics::counter!("farm_operator_cache_requests_total", "result" => result).increment(1);
    let served_from = if served == Served::Cache { "cache" } else { "database" };
    Ok(Json(OperatorPage { orders, next_cursor: next.map(|c| c.encode()), served_from }))
}

/// Takes an approved order into production. Exactly one operator wins; the
/// others get 409 with who took it.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/take",
    tag = "operators",
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "taken by someone else, or not approved"), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn take_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let row = moves::take(&state, &principal, &order_id).await?;
    Ok(Json(OrderView::with_parts(&state, row).await?))
}

/// Marks an order made; only the operator who took it may.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/complete",
    tag = "operators",
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn complete_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let row = moves::takers_move(&state, &principal, &order_id, OrderEvent::Complete).await?;
    Ok(Json(OrderView::with_parts(&state, row).await?))
}

/// Gives a taken order back to the list, unmade; only the operator who took
/// it may.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/release",
    tag = "operators",
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn release_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let row = moves::takers_move(&state, &principal, &order_id, OrderEvent::Release).await?;
    Ok(Json(OrderView::with_parts(&state, row).await?))
}

/// Marks a completed order shipped.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/ship",
    tag = "operators",
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn ship_order(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let row = moves::ship(&state, &principal, &order_id).await?;
    Ok(Json(OrderView::with_parts(&state, row).await?))
}

#[derive(Debug, Serialize, ToSchema)]
struct CrmEventResult {
    /// `applied`, `duplicate` (seen before) or `stale` (older than one applied).
    outcome: &'static str,
    order: Option<OrderView>,
}

/// A CRM status event over HTTP: the same body as on the CRM queue.
#[utoipa::path(
    post,
    path = "/v1/crm/events",
    tag = "crm",
    request_body = CrmEventBody,
    responses((status = 200, body = CrmEventResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the order's status does not allow it (not remembered: the same event applies once the status does), or the event id was used before with another body"), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn crm_event(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<CrmEventBody>, JsonRejection>,
) -> Result<Json<CrmEventResult>, AppError> {
    principal.require(&[KeyKind::Crm])?;
    let Json(body) = body.map_err(|r| json_rejection(r, state.settings.max_json_bytes as u64))?;
    let event = body.to_event().map_err(AppError::Unprocessable)?;
    match apply_crm(&state, &event).await? {
        CrmOutcome::Applied(row) => {
            let order = Some(OrderView::with_parts(&state, *row).await?);
            Ok(Json(CrmEventResult { outcome: "applied", order }))
        }
        CrmOutcome::Duplicate => Ok(Json(CrmEventResult { outcome: "duplicate", order: None })),
        CrmOutcome::Reused => Err(AppError::conflict(format!(
            "event `{}` was received before with another body; an event id names one event",
            event.event_id
        ))),
        CrmOutcome::Stale => Ok(Json(CrmEventResult { outcome: "stale", order: None })),
        CrmOutcome::Illegal { current, error } => Err(AppError::Conflict {
            message: error.to_string(),
            details: Some(serde_json::json!({ "status": current.status })),
        }),
        CrmOutcome::UnknownOrder => Err(AppError::NotFound { what: "order", id: event.order_id }),
    }
}

/// How many orders were received, priced, in flight, failed and
/// dead-lettered, per source.
#[utoipa::path(
    get,
    path = "/v1/orders/stats",
    tag = "operators",
    responses((status = 200, body = OrderStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn order_stats(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<OrderStats>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    Ok(Json(stats(&state.services.store, &state.services.topology.orders_incoming).await?))
}

impl From<OrderError> for AppError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Pricing(e) => e.into(),
            OrderError::Corrupt(why) => AppError::internal(why),
            OrderError::NotFound { order_id } => AppError::NotFound { what: "order", id: order_id },
            OrderError::Refused { message, status, assignee } => AppError::Conflict {
                message,
                details: Some(serde_json::json!({ "status": status, "assignee": assignee })),
            },
            OrderError::NotTheTaker(message) => AppError::Forbidden(message),
            OrderError::Store(e) => e.into(),
        }
    }
}
