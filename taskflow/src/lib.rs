//! # taskflow
//!
//! Distributed, durable, asynchronous task flows. A *task* is an ordered chain of *steps*; steps are `async fn`s
//! marked [`#[step]`](macro@step); flows are declared with [`task_flow!`]; workers on tokio claim and run steps; the
//! state lives in a [`Backend`]: etcd (feature `etcd`) for many worker processes, or the embedded
//! [`MemoryBackend`] for one process.
//!
//! ```standalone_crate
//! use taskflow::prelude::*;
//!
//! #[step]
//! async fn add(ctx: &StepContext, a: i64, b: i64) -> Result<i64, StepError> {
//!     ctx.set_common("sum", (a + b).to_string());
//!     Ok(a + b)
//! }
//!
//! task_flow! {
//!     /// Adds two numbers.
//!     flow Adder {
//!         type = "math",
//!         steps { add(a = "{{ params.x }}", b = 2) }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), taskflow::Error> {
//! let engine = Engine::memory()?;
//! let worker = engine.worker().start().await?;
//! let id = engine.dispatch(Adder::builder().param("x", "40").build()?).await?;
//! let task = engine.wait(&id).await?;
//! assert_eq!(task.status, TaskStatus::Success);
//! assert_eq!(task.common_params["sum"], "42");
//! worker.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`model`] (the task document), [`backend`] (the storage contract and its implementations), the engine
//! ([`Engine`], [`Worker`]), rendering ([`Renderer`]), the registry ([`Registry`]) and the polling helper ([`poll`]);
//! feature `test-util` adds `StepContext::for_test` and the `test_util` module, for tests.

pub mod backend;
mod callback;
mod context;
mod engine;
mod error;
mod flow;
pub mod model;
pub mod poll;
mod registry;
mod render;
mod retry;
mod step;
mod sync;
#[cfg(feature = "test-util")]
pub mod test_util;
mod time;

#[doc(hidden)]
pub mod __private;

/// The README's code, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use async_trait::async_trait;
pub use backend::memory::MemoryBackend;
pub use backend::{Backend, SortField, TaskPage, TaskQuery};
pub use callback::{Callback, CallbackError, FnCallback, TaskOutcome, callback_fn};
pub use context::StepContext;
pub use engine::{Backoff, Engine, EngineBuilder, RetryFrom, RetryRequest, Worker, WorkerBuilder};
pub use error::{BackendError, Error, ErrorSource, RegistryError, Result};
pub use flow::{TaskBuilder, TaskMgr};
/// The template engine of step params, re-exported for [`EngineBuilder::templates`] (which hands out its
/// `Environment`) and for filters and functions that use its types (`minijinja::Value`, `minijinja::Error`).
pub use minijinja;
pub use model::{
    CallbackResult, Route, Step, StepOptions, StepStatus, Task, TaskInfo, TaskOptions, TaskStatus,
};
pub use registry::Registry;
pub use render::Renderer;
pub use retry::RetryPolicy;
pub use step::{FnStep, StepError, StepMgr, step_fn};
/// Registers an `async fn` as a step executor, checked at compile time.
///
/// ```standalone_crate
/// use taskflow::prelude::*;
///
/// /// Adds two numbers and shares the sum with later steps.
/// #[step(timeout = "10s", retries = 2)]
/// async fn sum(ctx: &StepContext, sum_a: i64, sum_b: Option<i64>) -> Result<i64, StepError> {
///     let sum = sum_a + sum_b.unwrap_or(0);
///     ctx.set_common("sumC", sum.to_string());
///     Ok(sum)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // The function stays a plain async fn (`StepContext::for_test` comes with the `test-util` feature)...
/// assert_eq!(sum(&StepContext::for_test("sum", &[]), 1, None).await.unwrap(), 1);
/// // ...and its marker type (same name, type namespace) is the registered executor.
/// let ctx = StepContext::for_test("sum", &[("sumA", "40"), ("sumB", "2")]);
/// assert_eq!(StepMgr::run(&sum {}, &ctx).await.unwrap(), serde_json::json!(42));
/// assert_eq!(StepMgr::options(&sum {}).max_execution_seconds, 10);
/// # }
/// ```
///
/// **Signature.** A free `async fn` with no type or const parameters (lifetime parameters are fine) whose future is
/// `Send`:
/// - optionally `&StepContext` first (the task, shared variables, cancellation);
/// - then the arguments, each decoded from the step's rendered param (a string as is, else JSON; a
///   `serde_json::Value` takes JSON first, a number only if it keeps its text) into any
///   `T: DeserializeOwned + Send + 'static`. The **param key is the lowerCamelCase of the Rust name** (`sum_a` → `sumA`), as in
///   the reference framework's task documents. An `Option<T>` argument may be left out of a flow. Arguments are plain
///   names: no `self`, `impl Trait`, other references or destructuring patterns;
/// - returns `Result<T, E>`: `T: Serialize` becomes the step's output (`steps.<name>.output` in later templates),
///   `E: Into<StepError>`. Any `std::error::Error` converts with `?` into a retryable failure; return
///   [`StepError::fatal`] to fail without retry.
///
/// **Options** (`#[step(key = value, ...)]`), defaults of every step built from this executor, which a flow may
/// override per step:
///
/// | option | value | meaning |
/// |---|---|---|
/// | `name` | `"..."` | executor name in the registry (default: the function's name) |
/// | `alias` | `"..."` | display name of built steps |
/// | `timeout` | `"30s"`, `"5m"`, `"1h30m"` | per-attempt timeout: units `d`, `h`, `m`, `s`, `ms`, a whole, non-zero number of seconds |
/// | `retries` | `3` | automatic retries after a retryable failure |
/// | `skip_on_failed` | flag, or `= false` | a failure (after retries) does not stop the task |
/// | `node` / `queue` | `"..."` | run on this worker node / from this queue (one of the two) |
///
/// **What it generates.** Next to the unchanged function: a hidden unit-like marker type with the function's name
/// (type namespace only, so the function stays callable) implementing [`StepMgr`]; the typed handle [`task_flow!`]
/// checks flows against (argument names, types, which are required); and its link-time registration, picked up by
/// [`Engine::builder`]. Steps defined in a library crate the binary never names are not linked: name it with
/// `use my_steps as _;`.
///
/// Misuse is a compile error at the offending tokens: not an `async fn`, `self`, an unsupported argument, a
/// non-`&StepContext` reference, an argument type that does not deserialize, a return type that is not such a
/// `Result`, an unknown or repeated option, a bad duration.
pub use taskflow_macros::step;

/// Registers an `async fn(&TaskOutcome) -> Result<(), E>` as a callback, run once when a task naming it ends.
///
/// ```standalone_crate
/// use taskflow::prelude::*;
///
/// #[callback(name = "notify")]
/// async fn notify_ops(outcome: &TaskOutcome) -> Result<(), CallbackError> {
///     if !outcome.is_success() {
///         eprintln!("task {} ended {}: {:?}", outcome.task_id(), outcome.status, outcome.error);
///     }
///     Ok(())
/// }
///
/// assert_eq!(Callback::name(&notify_ops {}), "notify");
/// ```
///
/// The only option is `name` (default: the function's name). `E: Into<CallbackError>`: any `std::error::Error`
/// converts with `?`; an error on a SUCCESS task turns it into FAILURE with the callback's message. A flow names the
/// callback by path (`callback = notify_ops`); like [`#[step]`](macro@step) it generates a hidden marker type with the
/// function's name implementing [`Callback`], and registers it at link time. A wrong signature (not `async`, not
/// exactly one `&TaskOutcome` argument, no `Result`) is a compile error.
pub use taskflow_macros::callback;
pub use tokio_util::sync::CancellationToken;

/// Everything a flow author needs: `use taskflow::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Callback, CallbackError, Engine, Step, StepContext, StepError, StepMgr, StepStatus, Task,
        TaskMgr, TaskOutcome, TaskQuery, TaskStatus, callback, step, task_flow,
    };
}

/// Declares flows: ordered steps with their params and options, checked at compile time.
///
/// ```standalone_crate
/// use taskflow::prelude::*;
///
/// #[step(timeout = "10s", retries = 2)]
/// async fn sum(ctx: &StepContext, sum_a: i64, sum_b: i64) -> Result<i64, StepError> {
///     ctx.set_common("sumC", (sum_a + sum_b).to_string());
///     Ok(sum_a + sum_b)
/// }
///
/// #[step]
/// async fn hello(greeting: String) -> Result<String, StepError> {
///     Ok(greeting)
/// }
///
/// #[callback]
/// async fn notify(_outcome: &TaskOutcome) -> Result<(), CallbackError> {
///     Ok(())
/// }
///
/// task_flow! {
///     /// Sums two numbers, then greets.
///     pub flow Example {
///         type = "example-test",
///         callback = notify,
///         timeout = "5m",
///         steps {
///             sum(sum_a = "{{ params.a }}", sum_b = 5),
///             hello(greeting = "sum is {{ common.sumC }}") [skip_on_failed, node = "node-a"],
///             sum(sum_a = "{{ steps.sum.output }}", sum_b = 1) [name = "second_sum", delay = "30s"],
///         }
///     }
/// }
///
/// let task = Example::builder().index("cluster-1").creator("admin").param("a", "3").build()?;
/// assert_eq!((task.task_type.as_str(), task.max_execution_seconds), ("example-test", 300));
/// assert_eq!(task.steps[0].params["sumA"], "{{ params.a }}");
/// assert_eq!(task.steps[0].params["sumB"], "5");
/// assert_eq!(task.steps[1].node.as_deref(), Some("node-a"));
/// assert_eq!((task.steps[2].name.as_str(), task.steps[2].executor.as_str()), ("second_sum", "sum"));
/// assert_eq!((task.steps[2].max_retries, task.steps[2].delay_seconds), (2, 30));
/// # Ok::<(), taskflow::Error>(())
/// ```
///
/// **Syntax.** One or more `[attributes] [visibility] flow Name { option = value, ..., steps { ... } }`. Each flow
/// becomes a unit struct `Name` (with the given doc comments and visibility) implementing [`TaskMgr`], an inherent
/// `Name::builder()` returning a [`TaskBuilder`], and a link-time registration.
///
/// Flow options: `name = "..."` (registry name and default task name; default: `Name`), `type = "..."` (task type;
/// default: the name), `callback = path` (a [`#[callback]`](macro@callback) function), `timeout = "5m"` (task
/// deadline), `node = "..."` or `queue = "..."` (default routing of the steps), and `globals = ["region", ...]` (the
/// template globals and functions the engine provides, see below).
///
/// A step is `path(arg = literal, ...) [options]`: `path` names a [`#[step]`](macro@step) function (`sum`,
/// `steps::sum`); the parentheses may be left out when there are no arguments. Arguments use the Rust names; a
/// string literal is given as is and may be a template; numbers and bools are given as their JSON text (`5` →
/// `"5"`) and must fit the argument's type. Step options override the step's own: `name = "..."` (the step's name
/// in the task, default: the function's name; needed to use the same step twice), `alias`, `timeout`, `retries`,
/// `skip_on_failed`, `node` / `queue`, and `delay = "30s"` (after the previous step ends).
///
/// **Templates** are minijinja, rendered right before the step runs, in strict mode. They are parsed at compile
/// time, and may read only `params.<key>` / `common.<key>` (the task's shared variables), `task.<field>` (`id`,
/// `name`, `type`, `index`, `indexType`, `creator`, `payload`), `steps.<name>` of a step that comes **earlier** in
/// the flow (`output`, `status`, `message`), minijinja's built-in functions, and the names listed in `globals`
/// (user globals and functions registered on the engine cannot be known at compile time, so the flow declares them).
/// Filters are not checked.
///
/// **Compile errors**, each at the offending tokens: unknown step, not a step, unknown argument, missing required
/// argument, duplicated argument, a literal that does not fit the argument's type (or out of its range), a
/// non-literal argument, a template syntax error, an undefined template variable or a step output that is not
/// earlier, a bad duration, an unknown or duplicated option, `node` with `queue`, a duplicated step name, an unknown
/// callback or one that is not a `#[callback]`, and a flow without steps.
#[macro_export]
macro_rules! task_flow {
    ($($body:tt)*) => {
        $crate::__private::task_flow_impl! { $crate; $($body)* }
    };
}
