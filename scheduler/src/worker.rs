//! The worker pool: takes pricing jobs off the queue, prices them on a rayon
//! pool and publishes the outcome.
//!
//! A delivery is acked only after its result is confirmed by the broker, so a
//! worker that dies at any point leaves the job on the queue, and the broker
//! hands it to another worker. The API applies results idempotently by job id,
//! which turns that at-least-once delivery into an exactly-once effect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use calculator::QuoteRequest;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::blob::{BlobError, BlobStore, model_key};
use crate::broker::{Broker, BrokerError, Delivery, Topology};
use crate::compute;
use crate::messages::{JobFailure, JobMessage, ResultEvent, ResultMessage, now_ms};
use crate::pricing::Pricing;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs priced at once; also the broker prefetch, so a worker never holds
    /// jobs it cannot start.
    pub slots: usize,
    /// rayon threads shared by the running jobs (0: one per core).
    pub compute_threads: usize,
    /// Limits and options for the mesh analysis; the pricing adds what the
    /// material's process needs (layers, build volume).
    pub analysis: mesh::AnalysisOptions,
    /// How long a transient failure (object storage down) holds a job before
    /// it goes back to the queue, so a broken dependency is not hammered.
    pub retry_delay: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            slots: 2,
            compute_threads: 0,
            analysis: mesh::AnalysisOptions::default(),
            retry_delay: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the job queue's consumer was closed by the broker")]
    ConsumerClosed,
    #[error("cannot start the compute pool: {0}")]
    Pool(std::io::Error),
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Handed back to the queue to be tried again.
    Released,
    /// Unreadable message, dropped.
    Discarded,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Released => "released",
            Outcome::Discarded => "discarded",
        }
    }
}

#[derive(Debug)]
pub struct Worker {
    shared: Arc<Shared>,
}

struct Shared {
    broker: Broker,
    blobs: BlobStore,
    topology: Topology,
    pricing: Arc<Pricing>,
    pool: rayon::ThreadPool,
    settings: WorkerSettings,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("topology", &self.topology).finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        broker: Broker,
        blobs: BlobStore,
        topology: Topology,
        pricing: Arc<Pricing>,
        settings: WorkerSettings,
    ) -> Result<Self, WorkerError> {
        let pool = compute::pool("pricing", settings.compute_threads).map_err(WorkerError::Pool)?;
        let shared = Shared { broker, blobs, topology, pricing, pool, settings };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Consumes jobs until `shutdown` fires, then stops taking new ones and
    /// waits for the running jobs to finish. Jobs the broker had already
    /// pushed to us but we never started go back to the queue.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let slots = self.shared.settings.slots.max(1);
        let mut consumer = self.shared.broker.consume(&self.shared.topology.jobs, slots as u16).await?;
        let semaphore = Arc::new(Semaphore::new(slots));
        let mut running = JoinSet::new();
        tracing::info!(queue = %self.shared.topology.jobs, slots, "worker consuming");
        let result = loop {
            // Take a slot before a delivery, so a delivery never waits on us.
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                permit = semaphore.clone().acquire_owned() => permit.expect("semaphore never closed"),
            };
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                delivery = consumer.next() => delivery,
            };
            match delivery {
                Some(Ok(delivery)) => {
                    let shared = self.shared.clone();
                    running.spawn(async move {
                        let outcome = shared.handle(delivery).await;
                        drop(permit);
                        outcome
                    });
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Err(WorkerError::ConsumerClosed),
            }
            // Reap finished jobs so the set stays small on a long run.
            while running.try_join_next().is_some() {}
        };
        consumer.cancel().await;
        tracing::info!(in_flight = running.len(), "worker draining");
        while running.join_next().await.is_some() {}
        tracing::info!("worker stopped");
        result
    }
}

impl Shared {
    async fn handle(&self, delivery: Delivery) -> Outcome {
        let outcome = self.handle_inner(delivery).await;
        metrics::counter!("farm_worker_jobs_total", "outcome" => outcome.as_str()).increment(1);
        outcome
    }

    async fn handle_inner(&self, delivery: Delivery) -> Outcome {
        let job: JobMessage = match serde_json::from_slice(&delivery.payload) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "unreadable job message discarded");
                settle(delivery.discard().await);
                return Outcome::Discarded;
            }
        };
        let started = Instant::now();
        let _in_flight = InFlight::enter();
        if let Err(e) = self.report(&job.job_id, ResultEvent::Started).await {
            tracing::warn!(job_id = %job.job_id, error = %e, "could not report the start; releasing the job");
            settle(delivery.release().await);
            return Outcome::Released;
        }
        let event = match self.blobs.get(&model_key(&job.model_id)).await {
            Ok(bytes) => self.price(bytes, &job).await,
            Err(BlobError::NotFound { key }) => {
                ResultEvent::Failed { error: JobFailure::new("model_missing", format!("no model stored at {key}")) }
            }
            Err(e @ BlobError::Unavailable { .. }) => {
                tracing::warn!(job_id = %job.job_id, error = %e, "model fetch failed; the job goes back to the queue");
                tokio::time::sleep(self.settings.retry_delay).await;
                settle(delivery.release().await);
                return Outcome::Released;
            }
        };
        let outcome = match &event {
            ResultEvent::Succeeded { .. } => Outcome::Succeeded,
            _ => Outcome::Failed,
        };
        // Ack only once the result is safe with the broker; if that fails the
        // job runs again, and the API ignores the duplicate result.
        if let Err(e) = self.report(&job.job_id, event).await {
            tracing::warn!(job_id = %job.job_id, error = %e, "could not publish the result; releasing the job");
            settle(delivery.release().await);
            return Outcome::Released;
        }
        settle(delivery.ack().await);
        metrics::histogram!("farm_worker_job_duration_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(job_id = %job.job_id, outcome = outcome.as_str(), elapsed_ms = started.elapsed().as_millis() as u64, "job done");
        outcome
    }

    async fn price(&self, bytes: Bytes, job: &JobMessage) -> ResultEvent {
        let options = self.settings.analysis.clone();
        let pricing = self.pricing.clone();
        let request =
            QuoteRequest { material: job.material.clone(), quantity: job.quantity, colour: job.colour.clone() };
        let quote_key = self.pricing.cache_key(&job.model_id, &request);
        let priced = compute::run_on(&self.pool, move || pricing.price_bytes(&bytes, &request, options)).await;
        match priced {
            Ok(Ok(quote)) => ResultEvent::Succeeded { quote: Box::new(quote), quote_key: Some(quote_key) },
            Ok(Err(error)) => ResultEvent::Failed { error },
            Err(panicked) => {
                tracing::error!(job_id = %job.job_id, error = %panicked, "pricing panicked");
                ResultEvent::Failed { error: JobFailure::new("internal", "the analysis failed unexpectedly") }
            }
        }
    }

    async fn report(&self, job_id: &str, event: ResultEvent) -> Result<(), BrokerError> {
        let message = ResultMessage { job_id: job_id.into(), event, at_ms: now_ms() };
        let payload = serde_json::to_vec(&message).expect("result messages always serialize");
        self.broker.publish(&self.topology.results, &payload).await
    }
}

fn settle(result: Result<(), BrokerError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle a delivery; the broker will redeliver it");
    }
}

/// Counts a job in the in-flight gauge for as long as it lives.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!("farm_worker_jobs_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("farm_worker_jobs_in_flight").decrement(1.0);
    }
}
