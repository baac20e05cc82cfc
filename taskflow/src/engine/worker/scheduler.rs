//! The scheduler: feed events in, due messages out to driver tasks, within the worker's concurrency.

use super::attempt::panic_message;
use super::driver::Driver;
use super::pending::Pending;
use super::shared::Shared;
use crate::backend::{FeedEvent, Message};
use crate::time::until;
use chrono::Utc;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;

/// How many queued feed events the scheduler applies in one go.
const FEED_BATCH: usize = 256;

/// The scheduler loop: applies feed events to the pending list and, within the concurrency limit, starts a driver
/// task for a due message when a permit is free (a running driver takes further due messages itself).
pub(super) async fn schedule(
    shared: Arc<Shared>,
    mut feed: mpsc::UnboundedReceiver<FeedEvent>,
    mut retry_rx: mpsc::UnboundedReceiver<Message>,
) {
    loop {
        let mut blocked = false;
        let now = Utc::now();
        let sleep = {
            let mut pending = shared.pending();
            while !shared.stopping.is_cancelled()
                && pending.next_wake().is_some_and(|wake| wake <= now)
            {
                match Arc::clone(&shared.permits).try_acquire_owned() {
                    Ok(permit) => {
                        if let Some(message) = pending.pop_due(now) {
                            launch(&shared, message, permit);
                        }
                    }
                    Err(_) => {
                        blocked = true;
                        break;
                    }
                }
            }
            pending.next_wake().map(until)
        };
        tokio::select! {
            biased;
            () = shared.stopping.cancelled() => break,
            event = feed.recv() => match event {
                Some(event) => {
                    let mut pending = shared.pending();
                    apply(&shared, &mut pending, event);
                    // Whatever else arrived meanwhile, in one go (bounded, so that launching is not held up).
                    for _ in 0..FEED_BATCH {
                        let Ok(event) = feed.try_recv() else { break };
                        apply(&shared, &mut pending, event);
                    }
                }
                None => {
                    tracing::warn!(worker = %shared.spec.worker_id, "feed closed");
                    break;
                }
            },
            Some(message) = retry_rx.recv() => {
                // Unless the feed told of a newer message for the task meanwhile, look again a second later.
                let mut pending = shared.pending();
                if !pending.contains(&message.task_id) {
                    let later = Utc::now() + chrono::Duration::seconds(1);
                    pending.upsert_after(&shared.spec, message, Some(later));
                }
            }
            permit = Arc::clone(&shared.permits).acquire_owned(), if blocked => {
                let next = shared.pending().pop_due(Utc::now());
                if let (Ok(permit), Some(message)) = (permit, next) {
                    launch(&shared, message, permit);
                }
            }
            () = tokio::time::sleep(sleep.unwrap_or(Duration::ZERO)), if sleep.is_some() && !blocked => {}
        }
    }
    // Shutting down: launch nothing more, but keep stopping cancelled (or lost) steps until every driver has ended.
    loop {
        tokio::select! {
            biased;
            () = shared.tracker.wait() => break,
            event = feed.recv() => match event {
                Some(event @ (FeedEvent::Cancel { .. } | FeedEvent::Lost(_))) => apply(&shared, &mut shared.pending(), event),
                Some(_) => {}
                None => break,
            },
        }
    }
}

/// Applies a feed event: to the pending messages, or to the running drivers (a cancel, a lost session).
fn apply(shared: &Shared, pending: &mut Pending, event: FeedEvent) {
    match event {
        FeedEvent::Snapshot(messages) => {
            *pending = Pending::default();
            for message in messages {
                pending.upsert(&shared.spec, message);
            }
        }
        FeedEvent::Upsert(message) => pending.upsert(&shared.spec, message),
        FeedEvent::Remove { task_id } => pending.remove(&task_id),
        FeedEvent::Cancel { task_id } => {
            if let Some(running) = shared.running().get(&task_id) {
                tracing::info!(task_id, "cancel received: stopping the step");
                running.cancel.cancel();
            }
        }
        FeedEvent::Lost(reason) => {
            // Every claim is void: another worker may take these tasks as soon as the lease expires, so their steps
            // are dropped now, without the cancel grace (the session says so before the lease can expire).
            tracing::error!(worker = %shared.spec.worker_id, reason, "session lost: dropping every running step");
            shared.losses.fetch_add(1, Ordering::AcqRel);
            for running in shared.running().values() {
                running.void.cancel();
            }
        }
    }
}

/// How many task drivers panicked in this process, for the test support (`test_util::driver_panics`).
#[cfg(feature = "test-util")]
pub(crate) static DRIVER_PANICS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Spawns a tokio task that claims and drives the message, then — holding the same concurrency permit — the next due
/// messages, until none is due.
fn launch(shared: &Arc<Shared>, message: Message, permit: OwnedSemaphorePermit) {
    let shared = Arc::clone(shared);
    shared.tracker.clone().spawn(async move {
        let mut message = message;
        loop {
            let span = tracing::info_span!("task", task_id = %message.task_id);
            claim_and_drive(&shared, message).instrument(span).await;
            if shared.stopping.is_cancelled() {
                break;
            }
            let next = shared.pending().pop_due(Utc::now());
            match next {
                Some(next) => message = next,
                None => break,
            }
        }
        drop(permit);
    });
}

/// Counts a message being claimed or driven (see `Worker::running`) while it lives.
struct Active<'a>(&'a Shared);

impl<'a> Active<'a> {
    /// Counts one more.
    fn new(shared: &'a Shared) -> Self {
        shared.active.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.driver_ended.notify_waiters();
    }
}

/// Claims a message and drives its task.
async fn claim_and_drive(shared: &Arc<Shared>, message: Message) {
    let _active = Active::new(shared);
    let losses = shared.losses.load(Ordering::Acquire);
    let claimed = match shared.session.claim(&message).await {
        Ok(Some(claimed)) => {
            shared
                .out_of_space
                .ended("the backend accepts writes again");
            claimed
        }
        Ok(None) => return,
        Err(e) => {
            shared.backend_failed("claim", &e);
            let _ = shared.retry_tx.send(message);
            return;
        }
    };
    // Every user code path is panic-guarded; should the engine itself panic, give the claim back rather than hold
    // it until the session ends.
    let token = claimed.token.clone();
    let driven = AssertUnwindSafe(Driver::start(Arc::clone(shared), message, claimed, losses))
        .catch_unwind();
    if let Err(panic) = driven.await {
        tracing::error!(panic = %panic_message(&panic), "worker bug: a task driver panicked; releasing its claim");
        shared.driver_panics.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "test-util")]
        DRIVER_PANICS.fetch_add(1, Ordering::Relaxed);
        shared.running().remove(&token.task_id);
        shared.driver_ended.notify_waiters();
        let _ = shared.session.release(&token).await;
    }
}
