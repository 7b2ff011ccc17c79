//! Deterministic parallel folds: the same input gives the same bits on any
//! number of threads, run after run.
//!
//! rayon's `fold` + `reduce` splits work where idle threads steal it, so the
//! order in which floating-point partial sums meet changes from run to run,
//! and with it the last digits of a volume. A quote must be reproducible (it
//! is cached, compared and billed), so every float sum over the mesh folds
//! fixed chunks in parallel and merges their results in chunk order.

use rayon::prelude::*;

/// Folds `0..len` in chunks of `chunk` indices, in parallel, then merges the
/// chunks' results in index order.
pub(crate) fn fold_chunks<A, Id, F, M>(len: usize, chunk: usize, identity: Id, fold: F, merge: M) -> A
where
    A: Send,
    Id: Fn() -> A + Sync,
    F: Fn(A, usize) -> A + Sync,
    M: Fn(A, A) -> A,
{
    let chunk = chunk.max(1);
    let parts: Vec<A> = (0..len.div_ceil(chunk))
        .into_par_iter()
        .map(|k| (k * chunk..((k + 1) * chunk).min(len)).fold(identity(), &fold))
        .collect();
    parts.into_iter().fold(identity(), merge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_does_not_depend_on_the_threads() {
        let values: Vec<f64> = (0..100_000).map(|i| 1.0 / (1.0 + f64::from(i))).collect();
        let sum = || fold_chunks(values.len(), 1000, || 0.0, |a, i| a + values[i], |a, b| a + b);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(sum);
        let four = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap().install(sum);
        assert_eq!(one.to_bits(), four.to_bits());
        assert_eq!(fold_chunks(0, 10, || 0u32, |a, _| a + 1, |a, b| a + b), 0);
    }
}
