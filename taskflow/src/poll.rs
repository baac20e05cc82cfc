//! Long polling: run a check until it says done, at an interval, stopping when the step is cancelled.

use crate::step::StepError;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    /// Finished with a value: stop polling.
    Done(T),
    /// Not yet: poll again after the interval.
    Pending,
}

/// Calls `check` at once and then every `interval` until it returns [`Poll::Done`] or an error, or until `cancel`
/// fires (then fails with a non-retryable "cancelled" error). The reference's `LoopDoFunc`.
///
/// ```
/// # use taskflow::poll::{poll_until, Poll};
/// # use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut calls = 0;
/// let token = taskflow::CancellationToken::new();
/// let n = poll_until(&token, Duration::from_millis(1), || {
///     calls += 1;
///     let n = calls;
///     async move { Ok(if n == 3 { Poll::Done(n) } else { Poll::Pending }) }
/// })
/// .await
/// .unwrap();
/// assert_eq!(n, 3);
/// # }
/// ```
pub async fn poll_until<T, F, Fut>(
    cancel: &CancellationToken,
    interval: Duration,
    mut check: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, StepError>>,
{
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(StepError::fatal("polling cancelled")),
            result = check() => {
                if let Poll::Done(value) = result? {
                    return Ok(value);
                }
            }
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(StepError::fatal("polling cancelled")),
            () = tokio::time::sleep(interval) => {}
        }
    }
}
