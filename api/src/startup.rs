//! Building and running the API: injected services in, a bound server out.
//!
//! `Application::build` binds the listener (port 0 picks a free port, which
//! tests rely on), and `run_until_stopped` serves HTTP next to the outbox
//! relay and the result consumer until the shutdown token fires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use scheduler::Broker;
use scheduler::messages::now_ms;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::state::{ApiSettings, AppState, Services};
use crate::store::{JobRow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the compute pool: {0}")]
    Pool(std::io::Error),
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
        let limits = crate::web::reference::PageLimits {
            max_model_bytes: settings.max_model_bytes,
            max_order_parts: settings.max_order_parts,
        };
        let web = crate::web::WebState::new(&settings.web, limits, &services.pricing);
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
        let web = tokio::spawn(run_pages(state.clone(), shutdown.clone()));
        let events = tokio::spawn(crate::events_relay::run(state.clone(), shutdown.clone()));
        let webhooks = tokio::spawn(crate::webhooks::deliver::run(state.clone(), shutdown.clone()));
        let timeout = state.settings.request_timeout;
        let state_limits = state.settings.connections;
        let (router, _) = crate::routes::router(state);
        // The timeout answers outside the router's own layers: its 408 gets
        // the JSON error shape here, as every other client error does.
        let router = router
            .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
            .layer(axum::middleware::from_fn(crate::contract::json_client_errors));
        tracing::info!(addr = %self.listener.local_addr()?, "api listening");
        let served = crate::serve::serve(self.listener, router, state_limits, shutdown.clone()).await;
        // The server stops only on shutdown or a fatal error; make sure the
        // background tasks stop either way.
        shutdown.cancel();
        let _ = tokio::join!(relay, results, dead_letters, orders, crm, cache, monitor, upkeep, web, events, webhooks);
        served
    }
}

/// The pages' background work: relaying order changes from other replicas,
/// sweeping expired sessions, and closing event streams on shutdown.
async fn run_pages(state: Arc<AppState>, shutdown: CancellationToken) {
    let relay = tokio::spawn(state.web.live.clone().run(shutdown.clone()));
    let sweep = tokio::spawn(crate::web::session::sweep(state.clone(), shutdown.clone()));
    shutdown.cancelled().await;
    state.web.closing.cancel();
    let _ = tokio::join!(relay, sweep);
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
