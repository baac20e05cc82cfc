use super::status::callback_result_serde;
use super::{
    CallbackResult, DEFAULT_TASK_MESSAGE, Fingerprint, Route, Step, StepStatus, TaskInfo,
    TaskOptions, TaskStatus, payload, time_serde,
};
use crate::error::Error;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// A task: an ordered chain of [`Step`]s with shared variables, a status and an optional callback.
///
/// Serialises to the reference framework's camelCase task document.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Unique id (a UUID).
    #[serde(alias = "taskID")]
    pub task_id: String,
    /// Free-form type (metrics label, list filter).
    #[serde(default)]
    pub task_type: String,
    /// Human name.
    #[serde(default)]
    pub task_name: String,
    /// Business index for reverse lookup.
    #[serde(default)]
    pub task_index: String,
    /// The kind of the index.
    #[serde(default)]
    pub task_index_type: String,
    /// Name of the step being or last executed.
    #[serde(default)]
    pub current_step: String,
    /// The steps, in execution order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Name of the registered callback ("" = none).
    #[serde(default)]
    pub callback_name: String,
    /// Result of the callback, once it ran (serialised as `""` before).
    #[serde(default, with = "callback_result_serde")]
    pub callback_result: Option<CallbackResult>,
    /// The callback's error message.
    #[serde(default)]
    pub callback_message: String,
    /// Shared variables: written by steps, read by later steps and templates (`common.x` / `params.x`).
    #[serde(default)]
    pub common_params: BTreeMap<String, String>,
    /// A JSON blob of the task.
    #[serde(default = "payload::empty", deserialize_with = "payload::deserialize")]
    pub common_payload: Value,
    /// Status.
    #[serde(default)]
    pub status: TaskStatus,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// When the first step started (the base of the task deadline; reset by a retry).
    #[serde(default, with = "time_serde::opt")]
    pub start: Option<DateTime<Utc>>,
    /// When the task ended.
    #[serde(default, with = "time_serde::opt")]
    pub end: Option<DateTime<Utc>>,
    /// Milliseconds from start to end.
    #[serde(default)]
    pub execution_time: u64,
    /// Task deadline in seconds from [`start`](Self::start) (0 = none).
    #[serde(default)]
    pub max_execution_seconds: u32,
    /// Who created the task.
    #[serde(default)]
    pub creator: String,
    /// Who changed it last.
    #[serde(default)]
    pub updater: String,
    /// When it was created.
    #[serde(default, with = "time_serde::opt")]
    pub created_at: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(default, with = "time_serde::opt")]
    pub last_update: Option<DateTime<Utc>>,
    /// Pins every step to a worker node unless the step says otherwise (taskflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Sends every step to a queue unless the step says otherwise (taskflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The fingerprint of the task as it was given to `Engine::dispatch` (set there; without the times that building a
    /// task sets to "now"): a task dispatched again under the same id is the same task if its fingerprint is this one
    /// (taskflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_fingerprint: Option<Fingerprint>,
}

clone_reusing_buffers!(Task {
    current_step,
    callback_result,
    callback_message,
    status,
    message,
    start,
    end,
    execution_time,
    last_update,
    task_id,
    task_type,
    task_name,
    task_index,
    task_index_type,
    callback_name,
    max_execution_seconds,
    creator,
    updater,
    created_at,
    node,
    queue,
    dispatch_fingerprint,
    steps,
} unless_equal {
    common_params,
    common_payload,
});

/// A fresh task id: a random UUID, hyphenated lower case (encoded directly, without the formatting machinery).
fn new_task_id() -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buffer)
        .to_owned()
}

/// The UUID namespace of the task ids derived from idempotency keys ([`Task::idempotent_id`]).
const IDEMPOTENCY_NAMESPACE: uuid::Uuid = uuid::uuid!("5b0c8f9e-3d2a-4e71-9a6f-1c7e2b4d8a30");

/// Up to this many steps, `validate` looks for duplicate names by comparing pairs.
const SHORT_CHAIN: usize = 16;

impl Task {
    /// A new task without steps (the reference's `NewTask`): a fresh UUID, status INITIALIZING.
    pub fn new(info: TaskInfo, options: TaskOptions) -> Self {
        let now = Utc::now();
        Self {
            task_id: new_task_id(),
            task_type: info.task_type,
            task_name: info.task_name,
            task_index: info.task_index,
            task_index_type: info.task_index_type,
            current_step: String::new(),
            steps: Vec::new(),
            callback_name: options.callback.unwrap_or_default(),
            callback_result: None,
            callback_message: String::new(),
            common_params: BTreeMap::new(),
            common_payload: payload::empty(),
            status: TaskStatus::Initializing,
            message: DEFAULT_TASK_MESSAGE.to_owned(),
            start: None,
            end: None,
            execution_time: 0,
            max_execution_seconds: options.max_execution_seconds,
            updater: info.creator.clone(),
            creator: info.creator,
            created_at: Some(now),
            last_update: Some(now),
            node: options.node,
            queue: options.queue,
            dispatch_fingerprint: None,
        }
    }

    /// The id of the task of this type built with the idempotency key `key`
    /// ([`TaskBuilder::idempotency_key`](crate::TaskBuilder::idempotency_key)): a UUID v5 over the type and the key,
    /// so that a task rebuilt with the same key gets the same id, and so the same task is not dispatched twice.
    pub fn idempotent_id(task_type: &str, key: &str) -> String {
        let name = format!("{}:{task_type}:{key}", task_type.len());
        let mut buffer = uuid::Uuid::encode_buffer();
        uuid::Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes())
            .hyphenated()
            .encode_lower(&mut buffer)
            .to_owned()
    }

    /// Appends a step (chainable).
    pub fn with_step(mut self, step: Step) -> Self {
        self.add_step(step);
        self
    }

    /// Appends a step; the first step becomes the current one.
    pub fn add_step(&mut self, step: Step) {
        if self.current_step.is_empty() {
            self.current_step = step.name.clone();
        }
        self.steps.push(step);
    }

    /// The step with this name.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The step with this name, mutably.
    pub fn step_mut(&mut self, name: &str) -> Option<&mut Step> {
        self.steps.iter_mut().find(|s| s.name == name)
    }

    /// Position of the step with this name.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// A shared variable.
    pub fn common_param(&self, key: &str) -> Option<&str> {
        self.common_params.get(key).map(String::as_str)
    }

    /// Sets a shared variable (before dispatch; steps use [`StepContext::set_common`](crate::StepContext::set_common)).
    pub fn set_common_param(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.common_params.insert(key.into(), value.into());
    }

    /// Whether the task has ended.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// Whether the task has ended and its callback (if any) has run: nothing more will happen to it.
    pub fn is_settled(&self) -> bool {
        self.is_terminal() && (self.callback_name.is_empty() || self.callback_result.is_some())
    }

    /// The task deadline: start + maxExecutionSeconds (none before the start or without a limit).
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        match (self.start, self.max_execution_seconds) {
            (Some(start), secs) if secs > 0 => {
                Some(start + chrono::Duration::seconds(i64::from(secs)))
            }
            _ => None,
        }
    }

    /// Where a step of this task runs.
    pub fn route_of(&self, step: &Step) -> Route {
        step.route(self.node.as_deref(), self.queue.as_deref())
    }

    /// The first step that failed and was not skipped.
    pub fn first_failed_step(&self) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.status == StepStatus::Failure && !s.skipped)
    }

    /// Checks the reference's rules: a name, at least one step, every step named with an executor, unique names.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.task_id.is_empty() {
            problems.push("task id is required".to_owned());
        }
        if self.task_name.is_empty() {
            problems.push("task name is required".to_owned());
        }
        if self.steps.is_empty() {
            problems.push("task steps empty".to_owned());
        }
        // Short chains (the usual case) are checked for duplicates without building a set.
        let mut seen = (self.steps.len() > SHORT_CHAIN)
            .then(|| HashSet::with_hasher(foldhash::fast::RandomState::default()));
        for (i, step) in self.steps.iter().enumerate() {
            let duplicate = match &mut seen {
                Some(seen) => !seen.insert(step.name.as_str()),
                None => self.steps[..i]
                    .iter()
                    .any(|earlier| earlier.name == step.name),
            };
            if step.name.is_empty() {
                problems.push(format!("step #{} name is required", i + 1));
            } else if duplicate {
                problems.push(format!("step name `{}` is not unique", step.name));
            }
            if step.executor.is_empty() {
                problems.push(format!("step `{}` executor is required", step.name));
            }
        }
        if !self.current_step.is_empty() && self.step(&self.current_step).is_none() {
            problems.push(format!(
                "current step `{}` is not a step of the task",
                self.current_step
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidTask(problems.join("; ")))
        }
    }
}
