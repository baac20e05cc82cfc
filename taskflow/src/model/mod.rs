//! The task document: [`Task`], [`Step`], their statuses and the options used to build them.
//!
//! The document is JSON-compatible with the reference (Go) framework's camelCase task document; the fields taskflow
//! adds (routing, step outputs, attempts) are optional, so a reference document parses as-is.

/// Implements `Clone` with a `clone_from` that reuses the target's buffers: the engine recycles the previous revision
/// of a document as the next draft, which saves allocations on every step. Strings and vectors copy into their
/// buffers; maps and JSON values (after `unless_equal`), which cannot, are replaced only when they differ — rarely,
/// between two revisions. Listing every field is enforced: `clone` builds the struct literally.
macro_rules! clone_reusing_buffers {
    ($ty:ident { $($field:ident),* $(,)? } unless_equal { $($kept:ident),* $(,)? }) => {
        impl Clone for $ty {
            fn clone(&self) -> Self {
                Self {
                    $($field: self.$field.clone(),)*
                    $($kept: self.$kept.clone(),)*
                }
            }

            fn clone_from(&mut self, source: &Self) {
                let Self { $($field,)* $($kept,)* } = self;
                $($field.clone_from(&source.$field);)*
                $(if *$kept != source.$kept {
                    $kept.clone_from(&source.$kept);
                })*
            }
        }
    };
}

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
