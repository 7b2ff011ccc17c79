//! HTTP routes: models, pricing jobs, health, metrics and the OpenAPI
//! document; the order routes live in `orders::routes`.
//!
//! Routes are registered through utoipa's `OpenApiRouter`, so every route
//! and the OpenAPI document come from the same registration.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use scheduler::messages::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::auth::{KeyKind, Principal};
use crate::error::{AppError, ErrorBody, json_rejection};
use crate::state::AppState;
use crate::store::{Cancelled, JobRow, JobStatus, ModelRow};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pricing-farm",
        description = "Pricing farm and MES order API for made-to-order 3D printing. Every /v1 route but \
                       this document needs `Authorization: Bearer <key>`; `farm keys` mints keys."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "models", description = "STL models; each belongs to the seller (or key) that uploaded it"),
        (name = "pricing", description = "Pricing jobs: queued, priced by a worker, cancelled"),
        (name = "orders", description = "Orders of sellers and the old integration"),
        (name = "operators", description = "The factory operators' list and actions"),
        (name = "crm", description = "Status events from the CRM"),
        (name = "webhooks", description = "Signed deliveries of the farm's events to a URL of the caller's"),
        (name = "pages", description = "Sessions and reference data of the console and the quote page"),
        (name = "ops", description = "Probes and metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("farm key").build()),
        );
    }
}

/// Every documented route, registered once: the router and the OpenAPI
/// document both come from this.
fn registrations(model_limit: usize) -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(upload_model).layer(DefaultBodyLimit::max(model_limit)))
        .routes(routes!(download_model))
        .routes(routes!(model_analysis))
        .routes(routes!(create_job))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .merge(crate::orders::routes::router())
        .merge(crate::letters::router())
        .merge(crate::webhooks::routes::router())
        .merge(crate::web::session::router())
        .merge(crate::web::reference_route::router())
        .merge(crate::web::live::router())
        .merge(crate::web::assets::router())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The OpenAPI document as the routes generate it, before
/// [`crate::contract::exact_document`] writes the run-time limits in.
#[cfg(test)]
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    registrations(usize::MAX).split_for_parts().1
}

/// The router and the OpenAPI document it serves at `/v1/openapi.json`.
pub(crate) fn router(state: Arc<AppState>) -> (Router, utoipa::openapi::OpenApi) {
    let model_limit = usize::try_from(state.settings.max_model_bytes).unwrap_or(usize::MAX);
    let (router, openapi) = registrations(model_limit).split_for_parts();
    let facts = crate::contract::ContractFacts::of(
        &state.services.pricing.book,
        state.settings.max_model_bytes,
        state.settings.max_order_parts,
    );
    let document = Arc::new(crate::contract::exact_document(&openapi, &facts));
    let router = router
        .route("/v1/openapi.json", axum::routing::get(move || async move { Json(document.as_ref().clone()) }))
        .layer(DefaultBodyLimit::max(state.settings.max_json_bytes))
        .layer(middleware::from_fn_with_state(
            BodyLimits { model: state.settings.max_model_bytes, json: state.settings.max_json_bytes as u64 },
            refuse_declared_oversize,
        ))
        .layer(middleware::from_fn(crate::contract::json_client_errors))
        .layer(middleware::from_fn(record_http_metrics))
        .with_state(state);
    (router, openapi)
}

/// The body limits, for answering a declared length before any byte is read.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    model: u64,
    json: u64,
}

/// A request whose `Content-Length` is over its route's limit is answered
/// 413 at once: otherwise the server would wait for a body that may never
/// come (a client declaring a terabyte and sending three bytes held its
/// connection until the request timeout).
async fn refuse_declared_oversize(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let limit = if request.uri().path() == "/v1/models" { limits.model } else { limits.json };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => AppError::PayloadTooLarge { limit }.into_response(),
        _ => next.run(request).await,
    }
}

/// The label for a request's method: the standard ones by name, any other
/// as `other`, so a client inventing method names cannot grow the metrics
/// without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Counts requests and their latency per route template (not per URL, so a
/// job id never becomes a label value).
async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    // One span per request: a caller's `traceparent` (the CRM's, a seller's)
    // makes it part of their trace; the job it queues carries it on.
    let span = tracing::info_span!(
        "http.request",
        "otel.name" = format!("{method} {route}"),
        "otel.kind" = "server",
        "http.request.method" = %method,
        "http.route" = %route,
        "http.response.status_code" = tracing::field::Empty,
    );
    scheduler::trace::continue_from(
        &span,
        request.headers().iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    let status = response.status().as_u16().to_string();
    metrics::counter!("farm_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("farm_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Any valid key may use the pricing API.
const ANY_KEY: &[KeyKind] = &[KeyKind::Seller, KeyKind::Operator, KeyKind::Crm];

#[derive(Serialize, ToSchema)]
struct ModelCreated {
    /// The uploader's handle for these bytes (64 hex digits): the same bytes
    /// give the same owner the same id, and another owner a different one.
    model_id: String,
    /// False when this owner uploaded the same bytes before.
    created: bool,
    triangles: i64,
    size_bytes: i64,
    /// Found from the bytes, never the name: `binary` or `ascii` (STL), `3mf` or `obj`.
    format: String,
}

/// Stores a model (the body is the file's bytes: STL, 3MF or OBJ).
#[utoipa::path(
    post,
    path = "/v1/models",
    tag = "models",
    request_body(content = Vec<u8>, content_type = "model/stl", description = "The model file: STL (binary or ASCII), 3MF or OBJ, told apart by content"),
    responses(
        (status = 201, body = ModelCreated),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "over a quota, or too many uploads at once: see Retry-After"),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn upload_model(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<ModelCreated>), AppError> {
    principal.require(ANY_KEY)?;
    // The permit, taken before a byte is read, bounds how many uploads are
    // spooled and checked at once (disk and CPU; memory is a frame each).
    let Ok(_slot) = state.upload_slots.try_acquire() else {
        metrics::counter!("farm_uploads_refused_total", "reason" => "concurrency").increment(1);
        return Err(AppError::TooManyRequests {
            message: format!(
                "{} uploads are being read already; try again shortly",
                state.settings.quotas.concurrent_uploads
            ),
            retry_after_s: 1,
        });
    };
    crate::quota::check_upload(&state.services.store, &state.settings.quotas, &principal, 0, now_ms())
        .await
        .inspect_err(|_| {
            metrics::counter!("farm_uploads_refused_total", "reason" => "quota").increment(1);
        })?;
    let spooled = crate::upload::spool(body, &state.settings.spool_dir, state.settings.max_model_bytes).await?;
    crate::quota::check_upload(&state.services.store, &state.settings.quotas, &principal, spooled.size, now_ms())
        .await?;
    // Parsing and hashing a large model takes real CPU: keep it off the runtime.
    let limits = state.settings.mesh_limits;
    let (path, size) = (spooled.path.to_path_buf(), spooled.size);
    let checked = scheduler::compute::run_on(&state.compute, move || crate::upload::check(&path, size, &limits))
        .await
        .map_err(AppError::internal)?
        .map_err(|e| match e {
            crate::upload::CheckError::Model(e) => AppError::InvalidModel(e.to_string()),
            crate::upload::CheckError::Io(e) => AppError::internal(e),
        })?;
    let (info, content_sha256) = (checked.info, checked.content_sha256);
    let owner = crate::quota::owner_of(&principal);
    let model_id = crate::quota::model_handle(&owner, &content_sha256);
    let (triangles, format) = (info.triangles, info.format);
    if triangles == 0 {
        return Err(AppError::InvalidModel("the file holds no triangles".into()));
    }
    let row = ModelRow {
        model_id: model_id.clone(),
        size_bytes: i64::try_from(spooled.size).unwrap_or(i64::MAX),
        triangles: triangles as i64,
        format: format.as_str().into(),
        created_at_ms: now_ms(),
        owner: Some(owner),
        uploader_key_id: Some(principal.key_id.clone()),
    };
    let created = match state.services.store.model(&model_id).await? {
        Some(_) => false,
        None => {
            // Blob first, row second: a row never names a missing blob.
            state
                .services
                .blobs
                .put_file(&scheduler::blob::model_key(&model_id), &spooled.path)
                .await
                .map_err(|e| AppError::Unavailable(e.to_string()))?;
            state.services.store.insert_model(&row).await?
        }
    };
    if created {
        metrics::counter!("farm_models_stored_total").increment(1);
    }
    let body =
        ModelCreated { model_id, created, triangles: row.triangles, size_bytes: row.size_bytes, format: row.format };
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Deserialize, ToSchema)]
struct CreateJob {
    model_id: String,
    /// A material of the price book: it picks the technology.
    material: String,
    #[serde(default = "crate::numbers::one", deserialize_with = "crate::numbers::whole_number")]
    quantity: u32,
    #[serde(default)]
    colour: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct JobAccepted {
    job_id: String,
    /// `queued`, or `succeeded` when the quote cache answered at once.
    status: &'static str,
}

/// A pricing job: the same model, material, colour and quantity under the
/// same price book is answered from the quote cache (201); otherwise it is
/// queued (202).
#[utoipa::path(
    post,
    path = "/v1/pricing-jobs",
    tag = "pricing",
    request_body = CreateJob,
    responses(
        (status = 202, body = JobAccepted, description = "queued"),
        (status = 201, body = JobAccepted, description = "answered from the quote cache"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "the key has its quota of jobs in flight: see Retry-After"), (status = 500, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn create_job(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<CreateJob>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    principal.require(ANY_KEY)?;
    let Json(mut request) = body.map_err(|r| json_rejection(r, state.settings.max_json_bytes as u64))?;
    request.material = crate::text::normalised_name(&request.material);
    request.colour = request.colour.as_deref().map(crate::text::normalised_name);
    let ask = crate::pricing::JobAsk {
        model_id: &request.model_id,
        material: &request.material,
        quantity: request.quantity,
        colour: request.colour.as_deref(),
        jobs_at_once: 1,
    };
    let owner = crate::quota::owner_of(&principal);
    let key_id = Some(principal.key_id.as_str());
    let prepared = crate::pricing::prepare_job(&state, ask, &[], &owner, key_id, now_ms()).await?;
    let job = prepared.job;
    let location = format!("/v1/pricing-jobs/{}", job.job_id);
    match prepared.cached {
        Some((quote, key)) => {
            state.services.store.create_answered_job(&job, &quote, &key).await?;
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(JobAccepted { job_id: job.job_id, status: "succeeded" }),
            ))
        }
        None => {
            state.services.store.create_job(&job, &job.message()).await?;
            state.relay_wakeup.notify_one();
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(JobAccepted { job_id: job.job_id, status: "queued" }),
            ))
        }
    }
}

/// The model `model_id` as `principal` may see it: its owner's keys and
/// operators (who print it) may; to anyone else it does not exist.
async fn visible_model(state: &AppState, principal: &Principal, model_id: String) -> Result<ModelRow, AppError> {
    principal.require(ANY_KEY)?;
    if crate::text::refusal("model_id", &model_id, crate::text::MAX_ID_CHARS).is_some() {
        return Err(AppError::NotFound { what: "model", id: model_id.escape_default().to_string() });
    }
    let owner = crate::quota::owner_of(principal);
    let model = state.services.store.model(&model_id).await?;
    match model {
        Some(m) if principal.kind == KeyKind::Operator || crate::quota::usable_by(&m, &owner) => Ok(m),
        _ => Err(AppError::NotFound { what: "model", id: model_id }),
    }
}

/// The media type and file extension of a stored model, by the format its
/// bytes were found to be.
fn model_media(format: &str) -> (&'static str, &'static str) {
    match format {
        "3mf" => ("model/3mf", "3mf"),
        "obj" => ("model/obj", "obj"),
        _ => ("model/stl", "stl"),
    }
}

/// Downloads a model's file, as it was uploaded: to its owner's keys and to
/// operators. The bytes are streamed from the model store.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}",
    tag = "models",
    params(("model_id" = String, Path)),
    responses(
        (status = 200, description = "The file's bytes; `Content-Type` says its format",
            content((Vec<u8> = "model/stl"), (Vec<u8> = "model/3mf"), (Vec<u8> = "model/obj"))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn download_model(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(model_id): Path<String>,
) -> Result<Response, AppError> {
    let model = visible_model(&state, &principal, model_id).await?;
    let stream =
        state.services.blobs.stream(&scheduler::blob::model_key(&model.model_id)).await.map_err(|e| match e {
            // The row is written after the blob, so a row without one is a
            // fault of the store, not of the request.
            scheduler::blob::BlobError::NotFound { .. } => AppError::internal(e),
            other => AppError::Unavailable(other.to_string()),
        })?;
    let (media, extension) = model_media(&model.format);
    let headers = [
        (header::CONTENT_TYPE, media.to_string()),
        (header::CONTENT_LENGTH, model.size_bytes.to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.{extension}\"", model.model_id)),
    ];
    Ok((headers, axum::body::Body::from_stream(stream)).into_response())
}

#[derive(Serialize, ToSchema)]
struct ModelAnalysis {
    model_id: String,
    format: String,
    triangles: i64,
    size_bytes: i64,
    /// The mesh facts (volume, area, box, shells, printability) as the
    /// latest quote of this model measured them.
    #[schema(value_type = Object)]
    analysis: serde_json::Value,
}

/// A model's mesh facts, from the latest job that priced it: the API never
/// analyses a model itself. A model never priced yet answers 409.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/analysis",
    tag = "models",
    params(("model_id" = String, Path)),
    responses(
        (status = 200, body = ModelAnalysis),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 500, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn model_analysis(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(model_id): Path<String>,
) -> Result<Json<ModelAnalysis>, AppError> {
    let model = visible_model(&state, &principal, model_id).await?;
    let Some(quote) = state.services.store.latest_quote_of_model(&model.model_id).await? else {
        return Err(AppError::conflict(
            "the model has not been analysed yet: it is analysed when it is priced (POST /v1/pricing-jobs)",
        ));
    };
    let mut quote: serde_json::Value = serde_json::from_str(&quote).map_err(AppError::internal)?;
    let analysis = quote
        .get_mut("analysis")
        .map(serde_json::Value::take)
        .ok_or_else(|| AppError::internal(format!("the quote of model {} holds no analysis", model.model_id)))?;
    Ok(Json(ModelAnalysis {
        model_id: model.model_id,
        format: model.format,
        triangles: model.triangles,
        size_bytes: model.size_bytes,
        analysis,
    }))
}

/// A job as a seller or operator sees it. A seller sees only the jobs its
/// keys submitted.
async fn visible_job(state: &AppState, principal: &Principal, job_id: String) -> Result<JobRow, AppError> {
    // No job has an id like that: answered without asking the database.
    if crate::text::refusal("job_id", &job_id, crate::text::MAX_ID_CHARS).is_some() {
        return Err(AppError::NotFound { what: "pricing job", id: job_id.escape_default().to_string() });
    }
    let job = state.services.store.job(&job_id).await?;
    let visible = match &job {
        None => false,
        // Operators answer for every price the farm gives.
        Some(_) if principal.kind == KeyKind::Operator => true,
        // A seller sees the jobs of every key of its own.
        Some(job) if principal.kind == KeyKind::Seller => match &job.owner_key_id {
            Some(key) => state.services.store.key(key).await?.is_some_and(|k| k.name == principal.name),
            None => false,
        },
        // Any other key sees only the jobs it created.
        Some(job) => job.owner_key_id.as_deref() == Some(principal.key_id.as_str()),
    };
    match job {
        Some(job) if visible => Ok(job),
        _ => Err(AppError::NotFound { what: "pricing job", id: job_id }),
    }
}

#[derive(Serialize, ToSchema)]
struct JobCancelled {
    job_id: String,
    status: &'static str,
    /// What the job was doing when it was cancelled: `queued` or `running`.
    was: String,
}

/// Cancels a queued job (it is skipped when delivered) or a running one (its
/// worker stops it within about a second). Only the key that created the job
/// may; an order's job is cancelled with its order.
#[utoipa::path(
    post,
    path = "/v1/pricing-jobs/{job_id}/cancel",
    tag = "pricing",
    params(("job_id" = String, Path)),
    responses(
        (status = 200, body = JobCancelled),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "another key created the job"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has already ended, or prices an order (cancel the order)"),
        (status = 500, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn cancel_job(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(job_id): Path<String>,
) -> Result<Json<JobCancelled>, AppError> {
    let job = visible_job(&state, &principal, job_id).await?;
    if job.owner_key_id.as_deref() != Some(principal.key_id.as_str()) {
        return Err(AppError::Forbidden("only the key that created a pricing job may cancel it".into()));
    }
    // An order's job ends with its order: cancelled alone, it would leave
    // the order waiting for a price that never comes.
    if let Some(order_id) = state.services.store.order_of_job(&job.job_id).await? {
        return Err(AppError::Conflict {
            message: format!(
                "pricing job `{}` prices order `{order_id}`; cancel the order instead (POST /v1/orders/{order_id}/cancel)",
                job.job_id
            ),
            details: Some(serde_json::json!({ "order_id": order_id })),
        });
    }
    let job_id = job.job_id;
    let control = serde_json::to_string(&scheduler::Control::Cancel { job_id: job_id.clone() })
        .expect("control messages always serialize");
    match state.services.store.cancel_job(&job_id, &control, now_ms()).await? {
        Cancelled::Now { was } => {
            state.relay_wakeup.notify_one();
            metrics::counter!("farm_jobs_cancelled_total").increment(1);
            Ok(Json(JobCancelled { job_id, status: "cancelled", was }))
        }
        Cancelled::AlreadyEnded { status } => Err(AppError::Conflict {
            message: format!(
                "pricing job `{job_id}` has already ended as `{status}`; only a queued or running job can be cancelled"
            ),
            details: Some(serde_json::json!({ "status": status })),
        }),
        Cancelled::NotFound => Err(AppError::NotFound { what: "pricing job", id: job_id }),
    }
}

#[derive(Serialize, ToSchema)]
struct JobView {
    job_id: String,
    model_id: String,
    material: String,
    colour: Option<String>,
    quantity: i64,
    /// `fast` or `slow`.
    lane: &'static str,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    status: &'static str,
    /// While running: `fetching`, `parsing`, `analysing`, `slicing` or `pricing`.
    stage: Option<String>,
    percent: Option<i64>,
    /// While running: `alive` when the worker reported lately, `stale` when
    /// it has gone quiet (it probably died; the broker hands the job on).
    liveness: Option<&'static str>,
    heartbeat_at_ms: Option<i64>,
    worker: Option<String>,
    /// Deliveries to a worker so far.
    deliveries: i64,
    /// The quote document: the price, its line items and the facts behind them.
    #[schema(value_type = Option<Object>)]
    quote: Option<serde_json::Value>,
    error: Option<ErrorView>,
    created_at_ms: i64,
    updated_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    /// Time waiting in the queue, then computing, ms.
    queued_ms: Option<i64>,
    compute_ms: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct ErrorView {
    /// `invalid_model`, `over_limit`, `model_missing`, `pricing`,
    /// `deadline_exceeded`, `stopped`, `unavailable`, `dead_lettered`,
    /// `internal`, or `other` (a kind this server does not know).
    kind: &'static str,
    message: String,
}

/// A pricing job: its status, progress and, once priced, its quote.
#[utoipa::path(
    get,
    path = "/v1/pricing-jobs/{job_id}",
    tag = "pricing",
    params(("job_id" = String, Path)),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_job(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(job_id): Path<String>,
) -> Result<Json<JobView>, AppError> {
    let job = visible_job(&state, &principal, job_id).await?;
    let quote = job.quote.as_deref().map(serde_json::from_str).transpose().map_err(AppError::internal)?;
    let now = now_ms();
    let stale_after = state.settings.heartbeat_stale_after.as_millis() as i64;
    let liveness = (job.status == JobStatus::Running).then(|| {
        let last = job.heartbeat_at_ms.or(job.started_at_ms).unwrap_or(job.updated_at_ms);
        if now - last > stale_after { "stale" } else { "alive" }
    });
    Ok(Json(JobView {
        queued_ms: job.started_at_ms.map(|s| s - job.created_at_ms),
        compute_ms: job.started_at_ms.zip(job.finished_at_ms).map(|(s, f)| f - s),
        job_id: job.job_id,
        model_id: job.model_id,
        material: job.material,
        colour: job.colour,
        quantity: job.quantity,
        lane: job.lane.as_str(),
        status: job.status.as_str(),
        stage: job.stage,
        percent: job.percent,
        liveness,
        heartbeat_at_ms: job.heartbeat_at_ms,
        worker: job.worker,
        deliveries: job.deliveries,
        quote,
        error: job.error.map(|e| ErrorView { kind: e.kind.as_str(), message: e.message }),
        created_at_ms: job.created_at_ms,
        updated_at_ms: job.updated_at_ms,
        started_at_ms: job.started_at_ms,
        finished_at_ms: job.finished_at_ms,
    }))
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database and the broker both answer; a load balancer then
/// stops sending traffic to an instance that cannot accept jobs.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, description = "the database or the broker is down"))
)]
async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<serde_json::Value>) {
    let database = state.services.store.ping().await.is_ok();
    let broker = state.services.broker.is_ready();
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let status = if database && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "checks": { "database": word(database), "broker": word(broker), "order_cache": if state.services.cache.is_ready() { "ok" } else { "rebuilding" } },
    });
    (status, Json(body))
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

impl From<crate::quota::QuotaError> for AppError {
    fn from(e: crate::quota::QuotaError) -> Self {
        match e {
            crate::quota::QuotaError::Over(over) => over.into(),
            never @ crate::quota::QuotaError::NeverFits { .. } => AppError::Unprocessable(never.to_string()),
            crate::quota::QuotaError::Store(e) => e.into(),
        }
    }
}

impl From<crate::quota::OverQuota> for AppError {
    fn from(over: crate::quota::OverQuota) -> Self {
        AppError::TooManyRequests { message: over.message, retry_after_s: over.retry_after_s }
    }
}

impl From<crate::pricing::PricingError> for AppError {
    fn from(e: crate::pricing::PricingError) -> Self {
        use crate::pricing::PricingError;
        match e {
            PricingError::Invalid(why) => AppError::Unprocessable(why),
            PricingError::ModelNotFound(id) => AppError::NotFound { what: "model", id },
            PricingError::OverQuota(over) => over.into(),
            PricingError::NeverFits(why) => AppError::Unprocessable(why),
            PricingError::Store(e) => e.into(),
        }
    }
}
