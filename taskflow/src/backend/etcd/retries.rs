//! The retries of the backend's own loops (releasing a claim, cleaning up an orphaned claim, re-listing the feed,
//! re-registering after a lost lease, waiting for a task change): the delays of the configured [`RetryPolicy`]
//! without its time limit, as these loops go on until they succeed or their session closes.
//!
//! [`RetryPolicy`]: crate::RetryPolicy

use super::Inner;
use super::error::Fail;
use std::future::Future;
use std::time::Duration;

/// The retries of one loop.
pub(crate) struct Retries {
    delays: Box<dyn Iterator<Item = Duration> + Send>,
}

impl Retries {
    /// Retries with the backend's policy, without a time limit.
    pub(crate) fn new(inner: &Inner) -> Self {
        Self {
            delays: Box::new(inner.config.retry.unbounded().delays()),
        }
    }

    /// Logs why an attempt of `what` failed, then waits for the next attempt. `false` if `stop` came first.
    pub(crate) async fn after(
        &mut self,
        fail: &Fail,
        what: &str,
        stop: impl Future<Output = ()>,
    ) -> bool {
        tracing::debug!(error = %fail, "{what} failed; retrying");
        // An unbounded policy never runs out of delays.
        let Some(delay) = self.delays.next() else {
            return false;
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = stop => false,
        }
    }
}
