//! The worker's metrics handles, registered once per (task type, executor) rather than on every step.
//!
//! Install the `metrics` recorder before starting workers: handles registered earlier stay no-ops.

use metrics::{Counter, Gauge, Histogram};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Handles of one (task type, executor).
pub(crate) struct StepMetrics {
    task_type: String,
    executor: String,
    running: Gauge,
    outcomes: Mutex<HashMap<&'static str, (Counter, Histogram)>>,
}

impl StepMetrics {
    /// A step attempt starts.
    pub(crate) fn started(&self) {
        self.running.increment(1.0);
    }

    /// A step attempt ended with `status` after `elapsed`.
    pub(crate) fn finished(&self, status: &'static str, elapsed: Duration) {
        self.running.decrement(1.0);
        let mut outcomes = self.outcomes.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, duration) = outcomes.entry(status).or_insert_with(|| {
            let labels = [
                ("task_type", self.task_type.clone()),
                ("executor", self.executor.clone()),
                ("status", status.to_owned()),
            ];
            (
                metrics::counter!("taskflow_step_execute_total", &labels),
                metrics::histogram!("taskflow_step_execute_duration_seconds", &labels),
            )
        });
        count.increment(1);
        duration.record(elapsed.as_secs_f64());
    }
}

/// The handles of every (task type, executor) a worker ran.
#[derive(Default)]
pub(crate) struct MetricsCache {
    steps: Mutex<HashMap<String, HashMap<String, Arc<StepMetrics>>>>,
}

impl MetricsCache {
    /// The handles of a step, registered on first use.
    pub(crate) fn step(&self, task_type: &str, executor: &str) -> Arc<StepMetrics> {
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
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
        let handles = Arc::new(StepMetrics {
            task_type: task_type.to_owned(),
            executor: executor.to_owned(),
            running: metrics::gauge!("taskflow_step_running", &labels),
            outcomes: Mutex::default(),
        });
        steps
            .entry(task_type.to_owned())
            .or_default()
            .insert(executor.to_owned(), Arc::clone(&handles));
        handles
    }
}
