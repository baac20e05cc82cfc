//! Worker sessions: the lease (renewed every TTL/6, counted lost 3/4 TTL after the last confirmed renewal), the claims
//! on it, and the feed (one watch).
//!
//! * `mod.rs`: opening a session, the [`Session`] handle, closing it.
//! * `lease.rs`: granting and renewing the lease (the keeper task), registering the worker, recovering from a lost
//!   lease.
//! * `driver.rs`: the session's feed task (the feed watch, re-listing after a compaction or a lost lease).
//! * `feed.rs`: the feed view (the messages and claims a session knows) and the events it derives from the watch.
//! * `claim.rs`: the claim transaction, releases, and the clean-up of a claim whose answer was lost.
//! * `retention.rs`: the retention election and its periodic passes.

mod claim;
mod driver;
mod feed;
mod lease;
mod retention;

pub(crate) use lease::Timing;

use super::Inner;
use crate::backend::{ClaimToken, Claimed, FeedEvent, Message, Session, WorkerSpec};
use crate::error::BackendError;
use driver::Driver;
use feed::{ClaimSet, Known, View};
use lease::Keeper;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a session shares between its handle (claims) and its driver (lease, feed).
struct Shared {
    inner: Arc<Inner>,
    spec: WorkerSpec,
    /// The current lease (0 while the session re-registers after losing it).
    lease: AtomicI64,
    closed: CancellationToken,
    /// The messages the feed knows, with their mod revisions.
    known: Known,
    /// The claims the feed knows.
    claimed: ClaimSet,
    /// The lease's timing.
    timing: Timing,
    /// Notified by the keeper when the worker registered again after a lost lease (the feed then resyncs).
    registered: Notify,
}

impl Shared {
    fn lease(&self) -> Result<i64, BackendError> {
        if self.closed.is_cancelled() {
            return Err(BackendError::SessionClosed("session closed".to_owned()));
        }
        match self.lease.load(Ordering::Acquire) {
            0 => Err(BackendError::SessionClosed(
                "session lost its lease; re-registering".to_owned(),
            )),
            lease => Ok(lease),
        }
    }
}

/// Opens a session: lease, worker key, first snapshot, then the driver task.
pub(super) async fn open(
    inner: Arc<Inner>,
    spec: WorkerSpec,
) -> Result<(Arc<EtcdSession>, mpsc::UnboundedReceiver<FeedEvent>), BackendError> {
    let inner_ttl = inner.config.lease_ttl;
    let shared = Arc::new(Shared {
        inner,
        spec,
        lease: AtomicI64::new(0),
        known: Known::default(),
        claimed: ClaimSet::default(),
        closed: CancellationToken::new(),
        timing: Timing::of(inner_ttl),
        registered: Notify::new(),
    });
    let granted = Instant::now();
    let lease = shared.register().await?;
    shared.lease.store(lease, Ordering::Release);
    let (feed, rx) = mpsc::unbounded_channel();
    let mut view = View::new(
        &shared.spec,
        Arc::clone(&shared.known),
        Arc::clone(&shared.claimed),
    );
    let revision = match view.load(&shared.inner).await {
        Ok((revision, _)) => revision,
        Err(fail) => {
            let _ = shared.inner.lease_revoke(lease).await;
            return Err(fail.into());
        }
    };
    let _ = feed.send(FeedEvent::Snapshot(view.claimable()));
    let keeper = Keeper {
        shared: Arc::clone(&shared),
        feed: feed.clone(),
        lease,
        confirmed: granted,
    };
    tokio::spawn(keeper.run());
    let driver = Driver {
        shared: Arc::clone(&shared),
        feed,
        view,
        revision,
        watch: None,
        feed_closed: false,
    };
    tokio::spawn(driver.run());
    if let Some(every) = shared.inner.config.retention_every() {
        tokio::spawn(retention::retention(Arc::clone(&shared), every));
    }
    Ok((Arc::new(EtcdSession { shared }), rx))
}

/// A worker's session on etcd.
pub(super) struct EtcdSession {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl Session for EtcdSession {
    async fn claim(&self, message: &Message) -> Result<Option<Claimed>, BackendError> {
        claim::claim(&self.shared, message).await
    }

    async fn release(&self, token: &ClaimToken) -> Result<(), BackendError> {
        claim::release(&self.shared, token).await
    }

    async fn close(&self) -> Result<(), BackendError> {
        let shared = &self.shared;
        if shared.closed.is_cancelled() {
            return Ok(());
        }
        shared.closed.cancel();
        let lease = shared.lease.swap(0, Ordering::AcqRel);
        if lease != 0 {
            shared.inner.lease_revoke(lease).await?;
        }
        Ok(())
    }
}

impl Drop for EtcdSession {
    /// A session dropped without [`Session::close`] ends too: its lease is revoked (claims released at once).
    fn drop(&mut self) {
        let shared = &self.shared;
        if shared.closed.is_cancelled() {
            return;
        }
        shared.closed.cancel();
        let lease = shared.lease.swap(0, Ordering::AcqRel);
        if let (true, Ok(runtime)) = (lease != 0, tokio::runtime::Handle::try_current()) {
            let inner = Arc::clone(&shared.inner);
            runtime.spawn(async move {
                let _ = inner.lease_revoke(lease).await;
            });
        }
    }
}
