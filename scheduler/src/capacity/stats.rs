//! Percentiles of simulated and replayed times, computed the way the
//! benchmark computes its own (linear interpolation between closest ranks),
//! so the two can be compared figure for figure.

/// Summary of times in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

impl Quantiles {
    /// From values sorted ascending; all zero when there are none.
    pub fn of_sorted(sorted: &[f64]) -> Self {
        if sorted.is_empty() {
            return Self::default();
        }
        Self {
            p50: quantile(sorted, 0.50),
            p99: quantile(sorted, 0.99),
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            max: sorted[sorted.len() - 1],
        }
    }

    pub fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Self::of_sorted(&sorted)
    }
}

/// The q-quantile of ascending `sorted` (not empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (below, above) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_interpolated() {
        let values: Vec<f64> = (0..=100).rev().map(f64::from).collect();
        let q = Quantiles::of(&values);
        assert_eq!((q.p50, q.p99, q.mean, q.max), (50.0, 99.0, 50.0, 100.0));
        assert_eq!(quantile(&[1.0, 3.0], 0.5), 2.0);
        assert_eq!(Quantiles::of(&[]), Quantiles::default());
    }
}
