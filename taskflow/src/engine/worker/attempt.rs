//! One step attempt: the params rendered, the executor's future run under the step timeout, the task deadline,
//! cancellation and shutdown, every panic of user code caught.

use super::driver::Driver;
use crate::context::StepContext;
use crate::engine::machine::Outcome;
use crate::model::Task;
use crate::time::until;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// Why a step attempt did not produce an outcome.
pub(super) enum Interrupt {
    /// A user cancelled the task (already REVOKED in storage).
    Cancelled,
    /// The task deadline passed.
    TaskTimeout,
    /// The worker shuts down.
    Shutdown,
    /// The session lost its lease: the claim is void, the step was dropped at once.
    Lost,
}

impl Driver {
    /// Renders the params and runs the step future under its timeout, the task deadline, cancellation and shutdown.
    pub(super) async fn attempt(
        &self,
        task: &Arc<Task>,
        index: usize,
    ) -> Result<Outcome, Interrupt> {
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
            // First, even before the step's own result (which would start its next side effect or commit): a void
            // claim gets no grace and no more poll, since another worker may start the step as soon as etcd expires
            // the lease. (`cancel` is a child of `void`.)
            () = self.void.cancelled() => {
                ctx.cancel();
                return Err(Interrupt::Lost);
            }
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
                // Cancelled by a user: a grace period to stop cleanly, then drop (at once if the session is lost
                // meanwhile).
                tokio::select! {
                    biased;
                    () = self.void.cancelled() => {
                        ctx.cancel();
                        return Err(Interrupt::Lost);
                    }
                    _ = tokio::time::timeout(inner.cancel_grace, &mut future) => {}
                }
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
}

/// Sleeps for `duration`, or forever.
async fn sleep_opt(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// The message of a caught panic.
pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
