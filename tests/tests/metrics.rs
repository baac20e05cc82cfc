//! The engine's metrics, read through a recorder installed before the engine is built (a binary of its own: the
//! recorder is process-wide).

use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use taskflow::{Backend, MemoryBackend, RetryPolicy};
use taskflow::{
    CallbackError, Engine, Step, StepError, StepOptions, Task, TaskInfo, TaskOptions, TaskStatus,
    callback_fn, step_fn,
};
use taskflow_tests::hooks::{Hooked, Hooks};

/// What a snapshot holds: metric key and value.
type Metrics = Vec<(CompositeKey, DebugValue)>;

/// The counter `name` with exactly these labels in a snapshot (0 when it was never registered).
fn counter(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .iter()
        .find_map(|(key, value)| {
            let key = key.key();
            let same_labels = key.labels().count() == labels.len()
                && labels.iter().all(|(name, value)| {
                    key.labels()
                        .any(|label| label.key() == *name && label.value() == *value)
                });
            match value {
                DebugValue::Counter(count) if key.name() == name && same_labels => Some(*count),
                _ => None,
            }
        })
        .unwrap_or(0)
}

fn task(name: &str, executor: &str) -> Task {
    task_with(
        name,
        executor,
        TaskOptions::default(),
        StepOptions::default(),
    )
}

fn task_with(name: &str, executor: &str, options: TaskOptions, first: StepOptions) -> Task {
    let info = TaskInfo {
        task_name: name.into(),
        task_type: "metered".into(),
        ..Default::default()
    };
    let mut task = Task::new(info, options);
    task.add_step(Step::new("first", "ok", first));
    task.add_step(Step::new("second", executor, StepOptions::default()));
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatches_task_ends_and_step_outcomes_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");
    // The first create's answer is lost: the engine sends the task again and finds it stored by that first attempt.
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let hooks = Hooks {
        lost_create_answers: AtomicUsize::new(1),
        ..Hooks::default()
    };
    let (backend, hooks) = Hooked::wrap(&memory, hooks);
    let engine = Engine::builder()
        .shared_backend(backend)
        .retry_policy(RetryPolicy::default().min_delay(Duration::from_millis(1)))
        .without_inventory()
        .step(step_fn("ok", |_ctx| async { Ok(()) }))
        .step(step_fn("boom", |_ctx| async {
            Err::<(), _>(StepError::fatal("boom"))
        }))
        .callback(callback_fn("grumpy", |_outcome| async {
            Err(CallbackError::new("no"))
        }))
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    let wait = Duration::from_secs(30);
    for (name, executor, status) in [
        ("good", "ok", TaskStatus::Success),
        ("also good", "ok", TaskStatus::Success),
        ("bad", "boom", TaskStatus::Failure),
    ] {
        let sent = task(name, executor);
        let id = engine.dispatch(sent.clone()).await.unwrap();
        assert_eq!(engine.wait_timeout(&id, wait).await.unwrap().status, status);
        // The same task sent again is not dispatched (nor counted) twice; the first one is counted although the
        // answer of its first attempt was lost.
        assert_eq!(engine.dispatch(sent).await.unwrap(), id);
    }
    // A failing callback turns a success into one FAILURE, not a SUCCESS and a FAILURE.
    let grumpy = TaskOptions {
        callback: Some("grumpy".into()),
        ..Default::default()
    };
    let id = engine
        .dispatch(task_with(
            "called back",
            "ok",
            grumpy,
            StepOptions::default(),
        ))
        .await
        .unwrap();
    let done = engine.wait_timeout(&id, wait).await.unwrap();
    assert_eq!(done.status, TaskStatus::Failure);
    // A client's cancel ends a task too (here one waiting an hour for its first step).
    let later = StepOptions {
        delay_seconds: 3600,
        ..Default::default()
    };
    let id = engine
        .dispatch(task_with("cancelled", "ok", TaskOptions::default(), later))
        .await
        .unwrap();
    assert_eq!(
        engine.cancel(&id).await.unwrap().status,
        TaskStatus::Revoked
    );
    worker.shutdown().await;
    assert_eq!(
        hooks.lost_create_answers.load(Ordering::SeqCst),
        0,
        "an answer was lost"
    );

    // Counters are read once: a snapshot resets them.
    let metrics: Metrics = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect();
    let by_type = [("task_type", "metered")];
    assert_eq!(
        counter(&metrics, "taskflow_task_dispatched_total", &by_type),
        5
    );
    let finished = |status| {
        counter(
            &metrics,
            "taskflow_task_finished_total",
            &[("task_type", "metered"), ("status", status)],
        )
    };
    assert_eq!(finished("SUCCESS"), 2);
    assert_eq!(finished("FAILURE"), 2);
    assert_eq!(finished("REVOKED"), 1);
    assert_eq!(finished("TIMEOUT"), 0);
    let steps = |executor, status| {
        counter(
            &metrics,
            "taskflow_step_execute_total",
            &[
                ("task_type", "metered"),
                ("executor", executor),
                ("status", status),
            ],
        )
    };
    assert_eq!(steps("ok", "SUCCESS"), 7);
    assert_eq!(steps("boom", "FAILURE"), 1);
    assert_eq!(steps("ok", "FAILURE"), 0);
}
