//! Measured scenarios: lane isolation (is a fast job held up by slow ones?)
//! and the per-job overhead of the queue path.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::farm::{Farm, FarmError, FarmOptions, JobTimes, Stack};
use crate::stats::Summary;

/// Latency of one group of jobs, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Latency {
    /// Accepted to finished.
    pub total: Summary,
    /// Accepted to started: time waiting in the queue.
    pub queued: Summary,
    /// Started to finished.
    pub compute: Summary,
}

impl Latency {
    pub fn of(jobs: &[JobTimes]) -> Self {
        let pick = |f: fn(&JobTimes) -> Option<f64>| Summary::of(&jobs.iter().filter_map(f).collect::<Vec<_>>());
        Self { total: pick(JobTimes::total_ms), queued: pick(JobTimes::queued_ms), compute: pick(JobTimes::compute_ms) }
    }
}

/// How the fast lane fared in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    /// Slow jobs queued ahead of the fast ones (all running or waiting
    /// while the fast jobs ran).
    pub slow_jobs: usize,
    pub fast_jobs: usize,
    pub fast: Latency,
    /// Fast jobs that did not succeed.
    pub fast_failures: usize,
}

/// Settings of the lane-isolation benchmark.
#[derive(Debug, Clone)]
pub struct LaneIsolation {
    pub binary: PathBuf,
    pub stack: Stack,
    pub fast_jobs: usize,
    /// Fast jobs submitted per second.
    pub fast_rate: f64,
    pub slow_jobs: usize,
    /// How long each slow job takes: a real large model plus this much
    /// injected work, standing in for the half-hour slices of the worst
    /// models without burning the CPU the fast jobs need.
    pub slow_job_extra: Duration,
    /// Slots per worker.
    pub slots: usize,
    pub scratch: PathBuf,
}

/// The fast lane's latency with the slow lane idle, with it saturated, and
/// with one lane for everything (what lanes prevent).
pub async fn lane_isolation(settings: &LaneIsolation) -> Result<Vec<Phase>, FarmError> {
    let phases = [
        ("slow lane idle", 0, "100000"),
        ("slow lane saturated", settings.slow_jobs, "100000"),
        ("one lane for all jobs (no lanes)", settings.slow_jobs, "18446744073709551615"),
    ];
    let mut report = Vec::new();
    for (index, (name, slow_jobs, threshold)) in phases.into_iter().enumerate() {
        // Models of their own, so no quote from an earlier run (a database
        // the services stack keeps) answers a job from the cache.
        let fast_model = mesh::write_binary_stl(&mesh::uv_sphere(10.0 + salt(), 60, 30));
        let slow_model = mesh::write_binary_stl(&mesh::uv_sphere(20.0 + salt(), 700, 350));
        let slow_id = model_hash(&slow_model);
        let options = FarmOptions {
            binary: settings.binary.clone(),
            stack: settings.stack,
            env: vec![
                ("FARM_WORKER_SLOTS".into(), settings.slots.to_string()),
                ("FARM_SLOW_LANE_TRIANGLES".into(), threshold.into()),
                ("FARM_FAULT_SLOW_JOB_MS".into(), settings.slow_job_extra.as_millis().to_string()),
                ("FARM_FAULT_SLOW_MODEL".into(), slow_id.clone()),
                ("FARM_SHUTDOWN_GRACE_S".into(), "1".into()),
            ],
            data_dir: settings.scratch.join(format!("lanes-{index}")),
            worker_niceness: 0,
        };
        let farm = Farm::start(&options).await?;
        let run = async {
            let fast_id = farm.upload(fast_model.clone()).await?;
            let slow = farm.upload(slow_model.clone()).await?;
            let mut slow_ids = Vec::new();
            for n in 0..slow_jobs {
                slow_ids.push(farm.submit(&slow, n as u32 + 1).await?);
            }
            // Let the slow jobs take every slow slot before the fast ones come.
            if slow_jobs > 0 {
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(60) {
                    let first = farm.job(&slow_ids[0]).await?;
                    if first.status != "queued" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let mut fast_ids = Vec::new();
            let pause = Duration::from_secs_f64(1.0 / settings.fast_rate.max(0.01));
            for n in 0..settings.fast_jobs {
                fast_ids.push(farm.submit(&fast_id, n as u32 + 1).await?);
                tokio::time::sleep(pause).await;
            }
            let patience = Duration::from_secs(600);
            let fast = farm.wait_all(&fast_ids, patience, |_| {}).await?;
            Ok::<_, FarmError>(Phase {
                name: name.to_string(),
                slow_jobs,
                fast_jobs: fast.len(),
                fast: Latency::of(&fast),
                fast_failures: fast.iter().filter(|j| j.status != "succeeded").count(),
            })
        };
        let phase = run.await;
        if phase.is_err() {
            tracing::error!(logs = %farm.logs(), "the lane-isolation run failed");
        }
        farm.stop().await;
        report.push(phase?);
    }
    Ok(report)
}

/// The queue path's cost per job, against pricing the same file locally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    pub jobs: usize,
    pub triangles: u64,
    /// Submit to seeing the result, as a client polling every 2 ms does.
    pub client_ms: Summary,
    /// Accepted to finished, by the farm's own clock.
    pub farm_ms: Summary,
    /// The worker's time on the job (fetch, analyse, price, report).
    pub compute_ms: Summary,
    /// `farm quote FILE` as a whole process.
    pub cli_ms: Summary,
}

/// Prices a near-empty model `jobs` times through the farm, one after
/// another, and `farm quote` on the same file as many times.
pub async fn overhead(binary: PathBuf, stack: Stack, jobs: usize, scratch: PathBuf) -> Result<Overhead, FarmError> {
    let side = 1.0 + salt();
    let model = mesh::write_binary_stl(&mesh::cuboid([side, side, side]));
    let options = FarmOptions {
        binary: binary.clone(),
        stack,
        env: vec![("FARM_SHUTDOWN_GRACE_S".into(), "1".into())],
        data_dir: scratch.join("overhead"),
        worker_niceness: 0,
    };
    let farm = Farm::start(&options).await?;
    let run = async {
        let id = farm.upload(model.clone()).await?;
        let mut client = Vec::new();
        let mut done = Vec::new();
        for n in 0..jobs {
            let started = Instant::now();
            // A different quantity each time: no quote-cache hit.
            let job_id = farm.submit(&id, n as u32 + 1).await?;
            loop {
                let job = farm.job(&job_id).await?;
                if job.is_final() {
                    client.push(started.elapsed().as_secs_f64() * 1000.0);
                    done.push(job);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        Ok::<_, FarmError>((client, done))
    };
    let measured = run.await;
    farm.stop().await;
    let (client, done) = measured?;
    let file = scratch.join("near-empty.stl");
    std::fs::write(&file, &model)
        .map_err(|e| FarmError::Start { what: "scratch file".into(), message: e.to_string() })?;
    let mut cli = Vec::new();
    for _ in 0..jobs {
        let started = Instant::now();
        let out = std::process::Command::new(&binary)
            .args(["quote", &file.to_string_lossy(), "--format", "json"])
            .output()
            .map_err(|e| FarmError::Start { what: "farm quote".into(), message: e.to_string() })?;
        if !out.status.success() {
            return Err(FarmError::Start {
                what: "farm quote".into(),
                message: String::from_utf8_lossy(&out.stderr).into(),
            });
        }
        cli.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let pick = |f: fn(&JobTimes) -> Option<f64>| Summary::of(&done.iter().filter_map(f).collect::<Vec<_>>());
    Ok(Overhead {
        jobs,
        triangles: 12,
        client_ms: Summary::of(&client),
        farm_ms: pick(JobTimes::total_ms),
        compute_ms: pick(JobTimes::compute_ms),
        cli_ms: Summary::of(&cli),
    })
}

/// A few micrometres that make each run's models new to the farm.
fn salt() -> f32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos % 997) as f32 * 1e-5
}

/// The id the farm gives a model: the SHA-256 of its bytes, in hex.
fn model_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Markdown tables of the two scenarios.
pub fn lanes_markdown(stack: &Stack, phases: &[Phase]) -> String {
    let mut out = format!(
        "Stack: {}\n\n| phase | slow jobs ahead | fast jobs | fast p50 ms | fast p99 ms | queued p50 ms | queued p99 ms | \
         compute p50 ms | failures |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        stack.describe()
    );
    for p in phases {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |\n",
            p.name,
            p.slow_jobs,
            p.fast_jobs,
            p.fast.total.p50_ms,
            p.fast.total.p99_ms,
            p.fast.queued.p50_ms,
            p.fast.queued.p99_ms,
            p.fast.compute.p50_ms,
            p.fast_failures
        ));
    }
    out
}

pub fn overhead_markdown(stack: &Stack, o: &Overhead) -> String {
    let row = |name: &str, s: &Summary| format!("| {name} | {:.1} | {:.1} | {:.1} |\n", s.p50_ms, s.p95_ms, s.max_ms);
    format!(
        "Stack: {}; {} jobs of a {}-triangle cube, one after another.\n\n| path | p50 ms | p95 ms | max ms |\n\
         |---|--:|--:|--:|\n{}{}{}{}",
        stack.describe(),
        o.jobs,
        o.triangles,
        row("through the farm, as a client sees it (submit, poll every 2 ms)", &o.client_ms),
        row("through the farm, accepted to finished (the farm's clock)", &o.farm_ms),
        row("of which the worker's own time (fetch, analyse, price, report)", &o.compute_ms),
        row("`farm quote FILE`, the whole process", &o.cli_ms),
    )
}
