//! The slow-model benchmark: a seeded workload through the real farm once
//! per worker count, reported per lane (throughput, latency, queued against
//! computing), with the slowest jobs, the scaling curve and head-of-line
//! blocking, and compared with an earlier run to catch regressions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::farm::{Farm, FarmError, FarmOptions, JobTimes, Stack};
use crate::scenarios::Latency;
use crate::stats::Summary;
use crate::workload::{Model, ModelClass, Preset};

/// The old service's price time, from the planning documents: 2–3 minutes
/// typical (the middle taken), 30 minutes for the worst model.
const OLD_TYPICAL_S: f64 = 150.0;
const OLD_WORST_S: f64 = 1800.0;

/// The version of the report's JSON; a baseline of another version is refused.
pub const REPORT_FORMAT: u32 = 1;

/// What to run.
#[derive(Debug, Clone)]
pub struct SlowModelBench {
    pub binary: PathBuf,
    pub preset: Preset,
    /// Services or embedded; the worker counts come from `workers`.
    pub services: bool,
    /// The scaling curve's points: worker processes per lane (services), or
    /// job slots per lane in the one process (embedded).
    pub workers: Vec<usize>,
    /// The workload's name, for the report (`mix`, `generated`, `files`).
    pub workload_name: String,
    pub seed: u64,
    pub models: Vec<Model>,
    /// The farm's slow-lane threshold for the run.
    pub slow_lane_triangles: u64,
    /// How long one run's jobs may take.
    pub patience: Duration,
    pub scratch: PathBuf,
    /// A running farm to measure instead of starting one: its URL and a
    /// seller key. `workers` then holds one figure, the deployment's
    /// workers per lane, as a label for the report.
    pub target: Option<RunningFarm>,
}

/// A farm the bench does not start: a deployment, for example.
#[derive(Debug, Clone)]
pub struct RunningFarm {
    pub url: String,
    pub key: String,
}

/// Where a run is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Which part of the run, e.g. "2 workers: mix".
    pub stage: String,
    pub done: usize,
    pub total: usize,
}

/// One job, with the facts of its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub model: String,
    pub class: ModelClass,
    pub size_bytes: u64,
    #[serde(flatten)]
    pub times: JobTimes,
}

impl JobRecord {
    fn triangles(&self) -> u64 {
        self.times.triangles.unwrap_or(0)
    }
}

/// One lane in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneReport {
    pub lane: String,
    pub jobs: usize,
    pub failed: usize,
    pub jobs_per_minute: f64,
    pub triangles_per_second: f64,
    /// Accepted to finished, queued, computing; ms.
    pub latency: Latency,
}

/// Did slow jobs hold up the fast lane?
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadOfLine {
    /// The fast lane's jobs alone, submitted together.
    pub fast_alone: Summary,
    /// The same jobs in the mix, slow jobs submitted with them.
    pub fast_in_mix: Summary,
    /// Fast jobs of the mix that ran while a slow job was computing.
    pub fast_jobs_beside_slow: usize,
    /// `fast_in_mix.p99 / fast_alone.p99`: 1 when the slow lane costs the
    /// fast one nothing.
    pub p99_ratio: f64,
}

/// One run: the workload through a farm with `workers` workers per lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub workers: usize,
    /// First submission to last result, s.
    pub makespan_s: f64,
    pub jobs: usize,
    pub failed: usize,
    pub jobs_per_minute: f64,
    pub triangles_per_second: f64,
    pub lanes: Vec<LaneReport>,
    pub head_of_line: HeadOfLine,
    /// The five slowest jobs of the mix, slowest first.
    pub slowest: Vec<JobRecord>,
    /// Every job of the mix.
    pub records: Vec<JobRecord>,
}

/// A whole benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub format: u32,
    pub preset: Preset,
    pub stack: String,
    pub workload: String,
    pub seed: u64,
    pub jobs: usize,
    pub triangles: u64,
    /// Jobs per model class.
    pub classes: BTreeMap<String, usize>,
    pub slow_lane_triangles: u64,
    /// Cores of the machine that ran it.
    pub cores: usize,
    pub started_at_ms: i64,
    pub runs: Vec<RunReport>,
}

/// Runs the benchmark: per worker count, a fresh farm; the fast jobs alone
/// (the head-of-line reference), then the whole mix at once.
pub async fn run(bench: &SlowModelBench, mut progress: impl FnMut(Progress)) -> Result<BenchReport, FarmError> {
    let started_at_ms = now_ms();
    let mut runs = Vec::new();
    for &workers in &bench.workers {
        runs.push(run_once(bench, workers.max(1), started_at_ms, &mut progress).await?);
    }
    let mut classes = BTreeMap::new();
    for m in &bench.models {
        *classes.entry(class_name(m.class)).or_insert(0) += 1;
    }
    Ok(BenchReport {
        format: REPORT_FORMAT,
        preset: bench.preset,
        stack: if let Some(target) = &bench.target {
            format!(
                "a running farm at {} (its own workers, slots and lane threshold; N = its workers per lane, as given)",
                target.url
            )
        } else if bench.services {
            "services (`farm api` + N `farm worker` processes per lane, one slot each, on PostgreSQL, RabbitMQ and S3)"
                .into()
        } else {
            "embedded (`farm serve`: SQLite, in-process queue; N = job slots per lane in the one process)".into()
        },
        workload: bench.workload_name.clone(),
        seed: bench.seed,
        jobs: bench.models.len(),
        triangles: runs.first().map_or(0, |r| r.records.iter().map(JobRecord::triangles).sum()),
        classes,
        slow_lane_triangles: bench.slow_lane_triangles,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        started_at_ms,
        runs,
    })
}

fn stack_of(bench: &SlowModelBench, workers: usize) -> Stack {
    if bench.services { Stack::Services { fast_workers: workers, slow_workers: workers } } else { Stack::Embedded }
}

async fn run_once(
    bench: &SlowModelBench,
    workers: usize,
    started_at_ms: i64,
    progress: &mut impl FnMut(Progress),
) -> Result<RunReport, FarmError> {
    // One slot per worker process on services, so "workers" means
    // processes (pods); embedded, the slots of the one process stand in.
    let slots = if bench.services { 1 } else { workers };
    let options = FarmOptions {
        binary: bench.binary.clone(),
        stack: stack_of(bench, workers),
        env: vec![
            ("FARM_WORKER_SLOTS".into(), slots.to_string()),
            ("FARM_SLOW_LANE_TRIANGLES".into(), bench.slow_lane_triangles.to_string()),
        ],
        data_dir: bench.scratch.join(format!("farm-{workers}")),
        worker_niceness: 0,
    };
    let farm = match &bench.target {
        Some(target) => Farm::connect(&target.url, &target.key),
        None => Farm::start(&options).await?,
    };
    let result = async {
        let label = |part: &str| format!("{workers} worker{}: {part}", if workers == 1 { "" } else { "s" });
        let fast: Vec<&Model> = bench.models.iter().filter(|m| !m.class.is_slow()).collect();
        let alone = submit_and_wait(
            &farm,
            bench,
            &fast,
            &format!("{started_at_ms}-{workers}-alone"),
            &label("fast lane alone"),
            progress,
        )
        .await?;
        let all: Vec<&Model> = bench.models.iter().collect();
        let mix =
            submit_and_wait(&farm, bench, &all, &format!("{started_at_ms}-{workers}-mix"), &label("mix"), progress)
                .await?;
        Ok(summarise(workers, &alone, mix))
    }
    .await;
    if result.is_err() {
        tracing::error!(logs = %farm.logs(), "the benchmark run failed");
    }
    farm.stop().await;
    result
}

/// Uploads the models (tagged, so nothing is cached), submits them all at
/// once, and waits for every result.
async fn submit_and_wait(
    farm: &Farm,
    bench: &SlowModelBench,
    models: &[&Model],
    tag: &str,
    stage: &str,
    progress: &mut impl FnMut(Progress),
) -> Result<Vec<JobRecord>, FarmError> {
    let total = models.len();
    progress(Progress { stage: format!("{stage}: uploading"), done: 0, total });
    let mut uploaded = Vec::with_capacity(total);
    for (index, model) in models.iter().enumerate() {
        let bytes = crate::workload::tagged(&model.bytes, &format!("{tag}-{index}"));
        uploaded.push(farm.upload(bytes).await?);
        progress(Progress { stage: format!("{stage}: uploading"), done: index + 1, total });
    }
    // Upload first, then submit in a burst: the clock measures the queue and
    // the workers, not the network.
    let mut job_ids = Vec::with_capacity(total);
    for model_id in &uploaded {
        job_ids.push(farm.submit(model_id, 1).await?);
    }
    let times = farm
        .wait_all(&job_ids, bench.patience, |done| progress(Progress { stage: stage.to_string(), done, total }))
        .await?;
    Ok(models
        .iter()
        .zip(times)
        .map(|(model, times)| JobRecord {
            model: model.name.clone(),
            class: model.class,
            size_bytes: model.bytes.len() as u64,
            times,
        })
        .collect())
}

/// The report of one run, from its records.
pub fn summarise(workers: usize, alone: &[JobRecord], mix: Vec<JobRecord>) -> RunReport {
    let (makespan_s, jobs_per_minute, triangles_per_second) = throughput(&mix);
    let mut lane_names: Vec<String> = mix.iter().map(|r| r.times.lane.clone()).collect();
    lane_names.sort();
    lane_names.dedup();
    let lanes = lane_names
        .iter()
        .map(|lane| {
            let jobs: Vec<JobRecord> = mix.iter().filter(|r| &r.times.lane == lane).cloned().collect();
            let (_, jobs_per_minute, triangles_per_second) = throughput(&jobs);
            let times: Vec<JobTimes> = jobs.iter().map(|r| r.times.clone()).collect();
            LaneReport {
                lane: lane.clone(),
                jobs: jobs.len(),
                failed: jobs.iter().filter(|r| r.times.status != "succeeded").count(),
                jobs_per_minute,
                triangles_per_second,
                latency: Latency::of(&times),
            }
        })
        .collect();
    let fast_total = |records: &[JobRecord]| {
        Summary::of(
            &records.iter().filter(|r| r.times.lane == "fast").filter_map(|r| r.times.total_ms()).collect::<Vec<_>>(),
        )
    };
    let slow_computing: Vec<(i64, i64)> = mix
        .iter()
        .filter(|r| r.times.lane == "slow")
        .filter_map(|r| Some((r.times.started_at_ms?, r.times.finished_at_ms?)))
        .collect();
    let fast_jobs_beside_slow = mix
        .iter()
        .filter(|r| r.times.lane == "fast")
        .filter_map(|r| Some((r.times.started_at_ms?, r.times.finished_at_ms?)))
        .filter(|&(start, end)| slow_computing.iter().any(|&(s, e)| start < e && s < end))
        .count();
    let (fast_alone, fast_in_mix) = (fast_total(alone), fast_total(&mix));
    let head_of_line = HeadOfLine {
        fast_alone,
        fast_in_mix,
        fast_jobs_beside_slow,
        // 0 when there is no reference (JSON has no NaN).
        p99_ratio: if fast_alone.p99_ms > 0.0 { fast_in_mix.p99_ms / fast_alone.p99_ms } else { 0.0 },
    };
    let mut slowest = mix.clone();
    slowest.sort_by(|a, b| b.times.total_ms().unwrap_or(0.0).total_cmp(&a.times.total_ms().unwrap_or(0.0)));
    slowest.truncate(5);
    RunReport {
        workers,
        makespan_s,
        jobs: mix.len(),
        failed: mix.iter().filter(|r| r.times.status != "succeeded").count(),
        jobs_per_minute,
        triangles_per_second,
        lanes,
        head_of_line,
        slowest,
        records: mix,
    }
}

/// (span s, jobs per minute, triangles per second) from the first
/// submission to the last result of `records`.
fn throughput(records: &[JobRecord]) -> (f64, f64, f64) {
    let first = records.iter().map(|r| r.times.created_at_ms).min();
    let last = records.iter().filter_map(|r| r.times.finished_at_ms).max();
    let (Some(first), Some(last)) = (first, last) else { return (0.0, 0.0, 0.0) };
    let span_s = ((last - first) as f64 / 1000.0).max(0.001);
    let triangles: u64 = records.iter().map(JobRecord::triangles).sum();
    (span_s, records.len() as f64 * 60.0 / span_s, triangles as f64 / span_s)
}

fn class_name(class: ModelClass) -> String {
    serde_json::to_value(class).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub metric: String,
    pub workers: usize,
    pub baseline: f64,
    pub current: f64,
    /// Positive is worse, percent.
    pub worse_by_percent: f64,
    pub regression: bool,
}

/// How much worse a figure may get before it is a regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Percent.
    pub threshold_percent: f64,
    /// A latency must also grow by at least this much, so the jitter of a
    /// job of a few milliseconds is not a regression.
    pub min_latency_delta_ms: f64,
}

/// Compares a run with a baseline: each lane's p50, p95 and p99 latency
/// and each run's throughput, for the worker counts both have.
pub fn compare(baseline: &BenchReport, current: &BenchReport, tolerance: Tolerance) -> Vec<Comparison> {
    let mut out = Vec::new();
    for run in &current.runs {
        let Some(before) = baseline.runs.iter().find(|r| r.workers == run.workers) else { continue };
        for lane in &run.lanes {
            let Some(lane_before) = before.lanes.iter().find(|l| l.lane == lane.lane) else { continue };
            for (name, b, c) in [
                ("p50", lane_before.latency.total.p50_ms, lane.latency.total.p50_ms),
                ("p95", lane_before.latency.total.p95_ms, lane.latency.total.p95_ms),
                ("p99", lane_before.latency.total.p99_ms, lane.latency.total.p99_ms),
            ] {
                let worse = percent(c - b, b);
                out.push(Comparison {
                    metric: format!("{} lane {name} latency, ms", lane.lane),
                    workers: run.workers,
                    baseline: b,
                    current: c,
                    worse_by_percent: worse,
                    regression: worse > tolerance.threshold_percent && c - b >= tolerance.min_latency_delta_ms,
                });
            }
        }
        let worse = percent(before.jobs_per_minute - run.jobs_per_minute, before.jobs_per_minute);
        out.push(Comparison {
            metric: "throughput, jobs/min".into(),
            workers: run.workers,
            baseline: before.jobs_per_minute,
            current: run.jobs_per_minute,
            worse_by_percent: worse,
            regression: worse > tolerance.threshold_percent,
        });
    }
    out
}

fn percent(delta: f64, base: f64) -> f64 {
    if base.abs() < f64::EPSILON { 0.0 } else { 100.0 * delta / base }
}

/// Reads a baseline report; a report of another format is an error.
pub fn read_baseline(text: &str) -> Result<BenchReport, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match value["format"].as_u64() {
        Some(f) if f == u64::from(REPORT_FORMAT) => {}
        other => return Err(format!("report format {other:?}, this farm writes {REPORT_FORMAT}")),
    }
    serde_json::from_value(value).map_err(|e| format!("not a benchmark report: {e}"))
}

/// The report as Markdown.
pub fn markdown(report: &BenchReport) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let classes: Vec<String> = report.classes.iter().map(|(c, n)| format!("{n} {c}")).collect();
    let _ = writeln!(md, "# Slow-model benchmark\n");
    let _ = writeln!(
        md,
        "Preset `{}`, workload `{}` (seed {}): {} jobs ({}), {} triangles; slow lane from {} triangles. \
         Stack: {}. {} cores.\n",
        serde_json::to_value(report.preset).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        report.workload,
        report.seed,
        report.jobs,
        classes.join(", "),
        report.triangles,
        report.slow_lane_triangles,
        report.stack,
        report.cores
    );
    let _ = writeln!(md, "## Per lane\n");
    let _ = writeln!(
        md,
        "| workers | lane | jobs | failed | jobs/min | triangles/s | p50 ms | p95 ms | p99 ms | queued p50 ms | queued p99 ms | computing p50 ms | computing p99 ms |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in &report.runs {
        for l in &run.lanes {
            let t = &l.latency;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                run.workers,
                l.lane,
                l.jobs,
                l.failed,
                l.jobs_per_minute,
                l.triangles_per_second,
                t.total.p50_ms,
                t.total.p95_ms,
                t.total.p99_ms,
                t.queued.p50_ms,
                t.queued.p99_ms,
                t.compute.p50_ms,
                t.compute.p99_ms
            );
        }
    }
    let _ = writeln!(md, "\n## Scaling\n");
    let _ = writeln!(md, "| workers per lane | makespan s | jobs/min | triangles/s | speed-up |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    let base = report.runs.first().map_or(0.0, |r| r.jobs_per_minute);
    for run in &report.runs {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.0} | {:.2}× |",
            run.workers,
            run.makespan_s,
            run.jobs_per_minute,
            run.triangles_per_second,
            if base > 0.0 { run.jobs_per_minute / base } else { f64::NAN }
        );
    }
    let _ = writeln!(md, "\n## Against the old pricing service (2–3 min a price, 30 min the worst)\n");
    let _ = writeln!(md, "| workers | fast lane p50 | old typical | faster by | slowest job | old worst | faster by |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
    for run in &report.runs {
        let typical_s = run.lanes.iter().find(|l| l.lane == "fast").map_or(0.0, |l| l.latency.total.p50_ms / 1000.0);
        let worst_s = run.slowest.first().and_then(|r| r.times.total_ms()).unwrap_or(0.0) / 1000.0;
        let times = |old_s: f64, new_s: f64| if new_s > 0.0 { format!("{:.0}×", old_s / new_s) } else { "–".into() };
        let _ = writeln!(
            md,
            "| {} | {typical_s:.2} s | 2–3 min | {} | {worst_s:.1} s | 30 min | {} |",
            run.workers,
            times(OLD_TYPICAL_S, typical_s),
            times(OLD_WORST_S, worst_s)
        );
    }
    let _ = writeln!(md, "\n## Head-of-line blocking: the fast lane with and without slow jobs\n");
    let _ = writeln!(
        md,
        "| workers | fast alone p50 / p99 ms | fast in the mix p50 / p99 ms | fast jobs run beside a slow one | p99 ratio |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    for run in &report.runs {
        let h = &run.head_of_line;
        let _ = writeln!(
            md,
            "| {} | {:.0} / {:.0} | {:.0} / {:.0} | {} | {:.2} |",
            run.workers,
            h.fast_alone.p50_ms,
            h.fast_alone.p99_ms,
            h.fast_in_mix.p50_ms,
            h.fast_in_mix.p99_ms,
            h.fast_jobs_beside_slow,
            h.p99_ratio
        );
    }
    if let Some(run) = report.runs.first() {
        let _ =
            writeln!(md, "\n## The slowest jobs ({} worker{})\n", run.workers, if run.workers == 1 { "" } else { "s" });
        let _ = writeln!(
            md,
            "| model | class | lane | triangles | layers | shells | MB | status | queued s | computing s | total s |"
        );
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|");
        for r in &run.slowest {
            let s = |v: Option<f64>| v.map_or("–".to_string(), |ms| format!("{:.1}", ms / 1000.0));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |",
                r.model,
                class_name(r.class),
                r.times.lane,
                r.triangles(),
                r.times.layers.map_or("–".into(), |v| v.to_string()),
                r.times.shells.map_or("–".into(), |v| v.to_string()),
                r.size_bytes as f64 / 1e6,
                r.times.status,
                s(r.times.queued_ms()),
                s(r.times.compute_ms()),
                s(r.times.total_ms())
            );
        }
    }
    md
}

/// The comparison as Markdown.
pub fn comparison_markdown(comparisons: &[Comparison], tolerance: Tolerance) -> String {
    use std::fmt::Write;
    let mut md = format!(
        "## Against the baseline (regression: worse by more than {}%, and a latency by at least {} ms)\n\n",
        tolerance.threshold_percent, tolerance.min_latency_delta_ms
    );
    md.push_str("| workers | figure | baseline | now | worse by | |\n|---:|---|---:|---:|---:|---|\n");
    for c in comparisons {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:+.1}% | {} |",
            c.workers,
            c.metric,
            c.baseline,
            c.current,
            c.worse_by_percent,
            if c.regression { "**REGRESSION**" } else { "ok" }
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lane: &str, class: ModelClass, created: i64, started: i64, finished: i64, triangles: u64) -> JobRecord {
        JobRecord {
            model: format!("{lane}-{created}"),
            class,
            size_bytes: 84 + 50 * triangles,
            times: JobTimes {
                job_id: format!("job-{lane}-{created}-{started}"),
                lane: lane.into(),
                status: "succeeded".into(),
                created_at_ms: created,
                started_at_ms: Some(started),
                finished_at_ms: Some(finished),
                triangles: Some(triangles),
                layers: Some(100),
                shells: Some(1),
                error: None,
            },
        }
    }

    fn report(fast_ms: i64, slow_ms: i64) -> BenchReport {
        let mix = vec![
            record("fast", ModelClass::Small, 0, 0, fast_ms, 1000),
            record("fast", ModelClass::Small, 0, fast_ms, 2 * fast_ms, 1000),
            record("slow", ModelClass::Dense, 0, 0, slow_ms, 1_000_000),
        ];
        let alone = vec![
            record("fast", ModelClass::Small, 0, 0, fast_ms, 1000),
            record("fast", ModelClass::Small, 0, fast_ms, 2 * fast_ms, 1000),
        ];
        BenchReport {
            format: REPORT_FORMAT,
            preset: Preset::Quick,
            stack: "test".into(),
            workload: "mix".into(),
            seed: 1,
            jobs: 3,
            triangles: 1_002_000,
            classes: BTreeMap::new(),
            slow_lane_triangles: 20_000,
            cores: 2,
            started_at_ms: 0,
            runs: vec![summarise(1, &alone, mix)],
        }
    }

    #[test]
    fn a_run_is_summarised_per_lane_with_throughput_and_head_of_line() {
        let run = &report(100, 1000).runs[0];
        assert_eq!(run.jobs, 3);
        assert!((run.makespan_s - 1.0).abs() < 1e-9);
        assert!((run.jobs_per_minute - 180.0).abs() < 1e-9);
        assert!((run.triangles_per_second - 1_002_000.0).abs() < 1e-6);
        let fast = run.lanes.iter().find(|l| l.lane == "fast").unwrap();
        assert_eq!(fast.jobs, 2);
        assert!((fast.latency.queued.p50_ms - 50.0).abs() < 1e-9, "{:?}", fast.latency);
        assert!((fast.triangles_per_second - 10_000.0).abs() < 1e-6);
        assert_eq!(run.head_of_line.fast_jobs_beside_slow, 2);
        assert!((run.head_of_line.p99_ratio - 1.0).abs() < 1e-9);
        assert_eq!(run.slowest[0].times.lane, "slow");
    }

    #[test]
    fn the_same_figures_are_no_regression_and_a_slower_run_is() {
        let tolerance = Tolerance { threshold_percent: 25.0, min_latency_delta_ms: 50.0 };
        let baseline = report(100, 1000);
        assert!(compare(&baseline, &baseline, tolerance).iter().all(|c| !c.regression));
        let slowed = report(400, 4000);
        let found = compare(&baseline, &slowed, tolerance);
        assert!(found.iter().any(|c| c.regression && c.metric.starts_with("fast lane p99")), "{found:#?}");
        assert!(found.iter().any(|c| c.regression && c.metric.starts_with("throughput")), "{found:#?}");
        // Jitter of a few ms on a fast job is under the absolute floor.
        let jitter = report(104, 1000);
        assert!(
            compare(&report(100, 1000), &jitter, Tolerance { threshold_percent: 1.0, ..tolerance })
                .iter()
                .filter(|c| c.metric.contains("latency"))
                .all(|c| !c.regression)
        );
    }

    #[test]
    fn a_report_survives_its_json_and_a_foreign_one_is_refused() {
        let original = report(100, 1000);
        let text = serde_json::to_string(&original).unwrap();
        let read = read_baseline(&text).unwrap();
        assert_eq!((read.runs.len(), read.runs[0].workers, read.runs[0].records.len()), (1, 1, 3));
        assert_eq!(read.runs[0].records[2].times.lane, "slow");
        assert!(read_baseline(&text.replace("\"format\":1", "\"format\":99")).is_err());
        assert!(read_baseline("{}").is_err());
        let md = markdown(&original);
        assert!(md.contains("| 1 | fast | 2 | 0 |"), "{md}");
        assert!(md.contains("## Scaling") && md.contains("Head-of-line"), "{md}");
    }
}
