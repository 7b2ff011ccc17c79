//! The worker pool: takes pricing jobs off one lane's queue, prices them on a
//! rayon pool and publishes the outcome.
//!
//! A delivery is acked only after its result is confirmed by the broker, so a
//! worker that dies at any point leaves the job on the queue, and the broker
//! hands it to another worker; a job that kills every worker it meets is
//! dead-lettered after the queue's delivery limit. The API applies results
//! idempotently by job id, which turns that at-least-once delivery into an
//! exactly-once effect.
//!
//! Around each job: a deadline and cancellation, checked by the analysis
//! between its chunks of work; progress and heartbeats on the results queue;
//! bounded retries with backoff for a model store that is down. Around the
//! pool: reconnection when the broker goes away, and a graceful shutdown
//! that finishes running jobs within a grace period and returns the rest.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use calculator::QuoteRequest;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::blob::{BlobError, BlobStore, model_key};
use crate::broker::{Broker, BrokerError, Delivery, Lane, Outgoing, Topology};
use crate::compute;
use crate::faults::FaultInjection;
use crate::messages::{Control, FailureKind, JobFailure, JobMessage, ResultEvent, ResultMessage, Stage, now_ms};
use crate::pricing::Pricing;

/// How often a transient failure is tried again, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included.
    pub attempts: u32,
    /// The wait before the second try; it doubles each time, with jitter.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 5, first_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait after failed try `attempt` (1-based): exponential, capped,
    /// with full jitter so retries of many jobs spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.first_backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        jitter(exponential.min(self.max_backoff))
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The lane whose queue this worker consumes.
    pub lane: Lane,
    /// Jobs priced at once; also the broker prefetch, so a worker never holds
    /// jobs it cannot start.
    pub slots: usize,
    /// rayon threads shared by the running jobs (0: one per core).
    pub compute_threads: usize,
    /// Limits and options for the mesh analysis; the pricing adds what the
    /// material's process needs (layers, build volume).
    pub analysis: mesh::AnalysisOptions,
    /// A job running longer is stopped and failed with `deadline_exceeded`.
    pub deadline: Duration,
    /// After SIGTERM, how long running jobs may take to finish before they
    /// are stopped and handed back to the queue.
    pub grace: Duration,
    /// Progress is reported at least this often while a job runs.
    pub heartbeat: Duration,
    /// A redelivered job is computed only once the API says nobody else is
    /// at it; while another worker runs it, the delivery is held and the
    /// API asked again this often.
    pub claim_recheck: Duration,
    /// With no answer from the API for this long, a redelivered job is
    /// computed anyway: an API that is down must not stall the workers.
    pub claim_patience: Duration,
    /// For the model store.
    pub retry: RetryPolicy,
    /// The broker's `consumer_timeout`, when the broker has one: a job held
    /// longer is taken back by the broker, so every job must end first.
    pub broker_consumer_timeout: Option<Duration>,
    /// Names this worker in job events and logs.
    pub name: String,
    pub faults: FaultInjection,
}

impl WorkerSettings {
    /// The default deadline of a lane: 5 minutes for fast jobs, 45 for slow.
    pub fn default_deadline(lane: Lane) -> Duration {
        match lane {
            Lane::Fast => Duration::from_secs(5 * 60),
            Lane::Slow => Duration::from_secs(45 * 60),
        }
    }

    pub fn for_lane(lane: Lane) -> Self {
        Self { lane, deadline: Self::default_deadline(lane), ..Self::default() }
    }
}

/// Numbers the workers of one process, for their default names.
static NEXT_WORKER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lane: Lane::Fast,
            slots: 2,
            compute_threads: 0,
            analysis: mesh::AnalysisOptions::default(),
            deadline: Self::default_deadline(Lane::Fast),
            grace: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            claim_recheck: Duration::from_secs(5),
            claim_patience: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            broker_consumer_timeout: None,
            // Unique in the process too: the API tells a job's runner from
            // another worker by name.
            name: format!("worker-{}-{}", std::process::id(), NEXT_WORKER.fetch_add(1, Ordering::Relaxed)),
            faults: FaultInjection::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("cannot start the compute pool: {0}")]
    Pool(std::io::Error),
    /// Settings under which the broker would take jobs back mid-run.
    #[error(
        "the {lane} lane's deadline ({deadline:?}) plus {margin:?} to publish the result is not shorter than \
         the broker's consumer_timeout ({timeout:?}): raise consumer_timeout on the broker (deploy/README.md) \
         and FARM_BROKER_CONSUMER_TIMEOUT_S with it, or lower the deadline"
    )]
    DeadlineOutlivesBroker { lane: Lane, deadline: Duration, margin: Duration, timeout: Duration },
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// The deadline passed.
    DeadlineExceeded,
    Cancelled,
    /// Handed back to the queue to be tried again (shutdown, broker trouble).
    Released,
    /// Unreadable message, dead-lettered.
    Rejected,
    /// A delivery of a job this worker had already finished (its ack was
    /// lost with a connection): the result was sent again.
    Duplicate,
    /// Stopped and acknowledged without a result: the API said the job had
    /// already finished, or that another worker has taken it over.
    Yielded,
    /// A second delivery of a job this worker is running: held, not
    /// started, and settled when the job ends.
    Adopted,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::DeadlineExceeded => "deadline_exceeded",
            Outcome::Cancelled => "cancelled",
            Outcome::Released => "released",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
            Outcome::Yielded => "yielded",
            Outcome::Adopted => "adopted",
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
    /// Jobs in this worker's hands (computing, or waiting for the API's
    /// word), by id.
    running: Mutex<HashMap<String, RunningJob>>,
    /// Jobs cancelled by the API, most recent last.
    cancelled: Mutex<Recent<()>>,
    /// Jobs the API told this worker to give up (finished elsewhere).
    yielded: Mutex<Recent<()>>,
    /// The final events of jobs finished lately, for a redelivery whose
    /// first ack was lost: the result is sent again, not computed again.
    finished: Mutex<Recent<ResultEvent>>,
    /// Fired when the shutdown grace is over: running jobs stop and go back.
    hard_stop: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("lane", &self.settings.lane).finish_non_exhaustive()
    }
}

/// A job in this worker's hands.
struct RunningJob {
    /// Cancelling it stops the job: a cancel, a yield, the end of the grace.
    token: CancellationToken,
    /// The API's answers to this job's starts.
    answers: mpsc::UnboundedSender<ClaimAnswer>,
    /// Later deliveries of the same job, held unsettled until it ends and
    /// then settled as the first one is: if the first delivery's channel
    /// has died, one of these is what keeps the job safe with the broker.
    adopted: Vec<Delivery>,
}

/// The API's word on a start.
#[derive(Debug)]
enum ClaimAnswer {
    Proceed,
    Wait { runner: String },
}

/// How a claim ended.
enum Claimed {
    Proceed,
    /// The job's token fired: cancelled, given up, or the grace is over.
    Stopped,
}

/// How a job's deliveries are settled when it ends.
#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Release,
}

/// A bounded memory of recent keys: the oldest is forgotten first.
struct Recent<V> {
    order: VecDeque<String>,
    values: HashMap<String, V>,
    capacity: usize,
}

impl<V: Clone> Recent<V> {
    fn new(capacity: usize) -> Self {
        Self { order: VecDeque::new(), values: HashMap::new(), capacity }
    }

    fn insert(&mut self, key: String, value: V) {
        if self.values.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.values.remove(&old);
                }
            }
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        self.values.get(key).cloned()
    }
}

/// How many job ids the worker remembers as cancelled or finished.
const REMEMBERED_JOBS: usize = 10_000;
/// Time allowed, after a job's deadline, to publish its result.
const PUBLISH_MARGIN: Duration = Duration::from_secs(60);

impl Worker {
    pub fn new(
        broker: Broker,
        blobs: BlobStore,
        topology: Topology,
        pricing: Arc<Pricing>,
        settings: WorkerSettings,
    ) -> Result<Self, WorkerError> {
        // A delivery is held from the moment its job starts until its result
        // is published: at most the deadline, plus a margin for publishing.
        if let Some(timeout) = settings.broker_consumer_timeout
            && settings.deadline + PUBLISH_MARGIN >= timeout
        {
            return Err(WorkerError::DeadlineOutlivesBroker {
                lane: settings.lane,
                deadline: settings.deadline,
                margin: PUBLISH_MARGIN,
                timeout,
            });
        }
        let pool = compute::pool("pricing", settings.compute_threads).map_err(WorkerError::Pool)?;
        let shared = Shared {
            broker,
            blobs,
            topology,
            pricing,
            pool,
            settings,
            running: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(Recent::new(REMEMBERED_JOBS)),
            yielded: Mutex::new(Recent::new(REMEMBERED_JOBS)),
            finished: Mutex::new(Recent::new(REMEMBERED_JOBS)),
            hard_stop: CancellationToken::new(),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Consumes jobs until `shutdown` fires, then stops taking new ones, lets
    /// running jobs finish for up to the grace period, stops the rest and
    /// hands them back to the queue. When the broker goes away it waits for
    /// it and consumes again; it never spins.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        self.shared.pricing.announce();
        let shared = self.shared;
        let lane = shared.settings.lane;
        let queue = shared.topology.jobs(lane).to_string();
        let slots = shared.settings.slots.max(1);
        let control = tokio::spawn(listen_for_control(shared.clone(), shutdown.clone()));
        let semaphore = Arc::new(Semaphore::new(slots));
        let mut running = JoinSet::new();
        let mut backoff = Duration::from_millis(200);
        'consuming: while !shutdown.is_cancelled() {
            let mut consumer = match shared.broker.consume(&queue, slots as u16).await {
                Ok(consumer) => consumer,
                Err(e) => {
                    tracing::warn!(error = %e, %queue, "cannot consume; waiting for the broker");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'consuming,
                        _ = shared.broker.wait_ready(Duration::from_secs(30)) => {}
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'consuming,
                        _ = tokio::time::sleep(jitter(backoff)) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            backoff = Duration::from_millis(200);
            tracing::info!(%queue, slots, "worker consuming");
            loop {
                // Take a slot before a delivery, so a delivery never waits on us.
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => {
                        consumer.cancel().await;
                        break 'consuming;
                    }
                    permit = semaphore.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                };
                let delivery = tokio::select! {
                    _ = shutdown.cancelled() => {
                        consumer.cancel().await;
                        break 'consuming;
                    }
                    delivery = consumer.next() => delivery,
                };
                match delivery {
                    Some(Ok(delivery)) => {
                        let shared = shared.clone();
                        running.spawn(async move {
                            let outcome = shared.handle(delivery).await;
                            drop(permit);
                            outcome
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, %queue, "the consumer failed; consuming again once the broker is back");
                        break;
                    }
                    None => {
                        tracing::warn!(%queue, "the consumer was closed; consuming again once the broker is back");
                        break;
                    }
                }
                // Reap finished jobs so the set stays small on a long run.
                while running.try_join_next().is_some() {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => break 'consuming,
                _ = shared.broker.wait_ready(Duration::from_secs(30)) => {}
            }
        }
        let grace = shared.settings.grace;
        tracing::info!(in_flight = running.len(), grace_s = grace.as_secs_f64(), "worker draining");
        let drained = tokio::time::timeout(grace, async { while running.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(in_flight = running.len(), "the grace period is over; handing the running jobs back");
            shared.hard_stop.cancel();
            while running.join_next().await.is_some() {}
        }
        control.abort();
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// Receives cancellations for as long as the worker runs.
async fn listen_for_control(shared: Arc<Shared>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let Ok(mut subscription) = shared.broker.subscribe().await else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.broker.wait_ready(Duration::from_secs(30)) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(jitter(Duration::from_secs(1))) => {}
            }
            continue;
        };
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return,
                message = subscription.next() => message,
            };
            let Some(Ok(delivery)) = message else { break };
            match serde_json::from_slice::<Control>(&delivery.payload) {
                Ok(Control::Cancel { job_id }) => shared.cancel(job_id),
                Ok(Control::Yield { job_id, worker }) if worker == shared.settings.name => shared.give_up(job_id),
                Ok(Control::Proceed { job_id, worker }) if worker == shared.settings.name => {
                    shared.answer(&job_id, ClaimAnswer::Proceed);
                }
                Ok(Control::Wait { job_id, worker, runner }) if worker == shared.settings.name => {
                    shared.answer(&job_id, ClaimAnswer::Wait { runner });
                }
                Ok(Control::Yield { .. } | Control::Proceed { .. } | Control::Wait { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "unreadable control message ignored"),
            }
        }
    }
}

/// Where a running job stands, shared between its compute thread (which
/// writes it) and its heartbeat (which reports it).
struct JobObserver {
    token: CancellationToken,
    deadline: Instant,
    progress: Arc<AtomicU16>,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    slow_job: Duration,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    slowed: std::sync::atomic::AtomicBool,
}

impl JobObserver {
    fn should_stop(&self) -> bool {
        self.token.is_cancelled() || Instant::now() >= self.deadline
    }
}

impl mesh::Observer for JobObserver {
    fn observe(&self, stage: mesh::Stage, done: f64) -> bool {
        let stage = Stage::from_mesh(stage);
        self.progress.store(stage.pack(stage.percent(done)), Ordering::Relaxed);
        // The injected slowness, spent once per job, in small steps so a
        // cancellation or the deadline still stops it at once.
        #[cfg(feature = "fault-injection")]
        if !self.slow_job.is_zero() && stage == Stage::Analysing && !self.slowed.swap(true, Ordering::Relaxed) {
            let until = Instant::now() + self.slow_job;
            while Instant::now() < until && !self.should_stop() {
                std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
            }
        }
        !self.should_stop()
    }
}

/// How a computation ended.
enum Worked {
    Finished(Finish),
    /// Stopped because `runner` runs the job: the delivery waits.
    Parked {
        runner: String,
    },
}

/// How a job's work ended, before it is reported.
enum Finish {
    Report(ResultEvent),
    /// Stopped by the end of the grace period: back to the queue.
    HandBack,
    /// Stopped because the job finished elsewhere: acknowledged, no result.
    Yield,
}

impl Shared {
    fn cancel(&self, job_id: String) {
        if let Some(job) = self.running.lock().expect("running lock poisoned").get(&job_id) {
            tracing::info!(%job_id, "cancelling a running job");
            job.token.cancel();
        }
        self.cancelled.lock().expect("cancelled lock poisoned").insert(job_id, ());
    }

    /// The API says this job finished already: stop our delivery of it.
    fn give_up(&self, job_id: String) {
        if let Some(job) = self.running.lock().expect("running lock poisoned").get(&job_id) {
            tracing::info!(%job_id, "the job finished or runs elsewhere; giving up this delivery");
            job.token.cancel();
        }
        self.yielded.lock().expect("yielded lock poisoned").insert(job_id, ());
    }

    /// Passes the API's word on a start to the job it is about, if this
    /// worker still holds it.
    fn answer(&self, job_id: &str, answer: ClaimAnswer) {
        if let Some(job) = self.running.lock().expect("running lock poisoned").get(job_id) {
            let _ = job.answers.send(answer);
        }
    }

    fn has_yielded(&self, job_id: &str) -> bool {
        self.yielded.lock().expect("yielded lock poisoned").get(job_id).is_some()
    }

    fn is_cancelled(&self, job_id: &str) -> bool {
        self.cancelled.lock().expect("cancelled lock poisoned").get(job_id).is_some()
    }

    fn lane(&self) -> &'static str {
        self.settings.lane.as_str()
    }

    async fn handle(&self, delivery: Delivery) -> Outcome {
        // Every log line about the job carries its id, and the span continues
        // the trace the API started (the message's headers) when tracing is on.
        let span = tracing::info_span!(
            "job",
            "otel.name" = "farm.job",
            "otel.kind" = "consumer",
            job_id = delivery.message_id.as_deref().unwrap_or(""),
            lane = self.lane(),
            deliveries = delivery.delivery_count,
            outcome = tracing::field::Empty,
        );
        crate::trace::continue_from(&span, delivery.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let outcome = self.handle_inner(delivery).instrument(span.clone()).await;
        span.record("outcome", outcome.as_str());
        metrics::counter!("farm_jobs_total", "lane" => self.lane(), "outcome" => outcome.as_str()).increment(1);
        outcome
    }

    async fn handle_inner(&self, delivery: Delivery) -> Outcome {
        let job: JobMessage = match serde_json::from_slice(&delivery.payload) {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "unreadable job message; dead-lettering it");
                settle(delivery.reject().await);
                return Outcome::Rejected;
            }
        };
        let job_id = job.job_id.clone();
        if delivery.redelivered || delivery.delivery_count > 0 {
            metrics::counter!("farm_job_redeliveries_total", "lane" => self.lane()).increment(1);
        }
        let finished = self.finished.lock().expect("finished lock poisoned").get(&job_id);
        if let Some(event) = finished {
            tracing::info!(%job_id, "a finished job was delivered again; sending its result again");
            metrics::counter!("farm_job_duplicates_total", "lane" => self.lane()).increment(1);
            return match self.report(&job_id, event).await {
                Ok(()) => {
                    settle(delivery.ack().await);
                    Outcome::Duplicate
                }
                Err(_) => {
                    settle(delivery.release().await);
                    Outcome::Released
                }
            };
        }
        if self.has_yielded(&job_id) {
            tracing::info!(%job_id, "skipping a job that finished elsewhere");
            settle(delivery.ack().await);
            return Outcome::Yielded;
        }
        if self.is_cancelled(&job_id) {
            tracing::info!(%job_id, "skipping a cancelled job");
            return self.finish(delivery, &job_id, Finish::Report(ResultEvent::Cancelled)).await;
        }
        // Registered before anything is awaited, and checked in the same
        // step: a second delivery of a job this worker holds (a message
        // published twice, or the broker's redelivery after this worker's
        // channel died) is never started beside the first and never replaces
        // its cancel token. It is held, and settled with the first when the
        // job ends: if the first delivery's channel is gone, this one is
        // what keeps the job with the broker until then.
        let token = self.hard_stop.child_token();
        let (answers_sender, mut answers) = mpsc::unbounded_channel();
        let delivery = {
            let mut running = self.running.lock().expect("running lock poisoned");
            if let Some(held) = running.get_mut(&job_id) {
                held.adopted.push(delivery);
                None
            } else {
                let job = RunningJob { token: token.clone(), answers: answers_sender, adopted: Vec::new() };
                running.insert(job_id.clone(), job);
                Some(delivery)
            }
        };
        let Some(delivery) = delivery else {
            tracing::warn!(%job_id, "a second delivery of a job held here; holding it until the job ends");
            metrics::counter!("farm_job_duplicates_total", "lane" => self.lane()).increment(1);
            return Outcome::Adopted;
        };
        // A job delivered before may still be in the hands of the worker that
        // had it (its connection died, not the worker): it is computed only
        // once the API says nobody else is at it.
        let claim = delivery.redelivered || delivery.delivery_count > 0;
        let deliveries = delivery.delivery_count;
        if let Err(e) = self.report(&job_id, self.started(deliveries, claim)).await {
            tracing::warn!(%job_id, error = %e, "could not report the start; handing the job back");
            self.end(&job_id, delivery, Settle::Release).await;
            return Outcome::Released;
        }
        let queued = (now_ms() - job.submitted_at_ms).max(0) as f64 / 1000.0;
        metrics::histogram!("farm_job_queued_seconds", "lane" => self.lane()).record(queued);

        // A cancel that arrived between the check above and the registration.
        if self.is_cancelled(&job_id) {
            token.cancel();
        }
        let _in_flight = InFlight::enter(self.lane());
        let started_at = Instant::now();
        let mut claimed =
            if claim { self.claim(&job_id, deliveries, &token, &mut answers, false).await } else { Claimed::Proceed };
        let finish = loop {
            if let Claimed::Stopped = claimed {
                break self.stopped(&job_id);
            }
            // Boxed: the computation's future is large, and the delivery's task
            // would otherwise carry it on its stack.
            match Box::pin(self.work(&job, &token, &mut answers)).await {
                Worked::Finished(finish) => break finish,
                Worked::Parked { runner } => {
                    tracing::info!(%job_id, %runner, "another worker runs this job; stopped, waiting for it to end");
                    claimed = self.claim(&job_id, deliveries, &token, &mut answers, true).await;
                }
            }
        };
        metrics::histogram!("farm_job_compute_seconds", "lane" => self.lane())
            .record(started_at.elapsed().as_secs_f64());
        let outcome = self.finish(delivery, &job_id, finish).await;
        tracing::info!(
            %job_id,
            lane = self.lane(),
            outcome = outcome.as_str(),
            queued_ms = (queued * 1000.0) as u64,
            elapsed_ms = started_at.elapsed().as_millis() as u64,
            "job done"
        );
        outcome
    }

    fn started(&self, deliveries: u64, claim: bool) -> ResultEvent {
        ResultEvent::Started { worker: self.settings.name.clone(), deliveries, claim }
    }

    /// Asks the API, until it answers, whether this worker may compute the
    /// job. While another worker runs it and reports, the delivery is held
    /// and the question asked again every `claim_recheck`; that worker's
    /// result ends the wait with a yield, its silence with a proceed. With
    /// no answer at all for `claim_patience` (the API is down, or older),
    /// the job is computed: two computations at once are wasted work, never
    /// a wrong result, and a stalled worker would be worse.
    async fn claim(
        &self,
        job_id: &str,
        deliveries: u64,
        token: &CancellationToken,
        answers: &mut mpsc::UnboundedReceiver<ClaimAnswer>,
        ask_first: bool,
    ) -> Claimed {
        let mut heard_at = Instant::now();
        let mut ask = ask_first;
        loop {
            if ask && let Err(e) = self.report(job_id, self.started(deliveries, true)).await {
                tracing::warn!(%job_id, error = %e, "could not ask the API about a redelivered job; asking again");
            }
            ask = true;
            let next = tokio::time::Instant::now() + self.settings.claim_recheck;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return Claimed::Stopped,
                    _ = tokio::time::sleep_until(next) => break,
                    answer = answers.recv() => match answer {
                        Some(ClaimAnswer::Proceed) | None => {
                            metrics::counter!("farm_job_claims_total", "lane" => self.lane(), "answer" => "proceed").increment(1);
                            return Claimed::Proceed;
                        }
                        Some(ClaimAnswer::Wait { runner }) => {
                            metrics::counter!("farm_job_claims_total", "lane" => self.lane(), "answer" => "wait").increment(1);
                            tracing::debug!(%job_id, %runner, "the job's runner still reports; waiting");
                            heard_at = Instant::now();
                        }
                    },
                }
            }
            if heard_at.elapsed() >= self.settings.claim_patience {
                tracing::warn!(%job_id, "no word from the API on a redelivered job; computing it");
                metrics::counter!("farm_job_claims_total", "lane" => self.lane(), "answer" => "none").increment(1);
                return Claimed::Proceed;
            }
        }
    }

    /// How a job stopped by its token ends.
    fn stopped(&self, job_id: &str) -> Finish {
        if self.has_yielded(job_id) {
            Finish::Yield
        } else if self.is_cancelled(job_id) {
            Finish::Report(ResultEvent::Cancelled)
        } else if self.hard_stop.is_cancelled() {
            Finish::HandBack
        } else {
            Finish::Report(ResultEvent::Failed {
                error: JobFailure::new(
                    FailureKind::DeadlineExceeded,
                    format!(
                        "deadline exceeded: the {} lane allows {} s per job",
                        self.lane(),
                        self.settings.deadline.as_secs_f64()
                    ),
                ),
            })
        }
    }

    /// Removes the job from this worker's hands and settles its delivery
    /// and every delivery adopted beside it.
    async fn end(&self, job_id: &str, delivery: Delivery, how: Settle) {
        let adopted = self.running.lock().expect("running lock poisoned").remove(job_id).map(|job| job.adopted);
        for delivery in std::iter::once(delivery).chain(adopted.unwrap_or_default()) {
            settle(match how {
                Settle::Ack => delivery.ack().await,
                Settle::Release => delivery.release().await,
            });
        }
    }

    /// Fetches and prices the job, reporting progress as it goes. The API's
    /// word that another worker runs the job (a message sent twice) stops
    /// the computation and parks the job.
    async fn work(
        &self,
        job: &JobMessage,
        token: &CancellationToken,
        answers: &mut mpsc::UnboundedReceiver<ClaimAnswer>,
    ) -> Worked {
        let deadline = Instant::now() + self.settings.deadline;
        let compute = token.child_token();
        let progress = Arc::new(AtomicU16::new(Stage::Fetching.pack(0)));
        let heartbeat_done = CancellationToken::new();
        let priced = async {
            let event = self.fetch_and_price(job, compute.clone(), deadline, progress.clone()).await;
            heartbeat_done.cancel();
            event
        };
        let priced =
            async { tokio::join!(priced, self.heartbeat(&job.job_id, progress.clone(), heartbeat_done.clone())).0 };
        tokio::pin!(priced);
        let mut parked = None;
        let event = loop {
            tokio::select! {
                event = &mut priced => break event,
                Some(answer) = answers.recv(), if parked.is_none() => {
                    // Stopped, and waited for: its memory is freed before the
                    // job is parked.
                    if let ClaimAnswer::Wait { runner } = answer {
                        parked = Some(runner);
                        compute.cancel();
                    }
                }
            }
        };
        match (event, parked) {
            (Some(event), _) => Worked::Finished(Finish::Report(event)),
            (None, Some(runner)) if !token.is_cancelled() => Worked::Parked { runner },
            (None, _) => Worked::Finished(self.stopped(&job.job_id)),
        }
    }

    /// The result event, or `None` when the job was stopped (cancelled, past
    /// its deadline, or at the end of the grace period).
    async fn fetch_and_price(
        &self,
        job: &JobMessage,
        token: CancellationToken,
        deadline: Instant,
        progress: Arc<AtomicU16>,
    ) -> Option<ResultEvent> {
        let key = model_key(&job.model_id);
        let retry = self.settings.retry;
        let mut attempt = 1;
        let bytes: Bytes = loop {
            let fetched = tokio::select! {
                _ = token.cancelled() => return None,
                _ = tokio::time::sleep_until(deadline.into()) => return None,
                fetched = self.blobs.get(&key).instrument(tracing::info_span!("fetch_model", %key, attempt)) => fetched,
            };
            match fetched {
                Ok(bytes) => break bytes,
                Err(BlobError::NotFound { key }) => {
                    return Some(ResultEvent::Failed {
                        error: JobFailure::new(FailureKind::ModelMissing, format!("no model stored at {key}")),
                    });
                }
                Err(e @ BlobError::Unavailable { .. }) if attempt >= retry.attempts => {
                    tracing::warn!(job_id = %job.job_id, error = %e, attempt, "model store still failing; giving up");
                    return Some(ResultEvent::Failed {
                        error: JobFailure::new(
                            FailureKind::Unavailable,
                            format!("the model store failed {attempt} times: {e}"),
                        ),
                    });
                }
                Err(e @ BlobError::Unavailable { .. }) => {
                    let wait = retry.backoff(attempt);
                    tracing::warn!(job_id = %job.job_id, error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "model fetch failed; retrying");
                    metrics::counter!("farm_job_retries_total", "lane" => self.lane(), "reason" => "model_store")
                        .increment(1);
                    tokio::select! {
                        _ = token.cancelled() => return None,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    attempt += 1;
                }
            }
        };
        let request =
            QuoteRequest { material: job.material.clone(), quantity: job.quantity, colour: job.colour.clone() };
        let quote_key = self.pricing.cache_key(&job.model_id, &request);
        let pricing = self.pricing.clone();
        let options = self.settings.analysis.clone();
        let faults = self.settings.faults.arm(&bytes);
        let observer = JobObserver {
            token: token.clone(),
            deadline,
            progress: progress.clone(),
            slow_job: faults.slow_job,
            slowed: std::sync::atomic::AtomicBool::new(false),
        };
        // The analysis runs on the rayon pool; its span is the job's child.
        let span = tracing::info_span!("price", model_id = %job.model_id, triangles = tracing::field::Empty);
        let priced = compute::run_on(&self.pool, move || {
            let _entered = span.enter();
            faults.strike();
            let priced = pricing.price_observed(&bytes, &request, options, &observer);
            if let Ok(quote) = &priced {
                span.record("triangles", quote.triangles);
            }
            observer.progress.store(Stage::Pricing.pack(100), Ordering::Relaxed);
            (priced, observer.should_stop())
        })
        .await;
        match priced {
            Ok((Ok(quote), _)) => {
                metrics::counter!("farm_triangles_priced_total", "lane" => self.lane()).increment(quote.triangles);
                Some(ResultEvent::Succeeded { quote: Box::new(quote), quote_key: Some(quote_key) })
            }
            Ok((Err(_), true)) => None,
            Ok((Err(error), false)) => Some(ResultEvent::Failed { error }),
            Err(panicked) => {
                tracing::error!(job_id = %job.job_id, error = %panicked, "pricing panicked");
                Some(ResultEvent::Failed {
                    error: JobFailure::new(FailureKind::Internal, "the analysis failed unexpectedly"),
                })
            }
        }
    }

    /// Reports the job's stage and percentage whenever they change (at most
    /// once a second), and at least every heartbeat interval, until `done`.
    async fn heartbeat(&self, job_id: &str, progress: Arc<AtomicU16>, done: CancellationToken) {
        let tick = self.settings.heartbeat.min(Duration::from_secs(1));
        let mut last = None;
        let mut last_sent = Instant::now();
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let now = progress.load(Ordering::Relaxed);
            if last != Some(now) || last_sent.elapsed() >= self.settings.heartbeat {
                let (stage, percent) = Stage::unpack(now);
                // A lost heartbeat is only late news; the next one follows.
                let event = ResultEvent::Progress { stage, percent, worker: self.settings.name.clone() };
                if self.report(job_id, event).await.is_ok() {
                    last = Some(now);
                    last_sent = Instant::now();
                }
            }
        }
    }

    /// Publishes the outcome and settles the delivery: ack once the result
    /// is safe with the broker; hand the job back when it cannot be.
    async fn finish(&self, delivery: Delivery, job_id: &str, finish: Finish) -> Outcome {
        let event = match finish {
            Finish::HandBack => {
                // Said first, so the worker that gets the job next need not
                // wait for this one to go silent. Best effort: silence says
                // the same, later.
                let released = ResultEvent::Released { worker: self.settings.name.clone() };
                if let Err(e) = self.report(job_id, released).await {
                    tracing::debug!(%job_id, error = %e, "could not say that the job is handed back");
                }
                self.end(job_id, delivery, Settle::Release).await;
                return Outcome::Released;
            }
            Finish::Yield => {
                self.end(job_id, delivery, Settle::Ack).await;
                return Outcome::Yielded;
            }
            Finish::Report(event) => event,
        };
        let outcome = match &event {
            ResultEvent::Succeeded { .. } => Outcome::Succeeded,
            ResultEvent::Cancelled => Outcome::Cancelled,
            ResultEvent::Failed { error } if error.kind == FailureKind::DeadlineExceeded => Outcome::DeadlineExceeded,
            _ => Outcome::Failed,
        };
        // The broker may be restarting: keep trying until it takes the
        // result, or until the grace period is over.
        let mut attempt = 1;
        loop {
            match self.report(job_id, event.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    if self.hard_stop.is_cancelled() {
                        tracing::warn!(%job_id, error = %e, "could not publish the result before stopping; handing the job back");
                        self.end(job_id, delivery, Settle::Release).await;
                        return Outcome::Released;
                    }
                    let wait = self.settings.retry.backoff(attempt.min(8));
                    tracing::warn!(%job_id, error = %e, retry_in_ms = wait.as_millis() as u64, "could not publish the result; retrying");
                    metrics::counter!("farm_job_retries_total", "lane" => self.lane(), "reason" => "broker")
                        .increment(1);
                    tokio::select! {
                        _ = self.hard_stop.cancelled() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    attempt += 1;
                }
            }
        }
        self.finished.lock().expect("finished lock poisoned").insert(job_id.to_string(), event);
        // If the ack is lost with its connection, the broker redelivers the
        // job; `finished` then answers it without computing it again.
        self.end(job_id, delivery, Settle::Ack).await;
        outcome
    }

    async fn report(&self, job_id: &str, event: ResultEvent) -> Result<(), BrokerError> {
        let message = ResultMessage { job_id: job_id.into(), event, at_ms: now_ms() };
        let payload = serde_json::to_vec(&message).expect("result messages always serialize");
        // Results continue the job's trace back to the API.
        let message = Outgoing::new(payload).with_id(job_id).with_headers(crate::trace::current_headers());
        self.broker.publish(&self.topology.results, &message).await
    }
}

fn settle(result: Result<(), BrokerError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle a delivery; the broker will redeliver it");
    }
}

/// Between 50% and 100% of `delay`.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    delay.mul_f64(0.5 + 0.5 * f64::from(nanos % 1000) / 1000.0)
}

/// Counts a job in the in-flight gauge for as long as it lives.
struct InFlight(&'static str);

impl InFlight {
    fn enter(lane: &'static str) -> Self {
        metrics::gauge!("farm_jobs_in_flight", "lane" => lane).increment(1.0);
        Self(lane)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("farm_jobs_in_flight", "lane" => self.0).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let policy =
            RetryPolicy { attempts: 5, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(1) };
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (30, 1000)] {
            let wait = policy.backoff(attempt).as_millis() as u64;
            assert!(wait >= full / 2 && wait <= full, "attempt {attempt}: {wait} ms of {full}");
        }
    }

    #[test]
    fn recent_forgets_the_oldest_first() {
        let mut recent = Recent::new(2);
        for key in ["a", "b", "c"] {
            recent.insert(key.to_string(), ());
        }
        assert_eq!((recent.get("a"), recent.get("b"), recent.get("c")), (None, Some(()), Some(())));
    }

    #[test]
    fn a_deadline_the_broker_would_cut_short_is_refused() {
        let settings = WorkerSettings {
            broker_consumer_timeout: Some(Duration::from_secs(30 * 60)),
            ..WorkerSettings::for_lane(Lane::Slow)
        };
        let broker = Broker::Memory(crate::broker::MemoryBroker::new());
        let blobs = BlobStore::Local(std::env::temp_dir());
        let pricing = Arc::new(Pricing::default());
        let topology = Topology::with_prefix("t");
        let err = Worker::new(broker.clone(), blobs.clone(), topology.clone(), pricing.clone(), settings.clone())
            .unwrap_err();
        assert!(err.to_string().contains("consumer_timeout"), "{err}");
        let fine = WorkerSettings { broker_consumer_timeout: Some(Duration::from_secs(3600)), ..settings };
        assert!(Worker::new(broker, blobs, topology, pricing, fine).is_ok());
    }
}
