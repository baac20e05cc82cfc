//! Steps: the [`StepMgr`] trait (what a `#[step]` generates, or what a plugin implements by hand) and [`StepError`].

use crate::context::StepContext;
use crate::model::{Step, StepOptions};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A registered step executor: builds [`Step`]s and does their work.
///
/// `#[step]` implements it for an `async fn`; hand-written implementations use [`macro@crate::async_trait`]:
///
/// ```
/// use taskflow::{async_trait, StepContext, StepError, StepMgr};
/// use serde_json::Value;
///
/// struct Ping;
///
/// #[async_trait]
/// impl StepMgr for Ping {
///     fn name(&self) -> &str { "ping" }
///     async fn run(&self, ctx: &StepContext) -> Result<Value, StepError> {
///         let host = ctx.param("host").ok_or_else(|| StepError::fatal("param `host` is missing"))?;
///         Ok(Value::String(format!("pong from {host}")))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait StepMgr: Send + Sync + 'static {
    /// The executor name: the registry key that steps refer to.
    fn name(&self) -> &str;

    /// Display name given to built steps.
    fn alias(&self) -> &str {
        ""
    }

    /// Default options of steps built from this executor (timeout, retries, ...).
    fn options(&self) -> StepOptions {
        StepOptions::default()
    }

    /// Builds a step named `name` running this executor (the seed's `BuildStep`).
    fn build_step(
        &self,
        name: &str,
        params: BTreeMap<String, String>,
        options: StepOptions,
    ) -> Step {
        let mut options = options;
        if options.alias.is_none() && !self.alias().is_empty() {
            options.alias = Some(self.alias().to_owned());
        }
        let mut step = Step::new(name, self.name(), options);
        step.params = params;
        step
    }

    /// Does the work of one attempt. The returned value becomes the step's output (`steps.<name>.output`).
    async fn run(&self, ctx: &StepContext) -> Result<Value, StepError>;
}

/// Why a step attempt failed, and whether retrying may help.
///
/// Any error converts into a retryable `StepError` with `?`; [`StepError::fatal`] fails without retry.
pub struct StepError {
    message: String,
    retryable: bool,
}

impl StepError {
    /// A failure that automatic retries may fix.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: true,
        }
    }

    /// A failure that retrying cannot fix: the step fails at once, whatever retries remain.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: false,
        }
    }

    /// Makes this error fatal (no retry).
    pub fn no_retry(mut self) -> Self {
        self.retryable = false;
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether an automatic retry may run.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for StepError {
    fn from(error: E) -> Self {
        Self::new(error.into())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepError")
            .field("message", &self.message)
            .field("retryable", &self.retryable)
            .finish()
    }
}

/// A step made of a closure: the runtime counterpart of `#[step]` (the reference's `StepExecutorFunc`).
///
/// ```
/// use taskflow::{step_fn, StepError};
/// let double = step_fn("double", |ctx| async move {
///     let n: i64 = ctx.param("n").unwrap_or("0").parse().map_err(StepError::fatal)?;
///     Ok(n * 2)
/// });
/// # let _ = double;
/// ```
pub fn step_fn<F, Fut, T>(name: impl Into<String>, run: F) -> FnStep
where
    F: Fn(StepContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, StepError>> + Send + 'static,
    T: Serialize,
{
    let name = name.into();
    let step_name: Arc<str> = Arc::from(name.as_str());
    FnStep {
        name,
        options: StepOptions::default(),
        run: Box::new(move |ctx| {
            let future = run(ctx);
            let step_name = Arc::clone(&step_name);
            Box::pin(async move {
                let value = future.await?;
                to_output(&step_name, &value)
            })
        }),
    }
}

/// Encodes a step's return value as its output (`#[step]` functions and [`step_fn`] closures).
pub(crate) fn to_output<T: Serialize>(step: &str, value: &T) -> Result<Value, StepError> {
    serde_json::to_value(value)
        .map_err(|e| StepError::fatal(format!("step `{step}`: output does not encode: {e}")))
}

type RunFn = Box<dyn Fn(StepContext) -> BoxFuture<'static, Result<Value, StepError>> + Send + Sync>;

/// A [`StepMgr`] made by [`step_fn`].
#[must_use = "a step does nothing until registered with `EngineBuilder::step`"]
pub struct FnStep {
    name: String,
    options: StepOptions,
    run: RunFn,
}

impl FnStep {
    /// Default options of steps built from this executor.
    pub fn with_options(mut self, options: StepOptions) -> Self {
        self.options = options;
        self
    }
}

#[async_trait::async_trait]
impl StepMgr for FnStep {
    fn name(&self) -> &str {
        &self.name
    }

    fn options(&self) -> StepOptions {
        self.options.clone()
    }

    // The closure's future is already boxed: handed out as is, not boxed a second time by `async_trait`.
    fn run<'a, 'b, 'async_trait>(
        &'a self,
        ctx: &'b StepContext,
    ) -> BoxFuture<'async_trait, Result<Value, StepError>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        (self.run)(ctx.clone())
    }
}
