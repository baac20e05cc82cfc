//! The one retry policy for transport errors: exponential back-off with jitter, capped, for a bounded time; and the
//! once-per-episode logging of a condition that lasts (the backend out of space).

use backon::ExponentialBuilder;
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How taskflow retries an operation that failed because the backend could not be reached (a transport error, a
/// timeout, no leader): the first retry after about `min_delay`, each next one after twice as long, never more than
/// `max_delay` apart, each delay stretched by a random jitter of up to 100% so that many workers do not retry in
/// step, and no more retries once the delays add up to `max_elapsed` (`None`: until the caller stops).
///
/// ```
/// use std::time::Duration;
/// use taskflow::RetryPolicy;
///
/// let policy = RetryPolicy::default().max_delay(Duration::from_secs(2));
/// assert!(policy.delays().all(|delay| delay <= Duration::from_secs(4)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    min_delay: Duration,
    max_delay: Duration,
    max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 50 ms, doubling up to 5 s apart, for at most a minute.
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            max_elapsed: Some(Duration::from_secs(60)),
        }
    }
}

impl RetryPolicy {
    /// The delay before the first retry (before jitter).
    #[must_use]
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay.max(Duration::from_millis(1));
        self.max_delay = self.max_delay.max(self.min_delay);
        self
    }

    /// The longest delay between two retries (before jitter).
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay.max(self.min_delay);
        self
    }

    /// Stop retrying once the delays add up to this much (`None`: retry until the caller stops).
    #[must_use]
    pub fn max_elapsed(mut self, total: Option<Duration>) -> Self {
        self.max_elapsed = total;
        self
    }

    /// The same policy without a time limit, for loops that must go on until they succeed or are stopped (releasing
    /// a claim, re-registering a session).
    #[must_use]
    pub fn unbounded(self) -> Self {
        self.max_elapsed(None)
    }

    /// The back-off for `backon`'s `Retryable::retry`.
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .without_max_times()
            .with_total_delay(self.max_elapsed)
    }

    /// The successive delays of this policy (for loops that sleep between attempts themselves).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        backon::BackoffBuilder::build(self.backoff())
    }
}

impl RetryPolicy {
    /// Tries again after the policy's delays while an attempt fails with an error `transient` accepts: `error` is the
    /// failure of the attempt already made, `on_retry` hears of each failure before its delay. Gives the last error
    /// once the delays run out or `stop` completes.
    pub(crate) async fn retry_after<T, E, Fut>(
        &self,
        mut error: E,
        mut attempt: impl FnMut() -> Fut,
        transient: impl Fn(&E) -> bool,
        mut on_retry: impl FnMut(&E, Duration),
        stop: impl Future<Output = ()>,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        tokio::pin!(stop);
        for delay in self.delays() {
            on_retry(&error, delay);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut stop => return Err(error),
            }
            match attempt().await {
                Err(again) if transient(&again) => error = again,
                result => return result,
            }
        }
        Err(error)
    }
}

/// A condition that lasts, such as the backend being out of space, logged once per episode: an error when it begins,
/// debug lines while it lasts, and an info line when it ends.
#[derive(Debug, Default)]
pub(crate) struct Episode(AtomicBool);

impl Episode {
    /// The condition holds (again): logs `what` and `error` as an error if this begins an episode.
    pub(crate) fn occurred(&self, what: &str, error: &dyn Display) {
        if self.0.swap(true, Ordering::AcqRel) {
            tracing::debug!(%error, "{what} (still)");
        } else {
            tracing::error!(%error, "{what}");
        }
    }

    /// The condition is over (a cheap check while none is going on): logs `message` if an episode ends.
    pub(crate) fn ended(&self, message: &str) {
        if self.0.load(Ordering::Acquire) && self.0.swap(false, Ordering::AcqRel) {
            tracing::info!("{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_cap_and_stop_at_the_total() {
        let policy = RetryPolicy::default()
            .min_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1))
            .max_elapsed(Some(Duration::from_secs(10)));
        let delays: Vec<_> = policy.delays().collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] < Duration::from_millis(200));
        assert!(delays.iter().all(|d| *d < Duration::from_secs(2)));
        let total: Duration = delays.iter().sum();
        assert!(total <= Duration::from_secs(10), "{total:?}");
        assert!(delays.len() >= 5, "{delays:?}");
        // Jitter: two policies do not produce the same sequence.
        let again: Vec<_> = policy.delays().collect();
        assert_ne!(delays, again);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_retries_transient_errors_until_success_or_a_lasting_error() {
        let policy = RetryPolicy::default();
        let mut attempts = 0;
        let transient = |e: &&str| *e == "transient";
        let result: Result<(), &str> = policy
            .retry_after(
                "transient",
                || {
                    attempts += 1;
                    std::future::ready(if attempts < 3 {
                        Err("transient")
                    } else {
                        Err("lasting")
                    })
                },
                transient,
                |_, _| {},
                std::future::pending(),
            )
            .await;
        assert_eq!((result, attempts), (Err("lasting"), 3));
        let mut retries = 0;
        let result: Result<u8, &str> = policy
            .retry_after(
                "transient",
                || std::future::ready(Ok(7)),
                transient,
                |_, _| retries += 1,
                std::future::pending(),
            )
            .await;
        assert_eq!((result, retries), (Ok(7), 1));
        // Runs out after the policy's time, and stops at once when told.
        let result: Result<(), &str> = policy
            .retry_after(
                "transient",
                || std::future::ready(Err("transient")),
                transient,
                |_, _| {},
                std::future::pending(),
            )
            .await;
        assert_eq!(result, Err("transient"));
        let result: Result<(), &str> = policy
            .retry_after(
                "transient",
                || std::future::ready(Ok(())),
                transient,
                |_, _| {},
                std::future::ready(()),
            )
            .await;
        assert_eq!(result, Err("transient"));
    }

    #[test]
    fn an_unbounded_policy_never_runs_out() {
        assert_eq!(
            RetryPolicy::default()
                .unbounded()
                .delays()
                .take(1000)
                .count(),
            1000
        );
    }
}
