//! Callbacks: code run exactly once when a task ends, with its outcome.

use crate::model::{Task, TaskStatus};
use futures::future::BoxFuture;
use std::fmt;
use std::future::Future;

/// A registered callback, named by tasks in `callbackName`. `#[callback]` implements it for an `async fn`.
#[async_trait::async_trait]
pub trait Callback: Send + Sync + 'static {
    /// The registry key.
    fn name(&self) -> &str;

    /// Runs once per terminal transition of a task naming this callback. An error on a SUCCESS task turns the task
    /// into FAILURE with the callback's message.
    async fn call(&self, outcome: &TaskOutcome) -> Result<(), CallbackError>;
}

/// What a callback is told: the final status, the error that ended the task (if any) and the task document.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// The terminal status.
    pub status: TaskStatus,
    /// Why the task did not succeed (`None` on SUCCESS).
    pub error: Option<String>,
    /// The task as committed at its end.
    pub task: Task,
}

impl TaskOutcome {
    /// Whether the task succeeded.
    pub fn is_success(&self) -> bool {
        self.status == TaskStatus::Success
    }

    /// The task id.
    pub fn task_id(&self) -> &str {
        &self.task.task_id
    }
}

/// A callback's failure; any error converts into it with `?`.
pub struct CallbackError(String);

impl CallbackError {
    /// A failure with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        Self(message.to_string())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for CallbackError {
    fn from(error: E) -> Self {
        Self(error.into().to_string())
    }
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CallbackError").field(&self.0).finish()
    }
}

/// A callback made of a closure (the reference's `CallbackExecutorFunc`).
///
/// ```
/// let notify = taskflow::callback_fn("notify", |outcome| async move {
///     println!("task {} ended {}", outcome.task_id(), outcome.status);
///     Ok(())
/// });
/// # let _ = notify;
/// ```
pub fn callback_fn<F, Fut>(name: impl Into<String>, call: F) -> FnCallback
where
    F: Fn(TaskOutcome) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
{
    FnCallback {
        name: name.into(),
        call: Box::new(move |outcome| Box::pin(call(outcome))),
    }
}

type CallFn =
    Box<dyn Fn(TaskOutcome) -> BoxFuture<'static, Result<(), CallbackError>> + Send + Sync>;

/// A [`Callback`] made by [`callback_fn`].
#[must_use = "a callback does nothing until registered with `EngineBuilder::callback`"]
pub struct FnCallback {
    name: String,
    call: CallFn,
}

#[async_trait::async_trait]
impl Callback for FnCallback {
    fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, outcome: &TaskOutcome) -> Result<(), CallbackError> {
        (self.call)(outcome.clone()).await
    }
}
