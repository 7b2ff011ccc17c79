//! The pages' settings: sessions, live streams, the list's filters. Apart
//! from the rest of `web`, so the parts the state holds can read them
//! without importing the module that holds them.

use std::time::Duration;

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
