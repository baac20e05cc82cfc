//! [`StepContext`]: what a running step sees of its task, and how it writes shared variables.

use crate::model::{Step, Task};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio_util::sync::CancellationToken;

/// The view of one step attempt: the task as committed when the attempt started, the step's rendered params, the
/// shared variables it writes and its cancellation signal.
///
/// Writes ([`set_common`](Self::set_common), [`set_payload`](Self::set_payload), ...) are buffered and committed
/// atomically with the step's result when the attempt succeeds; a failed attempt's writes are discarded.
///
/// Cheap to clone: clones share the same attempt (and the same buffered writes).
#[derive(Clone)]
pub struct StepContext {
    inner: Arc<Inner>,
}

struct Inner {
    task: Arc<Task>,
    step_index: usize,
    params: BTreeMap<String, String>,
    writes: Mutex<Writes>,
    /// The signal to stop this attempt's task here (a user cancelled it, or the worker's session was lost).
    stop: CancellationToken,
    /// This attempt's own token, a child of `stop`, made when first asked for (most steps never ask): cancelling it
    /// reaches this attempt only, never the next step's.
    attempt: OnceLock<CancellationToken>,
}

/// What a step attempt wrote, applied to the task when the attempt succeeds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writes {
    pub(crate) common: BTreeMap<String, String>,
    pub(crate) common_payload: Option<Value>,
    pub(crate) payload: Option<Value>,
}

impl StepContext {
    /// A context for the step at `step_index` of `task`, with already rendered `params`; cancelling `cancel` tells
    /// the step to stop.
    pub(crate) fn new(
        task: Arc<Task>,
        step_index: usize,
        params: BTreeMap<String, String>,
        cancel: CancellationToken,
    ) -> Self {
        assert!(
            step_index < task.steps.len(),
            "step index {step_index} out of range"
        );
        Self {
            inner: Arc::new(Inner {
                task,
                step_index,
                params,
                writes: Mutex::default(),
                stop: cancel,
                attempt: OnceLock::new(),
            }),
        }
    }

    /// A context for a one-step task running `executor` with `params`, to unit-test a step without an engine
    /// (feature `test-util`).
    #[cfg(feature = "test-util")]
    pub fn for_test(executor: &str, params: &[(&str, &str)]) -> Self {
        let step = Step::new(executor, executor, Default::default());
        let task = Task::new(
            crate::TaskInfo {
                task_name: "test".into(),
                ..Default::default()
            },
            Default::default(),
        )
        .with_step(step);
        let params = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::new(Arc::new(task), 0, params, CancellationToken::new())
    }

    /// The task as committed when this attempt started (this step RUNNING, its attempt counted).
    pub fn task(&self) -> &Task {
        &self.inner.task
    }

    /// The task id.
    pub fn task_id(&self) -> &str {
        &self.inner.task.task_id
    }

    /// This step.
    pub fn step(&self) -> &Step {
        &self.inner.task.steps[self.inner.step_index]
    }

    /// This step's name.
    pub fn step_name(&self) -> &str {
        &self.step().name
    }

    /// The attempt number (1 for the first execution; counts retries and redeliveries).
    pub fn attempt(&self) -> u32 {
        self.step().attempt
    }

    /// Retries performed before this attempt.
    pub fn retry_count(&self) -> u32 {
        self.step().retry_count
    }

    /// A rendered param.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.inner.params.get(key).map(String::as_str)
    }

    /// Every rendered param.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.inner.params
    }

    /// A shared variable, including what this attempt wrote.
    pub fn common(&self, key: &str) -> Option<String> {
        if let Some(value) = self.writes().common.get(key) {
            return Some(value.clone());
        }
        self.inner.task.common_params.get(key).cloned()
    }

    /// Writes a shared variable, committed with the step's result.
    pub fn set_common(&self, key: impl Into<String>, value: impl Into<String>) {
        self.writes().common.insert(key.into(), value.into());
    }

    /// The output of an earlier step.
    pub fn output_of(&self, step: &str) -> Option<&Value> {
        self.inner.task.step(step).and_then(|s| s.output.as_ref())
    }

    /// The task's payload, decoded.
    pub fn common_payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let written = self.writes().common_payload.clone();
        serde_json::from_value(written.unwrap_or_else(|| self.inner.task.common_payload.clone()))
    }

    /// Replaces the task's payload, committed with the step's result.
    pub fn set_common_payload(&self, payload: &impl Serialize) -> Result<(), serde_json::Error> {
        self.writes().common_payload = Some(serde_json::to_value(payload)?);
        Ok(())
    }

    /// This step's payload, decoded.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let written = self.writes().payload.clone();
        serde_json::from_value(written.unwrap_or_else(|| self.step().payload.clone()))
    }

    /// Replaces this step's payload, committed with the step's result.
    pub fn set_payload(&self, payload: &impl Serialize) -> Result<(), serde_json::Error> {
        self.writes().payload = Some(serde_json::to_value(payload)?);
        Ok(())
    }

    /// Whether the step should stop: the task was cancelled (its future is dropped after the engine's cancel grace
    /// period), the worker's session was lost, or a timeout or the end of a shutdown grace period is dropping it.
    pub fn is_cancelled(&self) -> bool {
        self.inner
            .attempt
            .get()
            .unwrap_or(&self.inner.stop)
            .is_cancelled()
    }

    /// Completes when the step should stop (see [`is_cancelled`](Self::is_cancelled)).
    pub async fn cancelled(&self) {
        self.token().cancelled().await;
    }

    /// The cancellation token of this attempt (e.g. to hand to a long-polling helper or a child task). Cancelling it
    /// tells whoever holds it to stop; the engine still waits for the step's result (to stop a task, cancel the task).
    pub fn cancellation_token(&self) -> CancellationToken {
        self.token().clone()
    }

    /// Tells this attempt and its helpers to stop (the engine drops the attempt: a timeout, or shutdown).
    pub(crate) fn cancel(&self) {
        self.token().cancel();
    }

    fn token(&self) -> &CancellationToken {
        self.inner
            .attempt
            .get_or_init(|| self.inner.stop.child_token())
    }

    /// Takes what the attempt wrote.
    pub(crate) fn take_writes(&self) -> Writes {
        std::mem::take(&mut *self.writes())
    }

    fn writes(&self) -> MutexGuard<'_, Writes> {
        crate::sync::lock(&self.inner.writes)
    }
}
