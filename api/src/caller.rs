//! Who is calling, as an HTTP request says it: the [`Principal`] extractor.
//! A bearer key is checked by `auth`'s verifier; a browser page without one
//! is its session cookie's principal. The key logic itself is `auth`'s,
//! which knows nothing of HTTP requests or the application state.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        // A browser page has no key: its session cookie stands for one.
        if header.is_none()
            && let Some(principal) = crate::web::session::principal(parts, state).await?
        {
            return Ok(principal);
        }
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
            return Err(AppError::Unauthorized("send an API key as `Authorization: Bearer <key>`".into()));
        };
        match state.auth.verify(&state.services.store, token).await? {
            Some(principal) => Ok(principal),
            None => Err(AppError::Unauthorized("the API key is not valid, or has been revoked".into())),
        }
    }
}
