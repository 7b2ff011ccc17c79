//! Building and running the API: injected services in, a bound server out.
//!
//! `Application::build` binds the listener (port 0 picks a free port, which
//! tests rely on), and `run_until_stopped` serves HTTP next to the outbox
//! relay and the result consumer until the shutdown token fires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use scheduler::messages::now_ms;
use scheduler::{BlobStore, Broker, Pricing, Topology};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::store::{JobRow, Store, StoreError};

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

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the compute pool: {0}")]
    Pool(std::io::Error),
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

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    pub async fn build(settings: ApiSettings, services: Services) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
        if !services.broker.is_durable() {
            // The in-process queue lost whatever it held when the process
            // last stopped; the database still knows those jobs.
            let limit = services.topology.delivery_limit;
            let (requeued, failed) = services.store.requeue_unfinished(JobRow::message, limit, now_ms()).await?;
            if requeued + failed > 0 {
                tracing::info!(requeued, failed, "re-queued unfinished jobs for the in-process queue");
            }
        }
        let compute = scheduler::compute::pool("api-compute", 0).map_err(StartupError::Pool)?;
        let settings_uploads = settings.quotas.concurrent_uploads.max(1);
        let web = crate::web::WebState::new(&settings, &services.pricing);
        let state = Arc::new(AppState {
            web,
            services,
            settings,
            relay_wakeup: Notify::new(),
            auth: crate::auth::Verifier::default(),
            compute,
            metrics: crate::telemetry::metrics_handle(),
            upload_slots: tokio::sync::Semaphore::new(settings_uploads),
        });
        // After the recorder exists (`metrics` above installs it).
        state.services.pricing.announce();
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` fires, then lets in-flight requests finish and
    /// stops the relay and the result consumer.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let state = self.state;
        let relay = tokio::spawn(crate::relay::run(state.clone(), shutdown.clone()));
        let results = tokio::spawn(crate::results::run(state.clone(), shutdown.clone()));
        let dead_letters = tokio::spawn(crate::dead_letters::run(state.clone(), shutdown.clone()));
        let orders = tokio::spawn(crate::orders::intake::orders(state.clone(), shutdown.clone()));
        let crm = tokio::spawn(crate::orders::intake::crm(state.clone(), shutdown.clone()));
        let cache =
            tokio::spawn(state.services.cache.clone().supervise(state.services.store.clone(), shutdown.clone()));
        let monitor = tokio::spawn(crate::monitor::run(state.clone(), shutdown.clone()));
        let upkeep = tokio::spawn(metrics_upkeep(state.metrics.clone(), shutdown.clone()));
        let web = tokio::spawn(crate::web::run(state.clone(), shutdown.clone()));
        let events = tokio::spawn(crate::events_relay::run(state.clone(), shutdown.clone()));
        let webhooks = tokio::spawn(crate::webhooks::deliver::run(state.clone(), shutdown.clone()));
        let timeout = state.settings.request_timeout;
        let state_limits = state.settings.connections;
        let (router, _) = crate::routes::router(state);
        let router = router.layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout));
        tracing::info!(addr = %self.listener.local_addr()?, "api listening");
        let served = crate::serve::serve(self.listener, router, state_limits, shutdown.clone()).await;
        // The server stops only on shutdown or a fatal error; make sure the
        // background tasks stop either way.
        shutdown.cancel();
        let _ = tokio::join!(relay, results, dead_letters, orders, crm, cache, monitor, upkeep, web, events, webhooks);
        served
    }
}

/// Drains histogram samples into buckets between scrapes, which bounds the
/// recorder's memory on a busy instance.
async fn metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
        }
    }
}

/// A router with only `/healthz`, `/readyz` (is the broker connected, and
/// are we still taking jobs?) and `/metrics`, for processes that serve no API
/// (the worker), so probes and scrapes work the same everywhere. `draining`
/// turns `/readyz` to 503; `shutdown` stops the server.
pub async fn serve_ops(
    listen: SocketAddr,
    broker: Broker,
    draining: CancellationToken,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = TcpListener::bind(listen).await.map_err(|source| StartupError::Bind { addr: listen, source })?;
    let handle = crate::telemetry::metrics_handle();
    let upkeep = tokio::spawn(metrics_upkeep(handle.clone(), shutdown.clone()));
    let ready = move || {
        let (broker, draining) = (broker.clone(), draining.clone());
        async move {
            let broker_ok = broker.is_ready();
            let taking_jobs = !draining.is_cancelled();
            let ok = broker_ok && taking_jobs;
            let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let body = serde_json::json!({
                "status": if !taking_jobs { "draining" } else if ok { "ready" } else { "not_ready" },
                "checks": { "broker": if broker_ok { "ok" } else { "unavailable" } },
            });
            (status, axum::Json(body))
        }
    };
    let router = axum::Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(move || async move { handle.render() }));
    tracing::info!(addr = %listener.local_addr().map_err(|source| StartupError::Bind { addr: listen, source })?, "ops endpoint listening");
    let limits = crate::serve::ConnectionLimits::default();
    let served = crate::serve::serve(listener, router, limits, shutdown.clone()).await;
    let _ = upkeep.await;
    served.map_err(|source| StartupError::Bind { addr: listen, source })
}
