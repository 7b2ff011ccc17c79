//! The planner on cases with known answers (M/M/1, M/M/c), the model
//! against the simulation on the cases a shop meets, and its refusals.

use super::*;

fn timing() -> Timing {
    Timing { polling: 15.0, pod_start: 30.0, hpa_sync: 15.0, scale_down_window: 300.0, scale_down_period: 60.0 }
}

fn demand(lane: Lane, per_hour: f64, service: ServiceTime, target: f64) -> LaneDemand {
    LaneDemand {
        lane,
        arrivals_per_hour: per_hour,
        service: Some(service),
        target_p99_wait: target,
        workers: None,
        timing: timing(),
    }
}

fn input(lanes: Vec<LaneDemand>, slots: u32, days: f64) -> PlanInput {
    PlanInput { lanes, slots, max_workers: 500, max_utilisation: 0.9, days, max_simulated_jobs: 2e6, seed: 5 }
}

fn exponential(mean: f64) -> ServiceTime {
    ServiceTime::single(Shape::Exponential(mean)).unwrap()
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * b.abs()
}

#[test]
fn an_m_m_1_lane_is_planned_from_its_closed_form_and_the_simulation_agrees() {
    // λ = 0.8/s, μ = 1/s on one slot: P(W>0) = 0.8, p99 = ln(80) / 0.2 = 21.9 s.
    let plan = plan(&input(vec![demand(Lane::Fast, 0.8 * 3600.0, exponential(1.0), 25.0)], 1, 20.0)).unwrap();
    let lane = &plan.lanes[0];
    let model = lane.model.as_ref().unwrap();
    assert_eq!(lane.workers, 1, "{lane:#?}");
    assert!(close(model.prob_wait, 0.8, 1e-9) && close(model.utilisation, 0.8, 1e-9));
    assert!(close(model.wait_p99_s, 80f64.ln() / 0.2, 1e-9), "{model:?}");
    assert!(close(model.wait_p50_s, (0.8f64 / 0.5).ln() / 0.2, 1e-9));
    assert!(close(model.wait_mean_s, 4.0, 1e-9), "ρ / (μ − λ)");
    let agreement = lane.agreement.as_ref().unwrap();
    assert!(agreement.agrees && agreement.relative_difference.abs() <= 0.10, "{agreement:?}");
    let fixed = lane.simulated_fixed.as_ref().unwrap();
    assert!(close(fixed.wait.mean, 4.0, 0.10) && close(fixed.utilisation, 0.8, 0.02), "{fixed:?}");
    // A tighter target needs a second worker; at two, ρ = 0.4.
    let tighter = super::plan(&input(vec![demand(Lane::Fast, 0.8 * 3600.0, exponential(1.0), 20.0)], 1, 2.0)).unwrap();
    assert_eq!(tighter.lanes[0].workers, 2);
    assert!(close(tighter.lanes[0].model.as_ref().unwrap().utilisation, 0.4, 1e-9));
}

#[test]
fn an_m_m_c_lane_matches_erlang_c_and_the_simulation_agrees() {
    // λ = 2/s, μ = 1/s, one worker of three slots: C(3, 2) = 4/9, θ = 1.
    let plan = plan(&input(vec![demand(Lane::Fast, 7200.0, exponential(1.0), 5.0)], 3, 20.0)).unwrap();
    let lane = &plan.lanes[0];
    assert_eq!((lane.workers, lane.slots), (1, 3));
    let model = lane.model.as_ref().unwrap();
    assert!(close(model.prob_wait, 4.0 / 9.0, 1e-9), "{model:?}");
    assert!(close(model.wait_p99_s, (400.0f64 / 9.0).ln(), 1e-9), "{model:?}");
    assert!(close(model.wait_mean_s, 4.0 / 9.0, 1e-9));
    let agreement = lane.agreement.as_ref().unwrap();
    assert!(agreement.agrees && agreement.relative_difference.abs() <= 0.10, "{agreement:?}");
    let fixed = lane.simulated_fixed.as_ref().unwrap();
    assert!(close(fixed.wait.mean, 4.0 / 9.0, 0.10), "{fixed:?}");
}

/// The model's p99 wait against a long simulation of the same lane, for
/// service times that are not exponential: fixed, the seeds' 2–3 minutes,
/// the seeds' worst models (3–30 minutes), and measured compute times with
/// a long tail, at low and high loads and few and many servers.
#[test]
fn the_model_and_the_simulation_agree_within_ten_percent_on_the_p99_wait() {
    let bench_fast = [0.007, 0.012, 0.009, 0.035, 0.015, 0.010, 0.021, 0.008, 0.030, 0.014, 0.019, 0.011];
    let bench_slow = [0.69, 2.24, 0.21, 0.60, 0.95, 1.98, 0.23, 0.64, 0.88, 2.10, 0.25, 0.61];
    let cases: Vec<(&str, ServiceTime, f64, u32)> = vec![
        ("fixed 1 s, ρ 0.8, 1 server", ServiceTime::single(Shape::Fixed(1.0)).unwrap(), 0.8, 1),
        ("fixed 1 s, ρ 0.85, 8 servers", ServiceTime::single(Shape::Fixed(1.0)).unwrap(), 6.8, 8),
        ("2–3 min, ρ 0.75, 4 servers", ServiceTime::single(Shape::Uniform(120.0, 180.0)).unwrap(), 0.02, 4),
        ("2–3 min, ρ 0.9, 20 servers", ServiceTime::single(Shape::Uniform(120.0, 180.0)).unwrap(), 0.12, 20),
        ("3–30 min, ρ 0.8, 10 servers", ServiceTime::single(Shape::Uniform(180.0, 1800.0)).unwrap(), 0.008_080, 10),
        ("bench fast, ρ 0.7, 2 servers", ServiceTime::single(Shape::Empirical(bench_fast.to_vec())).unwrap(), 87.0, 2),
        ("bench slow, ρ 0.8, 4 servers", ServiceTime::single(Shape::Empirical(bench_slow.to_vec())).unwrap(), 3.2, 4),
        // The README's plan: many servers, low variability.
        ("2–3 min, ρ 0.77, 20 servers", ServiceTime::single(Shape::Uniform(120.0, 180.0)).unwrap(), 368.0 / 3600.0, 20),
        ("3–30 min, ρ 0.8, 18 servers", ServiceTime::single(Shape::Uniform(180.0, 1800.0)).unwrap(), 52.0 / 3600.0, 18),
        // Few jobs wait at all: the p99 is a small part of one service time.
        (
            "3–30 min, ρ 0.6, 18 servers",
            ServiceTime::single(Shape::Uniform(180.0, 1800.0)).unwrap(),
            0.6 * 18.0 / 990.0,
            18,
        ),
    ];
    let mut report = Vec::new();
    let mut failed = false;
    for (name, service, lambda, servers) in cases {
        let model = queueing::wait(lambda, servers, &service).unwrap();
        // Long enough for a p99 within a few percent: ~300,000 jobs.
        let horizon = 300_000.0 / lambda;
        let out = simulate::run(&Scenario {
            arrivals: lambda,
            service: service.clone(),
            slots: servers,
            scaling: Scaling::Fixed { replicas: 1 },
            horizon,
            warmup: 0.02 * horizon,
            seed: 17,
        });
        let a = agreement(model.quantile(0.99), out.wait.p99, service.mean());
        report.push(format!(
            "{name}: model p99 {:.3} s, simulated {:.3} s ± {:.3}, {:+.1}%, utilisation {:.2}/{:.2}",
            a.model_p99_s,
            a.simulated_p99_s,
            out.wait_p99_standard_error,
            100.0 * a.relative_difference,
            model.utilisation,
            out.utilisation
        ));
        // Within 10 %; where the p99 wait is short beside a service time,
        // within 5 % of one (the planner's own rule, `agreement`). Every case
        // runs before the verdict, so a failure reports them all.
        let short = a.simulated_p99_s < 0.2 * service.mean();
        failed |= !(a.relative_difference.abs() <= 0.10 || (short && a.agrees));
    }
    assert!(!failed, "{}", report.join("\n"));
}

#[test]
fn keda_settings_follow_from_the_lane() {
    // Slow lane: 20 jobs an hour of 3–30 minutes, a target of 10 minutes:
    // a pod start (1 minute) fits in the target, so it may scale to zero.
    let mut slow = demand(
        Lane::Slow,
        20.0,
        ServiceTime::single(Shape::Uniform(180.0, 1800.0)).unwrap().with_deadline(2700.0),
        600.0,
    );
    slow.timing =
        Timing { polling: 30.0, pod_start: 60.0, scale_down_window: 600.0, scale_down_period: 120.0, ..timing() };
    // Fast lane: 600 jobs an hour of 2–3 minutes and a 20 s target, shorter
    // than a poll and a pod start: every worker it needs must be warm.
    let fast = demand(Lane::Fast, 600.0, ServiceTime::single(Shape::Uniform(120.0, 180.0)).unwrap(), 20.0);
    let plan = plan(&input(vec![fast, slow], 2, 1.0)).unwrap();
    let (fast, slow) = (&plan.lanes[0], &plan.lanes[1]);
    assert_eq!(fast.keda.value, 2);
    assert_eq!(fast.keda.max_replica_count, fast.workers);
    assert!(fast.keda.min_replica_count >= fast.workers - 1, "{fast:#?}");
    assert!(fast.simulated_keda.as_ref().unwrap().wait.p99 <= 20.0, "{fast:#?}");
    assert_eq!(slow.keda.min_replica_count, 0, "{slow:#?}");
    // One job every 3 minutes: cooldown three gaps, at least 5 minutes.
    assert_eq!(slow.keda.cooldown_period_s, 540, "{slow:#?}");
    assert!(slow.simulated_keda.as_ref().unwrap().mean_replicas < f64::from(slow.workers), "{slow:#?}");
    assert!(slow.notes.iter().any(|n| n.contains("scales to zero")), "{slow:#?}");
    // Utilisation stays under --max-utilisation.
    assert!(fast.model.as_ref().unwrap().utilisation <= 0.9);
}

#[test]
fn deadlines_cut_service_times_and_are_reported() {
    // A quarter of the jobs would run 10 minutes; the deadline stops them at 5.
    let service =
        ServiceTime::mixture(vec![(3.0, Shape::Fixed(60.0)), (1.0, Shape::Fixed(600.0))]).unwrap().with_deadline(300.0);
    let plan = plan(&input(vec![demand(Lane::Slow, 30.0, service, 300.0)], 2, 1.0)).unwrap();
    let figures = plan.lanes[0].service.as_ref().unwrap();
    assert!(close(figures.mean_s, 0.75 * 60.0 + 0.25 * 300.0, 1e-9), "{figures:?}");
    assert!(close(figures.share_over_deadline, 0.25, 1e-9));
    assert!(plan.lanes[0].notes.iter().any(|n| n.contains("25.0% of the slow lane's jobs run past")), "{plan:#?}");
}

#[test]
fn a_high_arrival_rate_simulates_no_more_jobs_than_the_bound() {
    // A million jobs an hour of 1–2 ms: a day of them would be 24 million
    // simulated jobs a run; the bound cuts every run to 20,000 and says so.
    let busy = demand(Lane::Fast, 1e6, ServiceTime::single(Shape::Uniform(0.001, 0.002)).unwrap(), 1.0);
    let bounded = PlanInput { max_simulated_jobs: 20_000.0, ..input(vec![busy], 2, 1.0) };
    let plan = plan(&bounded).unwrap();
    let lane = &plan.lanes[0];
    let (fixed, keda) = (lane.simulated_fixed.as_ref().unwrap(), lane.simulated_keda.as_ref().unwrap());
    // Poisson arrivals over 20,000 jobs' mean time: a few hundred either way.
    assert!(fixed.jobs > 15_000 && fixed.jobs <= 21_000, "{}", fixed.jobs);
    assert!(keda.jobs <= 21_000, "{}", keda.jobs);
    assert!(lane.notes.iter().any(|n| n.contains("--max-simulated-jobs")), "{:?}", lane.notes);
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    let ok = || demand(Lane::Fast, 100.0, exponential(1.0), 10.0);
    let zero = LaneDemand { arrivals_per_hour: 0.0, ..ok() };
    assert_eq!(plan(&input(vec![zero.clone()], 2, 1.0)), Err(PlanError::NoArrivals(0.0)));
    let nan = LaneDemand { arrivals_per_hour: f64::NAN, ..ok() };
    assert!(matches!(plan(&input(vec![nan], 2, 1.0)), Err(PlanError::NoArrivals(_))));
    // Two workers of one slot for 3 jobs a second of 1 s: ρ = 1.5.
    let overloaded = LaneDemand { arrivals_per_hour: 3.0 * 3600.0, workers: Some(2), ..ok() };
    let err = plan(&input(vec![overloaded], 1, 1.0)).unwrap_err();
    assert!(
        matches!(err, PlanError::Unstable { workers: 2, needed: 4, .. }),
        "{err:?}: three slots are exactly full, so four"
    );
    assert!(err.to_string().contains("utilisation 1.50 is not below 1"), "{err}");
    let capped =
        PlanInput { max_workers: 2, ..input(vec![LaneDemand { arrivals_per_hour: 36_000.0, ..ok() }], 1, 1.0) };
    assert!(matches!(plan(&capped), Err(PlanError::Unreachable { max_workers: 2, .. })));
    for bad in [
        PlanInput { slots: 0, ..input(vec![ok()], 1, 1.0) },
        PlanInput { days: 0.0, ..input(vec![ok()], 1, 1.0) },
        PlanInput { max_utilisation: 1.0, ..input(vec![ok()], 1, 1.0) },
        PlanInput { max_simulated_jobs: 10.0, ..input(vec![ok()], 1, 1.0) },
        PlanInput { max_simulated_jobs: f64::NAN, ..input(vec![ok()], 1, 1.0) },
        input(vec![LaneDemand { target_p99_wait: -1.0, ..ok() }], 1, 1.0),
        input(vec![LaneDemand { timing: Timing { polling: 0.0, ..timing() }, ..ok() }], 1, 1.0),
    ] {
        assert!(matches!(plan(&bad), Err(PlanError::Input(_))), "{bad:?}");
    }
    // A lane with no jobs is no error: it gets its floor.
    let planned = plan(&input(vec![ok(), LaneDemand { lane: Lane::Slow, service: None, ..zero }], 1, 0.1)).unwrap();
    assert_eq!((planned.lanes[1].workers, planned.lanes[1].keda.min_replica_count), (0, 0));
}

/// The planner stays pure computation: nothing in this module may open a
/// file or socket, read the clock, or need an async runtime.
#[test]
fn the_planner_does_no_io() {
    let sources = [
        include_str!("mod.rs"),
        include_str!("queueing.rs"),
        include_str!("replay.rs"),
        include_str!("rng.rs"),
        include_str!("service.rs"),
        include_str!("simulate.rs"),
        include_str!("spec.rs"),
        include_str!("stats.rs"),
    ];
    let forbidden = ["tokio", "std::fs", "std::net", "std::io", "SystemTime", "Instant", "std::env", "std::process"];
    for source in sources {
        for word in forbidden {
            // This test's own list is the only place the words appear.
            assert!(!source.contains(word), "the capacity planner mentions `{word}`");
        }
    }
    assert!(include_str!("tests.rs").contains("std::fs"), "the check itself can see a mention");
}

#[test]
fn a_mix_is_split_into_lanes_by_weight() {
    let classes = [spec::class("typical=7,fast,2m-3m").unwrap(), spec::class("worst=1,fast,3m-30m").unwrap()];
    let lanes = lanes_of_mix(800.0, &classes, [300.0, 3600.0], [60.0, 1800.0], timing()).unwrap();
    assert_eq!((lanes[0].lane, lanes[0].arrivals_per_hour), (Lane::Fast, 800.0));
    // Mixed 7:1 and cut at the fast lane's 300 s deadline.
    let service = lanes[0].service.as_ref().unwrap();
    assert!(
        close(
            service.mean(),
            (7.0 * 150.0 + (180.0 + 300.0) / 2.0 * (120.0 / 1620.0) + 300.0 * (1500.0 / 1620.0)) / 8.0,
            1e-9
        ),
        "{}",
        service.mean()
    );
    assert_eq!((lanes[1].arrivals_per_hour, lanes[1].service.is_none()), (0.0, true), "no class, no jobs");
    assert_eq!(lanes[1].target_p99_wait, 1800.0);
}
