//! Recovery from a stored document that does not parse: the task fails with a message that keeps the raw document.

use super::commit::commit_with_retry;
use super::shared::Shared;
use crate::backend::{ClaimToken, Commit, CorruptTask, Message, Transition};
use crate::error::BackendError;
use crate::model::{Task, TaskInfo, TaskOptions, TaskStatus};
use chrono::Utc;
use std::sync::Arc;

/// A stored document that does not parse: fail the task with a message that keeps the raw document (an excerpt when
/// the whole does not fit, the whole then going to the log).
pub(super) async fn fail_corrupt(
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
