//! Waiting on state, never on a fixed sleep: a probe is asked until it
//! answers or the patience runs out, and the caller says what it waited for.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a probe is asked again.
const POLL: Duration = Duration::from_millis(25);

/// Asks `probe` until it answers `Some`, for up to `patience`; `None` once
/// the patience has run out (the caller reports what never happened).
pub async fn wait_until<T, F, Fut>(patience: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for a thread that is not on a runtime.
pub fn wait_until_blocking<T>(patience: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_probe_is_asked_until_it_answers_and_the_patience_ends_the_wait() {
        let mut asked = 0;
        let answer = wait_until(Duration::from_secs(5), || {
            asked += 1;
            let done = asked == 3;
            async move { done.then_some("ready") }
        })
        .await;
        assert_eq!((answer, asked), (Some("ready"), 3));
        let never = wait_until(Duration::from_millis(60), || async { None::<()> }).await;
        assert_eq!(never, None);
    }

    #[test]
    fn the_blocking_wait_behaves_alike() {
        let mut asked = 0;
        assert_eq!(
            wait_until_blocking(Duration::from_secs(5), || {
                asked += 1;
                (asked == 2).then_some(asked)
            }),
            Some(2)
        );
        assert_eq!(wait_until_blocking(Duration::from_millis(60), || None::<()>), None);
    }
}
