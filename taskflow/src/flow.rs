//! Flows: the [`TaskMgr`] trait (what `task_flow!` generates) and the [`TaskBuilder`] that turns a flow into a [`Task`].

use crate::error::{Error, Result};
use crate::model::{Step, Task, TaskInfo, TaskOptions};
use serde::Serialize;
use std::time::Duration;

/// A registered flow: a named, typed recipe of steps (the seed's `TaskMgr`).
pub trait TaskMgr: Send + Sync + 'static {
    /// The flow name (registry key, and the default task name).
    fn name(&self) -> &str;

    /// The task type given to built tasks.
    fn task_type(&self) -> &str;

    /// Default options of built tasks (callback, timeout, routing).
    fn options(&self) -> TaskOptions {
        TaskOptions::default()
    }

    /// The ordered steps of a new task.
    fn steps(&self) -> Vec<Step>;

    /// Builds a validated task (the seed's `BuildTask`): `info` and `options` as given, the flow's steps.
    fn build_task(&self, info: TaskInfo, options: TaskOptions) -> Result<Task> {
        let mut task = Task::new(info, options);
        for step in self.steps() {
            task.add_step(step);
        }
        task.validate()?;
        Ok(task)
    }
}

/// Builds a [`Task`] from a flow: business index, creator, shared params and option overrides.
///
/// ```
/// # use taskflow::{Step, StepOptions, TaskBuilder, TaskMgr};
/// # struct Flow;
/// # impl TaskMgr for Flow {
/// #     fn name(&self) -> &str { "flow" }
/// #     fn task_type(&self) -> &str { "demo" }
/// #     fn steps(&self) -> Vec<Step> { vec![Step::new("a", "a", StepOptions::default())] }
/// # }
/// let task = TaskBuilder::new(&Flow).index("cluster-1").creator("admin").param("a", "3").build()?;
/// assert_eq!(task.common_params["a"], "3");
/// # Ok::<(), taskflow::Error>(())
/// ```
#[must_use = "a task builder does nothing until `build`"]
pub struct TaskBuilder<'a> {
    flow: &'a dyn TaskMgr,
    info: TaskInfo,
    options: TaskOptions,
    params: Vec<(String, String)>,
    payload: Option<serde_json::Value>,
    task_id: Option<String>,
    error: Option<Error>,
}

impl<'a> TaskBuilder<'a> {
    /// A builder for tasks of `flow`, with the flow's default options.
    pub fn new(flow: &'a dyn TaskMgr) -> Self {
        let info = TaskInfo {
            task_type: flow.task_type().to_owned(),
            task_name: flow.name().to_owned(),
            ..TaskInfo::default()
        };
        Self {
            options: flow.options(),
            flow,
            info,
            params: Vec::new(),
            payload: None,
            task_id: None,
            error: None,
        }
    }

    /// The task id (default: a fresh random UUID). Dispatching a task whose id is taken stores nothing: it succeeds
    /// if the stored task is the same one (a re-send), else it fails with [`Error::IdTaken`].
    pub fn id(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = Some(task_id.into());
        self
    }

    /// Derives the task id from an idempotency key (a UUID v5 over the flow's task type and the key, see
    /// [`Task::idempotent_id`]), so that a task rebuilt with the same key is dispatched once: with the same content it
    /// is the same task ([`Engine::dispatch`](crate::Engine::dispatch) returns the existing id), with other content it
    /// is refused with [`Error::IdTaken`]. The times that building a task sets to "now" do not count.
    pub fn idempotency_key(self, key: &str) -> Self {
        let task_id = Task::idempotent_id(self.flow.task_type(), key);
        self.id(task_id)
    }

    /// The task name (defaults to the flow name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.info.task_name = name.into();
        self
    }

    /// The business index (e.g. a cluster id).
    pub fn index(mut self, index: impl Into<String>) -> Self {
        self.info.task_index = index.into();
        self
    }

    /// The kind of the business index.
    pub fn index_type(mut self, index_type: impl Into<String>) -> Self {
        self.info.task_index_type = index_type.into();
        self
    }

    /// Who creates the task.
    pub fn creator(mut self, creator: impl Into<String>) -> Self {
        self.info.creator = creator.into();
        self
    }

    /// A shared variable (`params.<key>` / `common.<key>` in templates).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// The task's JSON payload.
    pub fn payload(mut self, payload: &impl Serialize) -> Self {
        match serde_json::to_value(payload) {
            Ok(value) => self.payload = Some(value),
            Err(e) => {
                self.error = Some(Error::InvalidTask(format!(
                    "payload does not serialise: {e}"
                )))
            }
        }
        self
    }

    /// Overrides the flow's callback.
    pub fn callback(mut self, name: impl Into<String>) -> Self {
        self.options.callback = Some(name.into());
        self
    }

    /// Overrides the task deadline (whole seconds, rounded up; zero = none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.max_execution_seconds = crate::time::whole_seconds(timeout);
        self
    }

    /// Pins every step without its own routing to a worker node (instead of the flow's node or queue).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.options.node = Some(node.into());
        self.options.queue = None;
        self
    }

    /// Sends every step without its own routing to a queue (instead of the flow's node or queue).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.options.queue = Some(queue.into());
        self.options.node = None;
        self
    }

    /// Builds and validates the task.
    pub fn build(self) -> Result<Task> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut task = self.flow.build_task(self.info, self.options)?;
        if let Some(task_id) = self.task_id {
            task.task_id = task_id;
            task.validate()?;
        }
        task.common_params.extend(self.params);
        if let Some(payload) = self.payload {
            task.common_payload = payload;
        }
        Ok(task)
    }
}
