//! The task document: [`Task`], [`Step`], their statuses and the options used to build them.
//!
//! The document is JSON-compatible with the reference (Go) framework's camelCase task document; the fields taskflow
//! adds (routing, step outputs, attempts) are optional, so a reference document parses as-is.

mod options;
mod payload;
mod route;
mod status;
mod step;
mod task;
mod time_serde;

pub use options::{StepOptions, TaskInfo, TaskOptions};
pub use route::Route;
pub use status::{CallbackResult, StepStatus, TaskStatus};
pub use step::Step;
pub use task::Task;

/// The message of a task that was just created.
pub const DEFAULT_TASK_MESSAGE: &str = "task initializing";
