//! The M/D/c queue solved numerically: Poisson arrivals, `c` servers, every
//! service exactly `D` long. One end of the interpolation in
//! [`super::queueing`].
//!
//! Seen every `D` seconds, the number in the system is a Markov chain
//! (Crommelin): whoever is in service at `t` has left by `t + D`, and at most
//! `c` were, so `N(t + D) = max(N(t) − c, 0) + A` with `A` ~ Poisson(λD).
//! The chain is truncated where its geometric tail has nothing left (checked
//! after the solve) and solved by Grassmann–Taksar–Heyman elimination, which
//! only adds and multiplies non-negative numbers, so it stays accurate far
//! into the tail. Its matrix is a band (a state moves at most `c` down and a
//! few deviations of `A` up), stored as one.
//!
//! The waiting time follows from the same law (Franx 2001): a job arriving
//! at `t` waits at most `kD + u` (`0 ≤ u < D`) exactly when fewer than
//! `(k + 1)c` jobs are ahead of it at `t − (D − u)` plus those arriving in
//! between, so `P(W ≤ kD + u) = P(max(N − c, 0) + Poisson(λ(D − u)) ≤
//! (k + 1)c − 1)`.
//!
//! Work and memory are bounded before anything is allocated: a chain too
//! large for the budgets below is declined (`None`), and the caller falls
//! back to its approximation.

/// Multiply–adds the elimination may spend.
const WORK_BUDGET: f64 = 5.0e7;
/// Band entries (f64) the elimination may hold: 32 MiB.
const MEMORY_BUDGET: usize = 4 << 20;
/// Probability mass the truncated chain may leave in its top `c` states.
const TRUNCATED_MASS: f64 = 1e-12;

/// The solved M/D/c queue: the stationary law of the number in the system.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FixedServiceQueue {
    lambda: f64,
    servers: usize,
    service: f64,
    /// π_n, the probability of `n` jobs in the system, n = 0, 1, ….
    number: Vec<f64>,
}

impl FixedServiceQueue {
    /// Solves the queue, or `None` when it has no steady state or is too
    /// large to solve within the budgets.
    pub(super) fn solve(lambda: f64, servers: u32, service: f64) -> Option<Self> {
        let c = servers as usize;
        let offered = lambda * service;
        if !(lambda > 0.0 && service > 0.0 && c > 0 && offered.is_finite()) {
            return None;
        }
        let utilisation = offered / c as f64;
        if utilisation >= 1.0 {
            return None;
        }
        let window = poisson_window(offered);
        let band = c + window + 1;
        // π_n falls as exp(−s·n) past c, s the positive root of
        // ρ(e^s − 1) = s (from z^c = exp(λD(z − 1))): exp(−45) is far below
        // TRUNCATED_MASS.
        let tail = (45.0 / tail_decay(utilisation)).ceil();
        let by_work = WORK_BUDGET / (window as f64 * c as f64);
        let by_memory = (MEMORY_BUDGET / band) as f64;
        let states = (band as f64 + tail).min(by_work).min(by_memory);
        if states < band as f64 {
            return None;
        }
        let number = stationary(offered, c, window, states as usize)?;
        let truncated: f64 = number[number.len() - c..].iter().sum();
        if truncated.is_nan() || truncated > TRUNCATED_MASS {
            return None;
        }
        Some(Self { lambda, servers: c, service, number })
    }

    /// P(W ≤ x), x in seconds.
    pub(super) fn wait_cdf(&self, x: f64) -> f64 {
        if x < 0.0 {
            return 0.0;
        }
        let periods = (x / self.service).floor();
        let into = (x - periods * self.service).clamp(0.0, self.service);
        let limit = (periods + 1.0) * self.servers as f64 - 1.0;
        let arrivals = poisson_cdf(self.lambda * (self.service - into));
        let c = self.servers;
        let mut p = 0.0;
        for (n, pi) in self.number.iter().enumerate() {
            let ahead = n.saturating_sub(c) as f64;
            if ahead > limit {
                // The rest have more ahead still.
                break;
            }
            let index = limit - ahead;
            p += pi * arrivals.get(index as usize).or(arrivals.last()).copied().unwrap_or(1.0);
        }
        p.min(1.0)
    }

    /// P(W > 0).
    pub(super) fn prob_wait(&self) -> f64 {
        1.0 - self.wait_cdf(0.0)
    }

    /// The q-quantile of the wait, seconds.
    pub(super) fn wait_quantile(&self, q: f64) -> f64 {
        if self.wait_cdf(0.0) >= q {
            return 0.0;
        }
        let (mut lo, mut hi) = (0.0, self.service);
        let mut doublings = 0;
        while self.wait_cdf(hi) < q {
            lo = hi;
            hi *= 2.0;
            doublings += 1;
            if doublings > 60 {
                // Only a q within rounding of 1 gets here.
                return hi;
            }
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi || hi - lo <= 1e-9 * hi {
                break;
            }
            if self.wait_cdf(mid) < q {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

/// Arrivals in one service time beyond this many have probability far below
/// 1e-20 (twelve deviations and a margin for small means).
fn poisson_window(mean: f64) -> usize {
    (mean + 12.0 * mean.sqrt() + 20.0).ceil() as usize
}

/// P(Poisson(mean) = k) for k = 0..=window, from logarithms so a large mean
/// neither overflows nor loses the terms that matter.
fn poisson_pmf(mean: f64, window: usize) -> Vec<f64> {
    let ln_mean = mean.ln();
    let mut ln_p = -mean;
    let mut pmf = Vec::with_capacity(window + 1);
    pmf.push(ln_p.exp());
    for k in 1..=window {
        ln_p += ln_mean - (k as f64).ln();
        pmf.push(ln_p.exp());
    }
    pmf
}

/// P(Poisson(mean) ≤ k) for k = 0..=window of the mean.
fn poisson_cdf(mean: f64) -> Vec<f64> {
    if mean <= 0.0 {
        return vec![1.0];
    }
    let mut total = 0.0;
    poisson_pmf(mean, poisson_window(mean))
        .into_iter()
        .map(|p| {
            total += p;
            total.min(1.0)
        })
        .collect()
}

/// The positive root of ρ(e^s − 1) = s for ρ < 1: convex, negative just
/// past 0, so bracket by doubling and bisect.
fn tail_decay(utilisation: f64) -> f64 {
    let f = |s: f64| utilisation * s.exp_m1() - s;
    let (mut lo, mut hi) = (0.0, 1.0);
    while f(hi) < 0.0 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) < 0.0 { lo = mid } else { hi = mid }
    }
    hi
}

/// The stationary law of the chain on states 0..states (mass past the last
/// folded into it), or `None` if the elimination meets a zero pivot.
///
/// Row i of the band holds columns `i − c ..= i + window`, column j at
/// `i·width + (j + c − i)`. After states above n are eliminated, row n has
/// entries left of the diagonal only in `n − c .. n` and column n has
/// entries above it only in rows `n − window .. n`, so each elimination
/// stays inside the band.
fn stationary(offered: f64, c: usize, window: usize, states: usize) -> Option<Vec<f64>> {
    let width = c + window + 1;
    let at = |i: usize, j: usize| i * width + (j + c - i);
    let pmf = poisson_pmf(offered, window);
    let mut p = vec![0.0f64; states * width];
    for i in 0..states {
        let base = i.saturating_sub(c);
        for (k, pk) in pmf.iter().enumerate() {
            let j = (base + k).min(states - 1);
            p[at(i, j)] += pk;
        }
    }
    for n in (1..states).rev() {
        let left = n.saturating_sub(c);
        let pivot: f64 = (left..n).map(|j| p[at(n, j)]).sum();
        if pivot.is_nan() || pivot <= 0.0 {
            return None;
        }
        let above = n.saturating_sub(window);
        for i in above..n {
            let entry = at(i, n);
            p[entry] /= pivot;
            let factor = p[entry];
            if factor == 0.0 {
                continue;
            }
            for j in left..n {
                let update = factor * p[at(n, j)];
                p[at(i, j)] += update;
            }
        }
    }
    let mut number = vec![0.0f64; states];
    number[0] = 1.0;
    for n in 1..states {
        number[n] = (n.saturating_sub(window)..n).map(|i| number[i] * p[at(i, n)]).sum();
    }
    let total: f64 = number.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    number.iter_mut().for_each(|pi| *pi /= total);
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E[W] = ∫ P(W > x) dx, by the trapezoid rule on a fine grid.
    fn mean_wait(queue: &FixedServiceQueue, until: f64) -> f64 {
        let steps = 200_000;
        let h = until / f64::from(steps);
        (0..steps)
            .map(|i| {
                let (a, b) = (f64::from(i) * h, f64::from(i + 1) * h);
                0.5 * h * ((1.0 - queue.wait_cdf(a)) + (1.0 - queue.wait_cdf(b)))
            })
            .sum()
    }

    #[test]
    fn m_d_1_matches_its_closed_forms() {
        // λ = 0.8, D = 1: P(W > 0) = ρ; for x < D, P(W ≤ x) = (1 − ρ) e^{λx};
        // E[W] = λD² / (2(1 − ρ)) = 2 (Pollaczek–Khinchine).
        let queue = FixedServiceQueue::solve(0.8, 1, 1.0).unwrap();
        assert!((queue.prob_wait() - 0.8).abs() < 1e-9, "{}", queue.prob_wait());
        for x in [0.1f64, 0.5, 0.9] {
            let expected = 0.2 * (0.8 * x).exp();
            assert!((queue.wait_cdf(x) - expected).abs() < 1e-9, "F({x}) = {} vs {expected}", queue.wait_cdf(x));
        }
        let mean = mean_wait(&queue, 60.0);
        assert!((mean - 2.0).abs() < 1e-3, "{mean}");
        // The quantile inverts the distribution.
        let p90 = queue.wait_quantile(0.9);
        assert!((queue.wait_cdf(p90) - 0.9).abs() < 1e-6, "{p90}");
    }

    #[test]
    fn many_servers_keep_littles_law() {
        // The README's fast lane: 368 jobs an hour, 20 slots, 150 s each.
        let (lambda, service) = (368.0 / 3600.0, 150.0);
        let queue = FixedServiceQueue::solve(lambda, 20, service).unwrap();
        // Busy servers on average = offered load (Little's law on the servers).
        let busy: f64 = queue.number.iter().enumerate().map(|(n, pi)| pi * n.min(20) as f64).sum();
        assert!((busy - lambda * service).abs() < 1e-6, "{busy}");
        let total: f64 = queue.number.iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        // Utilisation 0.77 on 20 servers: most jobs do not wait.
        assert_eq!(queue.wait_quantile(0.5), 0.0);
        let p99 = queue.wait_quantile(0.99);
        assert!(p99 > 0.0 && p99 < 2.0 * service, "{p99}");
        assert!(queue.wait_quantile(0.999) > p99);
    }

    #[test]
    fn no_steady_state_or_no_room_is_declined() {
        assert_eq!(FixedServiceQueue::solve(1.0, 1, 1.0), None, "ρ = 1");
        assert_eq!(FixedServiceQueue::solve(0.0, 1, 1.0), None, "no arrivals");
        assert_eq!(FixedServiceQueue::solve(f64::NAN, 1, 1.0), None);
        assert_eq!(FixedServiceQueue::solve(4950.0, 5000, 1.0), None, "past the work budget");
        let large = FixedServiceQueue::solve(80.0, 100, 1.0).unwrap();
        let waits = large.prob_wait();
        assert!(waits > 0.0 && waits < 0.2, "{waits}");
    }
}
