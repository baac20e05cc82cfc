//! Errors of the client API, the registry and the backends.

use crate::model::TaskStatus;

/// The error of every fallible taskflow API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task document breaks a rule (name, steps, unknown executor, ...).
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// No task has this id.
    #[error("task `{0}` not found")]
    NotFound(String),
    /// The operation does not apply to the task in its current status.
    #[error("cannot {action} task `{task_id}`: {reason} (status {status})")]
    InvalidState {
        /// What was attempted (`retry`, `cancel`, ...).
        action: &'static str,
        /// The task.
        task_id: String,
        /// Its status.
        status: TaskStatus,
        /// Why the operation does not apply.
        reason: String,
    },
    /// The step, callback and flow registry is inconsistent (every problem is listed).
    #[error("{0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// The task document is larger than the backend accepts.
    #[error(
        "task `{task_id}` is too large: {size} bytes, the backend accepts at most {limit} bytes per task"
    )]
    TooLarge {
        /// The task.
        task_id: String,
        /// Its serialised size.
        size: usize,
        /// The backend's limit.
        limit: usize,
    },
    /// The backend failed (storage unreachable, corrupt data, ...).
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    /// Waiting for a task took longer than allowed.
    #[error("timed out waiting for task `{0}`")]
    WaitTimeout(String),
    /// A different task already has this id: the id, or the idempotency key it was derived from, was used for a
    /// task with other content. (Dispatching the same task again is not an error.)
    #[error(
        "task `{task_id}` already exists with other content: its id (or idempotency key) is already used by a different task"
    )]
    IdTaken {
        /// The task id.
        task_id: String,
    },
}

/// A failure inside a backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The storage cannot be reached or answered with an error.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored document could not be read.
    #[error("corrupt document `{key}`: {reason}")]
    Corrupt {
        /// The storage key.
        key: String,
        /// The parse error.
        reason: String,
    },
    /// A task with this id already exists.
    #[error("task `{0}` already exists")]
    AlreadyExists(String),
    /// The document is larger than the storage accepts.
    #[error("document of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Serialised size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The worker session ended (lease lost, shut down).
    #[error("worker session closed: {0}")]
    SessionClosed(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// `Result` with the taskflow [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
