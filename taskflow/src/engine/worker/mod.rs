//! Workers: claim the messages of the routes they serve, run steps and callbacks, commit transitions.
//!
//! A worker is a scheduler loop (feed events in, due messages out) plus up to `concurrency` tokio tasks that claim and
//! drive messages: each takes the next due message when it is done with one, and ends when none is due. A claimed
//! task is driven step after step by the same tokio task while the next step is due at once and runnable here (its
//! claim is kept, and the next step is marked started in the same commit that records the previous one).
//!
//! Modules, in the order a message meets them:
//!
//! | Module | Concern |
//! |---|---|
//! | this one | [`WorkerBuilder`] and the [`Worker`] handle: start, statistics, idle, shutdown |
//! | `shared` | the state the scheduler and the drivers of one worker share |
//! | `pending` | the messages a worker knows, ordered by due time, then arrival |
//! | `scheduler` | the loop that applies feed events and starts driver tasks; a driver task's claim and panic guard |
//! | `driver` | drives one claimed task: plan, start, run, finish, continue with the next step or the callback |
//! | `attempt` | one step attempt: params rendered, the executor's future under timeouts, cancellation and shutdown |
//! | `draft` | a changed copy of the committed document, written into a recycled revision's buffers |
//! | `commit` | commits under the claim, retried while the backend is unavailable; oversized changes fail |
//! | `recovery` | a stored document that does not parse: the task fails, keeping the raw document |

mod attempt;
mod commit;
mod draft;
mod driver;
#[cfg(test)]
mod fixtures;
mod pending;
mod recovery;
mod scheduler;
mod shared;

#[cfg(feature = "test-util")]
pub(crate) use scheduler::DRIVER_PANICS;

use super::Engine;
use crate::backend::WorkerSpec;
use crate::error::{RegistryError, Result};
use shared::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Configures and starts a [`Worker`].
#[must_use = "a worker builder does nothing until `start`"]
pub struct WorkerBuilder {
    engine: Engine,
    node: String,
    queues: Vec<String>,
    concurrency: usize,
    executors: Option<Vec<String>>,
    callbacks: Option<Vec<String>>,
    shutdown_grace: Duration,
}

impl WorkerBuilder {
    /// A builder with the defaults: node `$HOSTNAME` (else `local`), queue `default`, concurrency 64, every
    /// registered executor and callback, a 10 s shutdown grace.
    pub(super) fn new(engine: Engine) -> Self {
        Self {
            engine,
            node: std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "local".to_owned()),
            queues: vec![crate::model::Route::DEFAULT_QUEUE.to_owned()],
            concurrency: 64,
            executors: None,
            callbacks: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// The node name: steps pinned to this node run here (default: `$HOSTNAME`, else `local`).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }

    /// The queues served (default: `default`).
    pub fn queues<S: Into<String>>(mut self, queues: impl IntoIterator<Item = S>) -> Self {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// How many steps and callbacks run at once (default 64).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Only run these executors (default: every registered step). Other steps wait for a capable worker.
    pub fn executors<S: Into<String>>(mut self, executors: impl IntoIterator<Item = S>) -> Self {
        self.executors = Some(executors.into_iter().map(Into::into).collect());
        self
    }

    /// Only run these callbacks (default: every registered callback).
    pub fn callbacks<S: Into<String>>(mut self, callbacks: impl IntoIterator<Item = S>) -> Self {
        self.callbacks = Some(callbacks.into_iter().map(Into::into).collect());
        self
    }

    /// How long [`Worker::shutdown`] lets running steps finish before dropping them (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Opens a session on the backend and starts serving.
    pub async fn start(self) -> Result<Worker> {
        let registry = &self.engine.inner.registry;
        let spec = WorkerSpec {
            worker_id: format!("{}-{}", self.node, uuid::Uuid::new_v4().simple()),
            node: self.node,
            queues: self.queues,
            executors: self
                .executors
                .unwrap_or_else(|| registry.step_names().map(str::to_owned).collect()),
            callbacks: self
                .callbacks
                .unwrap_or_else(|| registry.callback_names().map(str::to_owned).collect()),
        };
        let mut problems = Vec::new();
        for executor in &spec.executors {
            if registry.step(executor).is_none() {
                problems.push(format!(
                    "the worker lists executor `{executor}`, which is not registered"
                ));
            }
        }
        for callback in &spec.callbacks {
            if registry.callback(callback).is_none() {
                problems.push(format!(
                    "the worker lists callback `{callback}`, which is not registered"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(RegistryError { problems }.into());
        }
        let (session, feed) = self.engine.inner.backend.open_session(spec.clone()).await?;
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(
            self.engine,
            spec,
            session,
            self.concurrency,
            retry_tx,
        ));
        tracing::info!(worker = %shared.spec.worker_id, node = %shared.spec.node, queues = ?shared.spec.queues,
            backend = shared.engine.inner.backend.name(), "worker started");
        let scheduler = tokio::spawn(scheduler::schedule(Arc::clone(&shared), feed, retry_rx));
        Ok(Worker {
            shared,
            scheduler,
            grace: self.shutdown_grace,
        })
    }
}

/// A running worker. Stop it with [`shutdown`](Self::shutdown); dropping it without shutdown aborts nothing but
/// leaves it running until the runtime ends.
#[must_use = "dropping a worker leaves it running until the runtime ends: stop it with `shutdown`"]
pub struct Worker {
    shared: Arc<Shared>,
    scheduler: tokio::task::JoinHandle<()>,
    grace: Duration,
}

impl Worker {
    /// The worker's identity and capabilities.
    pub fn spec(&self) -> &WorkerSpec {
        &self.shared.spec
    }

    /// How many tasks this worker drives now (claiming, running a step or a callback, or committing).
    pub fn running(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// How many of this worker's task drivers panicked. Each one is an engine bug (user code is guarded on its own:
    /// a panicking step or callback fails): the worker logs it (`worker bug`), releases the task's claim so that
    /// another driver takes the task over, and goes on.
    pub fn driver_panics(&self) -> usize {
        self.shared.driver_panics.load(Ordering::Relaxed)
    }

    /// Completes when this worker drives no task (e.g. after a cancel, once the step was dropped).
    pub async fn idle(&self) {
        loop {
            let ended = self.shared.driver_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Stops claiming, lets running steps finish within the grace period, then drops the rest and releases their
    /// claims (their messages go to other workers), and closes the session.
    pub async fn shutdown(self) {
        let grace = self.grace;
        self.shutdown_within(grace).await;
    }

    /// [`shutdown`](Self::shutdown) with an explicit grace period.
    pub async fn shutdown_within(self, grace: Duration) {
        let shared = self.shared;
        shared.stopping.cancel();
        shared.tracker.close();
        if tokio::time::timeout(grace, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(worker = %shared.spec.worker_id, "grace period over: dropping running steps");
            shared.abort.cancel();
            shared.tracker.wait().await;
        }
        let _ = self.scheduler.await;
        if let Err(e) = shared.session.close().await {
            tracing::warn!(worker = %shared.spec.worker_id, error = %e, "closing the session failed");
        }
        tracing::info!(worker = %shared.spec.worker_id, "worker stopped");
    }
}
