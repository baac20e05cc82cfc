//! The retries of the backend's own loops (releasing a claim, cleaning up an orphaned claim, re-listing the feed,
//! re-registering after a lost lease, waiting for a task change): the delays of the configured [`RetryPolicy`]
//! without its time limit, as these loops go on until they succeed or their session closes. Their failures are logged
//! at debug level, except that etcd running out of space is an error, logged once per episode: from the first write
//! it refused for lack of space to the next write that went through.
//!
//! [`RetryPolicy`]: crate::RetryPolicy

use super::Inner;
use super::error::Fail;
use std::future::Future;
use std::time::Duration;

impl Inner {
    /// Logs that etcd refused a write of `what` for lack of space: an error once per episode, then at debug level.
    pub(crate) fn out_of_space(&self, what: &str, fail: &Fail) {
        self.out_of_space
            .occurred(&format!("{what}: etcd is out of space"), fail);
    }

    /// A write that needed space went through: ends an out-of-space episode.
    pub(crate) fn has_space(&self) {
        self.out_of_space.ended("etcd accepts writes again");
    }
}

/// The retries of one loop.
pub(crate) struct Retries<'a> {
    inner: &'a Inner,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
}

impl<'a> Retries<'a> {
    /// Retries with the backend's policy, without a time limit.
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Self {
            inner,
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
        match fail {
            Fail::NoSpace(_) => self.inner.out_of_space(what, fail),
            _ => tracing::debug!(error = %fail, "{what} failed; retrying"),
        }
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
