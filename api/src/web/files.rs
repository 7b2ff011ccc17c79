//! `GET /v1/models/{model_id}/file`: a stored model's bytes, for the
//! console's download and 3D preview.
//!
//! Operators may read any model (they print it); a seller only one it has
//! ordered or priced with one of its keys, so a model id seen elsewhere
//! gives nothing away. A model never changes (its id is the hash of its
//! bytes), so the answer may be kept for a long time.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, ETAG};
use axum::response::{IntoResponse, Response};
use sqlx::Row;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{KeyKind, Principal};
use crate::error::{AppError, ErrorBody};
use crate::startup::AppState;
use crate::store::{Store, StoreError};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(model_file))
}

/// A model id is 64 lowercase hex digits; anything else is not one.
fn is_model_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The model's STL bytes, as uploaded.
#[utoipa::path(
    get,
    path = "/v1/models/{model_id}/file",
    tag = "models",
    params(("model_id" = String, Path, description = "The SHA-256 of the model's bytes")),
    responses(
        (status = 200, description = "the STL file", content_type = "model/stl"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn model_file(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(model_id): Path<String>,
) -> Result<Response, AppError> {
    principal.require(&[KeyKind::Operator, KeyKind::Seller])?;
    let not_found = || AppError::NotFound { what: "model", id: model_id.clone() };
    if !is_model_id(&model_id) {
        return Err(not_found());
    }
    let store = &state.services.store;
    let visible = match principal.kind {
        KeyKind::Seller => store.seller_knows_model(&principal.name, &model_id).await?,
        _ => store.model(&model_id).await?.is_some(),
    };
    if !visible {
        return Err(not_found());
    }
    let bytes = state
        .services
        .blobs
        .get(&scheduler::blob::model_key(&model_id))
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("model/stl")),
        (CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable")),
        (ETAG, HeaderValue::from_str(&format!("\"{model_id}\"")).expect("hex is a valid header")),
        (
            CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{}.stl\"", &model_id[..16]))
                .expect("hex is a valid header"),
        ),
    ];
    Ok((headers, bytes).into_response())
}

impl Store {
    /// Whether a seller has ordered this model, or priced it with one of
    /// its keys.
    async fn seller_knows_model(&self, seller: &str, model_id: &str) -> Result<bool, StoreError> {
        // Two counts rather than one EXISTS: a boolean does not decode alike
        // from SQLite and PostgreSQL through the Any driver.
        for sql in [
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM orders WHERE seller = $1 AND model_id = $2 LIMIT 1) found",
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM pricing_jobs j JOIN api_keys k ON k.key_id = j.owner_key_id \
             WHERE k.name = $1 AND k.kind = 'seller' AND j.model_id = $2 LIMIT 1) found",
        ] {
            let row = sqlx::query(sql).bind(seller).bind(model_id).fetch_one(&self.pool).await?;
            if row.try_get::<i64, _>("n")? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_sha256_in_hex_is_a_model_id() {
        assert!(super::is_model_id(&"ab12".repeat(16)));
        for bad in ["", "../etc/passwd", &"AB12".repeat(16), &"ab12".repeat(15), &"g".repeat(64)] {
            assert!(!super::is_model_id(bad), "{bad}");
        }
    }
}
