//! The queueing model of one lane: M/G/c, Poisson arrivals to `c` identical
//! servers (job slots) taking jobs first come, first served.
//!
//! - The probability that a job waits at all is Erlang's C formula for the
//!   offered load `a = λ·E[S]` (exact for M/M/c and for M/G/1).
//! - Given that it waits, its wait is taken as exponential, with the decay
//!   rate θ that solves `λ·(E[exp(θ·S/c)] − 1) = θ`: the tail of a single
//!   server c times as fast (the heavy-traffic view of c servers). For
//!   exponential service this gives `θ = cμ − λ`, the exact M/M/c answer; for
//!   other service times it uses the whole distribution, not two moments
//!   only, which matters for the tail (p99) that a plan is judged on.
//!
//! So `P(W > t) = C(c, a)·exp(−θ·t)`, and the q-quantile of the wait is
//! `ln(C / (1 − q)) / θ` when `C > 1 − q`, else 0. The discrete-event
//! simulation in [`super::simulate`] checks these figures.

use super::service::ServiceTime;

/// Erlang's B formula by its stable recursion, then C from B.
pub fn erlang_c(servers: u32, offered: f64) -> f64 {
    let c = f64::from(servers);
    if offered <= 0.0 {
        return 0.0;
    }
    if offered >= c {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=servers {
        b = offered * b / (f64::from(k) + offered * b);
    }
    let rho = offered / c;
    b / (1.0 - rho * (1.0 - b))
}

/// The waiting time of a stable lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wait {
    /// P(W > 0).
    pub prob_wait: f64,
    /// θ, per second: P(W > t) = prob_wait · exp(−θ t).
    pub decay: f64,
    /// λ·E[S] / c.
    pub utilisation: f64,
}

impl Wait {
    /// The q-quantile, seconds.
    pub fn quantile(&self, q: f64) -> f64 {
        let tail = 1.0 - q;
        if self.prob_wait <= tail { 0.0 } else { (self.prob_wait / tail).ln() / self.decay }
    }

    pub fn mean(&self) -> f64 {
        self.prob_wait / self.decay
    }

    /// P(W > t).
    pub fn prob_over(&self, t: f64) -> f64 {
        self.prob_wait * (-self.decay * t).exp()
    }
}

/// Why a lane has no steady state.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("utilisation {utilisation:.3} is not below 1: the queue grows without bound")]
pub struct Unstable {
    pub utilisation: f64,
}

/// The wait in an M/G/c queue with `lambda` arrivals per second.
pub fn wait(lambda: f64, servers: u32, service: &ServiceTime) -> Result<Wait, Unstable> {
    let c = f64::from(servers.max(1));
    let offered = lambda * service.mean();
    let utilisation = offered / c;
    if utilisation.is_nan() || utilisation >= 1.0 {
        return Err(Unstable { utilisation });
    }
    if lambda <= 0.0 {
        return Ok(Wait { prob_wait: 0.0, decay: f64::INFINITY, utilisation: 0.0 });
    }
    let prob_wait = erlang_c(servers.max(1), offered);
    Ok(Wait { prob_wait, decay: decay_rate(lambda, c, service), utilisation })
}

/// The positive root of g(θ) = λ(M(θ/c) − 1) − θ. g(0) = 0, g'(0) = ρ − 1 < 0
/// and g is convex, so it is negative up to the root and positive after:
/// bracket it by doubling, then bisect.
fn decay_rate(lambda: f64, c: f64, service: &ServiceTime) -> f64 {
    let g = |theta: f64| {
        let m = service.mgf(theta / c);
        if m.is_finite() { lambda * (m - 1.0) - theta } else { f64::INFINITY }
    };
    // The M/M/c rate for this mean is a good first bracket.
    let mut hi = (c / service.mean() - lambda).max(f64::MIN_POSITIVE);
    let mut lo = 0.0;
    while g(hi) < 0.0 {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return lo;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if g(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::service::Shape;

    fn exponential(mean: f64) -> ServiceTime {
        ServiceTime::single(Shape::Exponential(mean)).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn m_m_1_matches_its_closed_form() {
        // λ = 0.8/s, μ = 1/s: P(W > 0) = ρ, P(W > t) = ρ e^{-(μ-λ) t}.
        let w = wait(0.8, 1, &exponential(1.0)).unwrap();
        assert!(close(w.prob_wait, 0.8));
        assert!(close(w.decay, 0.2), "{}", w.decay);
        assert!(close(w.mean(), 0.8 / 0.2), "E[Wq] = ρ / (μ − λ)");
        assert!(close(w.quantile(0.99), (0.8f64 / 0.01).ln() / 0.2));
        assert!(close(w.quantile(0.5), (0.8f64 / 0.5).ln() / 0.2));
        assert_eq!(w.quantile(0.1), 0.0, "80% wait, so the 10th percentile is 0");
        assert!(close(w.utilisation, 0.8));
    }

    #[test]
    fn m_m_c_matches_its_closed_form() {
        // c = 3, λ = 2/s, μ = 1/s (a = 2): Erlang C by its textbook sum.
        let (c, a) = (3u32, 2.0f64);
        let factorial = |n: u32| (1..=n).map(f64::from).product::<f64>();
        let top = a.powi(c as i32) / factorial(c) * (f64::from(c) / (f64::from(c) - a));
        let sum: f64 = (0..c).map(|k| a.powi(k as i32) / factorial(k)).sum::<f64>() + top;
        let expected = top / sum;
        assert!(close(erlang_c(c, a), expected), "{} vs {expected}", erlang_c(c, a));
        assert!(close(expected, 4.0 / 9.0));
        let w = wait(2.0, c, &exponential(1.0)).unwrap();
        assert!(close(w.decay, 1.0), "cμ − λ");
        assert!(close(w.mean(), expected / (3.0 - 2.0)), "E[Wq] = C / (cμ − λ)");
        assert!(close(w.quantile(0.99), (expected / 0.01).ln() / 1.0));
        // Erlang C at many servers stays finite and in (0, 1).
        let big = erlang_c(500, 480.0);
        assert!(big > 0.0 && big < 1.0, "{big}");
        assert!(close(erlang_c(1, 0.5), 0.5));
    }

    #[test]
    fn m_d_1_uses_the_exact_decay_rate() {
        // M/D/1, d = 1, λ = 0.8: θ solves 0.8 (e^θ − 1) = θ (θ ≈ 0.4300).
        let w = wait(0.8, 1, &ServiceTime::single(Shape::Fixed(1.0)).unwrap()).unwrap();
        assert!((0.8 * (w.decay.exp() - 1.0) - w.decay).abs() < 1e-9, "{}", w.decay);
        assert!((w.decay - 0.4300).abs() < 0.001, "{}", w.decay);
        assert!(close(w.prob_wait, 0.8));
    }

    #[test]
    fn a_lane_at_or_over_capacity_is_unstable() {
        assert_eq!(wait(1.0, 1, &exponential(1.0)), Err(Unstable { utilisation: 1.0 }));
        assert!(wait(3.0, 2, &exponential(1.0)).is_err());
        let idle = wait(0.0, 1, &exponential(1.0)).unwrap();
        assert_eq!((idle.prob_wait, idle.quantile(0.99)), (0.0, 0.0));
    }
}
