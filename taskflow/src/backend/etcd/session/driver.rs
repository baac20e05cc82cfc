//! The session driver: one tokio task per session that turns the feed watch into feed events, re-listing after a
//! compaction and after the keeper registered the worker again (the lease is kept by its own task, see `lease.rs`,
//! so that nothing here can delay a renewal or the declaration of a loss).

use super::Shared;
use super::feed::{View, cancelled_at};
use crate::backend::FeedEvent;
use crate::backend::etcd::error::Fail;
use crate::backend::etcd::retries::Retries;
use etcd_client::{WatchOptions, WatchResponse, WatchStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Turns the watch into feed events.
pub(super) struct Driver {
    pub(super) shared: Arc<Shared>,
    pub(super) feed: mpsc::UnboundedSender<FeedEvent>,
    pub(super) view: View,
    /// Every change up to this revision has been applied.
    pub(super) revision: i64,
    pub(super) watch: Option<WatchStream>,
    /// The worker dropped its feed.
    pub(super) feed_closed: bool,
}

/// What woke the driver up.
enum Wake {
    Closed,
    Watch(Result<Option<WatchResponse>, etcd_client::Error>),
    Registered,
    Tick,
    FeedClosed,
}

impl Driver {
    /// Runs until the session is closed.
    pub(super) async fn run(mut self) {
        let mut tick = Instant::now();
        let reconnect_delay = self.shared.inner.config.reconnect_delay;
        loop {
            // Whatever closed the watch (a break, a cancellation, a re-list after a compaction or a new lease whose
            // reopening failed), it is reopened at the next tick.
            if self.watch.is_none() && !self.feed_closed {
                tick = tick.min(Instant::now() + reconnect_delay);
            }
            let wake = tokio::select! {
                biased;
                () = self.shared.closed.cancelled() => Wake::Closed,
                () = self.feed.closed(), if !self.feed_closed => Wake::FeedClosed,
                message = next_watch(&mut self.watch) => Wake::Watch(message),
                () = self.shared.registered.notified() => Wake::Registered,
                () = tokio::time::sleep_until(tick) => Wake::Tick,
            };
            match wake {
                Wake::Closed => break,
                Wake::FeedClosed => {
                    // The worker stopped listening (it is shutting down): no more events, but its claims stay
                    // valid (its running steps may still commit) until it closes the session or drops it.
                    self.feed_closed = true;
                    self.watch = None;
                }
                Wake::Watch(Ok(Some(resp))) => self.on_watch(resp).await,
                Wake::Watch(result) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "the feed watch broke; reconnecting");
                    }
                    self.watch = None;
                    tick = tick.min(Instant::now() + reconnect_delay);
                }
                Wake::Registered => {
                    // A new lease after a lost one: the claims of the old one went with it; start from a snapshot.
                    self.watch = None;
                    self.resync().await;
                }
                Wake::Tick => {
                    tick = Instant::now() + reconnect_delay;
                    if self.watch.is_some() || self.feed_closed || self.open_watch().await {
                        // Nothing to reconnect: sleep until a stream breaks.
                        tick = Instant::now() + Duration::from_secs(3600);
                    }
                }
            }
        }
    }

    /// Sends an event to the worker (gone once it dropped its feed).
    pub(super) fn send(&self, event: FeedEvent) {
        let _ = self.feed.send(event);
    }

    /// Opens the feed watch from the next revision. `false` if etcd cannot be reached.
    pub(super) async fn open_watch(&mut self) -> bool {
        let inner = Arc::clone(&self.shared.inner);
        let (start, end) = inner.keys.feed_range();
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(self.revision + 1)
            .with_progress_notify();
        match inner.watch(start.as_bytes(), &options).await {
            Ok(stream) => {
                self.watch = Some(stream);
                true
            }
            Err(fail) => {
                tracing::debug!(error = %fail, "cannot open the feed watch; retrying");
                false
            }
        }
    }

    /// Applies one watch response: its events become feed events; a compaction makes the session re-list.
    async fn on_watch(&mut self, resp: WatchResponse) {
        if resp.compact_revision() > 0 {
            tracing::info!(
                compacted = resp.compact_revision(),
                "the feed fell behind a compaction; re-listing"
            );
            self.watch = None;
            self.resync().await;
            return;
        }
        if resp.canceled() {
            tracing::debug!(
                reason = resp.cancel_reason(),
                "the feed watch was cancelled; reconnecting"
            );
            self.watch = None;
            return;
        }
        let mut out = Vec::new();
        let inner = Arc::clone(&self.shared.inner);
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            self.view
                .apply(&inner, event.event_type(), kv, key, &mut out);
            self.revision = self.revision.max(kv.mod_revision());
        }
        if resp.events().is_empty() && !resp.created() {
            // A progress notification: every change up to the header revision was sent.
            self.revision = self.revision.max(resp.header().map_or(0, |h| h.revision()));
        }
        for event in out {
            tracing::trace!(worker = %self.shared.spec.worker_id, ?event, "feed");
            self.send(event);
        }
    }

    /// Re-reads the routes' messages and the claims, sends a snapshot, and watches from there. The live cancellation
    /// signals of runs claimed before them are sent again after the snapshot: the watch events that told of them may
    /// be among those missed, and such a run may be here.
    pub(super) async fn resync(&mut self) {
        let inner = Arc::clone(&self.shared.inner);
        let mut retries = Retries::new(&inner);
        loop {
            if self.shared.closed.is_cancelled() {
                return;
            }
            let loaded = async {
                let (revision, claims) = self.view.load(&inner).await?;
                Ok::<_, Fail>((revision, cancelled_at(&inner, revision, &claims).await?))
            };
            match loaded.await {
                Ok((revision, cancelled)) => {
                    self.revision = revision;
                    self.send(FeedEvent::Snapshot(self.view.claimable()));
                    for task_id in cancelled {
                        self.send(FeedEvent::Cancel { task_id });
                    }
                    let _ = self.open_watch().await;
                    return;
                }
                Err(fail) => {
                    let closed = self.shared.closed.cancelled();
                    if !retries.after(&fail, "re-listing the feed", closed).await {
                        return;
                    }
                }
            }
        }
    }
}

/// The next watch response (never, without a watch).
async fn next_watch(
    watch: &mut Option<WatchStream>,
) -> Result<Option<WatchResponse>, etcd_client::Error> {
    match watch {
        Some(stream) => stream.message().await,
        None => std::future::pending().await,
    }
}
