//! Capacity planning for the lanes (`farm plan`): from an arrival rate and
//! service times, how many workers each lane needs, the KEDA settings that
//! scale it, and the waits to expect, checked by simulating the lane.
//!
//! Pure computation: no I/O, no clock, no async runtime (a test below reads
//! this module's own sources to keep it so). The binary reads files and
//! prints; everything here is testable with numbers alone.
//!
//! How a lane is planned:
//! 1. **Model** ([`queueing`]): the lane is an M/G/c queue, `c` = workers ×
//!    slots. The fewest workers whose p99 wait meets the target, at a
//!    utilisation no higher than `max_utilisation`, are the plan.
//! 2. **Check** ([`simulate`]): the same lane with exactly those workers is
//!    simulated for `days` of Poisson arrivals (and at least [`CHECK_JOBS`]
//!    jobs); its p99 wait must agree with
//!    the model's within 10 % (or within 5 % of a mean service time, when both
//!    are close to nothing).
//! 3. **KEDA**: `maxReplicaCount` is the planned workers, `value` the slots
//!    of one worker (a slot for every job queued or running, as the manifests
//!    do), and `minReplicaCount` the fewest warm workers with which the lane,
//!    simulated with KEDA's polling, the HPA's sync and stabilization and the
//!    pod start delay, still meets the target (the fast lane keeps at least
//!    one). `cooldownPeriod` matters only for a lane that scales to zero: long
//!    enough (three mean gaps between its jobs, 5 to 60 minutes) that a busy
//!    lane rarely goes cold between two jobs.

mod mdc;
pub mod queueing;
pub mod replay;
mod rng;
pub mod service;
pub mod simulate;
pub mod spec;
pub mod stats;

use serde::Serialize;

use crate::broker::Lane;
pub use queueing::{Unstable, Wait};
pub use service::{ServiceTime, Shape};
pub use simulate::{Keda, Outcome, Scaling, Scenario};

/// Jobs the model's check simulates at least, whatever `days` says.
pub const CHECK_JOBS: f64 = 300_000.0;

/// What the model takes for granted; `farm plan` prints it with every plan.
pub const ASSUMPTIONS: &[&str] = &[
    "Jobs arrive as a Poisson process at the given rate (the busiest hour you plan for), split between the lanes by the mix.",
    "A lane is an M/G/c queue: c = workers × slots identical servers taking jobs first come, first served (the broker's FIFO queue with prefetch = slots).",
    "Service times are independent draws from the mix (or the benchmark's measured compute times), each cut at the lane's deadline.",
    "A slot prices as fast as it did where the service times were measured: if a pod gives each slot fewer cores than the benchmark machine gave a job, scale the times up (in `--class`).",
    "Service times less variable than exponential (SCV below 1): P(wait) and the quantiles interpolate by the SCV between M/D/c (solved exactly from its embedded chain) and M/M/c (Erlang's C formula) at the same mean; the mean wait interpolates the same ends by Cosmetatos's M/D/c approximation.",
    "Service times at least as variable as exponential: P(wait) is Erlang's C formula; the mean wait is M/M/c's scaled by (1 + SCV)/2 (Lee–Longton); the tail decays at the rate of a single server c times as fast, weighted to that mean (exact for M/M/c).",
    "The two lanes share nothing: separate queues, separate pods (on a cluster, each pod brings its own CPU).",
    "The database, broker and object store are never the bottleneck (the queue path costs milliseconds a job; see BENCHMARKS.md).",
    "KEDA sees jobs queued and running (protocol: http); the HPA syncs every 15 s, adds at most max(current, 4) pods a step, removes one pod per scale-down period after its stabilization window; a removed pod drains its running jobs.",
];

/// The cluster's delays and the HPA's pace for one lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// KEDA's pollingInterval, s.
    pub polling: f64,
    /// From a scaling decision to a consuming pod, s.
    pub pod_start: f64,
    /// The HPA's sync period, s.
    pub hpa_sync: f64,
    /// The HPA's scale-down stabilization window, s.
    pub scale_down_window: f64,
    /// One pod removed per this many seconds.
    pub scale_down_period: f64,
}

impl Timing {
    /// KEDA's polling and a pod's start-up as given, with the HPA's defaults:
    /// a 15 s sync, a 300 s scale-down window, one pod removed a minute.
    pub fn with_hpa_defaults(polling: f64, pod_start: f64) -> Self {
        Self { polling, pod_start, hpa_sync: 15.0, scale_down_window: 300.0, scale_down_period: 60.0 }
    }
}

/// Splits a model mix into the lanes' demands: each lane gets its classes'
/// share of `arrivals_per_hour` and a service time mixed from them, cut at
/// the lane's deadline; a lane no class names gets no jobs. `deadlines` and
/// `targets` are per lane, in seconds, indexed by [`spec::index`].
pub fn lanes_of_mix(
    arrivals_per_hour: f64,
    classes: &[spec::Class],
    deadlines: [f64; 2],
    targets: [f64; 2],
    timing: Timing,
) -> Result<Vec<LaneDemand>, PlanError> {
    let total_weight: f64 = classes.iter().map(|c| c.weight).sum();
    let mut lanes = Vec::new();
    for lane in Lane::ALL {
        let mine: Vec<&spec::Class> = classes.iter().filter(|c| c.lane == lane).collect();
        let weight: f64 = mine.iter().map(|c| c.weight).sum();
        let service = if mine.is_empty() {
            None
        } else {
            let parts = mine.iter().map(|c| (c.weight, c.service.clone())).collect();
            let service = ServiceTime::mixture(parts).map_err(PlanError::Input)?;
            Some(service.with_deadline(deadlines[spec::index(lane)]))
        };
        let share = if total_weight > 0.0 { weight / total_weight } else { 0.0 };
        lanes.push(LaneDemand {
            lane,
            arrivals_per_hour: arrivals_per_hour * share,
            service,
            target_p99_wait: targets[spec::index(lane)],
            workers: None,
            timing,
        });
    }
    Ok(lanes)
}

/// One lane's load and the target it must meet.
#[derive(Debug, Clone)]
pub struct LaneDemand {
    pub lane: Lane,
    /// Jobs per hour into this lane.
    pub arrivals_per_hour: f64,
    /// Cut at the lane's deadline (`ServiceTime::with_deadline`); `None`
    /// only when no job comes to this lane.
    pub service: Option<ServiceTime>,
    /// Seconds.
    pub target_p99_wait: f64,
    /// Evaluate this many workers instead of planning them.
    pub workers: Option<u32>,
    pub timing: Timing,
}

/// Everything a plan needs.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub lanes: Vec<LaneDemand>,
    /// Job slots per worker (FARM_WORKER_SLOTS).
    pub slots: u32,
    /// No lane is planned above this many workers.
    pub max_workers: u32,
    /// Above this the plan adds workers even when the target is met: the
    /// margin for an arrival rate that is a little higher than planned.
    pub max_utilisation: f64,
    /// Length of each simulation, days.
    pub days: f64,
    /// No simulated run goes past this many jobs, whatever `days` and
    /// [`CHECK_JOBS`] ask: the bound on a plan's work at a high arrival rate.
    pub max_simulated_jobs: f64,
    pub seed: u64,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the arrival rate must be a positive number of jobs per hour, got {0}")]
    NoArrivals(f64),
    #[error(
        "the {lane} lane is unstable with {workers} worker(s) of {slots} slot(s): utilisation {utilisation:.2} is not \
         below 1, so its queue grows without bound; it needs at least {needed} worker(s)"
    )]
    Unstable { lane: Lane, workers: u32, slots: u32, utilisation: f64, needed: u32 },
    #[error(
        "the {lane} lane cannot meet a p99 wait of {target_s} s with up to {max_workers} workers (--max-workers): \
         {reason}"
    )]
    Unreachable { lane: Lane, target_s: f64, max_workers: u32, reason: String },
    #[error("{0}")]
    Input(String),
}

/// The service time of a lane, in figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceFigures {
    pub mean_s: f64,
    /// Squared coefficient of variation.
    pub scv: f64,
    pub max_s: f64,
    pub deadline_s: f64,
    /// Jobs that would run past the deadline and fail.
    pub share_over_deadline: f64,
}

/// The M/G/c figures at the planned workers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFigures {
    pub prob_wait: f64,
    pub wait_p50_s: f64,
    pub wait_p99_s: f64,
    pub wait_mean_s: f64,
    pub utilisation: f64,
}

/// The ScaledObject's settings for the lane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KedaPlan {
    pub min_replica_count: u32,
    pub max_replica_count: u32,
    /// Jobs queued or running per replica.
    pub value: u32,
    pub cooldown_period_s: u32,
    pub polling_interval_s: f64,
    pub scale_down_window_s: f64,
}

/// The model's p99 wait against the simulation's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub model_p99_s: f64,
    pub simulated_p99_s: f64,
    /// (simulated − model) / max of the two; 0 when both are 0.
    pub relative_difference: f64,
    pub agrees: bool,
}

/// One lane's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LanePlan {
    pub lane: Lane,
    pub arrivals_per_hour: f64,
    pub target_p99_wait_s: f64,
    /// None when no job comes to the lane.
    pub service: Option<ServiceFigures>,
    pub workers: u32,
    pub slots: u32,
    pub model: Option<ModelFigures>,
    pub keda: KedaPlan,
    /// The simulation with `workers` fixed: the model's check.
    pub simulated_fixed: Option<Outcome>,
    /// The simulation with KEDA scaling between min and max.
    pub simulated_keda: Option<Outcome>,
    pub agreement: Option<Agreement>,
    pub notes: Vec<String>,
}

/// A plan for every lane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub lanes: Vec<LanePlan>,
    pub days: f64,
    pub seed: u64,
    pub assumptions: Vec<String>,
}

/// Plans every lane.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    let total: f64 = input.lanes.iter().map(|l| l.arrivals_per_hour).sum();
    if !(total.is_finite() && total > 0.0)
        || input.lanes.iter().any(|l| l.arrivals_per_hour.is_nan() || l.arrivals_per_hour < 0.0)
    {
        return Err(PlanError::NoArrivals(total));
    }
    if input.slots == 0 || input.max_workers == 0 {
        return Err(PlanError::Input("--slots and --max-workers must be at least 1".into()));
    }
    if !(input.days.is_finite() && input.days > 0.0 && input.days <= 365.0) {
        return Err(PlanError::Input(format!("--days must be above 0 and at most 365, got {}", input.days)));
    }
    if !(input.max_simulated_jobs.is_finite() && input.max_simulated_jobs >= 1000.0) {
        return Err(PlanError::Input(format!(
            "--max-simulated-jobs must be at least 1000, got {}",
            input.max_simulated_jobs
        )));
    }
    if !(input.max_utilisation > 0.0 && input.max_utilisation < 1.0) {
        return Err(PlanError::Input(format!(
            "--max-utilisation must be between 0 and 1, got {}",
            input.max_utilisation
        )));
    }
    let lanes = input.lanes.iter().map(|demand| plan_lane(demand, input)).collect::<Result<_, _>>()?;
    Ok(Plan {
        lanes,
        days: input.days,
        seed: input.seed,
        assumptions: ASSUMPTIONS.iter().map(|a| (*a).to_string()).collect(),
    })
}

fn check_timing(lane: Lane, t: &Timing) -> Result<(), PlanError> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let not_negative = |v: f64| v.is_finite() && v >= 0.0;
    let valid = positive(t.polling)
        && positive(t.hpa_sync)
        && positive(t.scale_down_period)
        && not_negative(t.pod_start)
        && not_negative(t.scale_down_window);
    if !valid {
        return Err(PlanError::Input(format!("the {lane} lane's scaling times must be positive numbers: {t:?}")));
    }
    Ok(())
}

fn plan_lane(demand: &LaneDemand, input: &PlanInput) -> Result<LanePlan, PlanError> {
    let lane = demand.lane;
    check_timing(lane, &demand.timing)?;
    if !(demand.target_p99_wait.is_finite() && demand.target_p99_wait >= 0.0) {
        return Err(PlanError::Input(format!("the {lane} lane's target p99 wait must be 0 or more seconds")));
    }
    let floor = if lane == Lane::Fast { 1 } else { 0 };
    let keda_at = |min: u32, max: u32, cooldown: u32| KedaPlan {
        min_replica_count: min,
        max_replica_count: max,
        value: input.slots,
        cooldown_period_s: cooldown,
        polling_interval_s: demand.timing.polling,
        scale_down_window_s: demand.timing.scale_down_window,
    };
    let (Some(service), true) = (&demand.service, demand.arrivals_per_hour > 0.0) else {
        let workers = demand.workers.unwrap_or(floor).max(floor);
        return Ok(LanePlan {
            lane,
            arrivals_per_hour: 0.0,
            target_p99_wait_s: demand.target_p99_wait,
            service: None,
            workers,
            slots: input.slots,
            model: None,
            keda: keda_at(floor, workers.max(1), 300),
            simulated_fixed: None,
            simulated_keda: None,
            agreement: None,
            notes: vec![format!("no jobs come to the {lane} lane")],
        });
    };
    let lambda = demand.arrivals_per_hour / 3600.0;
    let mean = service.mean();
    let servers = |workers: u32| workers.saturating_mul(input.slots);
    let needed = ((lambda * mean / f64::from(input.slots)).floor() as u32).saturating_add(1);
    let (workers, model) = match demand.workers {
        Some(workers) => {
            let workers = workers.max(1);
            let model = queueing::wait(lambda, servers(workers), service).map_err(|u| PlanError::Unstable {
                lane,
                workers,
                slots: input.slots,
                utilisation: u.utilisation,
                needed,
            })?;
            (workers, model)
        }
        None => size(lane, lambda, service, demand.target_p99_wait, input)?,
    };
    let model_p99 = model.quantile(0.99);
    let scenario = |scaling: Scaling, seed_offset: u64, horizon: f64| Scenario {
        arrivals: lambda,
        service: service.clone(),
        slots: input.slots,
        scaling,
        horizon,
        // Long enough for the lane to fill up from empty, never half the run.
        warmup: (50.0 * mean).max(0.05 * horizon).min(0.5 * horizon),
        seed: input.seed.wrapping_add(seed_offset),
    };
    // Every run stops at `max_simulated_jobs`: a day at a million jobs an
    // hour would otherwise be 24 million simulated jobs a run.
    let longest = input.max_simulated_jobs / lambda;
    let horizon = (input.days * 86_400.0).min(longest);
    // The check of the model runs for `days` or CHECK_JOBS jobs, whichever
    // is longer: a day of a slow lane is a thousand jobs, and a p99 of a
    // thousand correlated waits is noise (two days of the README's slow lane
    // gave 347 s where 300,000 jobs give 530 s).
    let check_horizon = horizon.max(CHECK_JOBS / lambda).min(longest);
    let fixed = simulate::run(&scenario(Scaling::Fixed { replicas: workers }, 0, check_horizon));
    let agreement = agreement(model_p99, fixed.wait.p99, mean);

    // The cooldown only matters when the lane may go to zero.
    let cooldown = ((3.0 / lambda / 60.0).ceil() * 60.0).clamp(300.0, 3600.0) as u32;
    let keda = |min: u32| Keda {
        min,
        max: workers,
        value: f64::from(input.slots),
        polling: demand.timing.polling,
        cooldown: f64::from(cooldown),
        pod_start: demand.timing.pod_start,
        hpa_sync: demand.timing.hpa_sync,
        scale_down_window: demand.timing.scale_down_window,
        scale_down_period: demand.timing.scale_down_period,
    };
    // The fewest warm workers that still meet the target: the p99 wait
    // falls as min rises, so bisect (each step one simulated run).
    let meets = |outcome: &Outcome| outcome.wait.p99 <= demand.target_p99_wait;
    let (mut lo, mut hi) = (floor.min(workers), workers);
    let mut best = simulate::run(&scenario(Scaling::Keda(keda(hi)), 1, horizon));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let outcome = simulate::run(&scenario(Scaling::Keda(keda(mid)), 1, horizon));
        if meets(&outcome) {
            hi = mid;
            best = outcome;
        } else {
            lo = mid + 1;
        }
    }
    let min = hi;
    let mut notes = Vec::new();
    if horizon < input.days * 86_400.0 {
        notes.push(format!(
            "each simulated run stops after {:.0} jobs ({:.1} s of arrivals, --max-simulated-jobs), short of --days",
            input.max_simulated_jobs, horizon
        ));
    }
    if service.share_over_deadline() > 0.0 {
        notes.push(format!(
            "{:.1}% of the {lane} lane's jobs run past its {} s deadline and fail there",
            100.0 * service.share_over_deadline(),
            service.deadline()
        ));
    }
    if !meets(&best) {
        notes.push(format!(
            "even at {min} warm workers the simulated p99 wait ({:.1} s) misses the target: the model's \
             assumptions do not hold here; read the simulation",
            best.wait.p99
        ));
    }
    if !agreement.agrees {
        notes.push(format!(
            "the model and the simulation differ by {:.0}% on the p99 wait (the simulated p99's standard error is \
             {:.2} s): a longer simulation (--days) tells whether it is the run's noise",
            100.0 * agreement.relative_difference,
            fixed.wait_p99_standard_error
        ));
    }
    if min == 0 {
        notes.push(format!(
            "scales to zero: a job that finds the lane cold waits for KEDA's poll ({} s) and a pod start ({} s)",
            demand.timing.polling, demand.timing.pod_start
        ));
    }
    Ok(LanePlan {
        lane,
        arrivals_per_hour: demand.arrivals_per_hour,
        target_p99_wait_s: demand.target_p99_wait,
        service: Some(ServiceFigures {
            mean_s: mean,
            scv: service.scv(),
            max_s: service.max(),
            deadline_s: service.deadline(),
            share_over_deadline: service.share_over_deadline(),
        }),
        workers,
        slots: input.slots,
        model: Some(ModelFigures {
            prob_wait: model.prob_wait,
            wait_p50_s: model.quantile(0.5),
            wait_p99_s: model_p99,
            wait_mean_s: model.mean(),
            utilisation: model.utilisation,
        }),
        keda: keda_at(min, workers, if min == 0 { cooldown } else { 300 }),
        simulated_fixed: Some(fixed),
        simulated_keda: Some(best),
        agreement: Some(agreement),
        notes,
    })
}

/// The fewest workers whose M/G/c p99 wait meets `target` at a utilisation
/// of at most `max_utilisation`, and their wait.
fn size(
    lane: Lane,
    lambda: f64,
    service: &ServiceTime,
    target: f64,
    input: &PlanInput,
) -> Result<(u32, Wait), PlanError> {
    let mut last = String::from("the lane is unstable at every size");
    for workers in 1..=input.max_workers {
        let servers = workers.saturating_mul(input.slots);
        // Utilisation first: it is one division, while the wait may solve an
        // M/D/c chain, which sizes too small to count need not pay for.
        let utilisation = queueing::utilisation(lambda, servers, service);
        if utilisation >= 1.0 {
            continue;
        }
        if utilisation > input.max_utilisation {
            last = format!("utilisation {utilisation:.2} is above --max-utilisation");
            continue;
        }
        let Ok(wait) = queueing::wait(lambda, servers, service) else { continue };
        let p99 = wait.quantile(0.99);
        if p99 <= target {
            return Ok((workers, wait));
        }
        last = format!("the p99 wait is still {p99:.1} s");
    }
    Err(PlanError::Unreachable { lane, target_s: target, max_workers: input.max_workers, reason: last })
}

/// The model agrees with the simulation when their p99 waits differ by at
/// most 10 % of the larger, or by at most 5 % of a mean service time (both
/// waits are then close to nothing).
pub fn agreement(model_p99: f64, simulated_p99: f64, mean_service: f64) -> Agreement {
    let larger = model_p99.max(simulated_p99);
    let difference = simulated_p99 - model_p99;
    let relative = if larger > 0.0 { difference / larger } else { 0.0 };
    Agreement {
        model_p99_s: model_p99,
        simulated_p99_s: simulated_p99,
        relative_difference: relative,
        agrees: relative.abs() <= 0.10 || difference.abs() <= 0.05 * mean_service,
    }
}

#[cfg(test)]
mod tests;
