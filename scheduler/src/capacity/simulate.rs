//! A discrete-event simulation of one lane: Poisson arrivals, a FIFO queue,
//! worker replicas of `slots` job slots each, and, optionally, KEDA and the
//! HPA scaling the replicas the way `k8s/base/workers/scaledobjects.yaml`
//! has them do it.
//!
//! What it models of the scaling, per lane:
//! - KEDA polls the queue every `polling` seconds. The metric is the
//!   queue's messages, ready *and* unacknowledged (`protocol: http`), that
//!   is every job queued or running. At zero replicas a metric above 0
//!   activates the lane (one replica, or `min`); after `cooldown` seconds
//!   without any, it scales to zero (only when `min` is 0).
//! - The HPA, every `hpa_sync` seconds while there is a replica, wants
//!   `ceil(metric / value)` replicas within [max(min, 1), max], keeps the
//!   current count when the ratio is within its 10 % tolerance, adds at most
//!   max(current, 4) at a time (its default scale-up policy), and scales
//!   down to the highest recommendation of the last `scale_down_window`
//!   seconds, one replica per `scale_down_period` (the manifests' policy).
//! - A new replica takes `pod_start` seconds before it consumes. A replica
//!   scaled in stops taking jobs and finishes the ones it runs (the drain),
//!   newest replicas first, one not yet started before any running one.
//!
//! Without scaling, the lane has a fixed number of replicas from the start:
//! the M/G/c queue the model describes, for checking it.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

use super::rng::Rng;
use super::service::ServiceTime;
use super::stats::{Quantiles, quantile};

/// How the lane's replicas are decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    /// This many replicas, ready from the start.
    Fixed {
        replicas: u32,
    },
    Keda(Keda),
}

/// A ScaledObject's settings and the cluster's delays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keda {
    pub min: u32,
    pub max: u32,
    /// Jobs (queued or running) per replica.
    pub value: f64,
    /// KEDA's pollingInterval, s.
    pub polling: f64,
    /// KEDA's cooldownPeriod, s (only for the step to zero).
    pub cooldown: f64,
    /// From the decision to a consuming replica, s.
    pub pod_start: f64,
    /// The HPA's sync period, s.
    pub hpa_sync: f64,
    /// The HPA's scale-down stabilization window, s.
    pub scale_down_window: f64,
    /// One replica removed per this many seconds at most.
    pub scale_down_period: f64,
}

/// One simulated lane.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Jobs per second.
    pub arrivals: f64,
    pub service: ServiceTime,
    pub slots: u32,
    pub scaling: Scaling,
    /// Arrivals stop after this many seconds.
    pub horizon: f64,
    /// Jobs arriving before this are not counted (the lane fills up first).
    pub warmup: f64,
    pub seed: u64,
}

/// What the simulated lane did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// Jobs counted (arrived after the warm-up).
    pub jobs: usize,
    /// Queue wait (arrival to start), s.
    pub wait: Quantiles,
    /// Arrival to finish, s.
    pub total: Quantiles,
    /// The spread of the p99 wait between ten equal stretches of the run:
    /// its standard error, s.
    pub wait_p99_standard_error: f64,
    /// Busy slot time over the time slots were there to take jobs.
    pub utilisation: f64,
    /// Replicas in existence (starting, running or draining), on average.
    pub mean_replicas: f64,
    pub max_replicas: u32,
    /// Replica-hours over the counted stretch.
    pub replica_hours: f64,
    /// Replicas started by the scaling (0 when fixed).
    pub scale_ups: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    // Order matters for simultaneous events: completions free slots before
    // arrivals look for one, and ticks see the state after both.
    Completion { replica: usize },
    ReplicaReady { replica: usize },
    Arrival,
    HpaSync,
    KedaPoll,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct At(f64);

impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for At {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
    Draining,
    Gone,
}

#[derive(Debug, Clone, Copy)]
struct Replica {
    state: State,
    busy: u32,
}

struct Job {
    arrived: f64,
    service: f64,
    counted: bool,
}

struct Lane<'a> {
    scenario: &'a Scenario,
    rng: Rng,
    now: f64,
    events: BinaryHeap<Reverse<(At, u64, Event)>>,
    sequence: u64,
    replicas: Vec<Replica>,
    /// Ready replicas with a free slot, least busy first: (busy, index).
    free: BTreeSet<(u32, usize)>,
    /// Replicas not gone (starting, ready or draining): what costs money.
    existing: u32,
    /// Replicas starting or ready: what the HPA counts as current.
    current: u32,
    /// Ready replicas, and the busy slots of draining ones.
    ready: u32,
    draining_busy: u32,
    queue: VecDeque<Job>,
    /// Counted jobs still in the queue.
    counted_waiting: usize,
    running: u32,
    waits: Vec<(f64, f64)>,
    totals: Vec<f64>,
    // Time integrals over the counted stretch.
    last: f64,
    replica_seconds: f64,
    busy_seconds: f64,
    open_slot_seconds: f64,
    max_replicas: u32,
    scale_ups: u32,
    // Scaling state.
    last_active: f64,
    recommendations: VecDeque<(f64, u32)>,
    last_scale_down: f64,
}

/// Runs the scenario.
pub fn run(scenario: &Scenario) -> Outcome {
    let mut lane = Lane {
        scenario,
        rng: Rng::new(scenario.seed),
        now: 0.0,
        events: BinaryHeap::new(),
        sequence: 0,
        replicas: Vec::new(),
        free: BTreeSet::new(),
        existing: 0,
        current: 0,
        ready: 0,
        draining_busy: 0,
        queue: VecDeque::new(),
        counted_waiting: 0,
        running: 0,
        waits: Vec::new(),
        totals: Vec::new(),
        last: scenario.warmup,
        replica_seconds: 0.0,
        busy_seconds: 0.0,
        open_slot_seconds: 0.0,
        max_replicas: 0,
        scale_ups: 0,
        last_active: 0.0,
        recommendations: VecDeque::new(),
        last_scale_down: f64::NEG_INFINITY,
    };
    lane.simulate();
    lane.finish()
}

impl Lane<'_> {
    fn schedule(&mut self, at: f64, event: Event) {
        self.sequence += 1;
        self.events.push(Reverse((At(at), self.sequence, event)));
    }

    fn simulate(&mut self) {
        let s = self.scenario;
        let initial = match s.scaling {
            Scaling::Fixed { replicas } => replicas,
            Scaling::Keda(k) => k.min,
        };
        for _ in 0..initial {
            let index = self.push_replica();
            self.set_state(index, State::Ready);
        }
        if s.arrivals > 0.0 {
            let first = self.rng.exponential(1.0 / s.arrivals);
            self.schedule(first, Event::Arrival);
        }
        if let Scaling::Keda(k) = s.scaling {
            self.schedule(k.polling, Event::KedaPoll);
            self.schedule(k.hpa_sync, Event::HpaSync);
        }
        while let Some(Reverse((At(at), _, event))) = self.events.pop() {
            if at >= s.horizon && self.counted_waiting == 0 {
                self.advance(s.horizon.max(self.now));
                break;
            }
            self.advance(at);
            match event {
                Event::Arrival => self.arrive(),
                Event::Completion { replica } => self.complete(replica),
                Event::ReplicaReady { replica } => {
                    if self.replicas[replica].state == State::Starting {
                        self.set_state(replica, State::Ready);
                        self.dispatch();
                    }
                }
                Event::HpaSync => self.hpa_sync(),
                Event::KedaPoll => self.keda_poll(),
            }
        }
    }

    fn push_replica(&mut self) -> usize {
        self.replicas.push(Replica { state: State::Starting, busy: 0 });
        self.existing += 1;
        self.current += 1;
        self.max_replicas = self.max_replicas.max(self.existing);
        self.replicas.len() - 1
    }

    /// Moves a replica to `to`, keeping the counts and the free set true.
    fn set_state(&mut self, index: usize, to: State) {
        let Replica { state: from, busy } = self.replicas[index];
        let slots = self.scenario.slots;
        if from == State::Ready && busy < slots {
            self.free.remove(&(busy, index));
        }
        match from {
            State::Ready => self.ready -= 1,
            State::Draining => self.draining_busy -= busy,
            State::Starting | State::Gone => {}
        }
        if matches!(from, State::Starting | State::Ready) && !matches!(to, State::Starting | State::Ready) {
            self.current -= 1;
        }
        if to == State::Gone {
            self.existing -= 1;
        }
        match to {
            State::Ready => {
                self.ready += 1;
                if busy < slots {
                    self.free.insert((busy, index));
                }
            }
            State::Draining => self.draining_busy += busy,
            State::Starting | State::Gone => {}
        }
        self.replicas[index].state = to;
    }

    /// Sets a replica's busy slots, keeping the free set and counts true.
    fn set_busy(&mut self, index: usize, busy: u32) {
        let Replica { state, busy: was } = self.replicas[index];
        let slots = self.scenario.slots;
        match state {
            State::Ready => {
                if was < slots {
                    self.free.remove(&(was, index));
                }
                if busy < slots {
                    self.free.insert((busy, index));
                }
            }
            State::Draining => self.draining_busy = self.draining_busy - was + busy,
            State::Starting | State::Gone => {}
        }
        self.replicas[index].busy = busy;
    }

    /// Moves the clock, integrating the counted stretch [warmup, horizon].
    fn advance(&mut self, to: f64) {
        let s = self.scenario;
        let (from, until) = (self.last.max(s.warmup), to.min(s.horizon));
        if until > from {
            let dt = until - from;
            let open = self.ready * s.slots + self.draining_busy;
            self.replica_seconds += f64::from(self.existing) * dt;
            self.busy_seconds += f64::from(self.running) * dt;
            self.open_slot_seconds += f64::from(open) * dt;
        }
        self.last = self.last.max(to);
        self.now = to;
    }

    fn arrive(&mut self) {
        let s = self.scenario;
        let service = s.service.sample(&mut self.rng);
        let counted = self.now >= s.warmup;
        self.queue.push_back(Job { arrived: self.now, service, counted });
        self.counted_waiting += usize::from(counted);
        let next = self.now + self.rng.exponential(1.0 / s.arrivals);
        if next < s.horizon {
            self.schedule(next, Event::Arrival);
        }
        self.dispatch();
    }

    fn complete(&mut self, replica: usize) {
        self.running -= 1;
        let busy = self.replicas[replica].busy - 1;
        self.set_busy(replica, busy);
        if self.replicas[replica].state == State::Draining && busy == 0 {
            self.set_state(replica, State::Gone);
        }
        self.dispatch();
    }

    /// Queued jobs to free slots: the least busy ready replica first (the
    /// broker spreads deliveries over consumers with room in their prefetch).
    fn dispatch(&mut self) {
        while !self.queue.is_empty() {
            let Some(&(busy, index)) = self.free.first() else { return };
            let job = self.queue.pop_front().expect("not empty");
            self.set_busy(index, busy + 1);
            self.running += 1;
            if job.counted {
                self.counted_waiting -= 1;
                self.waits.push((job.arrived, self.now - job.arrived));
                self.totals.push(self.now - job.arrived + job.service);
            }
            self.schedule(self.now + job.service, Event::Completion { replica: index });
        }
    }

    /// Jobs queued or running: what the management API reports.
    fn metric(&self) -> f64 {
        (self.queue.len() as f64) + f64::from(self.running)
    }

    fn add_replicas(&mut self, n: u32, pod_start: f64) {
        for _ in 0..n {
            let index = self.push_replica();
            self.schedule(self.now + pod_start, Event::ReplicaReady { replica: index });
            self.scale_ups += 1;
        }
    }

    /// Scales in one replica: one still starting if any, else the newest.
    fn remove_one(&mut self) {
        let pick = self
            .replicas
            .iter()
            .rposition(|r| r.state == State::Starting)
            .or_else(|| self.replicas.iter().rposition(|r| r.state == State::Ready));
        if let Some(index) = pick {
            let busy = self.replicas[index].busy > 0;
            self.set_state(index, if busy { State::Draining } else { State::Gone });
        }
    }

    fn keda_poll(&mut self) {
        let Scaling::Keda(k) = self.scenario.scaling else { return };
        let active = self.metric() > 0.0;
        if active {
            self.last_active = self.now;
            if self.current == 0 {
                self.add_replicas(k.min.max(1), k.pod_start);
            }
        } else if k.min == 0 && self.current > 0 && self.now - self.last_active >= k.cooldown {
            while self.current > 0 {
                self.remove_one();
            }
        }
        self.schedule(self.now + k.polling, Event::KedaPoll);
    }

    fn hpa_sync(&mut self) {
        let Scaling::Keda(k) = self.scenario.scaling else { return };
        let current = self.current;
        if current > 0 {
            let metric = self.metric();
            let floor = k.min.max(1);
            let ratio = metric / (f64::from(current) * k.value);
            let wanted = if (ratio - 1.0).abs() <= 0.1 { current } else { (metric / k.value).ceil() as u32 };
            let wanted = wanted.clamp(floor, k.max.max(floor));
            self.recommendations.push_back((self.now, wanted));
            while self.recommendations.front().is_some_and(|&(t, _)| t < self.now - k.scale_down_window) {
                self.recommendations.pop_front();
            }
            if wanted > current {
                let step = (wanted - current).min(current.max(4));
                self.add_replicas(step, k.pod_start);
            } else {
                let stabilised = self.recommendations.iter().map(|&(_, n)| n).max().unwrap_or(wanted);
                if stabilised < current && self.now - self.last_scale_down >= k.scale_down_period {
                    self.remove_one();
                    self.last_scale_down = self.now;
                }
            }
        }
        self.schedule(self.now + k.hpa_sync, Event::HpaSync);
    }

    fn finish(self) -> Outcome {
        let s = self.scenario;
        let counted = (s.horizon - s.warmup).max(f64::MIN_POSITIVE);
        let mut waits: Vec<f64> = self.waits.iter().map(|&(_, w)| w).collect();
        waits.sort_by(f64::total_cmp);
        let mut totals = self.totals;
        totals.sort_by(f64::total_cmp);
        // Ten stretches by arrival time: the spread of their p99s.
        let batches = 10;
        let mut p99s = Vec::new();
        for b in 0..batches {
            let (lo, hi) = (
                s.warmup + counted * f64::from(b) / f64::from(batches),
                s.warmup + counted * f64::from(b + 1) / f64::from(batches),
            );
            let mut part: Vec<f64> = self.waits.iter().filter(|&&(t, _)| t >= lo && t < hi).map(|&(_, w)| w).collect();
            if part.len() >= 2 {
                part.sort_by(f64::total_cmp);
                p99s.push(quantile(&part, 0.99));
            }
        }
        let standard_error = if p99s.len() >= 2 {
            let n = p99s.len() as f64;
            let mean = p99s.iter().sum::<f64>() / n;
            (p99s.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
        } else {
            0.0
        };
        Outcome {
            jobs: waits.len(),
            wait: Quantiles::of_sorted(&waits),
            total: Quantiles::of_sorted(&totals),
            wait_p99_standard_error: standard_error,
            utilisation: if self.open_slot_seconds > 0.0 { self.busy_seconds / self.open_slot_seconds } else { 0.0 },
            mean_replicas: self.replica_seconds / counted,
            max_replicas: self.max_replicas,
            replica_hours: self.replica_seconds / 3600.0,
            scale_ups: self.scale_ups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::service::Shape;

    fn scenario(arrivals: f64, service: Shape, slots: u32, scaling: Scaling, hours: f64) -> Scenario {
        Scenario {
            arrivals,
            service: ServiceTime::single(service).unwrap(),
            slots,
            scaling,
            horizon: hours * 3600.0,
            warmup: 0.05 * hours * 3600.0,
            seed: 11,
        }
    }

    #[test]
    fn a_fixed_m_m_1_lane_matches_the_closed_form() {
        // λ = 0.8, μ = 1: mean wait 4 s, P(W > 0) = 0.8, utilisation 0.8.
        let out = run(&scenario(0.8, Shape::Exponential(1.0), 1, Scaling::Fixed { replicas: 1 }, 200.0));
        assert!((out.wait.mean - 4.0).abs() < 0.25, "{out:?}");
        assert!((out.utilisation - 0.8).abs() < 0.01, "{out:?}");
        let p99 = (0.8f64 / 0.01).ln() / 0.2;
        assert!((out.wait.p99 - p99).abs() < 0.05 * p99, "{} vs {p99}", out.wait.p99);
        assert_eq!((out.mean_replicas, out.max_replicas, out.scale_ups), (1.0, 1, 0));
    }

    #[test]
    fn slots_are_servers_and_a_lane_with_room_never_waits() {
        let out = run(&scenario(1.0, Shape::Fixed(0.5), 4, Scaling::Fixed { replicas: 3 }, 10.0));
        assert_eq!(out.wait.p99, 0.0, "{out:?}");
        assert!((out.utilisation - 0.5 / 12.0).abs() < 0.005, "{out:?}");
        assert!((out.total.p50 - 0.5).abs() < 1e-9);
    }

    fn keda(min: u32, max: u32) -> Keda {
        Keda {
            min,
            max,
            value: 2.0,
            polling: 30.0,
            cooldown: 300.0,
            pod_start: 60.0,
            hpa_sync: 15.0,
            scale_down_window: 600.0,
            scale_down_period: 120.0,
        }
    }

    #[test]
    fn keda_scales_from_zero_after_a_poll_and_a_pod_start() {
        // One job an hour, each 10 s: every job finds the lane at zero
        // (cooldown 300 s) and waits for the poll and the start.
        let out = run(&scenario(1.0 / 3600.0, Shape::Fixed(10.0), 2, Scaling::Keda(keda(0, 4)), 2000.0));
        assert!(out.jobs > 1500, "{out:?}");
        assert!(out.wait.p50 >= 60.0 && out.wait.p50 <= 90.0, "pod start + up to one poll: {out:?}");
        assert!(out.wait.max <= 90.0 + 1e-9, "{out:?}");
        // Each job keeps a replica for its run, the wait for a poll, and the cooldown.
        assert!(out.mean_replicas < 0.2, "{out:?}");
        // Most jobs find the lane at zero; one in ten comes within the cooldown of the last.
        assert!(out.scale_ups as f64 >= 0.85 * out.jobs as f64, "{out:?}");
    }

    #[test]
    fn keda_follows_the_load_up_to_its_maximum() {
        // 30 jobs a minute of 60 s each need 30 slots: 15 replicas; max 8
        // caps it at 16 slots, which is not enough, and the queue grows.
        let capped = run(&scenario(0.5, Shape::Fixed(60.0), 2, Scaling::Keda(keda(0, 8)), 2.0));
        assert_eq!(capped.max_replicas, 8, "{capped:?}");
        assert!(capped.wait.p99 > 600.0, "{capped:?}");
        // With room to grow, it settles near 15 replicas and jobs barely wait.
        let roomy = run(&scenario(0.5, Shape::Fixed(60.0), 2, Scaling::Keda(keda(0, 40)), 6.0));
        assert!(roomy.mean_replicas > 15.0 && roomy.mean_replicas < 22.0, "{roomy:?}");
        assert!(roomy.wait.p50 < 1.0, "{roomy:?}");
        assert!((roomy.utilisation - 30.0 / (2.0 * roomy.mean_replicas)).abs() < 0.2, "{roomy:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let s = scenario(0.7, Shape::Uniform(0.5, 2.0), 1, Scaling::Keda(keda(1, 3)), 5.0);
        assert_eq!(run(&s), run(&s));
        let other = Scenario { seed: 12, ..s.clone() };
        assert_ne!(run(&s), run(&other));
    }
}
