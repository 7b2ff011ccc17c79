//! The one error type of the HTTP layer, and how each case reaches a client.
//!
//! Client mistakes map to 4xx with a message that says what to fix. Server
//! faults map to 5xx with a generic message: the details go to the log, never
//! to the client.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{what} `{id}` does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("the model cannot be read: {0}")]
    InvalidModel(String),
    /// Well-formed but unacceptable input, such as an unknown material.
    #[error("{0}")]
    Unprocessable(String),
    /// Input that is not even well-formed JSON, or misses a field.
    #[error("{0}")]
    BadRequest(String),
    /// No valid credential.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid credential that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request is valid but the resource's state forbids it; `details`
    /// says more (who took an order, its status).
    #[error("{message}")]
    Conflict { message: String, details: Option<serde_json::Value> },
    /// Over a quota or a concurrency limit: try again after `retry_after_s`.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_s: u64 },
    #[error("a dependency is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `not_found`, `payload_too_large`,
    /// `invalid_model`, `unprocessable`, `bad_request`, `unauthorized`,
    /// `forbidden`, `conflict`, `too_many_requests`, `unavailable` or `internal`.
    pub code: String,
    /// What went wrong, for a person; generic for 5xx.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl AppError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict { message: message.into(), details: None }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            AppError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::InvalidModel(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_model"),
            AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Internal(detail) | AppError::Unavailable(detail) = &self {
            tracing::error!(status = status.as_u16(), detail = %detail, "request failed");
        }
        let details = match &self {
            AppError::Conflict { details, .. } => details.clone(),
            _ => None,
        };
        // Display of the 5xx variants is generic by construction.
        let body = ErrorBody { error: ErrorDetail { code: code.into(), message: self.to_string(), details } };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let AppError::TooManyRequests { retry_after_s, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from((*retry_after_s).max(1)));
        }
        response
    }
}

impl From<crate::auth::NotAllowed> for AppError {
    fn from(e: crate::auth::NotAllowed) -> Self {
        AppError::Forbidden(e.0)
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // Others kept changing the same row: the caller may try again.
            crate::store::StoreError::Contended { .. } => AppError::conflict(format!("{e}; try again")),
            crate::store::StoreError::Database(_) => AppError::internal(e),
            // The same answer as the check before the transaction gives.
            crate::store::StoreError::OverQuota { .. } => {
                AppError::TooManyRequests { message: e.to_string(), retry_after_s: crate::quota::RETRY_JOBS_AFTER_S }
            }
        }
    }
}

/// A body axum could not read as JSON: 413 past the limit, 422 for JSON of
/// the wrong shape, 400 for anything else.
pub(crate) fn json_rejection(rejection: JsonRejection, limit: u64) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => AppError::Unprocessable(e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge { limit },
        other => AppError::BadRequest(other.body_text()),
    }
}
