//! `farm plan`: reads the planner's flags, or a `farm bench` report for
//! measured service times, and prints the plan; with a report, also the
//! model's replay of every run in it beside the waits the run measured. The
//! planner itself is `scheduler::capacity`'s.

use anyhow::{Context, anyhow, bail};
use bench::slow_models::{BenchReport, JobRecord, RunReport};
use scheduler::Lane;
use scheduler::capacity::replay::{self, MeasuredJob, MeasuredRun, RunCheck};
use scheduler::capacity::{self, PlanInput, Shape, Timing, spec};
use serde::Serialize;

use crate::cli::{Format, PlanArgs};
use crate::output;

/// One lane of a benchmark replayed through the model.
#[derive(Debug, Serialize)]
pub(crate) struct BenchCheck {
    pub(crate) lane: Lane,
    /// The dispatch overhead fitted on the run with the fewest workers, s.
    pub(crate) overhead_s: f64,
    pub(crate) runs: Vec<RunCheck>,
}

pub(crate) fn plan(args: &PlanArgs) -> anyhow::Result<()> {
    let input_error = |e: String| anyhow!(e);
    let report = args.bench.as_deref().map(read_report).transpose()?;
    let classes: Vec<spec::Class> = match &report {
        Some(report) => measured_classes(report, args.bench_workers)?,
        None => args.classes.iter().map(|c| spec::class(c)).collect::<Result<_, _>>().map_err(input_error)?,
    };
    let deadlines = spec::per_lane(&args.deadline, [300.0, 3600.0], spec::duration).map_err(input_error)?;
    let targets = spec::per_lane(&args.target_p99, [60.0, 1800.0], spec::duration).map_err(input_error)?;
    let timing = Timing::with_hpa_defaults(
        spec::duration(&args.polling).map_err(input_error)?,
        spec::duration(&args.pod_start).map_err(input_error)?,
    );
    let input = PlanInput {
        lanes: capacity::lanes_of_mix(args.arrivals_per_hour, &classes, deadlines, targets, timing)?,
        slots: args.slots,
        max_workers: args.max_workers,
        max_utilisation: args.max_utilisation,
        days: args.days,
        max_simulated_jobs: args.max_simulated_jobs,
        seed: args.seed,
    };
    let plan = capacity::plan(&input)?;
    let checks = report.as_ref().map(bench_checks).unwrap_or_default();
    match args.format {
        Format::Json => {
            let mut value = serde_json::to_value(&plan)?;
            if report.is_some() {
                value["bench_check"] = serde_json::to_value(&checks)?;
            }
            output::json(&value)
        }
        Format::Table => {
            output::plan(&plan)?;
            if report.is_some() { output::bench_checks(&checks) } else { Ok(()) }
        }
    }
}

fn read_report(path: &std::path::Path) -> anyhow::Result<BenchReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    bench::slow_models::read_baseline(&text)
        .map_err(|e| anyhow!("{} is not a `farm bench` report: {e}", path.display()))
}

/// One class per lane: its jobs' share of the run, and their measured
/// compute times (started to finished) as the service time. The run is the
/// one with `workers` workers, by default the fewest: with more processes
/// on the benchmark's machine the jobs share its cores and run slower than
/// each would in a pod of its own.
fn measured_classes(report: &BenchReport, workers: Option<usize>) -> anyhow::Result<Vec<spec::Class>> {
    let run = match workers {
        Some(w) => report.runs.iter().find(|r| r.workers == w).ok_or_else(|| {
            let have: Vec<String> = report.runs.iter().map(|r| r.workers.to_string()).collect();
            anyhow!("the report has no run with {w} workers (it has {})", have.join(", "))
        })?,
        None => report.runs.iter().min_by_key(|r| r.workers).context("the report has no runs")?,
    };
    let mut classes = Vec::new();
    for lane in Lane::ALL {
        let records: Vec<&JobRecord> = run.records.iter().filter(|r| r.times.lane == lane.as_str()).collect();
        let origin = origin_ms(run);
        let services: Vec<f64> = records.iter().filter_map(|r| measured(r, origin).map(|j| j.service())).collect();
        if records.is_empty() {
            continue;
        }
        if services.is_empty() {
            bail!("no {lane}-lane job of the {}-worker run succeeded: nothing to measure", run.workers);
        }
        classes.push(spec::Class {
            name: format!("bench-{lane}"),
            weight: records.len() as f64,
            lane,
            service: Shape::Empirical(services),
        });
    }
    if classes.is_empty() {
        bail!("the {}-worker run has no jobs", run.workers);
    }
    Ok(classes)
}

/// The run's first submission, ms: times are taken from it, because a
/// Unix time in seconds as an `f64` keeps only about a microsecond.
fn origin_ms(run: &RunReport) -> i64 {
    run.records.iter().map(|r| r.times.created_at_ms).min().unwrap_or(0)
}

/// A succeeded job's times in seconds since `origin_ms`, or `None`.
fn measured(record: &JobRecord, origin_ms: i64) -> Option<MeasuredJob> {
    let t = &record.times;
    if t.status != "succeeded" {
        return None;
    }
    let seconds = |ms: i64| (ms - origin_ms) as f64 / 1000.0;
    Some(MeasuredJob {
        submitted: seconds(t.created_at_ms),
        started: seconds(t.started_at_ms?),
        finished: seconds(t.finished_at_ms?),
    })
}

/// Each lane's runs replayed: the same arrivals and compute times on the
/// run's slots, first come, first served.
fn bench_checks(report: &BenchReport) -> Vec<BenchCheck> {
    Lane::ALL
        .into_iter()
        .filter_map(|lane| {
            let runs: Vec<MeasuredRun> = report.runs.iter().map(|run| lane_run(run, lane)).collect();
            let (overhead_s, runs) = replay::check_runs(&runs);
            (!runs.is_empty()).then_some(BenchCheck { lane, overhead_s, runs })
        })
        .collect()
}

/// One lane of one run. A benchmark "worker" is one slot: a one-slot
/// process on services, a slot of the one process embedded.
fn lane_run(run: &RunReport, lane: Lane) -> MeasuredRun {
    let origin = origin_ms(run);
    let jobs =
        run.records.iter().filter(|r| r.times.lane == lane.as_str()).filter_map(|r| measured(r, origin)).collect();
    MeasuredRun { servers: u32::try_from(run.workers).unwrap_or(u32::MAX), jobs }
}
