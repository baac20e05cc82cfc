//! The client API of the engine: dispatch, get, list, wait, retry, cancel.

use super::{Engine, RetryRequest, machine};
use crate::backend::{Commit, Created, Message, Stored, TaskPage, TaskQuery, Transition, Work};
use crate::error::{BackendError, Error, Result};
use crate::model::{StepStatus, Task, TaskStatus};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// Validates and stores a task and queues its first step; returns the task id.
    ///
    /// **Idempotent.** A task is the same task if it has the same id and the same content: everything the caller
    /// gave but the times that building a task sets to "now" (see [`Task::dispatch_fingerprint`]). Dispatching a task
    /// that is already stored stores nothing, runs nothing again and returns its id, whatever happened to the task
    /// since (as long as it is kept: see the etcd backend's retention). A task rebuilt from scratch is the same task
    /// if it gets the same id: [`TaskBuilder::idempotency_key`](crate::TaskBuilder::idempotency_key) derives it from
    /// a key of the caller's.
    ///
    /// A backend that cannot be reached is retried with the engine's [`RetryPolicy`](crate::RetryPolicy)
    /// ([`EngineBuilder::retry_policy`](crate::EngineBuilder::retry_policy)), sending the same task each time: a
    /// first attempt that was stored although its answer was lost is found, not duplicated.
    ///
    /// What an error means:
    /// - [`Error::InvalidTask`] (the task breaks a rule, names an executor or callback this engine does not know, or
    ///   has a param template that does not parse), [`Error::TooLarge`] (larger than the backend accepts): nothing
    ///   was stored.
    /// - [`Error::IdTaken`]: a task with other content has this id (or idempotency key); nothing was stored.
    /// - [`Error::Backend`] with [`BackendError::Unavailable`] (after the retries) or [`BackendError::NoSpace`]
    ///   (etcd may apply the write that crosses its quota and still answer so): **the task may or may not have been
    ///   stored** (and so may run). Do not build a new task: dispatch the same task again (keep a clone, or its id:
    ///   `dispatch` takes the task) or rebuild it with the same id or idempotency key, once the backend is back;
    ///   that is safe, it is stored and run once. [`get`](Self::get) with its id also tells.
    /// - another [`Error::Backend`]: the backend refused the task (e.g. an id etcd cannot use, no permission);
    ///   nothing was stored.
    pub async fn dispatch(&self, mut task: Task) -> Result<String> {
        task.validate()?;
        self.check_references(&task)?;
        task.dispatch_fingerprint = Some(task.fingerprint());
        let now = Utc::now();
        task.status = TaskStatus::Initializing;
        task.created_at.get_or_insert(now);
        task.last_update = Some(now);
        if task.current_step.is_empty() {
            task.current_step = task.steps[0].name.clone();
        }
        if let Some(index) = task.step_index(&task.current_step) {
            let first = &mut task.steps[index];
            first.due_at = machine::due_time(first, now);
        }
        let task = Arc::new(task);
        let task_id = &task.task_id;
        let backend = &self.inner.backend;
        // Whether an earlier attempt of this call may have stored the task (its answer lost).
        let mut lost = false;
        let created = match backend.create(&task).await {
            Err(error @ BackendError::Unavailable { .. }) => {
                lost = true;
                let retry = || backend.create(&task);
                let unavailable = |e: &BackendError| matches!(e, BackendError::Unavailable { .. });
                let log = |error: &BackendError, delay| {
                    tracing::debug!(%task_id, %error, ?delay, "dispatch: backend unavailable, sending the task again");
                };
                let policy = &self.inner.retry;
                policy
                    .retry_after(error, retry, unavailable, log, std::future::pending())
                    .await
            }
            other => other,
        };
        let created = created.map_err(|e| match e {
            BackendError::TooLarge { size, limit } => Error::TooLarge {
                task_id: task_id.clone(),
                size,
                limit,
            },
            BackendError::AlreadyExists(task_id) => Error::IdTaken { task_id },
            other => Error::Backend(other),
        })?;
        // Found stored after an attempt of this call whose answer was lost: most likely that attempt stored it.
        if matches!(created, Created::Stored { .. }) || lost {
            tracing::debug!(%task_id, task_type = %task.task_type, "task dispatched");
            self.inner.metrics.task(&task.task_type).dispatched();
        } else {
            tracing::debug!(%task_id, task_type = %task.task_type, "task already dispatched: sent again");
        }
        Ok(task_id.clone())
    }

    /// Rejects executors and callbacks nobody registered, and templates that do not parse.
    fn check_references(&self, task: &Task) -> Result<()> {
        let registry = &self.inner.registry;
        let mut problems = Vec::new();
        for step in &task.steps {
            if registry.step(&step.executor).is_none() {
                problems.push(format!(
                    "step `{}` runs executor `{}`, which is not registered",
                    step.name, step.executor
                ));
            }
            for (key, template) in &step.params {
                if let Err(e) = self.inner.renderer.check_syntax(template) {
                    problems.push(format!(
                        "step `{}`: param `{key}`: template error: {e}",
                        step.name
                    ));
                }
            }
        }
        if !task.callback_name.is_empty() && registry.callback(&task.callback_name).is_none() {
            problems.push(format!(
                "callback `{}` is not registered",
                task.callback_name
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidTask(problems.join("; ")))
        }
    }

    /// Reads a task. While it waits — for a delay, or for a worker able to run its step — its `message` says why
    /// (see [`waiting_reason`](Self::waiting_reason); the stored message is unchanged).
    pub async fn get(&self, task_id: &str) -> Result<Task> {
        let mut task = self.stored(task_id).await?.value;
        if let Some(reason) = self.waiting_reason(&task).await? {
            task.message = reason;
        }
        Ok(task)
    }

    async fn stored(&self, task_id: &str) -> Result<Stored<Task>> {
        self.inner
            .backend
            .get(task_id)
            .await?
            .ok_or_else(|| Error::NotFound(task_id.to_owned()))
    }

    /// Lists tasks: filters, sort, page, and the total count of matches.
    pub async fn list(&self, query: &TaskQuery) -> Result<TaskPage> {
        Ok(self.inner.backend.list(query).await?)
    }

    /// Waits until the task has ended and its callback (if any) has run; returns the final task, shared with the
    /// backend rather than copied (`Task::clone(&done)` makes an owned copy).
    pub async fn wait(&self, task_id: &str) -> Result<Arc<Task>> {
        let settled = self.inner.backend.wait_settled(task_id).await?;
        Ok(settled
            .ok_or_else(|| Error::NotFound(task_id.to_owned()))?
            .value)
    }

    /// Why a task that has not ended does not run now: a delay or back-off, or no live worker able to take its step
    /// (none serves its route, or none of those runs its executor). `None` when it runs, is about to, or has ended.
    pub async fn waiting_reason(&self, task: &Task) -> Result<Option<String>> {
        let Some(message) = Message::of(task) else {
            return Ok(None);
        };
        let what = match &message.work {
            Work::Step { step, executor } => {
                if task
                    .step(step)
                    .is_some_and(|s| s.status == StepStatus::Running)
                {
                    return Ok(None);
                }
                format!("step `{step}` (executor `{executor}`)")
            }
            Work::Callback { callback } => format!("callback `{callback}`"),
        };
        if message.due > Utc::now() {
            return Ok(Some(format!(
                "{what} is due at {} (delay or retry back-off)",
                message.due.to_rfc3339()
            )));
        }
        let workers = self.inner.backend.workers().await?;
        let serving: Vec<_> = workers
            .iter()
            .filter(|w| w.serves(&message.route))
            .collect();
        if serving.is_empty() {
            return Ok(Some(format!(
                "{what} waits for a worker: none of the {} live worker(s) serves {}",
                workers.len(),
                message.route
            )));
        }
        if !serving.iter().any(|w| w.can_run(&message.work)) {
            let nodes: Vec<&str> = serving.iter().map(|w| w.node.as_str()).collect();
            return Ok(Some(format!(
                "{what} waits for a worker: the {} live worker(s) serving {} ({}) cannot run it",
                serving.len(),
                message.route,
                nodes.join(", ")
            )));
        }
        Ok(None)
    }

    /// [`wait`](Self::wait) with a limit.
    pub async fn wait_timeout(&self, task_id: &str, limit: Duration) -> Result<Arc<Task>> {
        tokio::time::timeout(limit, self.wait(task_id))
            .await
            .map_err(|_| Error::WaitTimeout(task_id.to_owned()))?
    }

    /// Calls `on_change` with the task as it is now, then with each newer state it sees, until the task has ended and
    /// its callback ran; returns the final task. States committed in quick succession may reach `on_change` as the
    /// latest of them only.
    pub async fn watch(&self, task_id: &str, mut on_change: impl FnMut(&Task)) -> Result<Task> {
        let mut stored = self.stored(task_id).await?;
        loop {
            on_change(&stored.value);
            if stored.value.is_settled() {
                return Ok(stored.value);
            }
            stored = self
                .inner
                .backend
                .wait_change(task_id, stored.revision)
                .await?
                .ok_or_else(|| Error::NotFound(task_id.to_owned()))?;
        }
    }

    /// Runs an ended (FAILURE, TIMEOUT, REVOKED; SUCCESS with `force`) task again from a step; see [`RetryRequest`].
    pub async fn retry(&self, task_id: &str, request: RetryRequest) -> Result<Task> {
        self.update(task_id, "retry", false, |task| {
            machine::retry(task, &request, Utc::now())
        })
        .await
    }

    /// Cancels a task: it becomes REVOKED at once, its queued work is dropped, and a step running anywhere is told to
    /// stop and dropped after the grace period. Its callback runs once.
    pub async fn cancel(&self, task_id: &str) -> Result<Task> {
        self.cancel_by(task_id, "").await
    }

    /// [`cancel`](Self::cancel), recording who cancelled (`updater`).
    pub async fn cancel_by(&self, task_id: &str, user: &str) -> Result<Task> {
        self.update(task_id, "cancel", true, |task| {
            if task.is_terminal() {
                return Err("the task has already ended".to_owned());
            }
            machine::revoke(task, Utc::now(), user);
            Ok(())
        })
        .await
    }

    /// Read-modify-write of a task by a client, retried on conflicts with workers.
    async fn update(
        &self,
        task_id: &str,
        action: &'static str,
        cancel: bool,
        change: impl Fn(&mut Task) -> std::result::Result<(), String>,
    ) -> Result<Task> {
        loop {
            let stored = self.stored(task_id).await?;
            let mut task = stored.value.clone();
            change(&mut task).map_err(|reason| Error::InvalidState {
                action,
                task_id: task_id.to_owned(),
                status: stored.value.status,
                reason,
            })?;
            let previous = Message::of(&stored.value);
            let transition = Transition {
                previous: previous.as_ref(),
                task: Arc::new(task.clone()),
                expected_revision: stored.revision,
                claim: None,
                release_claim: false,
                cancel,
                // A cancel must fit even into a task at the size limit.
                use_reserve: cancel,
            };
            if let Commit::Applied { .. } = self.inner.backend.commit(&transition).await? {
                tracing::info!(task_id, action, "task updated");
                let metrics = &self.inner.metrics;
                metrics.count_settled(stored.value.is_settled(), &task);
                return Ok(task);
            }
        }
    }
}
