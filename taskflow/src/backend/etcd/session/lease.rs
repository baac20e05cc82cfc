//! Lease keeping: granting the session's lease and registering the worker on it; the keeper task, which renews it and
//! declares it lost before etcd can expire it; recovering from its loss (a new lease, a new registration, a resync).
//!
//! The rule (ARCHITECTURE.md, "Lease safety"): etcd expires a lease no earlier than TTL after it received the last
//! renewal, hence no earlier than TTL after that renewal was *sent*. The keeper counts the lease as lost at
//! [`Timing::lost_after`] (3/4 TTL) after the send time of the last renewal etcd confirmed, on a timer of its own, and
//! the worker drops its running steps when told (`FeedEvent::Lost`): a quarter of the TTL before another worker can
//! claim them.

use super::Shared;
use crate::backend::FeedEvent;
use crate::backend::etcd::error::Fail;
use crate::backend::etcd::retries::Retries;
use etcd_client::PutOptions;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The timing of a lease, all derived from its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// The TTL etcd is asked for (whole seconds).
    pub(crate) ttl: Duration,
    /// A renewal is sent this long after the send time of the last confirmed one (TTL/6): five more chances before
    /// the loss threshold.
    pub(crate) renew_every: Duration,
    /// How long a renewal waits for the member in use, then for every member at once (TTL/6 each, so a renewal
    /// takes at most TTL/3): a member that does not answer is left well before the threshold.
    pub(crate) attempt_timeout: Duration,
    /// The lease counts as lost this long after the send time of the last confirmed renewal (3/4 TTL), leaving a
    /// quarter of the TTL for the worker to drop its steps and for clock drift before etcd can expire it.
    pub(crate) lost_after: Duration,
}

impl Timing {
    /// The shortest TTL accepted: etcd's own minimum lease TTL is 1.5 × its `--election-timeout` (1 s by default).
    pub(crate) const MIN_TTL: Duration = Duration::from_secs(2);
    /// The shortest TTL with which a healthy worker keeps its lease through an etcd leader election with etcd's
    /// defaults: the election takes up to 2 × `--election-timeout` (2 s), the search for the new leader up to 0.5 s
    /// more, and that must fit between the renewal due (TTL/6) and the loss threshold (3/4 TTL): 7/12 TTL ≥ 2.5 s.
    pub(crate) const SAFE_TTL: Duration = Duration::from_secs(5);

    /// The timing of a lease of `ttl` (rounded down to whole seconds, etcd's unit).
    pub(crate) fn of(ttl: Duration) -> Self {
        let ttl = Duration::from_secs(ttl.as_secs());
        Self {
            ttl,
            renew_every: ttl / 6,
            attempt_timeout: ttl / 6,
            lost_after: ttl * 3 / 4,
        }
    }
}

impl Shared {
    /// Grants a lease and registers the worker on it.
    pub(super) async fn register(&self) -> Result<i64, Fail> {
        let inner = &self.inner;
        let ttl = self.timing.ttl.as_secs() as i64;
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

/// The keeper task: renews the lease, declares it lost at its deadline, and registers again after a loss.
pub(super) struct Keeper {
    pub(super) shared: Arc<Shared>,
    /// The worker's feed (for `Lost`).
    pub(super) feed: mpsc::UnboundedSender<FeedEvent>,
    pub(super) lease: i64,
    /// When the last renewal (or the grant) that etcd confirmed was sent: the lease lives at least TTL from then.
    pub(super) confirmed: Instant,
}

/// The outcome of one renewal.
enum Renewal {
    /// etcd renewed the lease; the request was sent then.
    Confirmed(Instant),
    /// etcd no longer knows the lease.
    Expired,
    /// No answer (no member reached, or none within the attempt timeout).
    Failed(Fail),
}

impl Keeper {
    /// Runs until the session is closed.
    pub(super) async fn run(mut self) {
        let timing = self.shared.timing;
        let mut next = self.confirmed + timing.renew_every;
        loop {
            let deadline = self.confirmed + timing.lost_after;
            let renewal = tokio::select! {
                biased;
                () = self.shared.closed.cancelled() => return,
                // A timer of its own: the loss is declared at the deadline, even while a renewal is in flight.
                () = tokio::time::sleep_until(deadline) => {
                    let reason = format!(
                        "no renewal confirmed within {:?} (3/4 of the lease TTL)",
                        timing.lost_after
                    );
                    self.lost(&reason).await;
                    next = self.confirmed + timing.renew_every;
                    continue;
                }
                renewal = self.renew_at(next) => renewal,
            };
            match renewal {
                Renewal::Confirmed(sent) => {
                    self.confirmed = sent;
                    next = sent + timing.renew_every;
                }
                Renewal::Expired => {
                    self.lost("etcd says the lease expired").await;
                    next = self.confirmed + timing.renew_every;
                }
                Renewal::Failed(fail) => {
                    tracing::debug!(error = %fail, "lease renewal failed; retrying");
                    let pause = self.shared.inner.config.reconnect_delay;
                    next = Instant::now() + pause.min(timing.renew_every);
                }
            }
        }
    }

    /// Renews the lease at `at`: one keep-alive on a fresh stream (opening it sends a keep-alive and waits for its
    /// answer) to the member in use; if it fails or does not answer within the attempt timeout, to every member at
    /// once (the first answer counts), within the attempt timeout again. So a renewal never waits for the search for
    /// a new leader, nor for a member that holds requests: any member with a leader renews it.
    async fn renew_at(&self, at: Instant) -> Renewal {
        tokio::time::sleep_until(at).await;
        let lease = self.lease;
        let sent = Instant::now();
        let open = |mut c: etcd_client::Client| async move { c.lease_keep_alive(lease).await };
        let members = &self.shared.inner.members;
        let timeout = self.shared.timing.attempt_timeout;
        let first = match tokio::time::timeout(timeout, open(members.client())).await {
            Ok(answer) => answer.map_err(Fail::from),
            Err(_) => Err(Fail::Unavailable(
                format!("no keep-alive answer within {timeout:?}").into(),
            )),
        };
        let answer = match first {
            Err(fail @ Fail::Unavailable(_)) => {
                tracing::debug!(lease, error = %fail, "lease renewal: the member in use failed; trying every member");
                members.on_any_within(timeout, open).await
            }
            answer => answer,
        };
        match answer {
            Ok(_) => {
                tracing::debug!(lease, took = ?sent.elapsed(), "lease renewed");
                Renewal::Confirmed(sent)
            }
            Err(Fail::LeaseNotFound(_)) => Renewal::Expired,
            Err(fail) => Renewal::Failed(fail),
        }
    }

    /// The lease is gone: tell the worker (every claim is void), then register again and have the feed resync.
    async fn lost(&mut self, reason: &str) {
        let swapped =
            self.shared
                .lease
                .compare_exchange(self.lease, 0, Ordering::AcqRel, Ordering::Acquire);
        if swapped.is_err() {
            // The session is being closed (its lease was taken to be revoked).
            return;
        }
        tracing::warn!(worker = %self.shared.spec.worker_id, reason, "worker session lost its lease");
        let _ = self.feed.send(FeedEvent::Lost(reason.to_owned()));
        let old = self.lease;
        let inner = Arc::clone(&self.shared.inner);
        tokio::spawn(async move {
            let _ = inner.lease_revoke(old).await;
        });
        let mut retries = Retries::new(&self.shared.inner);
        loop {
            if self.shared.closed.is_cancelled() {
                return;
            }
            let sent = Instant::now();
            match self.shared.register().await {
                Ok(lease) => {
                    self.lease = lease;
                    self.confirmed = sent;
                    self.shared.lease.store(lease, Ordering::Release);
                    // Closed meanwhile: `close` found no lease to revoke, so this one is revoked here.
                    if self.shared.closed.is_cancelled()
                        && self.shared.lease.swap(0, Ordering::AcqRel) == lease
                    {
                        let _ = self.shared.inner.lease_revoke(lease).await;
                        return;
                    }
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
        self.shared.registered.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::Timing;
    use std::time::Duration;

    #[test]
    fn the_loss_threshold_leaves_a_quarter_of_the_ttl() {
        let timing = Timing::of(Duration::from_millis(3_900));
        assert_eq!(
            timing.ttl,
            Duration::from_secs(3),
            "whole seconds, rounded down"
        );
        assert_eq!(timing.renew_every, Duration::from_millis(500));
        assert_eq!(timing.attempt_timeout, Duration::from_millis(500));
        assert_eq!(timing.lost_after, Duration::from_millis(2_250));
        let safe = Timing::of(Timing::SAFE_TTL);
        // An election of 2 s plus 0.5 s to find the new leader fits between a renewal due and the threshold.
        assert!(safe.lost_after - safe.renew_every >= Duration::from_millis(2_500));
    }
}
