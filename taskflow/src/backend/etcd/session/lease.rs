//! Lease keeping: granting the session's lease and registering the worker on it, renewing it every TTL/3, and
//! recovering from its loss (a new lease, a new registration, a resync).

use super::Shared;
use super::driver::Driver;
use crate::backend::FeedEvent;
use crate::backend::etcd::error::Fail;
use crate::backend::etcd::retries::Retries;
use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

impl Shared {
    /// Grants a lease and registers the worker on it.
    pub(super) async fn register(&self) -> Result<i64, Fail> {
        let inner = &self.inner;
        let ttl = self.ttl().as_secs().max(2) as i64;
        let lease = inner.lease_grant(ttl).await?;
        let spec = &serde_json::to_vec(&self.spec).unwrap_or_default();
        let key = &inner.keys.worker(&self.spec.worker_id);
        let put = |mut c: etcd_client::Client| async move {
            let options = PutOptions::new().with_lease(lease);
            c.put(key.as_str(), spec.as_slice(), Some(options)).await
        };
        inner.members.repeatable(put).await?;
        inner.has_space();
        Ok(lease)
    }
}

impl Driver {
    /// Renews the lease, reconnects what broke; returns when to tick next.
    pub(super) async fn on_tick(&mut self) -> Instant {
        let now = Instant::now();
        let ttl = self.shared.ttl();
        let retry = now + self.shared.inner.config.reconnect_delay;
        if now.duration_since(self.renewed) >= ttl {
            self.lost("the lease could not be renewed within its TTL")
                .await;
            return Instant::now() + ttl / 3;
        }
        let inner = Arc::clone(&self.shared.inner);
        let mut next = now + ttl / 3;
        match &mut self.keeper {
            Some((keeper, _)) => {
                if keeper.keep_alive().await.is_ok() {
                    self.sent.get_or_insert(now);
                } else {
                    self.keeper = None;
                    next = retry;
                }
            }
            None => {
                let lease = self.lease;
                let open =
                    |mut c: etcd_client::Client| async move { c.lease_keep_alive(lease).await };
                let limit = inner.config.request_timeout.min(ttl / 3);
                match inner.members.repeatable_within(limit, open).await {
                    Ok(keeper) => {
                        self.renewed = now;
                        self.keeper = Some(keeper);
                    }
                    Err(Fail::LeaseNotFound(_)) => {
                        self.lost("the lease expired").await;
                        return Instant::now() + ttl / 3;
                    }
                    Err(fail) => {
                        tracing::debug!(error = %fail, "lease keep-alive unavailable; retrying");
                        next = retry;
                    }
                }
            }
        }
        if self.watch.is_none() && !self.feed_closed && !self.open_watch().await {
            next = next.min(retry);
        }
        next
    }

    /// The lease is gone: tell the worker (every claim is void), then register again and resync.
    pub(super) async fn lost(&mut self, reason: &str) {
        tracing::warn!(worker = %self.shared.spec.worker_id, reason, "worker session lost its lease");
        self.shared.lease.store(0, Ordering::Release);
        self.send(FeedEvent::Lost(reason.to_owned()));
        let old = self.lease;
        let inner = Arc::clone(&self.shared.inner);
        tokio::spawn(async move {
            let _ = inner.lease_revoke(old).await;
        });
        self.keeper = None;
        self.sent = None;
        self.watch = None;
        let mut retries = Retries::new(&self.shared.inner);
        loop {
            if self.shared.closed.is_cancelled() {
                return;
            }
            match self.shared.register().await {
                Ok(lease) => {
                    self.lease = lease;
                    self.renewed = Instant::now();
                    self.shared.lease.store(lease, Ordering::Release);
                    break;
                }
                Err(fail) => {
                    let closed = self.shared.closed.cancelled();
                    if !retries
                        .after(&fail, "re-registering the worker", closed)
                        .await
                    {
                        return;
                    }
                }
            }
        }
        tracing::info!(worker = %self.shared.spec.worker_id, lease = self.lease, "worker session registered again");
        self.resync().await;
    }
}

/// The next keep-alive answer (never, without a keeper).
pub(super) async fn next_keep_alive(
    keeper: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> Result<Option<etcd_client::LeaseKeepAliveResponse>, etcd_client::Error> {
    match keeper {
        Some((_, stream)) => stream.message().await,
        None => std::future::pending().await,
    }
}
