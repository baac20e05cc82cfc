use super::{Route, RouteRef, StepOptions, StepStatus, payload, time_serde};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One step of a task: which executor runs it, with which params, and how far it got.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Unique name in the task.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub alias: String,
    /// Name of the registered step ([`StepMgr`](crate::StepMgr)) that runs this step.
    pub executor: String,
    /// Inputs; values may be minijinja templates, rendered right before the step runs.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// A JSON blob of the step (read and written by the step).
    #[serde(default = "payload::empty", deserialize_with = "payload::deserialize")]
    pub payload: Value,
    /// Progress.
    #[serde(default)]
    pub status: StepStatus,
    /// Human message about the latest attempt.
    #[serde(default)]
    pub message: String,
    /// Absolute earliest start given when the task was built (wins over [`delay_seconds`](Self::delay_seconds)).
    #[serde(default, with = "time_serde::opt")]
    pub eta: Option<DateTime<Utc>>,
    /// A failure (after retries) does not stop the task.
    #[serde(default)]
    pub skip_on_failed: bool,
    /// Retries performed so far.
    #[serde(default)]
    pub retry_count: u32,
    /// Retries allowed after the first attempt.
    #[serde(default)]
    pub max_retries: u32,
    /// Duration of the latest attempt in milliseconds.
    #[serde(default)]
    pub execution_time: u64,
    /// Per-attempt timeout in seconds (0 = none).
    #[serde(default)]
    pub max_execution_seconds: u32,
    /// Start of the latest attempt.
    #[serde(default, with = "time_serde::opt")]
    pub start: Option<DateTime<Utc>>,
    /// End of the latest attempt.
    #[serde(default, with = "time_serde::opt")]
    pub end: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(default, with = "time_serde::opt")]
    pub last_update: Option<DateTime<Utc>>,
    /// Delay in seconds after the previous step's end (taskflow).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_seconds: u32,
    /// When the queued step becomes due, computed by the engine from the delay, the ETA or a retry back-off (taskflow).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time_serde::opt"
    )]
    pub due_at: Option<DateTime<Utc>>,
    /// Pins the step to a worker node (taskflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Sends the step to a queue (taskflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The value returned by the step, readable by later steps as `steps.<name>.output` (taskflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Executions started so far, including redeliveries after a crash (taskflow).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// The step failed and was skipped (skip-on-failed, or a user's skip); its status stays `FAILURE` (taskflow).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

clone_reusing_buffers!(Step {
    status,
    message,
    retry_count,
    execution_time,
    start,
    end,
    last_update,
    due_at,
    attempt,
    skipped,
    name,
    alias,
    executor,
    eta,
    skip_on_failed,
    max_retries,
    max_execution_seconds,
    delay_seconds,
    node,
    queue,
} unless_equal {
    payload,
    output,
    params,
});

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Step {
    /// A new step (the reference's `NewStep`): status NOTSTARTED, empty params and payload.
    pub fn new(name: impl Into<String>, executor: impl Into<String>, options: StepOptions) -> Self {
        Self {
            name: name.into(),
            alias: options.alias.unwrap_or_default(),
            executor: executor.into(),
            params: BTreeMap::new(),
            payload: payload::empty(),
            status: StepStatus::NotStarted,
            message: String::new(),
            eta: options.eta,
            skip_on_failed: options.skip_on_failed,
            retry_count: 0,
            max_retries: options.max_retries,
            execution_time: 0,
            max_execution_seconds: options.max_execution_seconds,
            start: None,
            end: None,
            last_update: Some(Utc::now()),
            delay_seconds: options.delay_seconds,
            due_at: None,
            node: options.node,
            queue: options.queue,
            output: None,
            attempt: 0,
            skipped: false,
        }
    }

    /// Adds (or replaces) a param; chainable.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// Whether the step is done for good: succeeded, or failed with no retry left (the reference's `IsCompleted`).
    pub fn is_completed(&self) -> bool {
        match self.status {
            StepStatus::Success => true,
            StepStatus::Failure => self.retry_count >= self.max_retries,
            _ => false,
        }
    }

    /// Where the step runs: its own node or queue, else the task's, else the default queue.
    pub fn route(&self, task_node: Option<&str>, task_queue: Option<&str>) -> Route {
        self.route_ref(task_node, task_queue).to_route()
    }

    /// [`route`](Self::route), borrowed.
    pub(crate) fn route_ref<'a>(
        &'a self,
        task_node: Option<&'a str>,
        task_queue: Option<&'a str>,
    ) -> RouteRef<'a> {
        if self.node.is_some() || self.queue.is_some() {
            RouteRef::pick(self.node.as_deref(), self.queue.as_deref())
        } else {
            RouteRef::pick(task_node, task_queue)
        }
    }

    /// Forgets every trace of earlier executions (used by a retry).
    pub(crate) fn reset(&mut self) {
        self.status = StepStatus::NotStarted;
        self.message.clear();
        self.retry_count = 0;
        self.execution_time = 0;
        self.start = None;
        self.end = None;
        self.output = None;
        self.attempt = 0;
        self.skipped = false;
        self.due_at = None;
        self.last_update = Some(Utc::now());
    }
}
