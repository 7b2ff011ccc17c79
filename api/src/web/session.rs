//! Browser sessions: a key is exchanged once for a session, and the page
//! never holds the key again.
//!
//! - **The cookie** (`farm_session`) is HttpOnly (scripts cannot read it, so
//!   an injected script cannot carry it away), `SameSite=Strict` (another
//!   site's page cannot make the browser send it) and `Secure` over HTTPS.
//! - **Server side.** The session is a row (`web_sessions`) holding only the
//!   SHA-256 of the cookie's token, the key it stands for, its CSRF token,
//!   and when it expires. It ends when it expires, on sign-out, or when its
//!   key is revoked; every replica reads the same rows, and remembers a
//!   checked session for a few seconds, as it does keys.
//! - **CSRF.** A state-changing call (anything but GET and HEAD) made with
//!   the cookie must carry the session's token in `X-CSRF-Token`. The page
//!   learns it from `GET /v1/session` and keeps it in memory only.
//! - Bearer keys keep working for every `/v1` route: a request with an
//!   `Authorization` header is a key's, whatever cookie it carries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use scheduler::messages::now_ms;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::session_store::SessionRow;
use crate::auth::{KeyKind, Principal};
use crate::error::json_rejection;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE_NAME: &str = "farm_session";
/// The header a page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The longest cookie value looked at; anything longer is not ours.
const MAX_TOKEN: usize = 128;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(sign_in, current, sign_out))
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// 244 random bits from the operating system's CSPRNG (two v4 uuids), hex.
fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Equal, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token in a `Cookie` header, if any.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty() && value.len() <= MAX_TOKEN)
}

/// The caller of a request that carries a session cookie and no key:
/// `Ok(None)` without a cookie (the caller answers 401 as for a missing
/// key), 401 for an expired or ended session, 403 for a state-changing call
/// without the session's CSRF token.
pub(crate) async fn principal(parts: &Parts, state: &AppState) -> Result<Option<Principal>, AppError> {
    let Some(token) = cookie_token(&parts.headers) else { return Ok(None) };
    let Some(session) =
        state.web.sessions.lookup(&state.services.store, &hex_sha256(token.as_bytes()), now_ms()).await?
    else {
        return Err(AppError::Unauthorized("the session has ended; sign in again with your key".into()));
    };
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        let sent = parts.headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
        if !constant_time_eq(sent, session.csrf_token.as_bytes()) {
            return Err(AppError::Forbidden(format!(
                "a state-changing call with a session cookie must send the session's CSRF token in `{CSRF_HEADER}`"
            )));
        }
    }
    Ok(Some(session.principal))
}

#[derive(Debug, Deserialize, ToSchema)]
struct SignIn {
    /// An operator's or seller's API key.
    key: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct SessionView {
    /// `operator` or `seller`.
    kind: &'static str,
    name: String,
    /// Send it back in `X-CSRF-Token` on every state-changing call.
    csrf_token: String,
    expires_at_ms: i64,
}

fn view(row: &SessionRow) -> SessionView {
    SessionView {
        kind: row.principal.kind.as_str(),
        name: row.principal.name.clone(),
        csrf_token: row.csrf_token.clone(),
        expires_at_ms: row.expires_at_ms,
    }
}

/// `Secure` when the request came over HTTPS (directly or, by its proxy's
/// word, `X-Forwarded-Proto`), or when the settings ask for it always.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.settings.web.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn cookie(value: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .expect("session cookies are ASCII")
}

/// Exchanges an operator's or seller's key for a session cookie.
#[utoipa::path(
    post,
    path = "/v1/session",
    tag = "pages",
    request_body = SignIn,
    responses(
        (status = 201, body = SessionView, description = "signed in; the cookie `farm_session` is set"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody, description = "the key is not valid"),
        (status = 403, body = ErrorBody, description = "a CRM key has no session"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many sign-ins of this key in a minute"),
        (status = 500, body = ErrorBody)
    )
)]
async fn sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(body) = body.map_err(|r| json_rejection(r, state.settings.max_json_bytes as u64))?;
    let store = &state.services.store;
    let Some(principal) = state.auth.verify(store, body.key.trim()).await? else {
        return Err(AppError::Unauthorized("the key is not valid, or has been revoked".into()));
    };
    principal.require(&[KeyKind::Operator, KeyKind::Seller])?;
    let per_minute = state.settings.web.max_sign_ins_per_minute;
    if let Err(retry_after_s) = state.web.sessions.admit_sign_in(&principal.key_id, per_minute, Instant::now()) {
        return Err(AppError::TooManyRequests {
            message: format!("this key signed in {per_minute} times in the last minute; wait and sign in again"),
            retry_after_s,
        });
    }
    let now = now_ms();
    let ttl = state.settings.web.session_ttl;
    let token = random_token();
    let row = SessionRow {
        principal,
        csrf_token: random_token(),
        expires_at_ms: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
    };
    store.insert_session(&hex_sha256(token.as_bytes()), &row, now, state.settings.web.max_sessions_per_key).await?;
    metrics::counter!("farm_web_sign_ins_total", "kind" => row.principal.kind.as_str()).increment(1);
    let mut response = (StatusCode::CREATED, Json(view(&row))).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie(&token, ttl.as_secs(), secure(&state, &headers)));
    Ok(private(response))
}

/// The session of the cookie: who is signed in, and the CSRF token.
#[utoipa::path(
    get,
    path = "/v1/session",
    tag = "pages",
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody, description = "no session, or it has ended"), (status = 500, body = ErrorBody))
)]
async fn current(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, AppError> {
    let ended = || AppError::Unauthorized("no session; sign in with your key".into());
    let token = cookie_token(&headers).ok_or_else(ended)?;
    let row = state.web.sessions.lookup(&state.services.store, &hex_sha256(token.as_bytes()), now_ms()).await?;
    Ok(private(Json(view(&row.ok_or_else(ended)?)).into_response()))
}

/// An answer that names who is signed in and the CSRF token: no cache, shared
/// or private, may keep it, and it differs by cookie.
fn private(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(axum::http::header::VARY, HeaderValue::from_static("Cookie"));
    response
}

/// Signs out: ends the session everywhere and clears the cookie.
#[utoipa::path(
    delete,
    path = "/v1/session",
    tag = "pages",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses((status = 204, description = "signed out"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 500, body = ErrorBody))
)]
async fn sign_out(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, AppError> {
    let ended = || AppError::Unauthorized("no session; sign in with your key".into());
    let token = cookie_token(&headers).ok_or_else(ended)?;
    let token_sha256 = hex_sha256(token.as_bytes());
    let row = state.web.sessions.lookup(&state.services.store, &token_sha256, now_ms()).await?.ok_or_else(ended)?;
    let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
    if !constant_time_eq(sent, row.csrf_token.as_bytes()) {
        return Err(AppError::Forbidden(format!("signing out needs the session's CSRF token in `{CSRF_HEADER}`")));
    }
    state.services.store.revoke_session(&token_sha256, now_ms()).await?;
    state.web.sessions.forget(&token_sha256);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(SET_COOKIE, cookie("", 0, secure(&state, &headers)));
    Ok(response)
}

/// Deletes sessions a day past their end, every ten minutes.
pub(crate) async fn sweep(state: Arc<AppState>, shutdown: CancellationToken) {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    loop {
        match state.services.store.delete_sessions_before(now_ms() - DAY_MS).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted ended browser sessions"),
            Err(e) => tracing::warn!(error = %e, "cannot delete ended browser sessions"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_token_is_found_among_other_cookies_and_nothing_else_is_taken_for_it() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("theme=dark; farm_session=abc123 ; other=1"));
        assert_eq!(cookie_token(&headers), Some("abc123"));
        for bad in ["farm_session=", "xfarm_session=abc", "farm_sessionx=abc", "theme=dark"] {
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, HeaderValue::from_str(bad).unwrap());
            assert_eq!(cookie_token(&headers), None, "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&format!("farm_session={}", "a".repeat(MAX_TOKEN + 1))).unwrap());
        assert_eq!(cookie_token(&headers), None, "an over-long value is not a token of ours");
    }

    #[test]
    fn the_cookie_is_http_only_same_site_strict_and_secure_when_asked() {
        let plain = cookie("t", 60, false);
        let text = plain.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict") && text.contains("Max-Age=60"));
        assert!(!text.contains("Secure"));
        assert!(cookie("t", 60, true).to_str().unwrap().ends_with("; Secure"));
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 64);
    }
}
