//! The worker's metrics handles, registered once per (task type, executor) rather than on every step.
//!
//! Install the `metrics` recorder before starting workers: handles registered earlier stay no-ops.

use crate::FastMap;
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
    running: Gauge,
    /// Count and duration, by [`StepEnd`].
    outcomes: [(Counter, Histogram); 5],
}

impl StepMetrics {
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

/// The handles of every (task type, executor) a worker ran.
#[derive(Default)]
pub(crate) struct MetricsCache {
    steps: Mutex<FastMap<String, FastMap<String, Arc<StepMetrics>>>>,
}

impl MetricsCache {
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
