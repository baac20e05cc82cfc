//! The one retry policy for transport errors: exponential back-off with jitter, capped, for a bounded time.

use backon::ExponentialBuilder;
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
