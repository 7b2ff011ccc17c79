//! HTTP routes: models, pricing jobs, health and metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use calculator::QuoteRequest;
use scheduler::messages::now_ms;
use scheduler::{JobMessage, Lane};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::startup::AppState;
use crate::store::{Cancelled, JobRow, ModelRow};

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let model_limit = usize::try_from(state.settings.max_model_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/v1/models", post(upload_model).layer(DefaultBodyLimit::max(model_limit)))
        .route("/v1/pricing-jobs", post(create_job))
        .route("/v1/pricing-jobs/{job_id}", get(get_job))
        .route("/v1/pricing-jobs/{job_id}/cancel", post(cancel_job))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(state.settings.max_json_bytes))
        .layer(middleware::from_fn(record_http_metrics))
        .with_state(state)
}

/// Counts requests and their latency per route template (not per URL, so a
/// job id never becomes a label value).
async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("farm_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("farm_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[derive(Serialize)]
struct ModelCreated {
    model_id: String,
    /// False when the same bytes were uploaded before.
    created: bool,
    triangles: i64,
    size_bytes: i64,
    format: String,
}

async fn upload_model(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModelCreated>), AppError> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge { limit: state.settings.max_model_bytes },
        _ => AppError::BadRequest(rejection.body_text()),
    })?;
    // Parsing and hashing a large model takes real CPU: keep it off the runtime.
    let limits = state.settings.mesh_limits;
    let checked = bytes.clone();
    let (info, model_id) = scheduler::compute::run_on(&state.compute, move || {
        // Decode to validate and count, without keeping the triangles: the
        // worker analyses the model later, and a soup of a large upload would
        // cost more memory than the upload itself.
        let info = mesh::read_stl_chunked(&checked[..], checked.len() as u64, &limits, |_, _| {});
        let digest = Sha256::digest(&checked);
        let model_id: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        info.map(|info| (info, model_id))
    })
    .await
    .map_err(AppError::internal)?
    .map_err(|e| AppError::InvalidModel(e.to_string()))?;
    let (triangles, format) = (info.triangles, info.format);
    if triangles == 0 {
        return Err(AppError::InvalidModel("the file holds no triangles".into()));
    }
    let row = ModelRow {
        model_id: model_id.clone(),
        size_bytes: bytes.len() as i64,
        triangles: triangles as i64,
        format: format.as_str().into(),
        created_at_ms: now_ms(),
    };
    let created = match state.services.store.model(&model_id).await? {
        Some(_) => false,
        None => {
            // Blob first, row second: a row never names a missing blob.
            state
                .services
                .blobs
                .put(&scheduler::blob::model_key(&model_id), bytes)
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

#[derive(Deserialize)]
struct CreateJob {
    model_id: String,
    material: String,
    #[serde(default = "one")]
    quantity: u32,
    #[serde(default)]
    colour: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Serialize)]
struct JobAccepted {
    job_id: String,
    status: &'static str,
}

async fn create_job(
    State(state): State<Arc<AppState>>,
    body: Result<Json<CreateJob>, JsonRejection>,
) -> Result<impl IntoResponse, AppError> {
    let Json(request) = body.map_err(|r| json_rejection(r, state.settings.max_json_bytes as u64))?;
    let quote_request =
        QuoteRequest { material: request.material.clone(), quantity: request.quantity, colour: request.colour.clone() };
    calculator::validate_request(&quote_request, &state.services.pricing.book)
        .map_err(|e| AppError::Unprocessable(e.to_string()))?;
    let Some(model) = state.services.store.model(&request.model_id).await? else {
        return Err(AppError::NotFound { what: "model", id: request.model_id });
    };
    let lane = lane_for(&model, &state.settings);
    let mut job = JobRow::queued(
        uuid::Uuid::now_v7().to_string(),
        request.model_id,
        request.material,
        i64::from(request.quantity),
        lane,
        now_ms(),
    );
    job.colour = request.colour;
    // The same model, material and quantity under the same price book and
    // profile was priced before: answer with that quote, queue nothing.
    let quote_key = state.services.pricing.cache_key(&job.model_id, &quote_request);
    if let Some(quote) = state.services.store.cached_quote(&quote_key).await? {
        state.services.store.create_answered_job(&job, &quote, &quote_key).await?;
        metrics::counter!("farm_quote_cache_hits_total").increment(1);
        metrics::counter!("farm_jobs_submitted_total", "lane" => lane.as_str(), "cached" => "true").increment(1);
        let location = format!("/v1/pricing-jobs/{}", job.job_id);
        return Ok((
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(JobAccepted { job_id: job.job_id, status: "succeeded" }),
        ));
    }
    state.services.store.create_job(&job, &job_message(&job)).await?;
    state.relay_wakeup.notify_one();
    metrics::counter!("farm_quote_cache_misses_total").increment(1);
    metrics::counter!("farm_jobs_submitted_total", "lane" => lane.as_str(), "cached" => "false").increment(1);
    let location = format!("/v1/pricing-jobs/{}", job.job_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(JobAccepted { job_id: job.job_id, status: "queued" }),
    ))
}

/// The lane for a model: slow when its size says it will take long.
fn lane_for(model: &ModelRow, settings: &crate::startup::ApiSettings) -> Lane {
    let triangles = u64::try_from(model.triangles).unwrap_or(0);
    let bytes = u64::try_from(model.size_bytes).unwrap_or(0);
    if triangles > settings.slow_lane_triangles || bytes > settings.slow_lane_bytes { Lane::Slow } else { Lane::Fast }
}

#[derive(Serialize)]
struct JobCancelled {
    job_id: String,
    status: &'static str,
    /// What the job was doing when it was cancelled: `queued` or `running`.
    was: String,
}

/// Cancels a queued job (it is skipped when delivered) or a running one (its
/// worker stops it within about a second). A job that already ended answers
/// 409 with its status.
async fn cancel_job(
    State(state): State<Arc<AppState>>,
    Path(job_id): Path<String>,
) -> Result<Json<JobCancelled>, AppError> {
    let control = serde_json::to_string(&scheduler::Control::Cancel { job_id: job_id.clone() })
        .expect("control messages always serialize");
    match state.services.store.cancel_job(&job_id, &control, now_ms()).await? {
        Cancelled::Now { was } => {
            state.relay_wakeup.notify_one();
            metrics::counter!("farm_jobs_cancelled_total").increment(1);
            Ok(Json(JobCancelled { job_id, status: "cancelled", was }))
        }
        Cancelled::AlreadyEnded { status } => Err(AppError::Conflict(format!(
            "pricing job `{job_id}` has already ended as `{status}`; only a queued or running job can be cancelled"
        ))),
        Cancelled::NotFound => Err(AppError::NotFound { what: "pricing job", id: job_id }),
    }
}

/// The queue message for a job row.
pub(crate) fn job_message(job: &JobRow) -> String {
    let message = JobMessage {
        job_id: job.job_id.clone(),
        model_id: job.model_id.clone(),
        material: job.material.clone(),
        quantity: u32::try_from(job.quantity).unwrap_or(u32::MAX),
        colour: job.colour.clone(),
        lane: job.lane,
        submitted_at_ms: job.created_at_ms,
    };
    serde_json::to_string(&message).expect("job messages always serialize")
}

fn json_rejection(rejection: JsonRejection, limit: u64) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => AppError::Unprocessable(e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge { limit },
        other => AppError::BadRequest(other.body_text()),
    }
}

#[derive(Serialize)]
struct JobView {
    job_id: String,
    model_id: String,
    material: String,
    colour: Option<String>,
    quantity: i64,
    lane: &'static str,
    status: String,
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

#[derive(Serialize)]
struct ErrorView {
    kind: String,
    message: String,
}

async fn get_job(State(state): State<Arc<AppState>>, Path(job_id): Path<String>) -> Result<Json<JobView>, AppError> {
    let job = state.services.store.job(&job_id).await?.ok_or(AppError::NotFound { what: "pricing job", id: job_id })?;
    let quote = job.quote.as_deref().map(serde_json::from_str).transpose().map_err(AppError::internal)?;
    let now = now_ms();
    let stale_after = state.settings.heartbeat_stale_after.as_millis() as i64;
    let liveness = (job.status == "running").then(|| {
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
        status: job.status,
        stage: job.stage,
        percent: job.percent,
        liveness,
        heartbeat_at_ms: job.heartbeat_at_ms,
        worker: job.worker,
        deliveries: job.deliveries,
        quote,
        error: job.error.map(|e| ErrorView { kind: e.kind, message: e.message }),
        created_at_ms: job.created_at_ms,
        updated_at_ms: job.updated_at_ms,
        started_at_ms: job.started_at_ms,
        finished_at_ms: job.finished_at_ms,
    }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database and the broker both answer; a load balancer then
/// stops sending traffic to an instance that cannot accept jobs.
async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<serde_json::Value>) {
    let database = state.services.store.ping().await.is_ok();
    let broker = state.services.broker.is_ready();
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let status = if database && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "checks": { "database": word(database), "broker": word(broker) },
    });
    (status, Json(body))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
