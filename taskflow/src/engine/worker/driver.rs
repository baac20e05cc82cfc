//! The driver of one claimed task: plans the claimed message, starts, runs and finishes steps, runs the callback,
//! and continues with the next message as long as it can run here at once.

use super::attempt::{Interrupt, panic_message};
use super::commit::Committed;
use super::draft::{Draft, Spare};
use super::recovery::fail_corrupt;
use super::shared::{Running, Shared};
use crate::backend::{ClaimToken, Claimed, Message, Stored, Work, WorkerSpec};
use crate::callback::TaskOutcome;
use crate::engine::machine::{self, Outcome, Plan};
use crate::engine::metrics::{StepEnd, StepMetrics};
use crate::model::{Task, TaskStatus};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Drives one claimed task through as many steps as it can run here in a row.
pub(super) struct Driver {
    pub(super) shared: Arc<Shared>,
    pub(super) token: ClaimToken,
    pub(super) stored: Stored<Arc<Task>>,
    /// An earlier revision of the document nobody else holds: the next draft reuses its buffers.
    pub(super) spare: Spare,
    pub(super) message: Message,
    /// The message before `message`, whose buffers the next one reuses.
    spare_message: Option<Message>,
    /// Whether the claim is still held.
    pub(super) holding: bool,
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
    pub(super) cancel: CancellationToken,
    /// Cancelled when the session lost its lease (which cancels `cancel` too): the claim is void, a running step is
    /// dropped at once.
    pub(super) void: CancellationToken,
}

impl Driver {
    /// Drives a claimed message; `losses` is `Shared::losses` from before the claim.
    pub(super) async fn start(
        shared: Arc<Shared>,
        message: Message,
        claimed: Claimed,
        losses: usize,
    ) {
        let stored = match claimed.task {
            Ok(stored) => stored,
            Err(corrupt) => return fail_corrupt(&shared, &message, &claimed.token, corrupt).await,
        };
        // Registered before anything is committed, so that a cancel arriving at any point reaches this driver.
        let id = shared.next_driver.fetch_add(1, Ordering::Relaxed);
        let running = Running::new(id);
        let (cancel, void) = (running.cancel.clone(), running.void.clone());
        shared.running().insert(message.task_id.clone(), running);
        // The session lost its lease during the claim: the claim is void.
        if shared.losses.load(Ordering::Acquire) != losses {
            void.cancel();
        }
        let spare = Spare::new(shared.take_spare());
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
            void,
        };
        driver.drive().await;
        let mut running = driver.shared.running();
        if running
            .get(&driver.token.task_id)
            .is_some_and(|running| running.id == driver.id)
        {
            running.remove(&driver.token.task_id);
        }
        drop(running);
        if let Some(spare) = driver.spare.take() {
            driver.shared.recycle(spare);
        }
        driver.shared.driver_ended.notify_waiters();
    }

    /// Handles the claimed message and every next one it continues with, then gives the claim back if it still holds
    /// it.
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
            Err(Interrupt::Shutdown | Interrupt::Lost) => StepEnd::Interrupted,
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
            // A claim that went with its lease is not there to release (the release, guarded by the claim's fence,
            // does nothing); one taken on the new lease just before a late `Lost` voided it must be given back.
            Err(Interrupt::Lost | Interrupt::Cancelled | Interrupt::Shutdown) => None,
        }
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
            // The claim is void: another worker runs the callback (the release at the end does nothing to a claim
            // that went with its lease, and gives back one a late `Lost` voided).
            () = self.void.cancelled() => return None,
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
        let (spec, stopping) = (&self.shared.spec, self.shared.stopping.is_cancelled());
        if next
            .as_ref()
            .is_some_and(|next| !continues_here(spec, stopping, next, now))
        {
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

    /// A copy of the committed document to change.
    fn draft(&mut self) -> Draft {
        self.spare.draft(&self.stored.value)
    }
}

/// Whether a driver goes on with `next` itself, keeping the claim: the worker is not `stopping`, serves the message's
/// route, can run its work, and the message is due by `now`.
fn continues_here(spec: &WorkerSpec, stopping: bool, next: &Message, now: DateTime<Utc>) -> bool {
    !stopping && spec.serves(&next.route) && spec.can_run(&next.work) && next.wake_at() <= now
}

#[cfg(test)]
mod tests {
    use super::continues_here;
    use crate::backend::Work;
    use crate::engine::worker::fixtures::{at, message, spec};
    use crate::model::Route;

    #[test]
    fn a_driver_continues_only_with_a_due_message_it_serves_and_can_run() {
        let spec = spec();
        let due = message("a", "q", "exec", 10);
        assert!(continues_here(&spec, false, &due, at(10)));
        assert!(!continues_here(&spec, true, &due, at(10)), "shutting down");
        assert!(!continues_here(&spec, false, &due, at(9)), "not due yet");
        let elsewhere = message("a", "other", "exec", 10);
        assert!(
            !continues_here(&spec, false, &elsewhere, at(10)),
            "not its queue"
        );
        let mut pinned = due.clone();
        pinned.route = Route::Node("n1".into());
        assert!(
            continues_here(&spec, false, &pinned, at(10)),
            "its own node"
        );
        pinned.route = Route::Node("n2".into());
        assert!(
            !continues_here(&spec, false, &pinned, at(10)),
            "another node"
        );
        let unknown = message("a", "q", "unknown", 10);
        assert!(
            !continues_here(&spec, false, &unknown, at(10)),
            "an executor it lacks"
        );
        let mut callback = due.clone();
        callback.work = Work::Callback {
            callback: "cb".into(),
        };
        assert!(continues_here(&spec, false, &callback, at(10)));
        callback.work = Work::Callback {
            callback: "other".into(),
        };
        assert!(
            !continues_here(&spec, false, &callback, at(10)),
            "a callback it lacks"
        );
        // Past its deadline, a message is due (to time the task out) even before its due time.
        let mut overdue = message("a", "q", "exec", 100);
        overdue.deadline = Some(at(10));
        assert!(continues_here(&spec, false, &overdue, at(10)));
    }
}
