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

/// A task write carries the document and its listing summary (compared, then written) and message: with large summary
/// fields (here a 300 kB business index) a result that keeps the document under the limit can still make the write too
/// large. The step fails for that reason, once, like any oversized result; an index too large for any write is refused
/// at dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_summary_counts_towards_the_size_limit() {
    let b = taskflow_tests::etcd::backend().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let big = step_fn("big", move |_ctx| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok("x".repeat(800_000))
        }
    });
    let engine = b.engine().step(big).build().unwrap();
    let worker = engine.worker().start().await.unwrap();
    let indexed = |index_bytes: usize| {
        let info = TaskInfo {
            task_name: "limits".into(),
            task_index: "i".repeat(index_bytes),
            ..Default::default()
        };
        Task::new(info, TaskOptions::default()).with_step(Step::new(
            "a",
            "big",
            StepOptions::default(),
        ))
    };
    let refused = engine.dispatch(indexed(600_000)).await.unwrap_err();
    assert!(refused.to_string().contains("too large"), "{refused}");
    let id = engine.dispatch(indexed(300_000)).await.unwrap();
    let done = engine
        .wait_timeout(&id, std::time::Duration::from_secs(60))
        .await
        .expect("the task settles");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran once");
    assert_eq!(done.status, TaskStatus::Failure);
    assert!(
        done.steps[0]
            .message
            .contains("more than the backend accepts"),
        "{}",
        done.steps[0].message
    );
    worker.shutdown().await;
}
