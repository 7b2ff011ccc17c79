//! The farm as people see it: the operators' console (`/console/`) and the
//! instant-quote page (`/quote/`), served by the API process itself.
//!
//! - [`assets`]: the pages, scripts, styles and the vendored three.js,
//!   embedded in the binary under content-hashed names.
//! - [`session`]: a key exchanged for an HttpOnly, SameSite session cookie,
//!   with a CSRF token for state-changing calls; [`session_store`] holds
//!   the sessions' memory and rows.
//! - [`reference`]: the static data the pages keep in Local Storage;
//!   [`reference_route`] serves it as `GET /v1/reference` (ETag,
//!   `If-None-Match` → 304).
//! - [`live`]: order changes pushed to every open console (server-sent
//!   events), fed by the [`hub`], which reaches the other replicas through
//!   Redis pub/sub when Redis is set.
//!
//! The state the pages keep ([`WebState`]) lives in modules that know
//! nothing of the HTTP routes, so the application state can hold it
//! without an import cycle.
//!
//! Nothing here is fetched from the internet: every byte a page needs is in
//! the binary.

pub mod assets;
pub(crate) mod hub;
pub mod live;
pub(crate) mod reference;
pub(crate) mod reference_route;
pub mod session;
pub(crate) mod session_store;
mod settings;

pub use settings::WebSettings;

use tokio_util::sync::CancellationToken;

/// What the pages keep while the process runs.
#[derive(Debug)]
pub struct WebState {
    pub(crate) sessions: session_store::Sessions,
    pub(crate) live: hub::Hub,
    pub(crate) reference: reference::Reference,
    /// Fired on shutdown, so open event streams end and the server can stop.
    pub(crate) closing: CancellationToken,
}

impl WebState {
    pub(crate) fn new(settings: &WebSettings, limits: reference::PageLimits, pricing: &scheduler::Pricing) -> Self {
        Self {
            sessions: session_store::Sessions::default(),
            live: hub::Hub::new(settings),
            reference: reference::Reference::new(pricing, limits),
            closing: CancellationToken::new(),
        }
    }
}
