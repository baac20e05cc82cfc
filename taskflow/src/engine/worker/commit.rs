//! Commits under the claim: retried while the backend is unavailable, and a failure recorded in place of a change
//! that makes the document larger than the backend accepts.

use super::draft::Draft;
use super::driver::Driver;
use super::shared::Shared;
use crate::backend::{Commit, Stored, Transition};
use crate::engine::Backoff;
use crate::engine::machine::{self, Outcome};
use crate::error::BackendError;
use crate::model::{StepStatus, Task};
use chrono::{DateTime, Utc};
use std::sync::Arc;

impl Driver {
    /// Commits a new document under the claim, retrying while the backend is unavailable.
    ///
    /// A document the backend refuses as too large is replaced by the last committed one with the current step
    /// failed (non-retryable) for that reason — its output and writes dropped — committed with the claim released.
    pub(super) async fn commit(&mut self, draft: Draft, release: bool, cancel: bool) -> Committed {
        let (mut draft, mut release, mut replaced) = (draft, release, false);
        loop {
            let transition = Transition {
                previous: Some(&self.message),
                task: Arc::clone(draft.shared()),
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
                    let previous = std::mem::replace(
                        &mut self.stored,
                        Stored {
                            value: draft.into_shared(),
                            revision,
                        },
                    );
                    self.spare.keep(previous.value);
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
                    let backoff = &self.shared.engine.inner.backoff;
                    let failed = oversized(&self.stored.value, size, limit, Utc::now(), backoff);
                    draft = Draft::new(failed);
                    (release, replaced) = (true, true);
                }
                Err(e) => {
                    tracing::error!(error = %e, "commit failed for good; the message will be redelivered");
                    return Committed::Rejected;
                }
            }
        }
    }
}

/// `committed` with the change that would have made it `size` bytes replaced by a failure that says so, at `now`: the
/// current step's (its output and writes dropped, a retry not allowed), or, once the task has ended, the callback's.
fn oversized(
    committed: &Task,
    size: usize,
    limit: usize,
    now: DateTime<Utc>,
    backoff: &Backoff,
) -> Task {
    let mut task = Task::clone(committed);
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
        machine::finish_step(&mut task, index, outcome, now, backoff);
    }
    task
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Committed {
    /// Stored as given.
    Applied,
    /// The document was too large: a failure of the current step was stored instead, and the claim released.
    Replaced,
    /// Nothing stored: the task changed, the claim was lost, or the backend failed for good.
    Rejected,
}

/// Commits, retrying with the engine's [`RetryPolicy`](crate::RetryPolicy) while the backend cannot be reached or is
/// out of space (up to about a minute by default, or until the shutdown's grace period is over).
pub(super) async fn commit_with_retry(
    shared: &Shared,
    transition: &Transition<'_>,
) -> Result<Commit, BackendError> {
    match shared.engine.inner.backend.commit(transition).await {
        // The rare path is boxed: it keeps every driver's future (allocated per task) small.
        Err(error) if transient(&error) => Box::pin(retry_commit(shared, transition, error)).await,
        result => result,
    }
}

/// Whether a failed commit may go through later as it is.
fn transient(error: &BackendError) -> bool {
    matches!(
        error,
        BackendError::Unavailable { .. } | BackendError::NoSpace { .. }
    )
}

/// The retries of [`commit_with_retry`] after a first failure.
async fn retry_commit(
    shared: &Shared,
    transition: &Transition<'_>,
    error: BackendError,
) -> Result<Commit, BackendError> {
    let backend = &shared.engine.inner.backend;
    let retry = || backend.commit(transition);
    let log = |error: &BackendError, _| shared.backend_failed("commit", error);
    let policy = &shared.engine.inner.retry;
    let result = policy
        .retry_after(error, retry, transient, log, shared.abort.cancelled())
        .await;
    if result.is_ok() {
        shared
            .out_of_space
            .ended("the backend accepts writes again");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::oversized;
    use crate::engine::Backoff;
    use crate::engine::machine::{self, Outcome};
    use crate::engine::worker::fixtures::at;
    use crate::model::{Step, StepOptions, StepStatus, Task, TaskInfo, TaskOptions, TaskStatus};

    fn task() -> Task {
        let options = TaskOptions {
            callback: Some("cb".into()),
            ..TaskOptions::default()
        };
        let mut task = Task::new(TaskInfo::default(), options);
        let retried = StepOptions {
            max_retries: 3,
            ..StepOptions::default()
        };
        task.add_step(Step::new("first", "exec", retried));
        task.add_step(Step::new("second", "exec", StepOptions::default()));
        task
    }

    #[test]
    fn an_oversized_step_result_fails_the_step_without_retry() {
        let mut committed = task();
        committed.common_params.insert("kept".into(), "yes".into());
        machine::start_step(&mut committed, 0, at(0));
        let failed = oversized(&committed, 2000, 1000, at(1), &Backoff::default());
        let step = &failed.steps[0];
        assert_eq!(step.status, StepStatus::Failure);
        assert!(
            step.message.contains("2000 bytes") && step.message.contains("(1000 bytes)"),
            "{}",
            step.message
        );
        assert_eq!(step.retry_count, 0, "retries left, but none is scheduled");
        assert_eq!(failed.status, TaskStatus::Failure);
        assert_eq!(failed.common_params, committed.common_params);
    }

    #[test]
    fn an_oversized_change_of_a_step_not_started_yet_starts_and_fails_it() {
        // The change was the commit that starts the step (e.g. the previous step's output made it too large).
        let committed = task();
        let failed = oversized(&committed, 2000, 1000, at(1), &Backoff::default());
        assert_eq!(failed.steps[0].status, StepStatus::Failure);
        assert_eq!(failed.steps[0].attempt, 1);
        assert_eq!(failed.status, TaskStatus::Failure);
    }

    #[test]
    fn an_oversized_callback_result_is_recorded_as_the_callbacks_failure() {
        let mut ended = task();
        for index in 0..2 {
            machine::start_step(&mut ended, index, at(0));
            let success = Outcome::Success(serde_json::Value::Null, Default::default());
            machine::finish_step(&mut ended, index, success, at(0), &Backoff::default());
        }
        assert_eq!(ended.status, TaskStatus::Success);
        let failed = oversized(&ended, 2000, 1000, at(1), &Backoff::default());
        assert_eq!(
            failed.status,
            TaskStatus::Failure,
            "a failed callback fails a succeeded task"
        );
        let message = &failed.callback_message;
        assert!(message.contains("2000 bytes"), "{message}");
        assert_eq!(failed.steps, ended.steps);
    }
}
