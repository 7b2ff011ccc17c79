//! Service times: how long a worker slot is busy with one job.
//!
//! A lane's service time is a mixture of shapes (a fixed time, a uniform
//! range, an exponential, or the measured times of a `farm bench` run),
//! always cut at the lane's deadline: a job still running then is stopped
//! and failed, so it holds its slot for the deadline and no longer. Every
//! quantity the queueing model needs (mean, second moment, moment
//! generating function) is computed exactly for the cut distribution, and
//! the simulation draws from the same one.

use super::rng::Rng;

/// One shape of service time, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Always this long.
    Fixed(f64),
    /// Uniform between the two.
    Uniform(f64, f64),
    /// Exponential with this mean.
    Exponential(f64),
    /// Equally likely draws from measured times.
    Empirical(Vec<f64>),
}

impl Shape {
    /// A shape whose numbers are finite, non-negative and in order, or why not.
    fn check(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        match self {
            Shape::Fixed(v) if ok(*v) => Ok(()),
            Shape::Uniform(lo, hi) if ok(*lo) && ok(*hi) && lo <= hi => Ok(()),
            Shape::Exponential(mean) if ok(*mean) && *mean > 0.0 => Ok(()),
            Shape::Empirical(xs) if !xs.is_empty() && xs.iter().all(|&x| ok(x)) => Ok(()),
            Shape::Empirical(xs) if xs.is_empty() => Err("no measured service times".into()),
            other => Err(format!("not a usable service time: {other:?}")),
        }
    }

    /// E[min(S, cap)].
    fn mean(&self, cap: f64) -> f64 {
        match self {
            Shape::Fixed(v) => v.min(cap),
            &Shape::Uniform(lo, hi) => uniform_moment(lo, hi, cap, 1),
            &Shape::Exponential(m) => {
                if cap.is_infinite() {
                    m
                } else {
                    -m * (-cap / m).exp_m1()
                }
            }
            Shape::Empirical(xs) => xs.iter().map(|x| x.min(cap)).sum::<f64>() / xs.len() as f64,
        }
    }

    /// E[min(S, cap)²].
    fn second_moment(&self, cap: f64) -> f64 {
        match self {
            Shape::Fixed(v) => v.min(cap).powi(2),
            &Shape::Uniform(lo, hi) => uniform_moment(lo, hi, cap, 2),
            &Shape::Exponential(m) => {
                if cap.is_infinite() {
                    2.0 * m * m
                } else {
                    2.0 * m * m * (1.0 - (-cap / m).exp() * (1.0 + cap / m))
                }
            }
            Shape::Empirical(xs) => xs.iter().map(|x| x.min(cap).powi(2)).sum::<f64>() / xs.len() as f64,
        }
    }

    /// E[exp(s · min(S, cap))] for s ≥ 0; infinite where it diverges.
    fn mgf(&self, s: f64, cap: f64) -> f64 {
        match self {
            Shape::Fixed(v) => (s * v.min(cap)).exp(),
            &Shape::Uniform(lo, hi) => {
                let top = hi.min(cap);
                if hi - lo <= f64::EPSILON * hi.max(1.0) {
                    return (s * lo.min(cap)).exp();
                }
                if cap <= lo {
                    return (s * cap).exp();
                }
                // ∫_lo^top e^{st} dt / (hi - lo), plus the mass cut to `cap`.
                let integral = (s * lo).exp() * exp_m1_over(s, top - lo);
                integral / (hi - lo) + if cap < hi { (s * cap).exp() * (hi - cap) / (hi - lo) } else { 0.0 }
            }
            &Shape::Exponential(m) => {
                if cap.is_infinite() {
                    return if s * m < 1.0 { 1.0 / (1.0 - s * m) } else { f64::INFINITY };
                }
                // ∫_0^cap e^{st} e^{-t/m} dt / m + e^{(s - 1/m) cap}.
                let r = s - 1.0 / m;
                exp_m1_over(r, cap) / m + (r * cap).exp()
            }
            Shape::Empirical(xs) => xs.iter().map(|x| (s * x.min(cap)).exp()).sum::<f64>() / xs.len() as f64,
        }
    }

    /// P(S > cap).
    fn prob_over(&self, cap: f64) -> f64 {
        match self {
            Shape::Fixed(v) => f64::from(u8::from(*v > cap)),
            &Shape::Uniform(lo, hi) => {
                if cap >= hi {
                    0.0
                } else if cap < lo || hi == lo {
                    1.0
                } else {
                    (hi - cap) / (hi - lo)
                }
            }
            Shape::Exponential(m) => (-cap / m).exp(),
            Shape::Empirical(xs) => xs.iter().filter(|&&x| x > cap).count() as f64 / xs.len() as f64,
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Shape::Fixed(v) => *v,
            Shape::Uniform(lo, hi) => lo + (hi - lo) * rng.unit(),
            Shape::Exponential(m) => rng.exponential(*m),
            Shape::Empirical(xs) => xs[rng.below(xs.len())],
        }
    }

    fn max(&self) -> f64 {
        match self {
            Shape::Fixed(v) => *v,
            Shape::Uniform(_, hi) => *hi,
            Shape::Exponential(_) => f64::INFINITY,
            Shape::Empirical(xs) => xs.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// (e^{r·x} - 1) / r, and x where r = 0.
fn exp_m1_over(r: f64, x: f64) -> f64 {
    if r.abs() * x < 1e-12 { x } else { (r * x).exp_m1() / r }
}

/// E[min(U, cap)^k] for U uniform on [lo, hi], k = 1 or 2.
fn uniform_moment(lo: f64, hi: f64, cap: f64, k: i32) -> f64 {
    if cap <= lo || hi - lo <= f64::EPSILON * hi.max(1.0) {
        return lo.min(cap).powi(k);
    }
    let top = hi.min(cap);
    let k1 = f64::from(k + 1);
    let inside = (top.powi(k + 1) - lo.powi(k + 1)) / (k1 * (hi - lo));
    inside + if cap < hi { cap.powi(k) * (hi - cap) / (hi - lo) } else { 0.0 }
}

/// A lane's service time: weighted shapes, cut at the deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTime {
    /// (weight, shape); weights sum to 1.
    parts: Vec<(f64, Shape)>,
    /// The deadline: no job holds a slot longer.
    cap: f64,
}

impl ServiceTime {
    /// One shape, no deadline.
    pub fn single(shape: Shape) -> Result<Self, String> {
        Self::mixture(vec![(1.0, shape)])
    }

    /// Shapes with positive weights (normalised here), no deadline.
    pub fn mixture(parts: Vec<(f64, Shape)>) -> Result<Self, String> {
        if parts.is_empty() {
            return Err("no service times".into());
        }
        for (weight, shape) in &parts {
            if !(weight.is_finite() && *weight > 0.0) {
                return Err(format!("a weight must be a positive number, got {weight}"));
            }
            shape.check()?;
        }
        let total: f64 = parts.iter().map(|(w, _)| w).sum();
        let parts = parts.into_iter().map(|(w, s)| (w / total, s)).collect();
        let service = Self { parts, cap: f64::INFINITY };
        if service.mean() <= 0.0 {
            return Err("every service time is zero".into());
        }
        Ok(service)
    }

    /// The same, cut at `deadline` seconds.
    pub fn with_deadline(mut self, deadline: f64) -> Self {
        self.cap = deadline;
        self
    }

    pub fn deadline(&self) -> f64 {
        self.cap
    }

    /// Mean, seconds.
    pub fn mean(&self) -> f64 {
        self.parts.iter().map(|(w, s)| w * s.mean(self.cap)).sum()
    }

    pub fn second_moment(&self) -> f64 {
        self.parts.iter().map(|(w, s)| w * s.second_moment(self.cap)).sum()
    }

    /// Squared coefficient of variation, Var / mean².
    pub fn scv(&self) -> f64 {
        let mean = self.mean();
        (self.second_moment() / (mean * mean) - 1.0).max(0.0)
    }

    /// E[exp(s·S)].
    pub fn mgf(&self, s: f64) -> f64 {
        self.parts.iter().map(|(w, shape)| w * shape.mgf(s, self.cap)).sum()
    }

    /// The share of jobs that would run past the deadline (and fail).
    pub fn share_over_deadline(&self) -> f64 {
        self.parts.iter().map(|(w, s)| w * s.prob_over(self.cap)).sum()
    }

    /// The longest a job takes (the deadline at most).
    pub fn max(&self) -> f64 {
        self.parts.iter().map(|(_, s)| s.max()).fold(0.0, f64::max).min(self.cap)
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> f64 {
        let mut u = rng.unit();
        let mut chosen = &self.parts[self.parts.len() - 1].1;
        for (weight, shape) in &self.parts {
            if u < *weight {
                chosen = shape;
                break;
            }
            u -= weight;
        }
        chosen.sample(rng).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-12)
    }

    /// Moments and MGF against the mean of a million draws.
    fn agrees_with_draws(service: &ServiceTime) {
        let mut rng = Rng::new(3);
        let n = 1_000_000;
        let draws: Vec<f64> = (0..n).map(|_| service.sample(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let second = draws.iter().map(|x| x * x).sum::<f64>() / n as f64;
        let s = 0.5 / service.mean();
        let mgf = draws.iter().map(|x| (s * x).exp()).sum::<f64>() / n as f64;
        assert!(close(mean, service.mean(), 0.01), "{service:?}: mean {mean} vs {}", service.mean());
        assert!(close(second, service.second_moment(), 0.02), "{service:?}: E[S²] {second}");
        assert!(close(mgf, service.mgf(s), 0.02), "{service:?}: mgf {mgf} vs {}", service.mgf(s));
        let over = draws.iter().filter(|&&x| x >= service.deadline()).count() as f64 / n as f64;
        assert!((over - service.share_over_deadline()).abs() < 0.003, "{service:?}: over {over}");
    }

    #[test]
    fn moments_are_exact_for_every_shape_with_and_without_a_deadline() {
        let shapes = [
            Shape::Fixed(2.0),
            Shape::Uniform(120.0, 180.0),
            Shape::Exponential(10.0),
            Shape::Empirical(vec![0.1, 0.2, 0.2, 5.0]),
        ];
        for shape in shapes {
            let service = ServiceTime::single(shape.clone()).unwrap();
            agrees_with_draws(&service);
            let cut = service.with_deadline(shape.max().min(20.0) * 0.7);
            agrees_with_draws(&cut);
        }
        let mix = ServiceTime::mixture(vec![(7.0, Shape::Uniform(120.0, 180.0)), (1.0, Shape::Uniform(180.0, 1800.0))])
            .unwrap();
        agrees_with_draws(&mix);
        agrees_with_draws(&mix.with_deadline(900.0));
    }

    #[test]
    fn known_values() {
        let exp = ServiceTime::single(Shape::Exponential(2.0)).unwrap();
        assert!(close(exp.mean(), 2.0, 1e-12) && close(exp.scv(), 1.0, 1e-12));
        assert!(close(exp.mgf(0.25), 2.0, 1e-12), "1 / (1 - s m)");
        assert!(exp.mgf(0.5).is_infinite());
        assert!(close(exp.clone().with_deadline(2.0).share_over_deadline(), (-1.0f64).exp(), 1e-12));
        let fixed = ServiceTime::single(Shape::Fixed(3.0)).unwrap();
        assert_eq!((fixed.scv(), fixed.max()), (0.0, 3.0));
        let uniform = ServiceTime::single(Shape::Uniform(0.0, 6.0)).unwrap();
        assert!(close(uniform.scv(), 1.0 / 3.0, 1e-12));
        let weights = ServiceTime::mixture(vec![(84.0, Shape::Fixed(1.0)), (12.0, Shape::Fixed(8.0))]).unwrap();
        assert!(close(weights.mean(), (84.0 + 96.0) / 96.0, 1e-12));
    }

    #[test]
    fn unusable_times_are_refused() {
        assert!(ServiceTime::single(Shape::Empirical(vec![])).is_err());
        assert!(ServiceTime::single(Shape::Empirical(vec![0.0, 0.0])).is_err());
        assert!(ServiceTime::single(Shape::Fixed(f64::NAN)).is_err());
        assert!(ServiceTime::single(Shape::Uniform(3.0, 1.0)).is_err());
        assert!(ServiceTime::single(Shape::Exponential(0.0)).is_err());
        assert!(ServiceTime::mixture(vec![(0.0, Shape::Fixed(1.0))]).is_err());
        assert!(ServiceTime::mixture(vec![]).is_err());
    }
}
