//! The farm as people see it: the operators' console (`/console/`) and the
//! instant-quote page (`/quote/`), served by the API process itself.
//!
//! - [`assets`]: the pages, scripts, styles and the vendored three.js,
//!   embedded in the binary under content-hashed names.
//! - [`session`]: a key exchanged for an HttpOnly, SameSite session cookie,
//!   with a CSRF token for state-changing calls.
//! - [`reference`]: `GET /v1/reference`, the static data the pages keep in
//!   Local Storage (ETag, `If-None-Match` → 304).
//! - [`live`]: order changes pushed to every open console (server-sent
//!   events), across replicas through Redis pub/sub when Redis is set.
//!
//! Nothing here is fetched from the internet: every byte a page needs is in
//! the binary.

pub mod assets;
pub mod live;
pub(crate) mod reference;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::startup::AppState;

/// The pages' settings; every limit is one.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// How long a session lives after sign-in (a work shift, by default).
    pub session_ttl: Duration,
    /// Sessions one key may hold at once; signing in again beyond this
    /// ends the oldest.
    pub max_sessions_per_key: i64,
    /// Add `Secure` to the session cookie even when the request did not
    /// arrive over HTTPS (behind a proxy that does not say
    /// `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Open event streams this process serves at once; more are refused
    /// with 503 (the page retries). Well below the connection limit, so
    /// streams cannot crowd out every other request.
    pub max_event_streams: usize,
    /// Open event streams of one key (its sessions included) at once: one
    /// operator's tabs, not the whole bound.
    pub max_event_streams_per_key: usize,
    /// Sign-ins one key may make in a minute; more get 429.
    pub max_sign_ins_per_minute: u32,
    /// How often an open stream checks that its key or session still
    /// stands; a revoked key, a signed-out or expired session ends it.
    pub event_recheck: Duration,
    /// Changes buffered per stream before a slow one is told to reload.
    pub event_buffer: usize,
    /// A comment line on every idle stream this often, so proxies keep it.
    pub event_keep_alive: Duration,
    /// Redis for sharing order changes between API replicas (pub/sub);
    /// `None`: this process only (`farm serve`).
    pub redis_url: Option<String>,
    /// The pub/sub channel (under the queue prefix, so environments that
    /// share a Redis stay apart).
    pub channel: String,
    /// Orders an operators' list request may look through to fill a
    /// filtered page; past this it answers with what it found and a cursor.
    pub max_filter_scan: usize,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            max_sessions_per_key: 50,
            secure_cookies: false,
            max_event_streams: 256,
            max_event_streams_per_key: 8,
            max_sign_ins_per_minute: 30,
            event_recheck: Duration::from_secs(5),
            event_buffer: 1024,
            event_keep_alive: Duration::from_secs(15),
            redis_url: None,
            channel: "farm:orders:changes".into(),
            max_filter_scan: 20_000,
        }
    }
}

/// What the pages keep while the process runs.
#[derive(Debug)]
pub struct WebState {
    pub(crate) sessions: session::Sessions,
    pub(crate) live: live::Hub,
    pub(crate) reference: reference::Reference,
    /// Fired on shutdown, so open event streams end and the server can stop.
    pub(crate) closing: CancellationToken,
}

impl WebState {
    pub(crate) fn new(settings: &crate::startup::ApiSettings, pricing: &scheduler::Pricing) -> Self {
        Self {
            sessions: session::Sessions::default(),
            live: live::Hub::new(&settings.web),
            reference: reference::Reference::new(pricing, settings.max_model_bytes),
            closing: CancellationToken::new(),
        }
    }
}

/// The pages, their assets, and the routes they call besides the order API.
pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(session::router())
        .merge(reference::router())
        .merge(live::router())
        .merge(assets::router())
}

/// The pages' background work: relaying order changes from other replicas,
/// sweeping expired sessions, and closing event streams on shutdown.
pub(crate) async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    let relay = tokio::spawn(state.web.live.clone().run(shutdown.clone()));
    let sweep = tokio::spawn(session::sweep(state.clone(), shutdown.clone()));
    shutdown.cancelled().await;
    state.web.closing.cancel();
    let _ = tokio::join!(relay, sweep);
}
