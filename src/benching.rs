//! `farm bench` and `farm bench generate`: the slow-model benchmark's
//! settings, its progress bar and its files. The benchmark itself is the
//! `bench` crate's.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use bench::slow_models::{self, SlowModelBench, Tolerance};
use bench::workload::{self, Preset};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{BenchRunArgs, GenerateArgs, StackKind, WorkloadKind};
use crate::output;

/// The most workers per lane a run may ask for: each is a process (or a
/// slot), and past this the machine, not the farm, is measured.
const MAX_WORKERS: usize = 64;

pub(crate) fn slow_models(args: &BenchRunArgs) -> anyhow::Result<()> {
    let preset = if args.quick { Preset::Quick } else { Preset::Full };
    let tolerance = Tolerance { threshold_percent: args.threshold, min_latency_delta_ms: args.min_delta_ms };
    if !(tolerance.threshold_percent.is_finite() && tolerance.threshold_percent >= 0.0) {
        bail!("--threshold must be a percentage of 0 or more, got {}", args.threshold);
    }
    if !(tolerance.min_latency_delta_ms.is_finite() && tolerance.min_latency_delta_ms >= 0.0) {
        bail!("--min-delta-ms must be 0 or more, got {}", args.min_delta_ms);
    }
    let workers = if args.workers.is_empty() { preset.workers() } else { args.workers.clone() };
    if let Some(&bad) = workers.iter().find(|&&w| w == 0 || w > MAX_WORKERS) {
        bail!("--workers must be between 1 and {MAX_WORKERS}, got {bad}");
    }
    let target = match &args.target {
        None => None,
        Some(url) => {
            let host = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                bail!("--target must be an http:// or https:// URL with a host, got `{url}`");
            }
            if workers.len() != 1 {
                bail!("--target measures the farm as deployed: give its workers per lane as one --workers N");
            }
            let key = args.key.clone().filter(|k| !k.trim().is_empty());
            let key = key.ok_or_else(|| anyhow::anyhow!("--target needs --key (a seller key of that farm)"))?;
            Some(slow_models::RunningFarm { url: url.clone(), key })
        }
    };
    let patience = crate::wiring::seconds("--patience-s", args.patience_s)?;
    // A bad baseline fails now, not after an hour of benchmark.
    let baseline = match &args.baseline {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let report = slow_models::read_baseline(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a usable baseline: {e}", path.display()))?;
            Some(report)
        }
    };
    let files = if args.models.is_empty() { Vec::new() } else { workload::files(&args.models)? };
    let jobs = args.jobs.unwrap_or(preset.jobs());
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let (workload_name, models) = match args.workload {
        WorkloadKind::Mix => ("mix", workload::mix(preset, args.seed, jobs, &files)),
        WorkloadKind::Generated => ("generated", workload::generated(preset, args.seed)),
        WorkloadKind::Files if files.is_empty() => bail!("--workload files needs --models DIR"),
        WorkloadKind::Files => ("files", files),
    };
    let scratch = bench::ScratchDir::new().context("cannot create a scratch directory")?;
    let settings = SlowModelBench {
        binary: std::env::current_exe().context("cannot find the farm binary")?,
        preset,
        services: args.stack == StackKind::Services,
        workers,
        workload_name: workload_name.into(),
        seed: args.seed,
        models,
        slow_lane_triangles: preset.slow_lane_triangles(),
        patience,
        scratch: scratch.path().to_path_buf(),
        target,
    };
    let bar = progress_bar();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let report = runtime.block_on(slow_models::run(&settings, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(p.stage);
    }));
    bar.finish_and_clear();
    let report = report?;

    let mut markdown = slow_models::markdown(&report);
    let comparisons = baseline.as_ref().map(|b| slow_models::compare(b, &report, tolerance));
    if let Some(found) = &comparisons {
        markdown.push('\n');
        markdown.push_str(&slow_models::comparison_markdown(found, tolerance));
    }
    write_outputs(&args.out, &report, &markdown)?;
    output::text(&markdown)?;
    let regressions = comparisons.iter().flatten().filter(|c| c.regression).count();
    if regressions > 0 {
        bail!(
            "{regressions} regression(s) against {} beyond {}%",
            args.baseline.as_ref().map_or_else(String::new, |p| p.display().to_string()),
            tolerance.threshold_percent
        );
    }
    Ok(())
}

/// `bench.json`, `bench.md` and `bench.svg` in `out`. A chart that cannot be
/// written costs only the chart, with a warning: the figures are what CI
/// gates on.
fn write_outputs(out: &Path, report: &slow_models::BenchReport, markdown: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = serde_json::to_string_pretty(report).context("cannot encode the report")?;
    std::fs::write(out.join("bench.json"), json).with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::write(out.join("bench.md"), markdown).with_context(|| format!("cannot write {}", out.display()))?;
    if let Err(e) = bench::chart::draw(report, &out.join("bench.svg")) {
        tracing::warn!("no chart: {e}");
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

pub(crate) fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let preset = if args.quick { Preset::Quick } else { Preset::Full };
    let written = workload::write_generated(preset, args.seed, &args.out)?;
    let lines: String = written.iter().map(|p| format!("{}\n", p.display())).collect();
    output::text(&lines)
}
