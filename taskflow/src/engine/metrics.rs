//! The engine's metrics handles, registered once per task type and per (task type, executor) rather than on every
//! dispatch or step.
//!
//! Install the `metrics` recorder before building the engine: handles registered earlier stay no-ops.

use crate::model::{Task, TaskStatus};
use foldhash::HashMap;
use metrics::{Counter, Gauge, Histogram};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a step attempt ended, as the `status` label says.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StepEnd {
    Success,
    Failure,
    Revoked,
    Timeout,
    Interrupted,
}

impl StepEnd {
    const ALL: [StepEnd; 5] = [
        StepEnd::Success,
        StepEnd::Failure,
        StepEnd::Revoked,
        StepEnd::Timeout,
        StepEnd::Interrupted,
    ];

    fn label(self) -> &'static str {
        match self {
            StepEnd::Success => "SUCCESS",
            StepEnd::Failure => "FAILURE",
            StepEnd::Revoked => "REVOKED",
            StepEnd::Timeout => "TIMEOUT",
            StepEnd::Interrupted => "INTERRUPTED",
        }
    }
}

/// Handles of one (task type, executor).
pub(crate) struct StepMetrics {
    executor: String,
    running: Gauge,
    /// Count and duration, by [`StepEnd`].
    outcomes: [(Counter, Histogram); 5],
}

impl StepMetrics {
    /// The executor these handles count.
    pub(crate) fn executor(&self) -> &str {
        &self.executor
    }

    /// A step attempt starts.
    pub(crate) fn started(&self) {
        self.running.increment(1.0);
    }

    /// A step attempt ended after `elapsed`.
    pub(crate) fn finished(&self, end: StepEnd, elapsed: Duration) {
        self.running.decrement(1.0);
        let (count, duration) = &self.outcomes[end as usize];
        count.increment(1);
        duration.record(elapsed.as_secs_f64());
    }
}

/// The statuses that end a task, in the order of `TaskMetrics::finished`.
const ENDS: [TaskStatus; 4] = [
    TaskStatus::Success,
    TaskStatus::Failure,
    TaskStatus::Timeout,
    TaskStatus::Revoked,
];

/// Handles of one task type.
pub(crate) struct TaskMetrics {
    dispatched: Counter,
    /// Tasks ended, by status (as in [`ENDS`]).
    finished: [Counter; ENDS.len()],
}

impl TaskMetrics {
    /// A task was dispatched.
    pub(crate) fn dispatched(&self) {
        self.dispatched.increment(1);
    }

    /// A task settled with `status`.
    fn finished(&self, status: TaskStatus) {
        if let Some(slot) = ENDS.iter().position(|end| *end == status) {
            self.finished[slot].increment(1);
        }
    }
}

/// The handles of every task type and (task type, executor) the engine met.
#[derive(Default)]
pub(crate) struct MetricsCache {
    tasks: Mutex<HashMap<String, Arc<TaskMetrics>>>,
    steps: Mutex<HashMap<String, HashMap<String, Arc<StepMetrics>>>>,
}

impl MetricsCache {
    /// Counts the end of a task once a commit settled it (it ended and its callback, if any, ran), by its final
    /// status: a callback that fails a successful task makes it one FAILURE, and a client's cancel counts too.
    pub(crate) fn count_settled(&self, was_settled: bool, task: &Task) {
        if task.is_settled() && !was_settled {
            self.task(&task.task_type).finished(task.status);
        }
    }

    /// The handles of a task type, registered on first use.
    pub(crate) fn task(&self, task_type: &str) -> Arc<TaskMetrics> {
        let mut tasks = crate::sync::lock(&self.tasks);
        if let Some(found) = tasks.get(task_type) {
            return Arc::clone(found);
        }
        let handles = Arc::new(TaskMetrics {
            dispatched: metrics::counter!("taskflow_task_dispatched_total", "task_type" => task_type.to_owned()),
            finished: ENDS.map(|status| {
                metrics::counter!("taskflow_task_finished_total", "task_type" => task_type.to_owned(),
                    "status" => status.as_str())
            }),
        });
        tasks.insert(task_type.to_owned(), Arc::clone(&handles));
        handles
    }

    /// The handles of a step, registered on first use.
    pub(crate) fn step(&self, task_type: &str, executor: &str) -> Arc<StepMetrics> {
        let mut steps = crate::sync::lock(&self.steps);
        if let Some(found) = steps
            .get(task_type)
            .and_then(|by_executor| by_executor.get(executor))
        {
            return Arc::clone(found);
        }
        let labels = [
            ("task_type", task_type.to_owned()),
            ("executor", executor.to_owned()),
        ];
        let outcomes = StepEnd::ALL.map(|end| {
            let labels = [
                ("task_type", task_type.to_owned()),
                ("executor", executor.to_owned()),
                ("status", end.label().to_owned()),
            ];
            (
                metrics::counter!("taskflow_step_execute_total", &labels),
                metrics::histogram!("taskflow_step_execute_duration_seconds", &labels),
            )
        });
        let handles = Arc::new(StepMetrics {
            executor: executor.to_owned(),
            running: metrics::gauge!("taskflow_step_running", &labels),
            outcomes,
        });
        steps
            .entry(task_type.to_owned())
            .or_default()
            .insert(executor.to_owned(), Arc::clone(&handles));
        handles
    }
}
