//! # taskflow
//!
//! Distributed, durable, asynchronous task flows. A *task* is an ordered chain of *steps*; steps are `async fn`s
//! marked [`#[step]`](macro@step); flows are declared with [`task_flow!`]; workers on tokio claim and run steps; the
//! state lives in a [`Backend`]: etcd (feature `etcd`) for many worker processes, or the embedded
//! [`MemoryBackend`] for one process.
//!
//! ```
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
//! ([`Engine`], [`Worker`]), rendering ([`Renderer`]), the registry ([`Registry`]) and the polling helper ([`poll`]).

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
mod step;
mod time;

#[doc(hidden)]
pub mod __private;

pub use async_trait::async_trait;
pub use backend::memory::MemoryBackend;
pub use backend::{Backend, SortField, TaskPage, TaskQuery};
pub use callback::{Callback, CallbackError, FnCallback, TaskOutcome, callback_fn};
pub use context::StepContext;
pub use engine::{Backoff, Engine, EngineBuilder, RetryFrom, RetryRequest, Worker, WorkerBuilder};
pub use error::{BackendError, Error, Result};
pub use flow::{TaskBuilder, TaskMgr};
pub use model::{
    CallbackResult, Route, Step, StepOptions, StepStatus, Task, TaskInfo, TaskOptions, TaskStatus,
};
pub use registry::{
    CallbackRegistration, FlowRegistration, Origin, Registry, RegistryError, StepRegistration,
};
pub use render::Renderer;
pub use step::{FnStep, StepError, StepMgr, step_fn};
pub use taskflow_macros::{callback, step};
pub use tokio_util::sync::CancellationToken;

/// Everything a flow author needs: `use taskflow::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Callback, CallbackError, Engine, Step, StepContext, StepError, StepMgr, StepStatus, Task,
        TaskMgr, TaskOutcome, TaskQuery, TaskStatus, callback, step, task_flow,
    };
}

/// Declares a flow: its type, callback, timeout and ordered steps, checked at compile time. See the crate docs.
#[macro_export]
macro_rules! task_flow {
    ($($body:tt)*) => {
        $crate::__private::task_flow_impl! { $crate; $($body)* }
    };
}
