//! Runs CPU-bound work on rayon, never on tokio's threads.
//!
//! lapin's heartbeats and axum's handlers run on the async runtime; a mesh
//! analysis that held a runtime thread for seconds would starve them, the
//! broker would drop the connection, and every unacked job would be requeued.

use std::panic::AssertUnwindSafe;

/// The closure panicked; the payload's message, when it had one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the computation panicked: {0}")]
pub struct Panicked(pub String);

/// Runs `work` on `pool` and awaits its result without blocking the runtime.
pub async fn run_on<T, F>(pool: &rayon::ThreadPool, work: F) -> Result<T, Panicked>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (sender, receiver) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Panicked(message)
        });
        // The receiver is gone only when the job was abandoned; nothing to tell.
        let _ = sender.send(outcome);
    });
    receiver.await.unwrap_or_else(|_| Err(Panicked("the compute pool shut down".into())))
}

/// Builds a named rayon pool with `threads` threads (0 means one per core).
pub fn pool(name: &'static str, threads: usize) -> std::io::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_and_panics_come_back() {
        let pool = pool("test", 1).unwrap();
        assert_eq!(run_on(&pool, || 2 + 2).await, Ok(4));
        let err = run_on(&pool, || -> u32 { panic!("boom") }).await.unwrap_err();
        assert_eq!(err, Panicked("boom".into()));
    }
}
