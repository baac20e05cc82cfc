//! etcd's request limit reached by a step's result or a callback's: it fails with a clear message, nothing is lost.
#![cfg(feature = "etcd")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use taskflow::{
    CallbackError, CallbackResult, Step, StepOptions, StepStatus, Task, TaskInfo, TaskOptions,
    TaskStatus, callback_fn, step_fn,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_step_result_fails_the_step_and_the_chain_goes_on() {
    let b = taskflow_tests::etcd::backend().await;
    let huge = step_fn("huge", |_ctx| async { Ok("x".repeat(2 * 1024 * 1024)) });
    let small = step_fn("small", |_ctx| async { Ok("fits") });
    let engine = b.engine().step(huge).step(small).build().unwrap();
    let worker = engine.worker().start().await.unwrap();
    let info = TaskInfo {
        task_name: "limits".into(),
        ..Default::default()
    };
    let skip = StepOptions {
        skip_on_failed: true,
        max_retries: 3,
        ..Default::default()
    };
    let task = Task::new(info, TaskOptions::default())
        .with_step(Step::new("big", "huge", skip))
        .with_step(Step::new("after", "small", StepOptions::default()));
    let id = engine.dispatch(task).await.unwrap();
    let done = engine.wait(&id).await.unwrap();
    let big = &done.steps[0];
    assert_eq!(big.status, StepStatus::Failure);
    assert!(
        big.skipped,
        "skip-on-failed applies to the oversized result"
    );
    assert_eq!(big.attempt, 1, "an oversized result is not retried");
    assert!(
        big.message.contains("more than the backend accepts"),
        "{}",
        big.message
    );
    assert_eq!(big.output, None);
    assert_eq!(done.status, TaskStatus::Success, "{}", done.message);
    assert_eq!(done.steps[1].output, Some(serde_json::json!("fits")));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_callback_error_fails_the_callback_once() {
    let b = taskflow_tests::etcd::backend().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let verbose = callback_fn("verbose", move |_outcome| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(CallbackError::new("e".repeat(2 * 1024 * 1024)))
        }
    });
    let ok = step_fn("ok", |_ctx| async { Ok(()) });
    let engine = b.engine().step(ok).callback(verbose).build().unwrap();
    let worker = engine.worker().start().await.unwrap();
    let info = TaskInfo {
        task_name: "limits".into(),
        ..Default::default()
    };
    let options = TaskOptions {
        callback: Some("verbose".into()),
        ..Default::default()
    };
    let task = Task::new(info, options).with_step(Step::new("a", "ok", StepOptions::default()));
    let id = engine.dispatch(task).await.unwrap();
    let done = engine
        .wait_timeout(&id, std::time::Duration::from_secs(60))
        .await
        .expect("the task settles");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the callback ran once");
    assert_eq!(done.callback_result, Some(CallbackResult::Failure));
    assert!(
        done.callback_message
            .contains("more than the backend accepts"),
        "{}",
        done.callback_message
    );
    assert_eq!(
        done.status,
        TaskStatus::Failure,
        "a failed callback fails a successful task"
    );
    assert_eq!(
        done.steps[0].status,
        StepStatus::Success,
        "the step's success stays"
    );
    worker.shutdown().await;
}
