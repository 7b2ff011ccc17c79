//! `GET /v1/reference` over HTTP: the document `reference` builds, with its
//! ETag, or 304 when the client's copy is current.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{KeyKind, Principal};
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(reference))
}

/// Materials, colours, machines, order statuses and the price book's
/// version. Answers with an `ETag`; `If-None-Match` with it gets 304.
#[utoipa::path(
    get,
    path = "/v1/reference",
    tag = "pages",
    params(("If-None-Match" = Option<String>, Header, description = "The ETag of the copy the client holds")),
    responses(
        (status = 200, description = "the reference document", content_type = "application/json"),
        (status = 304, description = "the client's copy is current"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 500, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn reference(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    principal.require(&[KeyKind::Operator, KeyKind::Seller, KeyKind::Crm])?;
    let reference = &state.web.reference;
    // Private: it is behind a key. no-cache: the browser may keep it but
    // must ask (a 304 is cheap), so a new price book shows on the next load.
    let common = [
        (ETAG, reference.etag.clone()),
        (CACHE_CONTROL, HeaderValue::from_static("private, no-cache")),
        (VARY, HeaderValue::from_static("Cookie, Authorization")),
    ];
    if reference.matches(&headers) {
        metrics::counter!("farm_reference_requests_total", "result" => "not_modified").increment(1);
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    metrics::counter!("farm_reference_requests_total", "result" => "full").increment(1);
    let content_type = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    Ok((StatusCode::OK, common, content_type, reference.body.clone()).into_response())
}
