//! Errors of the client API, the registry and the backends.

use crate::model::TaskStatus;
use std::fmt;
use std::sync::Arc;

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
    Registry(#[from] RegistryError),
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
    /// The storage cannot be reached or answered with an error (a transport failure, a timeout, no leader): worth
    /// retrying later.
    #[error("storage unavailable: {reason}")]
    Unavailable {
        /// What failed, in words (including the source's message, so that printing the error alone tells it all).
        reason: String,
        /// The underlying error (e.g. an `etcd_client::Error`), if any; also [`std::error::Error::source`].
        #[source]
        source: Option<ErrorSource>,
    },
    /// The storage is out of space and refuses writes until an operator frees some (etcd: its `NOSPACE` alarm). The
    /// reason says what to do.
    #[error("storage out of space: {reason}")]
    NoSpace {
        /// What happened and what to do, in words (including the source's message).
        reason: String,
        /// The underlying error, if any; also [`std::error::Error::source`].
        #[source]
        source: Option<ErrorSource>,
    },
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

/// The error behind a [`BackendError`] (e.g. an `etcd_client::Error`), shared: one failure may be reported to
/// several callers (every request of a failed batch). It dereferences to that error, which is also what
/// [`std::error::Error::source`] returns, so it can be downcast:
///
/// ```
/// use std::error::Error as _;
/// use taskflow::BackendError;
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let error = BackendError::Unavailable {
///     reason: format!("cannot reach the store: {refused}"),
///     source: Some(refused.into()),
/// };
/// let source = error.source().and_then(|e| e.downcast_ref::<std::io::Error>());
/// assert_eq!(source.map(std::io::Error::kind), Some(std::io::ErrorKind::ConnectionRefused));
/// ```
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync>);

impl ErrorSource {
    /// An error shared already.
    pub(crate) fn shared(error: Arc<dyn std::error::Error + Send + Sync>) -> Self {
        Self(error)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ErrorSource {
    fn from(error: E) -> Self {
        Self(Arc::new(error))
    }
}

impl std::ops::Deref for ErrorSource {
    type Target = dyn std::error::Error + Send + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
/// Every problem found while validating the registry, reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid taskflow registry ({} problem(s)):",
            self.problems.len()
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

/// `Result` with the taskflow [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
