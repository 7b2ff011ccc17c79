//! Fault tests: the real `farm api` and `farm worker` processes on real
//! RabbitMQ, PostgreSQL and S3, with a worker killed, the broker restarted,
//! poison models, and SIGTERM in the middle of jobs.
//!
//! Each test prints its counts (submitted, succeeded, failed, lost,
//! duplicated) and requires lost = 0 and duplicated = 0: every job reaches a
//! final state, and none has its final effect applied twice (counted from the
//! job-events audit table, where each applied change is one row).
//!
//! They run one at a time: restarting the broker would disturb any other
//! test using it. Other test binaries never run at the same time as this one
//! (`cargo test` runs binaries in turn).

#![allow(clippy::print_stderr)]

#[path = "../e2e/helpers.rs"]
mod helpers;
use testkit::services;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

use helpers::{Api, FarmProcess};

/// Fault tests take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long every batch may take to finish.
const BATCH_PATIENCE: Duration = Duration::from_secs(180);

struct Farm {
    env: Vec<(&'static str, String)>,
    database_url: String,
}

/// Leaves the broker as the test found it: a fault test's queues would
/// otherwise stay, six quorum queues a test, run after run.
impl Drop for Farm {
    fn drop(&mut self) {
        let setting = |name: &str| self.env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        let (Some(amqp_url), Some(prefix)) = (setting("FARM_AMQP_URL"), setting("FARM_QUEUE_PREFIX")) else {
            return;
        };
        // A runtime of its own on a thread of its own: this may run inside
        // the test's runtime, which cannot be blocked on.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(services::delete_broker_objects(&amqp_url, &prefix));
        });
        let _ = cleanup.join();
    }
}

/// Fresh backends (database, queue prefix, bucket), or `None` when a
/// service is missing outside CI.
async fn farm(extra: &[(&'static str, String)]) -> Option<Farm> {
    let database_url = services::fresh_postgres_database().await?;
    let amqp_url = services::rabbitmq().await?;
    let s3 = services::s3()?;
    if !rabbitmqctl_available() {
        return services::missing("rabbitmqctl", "the broker cannot be restarted from here");
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut env = vec![
        ("FARM_DATABASE_URL", database_url.clone()),
        ("FARM_AMQP_URL", amqp_url),
        ("FARM_QUEUE_PREFIX", format!("faults-{}", &id[..12])),
        ("FARM_S3_ENDPOINT", s3.endpoint),
        ("FARM_S3_BUCKET", format!("farm-faults-{}", &id[..12])),
        ("FARM_S3_REGION", s3.region),
        ("AWS_ACCESS_KEY_ID", s3.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key),
        ("FARM_HEARTBEAT_S", "1".into()),
        // A killed worker's job is taken over 3 s after its last word, and a
        // redelivery waiting for a live runner asks again every half second.
        ("FARM_HEARTBEAT_STALE_S", "3".into()),
        ("FARM_CLAIM_RECHECK_S", "0.5".into()),
        ("FARM_BROKER_CONNECT_PATIENCE_S", "120".into()),
    ];
    env.extend(extra.iter().cloned());
    Some(Farm { env, database_url })
}

/// `rabbitmqctl ARGS`, bounded: a wedged node leaves `rabbitmqctl` waiting
/// forever, and the test must fail instead.
fn rabbitmqctl_command(args: &[&str]) -> Command {
    let mut command = Command::new("timeout");
    command.args(["120", "rabbitmqctl"]).args(args);
    command
}

fn rabbitmqctl_available() -> bool {
    rabbitmqctl_command(&["status"]).output().is_ok_and(|o| o.status.success())
}

fn rabbitmqctl(args: &[&str]) {
    let out = rabbitmqctl_command(args).output().expect("run rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Brings the broker back even when the test fails half way: later tests
/// (and CI) need it.
struct BrokerStopped;

impl BrokerStopped {
    fn stop() -> Self {
        rabbitmqctl(&["stop_app"]);
        BrokerStopped
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        let _ = rabbitmqctl_command(&["start_app"]).output();
        let _ = rabbitmqctl_command(&["await_startup", "--timeout", "60"]).output();
    }
}

impl Farm {
    fn with(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = self.env.clone();
        env.extend(extra.iter().cloned());
        env
    }

    fn api(&self) -> (FarmProcess, Api) {
        let token = helpers::mint_key("seller", "faults", &[], &self.env);
        let mut process = FarmProcess::spawn(&["api", "--listen", "127.0.0.1:0"], &self.env);
        let api = Api::new(&process.wait_for_listening(), &token);
        (process, api)
    }

    fn worker(&self, extra: &[(&'static str, String)]) -> FarmProcess {
        self.worker_with_ops(extra).0
    }

    /// A worker that is not waited on: one that may die on its first job
    /// before its ops endpoint says it listens.
    fn start_worker(&self, extra: &[(&'static str, String)]) -> FarmProcess {
        FarmProcess::spawn(&["worker", "--listen", "127.0.0.1:0"], &self.with(extra))
    }

    /// A worker and the address of its ops endpoint (`/healthz`, `/readyz`, `/metrics`).
    fn worker_with_ops(&self, extra: &[(&'static str, String)]) -> (FarmProcess, String) {
        let mut process = FarmProcess::spawn(&["worker", "--listen", "127.0.0.1:0"], &self.with(extra));
        let ops = process.wait_for_listening();
        (process, format!("http://{ops}"))
    }
}

/// What the fault tests ask of a farm's API beyond the shared client.
trait FaultsApi {
    async fn upload_model(&self, bytes: Vec<u8>) -> String;
    async fn submit_batch(&self, model_id: &str, count: u32, first_quantity: u32) -> Vec<String>;
    async fn job(&self, job_id: &str) -> Value;
    async fn settle(&self, job_ids: &[String], processes: &[&FarmProcess]);
    async fn running_on(&self, job_ids: &[String], pid: u32) -> String;
    async fn ready(&self) -> (u16, Value);
}

impl FaultsApi for Api {
    async fn upload_model(&self, bytes: Vec<u8>) -> String {
        let (status, model) = self.upload(bytes).await;
        assert_eq!(status, 201, "{model}");
        model["model_id"].as_str().unwrap().to_string()
    }

    /// Submits `count` jobs for `model_id`, each a different quantity so no
    /// quote-cache hit answers one for another.
    async fn submit_batch(&self, model_id: &str, count: u32, first_quantity: u32) -> Vec<String> {
        let mut ids = Vec::new();
        for n in 0..count {
            let body = serde_json::json!({"model_id": model_id, "material": "pla", "quantity": first_quantity + n});
            let (status, accepted) = self.post("/v1/pricing-jobs", &body).await;
            assert_eq!(status, 202, "{accepted}");
            ids.push(accepted["job_id"].as_str().unwrap().to_string());
        }
        ids
    }

    async fn job(&self, job_id: &str) -> Value {
        self.get(&format!("/v1/pricing-jobs/{job_id}")).await.1
    }

    /// Waits until the jobs reach a final state, or the patience runs out.
    async fn settle(&self, job_ids: &[String], processes: &[&FarmProcess]) {
        let deadline = Instant::now() + BATCH_PATIENCE;
        for job_id in job_ids {
            loop {
                let job = self.job(job_id).await;
                if matches!(job["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                    break;
                }
                if Instant::now() > deadline {
                    let logs: Vec<String> = processes.iter().map(|p| p.logs()).collect();
                    panic!("job {job_id} never ended: {job}\nlogs:\n{}", logs.join("\n---\n"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Polls until some job of `job_ids` runs on the worker with `pid`.
    async fn running_on(&self, job_ids: &[String], pid: u32) -> String {
        let marker = format!("-{pid}-");
        let running = testkit::wait_until(Duration::from_secs(60), || async {
            for job_id in job_ids {
                let job = self.job(job_id).await;
                if job["status"] == "running" && job["worker"].as_str().is_some_and(|w| w.contains(&marker)) {
                    return Some(job_id.clone());
                }
            }
            None
        });
        running.await.unwrap_or_else(|| panic!("no job ever ran on worker {pid}"))
    }

    async fn ready(&self) -> (u16, Value) {
        self.get("/readyz").await
    }
}

/// What became of a batch.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    submitted: usize,
    succeeded: usize,
    failed: usize,
    lost: usize,
    duplicated: usize,
    /// Jobs delivered to a worker more than once (the fault hit them).
    redelivered: usize,
    /// Jobs whose computation started more than once (a start recorded
    /// while it ran, or after its result was in).
    started_again: usize,
    /// Deliveries the API held back because the job's runner still
    /// reported (`farm_jobs_held_back_total`), by whether the worker had
    /// begun computing (a copy that did not say it was a redelivery).
    held_back_waiting: u64,
    held_back_computing: u64,
}

/// The sum of the API's counter `name` over the series that carry `labels`.
async fn api_counter(api: &Api, name: &str, labels: &str) -> u64 {
    let text = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn count(farm: &Farm, api: &Api, job_ids: &[String]) -> Counts {
    let mut db = sqlx::PgConnection::connect(&farm.database_url).await.unwrap();
    let mut counts = Counts {
        submitted: job_ids.len(),
        held_back_waiting: api_counter(api, "farm_jobs_held_back_total", "computing=\"no\"").await,
        held_back_computing: api_counter(api, "farm_jobs_held_back_total", "computing=\"yes\"").await,
        ..Counts::default()
    };
    for job_id in job_ids {
        let job = api.job(job_id).await;
        match job["status"].as_str() {
            Some("succeeded") if !job["quote"].is_null() => counts.succeeded += 1,
            Some("failed") => counts.failed += 1,
            _ => counts.lost += 1,
        }
        if job["deliveries"].as_i64().unwrap_or(0) > 1 {
            counts.redelivered += 1;
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM job_events WHERE job_id = $1 \
             AND event IN ('succeeded', 'failed', 'dead_lettered', 'cancelled')",
        )
        .bind(job_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
        let finals: i64 = row.try_get("n").unwrap();
        let started = sqlx::query("SELECT COUNT(*) AS n FROM job_events WHERE job_id = $1 AND event = 'started'")
            .bind(job_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        if started.try_get::<i64, _>("n").unwrap() > 1 {
            counts.started_again += 1;
        }
        if finals > 1 {
            counts.duplicated += 1;
        }
        if finals == 0 {
            counts.lost += usize::from(job["status"] == "succeeded" || job["status"] == "failed");
        }
    }
    counts
}

/// Whether the relay may have published a job twice during the fault: a
/// broker that goes away with a publish unconfirmed gets it again, and that
/// copy does not say it was delivered before.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relay {
    Undisturbed,
    MayRepeat,
}

fn report(fault: &str, counts: &Counts, relay: Relay) {
    eprintln!(
        "\nfault: {fault}\n  submitted {}, succeeded {}, failed {}, lost {} (must be 0), duplicated {} (must be 0); \
         {} jobs were delivered more than once, {} started more than once; \
         {} redeliveries waited for a live runner, {} copies were stopped beside one (must be 0)\n",
        counts.submitted,
        counts.succeeded,
        counts.failed,
        counts.lost,
        counts.duplicated,
        counts.redelivered,
        counts.started_again,
        counts.held_back_waiting,
        counts.held_back_computing,
    );
    assert!(counts.started_again <= counts.redelivered, "only a redelivery starts a job again: {counts:?}");
    // Every redelivery says so, and is claimed before it is computed. Only a
    // copy the relay published again (its confirm lost with the broker)
    // begins at once, until the API's word stops it.
    if relay == Relay::Undisturbed {
        assert_eq!(counts.held_back_computing, 0, "a job was computed twice at once: {counts:?}");
    }
    assert_eq!((counts.lost, counts.duplicated), (0, 0), "{fault}: {counts:?}");
}

fn slow_jobs(ms: u64) -> (&'static str, String) {
    ("FARM_FAULT_SLOW_JOB_MS", ms.to_string())
}

#[tokio::test]
async fn kill_9_a_worker_in_the_middle_of_a_job() {
    let _turn = SERIAL.lock().await;
    let Some(farm) = farm(&[]).await else { return };
    let (api_process, api) = farm.api();
    let settings = [slow_jobs(1500), ("FARM_WORKER_SLOTS", "1".into())];
    let mut doomed = farm.worker(&settings);
    let survivor = farm.worker(&settings);
    let model = api.upload_model(mesh::write_binary_stl(&mesh::cuboid([10.0; 3]))).await;
    let jobs = api.submit_batch(&model, 8, 1).await;

    let victim = api.running_on(&jobs, doomed.pid()).await;
    doomed.signal("KILL");
    assert_eq!(doomed.wait_exit(Duration::from_secs(10)), Some(-1), "killed by a signal");
    api.settle(&jobs, &[&api_process, &survivor]).await;

    let job = api.job(&victim).await;
    assert_eq!(job["status"], "succeeded", "the killed worker's job was finished by the other: {job}");
    assert!(job["deliveries"].as_i64().unwrap() >= 2, "it was delivered again: {job}");
    let counts = count(&farm, &api, &jobs).await;
    assert_eq!((counts.succeeded, counts.failed), (8, 0), "{counts:?}");
    report("kill -9 a worker in the middle of a job", &counts, Relay::Undisturbed);
}

#[tokio::test]
async fn restart_rabbitmq_in_the_middle_of_a_batch() {
    let _turn = SERIAL.lock().await;
    let Some(farm) = farm(&[]).await else { return };
    let (mut api_process, api) = farm.api();
    let mut worker = farm.worker(&[slow_jobs(400), ("FARM_WORKER_SLOTS", "2".into())]);
    let model = api.upload_model(mesh::write_binary_stl(&mesh::cuboid([12.0; 3]))).await;
    let mut jobs = api.submit_batch(&model, 16, 1).await;
    // Let a few finish, so the outage lands mid-batch.
    let started = testkit::wait_until(Duration::from_secs(60), || async {
        (count(&farm, &api, &jobs).await.succeeded >= 3).then_some(())
    });
    assert!(started.await.is_some(), "the batch never started");

    let outage = BrokerStopped::stop();
    let noticed = testkit::wait_until(Duration::from_secs(30), || async {
        let (status, ready) = api.ready().await;
        (status == 503 && ready["checks"]["broker"] == "unavailable").then_some(())
    });
    assert!(noticed.await.is_some(), "/readyz never reported the outage: {:?}", api.ready().await);
    // Orders keep coming while the broker is down: they wait in the outbox.
    jobs.extend(api.submit_batch(&model, 4, 100).await);
    // Nobody spins while waiting.
    let (api_cpu, worker_cpu) = (api_process.cpu_seconds(), worker.cpu_seconds());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (api_busy, worker_busy) = (api_process.cpu_seconds() - api_cpu, worker.cpu_seconds() - worker_cpu);
    assert!(api_busy < 1.0 && worker_busy < 1.0, "CPU during 3 s of outage: api {api_busy} s, worker {worker_busy} s");
    assert_eq!((api_process.exited(), worker.exited()), (None, None), "nothing crashed while the broker was down");
    drop(outage);

    let reconnected =
        testkit::wait_until(Duration::from_secs(120), || async { (api.ready().await.0 == 200).then_some(()) });
    assert!(reconnected.await.is_some(), "the API never reconnected:\n{}", api_process.logs());
    api.settle(&jobs, &[&api_process, &worker]).await;
    let counts = count(&farm, &api, &jobs).await;
    assert_eq!((counts.succeeded, counts.failed), (20, 0), "{counts:?}");
    report("restart RabbitMQ (stop_app, start_app) in the middle of a batch", &counts, Relay::MayRepeat);
}

#[tokio::test]
async fn poison_models_that_panic_or_kill_their_worker() {
    let _turn = SERIAL.lock().await;
    let Some(farm) = farm(&[("FARM_DELIVERY_LIMIT", "3".into())]).await else { return };
    let (api_process, api) = farm.api();
    let (panicking, killing) =
        (mesh::write_binary_stl(&mesh::cuboid([11.0; 3])), mesh::write_binary_stl(&mesh::cuboid([13.0; 3])));
    // Faults name a model by the SHA-256 of its bytes.
    let sha256 = |bytes: &[u8]| -> String { Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect() };
    let settings = [
        ("FARM_WORKER_SLOTS", "1".into()),
        ("FARM_FAULT_PANIC_MODEL", sha256(&panicking)),
        ("FARM_FAULT_ABORT_MODEL", sha256(&killing)),
    ];
    let panics = api.upload_model(panicking).await;
    let kills = api.upload_model(killing).await;
    let healthy = api.upload_model(mesh::write_binary_stl(&mesh::cuboid([9.0; 3]))).await;
    let mut jobs = api.submit_batch(&panics, 1, 1).await;
    jobs.extend(api.submit_batch(&kills, 1, 1).await);
    jobs.extend(api.submit_batch(&healthy, 4, 1).await);

    // A supervisor, as Kubernetes would be: a worker that dies is restarted.
    let mut restarts = 0;
    // It is not waited on: a restarted worker may take the killer job and
    // die before it logs that it listens.
    let mut worker = farm.start_worker(&settings);
    let deadline = Instant::now() + BATCH_PATIENCE;
    loop {
        let counts = count(&farm, &api, &jobs).await;
        if counts.succeeded + counts.failed == jobs.len() {
            break;
        }
        if worker.exited().is_some() {
            restarts += 1;
            assert!(restarts <= 10, "the worker keeps dying:\n{}", worker.logs());
            worker = farm.start_worker(&settings);
        }
        assert!(Instant::now() < deadline, "the batch never ended:\n{}", api_process.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let panicked = api.job(&jobs[0]).await;
    assert_eq!(
        (panicked["error"]["kind"].as_str(), panicked["deliveries"].as_i64()),
        (Some("internal"), Some(1)),
        "{panicked}"
    );
    let killer = api.job(&jobs[1]).await;
    assert_eq!(killer["error"]["kind"], "dead_lettered", "{killer}");
    assert!(killer["error"]["message"].as_str().unwrap().contains("delivery limit"), "{killer}");
    assert!((3..=5).contains(&restarts), "the worker died on each delivery up to the limit: {restarts} restarts");
    let counts = count(&farm, &api, &jobs).await;
    assert_eq!((counts.succeeded, counts.failed), (4, 2), "{counts:?}");
    report(
        "poison models: one panics the analysis, one aborts the worker on every delivery",
        &counts,
        Relay::Undisturbed,
    );
    eprintln!("  the worker was restarted {restarts} times before the killer was dead-lettered");
}

#[tokio::test]
async fn sigterm_in_the_middle_of_a_job() {
    let _turn = SERIAL.lock().await;
    let Some(farm) = farm(&[]).await else { return };
    let (api_process, api) = farm.api();
    let model = api.upload_model(mesh::write_binary_stl(&mesh::cuboid([14.0; 3]))).await;
    let jobs = api.submit_batch(&model, 6, 1).await;

    // A long grace: the running jobs finish before the worker exits. While
    // it drains, its ops endpoint stays up: alive, scraped, but not ready.
    let patient = [slow_jobs(4000), ("FARM_WORKER_SLOTS", "2".into()), ("FARM_SHUTDOWN_GRACE_S", "60".into())];
    let (mut first, ops) = farm.worker_with_ops(&patient);
    let finishing = api.running_on(&jobs, first.pid()).await;
    let http = reqwest::Client::new();
    let ready = http.get(format!("{ops}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready while consuming");
    first.signal("TERM");
    let draining = loop {
        let ready = http.get(format!("{ops}/readyz")).send().await.expect("the ops endpoint is up while draining");
        if ready.status() == 503 {
            break ready.json::<Value>().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(draining["status"], "draining", "{draining}");
    let alive = http.get(format!("{ops}/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200, "alive while draining");
    let metrics = http.get(format!("{ops}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("farm_jobs_in_flight{lane=\"fast\"} 1")
            || metrics.contains("farm_jobs_in_flight{lane=\"fast\"} 2"),
        "the running jobs are still scraped:\n{metrics}"
    );
    assert_eq!(first.wait_exit(Duration::from_secs(30)), Some(0), "exit 0 after draining:\n{}", first.logs());
    // Its result reaches the API through the broker, after the worker is gone.
    api.settle(std::slice::from_ref(&finishing), &[&api_process, &first]).await;
    let job = api.job(&finishing).await;
    assert_eq!(
        (job["status"].as_str(), job["deliveries"].as_i64()),
        (Some("succeeded"), Some(1)),
        "finished in the grace period: {job}"
    );
    let started: i64 = sqlx::query("SELECT COUNT(*) AS n FROM job_events WHERE job_id = $1 AND event = 'started'")
        .bind(&finishing)
        .fetch_one(&mut sqlx::PgConnection::connect(&farm.database_url).await.unwrap())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(started, 1, "computed once: the drain let it finish");

    // A grace shorter than a job: the running jobs go back to the queue.
    let hasty = [slow_jobs(5000), ("FARM_WORKER_SLOTS", "2".into()), ("FARM_SHUTDOWN_GRACE_S", "0.5".into())];
    let mut second = farm.worker(&hasty);
    let handed_back = api.running_on(&jobs, second.pid()).await;
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(30)), Some(0), "exit 0 after handing back:\n{}", second.logs());

    let third = farm.worker(&[("FARM_WORKER_SLOTS", "2".into())]);
    api.settle(&jobs, &[&api_process, &third]).await;
    let job = api.job(&handed_back).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["deliveries"].as_i64().unwrap() >= 2, "it was handed back and delivered again: {job}");
    let counts = count(&farm, &api, &jobs).await;
    assert_eq!((counts.succeeded, counts.failed), (6, 0), "{counts:?}");
    report("SIGTERM in the middle of a job (grace long enough, then too short)", &counts, Relay::Undisturbed);
}

/// Publishes to a queue with a publisher confirm, retrying across a broker
/// outage as a careful integration would: the message counts as sent only
/// once the broker confirmed it.
async fn publish_confirmed(amqp_url: &str, queue: &str, payload: &[u8]) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let attempt = async {
            let connection = lapin::Connection::connect(amqp_url, Default::default()).await?;
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            let properties = lapin::BasicProperties::default().with_delivery_mode(2);
            let confirm = channel
                .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), payload, properties)
                .await?
                .await?;
            let _ = connection.close(200, "sent".into()).await;
            Ok::<bool, lapin::Error>(confirm.is_ack())
        };
        if let Ok(true) = attempt.await {
            return;
        }
        assert!(Instant::now() < deadline, "the broker never came back for {queue}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_thousand_orders_over_http_and_the_queue_survive_a_broker_restart_each_counted_once() {
    let _turn = SERIAL.lock().await;
    // One seller key sends all 500 HTTP orders. With the broker down and
    // two worker slots, more than the default 200 jobs in flight pile up,
    // and the per-key quota (not what this test is about) would answer 429.
    let Some(farm) = farm(&[("FARM_QUOTA_JOBS_IN_FLIGHT", "100000".into())]).await else { return };
    let (api_process, api) = farm.api();
    let worker = farm.worker(&[("FARM_WORKER_SLOTS", "2".into())]);
    let amqp_url = farm.env.iter().find(|(k, _)| *k == "FARM_AMQP_URL").unwrap().1.clone();
    let prefix = farm.env.iter().find(|(k, _)| *k == "FARM_QUEUE_PREFIX").unwrap().1.clone();
    let queue = format!("{prefix}.orders.incoming");
    let model = api.upload_model(mesh::write_binary_stl(&mesh::cuboid([8.0; 3]))).await;
    // The API declares the intake queue; wait until it has.
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.ready().await.0 != 200 {
        assert!(Instant::now() < deadline, "the API never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let per_path = 500u32;
    let http_order = async |n: u32| {
        // With an idempotency key, so a retry could never double it.
        let body = serde_json::json!({"model_id": model, "material": "pla", "quantity": n});
        let request = api.http.post(format!("{}/v1/orders", api.base)).bearer_auth(&api.token);
        let response = request.header("Idempotency-Key", format!("http-{n}")).json(&body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 201, "the API takes orders, broker or not");
    };
    let queue_order = async |n: u32| {
        let message = serde_json::json!({"external_id": format!("queue-{n}"), "seller": "faults", "model_id": model,
                                         "material": "pla", "quantity": n + per_path});
        publish_confirmed(&amqp_url, &queue, message.to_string().as_bytes()).await;
    };
    for n in 1..=200 {
        http_order(n).await;
        queue_order(n).await;
    }
    // The broker goes down mid-batch: HTTP orders keep coming (their pricing
    // waits in the outbox); the queue's sender holds its messages until the
    // broker confirms them again.
    let outage = BrokerStopped::stop();
    for n in 201..=300 {
        http_order(n).await;
    }
    drop(outage);
    for n in 201..=300 {
        queue_order(n).await;
    }
    for n in 301..=per_path {
        http_order(n).await;
        queue_order(n).await;
    }

    // Every order priced, each once.
    let operator =
        Api::new(api.base.trim_start_matches("http://"), &helpers::mint_key("operator", "audit", &[], &farm.env));
    let deadline = Instant::now() + BATCH_PATIENCE * 2;
    let stats = loop {
        let (_, stats) = operator.get("/v1/orders/stats").await;
        let done = |s: &str| stats[s]["priced"].as_i64() == Some(i64::from(per_path));
        if done("api") && done("queue") {
            break stats;
        }
        assert!(Instant::now() < deadline, "not every order was priced: {stats}\n{}", api_process.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut db = sqlx::PgConnection::connect(&farm.database_url).await.unwrap();
    let mut count =
        async |sql: &'static str| -> i64 { sqlx::query(sql).fetch_one(&mut db).await.unwrap().try_get("n").unwrap() };
    let orders = count("SELECT COUNT(*) AS n FROM orders").await;
    let distinct = count(
        "SELECT COUNT(DISTINCT COALESCE(idempotency_key, '') || '/' || COALESCE(external_id, '')) AS n FROM orders",
    )
    .await;
    let double_priced = count(
        "SELECT COUNT(*) AS n FROM (SELECT order_id FROM order_events WHERE to_status = 'PRICED' \
         GROUP BY order_id HAVING COUNT(*) > 1) d",
    )
    .await;
    let counts = Counts {
        submitted: 2 * per_path as usize,
        succeeded: (stats["api"]["priced"].as_i64().unwrap() + stats["queue"]["priced"].as_i64().unwrap()) as usize,
        failed: (stats["api"]["pricing_failed"].as_i64().unwrap() + stats["queue"]["pricing_failed"].as_i64().unwrap())
            as usize,
        lost: (2 * i64::from(per_path) - orders).max(0) as usize + stats["unaccounted"].as_i64().unwrap() as usize,
        duplicated: (orders - distinct) as usize + double_priced as usize,
        redelivered: 0,
        started_again: 0,
        held_back_waiting: api_counter(&api, "farm_jobs_held_back_total", "computing=\"no\"").await,
        held_back_computing: api_counter(&api, "farm_jobs_held_back_total", "computing=\"yes\"").await,
    };
    assert_eq!(
        (orders, stats["api"]["received"].as_i64(), stats["queue"]["received"].as_i64()),
        (1000, Some(500), Some(500))
    );
    assert_eq!(stats["queue"]["dead_lettered"], 0, "{stats}");
    report(
        "1,000 orders, half over HTTP and half over the queue, with the broker stopped and restarted mid-way",
        &counts,
        Relay::MayRepeat,
    );
    drop(worker);
}
