//! Replays a measured run through the model of a lane: the jobs arrive when
//! they were submitted, in that order, to `servers` slots taking them first
//! come, first served, each holding its slot for a given service time (and
//! a fixed dispatch overhead between jobs). The simulated waits are then
//! set beside the measured ones: this is how `farm plan replay` checks the
//! model against `farm bench`, whose burst of jobs is no steady state that
//! a closed formula could describe.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::stats::Quantiles;

/// One measured job, times in seconds on one clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredJob {
    pub submitted: f64,
    pub started: f64,
    pub finished: f64,
}

impl MeasuredJob {
    pub fn wait(&self) -> f64 {
        (self.started - self.submitted).max(0.0)
    }

    pub fn service(&self) -> f64 {
        (self.finished - self.started).max(0.0)
    }
}

/// The waits of `jobs` (in submission order) on `servers` slots when job
/// `i` takes `services[i]` seconds and each start costs `overhead` seconds.
pub fn waits(jobs: &[MeasuredJob], services: &[f64], servers: u32, overhead: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| jobs[a].submitted.total_cmp(&jobs[b].submitted).then(a.cmp(&b)));
    // Each slot's next free moment, in nanoseconds so the heap can order them.
    let mut free: BinaryHeap<Reverse<u64>> = (0..servers.max(1)).map(|_| Reverse(0)).collect();
    let nanos = |s: f64| (s.max(0.0) * 1e9).round() as u64;
    let mut out = vec![0.0; jobs.len()];
    for i in order {
        let Reverse(slot_free) = free.pop().expect("at least one slot");
        let start = nanos(jobs[i].submitted).max(slot_free) + nanos(overhead);
        out[i] = (start as f64 / 1e9 - jobs[i].submitted).max(0.0);
        free.push(Reverse(start + nanos(services[i])));
    }
    out
}

/// The time a lone slot spends between one job's end and the next one's
/// start while jobs are queued: the median gap, from a run with one slot.
pub fn dispatch_overhead(jobs: &[MeasuredJob]) -> f64 {
    let mut by_start: Vec<&MeasuredJob> = jobs.iter().collect();
    by_start.sort_by(|a, b| a.started.total_cmp(&b.started));
    let mut gaps: Vec<f64> = by_start
        .windows(2)
        // Only back-to-back jobs: the next one was waiting when this ended.
        .filter(|pair| pair[1].submitted <= pair[0].finished)
        .map(|pair| (pair[1].started - pair[0].finished).max(0.0))
        .collect();
    if gaps.is_empty() {
        return 0.0;
    }
    gaps.sort_by(f64::total_cmp);
    super::stats::quantile(&gaps, 0.5)
}

/// Measured against replayed waits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub measured: Quantiles,
    pub replayed: Quantiles,
}

pub fn compare(jobs: &[MeasuredJob], services: &[f64], servers: u32, overhead: f64) -> Comparison {
    let measured: Vec<f64> = jobs.iter().map(MeasuredJob::wait).collect();
    Comparison {
        measured: Quantiles::of(&measured),
        replayed: Quantiles::of(&waits(jobs, services, servers, overhead)),
    }
}

/// One lane's jobs from one measured run, on `servers` slots.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredRun {
    pub servers: u32,
    pub jobs: Vec<MeasuredJob>,
}

/// One run's measured waits beside the model's replay of it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RunCheck {
    pub servers: u32,
    pub jobs: usize,
    /// False for the run the dispatch overhead was fitted on: only the
    /// others are a test of the model.
    pub held_out: bool,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// Replays every run of one lane. The one constant of the replay, the
/// dispatch overhead, is fitted on the run with the fewest slots (where jobs
/// queue back to back) and then used unchanged for the others, so their
/// agreement is a held-out result, not a fit. The overhead, and the runs.
pub fn check_runs(runs: &[MeasuredRun]) -> (f64, Vec<RunCheck>) {
    let Some(fit) = runs.iter().enumerate().filter(|(_, r)| !r.jobs.is_empty()).min_by_key(|(_, r)| r.servers) else {
        return (0.0, Vec::new());
    };
    let (fitted_on, overhead) = (fit.0, dispatch_overhead(&fit.1.jobs));
    let checks = runs
        .iter()
        .enumerate()
        .filter(|(_, run)| !run.jobs.is_empty())
        .map(|(i, run)| {
            let services: Vec<f64> = run.jobs.iter().map(MeasuredJob::service).collect();
            RunCheck {
                servers: run.servers,
                jobs: run.jobs.len(),
                held_out: i != fitted_on,
                comparison: compare(&run.jobs, &services, run.servers, overhead),
            }
        })
        .collect();
    (overhead, checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(submitted: f64, started: f64, finished: f64) -> MeasuredJob {
        MeasuredJob { submitted, started, finished }
    }

    #[test]
    fn a_burst_on_two_slots_waits_in_pairs() {
        // Four 1 s jobs at once on two slots: two start at once, two after 1 s.
        let jobs = [job(0.0, 0.0, 1.0), job(0.0, 0.0, 1.0), job(0.0, 1.0, 2.0), job(0.0, 1.0, 2.0)];
        let services: Vec<f64> = jobs.iter().map(MeasuredJob::service).collect();
        assert_eq!(waits(&jobs, &services, 2, 0.0), vec![0.0, 0.0, 1.0, 1.0]);
        assert_eq!(waits(&jobs, &services, 1, 0.0), vec![0.0, 1.0, 2.0, 3.0]);
        let with_overhead = waits(&jobs, &services, 1, 0.1);
        assert!((with_overhead[3] - 3.4).abs() < 1e-9, "{with_overhead:?}");
        let c = compare(&jobs, &services, 2, 0.0);
        assert_eq!(c.measured, c.replayed);
    }

    #[test]
    fn the_overhead_is_fitted_on_the_fewest_slots_and_judged_on_the_rest() {
        // One slot: three 1 s jobs in a burst, 0.5 s between them. Two
        // slots: the same burst; the replay, with the 0.5 s from the first
        // run, says the third job starts at 1.5 s, and it did.
        let one = MeasuredRun { servers: 1, jobs: vec![job(0.0, 0.0, 1.0), job(0.0, 1.5, 2.5), job(0.0, 3.0, 4.0)] };
        let two = MeasuredRun { servers: 2, jobs: vec![job(0.0, 0.5, 1.5), job(0.0, 0.5, 1.5), job(0.0, 2.0, 3.0)] };
        let (overhead, checks) = check_runs(&[two, one, MeasuredRun { servers: 4, jobs: vec![] }]);
        assert!((overhead - 0.5).abs() < 1e-9, "{overhead}");
        assert_eq!(checks.len(), 2, "a run with no jobs in the lane is left out");
        let (held, fitted) = (&checks[0], &checks[1]);
        assert_eq!((held.servers, held.held_out, fitted.servers, fitted.held_out), (2, true, 1, false));
        assert!((held.comparison.replayed.max - 2.0).abs() < 1e-9, "{held:?}");
        assert!((held.comparison.measured.max - 2.0).abs() < 1e-9);
        assert_eq!(check_runs(&[]), (0.0, Vec::new()));
    }

    #[test]
    fn the_overhead_is_the_gap_between_back_to_back_jobs() {
        let jobs = [job(0.0, 0.0, 1.0), job(0.0, 1.2, 2.0), job(0.0, 2.2, 3.0), job(10.0, 10.0, 11.0)];
        assert!((dispatch_overhead(&jobs) - 0.2).abs() < 1e-9);
        assert_eq!(dispatch_overhead(&jobs[3..]), 0.0);
    }
}
