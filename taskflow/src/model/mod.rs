//! The task document: [`Task`], [`Step`], their statuses and the options used to build them.
//!
//! The document is JSON-compatible with the reference (Go) framework's camelCase task document; the fields taskflow
//! adds (routing, step outputs, attempts) are optional, so a reference document parses as-is.

/// Implements `Clone` with a `clone_from` that reuses the target's buffers: a driver writes each draft into an
/// older revision of the document nobody holds any more, which saves allocations on every step. Strings and vectors
/// copy into their buffers; maps and JSON values (the `unless_equal` group), which cannot, are replaced only when they
/// differ ([`Identical`]) — rarely, between two revisions. Listing every field is enforced: `clone` builds the struct
/// literally.
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
                $(self.$field.clone_from(&source.$field);)*
                $(if !$crate::model::Identical::identical(&self.$kept, &source.$kept) {
                    self.$kept.clone_from(&source.$kept);
                })*
            }
        }
    };
}

/// Exact equality, for keeping a field of a recycled document: unlike `Value`'s `==`, `0.0` and `-0.0` differ.
trait Identical {
    fn identical(&self, other: &Self) -> bool;
}

impl Identical for std::collections::BTreeMap<String, String> {
    fn identical(&self, other: &Self) -> bool {
        self == other
    }
}

impl Identical for serde_json::Value {
    fn identical(&self, other: &Self) -> bool {
        use serde_json::Value;
        match (self, other) {
            (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) if a.is_f64() || b.is_f64() => {
                    a.is_f64() == b.is_f64() && x.to_bits() == y.to_bits()
                }
                _ => a == b,
            },
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.identical(y))
            }
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.identical(vb))
            }
            (a, b) => a == b,
        }
    }
}

impl<T: Identical> Identical for Option<T> {
    fn identical(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.identical(b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

mod fingerprint;
mod options;
mod payload;
mod route;
mod status;
mod step;
mod task;
mod time_serde;

pub use fingerprint::Fingerprint;
pub use options::{StepOptions, TaskInfo, TaskOptions};
pub use route::Route;
pub(crate) use route::RouteRef;

/// Overwrites `target` with the concatenation of `parts`, reusing its buffer (the engine recycles documents and
/// messages from one revision to the next).
pub(crate) fn set(target: &mut String, parts: &[&str]) {
    target.clear();
    for part in parts {
        target.push_str(part);
    }
}
pub use status::{CallbackResult, StepStatus, TaskStatus};
pub use step::Step;
pub use task::Task;

/// The message of a task that was just created.
pub const DEFAULT_TASK_MESSAGE: &str = "task initializing";
