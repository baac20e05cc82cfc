//! The state the scheduler and the drivers of one worker share.

use super::pending::Pending;
use crate::backend::{Message, Session, WorkerSpec};
use crate::engine::Engine;
use crate::error::BackendError;
use crate::model::Task;
use crate::retry::Episode;
use crate::sync::lock;
use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A driver running here: its id and the tokens that stop it.
pub(super) struct Running {
    /// The driver's id (a later driver of the same task replaces the entry).
    pub(super) id: u64,
    /// Cancelled when a user cancels the task (a running step gets the cancel grace) or when `void` is.
    pub(super) cancel: CancellationToken,
    /// Cancelled when the session lost its lease: the claim is void and another worker may take the task as soon as
    /// etcd expires the lease, so a running step is dropped at once (no grace).
    pub(super) void: CancellationToken,
}

impl Running {
    /// A new driver's entry: `cancel` is a child of `void`.
    pub(super) fn new(id: u64) -> Self {
        let void = CancellationToken::new();
        Self {
            id,
            cancel: void.child_token(),
            void,
        }
    }
}

/// The state the scheduler and the drivers of one worker share.
pub(super) struct Shared {
    /// The engine the worker belongs to (backend, registry, renderer, back-off, metrics).
    pub(super) engine: Engine,
    /// The worker's identity and capabilities.
    pub(super) spec: WorkerSpec,
    /// The worker's session: its liveness, and the claims it holds.
    pub(super) session: Arc<dyn Session>,
    /// The drivers running here, by task id.
    running: Mutex<HashMap<String, Running>>,
    /// The id of the next driver.
    pub(super) next_driver: AtomicU64,
    /// Notified whenever a driver ends (for `Worker::idle`).
    pub(super) driver_ended: Notify,
    /// How many messages are being claimed or driven here (for `Worker::running`).
    pub(super) active: AtomicUsize,
    /// How many task drivers panicked (for `Worker::driver_panics`).
    pub(super) driver_panics: AtomicUsize,
    /// How many times the session lost its lease (every claim taken before is void).
    pub(super) losses: AtomicUsize,
    /// Set by shutdown: claim nothing more, continue no chain.
    pub(super) stopping: CancellationToken,
    /// Set when the grace period is over: drop running steps.
    pub(super) abort: CancellationToken,
    /// The driver tasks (shutdown waits for them).
    pub(super) tracker: TaskTracker,
    /// One per driver task: at most `concurrency` run at once.
    pub(super) permits: Arc<Semaphore>,
    /// Documents no longer referenced by anyone, kept (up to `concurrency`) so that drafts reuse their buffers.
    spares: Mutex<Vec<Arc<Task>>>,
    /// The worker's concurrency (also the size of the pool of spare documents).
    concurrency: usize,
    /// Messages to look at again later (a claim failed on a backend error).
    pub(super) retry_tx: mpsc::UnboundedSender<Message>,
    /// The messages this worker knows, filled by the scheduler from the feed, taken by the scheduler and by drivers
    /// that finished their task (which go on with the next due message instead of ending).
    pending: Mutex<Pending>,
    /// The backend refused writes for lack of space (logged once per episode).
    pub(super) out_of_space: Episode,
}

impl Shared {
    /// Logs a failed claim or commit (`what`) that is looked at again later: the backend being out of space once per
    /// episode (as an error that says what to do), anything else as a warning.
    pub(super) fn backend_failed(&self, what: &str, error: &BackendError) {
        if let BackendError::NoSpace { .. } = error {
            let what = format!("{what} refused: the backend is out of space; retrying");
            self.out_of_space.occurred(&what, error);
        } else {
            tracing::warn!(%error, "{what} failed; retrying");
        }
    }

    /// The state of a worker that starts with `concurrency` permits and the session `session`.
    pub(super) fn new(
        engine: Engine,
        spec: WorkerSpec,
        session: Arc<dyn Session>,
        concurrency: usize,
        retry_tx: mpsc::UnboundedSender<Message>,
    ) -> Self {
        Self {
            engine,
            spec,
            session,
            running: Mutex::default(),
            next_driver: AtomicU64::new(0),
            driver_ended: Notify::new(),
            active: AtomicUsize::new(0),
            driver_panics: AtomicUsize::new(0),
            losses: AtomicUsize::new(0),
            stopping: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(concurrency)),
            out_of_space: Episode::default(),
            spares: Mutex::new(Vec::with_capacity(concurrency)),
            concurrency,
            retry_tx,
            pending: Mutex::default(),
        }
    }

    /// A document to recycle as a driver's first draft, if the pool has one.
    pub(super) fn take_spare(&self) -> Option<Arc<Task>> {
        lock(&self.spares).pop()
    }

    /// Gives a driver's spare document back to the pool (dropped if the pool is full).
    pub(super) fn recycle(&self, spare: Arc<Task>) {
        let mut spares = lock(&self.spares);
        if spares.len() < self.concurrency {
            spares.push(spare);
        }
    }

    /// The drivers running here, by task id.
    pub(super) fn running(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        lock(&self.running)
    }

    /// The messages this worker knows.
    pub(super) fn pending(&self) -> MutexGuard<'_, Pending> {
        lock(&self.pending)
    }
}
