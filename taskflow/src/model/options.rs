use serde::{Deserialize, Serialize};

/// Who and what a task is about: the reference's `TaskInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskInfo {
    /// Free-form type, e.g. `"create-cluster"` (a metrics label and a list filter).
    pub task_type: String,
    /// Human name of the task (required).
    pub task_name: String,
    /// Business index for reverse lookup, e.g. a cluster id.
    pub task_index: String,
    /// The kind of [`task_index`](Self::task_index).
    pub task_index_type: String,
    /// Who created the task.
    pub creator: String,
}

/// Options of a task: the reference's `TaskOption`s plus routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// Name of a registered callback run once when the task ends.
    pub callback: Option<String>,
    /// Task deadline in seconds from the task's start (0 = none).
    pub max_execution_seconds: u32,
    /// Pins every step of the task to a worker node (a step's own routing wins).
    pub node: Option<String>,
    /// Sends every step of the task to a queue (a step's own routing wins).
    pub queue: Option<String>,
}

/// Options of a step: the reference's `StepOption`s plus delays and routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOptions {
    /// Display name.
    pub alias: Option<String>,
    /// Automatic retries after a failure (0 = none; attempts = retries + 1).
    pub max_retries: u32,
    /// A failure (after retries) does not stop the task.
    pub skip_on_failed: bool,
    /// Per-attempt timeout in seconds (0 = none).
    pub max_execution_seconds: u32,
    /// Delay in seconds after the previous step's end (or the dispatch, for the first step).
    pub delay_seconds: u32,
    /// Absolute earliest start (wins over the relative delay).
    pub eta: Option<chrono::DateTime<chrono::Utc>>,
    /// Pins the step to a worker node.
    pub node: Option<String>,
    /// Sends the step to a queue.
    pub queue: Option<String>,
}
