//! Specs and messages for the worker's unit tests.

use crate::backend::{Message, Work, WorkerSpec};
use crate::model::Route;
use chrono::{DateTime, Duration, TimeZone, Utc};

/// A worker of node `n1` serving queue `q`, running executor `exec` and callback `cb`.
pub(super) fn spec() -> WorkerSpec {
    WorkerSpec {
        worker_id: "w1".into(),
        node: "n1".into(),
        queues: vec!["q".into()],
        executors: vec!["exec".into()],
        callbacks: vec!["cb".into()],
    }
}

/// A fixed instant plus `seconds`.
pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(seconds)
}

/// The message of step `step` (executor `executor`) of task `task_id` on queue `queue`, due at `due`.
pub(super) fn message(task_id: &str, queue: &str, executor: &str, due: i64) -> Message {
    Message {
        task_id: task_id.into(),
        work: Work::Step {
            step: "s".into(),
            executor: executor.into(),
        },
        route: Route::Queue(queue.into()),
        due: at(due),
        deadline: None,
    }
}
