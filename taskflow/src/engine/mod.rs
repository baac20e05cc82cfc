//! The engine: the client API ([`Engine`]) and the workers ([`Worker`]) that run steps.

mod backoff;
mod client;
mod machine;
mod metrics;
mod worker;

pub use backoff::Backoff;
#[cfg(feature = "test-util")]
pub(crate) use worker::DRIVER_PANICS;
pub use worker::{Worker, WorkerBuilder};

use crate::backend::Backend;
use crate::backend::memory::MemoryBackend;
use crate::callback::Callback;
use crate::error::Result;
use crate::flow::TaskMgr;
use crate::registry::{Registry, RegistryBuilder};
use crate::render::Renderer;
use crate::retry::RetryPolicy;
use crate::step::StepMgr;
use minijinja::functions::Function;
use minijinja::value::{FunctionArgs, FunctionResult};
use std::sync::Arc;
use std::time::Duration;

/// The client of a taskflow deployment: dispatch, query, wait for, retry and cancel tasks, and start workers.
///
/// Cheap to clone; every clone shares the backend, the registry and the template environment.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) registry: Registry,
    pub(crate) renderer: Renderer,
    pub(crate) backoff: Backoff,
    pub(crate) cancel_grace: Duration,
    /// How client operations retry a backend that cannot be reached.
    pub(crate) retry: RetryPolicy,
    /// Metrics handles, registered on first use.
    pub(crate) metrics: metrics::MetricsCache,
}

/// Configures an [`Engine`]: backend, extra registrations, template filters and functions, retry back-off.
#[must_use = "an engine builder does nothing until `build`"]
pub struct EngineBuilder {
    backend: Option<Arc<dyn Backend>>,
    registry: RegistryBuilder,
    renderer: Renderer,
    backoff: Backoff,
    cancel_grace: Duration,
    retry: RetryPolicy,
    inventory: bool,
}

impl Engine {
    /// A builder (memory backend unless [`EngineBuilder::backend`] says otherwise).
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            backend: None,
            registry: RegistryBuilder::default(),
            renderer: Renderer::default(),
            backoff: Backoff::default(),
            cancel_grace: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            inventory: true,
        }
    }

    /// An engine on a fresh in-memory backend with every linked-in step, callback and flow.
    pub fn memory() -> Result<Engine> {
        Self::builder().build()
    }

    /// The validated registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// A builder for a worker of this engine.
    pub fn worker(&self) -> WorkerBuilder {
        WorkerBuilder::new(self.clone())
    }
}

impl EngineBuilder {
    /// Stores tasks in this backend.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// Stores tasks in this shared backend.
    pub fn shared_backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Registers a step at run time (a plugin written without `#[step]`).
    pub fn step(mut self, step: impl StepMgr) -> Self {
        self.registry.step(Arc::new(step));
        self
    }

    /// Registers a callback at run time.
    pub fn callback(mut self, callback: impl Callback) -> Self {
        self.registry.callback(Arc::new(callback));
        self
    }

    /// Registers a flow at run time.
    pub fn flow(mut self, flow: impl TaskMgr) -> Self {
        self.registry.flow(Arc::new(flow));
        self
    }

    /// Ignores link-time registrations (`#[step]`, `#[callback]`, `task_flow!`): only what the builder registers.
    pub fn without_inventory(mut self) -> Self {
        self.inventory = false;
        self
    }

    /// Adds a template filter, e.g. `.filter("shout", |s: String| s.to_uppercase())`.
    pub fn filter<F, Rv, Args>(mut self, name: &'static str, filter: F) -> Self
    where
        F: Function<Rv, Args>,
        Rv: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.renderer.environment_mut().add_filter(name, filter);
        self
    }

    /// Adds a template function, e.g. `.function("now", || chrono::Utc::now().to_rfc3339())`.
    pub fn function<F, Rv, Args>(mut self, name: &'static str, function: F) -> Self
    where
        F: Function<Rv, Args>,
        Rv: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.renderer.environment_mut().add_function(name, function);
        self
    }

    /// Gives direct access to the template environment (globals, tests, custom syntax).
    pub fn templates(
        mut self,
        configure: impl FnOnce(&mut minijinja::Environment<'static>),
    ) -> Self {
        configure(self.renderer.environment_mut());
        self
    }

    /// Back-off between automatic retries (default: Fibonacci seconds, capped at one hour).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a cancelled step may run on after it was told to stop (default 2 s) before its future is dropped.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// How the engine retries a backend that cannot be reached (default [`RetryPolicy::default`]: delays adding up
    /// to a minute, each attempt also bounded by the backend's own request timeout): [`Engine::dispatch`] sends the
    /// same task again, and a worker retries a commit (also while the backend is out of space), holding its claim
    /// meanwhile. `cancel` and `retry` are not retried: they report the backend's error at once.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Validates the registry (one error listing every problem) and builds the engine.
    pub fn build(self) -> Result<Engine> {
        let registry = if self.inventory {
            self.registry.with_inventory()
        } else {
            self.registry
        };
        let registry = registry.build()?;
        let backend = self
            .backend
            .unwrap_or_else(|| Arc::new(MemoryBackend::new()));
        Ok(Engine {
            inner: Arc::new(Inner {
                backend,
                registry,
                renderer: self.renderer,
                backoff: self.backoff,
                cancel_grace: self.cancel_grace,
                retry: self.retry,
                metrics: metrics::MetricsCache::default(),
            }),
        })
    }
}

/// Where a manual retry resumes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RetryFrom {
    /// The first failed (not skipped) step, else the step the task stopped at.
    #[default]
    FirstFailed,
    /// A named step.
    Step(String),
    /// The first step (every step runs again).
    Start,
}

/// How to retry an ended task: from which step, and with which adjustments.
///
/// The step retried and every later step are reset; earlier successes and their variables stay. The task's start
/// time (and so its deadline window) and its callback result are reset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use = "a retry request does nothing until passed to `Engine::retry`"]
pub struct RetryRequest {
    pub(crate) from: RetryFrom,
    pub(crate) force: bool,
    pub(crate) skip_failed: bool,
    pub(crate) skip_on_failed: bool,
    pub(crate) by: String,
}

impl RetryRequest {
    /// Retry from the first failed step (the default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Retry from this step.
    pub fn from_step(mut self, step: impl Into<String>) -> Self {
        self.from = RetryFrom::Step(step.into());
        self
    }

    /// Retry every step.
    pub fn from_start(mut self) -> Self {
        self.from = RetryFrom::Start;
        self
    }

    /// Also allow retrying a task that succeeded.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    /// Mark the failed step as skipped and resume from the step after it.
    pub fn skip_failed(mut self) -> Self {
        self.skip_failed = true;
        self
    }

    /// Set skip-on-failed on the step the retry resumes from (if it fails again, the task goes on).
    pub fn skip_on_failed(mut self) -> Self {
        self.skip_on_failed = true;
        self
    }

    /// Record who retried the task (`updater`).
    pub fn by(mut self, user: impl Into<String>) -> Self {
        self.by = user.into();
        self
    }
}
