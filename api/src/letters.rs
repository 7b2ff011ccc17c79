//! The operators' routes over dead letters: list them, read one, replay it.
//!
//! A replay queues a new job with the dead job's inputs through the outbox
//! (`Store::replay_dead_letter`); `farm dead-letters` does the same from the
//! command line.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use scheduler::messages::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{KeyKind, Principal};
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::{DeadLetterRow, Replay};

/// Most dead letters one list answers with.
pub const MAX_LISTED: i64 = 500;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list_dead_letters)).routes(routes!(get_dead_letter)).routes(routes!(replay))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LettersQuery {
    /// Also those already replayed.
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct LetterPage {
    dead_letters: Vec<DeadLetterRow>,
    /// More letters match than were listed (at most 500 are).
    truncated: bool,
}

/// Dead letters, oldest first: those not replayed yet, or all with `all=true`.
#[utoipa::path(
    get,
    path = "/v1/operator/dead-letters",
    tag = "operators",
    params(LettersQuery),
    responses((status = 200, body = LetterPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(query): Query<LettersQuery>,
) -> Result<Json<LetterPage>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let mut dead_letters = state.services.store.dead_letters(query.all, MAX_LISTED + 1).await?;
    let truncated = dead_letters.len() as i64 > MAX_LISTED;
    dead_letters.truncate(MAX_LISTED as usize);
    Ok(Json(LetterPage { dead_letters, truncated }))
}

/// One dead letter, with the message as it was sent.
#[utoipa::path(
    get,
    path = "/v1/operator/dead-letters/{id}",
    tag = "operators",
    params(("id" = i64, Path)),
    responses((status = 200, body = DeadLetterRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_dead_letter(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Json<DeadLetterRow>, AppError> {
    principal.require(&[KeyKind::Operator])?;
    let letter = state.services.store.dead_letter(id).await?;
    letter.map(Json).ok_or(AppError::NotFound { what: "dead letter", id: id.to_string() })
}

#[derive(Debug, Serialize, ToSchema)]
struct Replayed {
    id: i64,
    /// The job the replay queued (the first replay's, when it was replayed
    /// before; none for a letter marked replayed by hand).
    job_id: Option<String>,
    /// False when it had been replayed already and nothing was queued now.
    queued: bool,
}

/// Replays a dead letter once its cause is fixed: a new job with the dead
/// job's inputs, through the outbox. Replaying it again queues nothing and
/// answers with the first replay's job.
#[utoipa::path(
    post,
    path = "/v1/operator/dead-letters/{id}/replay",
    tag = "operators",
    params(("id" = i64, Path)),
    responses((status = 202, body = Replayed), (status = 200, body = Replayed), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn replay(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Replayed>), AppError> {
    principal.require(&[KeyKind::Operator])?;
    match state.services.store.replay_dead_letter(id, now_ms()).await? {
        Replay::Queued { job_id } => {
            state.relay_wakeup.notify_one();
            // The orders the dead job failed are pricing again under it.
            for order in state.services.store.orders_of_job(&job_id).await? {
                crate::orders::changed(&state, &order).await;
            }
            Ok((StatusCode::ACCEPTED, Json(Replayed { id, job_id: Some(job_id), queued: true })))
        }
        Replay::AlreadyReplayed { job_id } => Ok((StatusCode::OK, Json(Replayed { id, job_id, queued: false }))),
        Replay::NotFound => Err(AppError::NotFound { what: "dead letter", id: id.to_string() }),
        Replay::NoJob => Err(AppError::conflict(
            "this dead letter names no job to price again (a result that could not be applied); check its job by hand",
        )),
    }
}
