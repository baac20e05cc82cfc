//! Workers: claim the messages of the routes they serve, run steps and callbacks, commit transitions.
//!
//! A worker is a scheduler loop (feed events in, due messages out) plus up to `concurrency` tokio tasks that claim and
//! drive messages: each takes the next due message when it is done with one, and ends when none is due. A claimed
//! task is driven step after step by the same tokio task while the next step is due at once and runnable here (its
//! claim is kept, and the next step is marked started in the same commit that records the previous one).

use super::Engine;
use super::machine::{self, Outcome, Plan};
use super::metrics::{StepEnd, StepMetrics};
use crate::FastMap;
use crate::backend::{
    ClaimToken, Claimed, Commit, CorruptTask, FeedEvent, Message, Session, Stored, Transition,
    Work, WorkerSpec,
};
use crate::callback::TaskOutcome;
use crate::context::StepContext;
use crate::error::{BackendError, Result};
use crate::model::{StepStatus, Task, TaskInfo, TaskOptions, TaskStatus};
use crate::sync::lock;
use crate::time::until;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Configures and starts a [`Worker`].
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
            return Err(crate::RegistryError { problems }.into());
        }
        let (session, feed) = self.engine.inner.backend.open_session(spec.clone()).await?;
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            engine: self.engine,
            spec,
            session,
            running: Mutex::default(),
            next_driver: std::sync::atomic::AtomicU64::new(0),
            driver_ended: tokio::sync::Notify::new(),
            active: AtomicUsize::new(0),
            losses: AtomicUsize::new(0),
            stopping: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(self.concurrency)),
            spares: Mutex::new(Vec::with_capacity(self.concurrency)),
            concurrency: self.concurrency,
            retry_tx,
            pending: Mutex::default(),
        });
        tracing::info!(worker = %shared.spec.worker_id, node = %shared.spec.node, queues = ?shared.spec.queues,
            backend = shared.engine.inner.backend.name(), "worker started");
        let scheduler = tokio::spawn(schedule(Arc::clone(&shared), feed, retry_rx));
        Ok(Worker {
            shared,
            scheduler,
            grace: self.shutdown_grace,
        })
    }
}

/// A running worker. Stop it with [`shutdown`](Self::shutdown); dropping it without shutdown aborts nothing but
/// leaves it running until the runtime ends.
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

struct Shared {
    engine: Engine,
    spec: WorkerSpec,
    session: Arc<dyn Session>,
    /// The drivers running here, by task id: (driver id, the driver's cancellation token).
    running: Mutex<FastMap<String, (u64, CancellationToken)>>,
    /// The id of the next driver.
    next_driver: std::sync::atomic::AtomicU64,
    /// Notified whenever a driver ends (for [`Worker::idle`]).
    driver_ended: tokio::sync::Notify,
    /// How many messages are being claimed or driven here (for [`Worker::running`]).
    active: AtomicUsize,
    /// How many times the session lost its lease (every claim taken before is void).
    losses: AtomicUsize,
    /// Set by shutdown: claim nothing more, continue no chain.
    stopping: CancellationToken,
    /// Set when the grace period is over: drop running steps.
    abort: CancellationToken,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    /// Documents no longer referenced by anyone, kept (up to `concurrency`) so that drafts reuse their buffers.
    spares: Mutex<Vec<Arc<Task>>>,
    concurrency: usize,
    /// Messages to look at again later (a claim failed on a backend error).
    retry_tx: mpsc::UnboundedSender<Message>,
    /// The messages this worker knows, filled by the scheduler from the feed, taken by the scheduler and by drivers
    /// that finished their task (which go on with the next due message instead of ending).
    pending: Mutex<Pending>,
}

impl Shared {
    /// A document to recycle as a driver's first draft, if the pool has one.
    fn take_spare(&self) -> Option<Arc<Task>> {
        lock(&self.spares).pop()
    }

    /// Gives a driver's spare document back to the pool (dropped if the pool is full).
    fn recycle(&self, spare: Arc<Task>) {
        let mut spares = lock(&self.spares);
        if spares.len() < self.concurrency {
            spares.push(spare);
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, FastMap<String, (u64, CancellationToken)>> {
        lock(&self.running)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        lock(&self.pending)
    }
}

/// The messages a worker knows, ordered by when to look at them (equally due ones in arrival order).
#[derive(Default)]
struct Pending {
    /// Where each task's message is in `order`.
    by_task: FastMap<String, (DateTime<Utc>, u64)>,
    order: BTreeMap<(DateTime<Utc>, u64), Message>,
    /// Arrival counter (the tie-break of `order`).
    arrivals: u64,
}

impl Pending {
    /// Tracks a message: at its due time if this worker serves its route and can run it, else at the task deadline (to
    /// time the task out: messages with a deadline reach every worker).
    fn upsert(&mut self, spec: &WorkerSpec, message: Message) {
        self.upsert_after(spec, message, None);
    }

    /// [`upsert`](Self::upsert), looking at the message no sooner than `not_before` (the message itself unchanged,
    /// so that a later claim still matches the stored one).
    fn upsert_after(
        &mut self,
        spec: &WorkerSpec,
        message: Message,
        not_before: Option<DateTime<Utc>>,
    ) {
        self.remove(&message.task_id);
        let wake = if spec.serves(&message.route) && spec.can_run(&message.work) {
            Some(message.wake_at())
        } else {
            message.deadline
        };
        let wake = wake.map(|wake| not_before.map_or(wake, |later| wake.max(later)));
        if let Some(wake) = wake {
            self.arrivals += 1;
            let key = (wake, self.arrivals);
            self.by_task.insert(message.task_id.clone(), key);
            self.order.insert(key, message);
        }
    }

    fn remove(&mut self, task_id: &str) {
        if let Some(key) = self.by_task.remove(task_id) {
            self.order.remove(&key);
        }
    }

    fn contains(&self, task_id: &str) -> bool {
        self.by_task.contains_key(task_id)
    }

    fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.order.first_key_value().map(|((wake, _), _)| *wake)
    }

    fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Message> {
        if self.next_wake()? > now {
            return None;
        }
        let (_, message) = self.order.pop_first()?;
        self.by_task.remove(&message.task_id);
        Some(message)
    }
}

/// How many queued feed events the scheduler applies in one go.
const FEED_BATCH: usize = 256;

/// The scheduler loop: applies feed events to the pending list and, within the concurrency limit, starts a driver
/// task for a due message when a permit is free (a running driver takes further due messages itself).
async fn schedule(
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
            if let Some((_, token)) = shared.running().get(&task_id) {
                tracing::info!(task_id, "cancel received: stopping the step");
                token.cancel();
            }
        }
        FeedEvent::Lost(reason) => {
            tracing::error!(worker = %shared.spec.worker_id, reason, "session lost: stopping every running step");
            shared.losses.fetch_add(1, Ordering::AcqRel);
            for (_, token) in shared.running().values() {
                token.cancel();
            }
        }
    }
}

/// How many task drivers panicked in this process: each one is an engine bug (user code is guarded on its own).
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

/// Counts a message being claimed or driven (see [`Worker::running`]) while it lives.
struct Active<'a>(&'a Shared);

impl<'a> Active<'a> {
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
        Ok(Some(claimed)) => claimed,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "claim failed; will look again");
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
        DRIVER_PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shared.running().remove(&token.task_id);
        shared.driver_ended.notify_waiters();
        let _ = shared.session.release(&token).await;
    }
}

/// Why a step attempt did not produce an outcome.
enum Interrupt {
    /// A user cancelled the task (already REVOKED in storage).
    Cancelled,
    /// The task deadline passed.
    TaskTimeout,
    /// The worker shuts down.
    Shutdown,
}

/// Drives one claimed task through as many steps as it can run here in a row.
struct Driver {
    shared: Arc<Shared>,
    token: ClaimToken,
    stored: Stored<Arc<Task>>,
    /// An earlier revision of the document nobody else holds: the next draft reuses its buffers.
    spare: Option<Arc<Task>>,
    message: Message,
    /// The message before `message`, whose buffers the next one reuses.
    spare_message: Option<Message>,
    /// Whether the claim is still held.
    holding: bool,
    /// The current step, when the previous commit already planned and started it.
    started: Option<usize>,
    /// The metrics handles of the last step run (the next step often has the same executor).
    metrics: Option<Arc<StepMetrics>>,
    /// This driver's id (its entry in `Shared::running`).
    id: u64,
    /// `Shared::losses` when the task was claimed.
    losses: usize,
    /// Cancelled when the task is cancelled or the session is lost. Each attempt has its own child token (made when
    /// the step asks for it, see `StepContext`), which the driver cancels when it drops the attempt and which user
    /// code may cancel without touching later attempts.
    cancel: CancellationToken,
}

impl Driver {
    /// Drives a claimed message; `losses` is `Shared::losses` from before the claim.
    async fn start(shared: Arc<Shared>, message: Message, claimed: Claimed, losses: usize) {
        let stored = match claimed.task {
            Ok(stored) => stored,
            Err(corrupt) => return fail_corrupt(&shared, &message, &claimed.token, corrupt).await,
        };
        // Registered before anything is committed, so that a cancel arriving at any point reaches this driver.
        let id = shared
            .next_driver
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cancel = CancellationToken::new();
        shared
            .running()
            .insert(message.task_id.clone(), (id, cancel.clone()));
        // The session lost its lease during the claim: the claim is void.
        if shared.losses.load(Ordering::Acquire) != losses {
            cancel.cancel();
        }
        let spare = shared.take_spare();
        let mut driver = Driver {
            shared,
            token: claimed.token,
            stored,
            spare,
            message,
            spare_message: None,
            holding: true,
            started: None,
            metrics: None,
            id,
            losses,
            cancel,
        };
        driver.drive().await;
        let mut running = driver.shared.running();
        if running
            .get(&driver.token.task_id)
            .is_some_and(|(id, _)| *id == driver.id)
        {
            running.remove(&driver.token.task_id);
        }
        drop(running);
        if let Some(spare) = driver.spare.take() {
            driver.shared.recycle(spare);
        }
        driver.shared.driver_ended.notify_waiters();
    }

    async fn drive(&mut self) {
        loop {
            let next = match self.message.work {
                Work::Step { .. } => self.step().await,
                Work::Callback { .. } => self.callback().await,
            };
            match next {
                Some(message) => {
                    self.spare_message = Some(std::mem::replace(&mut self.message, message));
                }
                None => break,
            }
        }
        if self.holding
            && let Err(e) = self.shared.session.release(&self.token).await
        {
            tracing::warn!(error = %e, "releasing the claim failed (it expires with the session)");
        }
    }

    /// Runs (or times out, or skips) the claimed step; returns the next message to handle here.
    async fn step(&mut self) -> Option<Message> {
        if let Some(index) = self.started.take() {
            return if self.starts_nothing() {
                None
            } else {
                self.run_step(index, true).await
            };
        }
        // A message of a route this worker does not serve is here only to time its task out at the deadline.
        let spec = &self.shared.spec;
        let can_run = spec.serves(&self.message.route) && spec.can_run(&self.message.work);
        let Work::Step { step: name, .. } = &self.message.work else {
            return None;
        };
        let now = Utc::now();
        match machine::plan(&self.stored.value, name, now, can_run) {
            Plan::Release => None,
            Plan::Commit(task) => {
                self.commit_and_continue(Draft::new(*task), false, now)
                    .await
            }
            // Also when a shutdown began meanwhile (during the claim or the commit that started the step).
            Plan::Run(_) if self.starts_nothing() => None,
            Plan::Run(index) => self.run_step(index, false).await,
        }
    }

    /// Whether this driver must start no step: its task was cancelled, its claim lost, or the worker shuts down.
    fn starts_nothing(&self) -> bool {
        self.cancel.is_cancelled() || self.shared.stopping.is_cancelled()
    }

    /// Runs the step at `index`, first marking it started unless the previous commit did.
    async fn run_step(&mut self, index: usize, started: bool) -> Option<Message> {
        if !started {
            let mut started = self.draft();
            machine::start_step(started.edit(), index, Utc::now());
            if self.commit(started, false, false).await != Committed::Applied {
                return None;
            }
            // A cancel or a shutdown that began during that commit: the step stays started, for another run.
            if self.starts_nothing() {
                return None;
            }
        }
        let task = Arc::clone(&self.stored.value);
        let step = &task.steps[index];
        let span = tracing::info_span!("step", step = %step.name, executor = %step.executor, attempt = step.attempt);
        let began = Instant::now();
        let metrics = match self.metrics.take() {
            Some(metrics) if metrics.executor() == step.executor => metrics,
            _ => self
                .shared
                .engine
                .inner
                .metrics
                .step(&task.task_type, &step.executor),
        };
        metrics.started();
        let result = self.attempt(&task, index).instrument(span).await;
        let status = match &result {
            Ok(Outcome::Success(..)) => StepEnd::Success,
            Ok(Outcome::Failure { .. }) => StepEnd::Failure,
            Err(Interrupt::Cancelled) => StepEnd::Revoked,
            Err(Interrupt::TaskTimeout) => StepEnd::Timeout,
            Err(Interrupt::Shutdown) => StepEnd::Interrupted,
        };
        metrics.finished(status, began.elapsed());
        self.metrics = Some(metrics);
        drop(task);
        let mut task = self.draft();
        // One instant ends this step and starts the next one, if the driver continues.
        let now = Utc::now();
        match result {
            Ok(outcome) => {
                if let Outcome::Failure { error, .. } = &outcome {
                    tracing::warn!(step = %task.steps[index].name, error, "step failed");
                }
                // Finishing a step also schedules the next one.
                machine::finish_step(
                    task.edit(),
                    index,
                    outcome,
                    now,
                    &self.shared.engine.inner.backoff,
                );
                self.commit_and_continue(task, false, now).await
            }
            Err(Interrupt::TaskTimeout) => {
                machine::time_out(task.edit(), now);
                self.commit_and_continue(task, true, now).await
            }
            Err(Interrupt::Cancelled | Interrupt::Shutdown) => None,
        }
    }

    /// Renders the params and runs the step future under its timeout, the task deadline, cancellation and shutdown.
    async fn attempt(&self, task: &Arc<Task>, index: usize) -> Result<Outcome, Interrupt> {
        let inner = &self.shared.engine.inner;
        let step = &task.steps[index];
        // A deadline that passed before the step starts (e.g. while the commit that started it was slow) times the
        // task out without running the step.
        let deadline = task.deadline().map(until);
        if deadline == Some(Duration::ZERO) {
            return Err(Interrupt::TaskTimeout);
        }
        // User filters and functions run while rendering: a panic there fails the step like any other.
        let rendered = std::panic::catch_unwind(AssertUnwindSafe(|| {
            inner.renderer.render_params(task, step)
        }));
        let params = match rendered {
            Ok(Ok(params)) => params,
            Ok(Err(error)) => {
                return Ok(Outcome::Failure {
                    error,
                    retryable: false,
                });
            }
            Err(panic) => {
                let error = format!(
                    "step `{}`: rendering its params panicked: {}",
                    step.name,
                    panic_message(&panic)
                );
                return Ok(Outcome::Failure {
                    error,
                    retryable: false,
                });
            }
        };
        let Some(executor) = inner.registry.step(&step.executor) else {
            return Ok(Outcome::Failure {
                error: format!("executor `{}` is not registered", step.executor),
                retryable: false,
            });
        };
        let ctx = StepContext::new(Arc::clone(task), index, params, self.cancel.clone());
        // `run` is called inside the guarded future: a panic before its first `.await` is caught too.
        let future = AssertUnwindSafe(async { executor.run(&ctx).await }).catch_unwind();
        tokio::pin!(future);
        let step_timeout = (step.max_execution_seconds > 0)
            .then(|| Duration::from_secs(u64::from(step.max_execution_seconds)));
        let result = tokio::select! {
            biased;
            result = &mut future => result,
            () = sleep_opt(step_timeout) => {
                ctx.cancel();
                return Ok(Outcome::Failure { error: "step exec timeout".to_owned(), retryable: true });
            }
            () = sleep_opt(deadline) => {
                ctx.cancel();
                return Err(Interrupt::TaskTimeout);
            }
            () = self.cancel.cancelled() => {
                // Cancelled by a user (or the session was lost): a grace period to stop cleanly, then drop.
                let _ = tokio::time::timeout(inner.cancel_grace, &mut future).await;
                return Err(Interrupt::Cancelled);
            }
            () = self.shared.abort.cancelled() => {
                ctx.cancel();
                return Err(Interrupt::Shutdown);
            }
        };
        Ok(match result {
            Ok(Ok(output)) => Outcome::Success(output, ctx.take_writes()),
            Ok(Err(error)) => Outcome::Failure {
                error: error.message().to_owned(),
                retryable: error.is_retryable(),
            },
            Err(panic) => Outcome::Failure {
                error: format!("panic: {}", panic_message(&panic)),
                retryable: false,
            },
        })
    }

    /// Runs the callback of an ended task and records its result.
    async fn callback(&mut self) -> Option<Message> {
        let task = self.draft();
        let pending =
            task.is_terminal() && !task.callback_name.is_empty() && task.callback_result.is_none();
        if !pending {
            return self.commit_and_continue(task, false, Utc::now()).await;
        }
        // The session lost its lease since the claim: the claim is void and another worker runs the callback.
        if self.shared.losses.load(Ordering::Acquire) != self.losses {
            return None;
        }
        let callback = self
            .shared
            .engine
            .inner
            .registry
            .callback(&task.callback_name)?;
        let outcome = TaskOutcome {
            status: task.status,
            error: (task.status != TaskStatus::Success).then(|| task.message.clone()),
            task: Task::clone(&task),
        };
        let span =
            tracing::info_span!("callback", callback = %task.callback_name, status = %task.status);
        let future = AssertUnwindSafe(async { callback.call(&outcome).await })
            .catch_unwind()
            .instrument(span);
        let result = tokio::select! {
            result = future => match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.message().to_owned()),
                Err(panic) => Err(format!("panic: {}", panic_message(&panic))),
            },
            () = self.shared.abort.cancelled() => return None,
        };
        if let Err(error) = &result {
            tracing::warn!(callback = %task.callback_name, error, "callback failed");
        }
        let mut done = task;
        let now = Utc::now();
        machine::record_callback(done.edit(), result, now);
        self.commit_and_continue(done, false, now).await
    }

    /// Commits a new document, changed at `now`. If its next message can run here at once, keeps the claim (marking
    /// a next step started at `now` in the same commit) and returns that message.
    async fn commit_and_continue(
        &mut self,
        mut task: Draft,
        cancel: bool,
        now: DateTime<Utc>,
    ) -> Option<Message> {
        let mut next = Message::of_reusing(&task, self.spare_message.take());
        if next.as_ref().is_some_and(|m| !self.can_continue(m, now)) {
            self.spare_message = next.take();
        }
        let mut started = None;
        if let Some(message) = &mut next
            && let Work::Step { step, .. } = &message.work
            && let Plan::Run(index) = machine::plan(&task, step, now, true)
        {
            machine::start_step(task.edit(), index, now);
            // Starting sets the task's start (the first time), hence its deadline; nothing else of the message moves.
            message.deadline = task.deadline();
            started = Some(index);
        }
        let was_settled = self.stored.value.is_settled();
        let committed = self.commit(task, next.is_none(), cancel).await;
        if committed != Committed::Rejected {
            let metrics = &self.shared.engine.inner.metrics;
            metrics.count_settled(was_settled, &self.stored.value);
        }
        if committed != Committed::Applied {
            return None;
        }
        self.started = started;
        debug_assert_eq!(
            next,
            next.as_ref().and_then(|_| Message::of(&self.stored.value))
        );
        next
    }

    /// A copy of the committed document to change, written into the buffers of the spare revision when there is
    /// one (`clone_from` copies strings and vectors into the buffers already there).
    fn draft(&mut self) -> Draft {
        let committed = &self.stored.value;
        Draft(match self.spare.take() {
            Some(mut spare) => {
                Arc::make_mut(&mut spare).clone_from(committed);
                spare
            }
            None => Arc::new(Task::clone(committed)),
        })
    }

    fn can_continue(&self, message: &Message, now: DateTime<Utc>) -> bool {
        !self.shared.stopping.is_cancelled()
            && self.shared.spec.serves(&message.route)
            && self.shared.spec.can_run(&message.work)
            && message.wake_at() <= now
    }

    /// Commits a new document under the claim, retrying while the backend is unavailable.
    ///
    /// A document the backend refuses as too large is replaced by the last committed one with the current step
    /// failed (non-retryable) for that reason — its output and writes dropped — committed with the claim released.
    async fn commit(&mut self, draft: Draft, release: bool, cancel: bool) -> Committed {
        let (mut draft, mut release, mut replaced) = (draft, release, false);
        loop {
            let transition = Transition {
                previous: Some(&self.message),
                task: Arc::clone(&draft.0),
                expected_revision: self.stored.revision,
                claim: Some(&self.token),
                release_claim: release,
                cancel,
                use_reserve: replaced,
            };
            let result = commit_with_retry(&self.shared, &transition).await;
            drop(transition);
            match result {
                Ok(Commit::Applied { revision }) => {
                    let mut previous = std::mem::replace(
                        &mut self.stored,
                        Stored {
                            value: draft.0,
                            revision,
                        },
                    );
                    // Unless a step context or a reader still holds it, the old revision becomes the next draft.
                    if Arc::get_mut(&mut previous.value).is_some() {
                        self.spare = Some(previous.value);
                    }
                    if release {
                        self.holding = false;
                    }
                    return if replaced {
                        Committed::Replaced
                    } else {
                        Committed::Applied
                    };
                }
                Ok(Commit::Conflict) => {
                    tracing::info!(
                        "commit rejected: the task changed or the claim was lost; stopping"
                    );
                    return Committed::Rejected;
                }
                Err(BackendError::TooLarge { size, limit }) if !replaced => {
                    tracing::error!(
                        size,
                        limit,
                        "the task document is too large; failing the step"
                    );
                    draft = Draft::new(self.oversized(size, limit));
                    (release, replaced) = (true, true);
                }
                Err(e) => {
                    tracing::error!(error = %e, "commit failed for good; the message will be redelivered");
                    return Committed::Rejected;
                }
            }
        }
    }

    /// The last committed document with the change that would have made it `size` bytes replaced by a failure that
    /// says so: the current step's (its output and writes dropped), or, once the task has ended, the callback's.
    fn oversized(&self, size: usize, limit: usize) -> Task {
        let now = Utc::now();
        let mut task = Task::clone(&self.stored.value);
        if task.is_terminal() {
            let error = format!(
                "its result would make the task document {size} bytes, more than the backend accepts ({limit} \
                 bytes); its message was dropped"
            );
            machine::record_callback(&mut task, Err(error), now);
            return task;
        }
        let error = format!(
            "the task document would be {size} bytes after this step, more than the backend accepts ({limit} \
             bytes); the step's output and shared variables were dropped"
        );
        if let Some(index) = task.step_index(&task.current_step) {
            if task.steps[index].status != StepStatus::Running {
                machine::start_step(&mut task, index, now);
            }
            let outcome = Outcome::Failure {
                error,
                retryable: false,
            };
            machine::finish_step(
                &mut task,
                index,
                outcome,
                now,
                &self.shared.engine.inner.backoff,
            );
        }
        task
    }
}

/// A copy of the committed document, changed on its way to a commit.
struct Draft(Arc<Task>);

impl Draft {
    /// A document built apart from the committed one (a plan's commit, a failure replacing an oversized change).
    fn new(task: Task) -> Self {
        Self(Arc::new(task))
    }

    /// The document, to change (the draft is its only holder: nothing is copied).
    fn edit(&mut self) -> &mut Task {
        Arc::make_mut(&mut self.0)
    }
}

impl std::ops::Deref for Draft {
    type Target = Task;

    fn deref(&self) -> &Task {
        &self.0
    }
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Committed {
    /// Stored as given.
    Applied,
    /// The document was too large: a failure of the current step was stored instead, and the claim released.
    Replaced,
    /// Nothing stored: the task changed, the claim was lost, or the backend failed for good.
    Rejected,
}

/// Commits, retrying with back-off while the backend is unavailable (up to about a minute, or until shutdown).
async fn commit_with_retry(
    shared: &Shared,
    transition: &Transition<'_>,
) -> Result<Commit, BackendError> {
    match shared.engine.inner.backend.commit(transition).await {
        // The rare path is boxed: it keeps every driver's future (allocated per task) small.
        Err(BackendError::Unavailable(reason)) => {
            Box::pin(retry_commit(shared, transition, reason)).await
        }
        result => result,
    }
}

/// The retries of [`commit_with_retry`] after a first failure.
async fn retry_commit(
    shared: &Shared,
    transition: &Transition<'_>,
    mut reason: String,
) -> Result<Commit, BackendError> {
    let mut delay = Duration::from_millis(50);
    for _ in 0..12 {
        tracing::warn!(reason, "commit failed; retrying");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.abort.cancelled() => return Err(BackendError::Unavailable(reason)),
        }
        delay = (delay * 2).min(Duration::from_secs(10));
        match shared.engine.inner.backend.commit(transition).await {
            Err(BackendError::Unavailable(again)) => reason = again,
            result => return result,
        }
    }
    Err(BackendError::Unavailable(reason))
}

/// A stored document that does not parse: fail the task with a message that keeps the raw document (an excerpt when
/// the whole does not fit, the whole then going to the log).
async fn fail_corrupt(
    shared: &Shared,
    message: &Message,
    token: &ClaimToken,
    corrupt: CorruptTask,
) {
    /// How much of a corrupt document a failed task keeps when the whole of it does not fit.
    const EXCERPT: usize = 4096;
    tracing::error!(task_id = %message.task_id, error = %corrupt.error, "corrupt task document");
    let now = Utc::now();
    let mut raw = corrupt.raw.as_str();
    loop {
        let mut task = Task::new(
            TaskInfo {
                task_name: "<corrupt document>".to_owned(),
                ..TaskInfo::default()
            },
            TaskOptions::default(),
        );
        task.task_id = message.task_id.clone();
        task.status = TaskStatus::Failure;
        task.message = if raw.len() == corrupt.raw.len() {
            format!(
                "task document is corrupt: {}; raw document: {raw}",
                corrupt.error
            )
        } else {
            format!(
                "task document is corrupt: {}; raw document (its first {} of {} bytes; the whole of it is in the \
                 worker's log): {raw}",
                corrupt.error,
                raw.len(),
                corrupt.raw.len()
            )
        };
        task.end = Some(now);
        let transition = Transition {
            previous: Some(message),
            task: Arc::new(task),
            expected_revision: corrupt.revision,
            claim: Some(token),
            release_claim: true,
            cancel: false,
            use_reserve: true,
        };
        match commit_with_retry(shared, &transition).await {
            Ok(Commit::Applied { .. }) => {
                let metrics = &shared.engine.inner.metrics;
                metrics.count_settled(false, &transition.task);
                return;
            }
            Err(BackendError::TooLarge { .. }) if raw.len() > EXCERPT => {
                tracing::error!(
                    task_id = %message.task_id,
                    raw = %corrupt.raw,
                    "the corrupt document does not fit into the failed task's message; it is kept here"
                );
                let cut = (0..=EXCERPT).rev().find(|&at| raw.is_char_boundary(at));
                raw = &raw[..cut.unwrap_or(0)];
            }
            _ => {
                let _ = shared.session.release(token).await;
                return;
            }
        }
    }
}

async fn sleep_opt(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
