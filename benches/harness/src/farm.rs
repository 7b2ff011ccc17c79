//! A farm to benchmark: the `farm` binary's own processes, started as users
//! start them, and a small HTTP client for the API.
//!
//! - **Embedded:** one `farm serve` (SQLite, in-process queue, a worker per
//!   lane) in a fresh data directory.
//! - **Services:** one `farm api` plus N `farm worker` processes per lane on
//!   the PostgreSQL, RabbitMQ and S3 named by the caller's `FARM_*`
//!   variables, with a fresh queue prefix and bucket, so N processes on this
//!   machine stand in for N pods.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which farm to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stack")]
pub enum Stack {
    Embedded,
    Services { fast_workers: usize, slow_workers: usize },
}

impl Stack {
    pub fn describe(&self) -> String {
        match self {
            Stack::Embedded => "embedded (`farm serve`: SQLite, in-process queue, one worker per lane)".into(),
            Stack::Services { fast_workers, slow_workers } => format!(
                "services (`farm api` + {fast_workers} fast and {slow_workers} slow `farm worker` processes on \
                 PostgreSQL, RabbitMQ and S3)"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    #[error("cannot start `{what}`: {message}")]
    Start { what: String, message: String },
    #[error("`{what}` never reported listening; its log ends:\n{log}")]
    NotListening { what: String, log: String },
    #[error("the farm answered {status} to {what}: {body}")]
    Http { what: String, status: u16, body: String },
    #[error("cannot reach the farm: {0}")]
    Unreachable(String),
    #[error("the services stack needs {0}; run it under `deploy/dev/services.sh run`")]
    MissingService(&'static str),
    #[error("{count} jobs did not finish within {seconds} s")]
    Timeout { count: usize, seconds: u64 },
}

/// Settings for starting a farm.
#[derive(Debug, Clone)]
pub struct FarmOptions {
    /// The `farm` binary.
    pub binary: PathBuf,
    pub stack: Stack,
    /// Extra `FARM_*` settings for every process (slots, lane thresholds,
    /// injected faults).
    pub env: Vec<(String, String)>,
    /// Where the embedded farm keeps its data.
    pub data_dir: PathBuf,
    /// The workers' niceness (0 as the API, up to 19 lowest): in production
    /// workers run on nodes of their own; on one small machine this keeps
    /// their quote computing from taking the API's CPU.
    pub worker_niceness: u8,
}

/// The variables that choose the production backends. An embedded farm is
/// started without them, whatever the caller's shell exports: otherwise
/// `--stack embedded` under `deploy/dev/services.sh run` (CI's shell) would
/// quietly run on the shared PostgreSQL database, RabbitMQ queues and S3
/// bucket, and measure, and collide with, something else.
const BACKEND_VARIABLES: [&str; 6] =
    ["FARM_DATABASE_URL", "FARM_AMQP_URL", "FARM_QUEUE_PREFIX", "FARM_S3_ENDPOINT", "FARM_S3_BUCKET", "FARM_REDIS_URL"];

/// `farm` with `env` on top of the caller's environment; for the embedded
/// stack, without the caller's backend variables. At a `niceness` above 0
/// it runs under `nice -n`, which execs it in place: the pid is farm's.
fn farm_command(binary: &Path, stack: Stack, env: &[(String, String)], niceness: u8) -> Command {
    let mut command = if niceness == 0 {
        Command::new(binary)
    } else {
        let mut nice = Command::new("nice");
        nice.arg("-n").arg(niceness.to_string()).arg(binary);
        nice
    };
    if stack == Stack::Embedded {
        for name in BACKEND_VARIABLES {
            command.env_remove(name);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A running `farm` process (testkit's, as the tests use it), with its log
/// collected; dropping it kills the process.
struct Process {
    what: String,
    process: testkit::FarmProcess,
}

impl Process {
    fn spawn(
        binary: &Path,
        stack: Stack,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<(Self, String), FarmError> {
        Self::spawn_nice(binary, stack, args, env, 0)
    }

    /// As `spawn`, at `niceness` (run by `nice -n`, which keeps the pid).
    fn spawn_nice(
        binary: &Path,
        stack: Stack,
        args: &[&str],
        env: &[(String, String)],
        niceness: u8,
    ) -> Result<(Self, String), FarmError> {
        let what = format!("farm {}", args.join(" "));
        let mut command = farm_command(binary, stack, env, niceness);
        command.args(args).env("RUST_LOG", "info");
        // Keep the tail: a long benchmark logs a line per job.
        let mut process = testkit::FarmProcess::spawn(command, 2000)
            .map_err(|e| FarmError::Start { what: what.clone(), message: e.to_string() })?;
        match process.wait_for_listening(Duration::from_secs(120)) {
            Ok(addr) => Ok((Self { what, process }, addr)),
            Err(e) => Err(FarmError::NotListening { what, log: e.log_tail }),
        }
    }

    fn tail(&self, lines: usize) -> String {
        self.process.tail(lines)
    }

    /// SIGTERM, then up to `patience` for the process to exit (it is killed
    /// when dropped if it has not).
    fn terminate(&mut self, patience: Duration) {
        self.process.terminate(patience);
    }
}

/// What the API says about a job, with its times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobTimes {
    pub job_id: String,
    pub lane: String,
    pub status: String,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub triangles: Option<u64>,
    /// Layers sliced and shells found, from the quote.
    #[serde(default)]
    pub layers: Option<u64>,
    #[serde(default)]
    pub shells: Option<u64>,
    pub error: Option<String>,
}

impl JobTimes {
    pub fn is_final(&self) -> bool {
        api::store::JobStatus::parse(&self.status).is_some_and(api::store::JobStatus::is_final)
    }

    /// Accepted to finished, ms.
    pub fn total_ms(&self) -> Option<f64> {
        Some((self.finished_at_ms? - self.created_at_ms) as f64)
    }

    /// Accepted to started, ms.
    pub fn queued_ms(&self) -> Option<f64> {
        Some((self.started_at_ms? - self.created_at_ms) as f64)
    }

    /// Started to finished, ms.
    pub fn compute_ms(&self) -> Option<f64> {
        Some((self.finished_at_ms? - self.started_at_ms?) as f64)
    }
}

/// A running farm.
pub struct Farm {
    processes: Vec<Process>,
    /// The API, called with a seller key: minted for the run, or given for
    /// a running farm.
    api: testkit::ApiClient,
    /// What was started; none for a running farm the bench only talks to.
    pub stack: Option<Stack>,
    /// The broker URL and queue prefix of a services run: its queues and
    /// exchanges are deleted when it stops.
    broker_objects: Option<(String, String)>,
}

/// Mints a key with the farm's own `farm keys create-<kind>` (`seller`,
/// `operator` or `crm`) against the store `store_args` name; its token.
pub fn mint_key(
    binary: &Path,
    stack: Stack,
    kind: &str,
    name: &str,
    store_args: &[&str],
    env: &[(String, String)],
) -> Result<String, FarmError> {
    let mut command = farm_command(binary, stack, env, 0);
    command.args(["keys", &format!("create-{kind}"), "--name", name]).args(store_args);
    let out = command.output().map_err(|e| FarmError::Start { what: "farm keys".into(), message: e.to_string() })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(token) if out.status.success() && token.starts_with(&format!("farm_{kind}_")) => {
            Ok(token.trim().to_string())
        }
        _ => Err(FarmError::Start { what: "farm keys".into(), message: String::from_utf8_lossy(&out.stderr).into() }),
    }
}

impl std::fmt::Debug for Farm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Farm").field("base", &self.api.base).field("stack", &self.stack).finish()
    }
}

impl Farm {
    /// A farm that is already running (a deployment), reached at `base`
    /// with a seller key; the bench starts and stops nothing.
    pub fn connect(base: &str, token: &str) -> Self {
        Self { processes: Vec::new(), api: testkit::ApiClient::new(base, token), stack: None, broker_objects: None }
    }

    /// Starts the farm and waits until every process listens.
    pub async fn start(options: &FarmOptions) -> Result<Self, FarmError> {
        let binary = options.binary.clone();
        let options = options.clone();
        // Spawning waits on the processes' logs: off the async runtime.
        tokio::task::spawn_blocking(move || Self::spawn_all(&binary, &options))
            .await
            .map_err(|e| FarmError::Start { what: "farm".into(), message: e.to_string() })?
    }

    fn spawn_all(binary: &Path, options: &FarmOptions) -> Result<Self, FarmError> {
        let mut env = options.env.clone();
        match options.stack {
            Stack::Embedded => {
                let dir = options.data_dir.to_string_lossy().into_owned();
                let token = mint_key(binary, options.stack, "seller", "bench", &["--data-dir", &dir], &env)?;
                let (serve, addr) = Process::spawn(
                    binary,
                    options.stack,
                    &["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"],
                    &env,
                )?;
                Ok(Self {
                    processes: vec![serve],
                    api: testkit::ApiClient::new(&addr, &token),
                    stack: Some(options.stack),
                    broker_objects: None,
                })
            }
            Stack::Services { fast_workers, slow_workers } => {
                for needed in ["FARM_DATABASE_URL", "FARM_AMQP_URL", "FARM_S3_ENDPOINT"] {
                    if std::env::var(needed).map_or(true, |v| v.is_empty()) {
                        return Err(FarmError::MissingService(needed));
                    }
                }
                let id = uuid::Uuid::new_v4().simple().to_string();
                let prefix = format!("bench-{}", &id[..12]);
                let amqp_url = std::env::var("FARM_AMQP_URL").unwrap_or_default();
                env.push(("FARM_QUEUE_PREFIX".into(), prefix.clone()));
                env.push(("FARM_S3_BUCKET".into(), format!("farm-bench-{}", &id[..12])));
                let token = mint_key(binary, options.stack, "seller", "bench", &[], &env)?;
                let (api, addr) = Process::spawn(binary, options.stack, &["api", "--listen", "127.0.0.1:0"], &env)?;
                let mut processes = vec![api];
                for (lane, count) in [("fast", fast_workers), ("slow", slow_workers)] {
                    for _ in 0..count {
                        let args = ["worker", "--lane", lane, "--listen", "127.0.0.1:0"];
                        let niceness = options.worker_niceness;
                        processes.push(Process::spawn_nice(binary, options.stack, &args, &env, niceness)?.0);
                    }
                }
                Ok(Self {
                    processes,
                    api: testkit::ApiClient::new(&addr, &token),
                    stack: Some(options.stack),
                    broker_objects: Some((amqp_url, prefix)),
                })
            }
        }
    }

    async fn post(&self, path: &str, body: reqwest::Body, json: bool) -> Result<Value, FarmError> {
        let (status, body) = self
            .api
            .try_send(reqwest::Method::POST, path, Some(&self.api.token), Some(body), json)
            .await
            .map_err(|e| FarmError::Unreachable(e.to_string()))?;
        if status >= 300 {
            return Err(FarmError::Http { what: format!("POST {path}"), status, body: body.to_string() });
        }
        Ok(body)
    }

    /// Uploads a model; its id.
    pub async fn upload(&self, bytes: Vec<u8>) -> Result<String, FarmError> {
        let body = self.post("/v1/models", bytes.into(), false).await?;
        Ok(body["model_id"].as_str().unwrap_or_default().to_string())
    }

    /// Submits a pricing job; its id.
    pub async fn submit(&self, model_id: &str, quantity: u32) -> Result<String, FarmError> {
        let request = serde_json::json!({"model_id": model_id, "material": "pla", "quantity": quantity});
        let body = self.post("/v1/pricing-jobs", request.to_string().into(), true).await?;
        Ok(body["job_id"].as_str().unwrap_or_default().to_string())
    }

    pub async fn job(&self, job_id: &str) -> Result<JobTimes, FarmError> {
        let path = format!("/v1/pricing-jobs/{job_id}");
        let (status, job) = self
            .api
            .try_send(reqwest::Method::GET, &path, Some(&self.api.token), None, false)
            .await
            .map_err(|e| FarmError::Unreachable(e.to_string()))?;
        if status != 200 {
            return Err(FarmError::Http { what: format!("GET job {job_id}"), status, body: job.to_string() });
        }
        Ok(JobTimes {
            job_id: job_id.to_string(),
            lane: job["lane"].as_str().unwrap_or_default().to_string(),
            status: job["status"].as_str().unwrap_or_default().to_string(),
            created_at_ms: job["created_at_ms"].as_i64().unwrap_or_default(),
            started_at_ms: job["started_at_ms"].as_i64(),
            finished_at_ms: job["finished_at_ms"].as_i64(),
            triangles: job["quote"]["triangles"].as_u64(),
            layers: job["quote"]["layers"].as_u64(),
            shells: job["quote"]["analysis"]["shells"].as_u64(),
            error: job["error"]["message"].as_str().map(str::to_string),
        })
    }

    /// Polls until every job is final, calling `progress` with the number
    /// done; fails after `patience`.
    pub async fn wait_all(
        &self,
        job_ids: &[String],
        patience: Duration,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<JobTimes>, FarmError> {
        let deadline = Instant::now() + patience;
        let mut done: Vec<Option<JobTimes>> = vec![None; job_ids.len()];
        loop {
            for (slot, job_id) in done.iter_mut().zip(job_ids) {
                if slot.is_none() {
                    let job = self.job(job_id).await?;
                    if job.is_final() {
                        *slot = Some(job);
                    }
                }
            }
            let finished = done.iter().filter(|j| j.is_some()).count();
            progress(finished);
            if finished == job_ids.len() {
                return Ok(done.into_iter().map(|j| j.expect("all final")).collect());
            }
            if Instant::now() > deadline {
                return Err(FarmError::Timeout { count: job_ids.len() - finished, seconds: patience.as_secs() });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The API's base URL, `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.api.base
    }

    /// The seller key the farm was started or connected with.
    pub fn token(&self) -> &str {
        &self.api.token
    }

    /// The last lines of every process's log, for a failed run.
    pub fn logs(&self) -> String {
        self.processes.iter().map(|p| format!("== {}\n{}", p.what, p.tail(30))).collect::<Vec<_>>().join("\n")
    }

    /// Stops every process as SIGTERM does; jobs still running go back to
    /// their queue (and are dropped with the farm's own state).
    pub async fn stop(mut self) {
        let processes = std::mem::take(&mut self.processes);
        let _ = tokio::task::spawn_blocking(move || {
            for mut process in processes.into_iter().rev() {
                process.terminate(Duration::from_secs(10));
            }
        })
        .await;
        // Quorum queues are Raft groups each: left behind, they pile up on
        // the broker run after run.
        if let Some((amqp_url, prefix)) = self.broker_objects.take() {
            testkit::services::delete_broker_objects(&amqp_url, &prefix).await;
        }
    }
}
