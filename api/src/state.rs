//! The application's state and settings, shared by every route, consumer
//! and background task: the one module all of them import.
//!
//! Architecture invariant: nothing here imports a module that imports
//! `state`, so the state is a leaf of the module graph (checked by
//! `tests/tidy.rs`). Building it and starting the tasks is `startup`'s job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use scheduler::{BlobStore, Broker, Pricing, Topology};
use tokio::sync::Notify;

use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// Largest model upload accepted, bytes.
    pub max_model_bytes: u64,
    /// Where uploads are spooled while they arrive and are checked; each
    /// file is removed when its request ends.
    pub spool_dir: std::path::PathBuf,
    /// Largest JSON request body accepted, bytes.
    pub max_json_bytes: usize,
    /// A request that takes longer is answered 408.
    pub request_timeout: Duration,
    /// Open connections and how long a request head may take.
    pub connections: crate::serve::ConnectionLimits,
    /// What one key may ask for, and uploads read at once.
    pub quotas: crate::quota::Quotas,
    pub mesh_limits: mesh::Limits,
    /// The relay's fallback poll; a new job wakes it at once.
    pub relay_interval: Duration,
    pub relay_batch: i64,
    /// A model with more triangles than this, or more bytes, goes to the
    /// slow lane.
    pub slow_lane_triangles: u64,
    pub slow_lane_bytes: u64,
    /// A running job whose worker has not reported for this long is shown
    /// as stale: its worker is probably gone.
    pub heartbeat_stale_after: Duration,
    /// How often queue depths, ages and stale jobs are read for the metrics.
    pub monitor_interval: Duration,
    /// Serve the operators' list from the cache (off: always the database,
    /// for comparison).
    pub operator_cache: bool,
    /// Parts one order may hold; each is a pricing job of its own.
    pub max_order_parts: u32,
    /// The console, the quote page, sessions and live updates.
    pub web: crate::web::WebSettings,
    /// Webhook deliveries and what a key may ask for.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// The farm's events on the broker.
    pub events: crate::events::EventSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_model_bytes: 256 * 1024 * 1024,
            spool_dir: std::env::temp_dir(),
            max_json_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(120),
            connections: crate::serve::ConnectionLimits::default(),
            quotas: crate::quota::Quotas::default(),
            mesh_limits: mesh::Limits::default(),
            relay_interval: Duration::from_secs(1),
            relay_batch: 100,
            slow_lane_triangles: 1_000_000,
            slow_lane_bytes: 64 * 1024 * 1024,
            heartbeat_stale_after: Duration::from_secs(30),
            monitor_interval: Duration::from_secs(10),
            operator_cache: true,
            max_order_parts: 20,
            web: crate::web::WebSettings::default(),
            webhooks: crate::webhooks::WebhookSettings::default(),
            events: crate::events::EventSettings::default(),
        }
    }
}

/// The backends the API runs on, chosen by the caller.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Store,
    pub broker: Broker,
    pub blobs: BlobStore,
    pub topology: Topology,
    /// The price book and FDM profile; the API validates requests with it
    /// and keys its quote cache by them.
    pub pricing: Arc<Pricing>,
    /// The operators' order list: in-process or Redis.
    pub cache: Arc<crate::orders::cache::OrderCache>,
}

pub struct AppState {
    pub(crate) services: Services,
    pub(crate) settings: ApiSettings,
    pub(crate) relay_wakeup: Notify,
    pub(crate) auth: crate::auth::Verifier,
    /// Validates and hashes uploads off the async runtime.
    pub(crate) compute: rayon::ThreadPool,
    pub(crate) metrics: PrometheusHandle,
    /// One permit per upload being read (`quotas.concurrent_uploads`).
    pub(crate) upload_slots: tokio::sync::Semaphore,
    pub(crate) web: crate::web::WebState,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("settings", &self.settings).finish_non_exhaustive()
    }
}
