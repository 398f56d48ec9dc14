//! The one place that knows the retry library (the user chose `backoff`; it is
//! unmaintained upstream, so swapping it for `backon` touches only this file).

use std::future::Future;
use std::time::Duration;

/// Exponential backoff from `initial` up to `max_interval`, giving up after `max_elapsed`.
pub struct Policy {
    pub initial: Duration,
    pub max_interval: Duration,
    pub max_elapsed: Duration,
}

/// Retries `op` while it fails with an error `is_transient` accepts, calling
/// `on_retry` before each wait.
pub async fn retry<T, E, F, Fut>(
    policy: &Policy,
    mut op: F,
    is_transient: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(&E, Duration),
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let backoff = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(policy.initial)
        .with_max_interval(policy.max_interval)
        .with_max_elapsed_time(Some(policy.max_elapsed))
        .build();
    backoff::future::retry_notify(
        backoff,
        || {
            let attempt = op();
            let is_transient = &is_transient;
            async move {
                attempt.await.map_err(|error| {
                    if is_transient(&error) {
                        backoff::Error::transient(error)
                    } else {
                        backoff::Error::permanent(error)
                    }
                })
            }
        },
        |error: E, wait| on_retry(&error, wait),
    )
    .await
}

/// Waits between reconnect attempts of a long-running task: doubling from
/// 200 ms up to 2 s (so a task is back within about 2 s of its dependency),
/// reset once the task works again. Never gives up: the task reports itself
/// down meanwhile.
pub struct Delays {
    next: Duration,
}

impl Delays {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(2);

    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Delays {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Policy = Policy {
        initial: Duration::from_millis(1),
        max_interval: Duration::from_millis(2),
        max_elapsed: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicU32::new(0);
        let result: Result<u32, &str> = retry(
            &FAST,
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err("transient"),
                    n => Ok(n),
                }
            },
            |_| true,
            |_, _| {},
        )
        .await;
        assert_eq!(result, Ok(2));
    }

    #[test]
    fn reconnect_delays_double_up_to_two_seconds_and_reset() {
        let mut delays = Delays::new();
        let waits: Vec<u128> = (0..6).map(|_| delays.next_wait().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 2000, 2000]);
        delays.reset();
        assert_eq!(delays.next_wait(), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn stops_at_the_first_permanent_error() {
        let calls = AtomicU32::new(0);
        let result: Result<(), &str> = retry(
            &FAST,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("permanent")
            },
            |_| false,
            |_, _| {},
        )
        .await;
        assert_eq!(result, Err("permanent"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
