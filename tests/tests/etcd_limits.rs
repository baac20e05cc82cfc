//! etcd's request limit reached by a step's result or a callback's: it fails with a clear message, nothing is lost.
#![cfg(feature = "etcd")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskflow::backend::etcd::etcd_client;
use taskflow::{
    CallbackError, CallbackResult, Engine, Error, Step, StepOptions, StepStatus, Task, TaskInfo,
    TaskOptions, TaskStatus, callback_fn, step_fn,
};
use taskflow_tests::etcd::backend_with;

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

/// Tasks of every size up to the limit settle, and their step runs at most once: a write that does not fit is replaced
/// by the failure it caused, which fits because ordinary writes keep room free for it (here: tasks padded to sizes on
/// both sides of that room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_near_the_size_limit_settle_and_run_at_most_once() {
    let (_server, backend) = backend_with(|c| c.max_document_bytes(40_000)).await;
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = runs.clone();
    let count = step_fn("count", move |ctx| {
        let counted = counted.clone();
        async move {
            *counted
                .lock()
                .unwrap()
                .entry(ctx.task_id().to_owned())
                .or_default() += 1;
            Ok(())
        }
    });
    let engine = Engine::builder()
        .backend(backend)
        .without_inventory()
        .step(count)
        .build()
        .unwrap();
    let worker = engine.worker().start().await.unwrap();
    let mut dispatched = Vec::new();
    for pad in (20_000..40_000).step_by(250) {
        let info = TaskInfo {
            task_name: "padded".into(),
            ..Default::default()
        };
        let mut task = Task::new(info, TaskOptions::default()).with_step(Step::new(
            "a",
            "count",
            StepOptions::default(),
        ));
        task.set_common_param("pad", "x".repeat(pad));
        match engine.dispatch(task).await {
            Ok(id) => dispatched.push(id),
            Err(Error::TooLarge { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(dispatched.len() > 4, "some tasks fit: {}", dispatched.len());
    for id in &dispatched {
        let done = engine
            .wait_timeout(id, Duration::from_secs(30))
            .await
            .expect("the task settles");
        assert!(done.is_terminal());
        let runs = runs.lock().unwrap().get(id).copied().unwrap_or(0);
        assert!(runs <= 1, "the step of a task ran {runs} times");
    }
    worker.shutdown().await;
}

/// A corrupt document too large to keep whole in the failed task's message fails its task once, with an excerpt (the
/// whole goes to the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_corrupt_document_fails_its_task_with_an_excerpt() {
    let (_server, backend) = backend_with(|c| c).await;
    let doc_key = backend.keys().task("placeholder");
    let mut client = backend.client();
    let engine = Engine::builder()
        .backend(backend)
        .without_inventory()
        .step(step_fn("ok", |_ctx| async { Ok(()) }))
        .build()
        .unwrap();
    let info = TaskInfo {
        task_name: "corrupt".into(),
        ..Default::default()
    };
    let task = Task::new(info, TaskOptions::default()).with_step(Step::new(
        "a",
        "ok",
        StepOptions::default(),
    ));
    let id = engine.dispatch(task).await.unwrap();
    let doc_key = doc_key.replace("placeholder", &id);
    // 800 kB of quotes: twice that once escaped into a message.
    let put = client
        .put(doc_key.clone(), "\"".repeat(800_000), None)
        .await
        .unwrap();
    let options =
        etcd_client::WatchOptions::new().with_start_revision(put.header().unwrap().revision() + 1);
    let mut changes = client.watch(doc_key, Some(options)).await.unwrap();
    let worker = engine.worker().start().await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let response = changes.message().await.unwrap().expect("the watch goes on");
            if let Some(event) = response.events().first() {
                break event.kv().expect("a put").value().to_vec();
            }
        }
    })
    .await
    .expect("the corrupt task is failed");
    let failed: Task = serde_json::from_slice(&change).unwrap();
    assert_eq!(failed.status, TaskStatus::Failure);
    assert!(
        failed.message.contains("its first 4096 of 800000 bytes"),
        "{}",
        &failed.message[..200]
    );
    worker.shutdown().await;
}
